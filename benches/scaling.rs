//! Heavy-op scaling (T3): 16 CPU-heavy operations of about 9 ms each, serially and on
//! 1..=cores workers of tokengate and of every peer, in the same run.
//!
//! Run: `cargo bench -p tokengate-benches --bench scaling`.
//!
//! The operation is `peers::burn`, calibrated at start-up to take about 9 ms on this
//! machine, so every implementation runs exactly the same instructions. Criterion ids are
//! `heavy_ops/<implementation>/<workers>` and `heavy_ops/serial`; the speedup at w workers is
//! `serial / <implementation>/<w>`. tokengate submits them as a `Weight::Heavy` operation.
//! On a machine with other load, the scaling figure is the first to suffer: compare within
//! one run. These benchmarks print figures; they never assert times.

mod peers;

use std::time::Duration;

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput};
use peers::{Kind, Pool, HEAVY};

/// Heavy operations per iteration.
const OPS: usize = 16;
/// The duration of one heavy operation on this machine, roughly.
const OP_TIME: Duration = Duration::from_millis(9);

fn heavy_ops(c: &mut Criterion) {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let costs = peers::heavy_costs(OPS, peers::calibrate(OP_TIME));
    let task = peers::burn_task(costs);

    let mut group = c.benchmark_group("heavy_ops");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(OPS as u64));

    group.bench_function("serial", |b| b.iter(|| (0..OPS).for_each(task)));
    for workers in 1..=cores {
        for kind in Kind::COMPARED {
            let pool = Pool::new(kind, workers);
            group.bench_with_input(BenchmarkId::new(kind.name(), workers), &workers, |b, _| {
                b.iter(|| pool.batch(OPS, &HEAVY, task))
            });
        }
    }
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    heavy_ops(&mut criterion);
    criterion.final_summary();
}
