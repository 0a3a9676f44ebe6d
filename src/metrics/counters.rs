//! The recording side of the metrics: counters and log-scale histograms, striped so that each
//! worker writes only its own cache lines (no locked instruction, no sharing). Threads that
//! are not workers get one of [`EXTERNAL_STRIPES`] more stripes each, by order of first use
//! (so up to that many submitting threads never share a line; beyond, some share, which stays
//! correct as they use `fetch_add`). Reading sums the stripes.

use crossbeam_utils::CachePadded;

use crate::sync::{bump_exclusive, Ordering, StatCounter};

/// Upper bounds of the histogram buckets, in nanoseconds: powers of 4 from 1 µs to ~17 s; a
/// last bucket takes everything above.
pub(crate) const BUCKET_BOUNDS_NS: [u64; 13] = [
    1_000,
    4_000,
    16_000,
    64_000,
    256_000,
    1_024_000,
    4_096_000,
    16_384_000,
    65_536_000,
    262_144_000,
    1_048_576_000,
    4_194_304_000,
    16_777_216_000,
];

/// Buckets: one per bound plus +Inf.
pub(crate) const BUCKETS: usize = BUCKET_BOUNDS_NS.len() + 1;

#[inline]
fn bucket_of(ns: u64) -> usize {
    BUCKET_BOUNDS_NS
        .iter()
        .position(|&b| ns <= b)
        .unwrap_or(BUCKET_BOUNDS_NS.len())
}

/// Stripes for threads that are not workers.
pub(crate) const EXTERNAL_STRIPES: usize = 8;

/// The stripe of the calling thread when it is not a worker: `workers + k`, where `k` is
/// handed out once per thread, round-robin.
#[inline]
pub(crate) fn external_stripe(workers: usize) -> Stripe {
    use std::cell::Cell;
    use std::sync::atomic::AtomicUsize as StdAtomicUsize;

    static NEXT: StdAtomicUsize = StdAtomicUsize::new(0);
    std::thread_local!(static MINE: Cell<Option<usize>> = const { Cell::new(None) });
    let k = MINE.with(|m| match m.get() {
        Some(k) => k,
        None => {
            // ORDERING: Relaxed: only spreads threads over stripes.
            let k = NEXT.fetch_add(1, Ordering::Relaxed) % EXTERNAL_STRIPES;
            m.set(Some(k));
            k
        }
    });
    Stripe {
        index: workers + k,
        exclusive: false,
    }
}

/// Where a thread records: its stripe, and whether it is that stripe's only writer.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Stripe {
    pub(crate) index: usize,
    pub(crate) exclusive: bool,
}

impl Stripe {
    #[inline]
    pub(crate) fn add(self, counter: &StatCounter, n: u64) {
        if self.exclusive {
            bump_exclusive(counter, n);
        } else {
            // ORDERING: Relaxed: a statistic shared by the threads that are not workers.
            counter.fetch_add(n, Ordering::Relaxed);
        }
    }
}

#[inline]
pub(crate) fn read(counter: &StatCounter) -> u64 {
    // ORDERING: Relaxed: a statistic; snapshots are not atomic across counters.
    counter.load(Ordering::Relaxed)
}

#[derive(Debug, Default)]
pub(crate) struct Histogram {
    pub(crate) buckets: [StatCounter; BUCKETS],
    pub(crate) sum_ns: StatCounter,
}

impl Histogram {
    #[inline]
    pub(crate) fn record(&self, stripe: Stripe, ns: u64) {
        stripe.add(&self.buckets[bucket_of(ns)], 1);
        stripe.add(&self.sum_ns, ns);
    }

    /// Adds this stripe's counts into `buckets` and `sum`.
    pub(crate) fn read_into(&self, buckets: &mut [u64; BUCKETS], sum: &mut u64) {
        for (total, b) in buckets.iter_mut().zip(&self.buckets) {
            *total += read(b);
        }
        *sum += read(&self.sum_ns);
    }
}

/// One stripe of an operation's counters.
#[derive(Debug, Default)]
pub(crate) struct OpCounters {
    pub(crate) submitted: StatCounter,
    pub(crate) completed: StatCounter,
    pub(crate) failed: StatCounter,
    pub(crate) killed: StatCounter,
    pub(crate) timed_out: StatCounter,
    pub(crate) blocked: StatCounter,
    /// Failed attempts that were run again (`retries`).
    pub(crate) retried: StatCounter,
    pub(crate) run_time: Histogram,
    pub(crate) queue_wait: Histogram,
}

/// An operation's counters: one stripe per worker plus one for every other thread.
#[derive(Debug)]
pub(crate) struct StripedOpCounters {
    stripes: Box<[CachePadded<OpCounters>]>,
}

impl StripedOpCounters {
    pub(crate) fn new(workers: usize) -> Self {
        Self {
            stripes: (0..workers + EXTERNAL_STRIPES)
                .map(|_| CachePadded::default())
                .collect(),
        }
    }

    #[inline]
    pub(crate) fn stripe(&self, stripe: Stripe) -> &OpCounters {
        &self.stripes[stripe.index]
    }

    /// The sum over stripes of `field`.
    pub(crate) fn sum(&self, field: impl Fn(&OpCounters) -> &StatCounter) -> u64 {
        self.stripes.iter().map(|s| read(field(s))).sum()
    }

    pub(crate) fn stripes(&self) -> impl Iterator<Item = &OpCounters> {
        self.stripes.iter().map(|s| &**s)
    }
}

/// A worker's own counters (only it writes them).
#[derive(Debug, Default)]
pub(crate) struct WorkerCounters {
    pub(crate) tasks_run: StatCounter,
    pub(crate) tasks_stolen: StatCounter,
    pub(crate) parks: StatCounter,
    /// Busy time of the busy periods that ended.
    pub(crate) busy_ns: StatCounter,
    /// When the busy period in progress began (runtime clock), 0 if none.
    pub(crate) busy_since: StatCounter,
    /// Stack jobs it forked with `join` (pushed on its job deque).
    pub(crate) forks: StatCounter,
    /// Stack jobs it stole from other workers' job deques.
    pub(crate) forks_stolen: StatCounter,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_inclusive_upper_bounds() {
        assert_eq!(bucket_of(0), 0);
        assert_eq!(bucket_of(1_000), 0);
        assert_eq!(bucket_of(1_001), 1);
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
    }
}
