//! Loom model of `join`'s stack-job protocol over the public primitives: a [`JobDeque`] of
//! job pointers and a [`StackLatch`] per job, as `src/engine/join.rs` uses them.
//!
//! The owner pushes a pointer to a job (its closure's input in a loom `UnsafeCell`), runs its
//! own half, then pops the job back and runs it itself, or, if a thief stole it, waits for the
//! latch: it announces the wait, then parks until the latch is set. The thief steals, runs the
//! job, writes the result, sets the latch, and unparks the owner if the latch says it waits.
//!
//! Checks, in every interleaving (bounded preemptions):
//! - the job is taken exactly once (its closure is an `Option` taken by the one taker: a
//!   second take panics "taken twice"), by the owner's pop or by the thief's steal;
//! - the owner ends with the job's result, and its read of the result is ordered after the
//!   thief's write (a loom `UnsafeCell`: an unordered read fails the model);
//! - once the owner has the result it reuses the job's memory (writes every cell, as a new
//!   frame would): a thief that touched the job after setting the latch fails the model;
//! - the owner never parks forever: loom reports a deadlock if the thief's wake-up is lost.
//!
//! The `mutant` build (`--cfg tokengate_mutant="latch_set_swap"`) replaces the setter's
//! single swap with a load and a store: the owner's announcement can fall between them, the
//! setter then believes nobody waits, and the owner parks forever. `.ci/run` expects loom to
//! report that deadlock.
//!
//! No role retries in a loop (see the crate docs); the model runs its threads in both spawn
//! orders. Preemption bound: 3.
#![cfg(loom)]

use std::ptr::NonNull;

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread::Thread;
use tokengate::primitives::{JobDeque, JobSteal, StackLatch};
use tokengate_loom_tests::{check_each_order, Order};

const PREEMPTION_BOUND: usize = 3;

/// A stack job: its closure (here, the input of `x * 10`), its result and its latch.
struct Job {
    func: UnsafeCell<Option<u32>>,
    result: UnsafeCell<Option<u32>>,
    latch: StackLatch,
}

impl Job {
    /// Runs the job: its one taker takes the closure and writes the result.
    fn run(&self) {
        // SAFETY: the deque hands the job to one taker; loom checks the accesses.
        let input = self.func.with_mut(|f| unsafe { (*f).take() });
        let input = input.expect("the job was taken twice");
        // SAFETY: as above; the owner reads it only after the latch (or ran it itself).
        self.result.with_mut(|r| unsafe { *r = Some(input * 10) });
    }
}

/// What the owner's frame and the runtime hold.
struct Model {
    deque: JobDeque<Job>,
    job: Job,
    /// The owner's thread, written before it announces a wait; the setter reads it only when
    /// the latch says the owner waits (the runtime's analogue: the owner's `Sleeper`).
    owner: UnsafeCell<Option<Thread>>,
}

fn fork_then_pop_or_wait(order: Order) {
    let m = Arc::new(Model {
        deque: JobDeque::new(2),
        job: Job {
            func: UnsafeCell::new(Some(4)),
            result: UnsafeCell::new(None),
            latch: StackLatch::new(),
        },
        owner: UnsafeCell::new(None),
    });
    let owner = {
        let m = m.clone();
        Box::new(move || {
            let job = NonNull::from(&m.job);
            // SAFETY: this role is the deque's only owner.
            unsafe { m.deque.push(job) }.expect("room for one job");
            // ... `a` runs here ...
            // SAFETY: as above.
            let stolen = match unsafe { m.deque.pop() } {
                Some(popped) => {
                    assert_eq!(popped, job);
                    m.job.run();
                    false
                }
                None => {
                    if !m.job.latch.probe() {
                        // SAFETY: written once, by this role, before the announcement that
                        // publishes it to the setter.
                        m.owner
                            .with_mut(|t| unsafe { *t = Some(loom::thread::current()) });
                        if m.job.latch.announce_wait() {
                            while !m.job.latch.probe() {
                                loom::thread::park();
                            }
                        }
                    }
                    true
                }
            };
            // SAFETY: ran here, or the latch is set: the thief's write happens before.
            let result = m.job.result.with(|r| unsafe { *r });
            // The frame is left: its memory is reused (a thief touching the job after setting
            // the latch would race with these writes).
            // SAFETY: the job is this role's alone now.
            m.job.func.with_mut(|f| unsafe { *f = Some(0) });
            // SAFETY: as above.
            m.job.result.with_mut(|r| unsafe { *r = None });
            (result, stolen)
        }) as Box<dyn FnOnce() -> (Option<u32>, bool)>
    };
    let thief = {
        let m = m.clone();
        Box::new(move || match m.deque.steal() {
            JobSteal::Taken(job) => {
                // SAFETY: stolen: the job is alive until its latch is set (the owner waits).
                let job = unsafe { job.as_ref() };
                job.run();
                // SAFETY: the latch is alive for the call; the job is not touched after.
                if unsafe { StackLatch::set(&job.latch) } {
                    // SAFETY: the owner wrote it before announcing the wait, which the set
                    // acquired.
                    let owner = m.owner.with(|t| unsafe { (*t).clone() });
                    owner.expect("a waiting owner left its thread").unpark();
                }
                (None, true)
            }
            JobSteal::Empty | JobSteal::Retry => (None, false),
        }) as Box<dyn FnOnce() -> (Option<u32>, bool)>
    };
    let [(result, stolen), (_, thief_took)]: [(Option<u32>, bool); 2] = order
        .spawn_all(vec![owner, thief])
        .try_into()
        .unwrap_or_else(|_| unreachable!("two roles"));
    assert_eq!(result, Some(40), "the owner sees the job's result");
    assert_eq!(
        stolen, thief_took,
        "taken by the thief exactly when not popped back"
    );
}

#[cfg(not(tokengate_mutant = "latch_set_swap"))]
#[test]
fn the_job_is_taken_once_and_the_owner_sees_its_result() {
    check_each_order(PREEMPTION_BOUND, fork_then_pop_or_wait);
}

/// The setter's swap split into a load and a store: loom must find the owner parked forever
/// (it reports a deadlock and aborts; `.ci/run` checks for the report).
#[cfg(tokengate_mutant = "latch_set_swap")]
#[test]
fn mutant_setter_without_the_swap_is_caught() {
    check_each_order(PREEMPTION_BOUND, fork_then_pop_or_wait);
}
