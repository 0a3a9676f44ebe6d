//! A small end-to-end run of the runtime, sized for miri (`scripts/miri.sh`); also a plain test.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokengate::{Operation, Runtime, TaskError, Weight};

#[test]
fn smoke() {
    common::quiet_planned_panics();
    let rt = common::runtime_with_capacity(2, 4);
    let count = Arc::new(AtomicUsize::new(0));
    let ops = [
        Operation::new("l").weight(Weight::Light),
        Operation::new("m"),
        Operation::new("h").weight(Weight::Heavy),
    ];
    let n = if cfg!(miri) { 12 } else { 3_000 };
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let c = count.clone();
            rt.submit(&ops[i % 3], move || {
                if i % 5 == 4 {
                    panic!("planned panic {i}");
                }
                c.fetch_add(1, Ordering::Relaxed);
                i
            })
        })
        .collect();
    let cancelled = handles.iter().step_by(7).filter(|h| h.cancel()).count();
    let mut ok = 0;
    let mut panicked = 0;
    let mut killed = 0;
    for h in handles {
        match h.join() {
            Ok(_) => ok += 1,
            Err(TaskError::Panicked(_)) => panicked += 1,
            Err(TaskError::Killed) => killed += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(killed, cancelled);
    assert_eq!(ok + panicked + killed, n);
    assert_eq!(count.load(Ordering::Relaxed), ok);
    // Nested submit + join from a worker, and a scope.
    let rt = Arc::new(rt);
    let r = rt.clone();
    assert_eq!(
        rt.spawn(move || r.spawn(|| 2).join().unwrap() * 3).join(),
        Ok(6)
    );
    let data = [1, 2, 3];
    let total = rt.scope(|s| {
        let hs: Vec<_> = data.iter().map(|x| s.spawn(move || x * 2)).collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum::<i32>()
    });
    assert_eq!(total, 12);
    rt.shutdown_now();
}

/// The operation options, admin, metrics, history and broadcast, small enough for miri: the
/// operation table (atomic pointers, leaked names), the history's seqlock cells, the limiter's
/// hand-over and the pinned queues all run under its checks.
#[test]
fn options_admin_and_metrics() {
    common::quiet_planned_panics();
    let rt = Runtime::builder()
        .workers(2)
        .pin(false)
        .capacity(8)
        .history(4)
        // Every run timed and recorded, so the history holds four even of miri's few tasks.
        .sample_timings(1)
        .auto_block(true)
        .build()
        .unwrap();
    let limited = Operation::new("limited").concurrency_limit(1);
    let sticky = Operation::new("sticky").sticky(3);
    let retry = Operation::new("retry").retries(1);
    let n = if cfg!(miri) { 6 } else { 200 };
    let mut handles = rt.submit_batch(&limited, (0..n).map(|i| move || i));
    handles.extend((0..n).map(|i| rt.submit(&sticky, move || i)));
    let tries = Arc::new(AtomicUsize::new(0));
    let t = tries.clone();
    let retried = rt.submit_retrying(&retry, move || {
        if t.fetch_add(1, Ordering::Relaxed) == 0 {
            panic!("planned once");
        }
        7
    });
    rt.pause();
    let held = rt.spawn(|| 1);
    rt.pause_operation("never_seen_before");
    rt.kill(held.id());
    rt.resume();
    let sum: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(sum, 2 * (0..n).sum::<usize>());
    assert_eq!(retried.join(), Ok(7));
    assert_eq!(held.join(), Err(TaskError::Killed));
    assert_eq!(rt.broadcast(|ctx| ctx.index()), vec![Ok(0), Ok(1)]);
    let stats = rt.stats();
    assert_eq!(stats.operation("limited").unwrap().completed, n as u64);
    assert_eq!(stats.operation("retry").unwrap().retried, 1);
    assert!(stats.operation("never_seen_before").unwrap().paused);
    assert_eq!(rt.recent(10).len(), 4);
    assert!(rt
        .prometheus_text()
        .contains("tokengate_tasks_completed_total"));
    rt.shutdown();
}

/// A value that reads what it borrows when it is dropped: under miri, a drop after the borrow
/// ended is a use after free.
struct ReadsOnDrop<'a>(&'a [u64]);

impl Drop for ReadsOnDrop<'_> {
    fn drop(&mut self) {
        std::hint::black_box(self.0.iter().sum::<u64>());
    }
}

/// Every path that erases a borrow's lifetime (`scope`, `broadcast`, a scoped task run without
/// a token in a dry ring) drops what the task borrowed before the borrow ends: outputs whose
/// handle was dropped unjoined, closures cancelled unrun, a broadcast's results.
#[test]
fn borrowed_outputs_and_closures_are_dropped_before_the_borrow_ends() {
    let rt = Arc::new(common::runtime_with_capacity(1, 2));
    for round in 0..if cfg!(miri) { 2 } else { 50 } {
        let data = vec![round as u64; 4];
        rt.scope(|s| {
            // Output kept in the task, its handle dropped unjoined.
            let _ = s.spawn(|| ReadsOnDrop(&data));
            // Closure capturing a borrow, cancelled (dropped unrun) or run.
            let capture = ReadsOnDrop(&data);
            let h = s.spawn(move || drop(capture));
            let _ = h.cancel();
            // A scoped task that submits scoped tasks while the ring is dry: they run without
            // a token, and their outputs still borrow.
            let _ = s.spawn(|| {
                let inner: Vec<_> = (0..3).map(|_| s.spawn(|| ReadsOnDrop(&data))).collect();
                drop(inner);
            });
        });
        drop(data);
        let data = vec![round as u64; 4];
        let results = rt.broadcast(|_| ReadsOnDrop(&data));
        drop(results);
        drop(data);
    }
}

/// A scoped task whose closure borrows and panics, and one a worker drops unrun because its
/// deadline passed: the scope (here on the main thread, which frees the data right after) ends
/// only once no frame of the worker still holds the closure's borrows, so the free cannot
/// overlap the worker's unwinding or its drop of the closure. (Under miri, 40 rounds over the
/// seeds of `scripts/miri.sh`: with the closure in a plain field of the group's task, the free
/// overlapped the unwinding's protected borrows at seed 5.)
#[test]
fn a_scope_ends_after_a_worker_let_go_of_a_panicking_or_expired_closure() {
    common::quiet_planned_panics();
    let rt = common::runtime_with_capacity(1, 2);
    let expired = Operation::new("expired").deadline(std::time::Duration::ZERO);
    for round in 0..if cfg!(miri) { 40 } else { 50 } {
        let data = vec![round as u64; 4];
        rt.scope(|s| {
            let held = ReadsOnDrop(&data);
            let _ = s.spawn(move || {
                let _held = held;
                panic!("planned panic in a scoped task");
            });
            let _ = s.submit(&expired, || ReadsOnDrop(&data));
        });
        drop(data);
    }
}

/// `join` on the stack, small enough for miri: forks popped back, a fork an idle worker must
/// steal (the first half waits for it), closures that borrow the frame (read again when
/// dropped), panics in either half, and a join from outside the workers.
#[test]
fn join_forks_steals_and_panics() {
    common::quiet_planned_panics();
    fn fib(rt: &Runtime, n: u32) -> u64 {
        if n < 2 {
            return u64::from(n);
        }
        let (a, b) = rt.join(|| fib(rt, n - 1), || fib(rt, n - 2));
        a + b
    }
    let rt = Arc::new(common::runtime_with_capacity(2, 4));
    let r = rt.clone();
    let out = rt
        .spawn(move || {
            let data = vec![3u64; 4];
            // Stolen: `a` yields until `b` ran, which only the other worker can do.
            let ran = std::sync::atomic::AtomicBool::new(false);
            let (_, held) = r.join(
                || {
                    while !ran.load(Ordering::Acquire) {
                        std::thread::yield_now();
                    }
                },
                || {
                    ran.store(true, Ordering::Release);
                    ReadsOnDrop(&data)
                },
            );
            drop(held);
            let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                r.join(|| data.len(), || -> usize { panic!("planned panic in b") })
            }));
            assert!(caught.is_err());
            fib(&r, if cfg!(miri) { 5 } else { 15 }) + data.iter().sum::<u64>()
        })
        .join();
    assert_eq!(out, Ok(if cfg!(miri) { 5 } else { 610 } + 12));
    assert_eq!(rt.join(|| 1, || 2), (1, 2));
    assert!(
        rt.stats()
            .workers
            .iter()
            .map(|w| w.forks_stolen)
            .sum::<u64>()
            >= 1
    );
}

/// Tasks in their tokens' cells (`primitives::CellTable`), small enough for miri: handles
/// that outlive their runtime (the orphaned table is freed by the last handle's drop, or
/// its join), a token taken again while its cell still holds an outcome nobody joined (the
/// new task goes on the heap), over-aligned, large and zero-sized captures, and outputs and
/// captures that panic in `Drop` inside a cell.
#[test]
fn tasks_in_token_cells_outlive_their_runtime_and_contain_their_drops() {
    common::quiet_planned_panics();

    #[repr(align(128))]
    struct OverAligned(u8);
    struct PanicsOnDrop(u8);
    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            panic!("planned panic in the drop of {}", self.0);
        }
    }

    let rt = common::runtime_with_capacity(1, 2);
    // Each token's cell holds an outcome nobody joined yet: the next tasks under those
    // tokens go on the heap.
    let unjoined: Vec<_> = (0..4u64).map(|i| rt.spawn(move || i * 10)).collect();
    let big = [7u8; 512];
    let aligned = OverAligned(3);
    let large = rt.spawn(move || big.iter().map(|&b| b as usize).sum::<usize>());
    let over = rt.spawn(move || aligned.0);
    let zero = rt.spawn(|| ());
    assert_eq!(large.join(), Ok(7 * 512));
    assert_eq!(over.join(), Ok(3));
    assert_eq!(zero.join(), Ok(()));
    // An output that panics in `Drop`, dropped unjoined by the worker (detached first) or by
    // the handle; a capture that panics in `Drop` as the closure returns.
    drop(rt.spawn(|| PanicsOnDrop(1)));
    let joined_late = rt.spawn(|| PanicsOnDrop(2));
    let capture = PanicsOnDrop(3);
    let panicked = rt.spawn(move || {
        let _keep = &capture;
    });
    assert!(matches!(panicked.join(), Err(TaskError::Panicked(_))));
    while !joined_late.is_finished() {
        std::thread::yield_now();
    }
    let kept = rt.spawn(|| 5u8);
    // The runtime goes first; the handles keep their cells (and so the table) alive.
    drop(rt);
    for (i, h) in unjoined.into_iter().enumerate() {
        assert_eq!(h.join(), Ok(i as u64 * 10));
    }
    // Its output's panicking drop runs here, the dropper's own code (as for any value it drops).
    let dropped = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(joined_late)));
    assert!(dropped.is_err());
    assert_eq!(kept.join(), Ok(5)); // the table's last cell: freed here
}
