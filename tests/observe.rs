//! Metrics, history and broadcast through the public API.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokengate::{Operation, Runtime, TaskError, TokenState, Weight};

use common::runtime;

#[test]
fn counters_match_a_known_workload() {
    common::quiet_planned_panics();
    const HASH: Operation = Operation::new("hash").weight(Weight::Light);
    let rt = Runtime::builder()
        .workers(2)
        .pin(false)
        .sample_timings(1)
        .build()
        .unwrap();
    let handles: Vec<_> = (0..1000)
        .map(|i| {
            rt.submit(&HASH, move || {
                if i % 100 == 7 {
                    panic!("planned {i}");
                }
                std::thread::sleep(Duration::from_micros(if i % 2 == 0 { 0 } else { 50 }));
            })
        })
        .collect();
    let errors = handles
        .into_iter()
        .map(|h| h.join())
        .filter(Result::is_err)
        .count();
    assert_eq!(errors, 10);
    let stats = rt.stats();
    let op = stats.operation("hash").unwrap();
    assert_eq!(
        (op.submitted, op.completed, op.failed, op.killed),
        (1000, 990, 10, 0)
    );
    assert_eq!(op.weight, Weight::Light);
    assert_eq!(op.run_time.count(), 1000);
    assert_eq!(op.queue_wait.count(), 1000);
    // Half the tasks slept ≥ 50 µs: the run-time median is above the first buckets' bounds.
    assert!(op.run_time.quantile(0.9).unwrap() >= Duration::from_micros(64));
    assert_eq!(stats.tasks_run(), 1000);
    assert_eq!(stats.workers.len(), 2);
    assert_eq!(stats.tokens_in_use, 0);
    for w in &stats.workers {
        assert_eq!(w.lane_depth, [0, 0, 0]);
        assert!(w.busy <= stats.uptime);
        assert!((0.0..=1.0).contains(&w.utilization()));
    }
    assert!(
        stats.workers.iter().map(|w| w.busy).sum::<Duration>() >= Duration::from_micros(50 * 500)
    );
}

/// A task that runs others inside it (here each joins a child, which the one worker runs
/// inline) counts once in its worker's busy time: the busy time stays within the wall time of
/// the whole nest, where counting every level would give about eleven times the leaf's sleep.
#[test]
fn nested_runs_count_once_in_busy_time() {
    fn nest(rt: &Arc<Runtime>, depth: u32) {
        if depth == 0 {
            std::thread::sleep(Duration::from_millis(20));
            return;
        }
        let r = rt.clone();
        rt.spawn(move || nest(&r, depth - 1)).join().unwrap();
    }
    let rt = Arc::new(runtime(1));
    let r = rt.clone();
    let started = std::time::Instant::now();
    rt.spawn(move || nest(&r, 10)).join().unwrap();
    let wall = started.elapsed();
    let stats = rt.stats();
    let w = &stats.workers[0];
    assert_eq!(w.tasks_run, 11);
    assert!(w.busy >= Duration::from_millis(20), "busy {:?}", w.busy);
    // 1 ms for the two clocks (the runtime's and `Instant`) to disagree.
    assert!(
        w.busy <= wall + Duration::from_millis(1),
        "busy {:?} for a nest that took {wall:?}",
        w.busy
    );
    assert!(w.utilization() <= 1.0);
}

#[test]
fn killed_and_cancelled_tasks_are_counted() {
    const OP: Operation = Operation::new("op");
    let rt = runtime(1);
    rt.pause();
    let hs: Vec<_> = (0..10).map(|_| rt.submit(&OP, || ())).collect();
    assert!(hs[0].cancel());
    rt.kill_operation("op");
    rt.resume();
    for h in hs {
        assert_eq!(h.join(), Err(TaskError::Killed));
    }
    let s = rt.operation_stats("op").unwrap();
    assert_eq!(
        (s.submitted, s.killed, s.completed, s.in_flight()),
        (10, 10, 0, 0)
    );
}

#[test]
fn metrics_off_keeps_counters_but_no_timings() {
    let rt = Runtime::builder()
        .workers(1)
        .pin(false)
        .metrics(false)
        .build()
        .unwrap();
    for h in (0..10).map(|i| rt.spawn(move || i)).collect::<Vec<_>>() {
        h.join().unwrap();
    }
    let stats = rt.stats();
    assert!(!stats.timings);
    let op = stats.operation("default").unwrap();
    assert_eq!(op.completed, 10);
    assert_eq!(op.run_time.count(), 0);
    assert!(rt.recent(10).is_empty());
}

/// By default a worker times one run in 16: the counts stay exact, the histograms and the
/// history hold the sample (on one worker, exactly every 16th run).
#[test]
fn timings_sample_one_run_in_sixteen_by_default_and_counts_stay_exact() {
    const TICK: Operation = Operation::new("tick");
    let rt = Runtime::builder()
        .workers(1)
        .pin(false)
        .history(1000)
        .build()
        .unwrap();
    let mut ids = Vec::new();
    for _ in 0..1600 {
        let h = rt.submit(&TICK, || ());
        ids.push(h.id());
        h.join().unwrap();
    }
    let stats = rt.stats();
    let op = stats.operation("tick").unwrap();
    assert_eq!((op.submitted, op.completed), (1600, 1600));
    assert_eq!(stats.tasks_run(), 1600);
    assert_eq!((op.run_time.count(), op.queue_wait.count()), (100, 100));
    let recent: Vec<_> = rt.recent(1000).iter().map(|r| r.id).collect();
    let every_16th: Vec<_> = ids.iter().skip(15).step_by(16).rev().copied().collect();
    assert_eq!(recent, every_16th);
}

#[test]
fn sample_timings_must_be_a_power_of_two_up_to_65536() {
    for bad in [0, 3, 1 << 17] {
        let err = Runtime::builder().sample_timings(bad).build().unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("sample_timings({bad}) must be a power of two")),
            "{err}"
        );
    }
    let rt = Runtime::builder()
        .workers(1)
        .pin(false)
        .sample_timings(1 << 16)
        .build();
    assert!(rt.is_ok());
}

#[test]
fn history_keeps_the_last_records_newest_first() {
    common::quiet_planned_panics();
    const A: Operation = Operation::new("a");
    let rt = Runtime::builder()
        .workers(2)
        .pin(false)
        .history(16)
        .sample_timings(1)
        .build()
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..40 {
        let h = rt.submit(&A, move || {
            if i == 39 {
                panic!("planned");
            }
        });
        ids.push(h.id());
        let _ = h.join();
    }
    let recent = rt.recent(100);
    assert_eq!(recent.len(), 16, "history(16) keeps 16");
    let got: Vec<_> = recent.iter().map(|r| r.id).collect();
    let want: Vec<_> = ids.iter().rev().take(16).copied().collect();
    assert_eq!(got, want);
    assert_eq!(recent[0].outcome, TokenState::Failed);
    assert!(recent[1..]
        .iter()
        .all(|r| r.outcome == TokenState::Completed && r.operation == "a"));
    assert!(recent.iter().all(|r| r.worker < 2));
    assert!(recent.windows(2).all(|w| w[0].finished >= w[1].finished));
    assert_eq!(rt.recent(3).len(), 3);
}

#[cfg(feature = "serde")]
#[test]
fn history_and_stats_dump_as_json() {
    // Every run timed, so the one task below is in the history.
    let rt = Runtime::builder()
        .workers(1)
        .pin(false)
        .sample_timings(1)
        .build()
        .unwrap();
    rt.spawn(|| ()).join().unwrap();
    let json: serde_json::Value = serde_json::from_str(&rt.history_json(10)).unwrap();
    let first = &json.as_array().unwrap()[0];
    assert_eq!(first["operation"], "default");
    assert_eq!(first["outcome"], "Completed");
    assert!(first["run_time_ns"].is_u64());
    let stats: serde_json::Value = serde_json::from_str(&rt.stats().to_json()).unwrap();
    assert_eq!(stats["operations"][0]["completed"], 1);
}

#[test]
fn broadcast_reaches_every_worker_once_in_order() {
    let rt = runtime(3);
    let calls = AtomicUsize::new(0);
    let got = rt.broadcast(|ctx| {
        calls.fetch_add(1, Ordering::SeqCst);
        assert_eq!(ctx.workers(), 3);
        (ctx.index(), tokengate::current_worker())
    });
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let got: Vec<_> = got.into_iter().map(Result::unwrap).collect();
    assert_eq!(got, vec![(0, Some(0)), (1, Some(1)), (2, Some(2))]);
}

#[test]
fn broadcast_from_a_worker_and_with_a_panic() {
    common::quiet_planned_panics();
    let rt = Arc::new(runtime(2));
    let r = rt.clone();
    let nested = rt
        .spawn(move || {
            r.broadcast(|ctx| tokengate::current_worker() == Some(ctx.index()))
                .into_iter()
                .all(|x| x == Ok(true))
        })
        .join();
    assert_eq!(nested, Ok(true));
    let got = rt.broadcast(|ctx| {
        if ctx.index() == 1 {
            panic!("planned");
        }
        ctx.index()
    });
    assert_eq!(got[0], Ok(0));
    assert!(matches!(got[1], Err(TaskError::Panicked(_))));
    rt.shutdown();
    assert!(rt
        .broadcast(|_| ())
        .iter()
        .all(|r| *r == Err(TaskError::ShutDown)));
}

#[test]
fn broadcast_runs_while_workers_are_busy_elsewhere() {
    let rt = runtime(2);
    let handles: Vec<_> = (0..200).map(|i| rt.spawn(move || i)).collect();
    let workers: BTreeSet<_> = rt
        .broadcast(|_| tokengate::current_worker().unwrap())
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(workers, BTreeSet::from([0, 1]));
    assert_eq!(
        handles.into_iter().map(|h| h.join().unwrap()).sum::<i32>(),
        19900
    );
}
