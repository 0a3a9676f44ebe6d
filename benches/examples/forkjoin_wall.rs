//! Wall-clock figures of `join` and the parallel slices beside rayon, at 1 and 2 workers: F1
//! (`fib(34)`, serial below a cut-off) with `tokengate::join` and `rayon::join`, and a sum and
//! a map of 10M elements with `Runtime::map_reduce` / `Runtime::for_each` and `par_iter`.
//! Each figure is the median of 5 rounds, the implementations interleaved round by round.
//! Timing only: it prints, it never asserts.
//!
//! ```text
//! cargo run --release -p tokengate-benches --example forkjoin_wall
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use rayon::prelude::*;
use tokengate::Runtime;

const ROUNDS: usize = 5;
const FIB_N: u32 = 34;
const LEN: usize = 10_000_000;

fn serial_fib(n: u32) -> u64 {
    if n < 2 {
        u64::from(n)
    } else {
        serial_fib(n - 1) + serial_fib(n - 2)
    }
}

fn tg_fib(n: u32, cutoff: u32) -> u64 {
    if n < cutoff {
        return serial_fib(black_box(n));
    }
    let (a, b) = tokengate::join(|| tg_fib(n - 1, cutoff), || tg_fib(n - 2, cutoff));
    a + b
}

fn rayon_fib(n: u32, cutoff: u32) -> u64 {
    if n < cutoff {
        return serial_fib(black_box(n));
    }
    let (a, b) = rayon::join(|| rayon_fib(n - 1, cutoff), || rayon_fib(n - 2, cutoff));
    a + b
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn time<R>(f: impl FnOnce() -> R) -> Duration {
    let start = Instant::now();
    black_box(f());
    start.elapsed()
}

fn main() {
    let serial = median(
        (0..ROUNDS)
            .map(|_| time(|| serial_fib(black_box(FIB_N))))
            .collect(),
    );
    println!("fib({FIB_N}) serial: {serial:.2?}");
    let mut data: Vec<u64> = (0..LEN as u64).collect();
    for workers in [1, 2] {
        let rt = Runtime::builder()
            .workers(workers)
            .build()
            .expect("runtime");
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(workers)
            .build()
            .expect("rayon pool");
        for cutoff in [12, 20] {
            let (mut tg, mut ry) = (Vec::new(), Vec::new());
            for _ in 0..ROUNDS {
                tg.push(time(|| rt.join(|| tg_fib(FIB_N, cutoff), || ())));
                ry.push(time(|| pool.install(|| rayon_fib(FIB_N, cutoff))));
            }
            let (tg, ry) = (median(tg), median(ry));
            println!(
                "{workers} worker(s), fib({FIB_N}) serial below fib({cutoff}): tokengate join {:.2}x, rayon::join {:.2}x (speedup over serial)",
                serial.as_secs_f64() / tg.as_secs_f64(),
                serial.as_secs_f64() / ry.as_secs_f64()
            );
        }
        let (mut tg_sum, mut ry_sum, mut tg_map, mut ry_map) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for _ in 0..ROUNDS {
            tg_sum.push(time(|| rt.map_reduce(&data, || 0u64, |&x| x, |a, b| a + b)));
            ry_sum.push(time(|| pool.install(|| data.par_iter().sum::<u64>())));
            tg_map.push(time(|| {
                rt.for_each(&mut data, |x| *x = x.wrapping_mul(3).rotate_left(7))
            }));
            ry_map.push(time(|| {
                pool.install(|| {
                    data.par_iter_mut()
                        .for_each(|x| *x = x.wrapping_mul(3).rotate_left(7))
                })
            }));
        }
        println!(
            "{workers} worker(s), 10M u64: sum map_reduce {:.2?} / par_iter {:.2?}; map for_each {:.2?} / par_iter_mut {:.2?}",
            median(tg_sum),
            median(ry_sum),
            median(tg_map),
            median(ry_map)
        );
    }
}
