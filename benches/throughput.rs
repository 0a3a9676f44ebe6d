//! Tiny-task throughput (T1) and the submit → join round trip (T2) with its physical floor:
//! tokengate beside its peers on the same work, in the same run.
//!
//! Run: `cargo bench -p tokengate-benches --bench throughput` (one group: append its name,
//! e.g. `-- round_trip`).
//!
//! | group | DESIGN target | work per iteration |
//! | --- | --- | --- |
//! | `tiny_tasks` | T1 | submit 10 000 tiny tasks from one thread, wait for all (std::thread: 1 000, a thread each) |
//! | `round_trip` | T2 | one submit + wait for the result of a trivial task on a warm pool; `cache_line_ping_pong_floor` is the physical floor |
//!
//! Besides tokengate and its peers, both groups measure `tokengate_unpinned` (what pinning
//! buys or costs) and `tokengate_no_metrics` (a runtime built with `metrics(false)`: what
//! recording timings costs), and `tiny_tasks` also `tokengate_batch` (all tasks of an
//! iteration submitted with one `submit_batch`), so that each variant sits beside plain
//! `tokengate` in one run.
//!
//! The implementations, and how each submits and waits, are listed in `benches/peers/mod.rs`.
//! Every pool has 2 worker threads and is built once, outside the timed loop; only one pool
//! is alive at a time. On a 2-core machine the submitting thread plus two workers
//! oversubscribe the cores; that is the same setting for every implementation. rayon's
//! `scope` and `join` run their bodies on a pool worker, so there the calling thread just
//! sleeps. Criterion reports throughput per task (`Throughput::Elements`).
//!
//! T4 (idle CPU) and T6 (allocations per task) are not here: neither is a time per
//! iteration, which is what criterion's statistics model. `demos/examples/compare.rs` measures
//! them, beside every other figure.
//!
//! On a shared or virtualised machine the figures swing from run to run: compare
//! implementations within one run, on a quiet machine. These benchmarks print figures; they
//! never assert times.

mod peers;

use std::time::Duration;

use criterion::{BenchmarkGroup, Criterion, Throughput};
use peers::{Kind, PingPong, Pool, DEFAULT, WORKERS};

/// Tasks per iteration of `tiny_tasks`.
const N: usize = 10_000;
/// Tasks per iteration of `tiny_tasks` for `std_thread`: a thread per task costs tens of
/// microseconds, so it gets fewer (its throughput per task is what compares).
const N_STD_THREAD: usize = 1_000;

type Group<'a> = BenchmarkGroup<'a, criterion::measurement::WallTime>;

fn configure(group: &mut Group<'_>) {
    group
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
}

/// Everything compared, with the tokengate `variants` right after plain tokengate.
fn kinds(variants: &'static [Kind]) -> impl Iterator<Item = Kind> {
    Kind::COMPARED
        .into_iter()
        .take(1)
        .chain(variants.iter().copied())
        .chain(Kind::COMPARED.into_iter().skip(1))
}

/// The tokengate variants of T1: unpinned, one `submit_batch` per iteration, metrics off.
const T1_VARIANTS: [Kind; 3] = [
    Kind::TokengateUnpinned,
    Kind::TokengateBatch,
    Kind::TokengateNoMetrics,
];
/// The tokengate variants of T2: unpinned, metrics off (a round trip submits one task, so
/// there is no batch to submit).
const T2_VARIANTS: [Kind; 2] = [Kind::TokengateUnpinned, Kind::TokengateNoMetrics];

/// T1: many tiny tasks from one thread, waiting for all.
fn tiny_tasks(c: &mut Criterion) {
    let mut group = c.benchmark_group("tiny_tasks");
    configure(&mut group);
    group.sample_size(20);
    for kind in kinds(&T1_VARIANTS) {
        let n = if kind == Kind::StdThread {
            N_STD_THREAD
        } else {
            N
        };
        group.throughput(Throughput::Elements(n as u64));
        let pool = Pool::new(kind, WORKERS);
        group.bench_function(kind.name(), |b| {
            b.iter(|| pool.batch(n, &DEFAULT, peers::tiny))
        });
    }
    group.finish();
}

/// T2: one submit + join of a trivial task on a warm pool, and the cache-line floor.
fn round_trip(c: &mut Criterion) {
    let mut group = c.benchmark_group("round_trip");
    configure(&mut group);
    group.throughput(Throughput::Elements(1));
    for kind in kinds(&T2_VARIANTS) {
        let pool = Pool::new(kind, WORKERS);
        group.bench_function(kind.name(), |b| b.iter(|| pool.round_trip()));
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
    let mut criterion = Criterion::default().configure_from_args();
    tiny_tasks(&mut criterion);
    round_trip(&mut criterion);
    criterion.final_summary();
}
