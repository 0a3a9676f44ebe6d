//! The main job: the Python original's scenario, run through tokengate and rayon side by side.
//!
//! 16 heavy prime-check operations (some milliseconds each) run first serially, then through
//! tokengate with 1, 2, … up to the core count of workers, and through a rayon pool of the same
//! size, interleaved round by round so that both see the same machine load. Each figure is the
//! median of several rounds. Then a burst of 100,000 tiny tasks measures tasks per second.
//!
//! Run: `cargo run --release --example seed_demo`

use std::hint::black_box;
use std::time::{Duration, Instant};

use tokengate::{Operation, Runtime, Weight};

/// The original's decorated function: `@task_token_guard(operation_type='prime_check',
/// tags={'weight': 'heavy'})`.
const PRIME_CHECK: Operation = Operation::new("prime_check").weight(Weight::Heavy);
const TINY: Operation = Operation::new("tiny").weight(Weight::Light);

const OPS: usize = 16;
const ROUNDS: usize = 5;
const BURST: u64 = 100_000;

fn is_prime(n: u64) -> bool {
    if n < 4 {
        return n > 1;
    }
    if n % 2 == 0 || n % 3 == 0 {
        return false;
    }
    let mut d = 5;
    while d * d <= n {
        if n % d == 0 || n % (d + 2) == 0 {
            return false;
        }
        d += 6;
    }
    true
}

/// The first `count` primes at or above `from`: every one costs a full trial division.
fn heavy_inputs(from: u64, count: usize) -> Vec<u64> {
    (from..).filter(|&n| is_prime(n)).take(count).collect()
}

fn median(mut xs: Vec<Duration>) -> Duration {
    xs.sort();
    xs[xs.len() / 2]
}

fn serial(inputs: &[u64]) -> Duration {
    let start = Instant::now();
    for &n in inputs {
        assert!(black_box(is_prime(black_box(n))));
    }
    start.elapsed()
}

fn through_tokengate(rt: &Runtime, inputs: &[u64]) -> Duration {
    let start = Instant::now();
    let handles: Vec<_> = inputs
        .iter()
        .map(|&n| rt.submit(&PRIME_CHECK, move || is_prime(black_box(n))))
        .collect();
    for h in handles {
        assert_eq!(h.join(), Ok(true));
    }
    start.elapsed()
}

fn through_rayon(pool: &rayon::ThreadPool, inputs: &[u64]) -> Duration {
    let start = Instant::now();
    let results: Vec<bool> = pool.install(|| {
        use rayon::prelude::*;
        inputs.par_iter().map(|&n| is_prime(black_box(n))).collect()
    });
    assert!(results.into_iter().all(|p| p));
    start.elapsed()
}

fn build(workers: usize) -> Runtime {
    Runtime::builder()
        .workers(workers)
        .build()
        .or_else(|e| {
            eprintln!("note: pinning unavailable ({e}); running unpinned");
            Runtime::builder().workers(workers).pin(false).build()
        })
        .expect("could not start tokengate workers")
}

fn main() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let inputs = heavy_inputs(100_000_000_000_000, OPS);
    let one = serial(&inputs[..1]);
    println!(
        "tokengate seed demo: {OPS} heavy prime checks (~{:.1} ms each), {cores} cores, median of {ROUNDS} rounds\n",
        one.as_secs_f64() * 1e3
    );

    let serial_time = median((0..ROUNDS).map(|_| serial(&inputs)).collect());
    println!("serial: {:.1} ms\n", serial_time.as_secs_f64() * 1e3);
    println!(
        "{:>7} | {:>12} {:>8} {:>10} | {:>12} {:>8} | {:>13}",
        "workers",
        "tokengate ms",
        "speedup",
        "efficiency",
        "rayon ms",
        "speedup",
        "tokengate/rayon"
    );
    for workers in 1..=cores {
        let rt = build(workers);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(workers)
            .build()
            .expect("rayon pool");
        // Warm both up, then alternate rounds (A B A B …) so both see the same load.
        through_tokengate(&rt, &inputs[..workers]);
        through_rayon(&pool, &inputs[..workers]);
        let (mut tg, mut ry) = (Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            tg.push(through_tokengate(&rt, &inputs));
            ry.push(through_rayon(&pool, &inputs));
        }
        let (tg, ry) = (median(tg), median(ry));
        let tg_speedup = serial_time.as_secs_f64() / tg.as_secs_f64();
        let ry_speedup = serial_time.as_secs_f64() / ry.as_secs_f64();
        println!(
            "{:>7} | {:>12.1} {:>7.2}x {:>9.0}% | {:>12.1} {:>7.2}x | {:>14.3}x",
            workers,
            tg.as_secs_f64() * 1e3,
            tg_speedup,
            100.0 * tg_speedup / workers as f64,
            ry.as_secs_f64() * 1e3,
            ry_speedup,
            tg_speedup / ry_speedup,
        );
    }

    let rt = build(cores);
    let burst = || {
        let start = Instant::now();
        let handles: Vec<_> = (0..BURST)
            .map(|i| rt.submit(&TINY, move || black_box(i).wrapping_mul(3)))
            .collect();
        let sum = handles.into_iter().fold(0u64, |acc, h| {
            acc.wrapping_add(h.join().expect("tiny task"))
        });
        assert_eq!(sum, (0..BURST).fold(0u64, |a, i| a.wrapping_add(i * 3)));
        start.elapsed()
    };
    burst();
    let burst_time = median((0..ROUNDS).map(|_| burst()).collect());
    println!(
        "\nburst: {BURST} tiny tasks on {cores} workers in {:.1} ms = {:.2} M tasks/s \
         (the Python original peaks near 2,900 tasks/s)",
        burst_time.as_secs_f64() * 1e3,
        BURST as f64 / burst_time.as_secs_f64() / 1e6
    );
}
