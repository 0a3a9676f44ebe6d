//! Regression tests for the holes found by using tokengate as a hostile user would (issue 10):
//! user code that panics in `Drop`, scoped outputs outliving their scope, workers submitting
//! into a dry ring, cross-runtime joins, ids and names leaking across runtimes and operations,
//! and the questionable points decided since (retry loops that cannot be stopped, tokens kept
//! by held tasks, `fork`, the overflow entry's name, deep nesting).
//!
//! One test per bug or point, named for what it guards. Every test that could hang on broken
//! code runs its body on a thread of its own under a watchdog ([`watchdog`]) and fails with
//! "hung: ..." instead; a runtime that may be wedged is kept in a `ManuallyDrop` and only
//! dropped once everything else passed, so that a failing assertion never turns into a hang
//! in `Drop`. The watchdog's bound is generous: it catches hangs and never measures speed.
//!
//! `q2_stack_size`, at the end, uses `Builder::stack_size`, added by the fix of Q2.

mod common;

use std::any::Any;
use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Condvar, Mutex, Once};
use std::thread;
use std::time::Duration;

use tokengate::{Operation, Runtime, TaskError, TaskHandle, TrySubmitError};

use common::{watchdog, Steps, HANG, PROMPTLY};

// ---- helpers ---------------------------------------------------------------------------------

/// Silences the panic report of the planned panics: messages starting with "planned" (see
/// `common`) and [`Bomb`] payloads.
fn quiet() {
    common::quiet_planned_panics();
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.payload().is::<Bomb>() {
                previous(info);
            }
        }));
    });
}

fn runtime(workers: usize, capacity: usize) -> Runtime {
    common::runtime_with_capacity(workers, capacity)
}

/// Drops a runtime kept in a `ManuallyDrop` (so that a failed assertion before this point
/// leaks it instead of hanging in its `Drop`).
fn drop_runtime<R>(steps: &Steps, rt: ManuallyDrop<R>) {
    steps.at("drop(rt)");
    drop(ManuallyDrop::into_inner(rt));
}

/// Panics when dropped: user code that panics in `Drop`. Never while the thread is already
/// unwinding (a panic in a drop during unwinding aborts the process).
struct Bomb(&'static str);

impl Drop for Bomb {
    fn drop(&mut self) {
        if !thread::panicking() {
            panic!("planned panic in the drop of {}", self.0);
        }
    }
}

/// A one-shot gate: closed until `open`; `wait` blocks until it opens (at most [`HANG`], so
/// that a gate nobody opens does not hold a worker forever).
#[derive(Clone, Default)]
struct Gate(Arc<(Mutex<bool>, Condvar)>);

impl Gate {
    fn open(&self) {
        let (open, cv) = &*self.0;
        *open.lock().unwrap() = true;
        cv.notify_all();
    }

    fn wait(&self) -> bool {
        let (open, cv) = &*self.0;
        let guard = open.lock().unwrap();
        let (guard, _) = cv.wait_timeout_while(guard, HANG, |o| !*o).unwrap();
        *guard
    }
}

/// Submits a task of `op` that holds its worker until the returned gate opens; returns once
/// it runs.
fn hold_worker(rt: &Runtime, op: &Operation) -> (Gate, TaskHandle<()>) {
    let started = Gate::default();
    let release = Gate::default();
    let (s, r) = (started.clone(), release.clone());
    let h = rt.submit(op, move || {
        s.open();
        r.wait();
    });
    assert!(started.wait(), "the task holding the worker never started");
    (release, h)
}

const GATE: Operation = Operation::new("gate");

fn message(payload: &(dyn Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(not a string)".to_string())
}

/// Calls `f`, failing the test with a clear message if it panics (an admin call or a handle
/// method that let user code's panic escape).
fn must_not_panic<R>(what: &str, f: impl FnOnce() -> R) -> R {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(p) => panic!("{what} panicked: {:?}", message(&*p)),
    }
}

/// Sets the flag when dropped: stops endless retry loops left behind by a failed test.
struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}

// ---- smoke -----------------------------------------------------------------------------------

/// The headline promise: whatever user code panics — the body, the drop of the output, of
/// the panic payload, of a capture — the worker lives on and the runtime shuts down.
#[test]
#[cfg_attr(miri, ignore = "covered by the smaller tests; slow under miri")]
fn smoke() {
    quiet();
    watchdog(|steps| {
        let rt = ManuallyDrop::new(runtime(1, 4));
        // A later task runs on the one worker: it lives on.
        let alive = |after: &str| {
            let later = rt.spawn(|| 7);
            assert!(
                later.wait_timeout(PROMPTLY),
                "the worker is gone after {after}: a later task never ran"
            );
            assert_eq!(later.join(), Ok(7));
        };

        steps.at("a task panicking in its body");
        let body = rt.spawn(|| -> u8 { panic!("planned panic in a task's body") });
        assert!(matches!(body.join(), Err(TaskError::Panicked(_))));
        alive("a panic in a task's body");

        steps.at("a capture panicking in its drop, task cancelled");
        let (release, held) = hold_worker(&rt, &GATE);
        let bomb = Bomb("a captured value");
        let victim = rt.spawn(move || std::mem::forget(bomb));
        assert!(must_not_panic("cancel", || victim.cancel()));
        release.open();
        held.join().unwrap();
        assert!(
            victim.wait_timeout(PROMPTLY),
            "the cancelled task never resolved"
        );
        assert_eq!(victim.join(), Err(TaskError::Killed));
        alive("a cancel whose capture panicked in drop");

        steps.at("an output panicking in its drop, handle dropped unjoined");
        let gate = Gate::default();
        let g = gate.clone();
        drop(rt.spawn(move || {
            g.wait();
            Bomb("an output")
        }));
        gate.open();
        alive("an output panicked in drop");

        steps.at("a panic payload panicking in its drop, handle dropped unjoined");
        let gate = Gate::default();
        let g = gate.clone();
        drop(rt.spawn(move || -> u8 {
            g.wait();
            std::panic::panic_any(Bomb("a panic payload"))
        }));
        gate.open();
        alive("a panic payload panicked in drop");
        drop_runtime(steps, rt);
    });
}

// ---- B1: nothing a scoped or broadcast task borrowed is touched after it returns ------------

/// What the drops of borrowing values saw.
#[derive(Default)]
struct Probe {
    /// Set by the test right after `scope` (or `broadcast`) returned.
    returned: AtomicBool,
    dropped: AtomicUsize,
    /// Drops on a worker thread after the borrow ended (use-after-free with freed data).
    dropped_late: AtomicUsize,
}

/// Reads the data it borrows when dropped, like the issue's `Reader`.
struct Reader<'a> {
    data: &'a [u64],
    probe: Arc<Probe>,
}

impl Drop for Reader<'_> {
    fn drop(&mut self) {
        std::hint::black_box(self.data.iter().sum::<u64>());
        if self.probe.returned.load(SeqCst) && tokengate::current_worker().is_some() {
            self.probe.dropped_late.fetch_add(1, SeqCst);
        }
        self.probe.dropped.fetch_add(1, SeqCst);
    }
}

/// Slow to drop, like the issue's `Slow`: dropped first, it delays the `Reader` beside it.
struct Slow(Duration);

impl Drop for Slow {
    fn drop(&mut self) {
        thread::sleep(self.0);
    }
}

fn slow() -> Slow {
    Slow(Duration::from_millis(if cfg!(miri) { 20 } else { 150 }))
}

/// The reproduction: a scoped task's output borrows from the environment and its
/// handle is dropped unjoined; the worker dropped the output after `scope` had returned (a
/// use-after-free once the data is gone). Also run under miri (small and cheap).
#[test]
fn scoped_output_is_dropped_before_scope_returns() {
    watchdog(|steps| {
        let rt = ManuallyDrop::new(runtime(1, 4));
        let probe = Arc::new(Probe::default());
        let mut data = Some(vec![1u64, 2, 3, 4]);
        let borrowed: &[u64] = data.as_deref().unwrap();
        steps.at("scope with an unjoined task whose output borrows");
        rt.scope(|s| {
            let _ = s.spawn(|| {
                (
                    slow(),
                    Reader {
                        data: borrowed,
                        probe: probe.clone(),
                    },
                )
            });
        });
        probe.returned.store(true, SeqCst);
        // Under miri the data goes now, as in the issue: a drop after this point is a
        // use-after-free that miri reports. Natively it lives until the checks below, so that
        // a failure is an assertion, not undefined behaviour.
        if cfg!(miri) {
            drop(data.take());
        }
        steps.at("waiting for the output's drop");
        assert!(
            common::eventually(PROMPTLY, || probe.dropped.load(SeqCst) == 1),
            "the scoped task's output was never dropped"
        );
        assert_eq!(
            probe.dropped_late.load(SeqCst),
            0,
            "a scoped task's output, borrowing from the caller, was dropped by a worker after \
             `scope` returned"
        );
        drop(data);
        drop_runtime(steps, rt);
    });
}

/// The closure's captures borrow; the task is cancelled by its handle (dropped by the caller)
/// or killed while queued (dropped by the worker): either way before `scope` returns.
#[test]
#[cfg_attr(miri, ignore = "the output test covers B1 under miri")]
fn scoped_closure_captures_are_dropped_before_scope_returns_when_cancelled() {
    const VICTIM: Operation = Operation::new("scoped_victim");
    watchdog(|steps| {
        let rt = ManuallyDrop::new(runtime(1, 8));
        let probe = Arc::new(Probe::default());
        let data = vec![5u64, 6, 7];

        steps.at("scope: a queued task cancelled by its handle");
        let (release, held) = hold_worker(&rt, &GATE);
        rt.scope(|s| {
            let captured = (
                slow(),
                Reader {
                    data: &data,
                    probe: probe.clone(),
                },
            );
            let h = s.spawn(move || {
                let _keep = &captured;
            });
            assert!(h.cancel(), "a queued task could not be cancelled");
        });
        probe.returned.store(true, SeqCst);
        release.open();
        held.join().unwrap();
        assert_eq!(probe.dropped.load(SeqCst), 1, "the capture was not dropped");
        assert_eq!(probe.dropped_late.load(SeqCst), 0);

        steps.at("scope: a queued task killed, dropped by the worker");
        probe.returned.store(false, SeqCst);
        let (release, held) = hold_worker(&rt, &GATE);
        rt.scope(|s| {
            let captured = (
                slow(),
                Reader {
                    data: &data,
                    probe: probe.clone(),
                },
            );
            let h = s.submit(&VICTIM, move || {
                let _keep = &captured;
            });
            rt.kill_operation("scoped_victim");
            release.open(); // the worker reaches the killed task and drops it
            drop(h);
        });
        probe.returned.store(true, SeqCst);
        held.join().unwrap();
        thread::sleep(Duration::from_millis(200)); // a late drop would land here
        assert_eq!(probe.dropped.load(SeqCst), 2, "the capture was not dropped");
        assert_eq!(
            probe.dropped_late.load(SeqCst),
            0,
            "a killed scoped task's captures were dropped after `scope` returned"
        );
        drop(data);
        drop_runtime(steps, rt);
    });
}

/// Broadcast results borrow from the caller: every one is handed back (none is left for a
/// worker to drop later), including beside a panicking run.
#[test]
#[cfg_attr(miri, ignore = "the output test covers B1 under miri")]
fn broadcast_results_that_borrow_are_never_dropped_after_broadcast_returns() {
    quiet();
    watchdog(|steps| {
        let rt = ManuallyDrop::new(runtime(2, 8));
        let probe = Arc::new(Probe::default());
        let data = vec![8u64, 9];
        steps.at("broadcast returning borrowing values, one run panicking");
        let results = rt.broadcast(|ctx| {
            if ctx.index() == 1 {
                panic!("planned panic in a broadcast run");
            }
            (
                slow(),
                Reader {
                    data: &data,
                    probe: probe.clone(),
                },
            )
        });
        probe.returned.store(true, SeqCst);
        assert!(results[0].is_ok());
        assert!(matches!(results[1], Err(TaskError::Panicked(_))));
        thread::sleep(Duration::from_millis(300)); // a late drop on a worker would land here
        assert_eq!(
            probe.dropped.load(SeqCst),
            0,
            "a result was dropped, not returned"
        );
        drop(results); // by the caller, on the test's thread
        assert_eq!(probe.dropped.load(SeqCst), 1);
        assert_eq!(probe.dropped_late.load(SeqCst), 0);
        drop(data);
        drop_runtime(steps, rt);
    });
}

// ---- B2: an output or a panic payload that panics in Drop ------------------------------------

/// The issue's `Bomb` output, handle dropped before the task finished: the worker dropped the
/// output, the panic killed it, the next task never ran and `drop(rt)` hung.
#[test]
#[cfg_attr(miri, ignore = "slow under miri")]
fn output_panicking_in_drop_does_not_kill_the_worker() {
    quiet();
    watchdog(|steps| {
        let rt = ManuallyDrop::new(runtime(1, 4));
        let gate = Gate::default();
        let g = gate.clone();
        steps.at("a task whose output panics in drop, handle dropped unjoined");
        drop(rt.spawn(move || {
            g.wait();
            Bomb("an output")
        }));
        gate.open(); // only now may it finish: the worker holds the last reference
        steps.at("a later task on the same worker");
        let later = rt.spawn(|| 5);
        assert!(
            later.wait_timeout(PROMPTLY),
            "the worker is gone: a task after one whose output panicked in drop never ran"
        );
        assert_eq!(later.join(), Ok(5));
        drop_runtime(steps, rt);
    });
}

/// `panic_any(Bomb)`: the payload kept for the handle panics when dropped.
#[test]
#[cfg_attr(miri, ignore = "slow under miri")]
fn panic_payload_panicking_in_drop_does_not_kill_the_worker() {
    quiet();
    watchdog(|steps| {
        let rt = ManuallyDrop::new(runtime(1, 4));
        let gate = Gate::default();
        let g = gate.clone();
        steps.at("a task panicking with a payload that panics in drop, handle dropped");
        drop(rt.spawn(move || -> u8 {
            g.wait();
            std::panic::panic_any(Bomb("a panic payload"))
        }));
        gate.open();
        steps.at("a later task on the same worker");
        let later = rt.spawn(|| 6);
        assert!(
            later.wait_timeout(PROMPTLY),
            "the worker is gone: a task after one whose panic payload panicked in drop never ran"
        );
        assert_eq!(later.join(), Ok(6));
        drop_runtime(steps, rt);
    });
}

// ---- B3: a capture that panics in Drop when its task is abandoned ----------------------------

/// A closure holding a [`Bomb`]: harmless if it runs, the bomb goes off if it is dropped unrun.
fn bomb_task() -> impl FnOnce() -> u32 + Send + 'static {
    let bomb = Bomb("a captured value");
    move || {
        std::mem::forget(bomb);
        1
    }
}

#[test]
#[cfg_attr(miri, ignore = "slow under miri")]
fn cancel_contains_a_capture_panicking_in_drop() {
    quiet();
    watchdog(|steps| {
        let rt = ManuallyDrop::new(runtime(1, 4));
        let (release, held) = hold_worker(&rt, &GATE);
        let h = rt.spawn(bomb_task());
        steps.at("cancel");
        assert!(
            must_not_panic("cancel of a task whose capture panics in drop", || h
                .cancel()),
            "cancel of a queued task returned false"
        );
        steps.at("join of the cancelled task");
        assert!(
            h.wait_timeout(PROMPTLY),
            "the cancelled task's handle never resolved"
        );
        assert_eq!(h.join(), Err(TaskError::Killed));
        release.open();
        held.join().unwrap();
        assert_eq!(rt.spawn(|| 2).join(), Ok(2));
        drop_runtime(steps, rt);
    });
}

#[test]
#[cfg_attr(miri, ignore = "slow under miri")]
fn shutdown_now_contains_queued_captures_panicking_in_drop() {
    quiet();
    watchdog(|steps| {
        let rt = ManuallyDrop::new(Arc::new(runtime(1, 8)));
        let (release, held) = hold_worker(&rt, &GATE);
        let victims: Vec<_> = (0..3).map(|_| rt.spawn(bomb_task())).collect();
        steps.at("shutdown_now while the worker is held");
        let r = Arc::clone(&rt);
        let shutter = thread::spawn(move || r.shutdown_now());
        assert!(common::eventually(PROMPTLY, || rt.is_shut_down()));
        release.open();
        steps.at("joining the killed tasks");
        for (i, h) in victims.into_iter().enumerate() {
            assert!(
                h.wait_timeout(PROMPTLY),
                "queued task {i} never resolved after shutdown_now (the worker died?)"
            );
            assert_eq!(h.join(), Err(TaskError::Killed), "queued task {i}");
        }
        assert_eq!(held.join(), Ok(()));
        steps.at("shutdown_now returning");
        assert!(
            common::eventually(PROMPTLY, || shutter.is_finished()),
            "shutdown_now never returned"
        );
        shutter.join().unwrap();
        drop_runtime(steps, rt);
    });
}

/// The deadline passes while the worker is held; the worker reaches the task and drops it
/// unrun (the handle is only watched, never joined early, so the worker is the one to drop it).
#[test]
#[cfg_attr(miri, ignore = "slow under miri")]
fn an_expired_deadline_contains_a_capture_panicking_in_drop() {
    const LATE: Operation = Operation::new("late").deadline(Duration::from_millis(5));
    quiet();
    watchdog(|steps| {
        let rt = ManuallyDrop::new(runtime(1, 4));
        let (release, held) = hold_worker(&rt, &GATE);
        let h = rt.submit(&LATE, bomb_task());
        thread::sleep(Duration::from_millis(30));
        release.open();
        steps.at("waiting for the timed-out task");
        assert!(
            h.wait_timeout(PROMPTLY),
            "a task past its deadline never resolved (the worker died dropping it?)"
        );
        assert_eq!(h.join(), Err(TaskError::TimedOut));
        held.join().unwrap();
        steps.at("a later task on the same worker");
        let later = rt.spawn(|| 3);
        assert!(later.wait_timeout(PROMPTLY), "the worker is gone");
        assert_eq!(later.join(), Ok(3));
        drop_runtime(steps, rt);
    });
}

/// The same, but the caller joins after the deadline: the join resolves the task itself.
#[test]
#[cfg_attr(miri, ignore = "slow under miri")]
fn a_join_past_the_deadline_contains_a_capture_panicking_in_drop() {
    const LATE: Operation = Operation::new("late").deadline(Duration::from_millis(1));
    quiet();
    watchdog(|steps| {
        let rt = ManuallyDrop::new(runtime(1, 4));
        let (release, held) = hold_worker(&rt, &GATE);
        let h = rt.submit(&LATE, bomb_task());
        thread::sleep(Duration::from_millis(20));
        steps.at("join past the deadline");
        let outcome = must_not_panic("join of a task past its deadline", || h.join());
        assert_eq!(outcome, Err(TaskError::TimedOut));
        release.open();
        held.join().unwrap();
        assert_eq!(rt.spawn(|| 4).join(), Ok(4));
        drop_runtime(steps, rt);
    });
}

/// `kill_operation` (and `kill(id)`) over held tasks whose captures panic in drop: every
/// chosen task resolves `Killed` (the panic escaped mid-loop and lost the rest).
#[test]
#[cfg_attr(miri, ignore = "slow under miri")]
fn killing_held_tasks_contains_captures_panicking_in_drop() {
    const DOOMED: Operation = Operation::new("doomed");
    quiet();
    watchdog(|steps| {
        let rt = ManuallyDrop::new(runtime(1, 8));
        steps.at("kill_operation over paused tasks");
        rt.pause_operation("doomed");
        let doomed: Vec<_> = (0..3).map(|_| rt.submit(&DOOMED, bomb_task())).collect();
        must_not_panic("kill_operation over held tasks", || {
            rt.kill_operation("doomed")
        });
        rt.resume_operation("doomed");
        for (i, h) in doomed.into_iter().enumerate() {
            assert!(
                h.wait_timeout(PROMPTLY),
                "held task {i} never resolved after kill_operation"
            );
            assert_eq!(h.join(), Err(TaskError::Killed), "held task {i}");
        }

        steps.at("kill(id) of a paused task");
        rt.pause();
        let victim = rt.spawn(bomb_task());
        must_not_panic("kill(id) of a held task", || rt.kill(victim.id()));
        rt.resume();
        assert!(
            victim.wait_timeout(PROMPTLY),
            "the killed task never resolved"
        );
        assert_eq!(victim.join(), Err(TaskError::Killed));
        assert_eq!(rt.spawn(|| 5).join(), Ok(5));
        drop_runtime(steps, rt);
    });
}

// ---- B4: a worker that submits into a dry ring ------------------------------------------------

/// The numbers: outer tasks on 2 workers, capacity 64, each submitting a task of a
/// limited operation and joining it. All tokens were held by outer tasks spinning for one.
#[test]
#[cfg_attr(miri, ignore = "slow under miri")]
fn workers_submitting_limited_tasks_into_a_dry_ring_never_livelock() {
    const IO: Operation = Operation::new("io").concurrency_limit(8);
    let outer = 1_000;
    watchdog(move |steps| {
        let rt = ManuallyDrop::new(Arc::new(runtime(2, 64)));
        let now = Arc::new(AtomicUsize::new(0));
        let max = Arc::new(AtomicUsize::new(0));
        steps.at("submitting the outer tasks");
        let handles: Vec<_> = (0..outer)
            .map(|i| {
                let r = Arc::clone(&rt);
                let (now, max) = (now.clone(), max.clone());
                rt.spawn(move || {
                    r.submit(&IO, move || {
                        let n = now.fetch_add(1, SeqCst) + 1;
                        max.fetch_max(n, SeqCst);
                        std::hint::black_box((0..100u64).sum::<u64>());
                        now.fetch_sub(1, SeqCst);
                        i
                    })
                    .join()
                })
            })
            .collect();
        steps.at("joining the outer tasks");
        for (i, h) in handles.into_iter().enumerate() {
            assert_eq!(h.join(), Ok(Ok(i)));
        }
        let max = max.load(SeqCst);
        assert!(
            (1..=8).contains(&max),
            "{max} io tasks ran at once with a limit of 8"
        );
        drop_runtime(steps, rt);
    });
}

/// Capacity 1: the outer task holds the only token and submits a sticky task whose key lives
/// on the other worker, then joins it.
#[test]
#[cfg_attr(miri, ignore = "slow under miri")]
fn a_worker_submitting_a_sticky_task_homed_elsewhere_into_a_dry_ring_does_not_livelock() {
    const KEYED: Operation = Operation::new("keyed");
    watchdog(|steps| {
        let rt = ManuallyDrop::new(Arc::new(runtime(2, 1)));
        steps.at("finding each key's worker");
        let homes: Vec<usize> = (0..2u64)
            .map(|key| {
                rt.submit(&KEYED.sticky(key), tokengate::current_worker)
                    .join()
                    .unwrap()
                    .unwrap()
            })
            .collect();
        assert_ne!(homes[0], homes[1], "keys 0 and 1 share a worker");
        steps.at("a task submitting a sticky task homed on the other worker");
        let r = Arc::clone(&rt);
        let outer = rt.spawn(move || {
            let me = tokengate::current_worker().unwrap();
            let key = homes.iter().position(|&w| w != me).unwrap();
            let ran_on = r
                .submit(&KEYED.sticky(key as u64), tokengate::current_worker)
                .join();
            (ran_on, Some(homes[key]))
        });
        assert!(
            outer.wait_timeout(PROMPTLY),
            "livelock: a worker submitting a sticky task for the other worker into a dry ring"
        );
        let (ran_on, home) = outer.join().unwrap();
        assert_eq!(
            ran_on,
            Ok(home),
            "the sticky task did not run on its key's worker"
        );
        drop_runtime(steps, rt);
    });
}

/// Capacity 1: a task broadcasts; the run for the other worker needs a token.
#[test]
#[cfg_attr(miri, ignore = "slow under miri")]
fn a_worker_broadcasting_into_a_dry_ring_does_not_livelock() {
    watchdog(|steps| {
        let rt = ManuallyDrop::new(Arc::new(runtime(2, 1)));
        let r = Arc::clone(&rt);
        steps.at("a task broadcasting");
        let outer = rt.spawn(move || r.broadcast(|ctx| ctx.index()));
        assert!(
            outer.wait_timeout(PROMPTLY),
            "livelock: a worker broadcasting into a dry ring"
        );
        assert_eq!(outer.join(), Ok(vec![Ok(0), Ok(1)]));
        drop_runtime(steps, rt);
    });
}

// ---- B5 --------------------------------------------------------------------------------------

#[test]
#[cfg_attr(miri, ignore = "slow under miri")]
fn wait_timeout_with_duration_max_waits_until_the_task_finishes() {
    watchdog(|steps| {
        let rt = ManuallyDrop::new(runtime(1, 4));
        let h = rt.spawn(|| {
            thread::sleep(Duration::from_millis(50));
            3
        });
        steps.at("wait_timeout(Duration::MAX)");
        let finished = must_not_panic("wait_timeout(Duration::MAX)", || {
            h.wait_timeout(Duration::MAX)
        });
        assert!(finished, "wait_timeout(Duration::MAX) returned false");
        assert_eq!(h.join(), Ok(3));
        drop_runtime(steps, rt);
    });
}

// ---- B6: ids of another runtime --------------------------------------------------------------

/// The first task of two fresh runtimes had the same id (token index and generation): `kill`
/// on one runtime killed the other runtime's task.
#[test]
#[cfg_attr(miri, ignore = "slow under miri")]
fn kill_with_another_runtimes_id_spares_this_runtimes_task() {
    watchdog(|steps| {
        let a = ManuallyDrop::new(runtime(1, 4));
        let b = ManuallyDrop::new(runtime(1, 4));
        b.pause();
        let held_on_b = b.spawn(|| 2);
        let first_of_a = a.spawn(|| 1);
        let a_id = first_of_a.id();
        assert_eq!(first_of_a.join(), Ok(1));
        steps.at("b.kill(an id of a)");
        b.kill(a_id);
        b.resume();
        assert!(held_on_b.wait_timeout(PROMPTLY), "b's task never resolved");
        assert_eq!(
            held_on_b.join(),
            Ok(2),
            "b.kill(id of a task of a) killed b's own task"
        );
        drop_runtime(steps, a);
        drop_runtime(steps, b);
    });
}

/// Both runtimes hold a task; each is asked to kill the other's task: neither is touched.
#[test]
#[cfg_attr(miri, ignore = "slow under miri")]
fn kill_with_an_id_of_another_runtime_touches_neither_runtime() {
    watchdog(|steps| {
        let a = ManuallyDrop::new(runtime(1, 4));
        let b = ManuallyDrop::new(runtime(1, 4));
        a.pause();
        b.pause();
        let on_a = a.spawn(|| 1);
        let on_b = b.spawn(|| 2);
        steps.at("a.kill(id of b's task), b.kill(id of a's task)");
        a.kill(on_b.id());
        b.kill(on_a.id());
        a.resume();
        b.resume();
        assert!(on_a.wait_timeout(PROMPTLY) && on_b.wait_timeout(PROMPTLY));
        assert_eq!(
            on_a.join(),
            Ok(1),
            "a's task was killed by a kill of b's id"
        );
        assert_eq!(
            on_b.join(),
            Ok(2),
            "b's task was killed by a kill of a's id"
        );
        drop_runtime(steps, a);
        drop_runtime(steps, b);
    });
}

// ---- B7: past the 1,024-entry operation table --------------------------------------------------

/// Submits (and joins) a task of each of 1,024 fresh operation names: the table is full after.
fn fill_operation_table(rt: &Runtime, prefix: &str) {
    let handles: Vec<_> = (0..1_024)
        .map(|i| {
            let name: &'static str = Box::leak(format!("{prefix}_{i}").into_boxed_str());
            rt.submit(&Operation::new(name), || ())
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
}

#[test]
#[cfg_attr(miri, ignore = "slow under miri")]
fn resume_operation_lifts_a_pause_of_an_operation_beyond_the_table() {
    const LATE: Operation = Operation::new("late");
    watchdog(|steps| {
        let rt = ManuallyDrop::new(runtime(2, 64));
        steps.at("filling the operation table");
        fill_operation_table(&rt, "resume_fill");
        steps.at("pause_operation(late), resume_operation(late)");
        rt.pause_operation("late");
        rt.resume_operation("late");
        let new = rt.submit(&Operation::new("never_seen_before"), || 1);
        let late = rt.submit(&LATE, || 2);
        assert!(
            new.wait_timeout(PROMPTLY),
            "a task of a never-seen operation is held forever after pause_operation(\"late\") \
             and resume_operation(\"late\")"
        );
        assert!(
            late.wait_timeout(PROMPTLY),
            "a task of \"late\" is held forever after resume_operation(\"late\")"
        );
        assert_eq!((new.join(), late.join()), (Ok(1), Ok(2)));
        drop_runtime(steps, rt);
    });
}

/// Two tasks of an unlimited operation beyond the table meet at a rendezvous: with the limit
/// of another overflow operation applied to them, one at a time ran and they never met.
#[test]
#[cfg_attr(miri, ignore = "slow under miri")]
fn a_limit_on_one_operation_beyond_the_table_does_not_limit_another() {
    const LIMITED: Operation = Operation::new("limited_late").concurrency_limit(1);
    const FREE: Operation = Operation::new("free_late");
    watchdog(|steps| {
        let rt = ManuallyDrop::new(runtime(2, 64));
        steps.at("filling the operation table");
        fill_operation_table(&rt, "limit_fill");
        assert_eq!(rt.submit(&LIMITED, || 0).join(), Ok(0));
        steps.at("two unlimited tasks meeting");
        let met = Arc::new((Mutex::new(0usize), Condvar::new()));
        let meet = move || {
            let (count, cv) = &*met;
            let mut n = count.lock().unwrap();
            *n += 1;
            cv.notify_all();
            let wait = Duration::from_secs(5);
            let (n, _) = cv.wait_timeout_while(n, wait, |n| *n < 2).unwrap();
            *n >= 2
        };
        let m = meet.clone();
        let first = rt.submit(&FREE, m);
        let second = rt.submit(&FREE, meet);
        assert_eq!(
            (first.join(), second.join()),
            (Ok(true), Ok(true)),
            "two tasks of an unlimited operation could not run at once: the limit of another \
             operation beyond the table applied to them"
        );
        drop_runtime(steps, rt);
    });
}

/// Decided: an operation beyond the table reports the shared overflow entry.
#[test]
#[cfg_attr(miri, ignore = "slow under miri")]
fn operation_stats_sees_an_operation_beyond_the_table() {
    const LATE: Operation = Operation::new("late");
    watchdog(|steps| {
        let rt = ManuallyDrop::new(runtime(2, 64));
        steps.at("filling the operation table");
        fill_operation_table(&rt, "stats_fill");
        assert_eq!(rt.submit(&LATE, || 1).join(), Ok(1));
        assert_eq!(rt.submit(&LATE, || 2).join(), Ok(2));
        let stats = rt
            .operation_stats("late")
            .expect("operation_stats(\"late\") is None after tasks of \"late\" ran");
        assert!(stats.completed >= 2, "{stats:?}");
        drop_runtime(steps, rt);
    });
}

#[test]
#[cfg_attr(miri, ignore = "slow under miri")]
fn kill_operation_kills_held_tasks_of_an_operation_beyond_the_table() {
    const LATE: Operation = Operation::new("late");
    watchdog(|steps| {
        let rt = ManuallyDrop::new(runtime(2, 64));
        steps.at("filling the operation table");
        fill_operation_table(&rt, "kill_fill");
        steps.at("pause, submit, kill, resume");
        rt.pause_operation("late");
        let held = rt.submit(&LATE, || 1);
        rt.kill_operation("late");
        rt.resume_operation("late");
        assert!(
            held.wait_timeout(PROMPTLY),
            "a held task of \"late\" was neither killed by kill_operation nor released by \
             resume_operation"
        );
        assert_eq!(held.join(), Err(TaskError::Killed));
        drop_runtime(steps, rt);
    });
}

// ---- B8 --------------------------------------------------------------------------------------

/// One worker, capacity 1: the outer task holds the only token, so its submission runs in
/// place; its deadline (zero) has passed by then, so it must time out and never run.
#[test]
#[cfg_attr(miri, ignore = "slow under miri")]
fn a_task_run_in_place_on_a_dry_ring_still_honours_its_deadline() {
    const NOW_OR_NEVER: Operation = Operation::new("now_or_never").deadline(Duration::ZERO);
    watchdog(|steps| {
        let rt = ManuallyDrop::new(Arc::new(runtime(1, 1)));
        let ran = Arc::new(AtomicBool::new(false));
        let (r, ran2) = (Arc::clone(&rt), ran.clone());
        steps.at("a task submitting a deadline(0) task into a dry ring");
        let outer = rt.spawn(move || {
            r.submit(&NOW_OR_NEVER, move || ran2.store(true, SeqCst))
                .join()
        });
        assert_eq!(
            outer.join(),
            Ok(Err(TaskError::TimedOut)),
            "a task run in place past its deadline did not time out"
        );
        assert!(!ran.load(SeqCst), "a task past its deadline ran");
        drop_runtime(steps, rt);
    });
}

// ---- B9: joins across runtimes -----------------------------------------------------------------

/// rayon-core's `mutual_install`, ported: each runtime's worker blocks on work of the other.
#[test]
#[cfg_attr(miri, ignore = "slow under miri")]
fn nested_scopes_across_two_runtimes_do_not_deadlock() {
    watchdog(|steps| {
        let a = ManuallyDrop::new(runtime(1, 8));
        let b = ManuallyDrop::new(runtime(1, 8));
        steps.at("a.scope → b.scope → a.scope");
        let (ra, rb): (&Runtime, &Runtime) = (&a, &b);
        let got = ra.scope(|s| {
            s.spawn(|| rb.scope(|s| s.spawn(|| ra.scope(|s| s.spawn(|| 7).join())).join()))
                .join()
        });
        assert_eq!(got, Ok(Ok(Ok(7))));
        drop_runtime(steps, a);
        drop_runtime(steps, b);
    });
}

/// rayon-core's `broadcast_mutual`, ported: a task of `a` broadcasts on `b`, whose runs
/// broadcast on `a`.
#[test]
#[cfg_attr(miri, ignore = "slow under miri")]
fn nested_broadcasts_across_two_runtimes_do_not_deadlock() {
    watchdog(|steps| {
        let a = ManuallyDrop::new(Arc::new(runtime(2, 8)));
        let b = ManuallyDrop::new(Arc::new(runtime(2, 8)));
        let count = Arc::new(AtomicUsize::new(0));
        let (a2, b2, c) = (Arc::clone(&a), Arc::clone(&b), count.clone());
        steps.at("a task of a: b.broadcast(a.broadcast(..))");
        let outer =
            a.spawn(move || b2.broadcast(|_| a2.broadcast(|_| c.fetch_add(1, SeqCst)).len()));
        assert!(
            outer.wait_timeout(PROMPTLY),
            "deadlock: broadcasts nested across two runtimes"
        );
        let runs = outer.join().unwrap();
        assert_eq!(runs, vec![Ok(2), Ok(2)]);
        assert_eq!(count.load(SeqCst), 4);
        drop_runtime(steps, a);
        drop_runtime(steps, b);
    });
}

/// A task of `a` joins a task of `b` that joins a task of `a`: plain handles.
#[test]
#[cfg_attr(miri, ignore = "slow under miri")]
fn joins_across_two_runtimes_do_not_deadlock() {
    watchdog(|steps| {
        let a = ManuallyDrop::new(Arc::new(runtime(1, 8)));
        let b = ManuallyDrop::new(Arc::new(runtime(1, 8)));
        let (a2, b2) = (Arc::clone(&a), Arc::clone(&b));
        steps.at("a task of a joining b joining a");
        let outer = a.spawn(move || b2.spawn(move || a2.spawn(|| 5).join()).join());
        assert!(
            outer.wait_timeout(PROMPTLY),
            "deadlock: joins across two runtimes"
        );
        assert_eq!(outer.join(), Ok(Ok(Ok(5))));
        drop_runtime(steps, a);
        drop_runtime(steps, b);
    });
}

// ---- B10 -------------------------------------------------------------------------------------

/// Decided: a broadcast run waits until its worker has run what was queued on it before.
#[test]
#[cfg_attr(miri, ignore = "slow under miri")]
fn a_broadcast_runs_after_what_its_worker_had_queued_before_it() {
    watchdog(|steps| {
        let rt = ManuallyDrop::new(Arc::new(runtime(1, 8)));
        let log: Arc<Mutex<Vec<&'static str>>> = Arc::default();
        let (release, held) = hold_worker(&rt, &GATE);
        let l = log.clone();
        let queued = rt.spawn(move || l.lock().unwrap().push("T"));
        steps.at("broadcast from another thread");
        let (r, l) = (Arc::clone(&rt), log.clone());
        let broadcaster = thread::spawn(move || r.broadcast(|_| l.lock().unwrap().push("B")));
        // Wait until the broadcast run is queued (its token taken, or seen in a queue), then a
        // little longer: its place in the worker's queues is what this test is about.
        common::eventually(Duration::from_secs(2), || {
            let stats = rt.stats();
            let w = &stats.workers[0];
            stats.tokens_in_use >= 3 || w.lane_depth.iter().sum::<usize>() + w.home_depth >= 2
        });
        thread::sleep(Duration::from_millis(50));
        release.open();
        held.join().unwrap();
        queued.join().unwrap();
        steps.at("waiting for the broadcast");
        assert_eq!(broadcaster.join().unwrap(), vec![Ok(())]);
        assert_eq!(
            *log.lock().unwrap(),
            ["T", "B"],
            "the broadcast overtook a task queued on its worker before it"
        );
        drop_runtime(steps, rt);
    });
}

// ---- B11 -------------------------------------------------------------------------------------

/// An executor's waker that unparks its thread at once, then does slow work of its own (takes
/// a lock, logs): the worker finishing the task runs it.
struct SlowWaker(thread::Thread);

impl std::task::Wake for SlowWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
        thread::sleep(Duration::from_millis(20));
    }
}

/// Capacity 1: once the joiner has the outcome (woken as a future, or back from `join`), the
/// token is home, so `try_spawn` is never `Full`. The worker gave the token back only after
/// waking the joiner: with a waker like [`SlowWaker`] the awakened joiner always found every
/// token out; with plain joins, now and then.
#[test]
#[cfg_attr(miri, ignore = "slow under miri")]
fn the_token_is_home_before_the_joiner_wakes() {
    use std::future::Future;
    use std::pin::Pin;
    use std::task::{Context, Poll, Waker};

    // The waker rounds above reproduce the bug every time; the plain rounds only now and
    // then, and each costs a park and an unpark on a loaded machine: a few thousand keep the
    // test well inside its watchdog under CI's load.
    let rounds = 5_000;
    watchdog(move |steps| {
        let rt = ManuallyDrop::new(runtime(1, 1));
        // Whether `try_spawn` found every token out (a task it admits is joined).
        let full = |rt: &Runtime| match rt.try_spawn(|| ()) {
            Ok(h) => {
                h.join().unwrap();
                false
            }
            Err(TrySubmitError::Full(_)) => true,
            Err(e) => panic!("try_spawn refused: {e:?}"),
        };

        steps.at("awaiting handles with a slow waker, then try_spawn");
        let waker = Waker::from(Arc::new(SlowWaker(thread::current())));
        let mut cx = Context::from_waker(&waker);
        let mut full_after_wake = 0;
        for _ in 0..20 {
            let gate = Gate::default();
            let g = gate.clone();
            let mut h = rt.spawn(move || {
                g.wait();
            });
            assert!(Pin::new(&mut h).poll(&mut cx).is_pending()); // the waker is registered
            gate.open();
            loop {
                match Pin::new(&mut h).poll(&mut cx) {
                    Poll::Ready(outcome) => break outcome.unwrap(),
                    Poll::Pending => thread::park(),
                }
            }
            full_after_wake += full(&rt) as usize;
        }

        steps.at("spawn, join, try_spawn");
        let mut full_after_join = 0;
        for _ in 0..rounds {
            rt.spawn(|| ()).join().unwrap();
            full_after_join += full(&rt) as usize;
        }
        assert_eq!(
            (full_after_wake, full_after_join),
            (0, 0),
            "try_spawn right after the joiner got the outcome found every token out: \
             {full_after_wake} times in 20 after a waker's wake-up, {full_after_join} times in \
             {rounds} after a join"
        );
        drop_runtime(steps, rt);
    });
}

// ---- Q3: endless retry loops can be stopped ----------------------------------------------------

const FOREVER: Operation = Operation::new("x").retries(u32::MAX);

/// Submits a task of [`FOREVER`] that always panics (until `stop`), and waits until it has
/// failed twice: it is running, in its retry loop.
fn endless_retries(rt: &Runtime, stop: &Arc<AtomicBool>) -> TaskHandle<u32> {
    let attempts = Arc::new(AtomicUsize::new(0));
    let (a, stop) = (attempts.clone(), stop.clone());
    let h = rt.submit_retrying(&FOREVER, move || {
        let n = a.fetch_add(1, SeqCst);
        if stop.load(SeqCst) {
            return 0; // the test gave up: let the worker go
        }
        thread::sleep(Duration::from_micros(200));
        panic!("planned failure, attempt {n}");
    });
    assert!(
        common::eventually(PROMPTLY, || attempts.load(SeqCst) >= 2),
        "the retrying task never ran"
    );
    h
}

/// The outcome a stopped retry loop gives: the last attempt's panic.
fn assert_last_attempt_panicked(h: TaskHandle<u32>, after: &str) {
    assert!(
        h.wait_timeout(PROMPTLY),
        "the retry loop went on after {after}"
    );
    match h.join() {
        Err(TaskError::Panicked(p)) => assert!(p.message().starts_with("planned failure")),
        other => panic!("after {after}: expected the last attempt's panic, got {other:?}"),
    }
}

/// Runs `stop_it` against a task retrying forever; the loop must stop between attempts.
fn retry_loop_stops(
    after: &'static str,
    auto_block: bool,
    stop_it: impl FnOnce(&Runtime, &TaskHandle<u32>) + Send + 'static,
) {
    quiet();
    let stop = Arc::new(AtomicBool::new(false));
    let _stop_on_exit = SetOnDrop(stop.clone());
    watchdog(move |steps| {
        let rt = ManuallyDrop::new(
            Runtime::builder()
                .workers(1)
                .pin(false)
                .capacity(4)
                .auto_block(auto_block)
                .build()
                .unwrap(),
        );
        steps.at("starting the endless retry loop");
        let h = endless_retries(&rt, &stop);
        steps.at(after);
        stop_it(&rt, &h);
        steps.at("waiting for the retry loop to stop");
        assert_last_attempt_panicked(h, after);
        drop_runtime(steps, rt);
    });
}

#[test]
#[cfg_attr(miri, ignore = "slow under miri")]
fn cancel_stops_an_endless_retry_loop() {
    retry_loop_stops("cancel", false, |_, h| {
        assert!(!h.cancel(), "cancel of a running task returned true");
    });
}

#[test]
#[cfg_attr(miri, ignore = "slow under miri")]
fn kill_stops_an_endless_retry_loop() {
    retry_loop_stops("kill(id)", false, |rt, h| rt.kill(h.id()));
}

#[test]
#[cfg_attr(miri, ignore = "slow under miri")]
fn kill_operation_stops_an_endless_retry_loop() {
    retry_loop_stops("kill_operation", false, |rt, _| rt.kill_operation("x"));
}

#[test]
#[cfg_attr(miri, ignore = "slow under miri")]
fn drain_operation_stops_an_endless_retry_loop() {
    retry_loop_stops("drain_operation", false, |rt, _| rt.drain_operation("x"));
}

#[test]
#[cfg_attr(miri, ignore = "slow under miri")]
fn shutdown_now_stops_an_endless_retry_loop() {
    retry_loop_stops("shutdown_now", false, |rt, _| rt.shutdown_now());
}

/// With auto-block on, the operation blocks after 10 attempts of which more than 90 % failed;
/// the loop stops there.
#[test]
#[cfg_attr(miri, ignore = "slow under miri")]
fn auto_block_stops_an_endless_retry_loop() {
    retry_loop_stops("the operation got blocked", true, |_, _| {});
}

// ---- Q4: held tasks keep their tokens (documented) -------------------------------------------

/// Decided: held tasks keep their tokens. Since then bounded by `Builder::max_held` (default:
/// half the capacity, `tests/reliability.rs`); a runtime that lets pauses hold every token
/// (`max_held(capacity)`) refuses other operations at capacity (`try_submit`) until the
/// paused one resumes.
#[test]
#[cfg_attr(miri, ignore = "slow under miri")]
fn held_tasks_keep_their_tokens_until_their_operation_resumes() {
    const X: Operation = Operation::new("x");
    const OTHER: Operation = Operation::new("other");
    watchdog(|steps| {
        let rt = ManuallyDrop::new(
            Runtime::builder()
                .workers(2)
                .pin(false)
                .capacity(4)
                .max_held(4)
                .build()
                .unwrap(),
        );
        rt.pause_operation("x");
        let held: Vec<_> = (0..4).map(|i| rt.submit(&X, move || i)).collect();
        steps.at("try_submit of another operation at capacity");
        match rt.try_submit(&OTHER, || 5) {
            Err(TrySubmitError::Full(f)) => assert_eq!(f(), 5),
            other => panic!("expected Full while held tasks keep every token, got {other:?}"),
        }
        rt.resume_operation("x");
        steps.at("joining the released tasks");
        let got: Vec<_> = held.into_iter().map(|h| h.join()).collect();
        assert_eq!(got, vec![Ok(0), Ok(1), Ok(2), Ok(3)]);
        assert_eq!(rt.submit(&OTHER, || 5).join(), Ok(5));
        drop_runtime(steps, rt);
    });
}

// ---- Q6: fork ----------------------------------------------------------------------------------

/// After `fork`, the child has none of the parent's worker threads: `global()` refuses in
/// words (a panic mentioning fork) instead of handing out a runtime whose joins hang.
#[test]
#[cfg(target_os = "linux")]
#[cfg_attr(miri, ignore = "fork is not supported under miri")]
fn global_runtime_refuses_in_words_after_fork() {
    extern "C" {
        fn fork() -> i32;
        fn waitpid(pid: i32, status: *mut i32, options: i32) -> i32;
        fn _exit(code: i32) -> !;
        fn alarm(seconds: u32) -> u32;
        fn signal(signum: i32, handler: usize) -> usize;
    }
    const SIGALRM: i32 = 14;
    /// The child's watchdog: exit code 2 means "hung".
    extern "C" fn on_alarm(_: i32) {
        // SAFETY: `_exit` is async-signal-safe.
        unsafe { _exit(2) }
    }

    quiet();
    assert_eq!(tokengate::global().spawn(|| 1).join(), Ok(1));
    // SAFETY: the child only calls the code under test, then `_exit`s.
    let pid = unsafe { fork() };
    assert!(pid >= 0, "fork failed");
    if pid == 0 {
        // SAFETY: installs a handler that only calls `_exit`; arms the child's watchdog.
        unsafe {
            signal(SIGALRM, on_alarm as extern "C" fn(i32) as usize);
            alarm(10);
        }
        let outcome = catch_unwind(|| tokengate::global().spawn(|| 2).join());
        let code = match outcome {
            Err(p) if message(&*p).contains("fork") => 0,
            Err(_) => 3, // refused, but not in words about fork
            Ok(_) => 1,  // served by a runtime without workers
        };
        // SAFETY: ends the child without running the parent's exit handlers.
        unsafe { _exit(code) }
    }
    let mut status = 0;
    // SAFETY: waits for our own child.
    let waited = unsafe { waitpid(pid, &mut status, 0) };
    assert_eq!(waited, pid, "waitpid failed");
    let (signalled, code) = (status & 0x7f, (status >> 8) & 0xff);
    let what = match (signalled, code) {
        (0, 0) => return,
        (0, 1) => "global() in the child handed out a runtime and a join returned".to_string(),
        (0, 2) => "global() in the child hung (no worker threads after fork)".to_string(),
        (0, 3) => "global() in the child panicked without mentioning fork".to_string(),
        (0, c) => format!("the child exited with {c}"),
        (s, _) => format!("the child was killed by signal {s}"),
    };
    panic!("{what}");
}

// ---- Q7: a user operation named like the overflow entry ----------------------------------------

/// A user operation named exactly like the overflow entry, `(other operations)`, beside the
/// real overflow entry (the table full): the Prometheus text had two series for each metric.
#[test]
#[cfg_attr(miri, ignore = "slow under miri")]
fn an_operation_named_like_the_overflow_entry_yields_no_duplicate_series() {
    const IMPOSTOR: Operation = Operation::new("(other operations)");
    watchdog(|steps| {
        let rt = ManuallyDrop::new(runtime(2, 64));
        steps.at("tasks of \"(other operations)\"");
        for i in 0..3 {
            assert_eq!(rt.submit(&IMPOSTOR, move || i).join(), Ok(i));
        }
        steps.at("filling the operation table, then one beyond");
        fill_operation_table(&rt, "q7_fill");
        assert_eq!(rt.submit(&Operation::new("beyond"), || 1).join(), Ok(1));
        let text = rt.prometheus_text();
        let mut seen = std::collections::HashSet::new();
        let mut duplicates = Vec::new();
        for line in text.lines() {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // `name{labels} value`: the series is everything before the last space (label
            // values may contain spaces).
            let (series, _value) = line.rsplit_once(' ').expect("a sample line has a value");
            if !seen.insert(series.to_string()) {
                duplicates.push(series.to_string());
            }
        }
        assert!(
            duplicates.is_empty(),
            "duplicate series in the Prometheus text: {duplicates:#?}"
        );
        drop_runtime(steps, rt);
    });
}

// ---- Q2: deep nesting and the worker stack size -------------------------------------------------

/// Uses `Builder::stack_size`, added by the fix of Q2 (this module does not compile before).
mod q2_stack_size {
    use super::*;

    fn nest(rt: &Arc<Runtime>, depth: usize) -> usize {
        if depth == 0 {
            return 0;
        }
        let r = Arc::clone(rt);
        rt.spawn(move || nest(&r, depth - 1)).join().unwrap() + 1
    }

    /// 10,000 levels of submit + join, each level's join running the next one inline on the
    /// one worker's stack. Measured in a debug test build: about 2.2 KB of stack per level
    /// while tokens last (a join running the task inline), about 4 KB per level once the ring
    /// is dry (the task run in place by `submit`); so 10,000 levels need under 40 MiB. 512 MiB
    /// leaves a wide margin (virtual memory: only the pages the recursion reaches are used).
    #[test]
    #[cfg_attr(miri, ignore = "far too deep for miri")]
    fn ten_thousand_nested_submit_join_levels_fit_in_a_large_worker_stack() {
        let levels = 10_000;
        watchdog(move |steps| {
            let rt = ManuallyDrop::new(Arc::new(
                Runtime::builder()
                    .workers(1)
                    .pin(false)
                    .stack_size(512 << 20)
                    .build()
                    .unwrap(),
            ));
            steps.at("nesting");
            let r = Arc::clone(&rt);
            assert_eq!(rt.spawn(move || nest(&r, levels)).join(), Ok(levels));
            drop_runtime(steps, rt);
        });
    }

    #[test]
    fn a_stack_size_below_64_kib_is_refused_in_words() {
        let err = Runtime::builder()
            .workers(1)
            .pin(false)
            .stack_size(1024)
            .build()
            .unwrap_err();
        assert!(
            err.to_string().contains("stack_size"),
            "the error does not say what to change: {err}"
        );
    }
}
