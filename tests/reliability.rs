//! Regression tests of the reliability round (issue 21): sticky tasks that join across workers
//! and keys, sticky order under a plain joiner, shutdown and drain of one runtime from a
//! worker of another, a `submit_batch` iterator that panics, and a paused operation that
//! must not stop the others.
//!
//! Each test could hang on the code it guards, so each runs under the watchdog of
//! `tests/common` and fails with "hung: ..." instead. With two workers and `Routing::Spread`,
//! keys 0 and 2 live on worker 0, keys 1 and 3 on worker 1.

mod common;

use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use common::{watchdog, Steps, PROMPTLY};
use tokengate::{Operation, Runtime, TaskError, TrySubmitError};

const KEYED: Operation = Operation::new("keyed");

fn runtime(workers: usize, capacity: usize) -> Arc<Runtime> {
    Arc::new(common::runtime_with_capacity(workers, capacity))
}

/// Drops a runtime kept in a `ManuallyDrop` (a failed assertion before this point leaks it
/// instead of hanging in its `Drop`).
fn drop_runtime<R>(steps: &Steps, rt: ManuallyDrop<R>) {
    steps.at("drop(rt)");
    drop(ManuallyDrop::into_inner(rt));
}

#[test]
fn smoke() {
    watchdog(|steps| {
        let rt = ManuallyDrop::new(runtime(2, 64));
        steps.at("a sticky task joining a sticky task of another key");
        let r = Arc::clone(&rt);
        let h = rt.submit(&KEYED.sticky(0), move || {
            r.submit(&KEYED.sticky(1), || 1).join().unwrap() + 1
        });
        assert_eq!(h.join(), Ok(2));
        drop_runtime(steps, rt);
    });
}

// ---- point 1: sticky tasks that join across workers ----------------------------------------

/// Two sticky tasks run at once, one on each worker; each submits a sticky task of another key
/// homed on the *other* worker and joins it. Before the fix a worker running a sticky task
/// ran no sticky task of any key while it helped: both joins waited forever.
#[test]
fn sticky_tasks_on_both_workers_joining_each_others_keys_do_not_deadlock() {
    watchdog(|steps| {
        let rt = ManuallyDrop::new(runtime(2, 1024));
        let barrier = Arc::new(Barrier::new(2));
        let spawn = |key: u64, other: u64| {
            let (r, b) = (Arc::clone(&rt), Arc::clone(&barrier));
            rt.submit(&KEYED.sticky(key), move || {
                b.wait(); // both outer tasks are running now
                r.submit(&KEYED.sticky(other), move || other).join()
            })
        };
        steps.at("keys 0 and 1, each joining a task of key 3 / 2 on the other worker");
        let h0 = spawn(0, 3);
        let h1 = spawn(1, 2);
        assert_eq!(h0.join(), Ok(Ok(3)));
        assert_eq!(h1.join(), Ok(Ok(2)));
        drop_runtime(steps, rt);
    });
}

/// A sticky task (key 0, worker 0) spawns a plain task X and joins it once worker 1 has stolen
/// it; X submits a sticky task of key 2 (home: worker 0) and joins it. Worker 0 helps while it
/// waits for X, and must run key 2's task although key 0's runs beneath.
#[test]
fn a_stolen_task_joining_a_sticky_task_homed_under_a_waiting_sticky_task_does_not_deadlock() {
    watchdog(|steps| {
        let rt = ManuallyDrop::new(runtime(2, 1024));
        let r = Arc::clone(&rt);
        steps.at("key 0 waits for X on worker 1, which joins a task of key 2");
        let h = rt.submit(&KEYED.sticky(0), move || {
            let (started_tx, started) = mpsc::channel();
            let r2 = Arc::clone(&r);
            let x = r.spawn(move || {
                started_tx.send(tokengate::current_worker()).unwrap();
                r2.submit(&KEYED.sticky(2), tokengate::current_worker)
                    .join()
                    .unwrap()
            });
            // Worker 0 does not help while it waits here: only worker 1 can start X.
            let x_ran_on = started.recv_timeout(PROMPTLY).expect("X was never stolen");
            (x_ran_on, x.join().unwrap())
        });
        let (x_ran_on, key_2_ran_on) = h.join().unwrap();
        assert_eq!(x_ran_on, Some(1), "X should have been stolen by worker 1");
        assert_eq!(key_2_ran_on, Some(0), "key 2 runs on its home worker");
        drop_runtime(steps, rt);
    });
}

/// The same with one key: X joins a task of key 0 while key 0's first task waits for X. The
/// key's order and progress conflict; progress wins (documented on `Operation::sticky`): the
/// second task of key 0 runs nested on worker 0 while the first is suspended in its join.
#[test]
fn a_stolen_task_joining_the_next_task_of_the_key_waiting_for_it_does_not_deadlock() {
    watchdog(|steps| {
        let rt = ManuallyDrop::new(runtime(2, 1024));
        let r = Arc::clone(&rt);
        steps.at("key 0 waits for X on worker 1, which joins the next task of key 0");
        let h = rt.submit(&KEYED.sticky(0), move || {
            let (started_tx, started) = mpsc::channel();
            let r2 = Arc::clone(&r);
            let x = r.spawn(move || {
                started_tx.send(()).unwrap();
                r2.submit(&KEYED.sticky(0), tokengate::current_worker)
                    .join()
                    .unwrap()
            });
            started.recv_timeout(PROMPTLY).expect("X was never stolen");
            x.join().unwrap()
        });
        assert_eq!(h.join(), Ok(Some(0)));
        drop_runtime(steps, rt);
    });
}

/// A binary tree of sticky tasks, every node of its own key, each joining its two children.
fn sticky_tree(rt: &Arc<Runtime>, depth: u32, key: u64) -> u64 {
    if depth == 0 {
        return 1;
    }
    let child = |k: u64| {
        let r = Arc::clone(rt);
        rt.submit(&KEYED.sticky(k), move || sticky_tree(&r, depth - 1, k))
    };
    let (a, b) = (child(2 * key + 1), child(2 * key + 2));
    a.join().unwrap() + b.join().unwrap()
}

#[test]
fn a_recursive_tree_of_sticky_tasks_of_different_keys_completes() {
    watchdog(|steps| {
        for capacity in [2, 1024] {
            steps.at(if capacity == 2 {
                "a sticky tree, capacity 2"
            } else {
                "a sticky tree, capacity 1024"
            });
            let rt = ManuallyDrop::new(runtime(2, capacity));
            let r = Arc::clone(&rt);
            let h = rt.submit(&KEYED.sticky(0), move || sticky_tree(&r, 7, 0));
            assert_eq!(h.join(), Ok(1 << 7));
            drop_runtime(steps, rt);
        }
    });
}

// ---- point 3: sticky order under a plain joiner ------------------------------------------------

/// The order in which tasks ran: each task made by [`push`](OrderLog::push) adds its name.
#[derive(Clone, Default)]
struct OrderLog(Arc<Mutex<Vec<&'static str>>>);

impl OrderLog {
    /// A task that adds `name` to the log.
    fn push(&self, name: &'static str) -> impl FnOnce() + Send + 'static {
        let log = Arc::clone(&self.0);
        move || log.lock().unwrap().push(name)
    }

    fn order(&self) -> Vec<&'static str> {
        self.0.lock().unwrap().clone()
    }
}

/// On one worker, inside a plain task: A then B of key 7 are submitted, B is joined first.
/// Before the fix the join ran B inline ahead of A (`["B", "A"]`).
#[test]
fn a_plain_task_joining_the_later_of_two_sticky_tasks_keeps_their_order() {
    watchdog(|steps| {
        let rt = ManuallyDrop::new(runtime(1, 64));
        let r = Arc::clone(&rt);
        steps.at("a plain task joins B before A");
        let order = rt.spawn(move || {
            let log = OrderLog::default();
            let a = r.submit(&KEYED.sticky(7), log.push("A"));
            let b = r.submit(&KEYED.sticky(7), log.push("B"));
            b.join().unwrap();
            a.join().unwrap();
            log.order()
        });
        assert_eq!(order.join(), Ok(vec!["A", "B"]));
        drop_runtime(steps, rt);
    });
}

/// The same from a sticky task of the same key (before the fix: inline, out of order, and the
/// documented exception).
#[test]
fn a_sticky_task_joining_later_tasks_of_its_own_key_keeps_their_order() {
    watchdog(|steps| {
        let rt = ManuallyDrop::new(runtime(1, 64));
        let r = Arc::clone(&rt);
        steps.at("a task of key 7 joins C, then B, then A");
        let order = rt.submit(&KEYED.sticky(7), move || {
            let log = OrderLog::default();
            let a = r.submit(&KEYED.sticky(7), log.push("A"));
            let b = r.submit(&KEYED.sticky(7), log.push("B"));
            let c = r.submit(&KEYED.sticky(7), log.push("C"));
            c.join().unwrap();
            b.join().unwrap();
            a.join().unwrap();
            log.order()
        });
        assert_eq!(order.join(), Ok(vec!["A", "B", "C"]));
        drop_runtime(steps, rt);
    });
}

/// `wait_timeout` of a later task of its own key, on the home worker: only this worker may run
/// it, so the wait must help (before the fix it slept the whole timeout and said `false`).
#[test]
fn wait_timeout_of_a_sticky_task_on_its_home_worker_helps_until_it_ran() {
    watchdog(|steps| {
        let rt = ManuallyDrop::new(runtime(1, 64));
        let r = Arc::clone(&rt);
        steps.at("a task of key 7 waits with a timeout for the next task of key 7");
        let h = rt.submit(&KEYED.sticky(7), move || {
            let b = r.submit(&KEYED.sticky(7), || 5);
            (b.wait_timeout(PROMPTLY), b.join())
        });
        assert_eq!(h.join(), Ok((true, Ok(5))));
        drop_runtime(steps, rt);
    });
}

/// Capacity 2: A (key 7) holds one token, B (key 7) the other and queues; C (key 7) meets a
/// dry ring on its home worker. Before the fix C ran in place at once, ahead of B.
#[test]
fn a_sticky_task_submitted_into_a_dry_ring_on_its_home_runs_after_the_earlier_ones() {
    watchdog(|steps| {
        let rt = ManuallyDrop::new(runtime(1, 2));
        let r = Arc::clone(&rt);
        steps.at("B queued, C into a dry ring, both of key 7, on their home worker");
        let order = rt.submit(&KEYED.sticky(7), move || {
            let log = OrderLog::default();
            let b = r.submit(&KEYED.sticky(7), log.push("B"));
            let c = r.submit(&KEYED.sticky(7), log.push("C"));
            b.join().unwrap();
            c.join().unwrap();
            log.order()
        });
        assert_eq!(order.join(), Ok(vec!["B", "C"]));
        drop_runtime(steps, rt);
    });
}

// ---- point 2: shutting down one runtime from a worker of another -------------------------------

/// Runtime B has one worker. A task on it queues task Y on B (nobody else can run it), has a
/// task X of runtime A join Y, then stops A (`how`) while X waits. Before the fix the shutdown
/// parked B's only worker: X waited for Y, Y for that worker, the shutdown for X.
fn stop_a_from_bs_worker(steps: &Steps, how: &'static str, stop: fn(Arc<Runtime>)) {
    let a = runtime(1, 64);
    let b = ManuallyDrop::new(runtime(1, 64));
    let rb = Arc::clone(&b);
    steps.at(how);
    let h = b.spawn(move || {
        let (started_tx, started) = mpsc::channel();
        let y = rb.spawn(|| 7);
        let x = a.spawn(move || {
            started_tx.send(()).unwrap();
            y.join()
        });
        started.recv_timeout(PROMPTLY).unwrap(); // running: the shutdown waits for it
        stop(a);
        x.join()
    });
    assert_eq!(h.join(), Ok(Ok(Ok(7))));
    drop_runtime(steps, b);
}

#[test]
fn shutting_down_a_runtime_from_a_worker_of_another_keeps_serving_it() {
    watchdog(|steps| {
        stop_a_from_bs_worker(steps, "A.shutdown() on B's worker", |a| a.shutdown());
        stop_a_from_bs_worker(steps, "A.shutdown_now() on B's worker", |a| {
            a.shutdown_now()
        });
        stop_a_from_bs_worker(steps, "drop(A) on B's worker", drop);
    });
}

#[test]
fn draining_an_operation_from_a_worker_of_another_runtime_keeps_serving_it() {
    watchdog(|steps| {
        const DRAINED: Operation = Operation::new("drained");
        let a = ManuallyDrop::new(runtime(1, 64));
        let b = ManuallyDrop::new(runtime(1, 64));
        let (ra, rb) = (Arc::clone(&a), Arc::clone(&b));
        steps.at("A.drain_operation() on B's worker while A's task waits for B's");
        let h = b.spawn(move || {
            let (started_tx, started) = mpsc::channel();
            let y = rb.spawn(|| 7);
            let x = ra.submit(&DRAINED, move || {
                started_tx.send(()).unwrap();
                y.join()
            });
            started.recv_timeout(PROMPTLY).unwrap(); // running: the drain waits for it
            ra.drain_operation("drained");
            x.join()
        });
        assert_eq!(h.join(), Ok(Ok(Ok(7))));
        drop_runtime(steps, b);
        drop_runtime(steps, a);
    });
}

/// B is busy; task 1 on A shuts B down, and while it waits it helps A, which runs task 2, which
/// shuts B down too, nested on the same thread. Before the fix the outer call held the lock of
/// B's threads across its wait, and the nested call waited for that lock for ever.
#[test]
fn a_shutdown_nested_in_the_help_of_a_shutdown_of_the_same_runtime_returns() {
    watchdog(|steps| {
        let a = ManuallyDrop::new(runtime(1, 64));
        let b = runtime(1, 64);
        let (busy_tx, busy) = mpsc::channel();
        let _busy = b.spawn(move || {
            busy_tx.send(()).unwrap();
            std::thread::sleep(Duration::from_millis(100));
        });
        busy.recv_timeout(PROMPTLY).unwrap();
        let (go_tx, go) = mpsc::channel::<()>();
        let b1 = Arc::clone(&b);
        steps.at("two tasks of A shut B down, the second nested in the first's wait");
        let first = a.spawn(move || {
            go.recv().unwrap();
            b1.shutdown();
        });
        let b2 = Arc::clone(&b);
        let second = a.spawn(move || b2.shutdown());
        go_tx.send(()).unwrap();
        assert_eq!(first.join(), Ok(()));
        assert_eq!(second.join(), Ok(()));
        assert!(b.is_shut_down());
        steps.at("a plain thread's shutdown of B after both");
        b.shutdown();
        drop_runtime(steps, a);
    });
}

// ---- point 4: an iterator that panics in submit_batch -------------------------------------------

/// The iterator yields 100 closures, then panics. Before the fix the closures taken into the
/// last chunk but not yet admitted (up to 64) were dropped unrun.
#[test]
fn submit_batch_admits_what_a_panicking_iterator_gave_before_the_panic() {
    common::quiet_planned_panics();
    watchdog(|steps| {
        let rt = ManuallyDrop::new(runtime(2, 1024));
        let ran = Arc::new(AtomicUsize::new(0));
        let r = Arc::clone(&ran);
        steps.at("submit_batch with an iterator panicking after 100 closures");
        let funcs = (0..).map(move |i| {
            if i == 100 {
                panic!("planned: the iterator fails");
            }
            let r = Arc::clone(&r);
            move || {
                r.fetch_add(1, SeqCst);
            }
        });
        let outcome = catch_unwind(AssertUnwindSafe(|| rt.spawn_batch(funcs)));
        let payload = outcome.expect_err("the iterator's panic reaches the caller");
        assert_eq!(
            payload.downcast_ref::<&str>(),
            Some(&"planned: the iterator fails"),
            "the caller gets the iterator's own panic"
        );
        rt.shutdown(); // every admitted task runs first
        assert_eq!(
            ran.load(SeqCst),
            100,
            "closures yielded before the panic ran"
        );
        drop_runtime(steps, rt);
    });
}

// ---- point 5: a paused operation must not stop the others ---------------------------------------

/// Capacity 8. Operation "paused" is paused and a thread keeps submitting to it (16 tasks,
/// twice the capacity). Before the bound its held tasks took all 8 tokens: every other
/// operation, and broadcast, waited for a token until the resume. With the default bound
/// (half the capacity) the other operations and broadcast run on; the paused submitter
/// waits before admission once 4 are held, and everything runs after the resume.
#[test]
fn a_paused_operation_receiving_tasks_never_takes_the_tokens_of_the_others() {
    watchdog(|steps| {
        const PAUSED: Operation = Operation::new("paused");
        const OTHER: Operation = Operation::new("other");
        let rt = ManuallyDrop::new(runtime(2, 8));
        rt.pause_operation("paused");
        let ran = Arc::new(AtomicUsize::new(0));
        let (r, count) = (Arc::clone(&rt), Arc::clone(&ran));
        steps.at("a thread submitting 16 tasks of the paused operation");
        let submitter = std::thread::spawn(move || {
            (0..16)
                .map(|_| {
                    let c = Arc::clone(&count);
                    r.submit(&PAUSED, move || {
                        c.fetch_add(1, SeqCst);
                    })
                })
                .collect::<Vec<_>>()
        });
        assert!(
            common::eventually(PROMPTLY, || rt.stats().held == 4),
            "the paused operation holds half the capacity"
        );
        std::thread::sleep(Duration::from_millis(20)); // the submitter waits, it holds no more
        assert_eq!(rt.stats().held, 4, "no more than max_held are held");
        assert!(matches!(
            rt.try_submit(&PAUSED, || ()),
            Err(TrySubmitError::Full(_))
        ));
        steps.at("another operation, and broadcast, while the pause holds");
        assert_eq!(rt.submit(&OTHER, || 1).join(), Ok(1));
        assert_eq!(rt.broadcast(|ctx| ctx.index()).len(), 2);
        assert_eq!(ran.load(SeqCst), 0, "nothing of the paused operation ran");
        steps.at("resume: the submitter finishes and all 16 run");
        rt.resume_operation("paused");
        for h in submitter.join().unwrap() {
            assert_eq!(h.join(), Ok(()));
        }
        assert_eq!(ran.load(SeqCst), 16);
        drop_runtime(steps, rt);
    });
}

/// `submit_batch` of a paused operation (and under the global pause) past `max_held`: each
/// task claims its hold slot like a single submission, waiting for one. Before the fix the
/// tasks past the bound were dispatched and ran during the pause.
#[test]
fn submit_batch_never_runs_tasks_of_a_paused_operation() {
    watchdog(|steps| {
        const PAUSED: Operation = Operation::new("paused");
        for global in [false, true] {
            steps.at(if global {
                "a batch of 4 under the global pause, max_held(2)"
            } else {
                "a batch of 4 of a paused operation, max_held(2)"
            });
            let rt = ManuallyDrop::new(Arc::new(
                Runtime::builder()
                    .workers(1)
                    .pin(false)
                    .capacity(8)
                    .max_held(2)
                    .build()
                    .unwrap(),
            ));
            if global {
                rt.pause();
            } else {
                rt.pause_operation("paused");
            }
            let ran = Arc::new(AtomicUsize::new(0));
            let (r, count) = (Arc::clone(&rt), Arc::clone(&ran));
            let submitter = std::thread::spawn(move || {
                r.submit_batch(
                    &PAUSED,
                    (0..4).map(move |_| {
                        let c = Arc::clone(&count);
                        move || {
                            c.fetch_add(1, SeqCst);
                        }
                    }),
                )
            });
            assert!(common::eventually(PROMPTLY, || rt.stats().held == 2));
            std::thread::sleep(Duration::from_millis(20));
            assert_eq!(ran.load(SeqCst), 0, "nothing ran during the pause");
            if global {
                rt.resume();
            } else {
                rt.resume_operation("paused");
            }
            for h in submitter.join().unwrap() {
                assert_eq!(h.join(), Ok(()));
            }
            assert_eq!(ran.load(SeqCst), 4);
            drop_runtime(steps, rt);
        }
    });
}

/// A kill of the held tasks frees hold slots for the waiting submitter; a shutdown lets it go
/// (its submission resolves `ShutDown`); max_held(0) makes every paused submission wait.
#[test]
fn hold_slots_come_back_on_kill_and_shutdown() {
    watchdog(|steps| {
        const PAUSED: Operation = Operation::new("paused");
        let rt = ManuallyDrop::new(Arc::new(
            Runtime::builder()
                .workers(1)
                .pin(false)
                .capacity(4)
                .max_held(1)
                .build()
                .unwrap(),
        ));
        rt.pause_operation("paused");
        let first = rt.submit(&PAUSED, || 1);
        let r = Arc::clone(&rt);
        steps.at("a second paused submission waits for the only hold slot");
        let second = std::thread::spawn(move || r.submit(&PAUSED, || 2));
        std::thread::sleep(Duration::from_millis(20));
        assert_eq!(rt.stats().held, 1);
        steps.at("kill_operation frees the slot");
        rt.kill_operation("paused");
        assert_eq!(first.join(), Err(TaskError::Killed));
        assert!(common::eventually(PROMPTLY, || rt.stats().held == 1));
        let second = second.join().unwrap();
        let r = Arc::clone(&rt);
        steps.at("a third waits; shutdown lets it go");
        let third = std::thread::spawn(move || r.submit(&PAUSED, || 3));
        std::thread::sleep(Duration::from_millis(20));
        rt.shutdown(); // releases the held one (it runs), refuses the waiting one
        assert_eq!(second.join(), Ok(2));
        assert_eq!(third.join().unwrap().join(), Err(TaskError::ShutDown));
        drop_runtime(steps, rt);

        let rt = Runtime::builder()
            .workers(1)
            .pin(false)
            .max_held(0)
            .build()
            .unwrap();
        rt.pause_operation("paused");
        assert!(matches!(
            rt.try_submit(&PAUSED, || ()),
            Err(TrySubmitError::Full(_))
        ));
        rt.resume_operation("paused");
        assert_eq!(rt.submit(&PAUSED, || 4).join(), Ok(4));
    });
}
