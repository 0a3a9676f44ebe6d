//! Makespan of a skewed batch (T7): 64 tasks, 4 of them 20 times longer than the rest, in a
//! fixed shuffled order; the time from the first submission until all are done.
//!
//! Run: `cargo bench -p tokengate-benches --bench skew`.
//!
//! A short task is about 0.5 ms of `peers::burn` (calibrated at start-up), a long one about
//! 10 ms; the order comes from a fixed-seed shuffle, the same for every implementation and
//! every run. tokengate submits every task with the default operation: the point is how the
//! scheduler spreads uneven work, not a weight a caller would have to know to give. The
//! target (DESIGN T7) is a makespan no longer than rayon's in the same run. These
//! benchmarks print figures; they never assert times.

mod peers;

use std::time::Duration;

use criterion::{Criterion, SamplingMode, Throughput};
use peers::{Kind, Pool, DEFAULT, WORKERS};

const TASKS: usize = 64;
const LONG_TASKS: usize = 4;
const LONG_FACTOR: u64 = 20;
const SHORT_TIME: Duration = Duration::from_micros(500);

fn skewed_batch(c: &mut Criterion) {
    let costs = peers::skewed_costs(TASKS, LONG_TASKS, LONG_FACTOR, peers::calibrate(SHORT_TIME));
    let task = peers::burn_task(costs);

    let mut group = c.benchmark_group("skewed_batch");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_secs(1))
        .throughput(Throughput::Elements(TASKS as u64));
    for kind in Kind::COMPARED {
        let pool = Pool::new(kind, WORKERS);
        group.bench_function(kind.name(), |b| {
            b.iter(|| pool.batch(TASKS, &DEFAULT, task))
        });
    }
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    skewed_batch(&mut criterion);
    criterion.final_summary();
}
