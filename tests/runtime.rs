//! The core runtime through its public API.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokengate::{Operation, Runtime, TaskError, TokenState, TrySubmitError, Weight};

use common::{hold_worker, runtime as rt, runtime_with_capacity};

#[test]
fn smoke() {
    let rt = rt(2);
    assert_eq!(rt.spawn(|| 1 + 1).join(), Ok(2));
}

#[test]
fn every_task_runs_exactly_once() {
    let n = if cfg!(miri) { 200 } else { 200_000 };
    let rt = common::runtime_with_capacity(2, 1024);
    let runs: Arc<Vec<AtomicUsize>> = Arc::new((0..n).map(|_| AtomicUsize::new(0)).collect());
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let runs = runs.clone();
            rt.spawn(move || runs[i].fetch_add(1, Ordering::Relaxed))
        })
        .collect();
    for h in handles {
        assert_eq!(h.join(), Ok(0));
    }
    assert!(runs.iter().all(|r| r.load(Ordering::Relaxed) == 1));
}

#[test]
fn a_panicking_task_does_not_take_its_worker_down() {
    let rt = rt(1);
    let err = rt
        .spawn(|| -> u8 { panic!("task failed on purpose") })
        .join()
        .unwrap_err();
    match &err {
        TaskError::Panicked(p) => assert_eq!(p.message(), "task failed on purpose"),
        other => panic!("unexpected {other:?}"),
    }
    assert!(format!("{err:?}").contains("task failed on purpose"));
    // The one worker still runs tasks.
    assert_eq!(rt.spawn(|| 5).join(), Ok(5));
}

#[test]
fn cancel_before_start_means_it_never_runs() {
    let rt = rt(1);
    let (blocker, gate) = hold_worker(&rt, &Operation::DEFAULT, || ());
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let victim = rt.spawn(move || r.fetch_add(1, Ordering::SeqCst));
    assert!(
        victim.cancel(),
        "queued behind the blocker, it had not started"
    );
    assert_eq!(victim.state(), TokenState::Killed);
    gate.open();
    blocker.join().unwrap();
    assert!(matches!(victim.join(), Err(TaskError::Killed)));
    rt.shutdown();
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

#[test]
fn cancel_after_completion_reports_false() {
    let rt = rt(1);
    let h = rt.spawn(|| 3);
    assert!(h.wait_timeout(Duration::from_secs(10)));
    assert!(!h.cancel());
    assert_eq!(h.join(), Ok(3));
}

#[test]
fn graceful_shutdown_runs_everything_admitted() {
    let rt = rt(2);
    let done = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..1000)
        .map(|_| {
            let done = done.clone();
            rt.spawn(move || {
                done.fetch_add(1, Ordering::Relaxed);
            })
        })
        .collect();
    rt.shutdown();
    assert_eq!(done.load(Ordering::Relaxed), 1000);
    for h in handles {
        assert_eq!(h.join(), Ok(()));
    }
    rt.shutdown(); // idempotent
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let late = rt.spawn(move || r.fetch_add(1, Ordering::SeqCst));
    assert!(matches!(late.join(), Err(TaskError::ShutDown)));
    assert_eq!(ran.load(Ordering::SeqCst), 0);
}

#[test]
fn shutdown_now_kills_queued_tasks_and_lets_running_ones_finish() {
    let rt = rt(1);
    let (running, gate) = hold_worker(&rt, &Operation::DEFAULT, || "finished");
    let queued: Vec<_> = (0..10).map(|i| rt.spawn(move || i)).collect();
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(50));
        gate.open();
    });
    rt.shutdown_now();
    releaser.join().unwrap();
    assert_eq!(running.join(), Ok("finished"));
    for h in queued {
        assert!(matches!(h.join(), Err(TaskError::Killed)));
    }
}

#[test]
fn try_submit_hands_the_closure_back_when_full_and_after_shutdown() {
    let rt = runtime_with_capacity(1, 2);
    // Both tokens go out: one task runs and blocks on the gate, the other queues behind it.
    let (running, gate) = hold_worker(&rt, &Operation::DEFAULT, || ());
    let queued = rt.spawn(|| ());
    let marker = String::from("mine");
    match rt.try_submit(&Operation::DEFAULT, move || marker.len()) {
        Err(TrySubmitError::Full(f)) => assert_eq!(f(), 4),
        other => panic!("expected Full, got {other:?}"),
    }
    gate.open();
    running.join().unwrap();
    queued.join().unwrap();
    rt.shutdown();
    match rt.try_spawn(|| 9) {
        Err(e @ TrySubmitError::ShutDown(_)) => assert_eq!(e.into_inner()(), 9),
        other => panic!("expected ShutDown, got {other:?}"),
    }
}

#[test]
fn submit_waits_for_a_token_when_the_ring_is_full() {
    let rt = runtime_with_capacity(1, 1);
    let (first, gate) = hold_worker(&rt, &Operation::DEFAULT, || 1);
    let submitted = Arc::new(AtomicUsize::new(0));
    let s = submitted.clone();
    std::thread::scope(|scope| {
        let rt = &rt;
        let waiter = scope.spawn(move || {
            let h = rt.spawn(|| 2);
            s.store(1, Ordering::SeqCst);
            h.join()
        });
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            submitted.load(Ordering::SeqCst),
            0,
            "submit must wait while the ring is full"
        );
        gate.open();
        assert_eq!(waiter.join().unwrap(), Ok(2));
    });
    assert_eq!(first.join(), Ok(1));
}

/// A finished task whose handle is not joined yet holds no token: a caller may submit far
/// more tasks than the capacity, keep every handle, and join them all afterwards, from an
/// outside thread as from inside a task (a worker). Were finished tasks to keep their tokens,
/// the submission of the ninth task would wait forever.
#[test]
fn far_more_tasks_than_tokens_kept_unjoined_then_all_joined() {
    common::watchdog(|steps| {
        const CAPACITY: usize = 8;
        let rt = Arc::new(runtime_with_capacity(2, CAPACITY));
        steps.at("20,000 tasks submitted from outside, handles kept");
        let handles: Vec<_> = (0..20_000u64).map(|i| rt.spawn(move || i * 2)).collect();
        steps.at("joining the 20,000 handles");
        let sum: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(sum, 2 * (0..20_000u64).sum::<u64>());

        steps.at("2,000 tasks submitted from a worker, handles kept, joined by that worker");
        let rt2 = rt.clone();
        let inner = rt.spawn(move || {
            let handles: Vec<_> = (0..2_000u64).map(|i| rt2.spawn(move || i + 1)).collect();
            handles.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
        });
        assert_eq!(inner.join(), Ok((1..=2_000u64).sum::<u64>()));
    });
}

#[test]
fn nested_submit_and_join_on_one_worker_does_not_deadlock() {
    fn fib(rt: &'static Runtime, n: u64) -> u64 {
        if n < 2 {
            return n;
        }
        let a = rt.spawn(move || fib(rt, n - 1));
        let b = rt.spawn(move || fib(rt, n - 2));
        a.join().unwrap() + b.join().unwrap()
    }
    let rt: &'static Runtime = Box::leak(Box::new(common::runtime_with_capacity(1, 2)));
    assert_eq!(rt.spawn(move || fib(rt, 15)).join(), Ok(610));
    rt.shutdown();
}

#[test]
fn scoped_tasks_borrow_and_finish_before_the_scope_returns() {
    let rt = rt(2);
    let data: Vec<u64> = (1..=100).collect();
    let counter = AtomicUsize::new(0);
    let sum: u64 = rt.scope(|s| {
        let hs: Vec<_> = data
            .chunks(10)
            .map(|c| {
                let counter = &counter;
                s.spawn(move || {
                    counter.fetch_add(1, Ordering::Relaxed);
                    c.iter().sum::<u64>()
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(sum, 5050);
    // Unjoined scoped tasks still finish before `scope` returns.
    rt.scope(|s| {
        for _ in 0..10 {
            let _ = s.spawn(|| counter.fetch_add(1, Ordering::Relaxed));
        }
    });
    assert_eq!(counter.load(Ordering::Relaxed), 20);
}

#[test]
fn builder_errors_say_what_to_change() {
    let e = Runtime::builder().workers(0).build().unwrap_err();
    assert!(e.to_string().contains("at least one worker"), "{e}");
    let e = Runtime::builder()
        .pin(false)
        .capacity(0)
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("capacity 0"), "{e}");
    let e = Runtime::builder()
        .pin(false)
        .capacity(1000)
        .build()
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "capacity 1000 is not a power of two; try 1024"
    );
    let e = Runtime::builder().cores([100_000]).build().unwrap_err();
    assert!(e.to_string().contains("core 100000 does not exist"), "{e}");
    let e = Runtime::builder()
        .workers(100_000)
        .pin(true)
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("or .pin(false)"), "{e}");
    let e = Runtime::builder()
        .workers(2)
        .pin(false)
        .lane_workers(Weight::Heavy, [5])
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("worker 5"), "{e}");
    let e = Runtime::builder()
        .workers(2)
        .pin(false)
        .lane_workers(Weight::Light, [])
        .build()
        .unwrap_err();
    assert!(e.to_string().contains("at least one worker"), "{e}");
}

#[test]
fn handles_report_ids_states_and_operations() {
    const OP: Operation = Operation::new("report").weight(Weight::Light);
    let rt = rt(1);
    let h = rt.submit(&OP, || 1);
    assert_eq!(h.operation(), "report");
    let id = h.id();
    assert!(h.wait_timeout(Duration::from_secs(10)));
    assert!(h.is_finished());
    assert_eq!(h.state(), TokenState::Completed);
    assert_eq!(h.id(), id);
    assert!(format!("{h:?}").contains("Completed"));
}
