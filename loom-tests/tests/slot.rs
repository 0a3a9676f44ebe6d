//! Loom models of [`TaskSlot`]: the closure goes in, exactly one of run/cancel wins, the
//! outcome comes out once, a waiter parked in `wait()` is always woken, and everything the
//! closure captured or produced is dropped exactly once whoever drops the slot last.
//!
//! Drops are counted with [`Counted`] (a loom `AtomicUsize` behind a loom `Arc`, which loom
//! also checks for leaks at the end of every execution). A lost wake-up leaves a waiter
//! parked forever, which loom reports as a deadlock.
//!
//! The brief's "main thread" waiter is a spawned thread here: every model runs its threads
//! in both spawn orders from a main thread that only joins (see the crate docs).
//!
//! Preemption bound: 3 for every model.
#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use tokengate::primitives::{Registration, TaskSlot};
use tokengate::{TaskError, TokenState};
use tokengate_loom_tests::{check_each_order, Order};

/// Preemptions per execution; every model here finishes within seconds at 3.
const PREEMPTION_BOUND: usize = 3;

/// A value that counts its drops.
#[derive(Debug)]
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        // Relaxed: the models read the count after joining every thread, or after an
        // acquire that the slot's protocol promises; either orders this increment first.
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// A drop counter and a value counted by it.
fn counted() -> (Arc<AtomicUsize>, Counted) {
    let drops = Arc::new(AtomicUsize::new(0));
    (drops.clone(), Counted(drops))
}

/// What one thread of a model did.
#[derive(Debug)]
enum Did {
    /// `run()` returned this.
    Ran(bool),
    /// `cancel()` returned this.
    Cancelled(bool),
    /// Waited, then took this outcome (the value, or the error).
    Took(Option<Result<u32, TaskError>>),
    /// Something that reports nothing.
    Nothing,
}

type Role = Box<dyn FnOnce() -> Did>;

/// (a) Run on one thread, cancel on another, and a third thread `wait()`s then takes the
/// outcome. Exactly one of run/cancel wins; the outcome and final state match the winner;
/// the closure's capture is dropped exactly once, and already when the outcome is taken (the
/// closure is consumed or dropped before the outcome is published).
#[test]
fn run_races_cancel_and_a_waiter_sees_the_winner() {
    check_each_order(PREEMPTION_BOUND, |order: Order| {
        let (drops, captured) = counted();
        let slot = Arc::new(TaskSlot::new(move || {
            drop(captured);
            7_u32
        }));
        let runner: Role = {
            let slot = slot.clone();
            Box::new(move || Did::Ran(slot.run()))
        };
        let canceller: Role = {
            let slot = slot.clone();
            Box::new(move || Did::Cancelled(slot.cancel()))
        };
        let waiter: Role = {
            let (slot, drops) = (slot.clone(), drops.clone());
            Box::new(move || {
                slot.wait();
                assert!(
                    slot.is_ready(),
                    "wait() returned before the outcome was ready"
                );
                let outcome = slot.take_output();
                // `take_output` acquired the outcome, published after the closure was
                // consumed or dropped: the drop is visible now.
                assert_eq!(drops.load(Ordering::Relaxed), 1, "capture not dropped yet");
                assert!(slot.take_output().is_none(), "the outcome was taken twice");
                Did::Took(outcome)
            })
        };
        let [ran, cancelled, took]: [Did; 3] = order
            .spawn_all(vec![runner, canceller, waiter])
            .try_into()
            .expect("three roles, three results");
        let (Did::Ran(ran), Did::Cancelled(cancelled), Did::Took(outcome)) = (ran, cancelled, took)
        else {
            panic!("roles returned out of order");
        };
        assert_ne!(ran, cancelled, "exactly one of run and cancel wins");
        if ran {
            assert_eq!(outcome, Some(Ok(7)));
            assert_eq!(slot.state(), TokenState::Completed);
        } else {
            assert_eq!(outcome, Some(Err(TaskError::Killed)));
            assert_eq!(slot.state(), TokenState::Killed);
        }
        assert!(!slot.run(), "nobody runs a finished task");
        assert_eq!(
            drops.load(Ordering::Relaxed),
            1,
            "the capture was dropped twice"
        );
    });
}

/// Model (b): run against a waiter that registers and parks (`wait()`), then reads a plain
/// cell that the closure wrote. `take_before_reading` says what the waiter does between
/// `wait()` and the read: take the outcome first (what `TaskHandle::join` does), or nothing.
fn a_parked_waiter_is_woken(take_before_reading: bool) {
    check_each_order(PREEMPTION_BOUND, move |order: Order| {
        let data = Arc::new(UnsafeCell::new(0_u32));
        let slot = Arc::new(TaskSlot::new({
            let data = data.clone();
            move || {
                // SAFETY: only the closure writes the cell, and the waiter reads it only
                // after the slot said the task is finished (the claim under test: loom fails
                // the model if that read is not ordered after this write).
                data.with_mut(|p| unsafe { *p = 42 });
                5_u32
            }
        }));
        let runner: Role = {
            let slot = slot.clone();
            Box::new(move || Did::Ran(slot.run()))
        };
        let waiter: Role = {
            let slot = slot.clone();
            Box::new(move || {
                slot.wait();
                let outcome = take_before_reading.then(|| slot.take_output());
                // SAFETY: see the write above.
                let seen = data.with(|p| unsafe { *p });
                assert_eq!(seen, 42, "the task's write is not visible");
                Did::Took(outcome.unwrap_or_else(|| slot.take_output()))
            })
        };
        let [ran, took]: [Did; 2] = order
            .spawn_all(vec![runner, waiter])
            .try_into()
            .expect("two roles, two results");
        assert!(matches!(ran, Did::Ran(true)), "{ran:?}");
        assert!(matches!(took, Did::Took(Some(Ok(5)))), "{took:?}");
    });
}

/// (b) Run against a waiter that registers and parks (`wait()`), then takes the outcome and
/// reads what the task wrote, as `TaskHandle::join` does: no lost wake-up (loom reports a
/// deadlock otherwise), and the task's write happens before the read.
#[test]
fn a_parked_waiter_is_woken_and_sees_what_the_task_did() {
    a_parked_waiter_is_woken(true);
}

/// (b') As (b), but the waiter reads what the task wrote right after `wait()` returns,
/// before taking the outcome: `wait()` alone must order the task before its caller (the
/// crate promises it for `TaskHandle::wait_timeout` reporting "finished", which returns on
/// the same `Registration::Ready`).
///
/// Regression: `register_waiter`'s `fetch_update` once had a `Relaxed` failure ordering, and a
/// failure that saw `READY` returned `Registration::Ready`. Interleaving: the waiter's
/// `is_ready()` (Acquire) reads the word before `READY`; the runner writes the cell and sets
/// `READY` (AcqRel `fetch_add`); the waiter's `register_waiter` loads the word `Relaxed`,
/// sees `READY`, returns `Ready`, and `wait()` returns with no happens-before edge to the
/// task; the read of the cell races the closure's write. Loom: "Causality violation:
/// Concurrent read and write accesses". Fixed: the failure path now acquires.
#[test]
fn wait_alone_orders_the_task_before_its_caller() {
    a_parked_waiter_is_woken(false);
}

/// Two threads `wait()` on the same slot while a third runs it: both must be woken.
///
/// Regression: a registration once replaced the previous one (it cleared
/// `WAITER_SET` and overwrites the waiter cell), so a waiter that registered and parked first
/// is never unparked. Interleaving: waiter 1 registers and parks; waiter 2 registers,
/// replacing waiter 1's thread in the cell, and parks; the runner publishes and unparks
/// waiter 2 only; waiter 1 stays parked forever. Loom: "deadlock; threads = [..]". In the
/// runtime the same happens to concurrent `TaskHandle::wait_timeout` callers on one handle
/// (`TaskHandle` is `Sync`): the replaced one sleeps until its deadline. Fixed: one thread is
/// registered at a time, a second one polls (`Registration::Contended`), and a registrant
/// that finds the outcome ready wakes the registered waiter the finisher skipped.
#[test]
fn two_waiters_are_both_woken() {
    check_each_order(PREEMPTION_BOUND, |order: Order| {
        let slot = Arc::new(TaskSlot::new(|| 3_u32));
        let runner: Role = {
            let slot = slot.clone();
            Box::new(move || Did::Ran(slot.run()))
        };
        let waiter = || -> Role {
            let slot = slot.clone();
            Box::new(move || {
                slot.wait();
                Did::Nothing
            })
        };
        order.spawn_all(vec![runner, waiter(), waiter()]);
        assert!(slot.is_ready());
    });
}

/// How the waiter side of model (c) leaves the slot.
#[derive(Clone, Copy, Debug)]
enum Leave {
    /// Drops its `Arc` at once, before or after the run, never looking at the outcome.
    Early,
    /// Registers as the waiter (the runner may unpark it later), then drops its `Arc`
    /// without parking.
    AfterRegistering,
    /// Waits, takes the outcome and drops it, then drops its `Arc`.
    AfterTaking,
}

/// (c) The waiter side drops its `Arc` of the slot before or after completion while the
/// runner runs and drops its own. Whoever drops last frees the slot; the closure's capture
/// and the produced value (also counted) are each dropped exactly once, and loom finds no
/// leaked `Arc`.
fn the_last_owner_frees_everything(leave: Leave) {
    check_each_order(PREEMPTION_BOUND, move |order: Order| {
        let (capture_drops, captured) = counted();
        let (output_drops, produced) = counted();
        let slot = Arc::new(TaskSlot::new(move || {
            drop(captured);
            produced
        }));
        let runner: Role = {
            let slot = slot.clone();
            Box::new(move || Did::Ran(slot.run()))
        };
        let leaver: Role = {
            let slot = slot.clone();
            Box::new(move || {
                match leave {
                    Leave::Early => {}
                    Leave::AfterRegistering => {
                        let r = slot.register_waiter();
                        assert_ne!(r, Registration::Contended, "the only joiner");
                    }
                    Leave::AfterTaking => {
                        slot.wait();
                        let outcome = slot.take_output();
                        assert!(matches!(outcome, Some(Ok(_))), "{outcome:?}");
                    }
                }
                drop(slot);
                Did::Nothing
            })
        };
        // The main thread must not hold the slot past the threads, or it would always be
        // the last owner.
        drop(slot);
        let [ran, _]: [Did; 2] = order
            .spawn_all(vec![runner, leaver])
            .try_into()
            .expect("two roles, two results");
        assert!(matches!(ran, Did::Ran(true)), "{ran:?}");
        assert_eq!(capture_drops.load(Ordering::Relaxed), 1, "capture drops");
        assert_eq!(output_drops.load(Ordering::Relaxed), 1, "output drops");
    });
}

#[test]
fn waiter_drops_the_slot_early() {
    the_last_owner_frees_everything(Leave::Early);
}

#[test]
fn waiter_registers_then_drops_the_slot() {
    the_last_owner_frees_everything(Leave::AfterRegistering);
}

#[test]
fn waiter_takes_the_outcome_then_drops_the_slot() {
    the_last_owner_frees_everything(Leave::AfterTaking);
}

/// A slot dropped without ever being run or cancelled drops its closure (and so the
/// capture) exactly once.
#[test]
fn an_unrun_slot_drops_its_closure() {
    check_each_order(PREEMPTION_BOUND, |order: Order| {
        let (drops, captured) = counted();
        let slot = Arc::new(TaskSlot::new(move || {
            drop(captured);
            1_u32
        }));
        let roles: Vec<Role> = (0..2)
            .map(|_| {
                let slot = slot.clone();
                Box::new(move || {
                    assert!(!slot.is_ready());
                    drop(slot);
                    Did::Nothing
                }) as Role
            })
            .collect();
        drop(slot);
        order.spawn_all(roles);
        assert_eq!(drops.load(Ordering::Relaxed), 1);
    });
}

/// A handle dropped while its task runs: `detach` races the runner's publication. The output
/// is dropped exactly once, by whichever of them comes second in the state word's order, and
/// before both threads are done: never left in the slot (the runtime may keep a finished
/// task's slot alive after its handle is gone).
#[test]
fn detach_racing_the_run_drops_the_output_once_and_at_once() {
    check_each_order(PREEMPTION_BOUND, |order: Order| {
        let (drops, value) = counted();
        let slot = Arc::new(TaskSlot::new(move || value));
        let runner = {
            let slot = slot.clone();
            Box::new(move || {
                assert!(slot.run_then(|_| {}));
            }) as Box<dyn FnOnce()>
        };
        let handle = {
            let slot = slot.clone();
            Box::new(move || slot.detach()) as Box<dyn FnOnce()>
        };
        order.spawn_all(vec![runner, handle]);
        // Both are done, and the slot is still alive (this thread holds it).
        assert_eq!(
            drops.load(Ordering::Relaxed),
            1,
            "the output was not dropped once"
        );
        assert!(
            slot.take_output().is_none(),
            "a detached outcome was left in the slot"
        );
        drop(slot);
        assert_eq!(drops.load(Ordering::Relaxed), 1);
    });
}

/// `run_and_take` (a joiner running the task itself and keeping its outcome) against a waiter
/// that registers and parks (`wait()`), then reads a plain cell the closure wrote: the waiter
/// is woken (loom reports a deadlock otherwise), the closure's write happens before its read,
/// the outcome goes to the runner alone (the waiter finds nothing to take), and the output is
/// dropped once, by the runner.
fn run_and_take_against_a_parked_waiter(order: Order) {
    let data = Arc::new(UnsafeCell::new(0_u32));
    let (drops, value) = counted();
    let slot = Arc::new(TaskSlot::new({
        let data = data.clone();
        move || {
            // SAFETY: only the closure writes the cell; the waiter reads it only after the
            // slot said the task is finished (the claim under test).
            data.with_mut(|p| unsafe { *p = 42 });
            value
        }
    }));
    let runner: Role = {
        let slot = slot.clone();
        Box::new(move || match slot.run_and_take(|_| {}) {
            Some(Ok(value)) => {
                drop(value);
                Did::Ran(true)
            }
            other => panic!("the runner did not get the output: {other:?}"),
        })
    };
    let waiter: Role = {
        let slot = slot.clone();
        Box::new(move || {
            slot.wait();
            // SAFETY: see the write above.
            let seen = data.with(|p| unsafe { *p });
            assert_eq!(seen, 42, "the task's write is not visible");
            assert!(
                slot.take_output().is_none(),
                "the outcome was handed out twice"
            );
            Did::Nothing
        })
    };
    order.spawn_all(vec![runner, waiter]);
    assert_eq!(slot.state(), TokenState::Completed);
    assert_eq!(
        drops.load(Ordering::Relaxed),
        1,
        "the output was not dropped once"
    );
}

#[cfg(not(tokengate_mutant = "run_and_take_relaxed"))]
#[test]
fn run_and_take_wakes_a_parked_waiter_and_keeps_the_outcome() {
    check_each_order(PREEMPTION_BOUND, run_and_take_against_a_parked_waiter);
}

/// With a Relaxed publication, loom must find the waiter's read racing the closure's write
/// (or the runner's read of the waiter cell racing its registration).
#[cfg(tokengate_mutant = "run_and_take_relaxed")]
#[test]
#[should_panic(expected = "Causality violation")]
fn mutant_run_and_take_relaxed_is_caught() {
    check_each_order(PREEMPTION_BOUND, run_and_take_against_a_parked_waiter);
}
