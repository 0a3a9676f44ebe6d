//! Soak: millions of tasks with panics, cancels and a shutdown mid-stream; the accounting must
//! add up. Ignored by default; run with
//! `TOKENGATE_SOAK_TASKS=10000000 cargo test --release --test soak -- --ignored --nocapture`
//! (CI runs it at a size that takes about a minute).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use tokengate::TaskError;

/// A small deterministic generator (xorshift), so a failing run can be repeated.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

#[test]
fn smoke() {
    soak(if cfg!(miri) { 50 } else { 20_000 }, 2);
}

#[test]
#[ignore = "long: run explicitly, sized by TOKENGATE_SOAK_TASKS"]
fn soak_millions_of_tasks() {
    let n = std::env::var("TOKENGATE_SOAK_TASKS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10_000_000);
    soak(n, 3);
}

/// Submits `n` tasks from `threads` threads (1% panic, ~2% cancelled), shuts down after about
/// 90% of them were submitted, and checks that every handle resolved exactly once and that the
/// tasks that ran are exactly those whose handles say so.
fn soak(n: usize, threads: usize) {
    common::quiet_planned_panics();
    let start = Instant::now();
    let rt = Arc::new(common::runtime_with_capacity(2, 1024));
    let ran = Arc::new(AtomicUsize::new(0));
    let submitted = Arc::new(AtomicUsize::new(0));
    let per_thread = n / threads;
    let workers: Vec<_> = (0..threads)
        .map(|t| {
            let (rt, ran, submitted) = (rt.clone(), ran.clone(), submitted.clone());
            std::thread::spawn(move || {
                let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ (t as u64 + 1));
                let mut counts = [0usize; 4]; // ok, panicked, killed, shut down
                let mut pending = std::collections::VecDeque::new();
                let settle = |h: tokengate::TaskHandle<u64>, counts: &mut [usize; 4]| match h.join()
                {
                    Ok(_) => counts[0] += 1,
                    Err(TaskError::Panicked(_)) => counts[1] += 1,
                    Err(TaskError::Killed) => counts[2] += 1,
                    Err(TaskError::ShutDown) => counts[3] += 1,
                    Err(e) => panic!("unexpected outcome {e}"),
                };
                for i in 0..per_thread {
                    // The shutdown comes mid-stream: after about 90% of all submissions, and
                    // surely before the last 5% of each thread's, which must all be refused.
                    if i == per_thread - per_thread / 20 {
                        while !rt.is_shut_down() {
                            std::thread::yield_now();
                        }
                    }
                    let r = rng.next();
                    let ran = ran.clone();
                    let h = rt.spawn(move || {
                        ran.fetch_add(1, Ordering::Relaxed);
                        if r % 100 == 0 {
                            panic!("planned 1% panic");
                        }
                        r.wrapping_mul(3)
                    });
                    submitted.fetch_add(1, Ordering::Relaxed);
                    if r % 50 == 1 {
                        let _ = h.cancel();
                    }
                    pending.push_back(h);
                    // Keep memory bounded: settle the oldest handles as we go.
                    if pending.len() > 4096 {
                        settle(pending.pop_front().unwrap(), &mut counts);
                    }
                }
                for h in pending {
                    settle(h, &mut counts);
                }
                counts
            })
        })
        .collect();
    while submitted.load(Ordering::Relaxed) < n * 9 / 10 {
        std::thread::yield_now();
    }
    rt.shutdown();
    let mut total = [0usize; 4];
    for w in workers {
        let c = w.join().unwrap();
        for i in 0..4 {
            total[i] += c[i];
        }
    }
    let [ok, panicked, killed, shut_down] = total;
    eprintln!(
        "soak: {} tasks in {:.1} s: {ok} ok, {panicked} panicked, {killed} killed, {shut_down} refused after shutdown",
        per_thread * threads,
        start.elapsed().as_secs_f64()
    );
    assert_eq!(ok + panicked + killed + shut_down, per_thread * threads);
    assert_eq!(ran.load(Ordering::Relaxed), ok + panicked);
    assert!(panicked > 0 && killed > 0, "{total:?}");
    assert!(shut_down >= threads * (per_thread / 20), "{total:?}");
}
