//! The fine-grained figures F1–F4 at 1 and 2 workers: nested fork-join, tiny tasks from one
//! thread, many submitters, and the round trip; tokengate beside its peers in the same run.
//!
//! Run: `cargo bench -p tokengate-benches --bench fine_grained` (one group: append its name,
//! e.g. `-- fork_join`).
//!
//! | group | figure | work per iteration |
//! | --- | --- | --- |
//! | `fork_join` | F1 | `fib(34)` by nested fork-join, serial below the cut-off (12 or 20); `serial` is plain `fib(34)` on the bench thread |
//! | `tiny_tasks_one_thread` | F2 | 10 000 empty tasks submitted from the bench thread, wait for all |
//! | `many_submitters` | F3 | as many submitting threads as workers, each submitting 100 000 empty tasks and waiting for them |
//! | `round_trip_workers` | F4 | one submit + wait for the result of a trivial task; `cache_line_ping_pong_floor` is the physical floor |
//!
//! Ids are `<group>/<implementation>/<workers>` (F1: `<implementation>_cut<cut-off>`). F1's
//! speedup at w workers is `serial / <implementation>_cut<c>/<w>`; the implementations and
//! what each does are in `benches/peers/fine.rs` (F1: tokengate submits `fib(n - 1)` from
//! the worker and joins it there, against `rayon::join` and chili's `Scope::join`) and
//! `benches/peers/mod.rs` (F2–F4: tokengate with its handles joined, with one `submit_batch`,
//! or with its handles dropped, against rayon's `spawn` and a crossbeam-channel pool). Pools
//! are built once per id, outside the timed loop; only one is alive at a time.
//!
//! `demos/examples/compare.rs` measures the same code in interleaved rounds and checks the
//! targets. On a shared or virtualised machine the figures swing from run to run: compare
//! implementations within one run, on a quiet machine. These benchmarks print figures; they
//! never assert times.

mod peers;

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use peers::fine::{self, ForkJoin, FINE_WORKERS, FORK_JOIN_KINDS, ROUND_TRIP_KINDS, SUBMIT_KINDS};
use peers::{PingPong, Pool, DEFAULT};

/// F2: tasks per iteration.
const N: usize = 10_000;
/// F3: tasks per submitter per iteration.
const N_PER_SUBMITTER: usize = 100_000;

/// F1: `fib(34)` by nested fork-join, at both cut-offs and worker counts, and serially.
fn fork_join(c: &mut Criterion) {
    let mut group = c.benchmark_group("fork_join");
    // An iteration takes tens of milliseconds: few, flat samples.
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    group.bench_function("serial", |b| {
        b.iter(|| fine::serial_fib(std::hint::black_box(fine::FIB_N)))
    });
    for cutoff in fine::FIB_CUTOFFS {
        for workers in FINE_WORKERS {
            for kind in FORK_JOIN_KINDS {
                let pool = ForkJoin::new(kind, workers);
                let id = BenchmarkId::new(format!("{}_cut{cutoff}", kind.name()), workers);
                group.bench_function(id, |b| b.iter(|| pool.fib(fine::FIB_N, cutoff)));
            }
        }
    }
    group.finish();
}

/// F2: empty tasks submitted from the bench thread, waiting for all.
fn tiny_tasks_one_thread(c: &mut Criterion) {
    let mut group = c.benchmark_group("tiny_tasks_one_thread");
    group
        .sample_size(20)
        .throughput(Throughput::Elements(N as u64));
    for workers in FINE_WORKERS {
        for kind in SUBMIT_KINDS {
            let pool = Pool::new(kind, workers);
            group.bench_function(BenchmarkId::new(kind.name(), workers), |b| {
                b.iter(|| pool.batch(N, &DEFAULT, fine::empty))
            });
        }
    }
    group.finish();
}

/// F3: as many submitting threads as workers, each with its own batch of empty tasks.
fn many_submitters(c: &mut Criterion) {
    let mut group = c.benchmark_group("many_submitters");
    // An iteration takes tens of milliseconds: few, flat samples.
    group.sampling_mode(SamplingMode::Flat).sample_size(10);
    for workers in FINE_WORKERS {
        group.throughput(Throughput::Elements((workers * N_PER_SUBMITTER) as u64));
        for kind in SUBMIT_KINDS {
            let pool = Pool::new(kind, workers);
            group.bench_function(BenchmarkId::new(kind.name(), workers), |b| {
                b.iter_custom(|iters| {
                    (0..iters)
                        .map(|_| pool.batch_from(workers, N_PER_SUBMITTER, &DEFAULT, fine::empty))
                        .sum()
                })
            });
        }
    }
    group.finish();
}

/// F4: one submit + wait for the result on a warm pool of 1 or 2 workers, and the floor.
fn round_trip_workers(c: &mut Criterion) {
    let mut group = c.benchmark_group("round_trip_workers");
    group.throughput(Throughput::Elements(1));
    for workers in FINE_WORKERS {
        for kind in ROUND_TRIP_KINDS {
            let pool = Pool::new(kind, workers);
            group.bench_function(BenchmarkId::new(kind.name(), workers), |b| {
                b.iter(|| pool.round_trip())
            });
        }
    }
    {
        let ping = PingPong::start();
        group.bench_function("cache_line_ping_pong_floor", |b| {
            b.iter(|| ping.round_trip())
        });
    }
    group.finish();
}

fn main() {
    // The times are defaults, not group settings, so that `--warm-up-time` and
    // `--measurement-time` on the command line still apply (a short smoke run).
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    fork_join(&mut criterion);
    tiny_tasks_one_thread(&mut criterion);
    many_submitters(&mut criterion);
    round_trip_workers(&mut criterion);
    criterion.final_summary();
}
