//! A worker's queues are bounded (a lock-free front of `max(256, capacity / workers)` tokens)
//! and spill beyond it: into an overflow behind a lock for the mailbox lanes and the sticky
//! and broadcast queues, into the worker's mailbox for its local deque. These tests hold one
//! worker busy while far more tasks than its front holds are queued for it, by each path
//! (a weight lane, a sticky key, broadcasts, a FIFO operation and plain forks from a worker),
//! check that the queue really went past its front, then let it go: every task runs exactly
//! once, and where an order is promised (a lane or a sticky key served by one worker, a FIFO
//! operation) in that order.
//!
//! Tests that could hang on broken code wait with a bound and fail instead; the bounds catch
//! hangs and never measure speed.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::hold_worker;
use tokengate::{Operation, Runtime, TaskHandle, Weight};

/// 4 workers and 1024 tokens: each worker's queues hold 256 tokens without a lock.
const WORKERS: usize = 4;
const CAPACITY: usize = 1024;
const FRONT: usize = 256;
/// Tasks queued for the held worker: far more than its front, fewer than the ring (the
/// holding task keeps a token, and a submitter from outside blocks on a dry ring).
const QUEUED: usize = if cfg!(miri) { FRONT + 8 } else { 1000 };

/// How long a test may wait for something that must happen. Generous: it only catches hangs.
const HANG: Duration = Duration::from_secs(30);

/// Heavy tasks run on worker 0 only: what waits in its Heavy lane, nobody steals.
const HEAVY: Operation = Operation::new("heavy").weight(Weight::Heavy);
const HEAVY_FIFO: Operation = Operation::new("heavy_fifo").weight(Weight::Heavy).fifo();
const MEDIUM: Operation = Operation::new("medium").weight(Weight::Medium);

fn runtime() -> Arc<Runtime> {
    Arc::new(
        Runtime::builder()
            .workers(WORKERS)
            .pin(false)
            .capacity(CAPACITY)
            .lane_workers(Weight::Heavy, [0])
            .build()
            .unwrap(),
    )
}

/// Waits until `cond` holds, or fails the test after [`HANG`].
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < HANG, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

type Log = Arc<Mutex<Vec<usize>>>;

fn log_push(log: &Log, i: usize) -> impl FnOnce() + Send + 'static {
    let log = log.clone();
    move || log.lock().unwrap().push(i)
}

/// Joins every handle and checks that the log holds each of `0..n` exactly once, in order
/// if `in_order`.
fn join_all_and_check(handles: Vec<TaskHandle<()>>, log: &Log, n: usize, in_order: bool) {
    for h in handles {
        h.join().unwrap();
    }
    let mut got = log.lock().unwrap().clone();
    if !in_order {
        got.sort_unstable();
    }
    assert_eq!(
        got,
        (0..n).collect::<Vec<_>>(),
        "lost, duplicated or reordered"
    );
}

#[test]
fn smoke() {
    let rt = runtime();
    let log = Log::default();
    let handles = (0..10)
        .map(|i| rt.submit(&HEAVY, log_push(&log, i)))
        .collect();
    join_all_and_check(handles, &log, 10, true);
}

/// From outside, into worker 0's Heavy lane while it is busy: the lane spills, and runs in
/// submission order once the worker is free (only worker 0 may run Heavy tasks).
#[test]
fn a_mailbox_lane_past_its_front_loses_nothing_and_keeps_its_order() {
    let rt = runtime();
    let (held, gate) = hold_worker(&rt, &HEAVY, || ());
    let log = Log::default();
    let handles = (0..QUEUED)
        .map(|i| rt.submit(&HEAVY, log_push(&log, i)))
        .collect();
    assert_eq!(
        rt.stats().workers[0].lane_depth[Weight::Heavy.lane()],
        QUEUED
    );
    gate.open();
    held.join().unwrap();
    join_all_and_check(handles, &log, QUEUED, true);
}

/// One sticky key while its home worker is busy with a task of that key: its sticky queue
/// spills, and the key's tasks still run in submission order.
#[test]
fn a_sticky_queue_past_its_front_loses_nothing_and_keeps_its_order() {
    let rt = runtime();
    let sticky = MEDIUM.sticky(7);
    let (held, gate) = hold_worker(&rt, &sticky, || ());
    let home = held_worker(&rt);
    let log = Log::default();
    let handles = (0..QUEUED)
        .map(|i| rt.submit(&sticky, log_push(&log, i)))
        .collect();
    assert_eq!(rt.stats().workers[home].home_depth, QUEUED);
    gate.open();
    held.join().unwrap();
    join_all_and_check(handles, &log, QUEUED, true);
}

/// The worker running a task (the others are idle, the test's runtime just built).
fn held_worker(rt: &Runtime) -> usize {
    let stats = rt.stats();
    let busy: Vec<usize> = stats
        .workers
        .iter()
        .filter(|w| w.busy_now)
        .map(|w| w.index)
        .collect();
    assert_eq!(busy.len(), 1, "one worker holds the gate: {busy:?}");
    busy[0]
}

/// Broadcasts from many threads while worker 0 is busy: its broadcast queue spills; every
/// worker runs every broadcast once.
#[test]
fn a_broadcast_queue_past_its_front_loses_nothing() {
    let rt = runtime();
    let (held, gate) = hold_worker(&rt, &HEAVY, || ());
    let broadcasts = if cfg!(miri) { FRONT + 8 } else { 300 };
    let runs: Arc<Vec<AtomicUsize>> = Arc::new((0..WORKERS).map(|_| AtomicUsize::new(0)).collect());
    std::thread::scope(|s| {
        for _ in 0..broadcasts {
            let (rt, runs) = (&rt, &runs);
            s.spawn(move || {
                let got = rt.broadcast(|ctx| {
                    runs[ctx.index()].fetch_add(1, SeqCst);
                });
                assert!(got.iter().all(Result::is_ok));
            });
        }
        eventually("the broadcasts to queue past the front", || {
            rt.stats().workers[0].home_depth > FRONT
        });
        eventually("the other workers' runs", || {
            runs[1..].iter().all(|n| n.load(SeqCst) == broadcasts)
        });
        assert_eq!(runs[0].load(SeqCst), 0, "worker 0 is held");
        gate.open();
    });
    held.join().unwrap();
    for (w, n) in runs.iter().enumerate() {
        assert_eq!(n.load(SeqCst), broadcasts, "worker {w}");
    }
}

/// A task on worker 0 submits far more FIFO Heavy tasks than a front holds: they go to its
/// own mailbox, which spills, and run in submission order after the task returns.
#[test]
fn a_workers_own_fifo_tasks_past_its_front_keep_their_order() {
    let rt = runtime();
    let log = Log::default();
    let (r, l) = (rt.clone(), log.clone());
    let handles = rt
        .submit(&HEAVY, move || {
            let handles: Vec<_> = (0..QUEUED)
                .map(|i| r.submit(&HEAVY_FIFO, log_push(&l, i)))
                .collect();
            let depth = r.stats().workers[0].lane_depth[Weight::Heavy.lane()];
            (handles, depth)
        })
        .join();
    let (handles, depth) = handles.unwrap();
    assert!(depth > FRONT, "the lane went past its front: {depth}");
    join_all_and_check(handles, &log, QUEUED, true);
}

/// A task forks far more tasks than its local deque holds while the other workers are held
/// busy: the deque's older halves move to the worker's mailbox; every task runs once, after
/// the workers are let go.
#[test]
fn forks_past_the_local_deque_lose_nothing() {
    let rt = runtime();
    // Hold the three other workers, so nothing steals while the deque fills.
    let (release, gate) = mpsc::channel::<()>();
    let gate = Arc::new(Mutex::new(gate));
    let started = Arc::new(AtomicUsize::new(0));
    let holders: Vec<_> = (1..WORKERS)
        .map(|w| {
            let (gate, started) = (gate.clone(), started.clone());
            // A sticky key's home is the key modulo the eligible workers: key `w`, worker `w`.
            rt.submit(&MEDIUM.sticky(w as u64), move || {
                started.fetch_add(1, SeqCst);
                let _ = gate.lock().unwrap().recv();
            })
        })
        .collect();
    eventually("three held workers", || started.load(SeqCst) == WORKERS - 1);
    let log = Log::default();
    let (r, l) = (rt.clone(), log.clone());
    let forker = rt.submit(&HEAVY, move || {
        let handles: Vec<_> = (0..QUEUED).map(|i| r.spawn(log_push(&l, i))).collect();
        let w = &r.stats().workers[0];
        (handles, w.local_depth, w.lane_depth[Weight::Medium.lane()])
    });
    let (handles, local, spilled) = forker.join().unwrap();
    assert!(local <= FRONT, "the deque holds at most its front: {local}");
    assert!(
        spilled >= FRONT / 2,
        "the deque's older half went to the mailbox: {spilled}"
    );
    for _ in 1..WORKERS {
        release.send(()).unwrap();
    }
    for h in holders {
        h.join().unwrap();
    }
    join_all_and_check(handles, &log, QUEUED, false);
}
