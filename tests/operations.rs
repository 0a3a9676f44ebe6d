//! Operation options (sticky, concurrency limit, retries, deadline), reputation and
//! auto-block, and the admin controls, through the public API.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokengate::{
    Health, Operation, Runtime, StorageTier, TaskError, TokenState, TrySubmitError, Weight,
};

use common::{hold_worker, runtime};

// ---- sticky -------------------------------------------------------------------------------

#[test]
fn sticky_tasks_of_one_key_never_overlap_run_in_order_on_one_worker() {
    const SAVE: Operation = Operation::new("save").weight(Weight::Light);
    const NOISE: Operation = Operation::new("noise");
    let rt = runtime(2);
    let keys = 8u64;
    let per_key = 400usize;
    let running: Arc<Vec<AtomicBool>> =
        Arc::new((0..keys).map(|_| AtomicBool::new(false)).collect());
    // Per key: (submission number, worker) of each run, in run order.
    type RunLog = HashMap<u64, Vec<(usize, Option<usize>)>>;
    let log: Arc<Mutex<RunLog>> = Arc::default();
    let overlaps = Arc::new(AtomicUsize::new(0));
    let mut handles = Vec::new();
    for i in 0..per_key {
        for key in 0..keys {
            let (running, log, overlaps) = (running.clone(), log.clone(), overlaps.clone());
            handles.push(rt.submit(&SAVE.sticky(key), move || {
                if running[key as usize].swap(true, Ordering::SeqCst) {
                    overlaps.fetch_add(1, Ordering::SeqCst);
                }
                // A little work, so that overlaps would have a window to show.
                std::hint::black_box((0..200).sum::<u64>());
                log.lock()
                    .unwrap()
                    .entry(key)
                    .or_default()
                    .push((i, tokengate::current_worker()));
                running[key as usize].store(false, Ordering::SeqCst);
            }));
            // Load that may be stolen and run anywhere meanwhile.
            if i % 4 == 0 {
                drop(rt.submit(&NOISE, || std::hint::black_box((0..500).sum::<u64>())));
            }
        }
    }
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(
        overlaps.load(Ordering::SeqCst),
        0,
        "two tasks of one key overlapped"
    );
    let log = log.lock().unwrap();
    for key in 0..keys {
        let runs = &log[&key];
        let order: Vec<usize> = runs.iter().map(|&(i, _)| i).collect();
        assert_eq!(
            order,
            (0..per_key).collect::<Vec<_>>(),
            "key {key} ran out of order"
        );
        let worker = runs[0].1;
        assert!(worker.is_some());
        assert!(
            runs.iter().all(|&(_, w)| w == worker),
            "key {key} ran on two workers"
        );
    }
}

#[test]
fn sticky_keys_spread_over_workers() {
    const OP: Operation = Operation::new("spread_keys");
    let rt = runtime(2);
    let workers: std::collections::BTreeSet<_> = (0..64u64)
        .map(|k| {
            rt.submit(
                &OP.sticky(tokengate::sticky_key(&k)),
                tokengate::current_worker,
            )
            .join()
            .unwrap()
        })
        .collect();
    assert_eq!(workers.len(), 2, "64 keys all landed on one worker");
}

// ---- concurrency limit ----------------------------------------------------------------------

#[test]
fn concurrency_limit_is_never_exceeded() {
    const IO: Operation = Operation::new("io").concurrency_limit(3);
    let rt = common::runtime(8);
    let now = Arc::new(AtomicUsize::new(0));
    let max = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..120)
        .map(|_| {
            let (now, max) = (now.clone(), max.clone());
            rt.submit(&IO, move || {
                let n = now.fetch_add(1, Ordering::SeqCst) + 1;
                max.fetch_max(n, Ordering::SeqCst);
                std::thread::sleep(Duration::from_micros(300));
                now.fetch_sub(1, Ordering::SeqCst);
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let max = max.load(Ordering::SeqCst);
    assert!(
        (1..=3).contains(&max),
        "{max} ran at once with a limit of 3"
    );
    assert_eq!(rt.operation_stats("io").unwrap().completed, 120);
}

#[test]
fn tasks_over_the_limit_do_not_hold_a_worker() {
    // Two workers, limit 1, the one permit held by a blocked task: the other limited tasks
    // wait in the operation's queue, so the second worker is free for unrelated work.
    const SLOW: Operation = Operation::new("slow_io").concurrency_limit(1);
    const FREE: Operation = Operation::new("free");
    let rt = runtime(2);
    let (first, gate) = hold_worker(&rt, &SLOW, || ());
    let ran = Arc::new(AtomicUsize::new(0));
    let limited: Vec<_> = (0..6)
        .map(|_| {
            let ran = ran.clone();
            rt.submit(&SLOW, move || ran.fetch_add(1, Ordering::SeqCst))
        })
        .collect();
    let free = rt.submit(&FREE, || 7);
    // While the permit is held, the free task runs and no limited task does.
    assert!(
        free.wait_timeout(Duration::from_secs(10)),
        "a free task waited behind limited ones"
    );
    assert_eq!(free.join(), Ok(7));
    assert_eq!(
        ran.load(Ordering::SeqCst),
        0,
        "a limited task ran without a permit"
    );
    gate.open();
    first.join().unwrap();
    let mut order: Vec<usize> = limited.into_iter().map(|h| h.join().unwrap()).collect();
    order.sort();
    assert_eq!(order, (0..6).collect::<Vec<_>>());
}

#[test]
fn storage_tiers_are_the_original_presets() {
    assert_eq!(
        Operation::new("a")
            .storage_tier(StorageTier::Slow)
            .get_concurrency_limit(),
        Some(10)
    );
    assert_eq!(StorageTier::Moderate.limit(), 25);
    assert_eq!(StorageTier::Fast.limit(), 50);
    assert_eq!(StorageTier::Insane.limit(), 70);
    assert!("warp"
        .parse::<StorageTier>()
        .unwrap_err()
        .to_string()
        .contains("slow, moderate, fast or insane"));
}

// ---- retries ---------------------------------------------------------------------------------

#[test]
fn retries_give_the_same_handle_the_last_outcome() {
    common::quiet_planned_panics();
    const FLAKY: Operation = Operation::new("flaky").retries(3);
    let rt = runtime(2);
    let tries = Arc::new(AtomicUsize::new(0));
    let t = tries.clone();
    let h = rt.submit_retrying(&FLAKY, move || {
        if t.fetch_add(1, Ordering::SeqCst) < 2 {
            panic!("planned failure");
        }
        "ok"
    });
    assert_eq!(h.join(), Ok("ok"));
    assert_eq!(tries.load(Ordering::SeqCst), 3);

    const DOOMED: Operation = Operation::new("doomed").retries(2);
    let tries = Arc::new(AtomicUsize::new(0));
    let t = tries.clone();
    let h = rt.submit_retrying(&DOOMED, move || -> u8 {
        t.fetch_add(1, Ordering::SeqCst);
        panic!("planned failure");
    });
    let err = h.join().unwrap_err();
    assert!(matches!(err, TaskError::Panicked(_)));
    assert_eq!(tries.load(Ordering::SeqCst), 3, "1 run + 2 retries");
    let s = rt.operation_stats("doomed").unwrap();
    assert_eq!(
        (s.retried, s.failed, s.attempts(), s.failures()),
        (2, 1, 3, 3)
    );
    let s = rt.operation_stats("flaky").unwrap();
    assert_eq!((s.retried, s.completed, s.failed), (2, 1, 0));
}

// ---- deadline --------------------------------------------------------------------------------

#[test]
fn a_task_not_started_before_its_deadline_times_out_and_never_runs() {
    const GATE: Operation = Operation::new("gate");
    const QUICK: Operation = Operation::new("quick").deadline(Duration::from_millis(10));
    let rt = runtime(1);
    let (first, gate) = hold_worker(&rt, &GATE, || ());
    let ran = Arc::new(AtomicBool::new(false));
    let r = ran.clone();
    let late = rt.submit(&QUICK, move || r.store(true, Ordering::SeqCst));
    std::thread::sleep(Duration::from_millis(40));
    gate.open();
    first.join().unwrap();
    assert_eq!(late.join(), Err(TaskError::TimedOut));
    assert!(!ran.load(Ordering::SeqCst));
    // In time: runs.
    assert_eq!(rt.submit(&QUICK, || 5).join(), Ok(5));
    let s = rt.operation_stats("quick").unwrap();
    assert_eq!((s.timed_out, s.completed), (1, 1));
}

// ---- reputation and auto-block ---------------------------------------------------------------

#[test]
fn reputation_counts_exactly() {
    common::quiet_planned_panics();
    const PRIME: Operation = Operation::new("prime_check");
    let rt = runtime(2);
    let handles: Vec<_> = (0..1000)
        .map(|i| {
            rt.submit(&PRIME, move || {
                if i % 100 == 0 {
                    panic!("planned failure {i}");
                }
                i
            })
        })
        .collect();
    let failed = handles
        .into_iter()
        .filter(|_| true)
        .map(|h| h.join())
        .filter(Result::is_err)
        .count();
    assert_eq!(failed, 10);
    let s = rt.operation_stats("prime_check").unwrap();
    assert_eq!(
        (s.submitted, s.completed, s.failed, s.killed, s.timed_out),
        (1000, 990, 10, 0, 0)
    );
    assert_eq!((s.attempts(), s.successes(), s.failures()), (1000, 990, 10));
    assert_eq!(s.health(), Health::Excellent);
    assert_eq!(s.in_flight(), 0);
    assert_eq!(rt.operation_stats("never_submitted"), None);
}

#[test]
fn health_classes_follow_the_original() {
    assert_eq!(Health::of(0, 4), Health::Unknown);
    assert_eq!(Health::of(95, 100), Health::Excellent);
    assert_eq!(Health::of(94, 100), Health::Healthy);
    assert_eq!(Health::of(80, 100), Health::Healthy);
    assert_eq!(Health::of(79, 100), Health::AtRisk);
    assert_eq!(Health::of(50, 100), Health::AtRisk);
    assert_eq!(Health::of(49, 100), Health::Problematic);
}

#[test]
fn auto_block_blocks_a_failing_operation_until_unblocked() {
    common::quiet_planned_panics();
    const BAD: Operation = Operation::new("bad");
    let rt = Runtime::builder()
        .workers(1)
        .pin(false)
        .auto_block(true)
        .build()
        .unwrap();
    // 1 success then 9 failures: 90 % is not "more than 90 %".
    rt.submit(&BAD, || ()).join().unwrap();
    for _ in 0..9 {
        assert!(rt.submit(&BAD, || panic!("planned")).join().is_err());
    }
    assert!(!rt.operation_stats("bad").unwrap().is_blocked);
    assert!(rt.submit(&BAD, || panic!("planned")).join().is_err()); // 10 of 11
    assert!(rt.operation_stats("bad").unwrap().is_blocked);
    assert_eq!(rt.submit(&BAD, || ()).join(), Err(TaskError::Blocked));
    match rt.try_submit(&BAD, || 9) {
        Err(TrySubmitError::Blocked(f)) => assert_eq!(f(), 9),
        other => panic!("expected Blocked, got {other:?}"),
    }
    assert_eq!(rt.operation_stats("bad").unwrap().blocked, 2);
    rt.unblock_operation("bad");
    assert_eq!(rt.submit(&BAD, || 1).join(), Ok(1));
}

#[test]
fn without_auto_block_nothing_is_blocked() {
    common::quiet_planned_panics();
    const BAD: Operation = Operation::new("bad");
    let rt = runtime(1);
    for _ in 0..20 {
        assert!(rt.submit(&BAD, || panic!("planned")).join().is_err());
    }
    assert_eq!(rt.submit(&BAD, || 2).join(), Ok(2));
    assert_eq!(
        rt.operation_stats("bad").unwrap().health(),
        Health::Problematic
    );
}

// ---- admin -----------------------------------------------------------------------------------

#[test]
fn pause_holds_submissions_and_resume_runs_them_all() {
    let rt = runtime(2);
    rt.pause();
    assert!(rt.is_paused());
    let ran = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..50)
        .map(|i| {
            let ran = ran.clone();
            rt.spawn(move || {
                ran.fetch_add(1, Ordering::SeqCst);
                i
            })
        })
        .collect();
    let tried = rt.try_spawn(|| 50).expect("a paused runtime still admits");
    std::thread::sleep(Duration::from_millis(20));
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert!(handles.iter().all(|h| h.state() == TokenState::Admitted));
    assert_eq!(rt.stats().held, 51);
    rt.resume();
    let sum: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(sum, (0..50).sum::<usize>());
    assert_eq!(tried.join(), Ok(50));
    assert_eq!(rt.stats().held, 0);
}

#[test]
fn shutdown_while_paused_loses_nothing() {
    let rt = runtime(1);
    rt.pause();
    let h = rt.spawn(|| 3);
    rt.shutdown();
    assert_eq!(h.join(), Ok(3));

    let rt = runtime(1);
    rt.pause();
    let h = rt.spawn(|| 3);
    rt.shutdown_now();
    assert_eq!(h.join(), Err(TaskError::Killed));
}

#[test]
fn pause_operation_holds_only_that_operation() {
    const A: Operation = Operation::new("a");
    const B: Operation = Operation::new("b");
    let rt = runtime(2);
    rt.pause_operation("a");
    let a = rt.submit(&A, || 1);
    assert_eq!(rt.submit(&B, || 2).join(), Ok(2));
    std::thread::sleep(Duration::from_millis(10));
    assert_eq!(a.state(), TokenState::Admitted);
    assert!(rt.operation_stats("a").unwrap().paused);
    rt.resume_operation("a");
    assert_eq!(a.join(), Ok(1));
}

#[test]
fn drain_operation_kills_waiting_tasks_and_spares_others() {
    const GATE: Operation = Operation::new("gate");
    const X: Operation = Operation::new("x");
    const Y: Operation = Operation::new("y");
    let rt = Arc::new(runtime(1));
    let (first, gate) = hold_worker(&rt, &GATE, || ());
    let ran_x = Arc::new(AtomicUsize::new(0));
    let xs: Vec<_> = (0..20)
        .map(|_| {
            let r = ran_x.clone();
            rt.submit(&X, move || {
                r.fetch_add(1, Ordering::SeqCst);
            })
        })
        .collect();
    let ys: Vec<_> = (0..5).map(|i| rt.submit(&Y, move || i)).collect();
    let drainer = {
        let rt = rt.clone();
        std::thread::spawn(move || rt.drain_operation("x"))
    };
    std::thread::sleep(Duration::from_millis(20));
    assert!(
        !drainer.is_finished(),
        "drain returned while x still had tasks in flight"
    );
    gate.open();
    first.join().unwrap();
    drainer.join().unwrap();
    assert!(xs.into_iter().all(|h| h.join() == Err(TaskError::Killed)));
    assert_eq!(ran_x.load(Ordering::SeqCst), 0);
    assert_eq!(ys.into_iter().map(|h| h.join().unwrap()).sum::<i32>(), 10);
    let x = rt.operation_stats("x").unwrap();
    assert_eq!(
        (x.submitted, x.killed, x.in_flight(), x.paused),
        (20, 20, 0, false)
    );
    // New submissions of x run again.
    assert_eq!(rt.submit(&X, || ()).join(), Ok(()));
}

#[test]
fn kill_by_id_and_kill_operation() {
    const GATE: Operation = Operation::new("gate");
    const Z: Operation = Operation::new("z");
    let rt = runtime(1);
    let (first, gate) = hold_worker(&rt, &GATE, || ());
    let victim = rt.spawn(|| 1);
    let spared = rt.spawn(|| 2);
    let zs: Vec<_> = (0..3).map(|_| rt.submit(&Z, || 3)).collect();
    rt.kill(victim.id());
    rt.kill_operation("z");
    gate.open();
    first.join().unwrap();
    assert_eq!(victim.join(), Err(TaskError::Killed));
    assert_eq!(spared.join(), Ok(2));
    assert!(zs.into_iter().all(|h| h.join() == Err(TaskError::Killed)));
    // A killed id is not reused by later tasks' kills.
    assert_eq!(rt.spawn(|| 4).join(), Ok(4));
}

#[test]
fn kill_of_a_held_task_resolves_at_once() {
    let rt = runtime(1);
    rt.pause();
    let h = rt.spawn(|| 1);
    rt.kill(h.id());
    assert!(h.is_finished());
    assert_eq!(h.state(), TokenState::Killed);
    rt.resume();
    assert_eq!(h.join(), Err(TaskError::Killed));
}

#[test]
fn a_worker_joining_a_killed_or_late_task_does_not_run_it_inline() {
    const K: Operation = Operation::new("killed_then_joined");
    const LATE: Operation = Operation::new("late").deadline(Duration::from_millis(1));
    let rt = Arc::new(runtime(1));
    let r = rt.clone();
    let ran = Arc::new(AtomicUsize::new(0));
    let ran2 = ran.clone();
    let outcomes = rt
        .spawn(move || {
            // Submitted from the only worker: queued behind this very task, so the joins
            // below are the first to reach them.
            let r1 = ran2.clone();
            let killed = r.submit(&K, move || r1.fetch_add(1, Ordering::SeqCst));
            r.kill_operation("killed_then_joined");
            let r2 = ran2.clone();
            let late = r.submit(&LATE, move || r2.fetch_add(1, Ordering::SeqCst));
            std::thread::sleep(Duration::from_millis(5));
            (killed.join(), late.join())
        })
        .join()
        .unwrap();
    assert_eq!(outcomes, (Err(TaskError::Killed), Err(TaskError::TimedOut)));
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    // The tokens pass through the worker after the joins resolved them: count after shutdown.
    rt.shutdown();
    let k = rt.operation_stats("killed_then_joined").unwrap();
    assert_eq!((k.killed, k.completed), (1, 0));
    assert_eq!(rt.operation_stats("late").unwrap().timed_out, 1);
}

#[test]
fn shutdown_racing_paused_submissions_loses_no_token() {
    for _ in 0..100 {
        let rt = Arc::new(runtime(1));
        rt.pause();
        let r = rt.clone();
        let submitter =
            std::thread::spawn(move || (0..20).map(|_| r.spawn(|| 1)).collect::<Vec<_>>());
        rt.shutdown(); // returns only once every token is home
        for h in submitter.join().unwrap() {
            let outcome = h.join();
            assert!(
                outcome == Ok(1) || outcome == Err(TaskError::ShutDown),
                "{outcome:?}"
            );
        }
    }
}

#[test]
fn a_sticky_task_joined_from_another_worker_still_runs_on_its_own() {
    const KEYED: Operation = Operation::new("keyed");
    let rt = Arc::new(runtime(2));
    for key in 0..2u64 {
        let r = rt.clone();
        // From each worker, submit a task of `key` and join it: it runs on the key's worker,
        // whichever worker joins it.
        let seen: Vec<_> = rt
            .broadcast(move |_| {
                r.submit(&KEYED.sticky(key), tokengate::current_worker)
                    .join()
            })
            .into_iter()
            .map(|r| r.unwrap().unwrap())
            .collect();
        assert_eq!(seen[0], seen[1], "key {key} ran on two workers");
    }
}

#[test]
fn a_broadcast_reaches_a_worker_busy_in_a_sticky_task() {
    // Sticky keys 0 and 1 live on workers 0 and 1 (two workers, Spread routing). A task of
    // key 0 joins one of key 1, which broadcasts: worker 0, inside its sticky task, must still
    // take its broadcast run.
    const KEYED: Operation = Operation::new("keyed_broadcast");
    let rt = Arc::new(runtime(2));
    let r = rt.clone();
    let got = rt
        .submit(&KEYED.sticky(0), move || {
            let r2 = r.clone();
            r.submit(&KEYED.sticky(1), move || r2.broadcast(|ctx| ctx.index()))
                .join()
                .unwrap()
        })
        .join()
        .unwrap();
    assert_eq!(got, vec![Ok(0), Ok(1)]);
}
