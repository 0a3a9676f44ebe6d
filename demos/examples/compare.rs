//! Every performance figure of DESIGN.md (T1–T7) and the fine-grained figures (F1–F4), for
//! tokengate and each peer, measured in one run, printed as two tables and drawn as one SVG
//! chart.
//!
//! ```text
//! cargo run --release -p tokengate-demos --example compare              # the full run, 2-3 minutes
//! cargo run --release -p tokengate-demos --example compare -- --quick   # fewer rounds, smaller sizes
//! cargo run --release -p tokengate-demos --example compare -- --svg docs/compare.svg
//! ```
//!
//! How it measures:
//!
//! - The implementations and the way each submits and waits are those of the benches
//!   (`benches/peers/mod.rs`, included here, and its `fine.rs` for F1–F4). Every pool of
//!   T1–T7 has 2 worker threads; F1–F4 are measured at 1 and at 2.
//! - Each figure runs in rounds; in each round every implementation is measured once, in an
//!   order that rotates from round to round (A B C …, B C … A, …), so that a burst of load
//!   from elsewhere hits all of them alike. Each cell of the table is the median of the
//!   rounds. Every measurement starts a fresh pool, warms it, measures, and drops it: only
//!   one pool is alive at a time, so no idle pool takes CPU from another.
//! - Ratios are computed from the medians of this very run; nothing is hard-coded.
//! - Beside plain tokengate, two variants of it get a column each, measured in the same
//!   interleaved rounds: `tg batch` (T1 only: all tasks submitted with one `submit_batch`)
//!   and `tg no-metrics` (T1 and T2: a runtime built with `metrics(false)`). The ratio and
//!   "met" columns judge plain tokengate; lines under the table give the T1 ratio of
//!   `tg batch` to the best peer and the difference metrics on/off makes to T1 and T2.
//! - The F table has columns of its own: tokengate, `tg batch` and `tg dropped` (every handle
//!   dropped at once, completion counted on a latch as the peers count it; F2 and F3), and
//!   the peers each figure is about: `rayon::join` and chili for F1, rayon's `spawn` and the
//!   crossbeam-channel pool for F2–F4. A serial baseline (F1) or the floor (F4) is measured
//!   in the same rounds as the pools.
//!
//! The figures:
//!
//! | id | what | how |
//! | --- | --- | --- |
//! | T1 | tiny-task throughput | n tiny tasks submitted from one thread, wait for all; ns per task (std::thread: a thread per task, fewer tasks) |
//! | T2 | round trip | one trivial task submitted and its result waited for, on a warm pool, many times; ns each. The floor: two threads bouncing one cache line, in the same rounds |
//! | T3 | heavy-op scaling | 16 ops of ~9 ms CPU (calibrated), serial and on 2 workers; speedup = serial median / median |
//! | T4 | idle CPU | right after a batch of tiny tasks, the process's CPU time (getrusage) over an idle window while the main thread sleeps, as % of one core |
//! | T5 | light task under heavy load | 4 heavy tasks per worker queued, every worker running one; half a heavy task later a light task is submitted; ms until it starts. tokengate: Heavy vs Light operations; the peers are FIFO |
//! | T6 | allocations per task | heap allocations (all threads) during n round trips (submit, then wait for the result), divided by n; a counting global allocator, switched on only for this |
//! | T7 | skewed batch | 64 tasks, 4 of them 20× longer (0.5 ms / 10 ms), in a fixed shuffled order; ms until all are done |
//! | F1 | nested fork-join | `fib(34)` (`--quick`: 32), each call at or above the cut-off (12, then 20) forking `fib(n-1)` and computing `fib(n-2)` itself, the whole call inside the pool (tokengate: submit + join on the worker; `rayon::join`; chili's `Scope::join`); speedup = serial `fib` on the main thread ÷ the pool's time, at 1 and 2 workers |
//! | F2 | tiny tasks from one thread | 200,000 empty tasks (`--quick`: 20,000) submitted from the main thread, wait for all; ns per task: tokengate with handles joined, one `submit_batch`, handles dropped; rayon `spawn`, channel pool |
//! | F3 | many submitters | w threads (w = the workers, 1 and 2) each submitting 100,000 empty tasks (`--quick`: 10,000), wait for all; million tasks per second |
//! | F4 | round trip | as T2, at 1 and 2 workers, with the floor measured in the same rounds |
//!
//! The F-targets: F1, tokengate's speedup ≥ `rayon::join`'s at 1 and at 2 workers, and its
//! speedup at 2 workers ≥ 1.8 × its speedup at 1; F2, tokengate's joined ns per task ≤ the
//! best peer's, and dropped ≤ joined; F3, throughput ≥ the best peer's at w = 1 (w = 2 is
//! reported); F4, ≤ 3× the floor.

#[path = "../../benches/peers/mod.rs"]
mod peers;

use std::alloc::{GlobalAlloc, Layout, System};
use std::error::Error;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use peers::fine::{self, ForkJoin, FINE_WORKERS, FORK_JOIN_KINDS, ROUND_TRIP_KINDS, SUBMIT_KINDS};
use peers::{Kind, PingPong, Pool, DEFAULT, HEAVY, WORKERS};
use plotters::coord::ranged1d::{SegmentedCoord, ValueFormatter};
use plotters::coord::types::RangedCoordusize;
use plotters::prelude::*;

// ---------------------------------------------------------------------------------------
// Allocation counting (T6)

/// The system allocator, counting allocations while [`COUNTING`] is on. Off, it costs one
/// relaxed load per allocation, the same for every implementation.
struct CountingAlloc;

static COUNTING: AtomicBool = AtomicBool::new(false);
static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

#[inline]
fn count_allocation() {
    if COUNTING.load(Ordering::Relaxed) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards its arguments unchanged to `System`, so this allocator keeps
// exactly `System`'s guarantees; the counting touches only two atomics and never allocates.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        // SAFETY: our caller upholds `GlobalAlloc::alloc`'s contract; we pass it on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count_allocation();
        // SAFETY: as in `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count_allocation();
        // SAFETY: our caller upholds `GlobalAlloc::realloc`'s contract (`ptr` came from
        // this allocator, that is from `System`, with `layout`); we pass it on.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, that is from `System`, with `layout`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: CountingAlloc = CountingAlloc;

// ---------------------------------------------------------------------------------------
// Process CPU time (T4)

/// The CPU time (user + system) of the whole process so far, from `getrusage(RUSAGE_SELF)`
/// (microsecond resolution; `/proc/self/stat` counts in 10 ms ticks, too coarse to tell 1%
/// of a core over a second). Declared by hand to need no `libc` dependency: the layout is
/// that of 64-bit Linux.
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
fn process_cpu_time() -> Option<Duration> {
    #[repr(C)]
    #[derive(Default)]
    struct Timeval {
        sec: i64,
        usec: i64,
    }
    #[repr(C)]
    #[derive(Default)]
    struct Rusage {
        utime: Timeval,
        stime: Timeval,
        rest: [i64; 14],
    }
    extern "C" {
        fn getrusage(who: i32, usage: *mut Rusage) -> i32;
    }
    const RUSAGE_SELF: i32 = 0;
    let mut usage = Rusage::default();
    // SAFETY: `usage` is a valid, writable `struct rusage` of 64-bit Linux (two timevals and
    // fourteen longs), which is all `getrusage` writes.
    let rc = unsafe { getrusage(RUSAGE_SELF, &mut usage) };
    (rc == 0).then(|| {
        let micros = |t: &Timeval| t.sec as u64 * 1_000_000 + t.usec as u64;
        Duration::from_micros(micros(&usage.utime) + micros(&usage.stime))
    })
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
fn process_cpu_time() -> Option<Duration> {
    None
}

// ---------------------------------------------------------------------------------------
// Settings

const USAGE: &str = "\
Usage: cargo run --release -p tokengate-demos --example compare -- [--quick] [--svg PATH]

Measures every performance figure of DESIGN.md (T1-T7) for tokengate and its peers
(rayon spawn/scope/join, a crossbeam-channel pool, threadpool, std::thread, tokio's
spawn_blocking), interleaved round by round in one run, and prints one table of medians
with the ratio tokengate / best peer and whether each target is met. Two tokengate
variants are measured beside it: one submit_batch per batch (T1) and metrics off (T1, T2).

Then the fine-grained figures, at 1 and 2 workers, in a second table: F1 nested fork-join
(fib(34) forking above a cut-off of 12 or 20, against rayon::join and chili; speedup over
serial), F2 empty tasks from one thread (handles joined, submit_batch, handles dropped),
F3 as many submitting threads as workers, F4 the round trip against the ping-pong floor.

Options:
  --quick       fewer rounds and smaller sizes (a smoke run, well under 2 minutes)
  --svg PATH    where to write the chart (default: target/compare.svg)
  -h, --help    this text";

struct Config {
    quick: bool,
    svg: PathBuf,
    /// Rounds per figure; each cell is the median of this many measurements.
    rounds: usize,
    /// T1: tiny tasks per measurement, and for std::thread (a thread each).
    tiny_tasks: usize,
    tiny_tasks_std_thread: usize,
    /// T2: round trips per measurement (the floor does ten times as many).
    round_trips: usize,
    /// T4: the idle window.
    idle_window: Duration,
    /// T6: round trips counted.
    counted_tasks: usize,
    /// F1: the argument of `fib`.
    fib_n: u32,
    /// F2: empty tasks per measurement.
    fine_tasks: usize,
    /// F3: empty tasks per submitter per measurement.
    submitter_tasks: usize,
}

impl Config {
    fn from_args() -> Result<Self, String> {
        let mut quick = false;
        let mut svg = PathBuf::from("target/compare.svg");
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "--quick" => quick = true,
                "--svg" => svg = args.next().ok_or("--svg needs a path")?.into(),
                "-h" | "--help" => {
                    println!("{USAGE}");
                    std::process::exit(0);
                }
                other => return Err(format!("unknown argument {other:?}")),
            }
        }
        Ok(if quick {
            Self {
                quick,
                svg,
                rounds: 3,
                tiny_tasks: 20_000,
                tiny_tasks_std_thread: 1_000,
                round_trips: 1_000,
                idle_window: Duration::from_millis(250),
                counted_tasks: 1_000,
                fib_n: 32,
                fine_tasks: 20_000,
                submitter_tasks: 10_000,
            }
        } else {
            Self {
                quick,
                svg,
                rounds: 7,
                tiny_tasks: 1_000_000,
                tiny_tasks_std_thread: 20_000,
                round_trips: 10_000,
                idle_window: Duration::from_secs(1),
                counted_tasks: 10_000,
                fib_n: fine::FIB_N,
                fine_tasks: 200_000,
                submitter_tasks: 100_000,
            }
        })
    }
}

/// T1: how many times faster than the best peer tokengate is to be.
const T1_FASTER: f64 = 5.0;
/// T3: heavy operations per batch, and the CPU time of each.
const HEAVY_OPS: usize = 16;
const HEAVY_TIME: Duration = Duration::from_millis(9);
/// T5: heavy tasks queued per worker.
const BACKLOG_PER_WORKER: usize = 4;
/// T7: the skewed batch.
const SKEW_TASKS: usize = 64;
const SKEW_LONG: usize = 4;
const SKEW_FACTOR: u64 = 20;
const SKEW_SHORT_TIME: Duration = Duration::from_micros(500);
/// T2: a ping-pong floor above this (ns) cannot be a cache-line transfer; see `main`.
const FLOOR_PLAUSIBLE_NS: f64 = 2_000.0;
/// F1: the least speedup at 2 workers ÷ the speedup at 1 worker that tokengate is to reach.
const F1_SCALING: f64 = 1.8;
/// F4: the most round trip ÷ the ping-pong floor that tokengate is to take.
const F4_FLOOR_FACTOR: f64 = 3.0;
/// The pause after dropping a pool, so that threads that exit after the drop returns
/// (rayon's, threadpool's) are gone before the next measurement.
const SETTLE: Duration = Duration::from_millis(10);

// ---------------------------------------------------------------------------------------
// The columns

/// The tokengate variants that get a column of their own, right after plain tokengate.
const VARIANTS: [Kind; 2] = [Kind::TokengateBatch, Kind::TokengateNoMetrics];

/// The columns of the table, in order: plain tokengate (the one the targets judge), its
/// [`VARIANTS`], then every peer of `Kind::COMPARED`.
fn columns() -> Vec<Kind> {
    let (tokengate, peers) = Kind::COMPARED.split_at(1);
    tokengate
        .iter()
        .chain(&VARIANTS)
        .chain(peers)
        .copied()
        .collect()
}

/// Whether `kind` is measured in the figure `id` ("T1" … "T7"). A variant is measured only
/// where it is what is asked about: `submit_batch` in T1, metrics on/off in T1 and T2.
fn measured_in(kind: Kind, id: &str) -> bool {
    match kind {
        Kind::TokengateBatch => id == "T1",
        Kind::TokengateNoMetrics => matches!(id, "T1" | "T2"),
        _ => true,
    }
}

/// The columns measured in the figure `id`, in column order.
fn measured_columns(id: &str) -> Vec<Kind> {
    columns()
        .into_iter()
        .filter(|&k| measured_in(k, id))
        .collect()
}

/// The medians of `kinds` (in column order) as a row of the table: one value per column,
/// `None` in the columns not measured.
fn spread(kinds: &[Kind], medians: &[Option<f64>]) -> Vec<Option<f64>> {
    spread_over(&columns(), kinds, medians)
}

/// [`spread`] over the columns `columns` (those of the T table, or [`F_COLUMNS`]).
fn spread_over(columns: &[Kind], kinds: &[Kind], medians: &[Option<f64>]) -> Vec<Option<f64>> {
    columns
        .iter()
        .map(|c| kinds.iter().position(|k| k == c).and_then(|i| medians[i]))
        .collect()
}

/// Interleaves `measure(kind)` over the columns measured in the figure `id` (see
/// [`interleaved`]) and returns a row of the table.
fn per_column(
    cfg: &Config,
    id: &str,
    mut measure: impl FnMut(Kind) -> Option<f64>,
) -> Vec<Option<f64>> {
    let kinds = measured_columns(id);
    let medians = interleaved(cfg.rounds, kinds.len(), |e| measure(kinds[e]));
    spread(&kinds, &medians)
}

// ---------------------------------------------------------------------------------------
// Measuring

fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    if n % 2 == 1 {
        xs[n / 2]
    } else {
        (xs[n / 2 - 1] + xs[n / 2]) / 2.0
    }
}

/// Runs `measure(entry)` for every entry in `0..entries`, `rounds` times, the starting entry
/// rotating from round to round; returns each entry's median (`None` where it never gives
/// a figure).
fn interleaved(
    rounds: usize,
    entries: usize,
    mut measure: impl FnMut(usize) -> Option<f64>,
) -> Vec<Option<f64>> {
    let mut samples: Vec<Vec<f64>> = vec![Vec::new(); entries];
    for round in 0..rounds {
        for k in 0..entries {
            let entry = (round + k) % entries;
            if let Some(v) = measure(entry) {
                samples[entry].push(v);
            }
        }
    }
    samples
        .into_iter()
        .map(|s| (!s.is_empty()).then(|| median(s)))
        .collect()
}

/// A fresh pool of `kind` for one measurement, dropped (and settled) afterwards.
fn with_pool<R>(kind: Kind, f: impl FnOnce(&Pool) -> R) -> R {
    with_pool_of(kind, WORKERS, f)
}

/// [`with_pool`] with `workers` worker threads.
fn with_pool_of<R>(kind: Kind, workers: usize, f: impl FnOnce(&Pool) -> R) -> R {
    let pool = Pool::new(kind, workers);
    let out = f(&pool);
    drop(pool);
    std::thread::sleep(SETTLE);
    out
}

fn time(f: impl FnOnce()) -> Duration {
    let start = Instant::now();
    f();
    start.elapsed()
}

fn tiny_tasks_for(cfg: &Config, kind: Kind) -> usize {
    if kind == Kind::StdThread {
        cfg.tiny_tasks_std_thread
    } else {
        cfg.tiny_tasks
    }
}

/// T1: ns per task.
fn t1_tiny(cfg: &Config) -> Vec<Option<f64>> {
    per_column(cfg, "T1", |kind| {
        let n = tiny_tasks_for(cfg, kind);
        with_pool(kind, |pool| {
            pool.batch(n.min(10_000), &DEFAULT, peers::tiny);
            let t = time(|| pool.batch(n, &DEFAULT, peers::tiny));
            Some(t.as_nanos() as f64 / n as f64)
        })
    })
}

/// T2: ns per round trip, for each kind, and the ping-pong floor (the last entry).
fn t2_round_trip(cfg: &Config) -> (Vec<Option<f64>>, f64) {
    let kinds = measured_columns("T2");
    let mut medians = interleaved(cfg.rounds, kinds.len() + 1, |e| {
        if e == kinds.len() {
            return Some(floor_ns(cfg));
        }
        with_pool(kinds[e], |pool| Some(round_trip_ns(cfg, pool)))
    });
    let floor = medians.pop().flatten().expect("the floor was measured");
    (spread(&kinds, &medians), floor)
}

/// T2 and F4: ns per round trip on a warm `pool`.
fn round_trip_ns(cfg: &Config, pool: &Pool) -> f64 {
    for _ in 0..100 {
        pool.round_trip();
    }
    let t = time(|| {
        for _ in 0..cfg.round_trips {
            pool.round_trip();
        }
    });
    t.as_nanos() as f64 / cfg.round_trips as f64
}

/// T2 and F4: the floor, ns per round trip of the cache-line ping-pong (ten times as many
/// round trips as a pool gets: each is short).
fn floor_ns(cfg: &Config) -> f64 {
    let ping = PingPong::start();
    let n = cfg.round_trips * 10;
    for _ in 0..1_000 {
        ping.round_trip();
    }
    let t = time(|| {
        for _ in 0..n {
            ping.round_trip();
        }
    });
    t.as_nanos() as f64 / n as f64
}

/// T3: the speedup over serial of each kind on 2 workers, and one heavy op's duration (ms).
fn t3_scaling(cfg: &Config, heavy_iters: u64) -> (Vec<Option<f64>>, f64) {
    let costs = peers::heavy_costs(HEAVY_OPS, heavy_iters);
    let task = peers::burn_task(costs);
    let kinds = measured_columns("T3");
    let mut medians = interleaved(cfg.rounds, kinds.len() + 1, |e| {
        let t = if e == kinds.len() {
            time(|| (0..HEAVY_OPS).for_each(task))
        } else {
            with_pool(kinds[e], |pool| {
                pool.batch(WORKERS, &HEAVY, task);
                time(|| pool.batch(HEAVY_OPS, &HEAVY, task))
            })
        };
        Some(t.as_secs_f64())
    });
    let serial = medians.pop().flatten().expect("serial was measured");
    let speedups: Vec<_> = medians.into_iter().map(|m| m.map(|t| serial / t)).collect();
    (spread(&kinds, &speedups), serial / HEAVY_OPS as f64 * 1e3)
}

/// T4: % of one core used by the process over the idle window right after a batch.
fn t4_idle(cfg: &Config) -> Vec<Option<f64>> {
    per_column(cfg, "T4", |kind| {
        let n = tiny_tasks_for(cfg, kind).min(10_000);
        with_pool(kind, |pool| {
            pool.batch(n, &DEFAULT, peers::tiny);
            let before = process_cpu_time()?;
            let start = Instant::now();
            std::thread::sleep(cfg.idle_window);
            let after = process_cpu_time()?;
            let wall = start.elapsed();
            Some((after - before).as_secs_f64() / wall.as_secs_f64() * 100.0)
        })
    })
}

/// T5: ms until the light task starts (kinds without a queue: `None`).
fn t5_light_wait(cfg: &Config, heavy_iters: u64, heavy_ms: f64) -> Vec<Option<f64>> {
    let arrive_after = Duration::from_secs_f64(heavy_ms / 2.0 / 1e3);
    per_column(cfg, "T5", |kind| {
        if !kind.has_queue() {
            return None;
        }
        with_pool(kind, |pool| {
            pool.round_trip();
            pool.light_wait(heavy_iters, BACKLOG_PER_WORKER * WORKERS, arrive_after)
                .map(|d| d.as_secs_f64() * 1e3)
        })
    })
}

/// T6: heap allocations (every thread) per round trip.
fn t6_allocations(cfg: &Config) -> Vec<Option<f64>> {
    per_column(cfg, "T6", |kind| {
        with_pool(kind, |pool| {
            for _ in 0..1_000 {
                pool.round_trip();
            }
            ALLOCATIONS.store(0, Ordering::SeqCst);
            COUNTING.store(true, Ordering::SeqCst);
            for _ in 0..cfg.counted_tasks {
                pool.round_trip();
            }
            COUNTING.store(false, Ordering::SeqCst);
            Some(ALLOCATIONS.load(Ordering::SeqCst) as f64 / cfg.counted_tasks as f64)
        })
    })
}

/// T7: ms until the whole skewed batch is done.
fn t7_skew(cfg: &Config, short_iters: u64) -> Vec<Option<f64>> {
    let costs = peers::skewed_costs(SKEW_TASKS, SKEW_LONG, SKEW_FACTOR, short_iters);
    let task = peers::burn_task(costs);
    per_column(cfg, "T7", |kind| {
        with_pool(kind, |pool| {
            pool.batch(SKEW_TASKS, &DEFAULT, task);
            Some(time(|| pool.batch(SKEW_TASKS, &DEFAULT, task)).as_secs_f64() * 1e3)
        })
    })
}

// ---------------------------------------------------------------------------------------
// The fine-grained figures (F1–F4)

/// The columns of the F table: plain tokengate (the one the targets judge; F1's with `join`
/// in its own column), the variants measured in F1, F2 and F3, then the peers (F1's
/// fork-join ones first).
const F_COLUMNS: [Kind; 8] = [
    Kind::Tokengate,
    Kind::TokengateJoin,
    Kind::TokengateBatch,
    Kind::TokengateDropped,
    Kind::RayonJoin,
    Kind::Chili,
    Kind::RayonSpawn,
    Kind::ChannelPool,
];

/// A figure's values per worker count of [`FINE_WORKERS`], each a row over [`F_COLUMNS`].
type PerWorkers = Vec<Vec<Option<f64>>>;

/// Interleaves `measure(workers, kind)` over every worker count of [`FINE_WORKERS`] and every
/// kind of `kinds`, together with `extra` entries measured by `measure_extra(i)` in the same
/// rounds (a baseline: serial time, floor); returns a row over [`F_COLUMNS`] per worker count,
/// and the extra entries' medians.
fn per_workers(
    cfg: &Config,
    kinds: &[Kind],
    extra: usize,
    mut measure: impl FnMut(usize, Kind) -> Option<f64>,
    mut measure_extra: impl FnMut(usize) -> Option<f64>,
) -> (PerWorkers, Vec<Option<f64>>) {
    let grid: Vec<(usize, Kind)> = FINE_WORKERS
        .iter()
        .flat_map(|&w| kinds.iter().map(move |&k| (w, k)))
        .collect();
    let mut medians = interleaved(cfg.rounds, grid.len() + extra, |e| match grid.get(e) {
        Some(&(workers, kind)) => measure(workers, kind),
        None => measure_extra(e - grid.len()),
    });
    let extras = medians.split_off(grid.len());
    let rows = medians
        .chunks(kinds.len())
        .map(|m| spread_over(&F_COLUMNS, kinds, m))
        .collect();
    (rows, extras)
}

/// F1 at `cutoff`: the speedup over serial `fib` of each fork-join pool, per worker count,
/// and the serial time (ms) on the main thread, measured in the same rounds.
fn f1_fork_join(cfg: &Config, cutoff: u32) -> (PerWorkers, f64) {
    let n = cfg.fib_n;
    let expected = fine::serial_fib(n);
    let (times, serial) = per_workers(
        cfg,
        &FORK_JOIN_KINDS,
        1,
        |workers, kind| {
            let pool = ForkJoin::new(kind, workers);
            // Warm: the threads are up and have run forks, the code is in cache.
            pool.fib(n - 4, cutoff);
            let mut got = 0;
            let t = time(|| got = pool.fib(n, cutoff));
            assert_eq!(got, expected, "{} computed fib({n}) wrong", kind.label());
            drop(pool);
            std::thread::sleep(SETTLE);
            Some(t.as_secs_f64())
        },
        |_| {
            Some(
                time(|| {
                    fine::serial_fib(n);
                })
                .as_secs_f64(),
            )
        },
    );
    let serial = serial[0].expect("serial fib was measured");
    let speedups = times
        .into_iter()
        .map(|row| row.into_iter().map(|t| t.map(|t| serial / t)).collect())
        .collect();
    (speedups, serial * 1e3)
}

/// F2: ns per empty task submitted from the main thread, waiting for all.
fn f2_tiny(cfg: &Config) -> PerWorkers {
    let n = cfg.fine_tasks;
    let measure = |workers, kind| {
        with_pool_of(kind, workers, |pool| {
            pool.batch(n.min(10_000), &DEFAULT, fine::empty);
            let t = time(|| pool.batch(n, &DEFAULT, fine::empty));
            Some(t.as_nanos() as f64 / n as f64)
        })
    };
    per_workers(cfg, &SUBMIT_KINDS, 0, measure, |_| None).0
}

/// F3: million empty tasks per second, as many submitting threads as workers.
fn f3_submitters(cfg: &Config) -> PerWorkers {
    let n = cfg.submitter_tasks;
    let measure = |workers: usize, kind| {
        with_pool_of(kind, workers, |pool| {
            pool.batch_from(workers, n.min(10_000), &DEFAULT, fine::empty);
            let t = pool.batch_from(workers, n, &DEFAULT, fine::empty);
            Some((workers * n) as f64 / t.as_secs_f64() / 1e6)
        })
    };
    per_workers(cfg, &SUBMIT_KINDS, 0, measure, |_| None).0
}

/// F4: ns per round trip at each worker count, and the ping-pong floor of the same rounds.
fn f4_round_trip(cfg: &Config) -> (PerWorkers, f64) {
    let (rows, floor) = per_workers(
        cfg,
        &ROUND_TRIP_KINDS,
        1,
        |workers, kind| with_pool_of(kind, workers, |pool| Some(round_trip_ns(cfg, pool))),
        |_| Some(floor_ns(cfg)),
    );
    (rows, floor[0].expect("the floor was measured"))
}

// ---------------------------------------------------------------------------------------
// The table

/// One figure: a value per column (in the order of its table's `columns`) and its target.
struct Row {
    id: &'static str,
    /// The columns of the row's table: [`columns`] for T1–T7, [`F_COLUMNS`] for F1–F4.
    columns: Vec<Kind>,
    title: String,
    unit: &'static str,
    higher_is_better: bool,
    decimals: usize,
    /// Which peers may be the row's best peer (the others are shown in parentheses).
    counts: fn(Kind) -> bool,
    /// Draw on a log axis (the values span orders of magnitude).
    log_scale: bool,
    values: Vec<Option<f64>>,
    target: String,
    /// The target as a value on this figure's scale (drawn as a line in the chart).
    target_line: Option<f64>,
    met: Option<bool>,
}

impl Row {
    /// Plain tokengate's value: the one the target judges.
    fn tokengate(&self) -> Option<f64> {
        self.values[0]
    }

    /// The value of the column of `kind`.
    fn value(&self, kind: Kind) -> Option<f64> {
        let i = self.columns.iter().position(|&k| k == kind)?;
        self.values[i]
    }

    /// The best peer's value (lowest, or highest where higher is better) and its kind.
    fn best_peer(&self) -> Option<(Kind, f64)> {
        self.columns
            .iter()
            .zip(&self.values)
            .filter(|(k, _)| !k.is_tokengate() && (self.counts)(**k))
            .filter_map(|(k, v)| v.map(|v| (*k, v)))
            .reduce(|a, b| {
                let b_better = if self.higher_is_better {
                    b.1 > a.1
                } else {
                    b.1 < a.1
                };
                if b_better {
                    b
                } else {
                    a
                }
            })
    }

    /// Plain tokengate ÷ the best peer.
    fn ratio(&self) -> Option<f64> {
        self.ratio_of(Kind::Tokengate)
    }

    /// The value of `kind` ÷ the best peer.
    fn ratio_of(&self, kind: Kind) -> Option<f64> {
        let v = self.value(kind)?;
        let (_, best) = self.best_peer()?;
        (best != 0.0).then(|| v / best)
    }

    fn cell(&self, v: Option<f64>) -> String {
        match v {
            Some(v) => format!("{v:.prec$}", prec = self.decimals),
            None => "—".into(),
        }
    }
}

fn any_peer(_: Kind) -> bool {
    true
}

fn min_rayon(values: &[Option<f64>]) -> Option<f64> {
    columns()
        .iter()
        .zip(values)
        .filter(|(k, _)| k.is_rayon())
        .filter_map(|(_, v)| *v)
        .reduce(f64::min)
}

fn met_text(met: Option<bool>) -> &'static str {
    match met {
        Some(true) => "yes",
        Some(false) => "NO",
        None => "n/a",
    }
}

/// Prints `rows` as one table; they share the columns of the first.
fn print_table(rows: &[Row]) {
    const COL: usize = 11;
    let label = |row: &Row| format!("{} {}, {}", row.id, row.title, row.unit);
    let fig = rows
        .iter()
        .map(|r| label(r).chars().count())
        .fold(28, usize::max);
    let columns = &rows[0].columns;
    let widths: Vec<usize> = columns
        .iter()
        .map(|k| k.label().chars().count().max(COL))
        .collect();
    let mut header = format!("{:<fig$}", "figure");
    for (kind, &width) in columns.iter().zip(&widths) {
        header += &format!(" | {:>width$}", kind.label());
    }
    let target = rows
        .iter()
        .map(|r| r.target.chars().count())
        .fold(28, usize::max);
    header += &format!(" | {:>8} | {:<target$} | met", "tg/best", "target");
    println!("{header}");
    println!("{}", "-".repeat(header.chars().count()));
    for row in rows {
        let mut line = format!("{:<fig$}", label(row));
        for ((&kind, &v), &width) in columns.iter().zip(&row.values).zip(&widths) {
            let cell = match v {
                Some(_) if !kind.is_tokengate() && !(row.counts)(kind) => {
                    format!("({})", row.cell(v))
                }
                _ => row.cell(v),
            };
            line += &format!(" | {cell:>width$}");
        }
        let ratio = row
            .ratio()
            .map_or_else(|| "—".to_string(), |r| format!("{r:.2}×"));
        line += &format!(
            " | {:>8} | {:<target$} | {}",
            ratio,
            row.target,
            met_text(row.met)
        );
        println!("{line}");
    }
}

/// The fine-grained figures as measured, for their table and notes.
struct Fine {
    /// F1 per cut-off of [`fine::FIB_CUTOFFS`]: the cut-off, the speedups per worker count,
    /// and serial `fib`'s time (ms) in the same rounds.
    f1: Vec<(u32, PerWorkers, f64)>,
    f2: PerWorkers,
    f3: PerWorkers,
    f4: PerWorkers,
    /// F4's ping-pong floor (ns per round trip).
    floor: f64,
}

fn workers_text(workers: usize) -> String {
    format!("{workers} worker{}", if workers == 1 { "" } else { "s" })
}

/// A row of the F table, with no target yet.
fn fine_row(
    id: &'static str,
    title: String,
    unit: &'static str,
    higher_is_better: bool,
    decimals: usize,
    values: &[Option<f64>],
) -> Row {
    Row {
        id,
        columns: F_COLUMNS.to_vec(),
        title,
        unit,
        higher_is_better,
        decimals,
        log_scale: false,
        counts: any_peer,
        values: values.to_vec(),
        target: String::new(),
        target_line: None,
        met: None,
    }
}

/// The F table: per figure (and F1 cut-off), a row per worker count, with the targets
/// checked on this run's medians.
fn fine_rows(cfg: &Config, fine: &Fine) -> Vec<Row> {
    let mut rows = Vec::new();
    for (cutoff, speedups, _) in &fine.f1 {
        // F1's target judges fork-join with `join` (the handles' figure is in its column).
        let join_column = F_COLUMNS.iter().position(|&k| k == Kind::TokengateJoin);
        let one = join_column.and_then(|i| speedups[0][i]);
        for (values, workers) in speedups.iter().zip(FINE_WORKERS) {
            let title = format!("fib({}) cut {cutoff}, {}", cfg.fib_n, workers_text(workers));
            let mut row = fine_row("F1", title, "× serial", true, 2, values);
            let rayon = row.value(Kind::RayonJoin);
            let tg = row.value(Kind::TokengateJoin);
            row.target_line = rayon;
            if workers == 1 {
                row.target = "≥ rayon join's".into();
                row.met = tg.zip(rayon).map(|(tg, r)| tg >= r);
            } else {
                let scaling = tg.zip(one).map(|(tg, one)| tg / one);
                row.target = format!(
                    "≥ rayon join's; ÷ 1 worker ≥ {F1_SCALING} (is {})",
                    scaling.map_or("—".into(), |s| format!("{s:.2}"))
                );
                row.met = match (tg, rayon, scaling) {
                    (Some(tg), Some(r), Some(s)) => Some(tg >= r && s >= F1_SCALING),
                    _ => None,
                };
            }
            rows.push(row);
        }
    }
    for (values, workers) in fine.f2.iter().zip(FINE_WORKERS) {
        let title = format!("tiny tasks, {}", workers_text(workers));
        let mut row = fine_row("F2", title, "ns/task", false, 0, values);
        let best = row.best_peer().map(|b| b.1);
        let dropped = row.value(Kind::TokengateDropped);
        row.target = "≤ best peer; dropped ≤ joined".into();
        row.target_line = best;
        row.met = match (row.tokengate(), best, dropped) {
            (Some(tg), Some(best), Some(dropped)) => Some(tg <= best && dropped <= tg),
            _ => None,
        };
        rows.push(row);
    }
    for (values, workers) in fine.f3.iter().zip(FINE_WORKERS) {
        let title = format!(
            "{workers} submitter{}, {}",
            if workers == 1 { "" } else { "s" },
            workers_text(workers)
        );
        let mut row = fine_row("F3", title, "M tasks/s", true, 2, values);
        if workers == 1 {
            let best = row.best_peer().map(|b| b.1);
            row.target = "≥ best peer".into();
            row.target_line = best;
            row.met = row.tokengate().zip(best).map(|(tg, best)| tg >= best);
        } else {
            row.target = "none (reported)".into();
        }
        rows.push(row);
    }
    let floor = fine.floor;
    let floor_plausible = floor <= FLOOR_PLAUSIBLE_NS;
    for (values, workers) in fine.f4.iter().zip(FINE_WORKERS) {
        let title = format!("round trip, {}", workers_text(workers));
        let mut row = fine_row("F4", title, "ns", false, 0, values);
        let limit = F4_FLOOR_FACTOR * floor;
        row.target = format!(
            "≤ {F4_FLOOR_FACTOR}× floor ({floor:.0} ns{})",
            if floor_plausible { "" } else { "?!" }
        );
        row.target_line = Some(limit);
        row.met = row
            .tokengate()
            .filter(|_| floor_plausible)
            .map(|tg| tg <= limit);
        rows.push(row);
    }
    rows
}

fn print_fine_notes(cfg: &Config, fine: &Fine) {
    let value = |values: &[Option<f64>], kind: Kind| {
        let i = F_COLUMNS.iter().position(|&k| k == kind)?;
        values[i]
    };
    let ratio = |r: Option<f64>| r.map_or("—".to_string(), |r| format!("{r:.2}×"));
    println!("Notes");
    println!(
        "  tg/best: tokengate ÷ the best peer of the row (higher is better for F1 and F3, lower \
         for F2 and F4); tg batch and tg dropped are tokengate, never a peer."
    );
    let forks: Vec<String> = fine
        .f1
        .iter()
        .map(|(cutoff, _, serial_ms)| {
            format!(
                "cut {cutoff}: {} forks, serial {serial_ms:.1} ms",
                fine::forks(cfg.fib_n, *cutoff)
            )
        })
        .collect();
    println!(
        "  F1: fib({}) by nested fork-join: a call at or above the cut-off forks fib(n-1) and \
         computes fib(n-2) itself ({}).\n      Speedup = serial fib({}) on the main thread \
         (median of the same rounds) ÷ the pool's median. tokengate: the root submitted and \
         joined\n      from the main thread, every fork a submit + join on the worker (tg join: \
         tokengate::join, which the target judges); rayon \
         join inside ThreadPool::install; chili's pool\n      counts the calling thread as \
         one of its threads (its scope runs on the caller).",
        cfg.fib_n,
        forks.join("; "),
        cfg.fib_n
    );
    for (cutoff, speedups, _) in &fine.f1 {
        let scaling: Vec<String> = FORK_JOIN_KINDS
            .iter()
            .map(|&kind| {
                let s = value(&speedups[1], kind).zip(value(&speedups[0], kind));
                format!("{} {}", kind.label(), ratio(s.map(|(two, one)| two / one)))
            })
            .collect();
        println!(
            "  F1 cut {cutoff}, speedup at 2 workers ÷ at 1 worker: {}.",
            scaling.join(", ")
        );
    }
    println!(
        "  F2: {} empty tasks submitted from the main thread, then wait for all: tokengate \
         joins every handle; tg batch submits them\n      with one submit_batch, then joins; \
         tg dropped drops every handle at once and waits on a countdown latch, as the peers do.",
        cfg.fine_tasks
    );
    for (values, workers) in fine.f2.iter().zip(FINE_WORKERS) {
        let tg = value(values, Kind::Tokengate);
        let dropped = value(values, Kind::TokengateDropped);
        let batch = value(values, Kind::TokengateBatch);
        println!(
            "  F2 {}: tg dropped ÷ tokengate = {}, tg batch ÷ tokengate = {}.",
            workers_text(workers),
            ratio(dropped.zip(tg).map(|(d, tg)| d / tg)),
            ratio(batch.zip(tg).map(|(b, tg)| b / tg)),
        );
    }
    println!(
        "  F3: as many submitting threads as workers, released together, each submitting {} \
         empty tasks; done when every task has run\n      (tokengate and tg batch: each \
         submitter joins its own handles; the others: one countdown latch for all); million \
         tasks per second, all submitters together.",
        cfg.submitter_tasks
    );
    println!(
        "  F4: {} round trips per measurement (submit one trivial task, wait for its result), \
         as T2; floor = the cache-line ping-pong, {:.0} ns, same rounds.",
        cfg.round_trips, fine.floor
    );
}

// ---------------------------------------------------------------------------------------
// The chart

/// The chart: a panel per row of the T table (and the legend) above, a panel per row of the
/// F table (`fine`) below.
fn write_svg(path: &Path, title: &str, rows: &[Row], fine: &[Row]) -> Result<(), Box<dyn Error>> {
    const WIDTH: u32 = 1400;
    const HEAD: u32 = 50;
    const PANEL: u32 = 377;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let fine_lines = fine.len().div_ceil(2);
    let height = 2 * HEAD + PANEL * (4 + fine_lines as u32);
    let root = SVGBackend::new(path, (WIDTH, height)).into_drawing_area();
    root.fill(&WHITE)?;
    let heading = ("sans-serif", 20).into_font().color(&BLACK);
    let (head, rest) = root.split_vertically(HEAD);
    head.draw_text(title, &heading, (16, 16))?;
    let (body, rest) = rest.split_vertically(4 * PANEL);
    let (fine_head, fine_body) = rest.split_vertically(HEAD);
    fine_head.draw_text(
        "Fine-grained figures F1–F4: 1 or 2 worker threads, as each panel's title says",
        &heading,
        (16, 16),
    )?;
    for (row, area) in fine
        .iter()
        .zip(fine_body.split_evenly((fine_lines, 2)).iter())
    {
        draw_panel(area, row)?;
    }
    let panels = body.split_evenly((4, 2));
    for (row, area) in rows.iter().zip(panels.iter()) {
        draw_panel(area, row)?;
    }
    if let Some(area) = panels.get(rows.len()) {
        let style = ("sans-serif", 15).into_font().color(&BLACK);
        let legend = [
            "Each bar: the median of the rounds of this run.",
            "Dark bar: tokengate; mid-blue bars: its variants; light bars: its peers;",
            "  2 worker threads each. Variants: tg batch (one submit_batch per batch; T1)",
            "  and tg no-metrics (a runtime built with metrics(false); T1 and T2).",
            "Lower block (F1–F4): 1 or 2 worker threads, as each panel says; tg dropped:",
            "  every handle dropped, completion counted on a latch (F2, F3).",
            "Red line: the DESIGN.md target on the figure's own scale.",
            "Missing bar: the figure does not apply to, or is not measured for, that column.",
            "Produced by: cargo run --release -p tokengate-demos --example compare",
        ];
        for (i, text) in legend.iter().enumerate() {
            area.draw_text(text, &style, (20, 40 + 26 * i as i32))?;
        }
    }
    root.present()?;
    Ok(())
}

fn draw_panel<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    row: &Row,
) -> Result<(), Box<dyn Error>>
where
    DB::ErrorType: 'static,
{
    // Top to bottom in table order: the last bar is drawn at the top of the axis.
    let bars: Vec<(Kind, f64)> = row
        .columns
        .iter()
        .zip(&row.values)
        .filter_map(|(k, v)| v.map(|v| (*k, v)))
        .rev()
        .collect();
    if bars.is_empty() {
        return Ok(());
    }
    let caption = format!(
        "{} {} ({}; target: {}; met: {})",
        row.id,
        row.title,
        row.unit,
        row.target,
        met_text(row.met)
    );
    let values = || bars.iter().map(|b| b.1).chain(row.target_line);
    let top = values().fold(0.0f64, f64::max);
    let mut builder = ChartBuilder::on(area);
    builder
        .caption(caption, ("sans-serif", 15))
        .margin(12)
        .x_label_area_size(28)
        .y_label_area_size(96);
    // The segmented axis has one segment per value of the (inclusive) range.
    let y = (0..bars.len() - 1).into_segmented();
    if row.log_scale {
        // Values that span orders of magnitude: a log axis from a power of ten below the
        // smallest.
        let bottom = values().filter(|v| *v > 0.0).fold(f64::MAX, f64::min);
        let base = 10f64.powf(bottom.log10().floor());
        let chart = builder.build_cartesian_2d((base..top * 3.0).log_scale(), y)?;
        draw_bars(chart, base, row, &bars)
    } else {
        let x_max = if top > 0.0 { top * 1.2 } else { 1.0 };
        let chart = builder.build_cartesian_2d(0.0..x_max, y)?;
        draw_bars(chart, 0.0, row, &bars)
    }
}

type YAxis = SegmentedCoord<RangedCoordusize>;

fn draw_bars<DB, X>(
    mut chart: ChartContext<'_, DB, Cartesian2d<X, YAxis>>,
    base: f64,
    row: &Row,
    bars: &[(Kind, f64)],
) -> Result<(), Box<dyn Error>>
where
    DB: DrawingBackend,
    DB::ErrorType: 'static,
    X: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    let label_of = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
            bars.get(*i).map_or("", |b| b.0.label()).to_string()
        }
        SegmentValue::Last => String::new(),
    };
    // At most two decimals, none trailing: an axis step of 0.2 prints 0.6, not
    // 0.6000000000000001.
    let number = |v: &f64| {
        if v.abs() >= 100.0 {
            format!("{v:.0}")
        } else {
            let text = format!("{v:.2}");
            text.trim_end_matches('0').trim_end_matches('.').to_string()
        }
    };
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(bars.len())
        .y_label_formatter(&label_of)
        .x_labels(6)
        .x_label_formatter(&number)
        .light_line_style(WHITE)
        .draw()?;
    let tokengate_colour = RGBColor(31, 78, 121);
    let variant_colour = RGBColor(74, 138, 196);
    let peer_colour = RGBColor(190, 198, 206);
    chart.draw_series(bars.iter().enumerate().map(|(i, (kind, v))| {
        let colour = match kind {
            Kind::Tokengate => tokengate_colour,
            k if k.is_tokengate() => variant_colour,
            _ => peer_colour,
        };
        let mut bar = Rectangle::new(
            [
                (base, SegmentValue::Exact(i)),
                (*v, SegmentValue::Exact(i + 1)),
            ],
            colour.filled(),
        );
        bar.set_margin(3, 3, 0, 0);
        bar
    }))?;
    let value_style = ("sans-serif", 12).into_font().color(&BLACK);
    chart.draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
        Text::new(
            format!(" {}", row.cell(Some(*v))),
            (*v, SegmentValue::CenterOf(i)),
            value_style.clone(),
        )
    }))?;
    if let Some(t) = row.target_line {
        chart.draw_series(std::iter::once(PathElement::new(
            vec![(t, SegmentValue::Exact(0)), (t, SegmentValue::Last)],
            RED.stroke_width(2),
        )))?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------

fn main() {
    let cfg = match Config::from_args() {
        Ok(cfg) => cfg,
        Err(e) => {
            eprintln!("compare: {e}\n\n{USAGE}");
            std::process::exit(2);
        }
    };
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let started = Instant::now();
    let heavy_iters = peers::calibrate(HEAVY_TIME);
    let short_iters = peers::calibrate(SKEW_SHORT_TIME);
    let progress = |what: &str, since: Instant| {
        eprintln!("  {what} done in {:.1} s", since.elapsed().as_secs_f64());
    };
    eprintln!(
        "compare: {} run, {} rounds per figure, {WORKERS} workers per pool, {cores} cores",
        if cfg.quick { "quick" } else { "full" },
        cfg.rounds
    );

    let t = Instant::now();
    let t1 = t1_tiny(&cfg);
    progress("T1 tiny tasks", t);
    let t = Instant::now();
    let (t2, floor) = t2_round_trip(&cfg);
    progress("T2 round trip", t);
    let t = Instant::now();
    let (t3, heavy_ms) = t3_scaling(&cfg, heavy_iters);
    progress("T3 heavy ops", t);
    let t = Instant::now();
    let t4 = t4_idle(&cfg);
    progress("T4 idle CPU", t);
    let t = Instant::now();
    let t5 = t5_light_wait(&cfg, heavy_iters, heavy_ms);
    progress("T5 light wait", t);
    let t = Instant::now();
    let t6 = t6_allocations(&cfg);
    progress("T6 allocations", t);
    let t = Instant::now();
    let t7 = t7_skew(&cfg, short_iters);
    progress("T7 skewed batch", t);
    let t = Instant::now();
    let f1: Vec<_> = fine::FIB_CUTOFFS
        .iter()
        .map(|&cutoff| {
            let (speedups, serial_ms) = f1_fork_join(&cfg, cutoff);
            (cutoff, speedups, serial_ms)
        })
        .collect();
    progress("F1 nested fork-join", t);
    let t = Instant::now();
    let f2 = f2_tiny(&cfg);
    progress("F2 tiny tasks from one thread", t);
    let t = Instant::now();
    let f3 = f3_submitters(&cfg);
    progress("F3 many submitters", t);
    let t = Instant::now();
    let (f4, f4_floor) = f4_round_trip(&cfg);
    progress("F4 round trip", t);
    let fine = Fine {
        f1,
        f2,
        f3,
        f4,
        floor: f4_floor,
    };

    let mut rows = Vec::new();

    let mut row = Row {
        id: "T1",
        columns: columns(),
        title: "tiny tasks".into(),
        unit: "ns/task",
        higher_is_better: false,
        decimals: 0,
        log_scale: true,
        counts: Kind::submits_from_caller,
        values: t1,
        target: "≥ 5× faster than best peer".into(),
        target_line: None,
        met: None,
    };
    if let (Some(tg), Some((_, best))) = (row.tokengate(), row.best_peer()) {
        row.met = Some(tg * T1_FASTER <= best);
        row.target_line = Some(best / T1_FASTER);
    }
    rows.push(row);

    // A cache-line round trip takes well under a microsecond on any machine; a slower one
    // means a thread was descheduled mid-bounce, and a target relative to it means nothing.
    let floor_plausible = floor <= FLOOR_PLAUSIBLE_NS;
    let tg = t2[0].filter(|_| floor_plausible);
    rows.push(Row {
        id: "T2",
        columns: columns(),
        title: "round trip".into(),
        unit: "ns",
        higher_is_better: false,
        decimals: 0,
        log_scale: true,
        counts: any_peer,
        values: t2,
        target: if floor_plausible {
            format!("≤ 2× floor ({floor:.0} ns)")
        } else {
            format!("≤ 2× floor ({floor:.0} ns?!)")
        },
        target_line: Some(2.0 * floor),
        met: tg.map(|tg| tg <= 2.0 * floor),
    });

    let mut row = Row {
        id: "T3",
        columns: columns(),
        title: "heavy speedup".into(),
        unit: "× serial",
        higher_is_better: true,
        decimals: 2,
        log_scale: false,
        counts: any_peer,
        values: t3,
        target: "≥ 1.95× and ≥ every peer".into(),
        target_line: Some(1.95),
        met: None,
    };
    if let Some(tg) = row.tokengate() {
        let best = row.best_peer().map_or(f64::MIN, |b| b.1);
        row.met = Some(tg >= 1.95 && tg >= best);
    }
    rows.push(row);

    let tg = t4[0];
    rows.push(Row {
        id: "T4",
        columns: columns(),
        title: "idle CPU".into(),
        unit: "% core",
        higher_is_better: false,
        decimals: 2,
        log_scale: false,
        counts: any_peer,
        values: t4,
        target: "< 1% of one core".into(),
        target_line: Some(1.0),
        met: tg.map(|tg| tg < 1.0),
    });

    let tg = t5[0];
    rows.push(Row {
        id: "T5",
        columns: columns(),
        title: "light wait".into(),
        unit: "ms",
        higher_is_better: false,
        decimals: 2,
        log_scale: false,
        counts: any_peer,
        values: t5,
        target: format!("≤ one heavy task ({heavy_ms:.1} ms)"),
        target_line: Some(heavy_ms),
        met: tg.map(|tg| tg <= heavy_ms),
    });

    let tg = t6[0];
    rows.push(Row {
        id: "T6",
        columns: columns(),
        title: "allocations".into(),
        unit: "per task",
        higher_is_better: false,
        decimals: 2,
        log_scale: false,
        counts: any_peer,
        values: t6,
        target: "≤ 1".into(),
        target_line: Some(1.0),
        met: tg.map(|tg| tg <= 1.0),
    });

    let rayon = min_rayon(&t7);
    let tg = t7[0];
    rows.push(Row {
        id: "T7",
        columns: columns(),
        title: "skewed batch".into(),
        unit: "ms",
        higher_is_better: false,
        decimals: 2,
        log_scale: false,
        counts: any_peer,
        values: t7,
        target: match rayon {
            Some(r) => format!("≤ rayon's ({r:.2} ms)"),
            None => "≤ rayon's".into(),
        },
        target_line: rayon,
        met: tg.zip(rayon).map(|(tg, r)| tg <= r),
    });

    println!();
    println!(
        "tokengate vs peers: {WORKERS} worker threads each, {cores} cores; \
         each cell the median of {} rounds, implementations interleaved{}",
        cfg.rounds,
        if cfg.quick { " (--quick)" } else { "" }
    );
    println!();
    print_table(&rows);
    println!();
    println!("Notes");
    println!(
        "  tg/best: tokengate ÷ the best peer of the row (lower is better, except T3 where \
         higher is)."
    );
    println!(
        "  T1: {} tiny tasks per measurement; std thread: {} (a thread each, at most \
         {WORKERS} alive).",
        cfg.tiny_tasks, cfg.tiny_tasks_std_thread
    );
    let t1 = &rows[0];
    let versus = |kind: Kind| Some(t1.tokengate()? / t1.value(kind)?);
    println!(
        "      (parenthesised): rayon scope and join submit from a pool worker (scope's body \
         runs on one and spawns onto its deque;\n      join splits the range on the workers), \
         not from the calling thread as T1 sets out: shown, not counted as best peer. \
         tokengate ÷ rayon scope = {}, ÷ rayon join = {}.",
        versus(Kind::RayonScope).map_or("—".into(), |r| format!("{r:.2}×")),
        versus(Kind::RayonJoin).map_or("—".into(), |r| format!("{r:.2}×")),
    );
    println!(
        "  tg batch: T1 only, every task of a measurement submitted with one submit_batch \
         call, then the handles joined. —\n      elsewhere: its round trip (T2, T6), light \
         wait (T5) and idling (T4) run plain tokengate's code, so the tokengate\n      \
         column stands for them; its heavy batches (T3, T7) would go through submit_batch \
         and are not measured here."
    );
    println!(
        "  tg no-metrics: a runtime built with metrics(false) (no timings recorded), T1 and \
         T2 only; — elsewhere."
    );
    match (t1.ratio_of(Kind::TokengateBatch), t1.best_peer()) {
        (Some(r), Some((best, _))) => println!(
            "  T1 tg batch ÷ best peer ({}) = {r:.2}× (the target asks for ≤ {:.2}×: {}; \
             the met column judges plain tokengate).",
            best.label(),
            1.0 / T1_FASTER,
            if r * T1_FASTER <= 1.0 {
                "met"
            } else {
                "not met"
            }
        ),
        _ => println!("  T1 tg batch ÷ best peer: —"),
    }
    let metrics = |row: &Row| {
        let on = row.tokengate()?;
        let off = row.value(Kind::TokengateNoMetrics)?;
        Some(format!(
            "{on:.0} → {off:.0} {} ({:+.1}%)",
            row.unit,
            (off - on) / on * 100.0
        ))
    };
    println!(
        "  metrics on → off (tokengate → tg no-metrics): T1 {}, T2 {}; negative: faster \
         without metrics.",
        metrics(&rows[0]).unwrap_or_else(|| "—".into()),
        metrics(&rows[1]).unwrap_or_else(|| "—".into()),
    );
    println!(
        "  T2: {} round trips per measurement; floor = two threads bouncing one cache line \
         (AtomicUsize ping-pong), {floor:.0} ns per round trip, same rounds.",
        cfg.round_trips
    );
    println!(
        "  T3: {HEAVY_OPS} ops of {heavy_ms:.1} ms (median serial time / {HEAVY_OPS}) on \
         {WORKERS} workers; speedup = median serial ÷ median on the pool."
    );
    println!(
        "  T4: process CPU time (getrusage, all threads) over {:.2} s right after a batch, \
         as % of one core{}.",
        cfg.idle_window.as_secs_f64(),
        if process_cpu_time().is_none() {
            " (not available on this platform)"
        } else {
            ""
        }
    );
    println!(
        "  T5: {BACKLOG_PER_WORKER} heavy tasks per worker queued; the light task arrives \
         half a heavy task after every worker started one. —: no queue (rayon scope/join, \
         a thread per task)."
    );
    println!(
        "  T6: heap allocations by every thread during {} submit + wait-for-result round \
         trips, per task (result channels included for the peers that need one).",
        cfg.counted_tasks
    );
    println!(
        "  T7: {SKEW_TASKS} tasks, {SKEW_LONG} of them {SKEW_FACTOR}× longer, fixed shuffled \
         order; the target compares with the fastest rayon idiom."
    );

    let fine_rows = fine_rows(&cfg, &fine);
    println!();
    println!(
        "Fine-grained figures: tokengate vs peers at 1 and 2 worker threads (as each row \
         says); each cell the median of {} rounds, implementations interleaved{}",
        cfg.rounds,
        if cfg.quick { " (--quick)" } else { "" }
    );
    println!();
    print_table(&fine_rows);
    println!();
    print_fine_notes(&cfg, &fine);

    // Signs that the machine was busy, which make some checks meaningless: say so.
    let mut busy = Vec::new();
    if !floor_plausible {
        busy.push(format!(
            "the cache-line ping-pong took {floor:.0} ns (a quiet machine: well under 1 µs), so \
             a thread was descheduled mid-bounce: T2's target is not judged (n/a) in this run"
        ));
    }
    if fine.floor > FLOOR_PLAUSIBLE_NS {
        busy.push(format!(
            "the cache-line ping-pong took {:.0} ns in F4's rounds: F4's target is not judged \
             (n/a) in this run",
            fine.floor
        ));
    }
    let calibrated_ms = HEAVY_TIME.as_secs_f64() * 1e3;
    if heavy_ms > 1.3 * calibrated_ms {
        busy.push(format!(
            "a heavy op took {heavy_ms:.1} ms serially against {calibrated_ms:.1} ms at \
             calibration: other load shared the cores, so speedups (T3) and times are low"
        ));
    }
    if !busy.is_empty() {
        println!("\nWarning: this machine was busy during the run; rerun on a quiet one.");
        for b in busy {
            println!("  - {b}");
        }
    }

    let title = format!(
        "tokengate vs peers — {WORKERS} workers, {cores} cores, medians of {} rounds{}",
        cfg.rounds,
        if cfg.quick { " (--quick)" } else { "" }
    );
    match write_svg(&cfg.svg, &title, &rows, &fine_rows) {
        Ok(()) => println!("\nchart: {}", cfg.svg.display()),
        Err(e) => {
            eprintln!("compare: could not write {}: {e}", cfg.svg.display());
            std::process::exit(1);
        }
    }
    eprintln!(
        "compare: finished in {:.1} s",
        started.elapsed().as_secs_f64()
    );
}
