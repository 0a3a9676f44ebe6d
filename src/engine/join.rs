//! Fork-join on the stack, the worker side of [`Runtime::join`](crate::Runtime::join): the
//! second closure becomes a [`StackJob`] in the caller's frame (no allocation, no token, no
//! task record), a pointer to it goes on the worker's job deque, the first closure runs
//! inline, then the worker pops the job back and runs it inline too, unless an idle worker of
//! the runtime stole it meanwhile; then it runs other work of its runtime until the thief sets
//! the job's latch.
//!
//! | step | owner (the worker that forks) | thief (another worker of the runtime) |
//! | --- | --- | --- |
//! | fork | writes the job in its frame; pushes its address on its job deque; wakes a sleeping worker if one sleeps | — |
//! | run | runs `a` inline, panics caught | steals the address (the deque's CAS: taken once), takes the closure, runs it, panics caught, writes the result |
//! | join | pops: its own job back → runs `b` inline | reads the owner's index, then sets the latch (its last touch of the job); wakes the owner if it announced a wait |
//! | wait (stolen) | probes the latch; announces a wait; runs other work (`help_until`), parking only because the setter will wake it | — |
//! | end | re-raises `a`'s panic, else `b`'s, once both are done | — |
//!
//! The job lives until its latch is set: the owner cannot leave its frame before (it pops the
//! job itself or waits for the latch, and catches every panic in between), and the thief
//! touches nothing of the job after setting it. A job deque that is full (joins nested deeper
//! than its capacity) makes the fork run `b` inline after `a`: nothing is ever allocated.
//!
//! The protocol (the deque, the latch, the result hand-over) is modelled in
//! `loom-tests/tests/join.rs` over the public primitives, and through a two-worker runtime
//! (the fork's wake-up, the owner's wait for a stolen job) in `runtime_join.rs`.

use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::ptr::NonNull;
use std::thread::Result as Outcome;

use super::stack_job::{JobHeader, StackJob};
use super::worker::Worker;
use super::Engine;
use crate::contain::{drop_contained, forget_payload};
use crate::primitives::StackLatch;
use crate::sync::{bump_exclusive, fence, Ordering, UnsafeCell};

/// `join(a, b)` on `worker`, a worker of the runtime the join is for: forks `b` on the stack,
/// runs `a`, then runs or waits for `b`. A panic of either is re-raised after both are done
/// (`a`'s if both panicked).
#[inline]
pub(crate) fn fork_join<A, B, RA, RB>(worker: &Worker, a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    let engine = worker.engine();
    let me = &engine.workers[worker.index()];
    // Not dropped: every path below leaves both cells empty (the closure taken, the result
    // taken or never written), so there is nothing to drop, and the compiler need not check.
    let job = ManuallyDrop::new(StackJob {
        header: JobHeader {
            run: StackJob::<B, RB>::run_stolen,
        },
        latch: StackLatch::new(),
        owner: worker.index(),
        func: UnsafeCell::new(Some(b)),
        result: UnsafeCell::new(None),
    });
    // From the whole job, so that a thief may reach every field through it.
    let ptr = NonNull::from(&*job).cast::<JobHeader>();
    // SAFETY: `worker` lives on its own thread (a `Worker` is never sent), the one owner of
    // its job deque.
    if unsafe { me.jobs.push(ptr) }.is_err() {
        // Nested deeper than the deque holds: both inline, nothing stolen, nothing allocated.
        let ra = catch_unwind(AssertUnwindSafe(a));
        // SAFETY: the job was never pushed: this frame is its one taker.
        let b = unsafe { job.take_func() };
        return finish(ra, catch_unwind(AssertUnwindSafe(b)));
    }
    bump_exclusive(&me.counters.forks, 1);
    engine.wake_a_job_thief_if_one_sleeps(worker.index());
    let ra = catch_unwind(AssertUnwindSafe(a));
    // SAFETY: as for the push: this thread owns the deque.
    let rb = match unsafe { me.jobs.pop() } {
        // Nobody stole it (the common case): it is ours again, run it here.
        Some(popped) if popped == ptr => {
            // SAFETY: popped back: this frame is the job's one taker.
            let b = unsafe { job.take_func() };
            catch_unwind(AssertUnwindSafe(b))
        }
        // A job pushed after ours and left there. It cannot happen: every fork nested in `a`
        // popped its own job back or waited for its thief before its frame returned. Were it
        // to happen, that job's frame would be gone: running it would use freed memory, and
        // so would leaving it to a thief. Stop the process instead.
        Some(_) => job_deque_corrupted(),
        // Stolen: everything pushed before it was stolen first, and everything after it
        // popped by its own join.
        None => {
            wait_for_latch(worker, &job.latch);
            // SAFETY: the latch is set: the thief wrote the result before setting it (the
            // latch's Acquire makes it visible) and touches the job no more.
            let outcome = job.result.with_mut(|r| unsafe { (*r).take() });
            match outcome {
                Some(outcome) => outcome,
                None => unreachable!("a set latch follows a written result"),
            }
        }
    };
    finish(ra, rb)
}

/// Runs other work of `worker`'s runtime until `latch` is set, parking only once the latch's
/// setter is bound to wake this worker.
#[cold]
#[inline(never)]
fn wait_for_latch(worker: &Worker, latch: &StackLatch) {
    if latch.probe() {
        return;
    }
    let wakes_us = latch.announce_wait();
    // The thief still uses the job in this frame: unwinding out of it now would free the job
    // under the thief. Every task and stolen job run while helping catches its own panics, so
    // this only guards against a bug of the runtime, by aborting (as rayon-core does).
    let guard = AbortOnUnwind;
    worker.help_until(|| latch.probe(), wakes_us);
    std::mem::forget(guard);
}

/// A job deque holding a job of a frame that returned: a bug of the runtime that no safe
/// continuation exists for.
#[cold]
#[inline(never)]
fn job_deque_corrupted() -> ! {
    eprintln!("tokengate: a join found a stack job of a frame that returned; aborting");
    std::process::abort()
}

/// Aborts the process if dropped: held across a region that must not unwind.
struct AbortOnUnwind;

impl Drop for AbortOnUnwind {
    #[cold]
    fn drop(&mut self) {
        eprintln!("tokengate: a panic escaped while a stolen join job was running; aborting");
        std::process::abort();
    }
}

/// Both closures' outcomes, once both are done: the values, or the first panic re-raised (the
/// other outcome dropped, its `Drop` contained).
#[inline]
fn finish<RA, RB>(ra: Outcome<RA>, rb: Outcome<RB>) -> (RA, RB) {
    match (ra, rb) {
        (Ok(ra), Ok(rb)) => (ra, rb),
        (Err(payload), rb) => {
            match rb {
                Ok(value) => drop_contained(value),
                Err(other) => forget_payload(other),
            }
            resume_unwind(payload)
        }
        (Ok(ra), Err(payload)) => {
            drop_contained(ra);
            resume_unwind(payload)
        }
    }
}

/// Runs `a` then `b` on the calling thread with `join`'s panic rule: for a join that cannot
/// reach a worker of its runtime (the runtime is shut down).
pub(crate) fn join_inline<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA,
    B: FnOnce() -> RB,
{
    let ra = catch_unwind(AssertUnwindSafe(a));
    finish(ra, catch_unwind(AssertUnwindSafe(b)))
}

impl Engine {
    /// After worker `me` forked a stack job: wakes a sleeping worker to steal it, if one
    /// sleeps (as `wake_a_thief_if_one_sleeps` in `dispatch.rs` does for the local deque).
    #[inline]
    fn wake_a_job_thief_if_one_sleeps(&self, me: usize) {
        if self.workers.len() == 1 {
            return; // nobody to steal it
        }
        // ORDERING: SeqCst fence between the push and reading `sleepers`, paired with the
        // fence of a worker going to sleep (`Sleeper::prepare_sleep`), which counts itself in
        // `sleepers` before its fence and looks at every job deque after it: either it sees
        // the push, or we see it counted. (`loom-tests/tests/runtime_join.rs` deadlocks without
        // it: its mutant build removes it.)
        #[cfg(not(tokengate_mutant = "join_wake_fence"))]
        fence(Ordering::SeqCst);
        // ORDERING: Relaxed, ordered by the fence above.
        if self.sleepers.load(Ordering::Relaxed) != 0 {
            self.wake_one_job_thief(me);
        }
    }

    #[cold]
    fn wake_one_job_thief(&self, except: usize) {
        for (w, shared) in self.workers.iter().enumerate() {
            if w != except && shared.sleeper.wake() {
                return;
            }
        }
    }
}
