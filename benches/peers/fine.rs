//! The fine-grained figures F1–F4: tasks so small that the cost of a task is the figure.
//!
//! | id | what | how |
//! | --- | --- | --- |
//! | F1 | nested fork-join | `fib(34)`, each call at or above a cut-off forking `fib(n - 1)` and computing `fib(n - 2)` itself, on [`ForkJoin`] |
//! | F2 | tiny tasks from one thread | [`Pool::batch`] of [`empty`] tasks ([`SUBMIT_KINDS`]) |
//! | F3 | many submitters | [`Pool::batch_from`]: as many submitting threads as workers, each with its own batch |
//! | F4 | round trip | [`Pool::round_trip`] ([`ROUND_TRIP_KINDS`]) |
//!
//! Each is measured at 1 and at 2 workers ([`FINE_WORKERS`]): the 1-worker figure is the
//! per-task cost with no other worker to share with, the 2-worker one adds what sharing costs
//! (stealing, cache lines that move between cores).

use std::hint::black_box;
use std::num::NonZeroUsize;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::{Duration, Instant};

use tokengate::{Operation, Runtime};

use super::{tokengate_runtime, Kind, Pool, LATCH};

/// The worker counts every F-figure is measured at.
pub(crate) const FINE_WORKERS: [usize; 2] = [1, 2];

/// F1: the argument of the whole computation.
pub(crate) const FIB_N: u32 = 34;
/// F1: below a cut-off a call is computed serially; at or above it, it forks (submits one
/// task). For `fib(34)`: with 12, 75,024 forks, a fraction of a microsecond of serial work
/// each; with 20, 1,596 forks, several microseconds each ([`forks`] counts them).
pub(crate) const FIB_CUTOFFS: [u32; 2] = [12, 20];

/// F1's implementations: tokengate's nested submit + join and its `join`, and the two peers
/// built for fork-join.
pub(crate) const FORK_JOIN_KINDS: [Kind; 4] = [
    Kind::Tokengate,
    Kind::TokengateJoin,
    Kind::RayonJoin,
    Kind::Chili,
];
/// F2's and F3's implementations: tokengate with its handles joined, submitted in one
/// `submit_batch`, or dropped, beside rayon's `spawn` (the common way to hand rayon a task
/// from outside) and the channel pool (the fastest peer of T1).
pub(crate) const SUBMIT_KINDS: [Kind; 5] = [
    Kind::Tokengate,
    Kind::TokengateBatch,
    Kind::TokengateDropped,
    Kind::RayonSpawn,
    Kind::ChannelPool,
];
/// F4's implementations.
pub(crate) const ROUND_TRIP_KINDS: [Kind; 3] =
    [Kind::Tokengate, Kind::RayonSpawn, Kind::ChannelPool];

/// The task of F2 and F3: nothing, so that what is measured is the task itself.
#[inline]
pub(crate) fn empty(_: usize) {}

/// `fib(n)` by plain recursion, the optimiser kept from computing it at compile time or
/// merging it with the code around it (`black_box` on the way in and out): F1's serial part
/// below the cut-off, and its serial baseline.
#[inline]
pub(crate) fn serial_fib(n: u32) -> u64 {
    black_box(fib_rec(black_box(n)))
}

#[inline(never)]
fn fib_rec(n: u32) -> u64 {
    if n < 2 {
        u64::from(n)
    } else {
        fib_rec(n - 1) + fib_rec(n - 2)
    }
}

/// How many calls of `fib(n)` fork (those at or above `cutoff`): F1's task count.
pub(crate) fn forks(n: u32, cutoff: u32) -> u64 {
    // forks(k) = 1 + forks(k - 1) + forks(k - 2) at or above the cut-off, 0 below it.
    let (mut below, mut last) = (0u64, 0u64);
    for _ in cutoff..=n {
        (below, last) = (last, 1 + last + below);
    }
    last
}

/// F1's pools: each runs `fib(n)` by nested fork-join with every pool thread taking part.
///
/// - tokengate: the root is submitted from the calling thread and joined there; every call
///   at or above the cut-off submits `fib(n - 1)` to the runtime it runs on, computes
///   `fib(n - 2)`, and joins the handle, which on a worker runs the task inline if no other
///   worker took it, or helps with other tasks until it is done. The runtime is pinned
///   (unpinned if this machine refuses), with the default capacity. A task reaches its
///   runtime through `tokengate::spawn` (the runtime of the worker it runs on), as a program
///   would write it. (Until 2026-12-08 an `Arc<Runtime>` was cloned into each fork: its
///   reference count, one cache line both workers write twice per fork, cost about 30 % of the
///   two-worker speedup once the task cells' states stopped sharing lines.)
/// - rayon: `ThreadPool::install` of a recursive `rayon::join(fib(n - 2), fib(n - 1))`,
///   where the second closure is the one other threads may steal, as tokengate's submitted
///   `fib(n - 1)` is.
/// - chili: `Scope::join(fib(n - 1), fib(n - 2))`, where the first is the one shared. A
///   chili pool of `n` threads counts the calling thread as one of them: it starts `n - 1`
///   worker threads (and a heartbeat thread), and its scope runs on the caller.
#[derive(Debug)]
pub(crate) struct ForkJoin {
    kind: Kind,
    inner: ForkJoinInner,
}

#[derive(Debug)]
enum ForkJoinInner {
    Tokengate(Arc<Runtime>),
    Rayon(rayon::ThreadPool),
    Chili(chili::ThreadPool),
}

impl ForkJoin {
    /// A pool of `kind` (one of [`FORK_JOIN_KINDS`]) with `workers` threads.
    pub(crate) fn new(kind: Kind, workers: usize) -> Self {
        let inner = match kind {
            Kind::Tokengate | Kind::TokengateJoin => {
                ForkJoinInner::Tokengate(Arc::new(tokengate_runtime(workers, true, true)))
            }
            Kind::RayonJoin => ForkJoinInner::Rayon(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(workers)
                    .build()
                    .expect("a rayon pool builds"),
            ),
            Kind::Chili => ForkJoinInner::Chili(chili::ThreadPool::with_config(chili::Config {
                thread_count: NonZeroUsize::new(workers),
                ..chili::Config::default()
            })),
            other => panic!("{} is not a fork-join pool of F1", other.name()),
        };
        Self { kind, inner }
    }

    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }

    /// `fib(n)`, forking at and above `cutoff`, entirely on the pool's threads.
    pub(crate) fn fib(&self, n: u32, cutoff: u32) -> u64 {
        match &self.inner {
            ForkJoinInner::Tokengate(rt) if self.kind == Kind::TokengateJoin => rt
                .spawn(move || tokengate_join_fib(n, cutoff))
                .join()
                .expect("the root task ran"),
            ForkJoinInner::Tokengate(rt) => rt
                .spawn(move || tokengate_fib(n, cutoff))
                .join()
                .expect("the root task ran"),
            ForkJoinInner::Rayon(pool) => pool.install(|| rayon_fib(n, cutoff)),
            ForkJoinInner::Chili(pool) => chili_fib(&mut pool.scope(), n, cutoff),
        }
    }
}

fn tokengate_fib(n: u32, cutoff: u32) -> u64 {
    if n < cutoff {
        return serial_fib(n);
    }
    let left = tokengate::spawn(move || tokengate_fib(n - 1, cutoff));
    let right = tokengate_fib(n - 2, cutoff);
    left.join().expect("a fib task ran") + right
}

fn tokengate_join_fib(n: u32, cutoff: u32) -> u64 {
    if n < cutoff {
        return serial_fib(n);
    }
    let (left, right) = tokengate::join(
        || tokengate_join_fib(n - 1, cutoff),
        || tokengate_join_fib(n - 2, cutoff),
    );
    left + right
}

fn rayon_fib(n: u32, cutoff: u32) -> u64 {
    if n < cutoff {
        return serial_fib(n);
    }
    let (right, left) = rayon::join(|| rayon_fib(n - 2, cutoff), || rayon_fib(n - 1, cutoff));
    left + right
}

fn chili_fib(scope: &mut chili::Scope<'_>, n: u32, cutoff: u32) -> u64 {
    if n < cutoff {
        return serial_fib(n);
    }
    let (left, right) = scope.join(
        |s| chili_fib(s, n - 1, cutoff),
        |s| chili_fib(s, n - 2, cutoff),
    );
    left + right
}

impl Pool {
    /// F3: `submitters` threads, released together, each submit `n` tasks `task(0..n)` and
    /// wait for them as [`Pool::batch`] does; returns the time from their release until
    /// every task has run and every submitter has returned.
    ///
    /// The kinds that wait on the one countdown [`LATCH`] ([`Pool::counts_on_latch`]) arm it
    /// here for all `submitters × n` tasks and wait on it from the calling thread, since the
    /// latch has a single waiter; the others (tokengate's handles, rayon's scope) have each
    /// submitter wait for its own batch.
    pub(crate) fn batch_from<F>(
        &self,
        submitters: usize,
        n: usize,
        op: &Operation,
        task: F,
    ) -> Duration
    where
        F: Fn(usize) + Copy + Send + Sync + 'static,
    {
        let latch = self.counts_on_latch();
        if latch {
            LATCH.arm(submitters * n);
        }
        let go = Barrier::new(submitters + 1);
        thread::scope(|s| {
            let threads: Vec<_> = (0..submitters)
                .map(|_| {
                    s.spawn(|| {
                        go.wait();
                        let start = Instant::now();
                        if latch {
                            for i in 0..n {
                                self.spawn_counted(op, move || task(i));
                            }
                        } else {
                            self.batch(n, op, task);
                        }
                        start
                    })
                })
                .collect();
            go.wait();
            if latch {
                LATCH.wait();
            }
            // From the first submitter's start, not from the calling thread's release from the
            // barrier: the caller may be descheduled there while the submitters already run
            // (three or more threads on two cores), and a start taken late made a short run
            // look impossibly fast.
            let start = threads
                .into_iter()
                .map(|t| t.join().expect("a submitter ran"))
                .min()
                .expect("at least one submitter");
            start.elapsed()
        })
    }
}
