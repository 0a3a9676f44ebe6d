//! A light task's wait under heavy load (T5): every worker busy with a backlog of heavy
//! tasks, how long until a newly submitted light task starts.
//!
//! Run: `cargo bench -p tokengate-benches --bench light_wait`.
//!
//! One iteration: submit 4 heavy tasks per worker (about 2 ms each), wait until every
//! worker has started one, wait half a heavy task more, submit a light task, and time from
//! that submission to the moment the light task starts (`Pool::light_wait` in
//! `benches/peers/mod.rs`). The reported time is that wait only (`iter_custom`); the backlog
//! is drained, untimed, before the next iteration. tokengate tags the backlog
//! `Weight::Heavy` and the light task `Weight::Light`; the peers run their queues in
//! submission order, so their light task waits for the whole backlog. rayon's `scope`/`join`
//! and a thread per task have no queue to wait in and are left out.
//!
//! The target (DESIGN T5) is a wait of at most one heavy task's duration. These benchmarks
//! print figures; they never assert times.

mod peers;

use std::time::Duration;

use criterion::{Criterion, SamplingMode};
use peers::{Kind, Pool, WORKERS};

/// Heavy tasks queued per worker.
const BACKLOG_PER_WORKER: usize = 4;
/// The duration of one heavy task, roughly (short, to keep the bench quick).
const HEAVY_TIME: Duration = Duration::from_millis(2);

fn light_wait(c: &mut Criterion) {
    let heavy_iters = peers::calibrate(HEAVY_TIME);
    let backlog = BACKLOG_PER_WORKER * WORKERS;

    let mut group = c.benchmark_group("light_wait");
    // Each iteration takes a whole backlog of wall time but reports only the light task's
    // wait, which criterion plans by: short warm-up and measurement times keep it quick.
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_millis(500));
    for kind in Kind::COMPARED.into_iter().filter(|k| k.has_queue()) {
        let pool = Pool::new(kind, WORKERS);
        group.bench_function(kind.name(), |b| {
            b.iter_custom(|iters| {
                (0..iters)
                    .map(|_| {
                        pool.light_wait(heavy_iters, backlog, HEAVY_TIME / 2)
                            .expect("a pool with a queue")
                    })
                    .sum()
            })
        });
    }
    group.finish();
}

fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    light_wait(&mut criterion);
    criterion.final_summary();
}
