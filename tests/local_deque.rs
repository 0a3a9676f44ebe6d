//! What the workers' local deques must keep (issue 12): a task a worker submits goes to that
//! worker's own deque, a join pops it back, idle workers steal it. These tests guard the
//! promises that path could break: Light work from outside is not starved by a worker's own
//! queued work, a task blocked on a sibling it queued locally is rescued by an idle worker,
//! nested fork-join runs every task once (also on a dry ring), and `shutdown_now` kills what
//! waits in a deque.
//!
//! Tests that could hang on broken code wait with a bound (`recv_timeout`, `eventually`) and
//! fail instead; the bounds catch hangs and never measure speed.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::{runtime, runtime_with_capacity};
use tokengate::{Operation, Runtime, TaskError, TaskHandle, Weight};

/// How long a test may wait for something that must happen. Generous: it only catches hangs.
const HANG: Duration = Duration::from_secs(30);

const LIGHT: Operation = Operation::new("light").weight(Weight::Light);
const MEDIUM: Operation = Operation::new("medium").weight(Weight::Medium);

/// fib(n) by nested submit + join on the calling worker's runtime, serial below `cut`; counts
/// every task into `tasks`.
fn fib(rt: &'static Runtime, n: u64, cut: u64, tasks: &'static AtomicUsize) -> u64 {
    if n < cut {
        return serial_fib(n);
    }
    tasks.fetch_add(1, SeqCst);
    let h = rt.spawn(move || fib(rt, n - 1, cut, tasks));
    let b = fib(rt, n - 2, cut, tasks);
    h.join().unwrap() + b
}

fn serial_fib(n: u64) -> u64 {
    if n < 2 {
        n
    } else {
        serial_fib(n - 1) + serial_fib(n - 2)
    }
}

/// One worker runs a task that queues ten Medium tasks of its own (handles dropped) and then
/// waits; a Light task submitted from outside meanwhile runs before every one of them once the
/// task returns: the worker looks at its mailbox before its deque.
#[test]
fn a_light_task_from_outside_runs_before_a_workers_own_queued_work() {
    let rt = Arc::new(runtime(1));
    let order = Arc::new(Mutex::new(Vec::<String>::new()));
    let (queued_tx, queued) = mpsc::channel::<()>();
    let (go_tx, go) = mpsc::channel::<()>();
    let parent = {
        let (rt2, order) = (rt.clone(), order.clone());
        rt.submit(&MEDIUM, move || {
            for i in 0..10 {
                let order = order.clone();
                drop(rt2.submit(&MEDIUM, move || {
                    order.lock().unwrap().push(format!("own {i}"))
                }));
            }
            queued_tx.send(()).unwrap();
            go.recv_timeout(HANG).unwrap();
        })
    };
    queued
        .recv_timeout(HANG)
        .expect("the parent task never ran");
    let light = {
        let order = order.clone();
        rt.submit(&LIGHT, move || order.lock().unwrap().push("light".into()))
    };
    go_tx.send(()).unwrap();
    parent.join().unwrap();
    light.join().unwrap();
    assert!(
        common::eventually(HANG, || order.lock().unwrap().len() == 11),
        "the worker's own tasks did not all run"
    );
    let order = order.lock().unwrap();
    assert_eq!(order[0], "light", "order: {order:?}");
    let stats = rt.stats();
    assert_eq!(stats.workers[0].local_depth, 0);
}

/// Two workers. A task queues a sibling on its own worker's deque and then blocks (not a join:
/// a plain channel) until the sibling has run. Its worker cannot run it, so the other worker,
/// asleep by then, must be woken to steal it.
#[test]
fn a_task_blocked_on_a_sibling_it_queued_is_rescued_by_an_idle_worker() {
    let rt = Arc::new(runtime(2));
    for _ in 0..20 {
        // Let both workers fall asleep first.
        thread::sleep(Duration::from_millis(5));
        let rt2 = rt.clone();
        let h = rt.spawn(move || {
            let (tx, rx) = mpsc::channel::<usize>();
            let sibling = rt2.spawn(move || {
                tx.send(tokengate::current_worker().unwrap()).unwrap();
            });
            let ran_on = rx.recv_timeout(HANG).expect("the sibling was never stolen");
            sibling.join().unwrap();
            (tokengate::current_worker().unwrap(), ran_on)
        });
        let (parent, sibling) = h.join().unwrap();
        assert_ne!(parent, sibling, "only another worker could run it");
    }
}

/// Nested fork-join runs every task once and computes the right value, on one and on two
/// workers, with a roomy ring and with a ring so small that most tasks run without a token.
#[test]
fn nested_fork_join_runs_every_task_once() {
    for (workers, capacity) in [(1, 1024), (2, 1024), (1, 4), (2, 4)] {
        let rt: &'static Runtime = Box::leak(Box::new(runtime_with_capacity(workers, capacity)));
        let tasks: &'static AtomicUsize = Box::leak(Box::new(AtomicUsize::new(0)));
        let value = rt.spawn(move || fib(rt, 22, 6, tasks)).join().unwrap();
        assert_eq!(value, serial_fib(22));
        let stats = rt.stats();
        // Every task ran once: with a token or, on a dry ring, without one (both counted).
        let run: u64 = stats.workers.iter().map(|w| w.tasks_run).sum();
        let admitted: u64 = stats.operations.iter().map(|o| o.submitted).sum();
        let submitted = tasks.load(SeqCst) as u64 + 1;
        assert_eq!(
            (run, admitted),
            (submitted, submitted),
            "{workers} workers, capacity {capacity}"
        );
        assert_eq!(stats.tokens_in_use, 0);
        assert!(stats.workers.iter().all(|w| w.local_depth == 0));
        rt.shutdown();
    }
}

/// `shutdown_now` while a worker's deque holds tasks: they resolve `Killed` without running.
#[test]
fn shutdown_now_kills_what_waits_in_a_local_deque() {
    let rt = Arc::new(runtime(1));
    let ran = Arc::new(AtomicUsize::new(0));
    let (handles_tx, handles) = mpsc::channel::<Vec<TaskHandle<()>>>();
    let (go_tx, go) = mpsc::channel::<()>();
    let parent = {
        let (rt2, ran) = (rt.clone(), ran.clone());
        rt.spawn(move || {
            let queued: Vec<TaskHandle<()>> = (0..8)
                .map(|_| {
                    let ran = ran.clone();
                    rt2.spawn(move || {
                        ran.fetch_add(1, SeqCst);
                    })
                })
                .collect();
            handles_tx.send(queued).unwrap();
            go.recv_timeout(HANG).unwrap();
        })
    };
    let queued = handles
        .recv_timeout(HANG)
        .expect("the parent task never ran");
    assert_eq!(rt.stats().workers[0].local_depth, 8);
    let stopper = {
        let rt = rt.clone();
        thread::spawn(move || rt.shutdown_now())
    };
    // `shutdown_now` waits for the running parent; let it take effect, then release it.
    assert!(common::eventually(HANG, || rt
        .try_submit(&MEDIUM, || ())
        .is_err()));
    go_tx.send(()).unwrap();
    stopper.join().unwrap();
    assert_eq!(parent.join(), Ok(()));
    for h in queued {
        assert_eq!(h.join(), Err(TaskError::Killed));
    }
    assert_eq!(ran.load(SeqCst), 0);
}
