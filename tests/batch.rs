//! `submit_batch` / `spawn_batch`: every closure becomes exactly one task, in order, with a
//! handle; a full ring, a shutdown, a blocked or paused operation and sticky keys behave as
//! for single submissions.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokengate::{Operation, Runtime, TaskError, TokenState};

use common::runtime_with_capacity;

#[test]
fn every_closure_runs_once_and_handles_keep_order() {
    let rt = runtime_with_capacity(2, 64); // far fewer tokens than tasks: the batch waits for tokens
    let runs = Arc::new(AtomicUsize::new(0));
    let handles = rt.spawn_batch((0..10_000usize).map(|i| {
        let runs = runs.clone();
        move || {
            runs.fetch_add(1, Ordering::Relaxed);
            i
        }
    }));
    assert_eq!(handles.len(), 10_000);
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join(), Ok(i));
    }
    assert_eq!(runs.load(Ordering::Relaxed), 10_000);
    assert_eq!(rt.operation_stats("default").unwrap().submitted, 10_000);
}

#[test]
fn a_batch_is_spread_over_the_workers() {
    let rt = runtime_with_capacity(2, 1024);
    let gate = Arc::new(std::sync::Barrier::new(3));
    // Both workers wait at the gate, so the batch queues up behind them on both.
    let blockers = rt.spawn_batch((0..2).map(|_| {
        let g = gate.clone();
        move || {
            g.wait();
        }
    }));
    let handles = rt.spawn_batch((0..200).map(|_| tokengate::current_worker));
    // Both workers are held at the gate, so the queues are still as the batch left them.
    let queued: Vec<usize> = rt
        .stats()
        .workers
        .iter()
        .map(|w| w.lane_depth.iter().sum())
        .collect();
    gate.wait();
    blockers.into_iter().for_each(|h| h.join().unwrap());
    for h in handles {
        h.join().unwrap();
    }
    // (Which worker runs what is not fixed: the first one back may steal the other's share.)
    assert!(
        queued.iter().all(|&q| q >= 50),
        "a batch was not spread over both workers: queued {queued:?}"
    );
}

#[test]
fn a_batch_from_a_worker_with_a_dry_ring_does_not_deadlock() {
    let rt = Arc::new(runtime_with_capacity(1, 2));
    let r = rt.clone();
    let sum = rt
        .spawn(move || {
            r.spawn_batch((0..100u64).map(|i| move || i))
                .into_iter()
                .map(|h| h.join().unwrap())
                .sum::<u64>()
        })
        .join();
    assert_eq!(sum, Ok(4950));
}

#[test]
fn after_shutdown_a_batch_is_refused_whole() {
    let rt = runtime_with_capacity(1, 16);
    rt.shutdown();
    let ran = Arc::new(AtomicUsize::new(0));
    let handles = rt.spawn_batch((0..10).map(|_| {
        let ran = ran.clone();
        move || {
            ran.fetch_add(1, Ordering::Relaxed);
        }
    }));
    assert!(handles
        .into_iter()
        .all(|h| h.join() == Err(TaskError::ShutDown)));
    assert_eq!(ran.load(Ordering::Relaxed), 0);
}

#[test]
fn a_batch_of_a_blocked_operation_is_refused_and_a_paused_one_held() {
    common::quiet_planned_panics();
    const BAD: Operation = Operation::new("bad_batch");
    let rt = Runtime::builder()
        .workers(1)
        .pin(false)
        .auto_block(true)
        .build()
        .unwrap();
    for h in rt.submit_batch(&BAD, (0..10).map(|_| || -> () { panic!("planned") })) {
        assert!(h.join().is_err());
    }
    let refused = rt.submit_batch(&BAD, (0..5).map(|_| || ()));
    assert!(refused
        .into_iter()
        .all(|h| h.join() == Err(TaskError::Blocked)));

    rt.pause();
    let held = rt.spawn_batch((0..5).map(|i| move || i));
    assert!(held.iter().all(|h| h.state() == TokenState::Admitted));
    rt.resume();
    assert_eq!(held.into_iter().map(|h| h.join().unwrap()).sum::<i32>(), 10);
}

#[test]
fn a_sticky_batch_keeps_its_key_on_one_worker() {
    const SAVE: Operation = Operation::new("save");
    let rt = runtime_with_capacity(2, 256);
    let workers: BTreeSet<_> = rt
        .submit_batch(&SAVE.sticky(7), (0..100).map(|_| tokengate::current_worker))
        .into_iter()
        .map(|h| h.join().unwrap())
        .collect();
    assert_eq!(workers.len(), 1);
}
