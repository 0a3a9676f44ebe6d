//! Weights, lanes and routing through the public API.

mod common;

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokengate::{current_worker, Operation, Routing, Runtime, Weight};

const HEAVY: Operation = Operation::new("heavy").weight(Weight::Heavy);
const MEDIUM: Operation = Operation::new("medium").weight(Weight::Medium);
const LIGHT: Operation = Operation::new("light").weight(Weight::Light);

/// Runs `n` tasks of `op` (each a little work, so that stealing has a chance) and returns the
/// set of workers that ran them.
fn workers_used(rt: &Runtime, op: &Operation, n: usize) -> BTreeSet<usize> {
    let hs: Vec<_> = (0..n)
        .map(|i| {
            rt.submit(op, move || {
                let mut x = i as u64;
                for _ in 0..2_000 {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
                current_worker().expect("tasks run on workers")
            })
        })
        .collect();
    hs.into_iter().map(|h| h.join().unwrap()).collect()
}

#[test]
fn smoke() {
    let rt = common::runtime(2);
    assert!(workers_used(&rt, &LIGHT, 10).iter().all(|&w| w < 2));
}

#[test]
fn isolated_routing_keeps_each_weight_on_its_workers() {
    let rt = Runtime::builder()
        .workers(3)
        .pin(false)
        .routing(Routing::Isolated)
        .build()
        .unwrap();
    for _ in 0..5 {
        assert_eq!(workers_used(&rt, &HEAVY, 200), BTreeSet::from([0]));
        assert!(workers_used(&rt, &MEDIUM, 200).is_subset(&BTreeSet::from([1, 2])));
        assert_eq!(workers_used(&rt, &LIGHT, 200), BTreeSet::from([2]));
    }
}

#[test]
fn isolated_routing_with_two_workers_puts_heavy_alone_on_worker_0() {
    let rt = Runtime::builder()
        .workers(2)
        .pin(false)
        .routing(Routing::Isolated)
        .build()
        .unwrap();
    assert_eq!(workers_used(&rt, &HEAVY, 200), BTreeSet::from([0]));
    assert_eq!(workers_used(&rt, &MEDIUM, 200), BTreeSet::from([1]));
    assert_eq!(workers_used(&rt, &LIGHT, 200), BTreeSet::from([1]));
}

#[test]
fn lane_workers_overrides_the_policy_for_one_weight() {
    let rt = Runtime::builder()
        .workers(2)
        .pin(false)
        .lane_workers(Weight::Heavy, [1])
        .build()
        .unwrap();
    assert_eq!(workers_used(&rt, &HEAVY, 200), BTreeSet::from([1]));
}

#[test]
fn spread_routing_uses_every_worker() {
    let rt = common::runtime(2);
    let gate = Arc::new(AtomicBool::new(false));
    // Two tasks that each wait for the other to start can only finish on two workers.
    let started = Arc::new(AtomicUsize::new(0));
    let hs: Vec<_> = (0..2)
        .map(|_| {
            let (g, s) = (gate.clone(), started.clone());
            rt.submit(&MEDIUM, move || {
                s.fetch_add(1, Ordering::SeqCst);
                while s.load(Ordering::SeqCst) < 2 && !g.load(Ordering::SeqCst) {
                    std::thread::yield_now();
                }
                current_worker().unwrap()
            })
        })
        .collect();
    let used: BTreeSet<usize> = hs.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(used, BTreeSet::from([0, 1]));
}

/// Blocks every worker with a heavy task on a gate, queues `queued_heavy` heavy tasks behind
/// them, then submits one light task. Returns when the light task started (its place in the
/// start order after the gate opened) and, for each queued heavy task, (start order, worker).
fn start_order_after_gate(rt: &Runtime, queued_heavy: usize) -> (usize, Vec<(usize, usize)>) {
    let workers = rt.workers();
    let gate = Arc::new(AtomicBool::new(false));
    let running = Arc::new(AtomicUsize::new(0));
    // Blockers go through the Medium lane, allowed on every worker, one per worker: each
    // waits until all have started.
    let blockers: Vec<_> = (0..workers)
        .map(|_| {
            let (g, r) = (gate.clone(), running.clone());
            rt.submit(&MEDIUM, move || {
                r.fetch_add(1, Ordering::SeqCst);
                while !g.load(Ordering::SeqCst) {
                    std::thread::yield_now();
                }
            })
        })
        .collect();
    while running.load(Ordering::SeqCst) < workers {
        std::thread::yield_now();
    }
    let order = Arc::new(AtomicUsize::new(0));
    let heavy_starts = Arc::new(Mutex::new(Vec::new()));
    let heavies: Vec<_> = (0..queued_heavy)
        .map(|_| {
            let (o, starts) = (order.clone(), heavy_starts.clone());
            rt.submit(&HEAVY, move || {
                let at = o.fetch_add(1, Ordering::SeqCst);
                starts.lock().unwrap().push((at, current_worker().unwrap()));
            })
        })
        .collect();
    let o = order.clone();
    let light = rt.submit(&LIGHT, move || o.fetch_add(1, Ordering::SeqCst));
    gate.store(true, Ordering::SeqCst);
    let light_at = light.join().unwrap();
    for h in blockers.into_iter().chain(heavies) {
        h.join().unwrap();
    }
    let starts = heavy_starts.lock().unwrap().clone();
    (light_at, starts)
}

#[test]
fn light_work_does_not_queue_behind_heavy_work() {
    // One worker: the light task overtakes every queued heavy task.
    let rt = common::runtime(1);
    let (light_at, heavy) = start_order_after_gate(&rt, 6);
    assert_eq!(light_at, 0, "light started after heavy tasks {heavy:?}");

    // Two workers, both busy, heavy work queued on both; light work may only run on worker 1.
    // Worker 1's next task is the light one: no heavy task starts on it first, however the
    // two workers are scheduled.
    let rt = Runtime::builder()
        .workers(2)
        .pin(false)
        .lane_workers(Weight::Light, [1])
        .build()
        .unwrap();
    for _ in 0..20 {
        let (light_at, heavy) = start_order_after_gate(&rt, 8);
        assert!(
            heavy
                .iter()
                .all(|&(at, worker)| worker != 1 || at > light_at),
            "light started {light_at}th; heavy (order, worker): {heavy:?}"
        );
    }
}
