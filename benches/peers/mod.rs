//! tokengate and its peers behind one interface, and the work they are all given.
//!
//! Shared by the criterion benches (`mod peers;`) and by `demos/examples/compare.rs`
//! (`#[path = "../../benches/peers/mod.rs"] mod peers;`), so that the benches and the comparison
//! table measure the very same code.
//!
//! Every implementation is a [`Pool`] of [`WORKERS`] worker threads (unless a bench asks for
//! another count) and offers the same three operations:
//!
//! - [`Pool::batch`]: `n` tasks submitted one by one from the calling thread, then wait for
//!   all of them (T1 with a tiny task, T3 and T7 with CPU-heavy ones);
//! - [`Pool::round_trip`]: submit one trivial task and wait for its result (T2, T6);
//! - [`Pool::light_wait`]: every worker busy with a heavy backlog, how long until a newly
//!   submitted light task starts (T5).
//!
//! The fine-grained figures F1–F4 add two things, in [`fine`]: nested fork-join
//! ([`fine::ForkJoin`], F1, where chili joins the peers) and a batch submitted by several
//! threads at once ([`Pool::batch_from`], F3); F2 and F4 are [`Pool::batch`] and
//! [`Pool::round_trip`] at 1 and 2 workers.
//!
//! How each implementation does them:
//!
//! | kind | batch: submit, then wait for all | round trip: submit, then get the result |
//! | --- | --- | --- |
//! | tokengate | `submit` each, keep the handles, `join` them | `spawn(..).join()` |
//! | tokengate batch | one `submit_batch` of all `n` closures, `join` the handles | as tokengate |
//! | tokengate no metrics | as tokengate, on a runtime built with `metrics(false)` | as tokengate |
//! | tokengate dropped | `submit` each, drop the handle at once, count down the latch | as tokengate |
//! | rayon spawn | `ThreadPool::spawn` + a countdown latch | `ThreadPool::spawn` + a oneshot channel |
//! | rayon scope | `ThreadPool::scope`, `s.spawn` each | `scope` with one `s.spawn` |
//! | rayon join | `install` a recursive `rayon::join` over the index range | `ThreadPool::join(task, noop)` |
//! | channel pool | boxed jobs on one crossbeam channel + a countdown latch | the same + a oneshot channel |
//! | threadpool | `ThreadPool::execute` + a countdown latch | `execute` + a oneshot channel |
//! | std::thread | a thread per task, at most `workers` alive; the next starts when one ends | `thread::spawn(..).join()` |
//! | tokio blocking | `Runtime::spawn_blocking` + a countdown latch | `spawn_blocking` + a oneshot channel |
//!
//! The "oneshot channel" is a `crossbeam_channel::bounded(1)` made per task; the countdown
//! latch is one shared atomic counter whose last decrement unparks the waiter. Both are the
//! cheapest common ways for a pool without result handles to hand back a result or a
//! completion; tokengate's handles carry the result of every task, which is more work, not
//! less. The tokengate variants isolate one change each against plain tokengate: the batch
//! submission API (only [`Pool::batch`] differs; the round trip, the heavy backlog and light
//! task of [`Pool::light_wait`], and idling are plain tokengate's code), the cost of recording
//! timings (`Builder::metrics(false)`; every operation as plain tokengate), and the cost of
//! keeping a handle per task (dropped handles, completion counted on the latch as the peers
//! without handles count it; only [`Pool::batch`] and [`Pool::batch_from`] differ).
//! tokio's `JoinHandle` is a future; waiting for it from synchronous code takes a
//! `block_on`, so tokio uses the same channel as the others. tokio's runtime is built with
//! `max_blocking_threads(workers)` (the threads that run the work) and one async worker
//! thread, which stays parked: a multi-thread runtime cannot have none.
//!
//! Nothing here spins a thread while another implementation runs, with one exception that
//! only runs alone: [`PingPong`], the physical floor of T2, where two threads spin on one
//! cache line by design (and yield their core if a wait gets long).

// Each bench uses part of this module; the example uses all of it.
#![allow(dead_code)]

pub(crate) mod fine;

use std::hint::{black_box, spin_loop};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle, Thread};
use std::time::{Duration, Instant};

use crossbeam_channel::{bounded, unbounded, Sender};
use tokengate::{Operation, Runtime, Weight};

/// Worker threads per pool: the cores of the machine the targets are set for.
pub(crate) const WORKERS: usize = 2;

/// tokengate's operation for CPU-heavy tasks (T3, and the backlog of T5).
pub(crate) const HEAVY: Operation = Operation::new("heavy").weight(Weight::Heavy);
/// tokengate's operation for the latency-sensitive task of T5.
pub(crate) const LIGHT: Operation = Operation::new("light").weight(Weight::Light);
/// tokengate's operation for everything else (T1, T7): the default, Medium.
pub(crate) const DEFAULT: Operation = Operation::DEFAULT;

/// The implementations compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    /// tokengate, workers pinned to cores (unpinned if this machine refuses).
    Tokengate,
    /// tokengate with `pin(false)`: what pinning buys or costs (benches only).
    TokengateUnpinned,
    /// tokengate, pinned, whose [`Pool::batch`] submits all its tasks with one
    /// `Runtime::submit_batch`; everything else as [`Kind::Tokengate`].
    TokengateBatch,
    /// tokengate, pinned, built with `metrics(false)` (no timings recorded); everything else
    /// as [`Kind::Tokengate`].
    TokengateNoMetrics,
    /// tokengate, pinned, whose [`Pool::batch`] and [`Pool::batch_from`] drop every handle
    /// as soon as the task is submitted (fire and forget) and wait on the countdown latch, as
    /// the peers without handles do; everything else as [`Kind::Tokengate`].
    TokengateDropped,
    /// tokengate's `join` (fork-join on the stack): a peer of F1 only ([`fine::ForkJoin`]),
    /// as [`Kind::Chili`].
    TokengateJoin,
    /// A rayon pool, `ThreadPool::spawn` from outside.
    RayonSpawn,
    /// A rayon pool, `ThreadPool::scope`.
    RayonScope,
    /// A rayon pool, `rayon::join` (divide and conquer).
    RayonJoin,
    /// Worker threads on one crossbeam-channel of boxed jobs.
    ChannelPool,
    /// The `threadpool` crate.
    ThreadPool,
    /// A thread per task, `std::thread::spawn`.
    StdThread,
    /// tokio's blocking pool, `Runtime::spawn_blocking`.
    TokioBlocking,
    /// chili's fork-join, `Scope::join`: a peer of F1 only ([`fine::ForkJoin`]). chili has
    /// no way to hand a task to its pool from a thread outside it, so it is no [`Pool`].
    Chili,
}

impl Kind {
    /// tokengate first, then every peer: the columns of the comparison table.
    pub(crate) const COMPARED: [Kind; 8] = [
        Kind::Tokengate,
        Kind::RayonSpawn,
        Kind::RayonScope,
        Kind::RayonJoin,
        Kind::ChannelPool,
        Kind::ThreadPool,
        Kind::StdThread,
        Kind::TokioBlocking,
    ];

    /// A name for criterion ids and command lines.
    pub(crate) const fn name(self) -> &'static str {
        match self {
            Kind::Tokengate => "tokengate",
            Kind::TokengateUnpinned => "tokengate_unpinned",
            Kind::TokengateBatch => "tokengate_batch",
            Kind::TokengateNoMetrics => "tokengate_no_metrics",
            Kind::TokengateDropped => "tokengate_dropped",
            Kind::TokengateJoin => "tokengate_join",
            Kind::RayonSpawn => "rayon_spawn",
            Kind::RayonScope => "rayon_scope",
            Kind::RayonJoin => "rayon_join",
            Kind::ChannelPool => "channel_pool",
            Kind::ThreadPool => "threadpool",
            Kind::StdThread => "std_thread",
            Kind::TokioBlocking => "tokio_blocking",
            Kind::Chili => "chili",
        }
    }

    /// A short name for table headers and chart labels.
    pub(crate) const fn label(self) -> &'static str {
        match self {
            Kind::Tokengate => "tokengate",
            Kind::TokengateUnpinned => "tg unpinned",
            Kind::TokengateBatch => "tg batch",
            Kind::TokengateNoMetrics => "tg no-metrics",
            Kind::TokengateDropped => "tg dropped",
            Kind::TokengateJoin => "tg join",
            Kind::RayonSpawn => "rayon spawn",
            Kind::RayonScope => "rayon scope",
            Kind::RayonJoin => "rayon join",
            Kind::ChannelPool => "chan pool",
            Kind::ThreadPool => "threadpool",
            Kind::StdThread => "std thread",
            Kind::TokioBlocking => "tokio blk",
            Kind::Chili => "chili",
        }
    }

    /// tokengate itself or one of its variants.
    pub(crate) const fn is_tokengate(self) -> bool {
        matches!(
            self,
            Kind::Tokengate
                | Kind::TokengateUnpinned
                | Kind::TokengateBatch
                | Kind::TokengateNoMetrics
                | Kind::TokengateDropped
                | Kind::TokengateJoin
        )
    }

    pub(crate) const fn is_rayon(self) -> bool {
        matches!(self, Kind::RayonSpawn | Kind::RayonScope | Kind::RayonJoin)
    }

    /// Whether tasks are submitted by the calling thread itself, from outside the pool. rayon's
    /// `scope` runs its body on a pool worker, which spawns onto its own deque, and `join`
    /// splits the work on the workers: neither is T1's setting (tasks submitted one by one
    /// from a thread of the application).
    pub(crate) const fn submits_from_caller(self) -> bool {
        !matches!(
            self,
            Kind::RayonScope | Kind::RayonJoin | Kind::TokengateJoin
        )
    }

    /// Whether the implementation has a queue that a task submitted from outside waits in
    /// ([`Pool::light_wait`] means something): rayon's scope and join run their tasks from
    /// inside the pool, and a thread per task has no queue.
    pub(crate) const fn has_queue(self) -> bool {
        !matches!(
            self,
            Kind::RayonScope | Kind::RayonJoin | Kind::TokengateJoin | Kind::StdThread
        )
    }
}

/// A running pool of one [`Kind`]. Dropping it stops its threads (rayon's and threadpool's
/// finish exiting shortly after the drop returns).
pub(crate) struct Pool {
    kind: Kind,
    workers: usize,
    inner: Inner,
}

enum Inner {
    Tokengate(Runtime),
    Rayon(rayon::ThreadPool),
    Channel(ChannelPool),
    ThreadPool(threadpool::ThreadPool),
    StdThread,
    Tokio(tokio::runtime::Runtime),
}

impl Pool {
    /// Starts a pool of `kind` with `workers` worker threads.
    ///
    /// # Panics
    ///
    /// For [`Kind::Chili`] and [`Kind::TokengateJoin`], measured only by [`fine::ForkJoin`].
    pub(crate) fn new(kind: Kind, workers: usize) -> Self {
        let inner = match kind {
            Kind::Tokengate | Kind::TokengateBatch | Kind::TokengateDropped => {
                Inner::Tokengate(tokengate_runtime(workers, true, true))
            }
            Kind::TokengateUnpinned => Inner::Tokengate(tokengate_runtime(workers, false, true)),
            Kind::TokengateNoMetrics => Inner::Tokengate(tokengate_runtime(workers, true, false)),
            Kind::RayonSpawn | Kind::RayonScope | Kind::RayonJoin => Inner::Rayon(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(workers)
                    .build()
                    .expect("a rayon pool builds"),
            ),
            Kind::ChannelPool => Inner::Channel(ChannelPool::new(workers)),
            Kind::ThreadPool => Inner::ThreadPool(threadpool::ThreadPool::new(workers)),
            Kind::StdThread => Inner::StdThread,
            Kind::TokioBlocking => Inner::Tokio(
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(1)
                    .max_blocking_threads(workers)
                    .build()
                    .expect("a tokio runtime builds"),
            ),
            Kind::Chili | Kind::TokengateJoin => {
                panic!(
                    "{} runs nested fork-join only: see fine::ForkJoin",
                    kind.name()
                )
            }
        };
        Self {
            kind,
            workers,
            inner,
        }
    }

    pub(crate) fn kind(&self) -> Kind {
        self.kind
    }

    /// Runs `task(i)` for every `i` in `0..n`, as `n` tasks submitted one by one from the
    /// calling thread, and returns when all have run. `op` is tokengate's operation for them
    /// (the peers have no such notion). [`Kind::TokengateBatch`] submits the `n` tasks with
    /// one `submit_batch` call instead; [`Kind::TokengateDropped`] drops each handle at once
    /// and waits on the latch.
    pub(crate) fn batch<F>(&self, n: usize, op: &Operation, task: F)
    where
        F: Fn(usize) + Copy + Send + Sync + 'static,
    {
        match &self.inner {
            Inner::Tokengate(rt) if self.kind == Kind::TokengateBatch => {
                for h in rt.submit_batch(op, (0..n).map(|i| move || task(i))) {
                    h.join().expect("a tokengate task ran");
                }
            }
            Inner::Tokengate(rt) if !self.counts_on_latch() => {
                let handles: Vec<_> = (0..n).map(|i| rt.submit(op, move || task(i))).collect();
                for h in handles {
                    h.join().expect("a tokengate task ran");
                }
            }
            Inner::Rayon(pool) if self.kind == Kind::RayonScope => pool.scope(|s| {
                for i in 0..n {
                    s.spawn(move |_| task(i));
                }
            }),
            Inner::Rayon(pool) if self.kind == Kind::RayonJoin => {
                pool.install(|| join_range(0, n, task))
            }
            Inner::StdThread => std_thread_batch(self.workers, n, task),
            _ => {
                LATCH.arm(n);
                for i in 0..n {
                    self.spawn_counted(op, move || task(i));
                }
                LATCH.wait();
            }
        }
    }

    /// Whether [`Pool::batch`] waits for its tasks on the countdown [`LATCH`] (the pools
    /// without result handles, and tokengate with its handles dropped) rather than on
    /// handles, a scope, a join or threads of its own.
    pub(crate) fn counts_on_latch(&self) -> bool {
        match &self.inner {
            Inner::Tokengate(_) => self.kind == Kind::TokengateDropped,
            Inner::Rayon(_) => self.kind == Kind::RayonSpawn,
            Inner::Channel(_) | Inner::ThreadPool(_) | Inner::Tokio(_) => true,
            Inner::StdThread => false,
        }
    }

    /// Submits one trivial task and waits for its result.
    pub(crate) fn round_trip(&self) -> usize {
        match &self.inner {
            Inner::Tokengate(rt) => rt.spawn(|| black_box(1usize)).join().expect("task ran"),
            Inner::Rayon(pool) if self.kind == Kind::RayonScope => {
                let mut out = 0;
                pool.scope(|s| s.spawn(|_| out = black_box(1usize)));
                out
            }
            Inner::Rayon(pool) if self.kind == Kind::RayonJoin => {
                pool.join(|| black_box(1usize), || ()).0
            }
            Inner::StdThread => thread::spawn(|| black_box(1usize))
                .join()
                .expect("thread ran"),
            _ => {
                let (tx, rx) = bounded(1);
                self.spawn_detached(move || {
                    let _ = tx.send(black_box(1usize));
                });
                rx.recv().expect("task ran")
            }
        }
    }

    /// T5: submits `backlog` heavy tasks (`burn(heavy_iters)` each), waits until every worker
    /// has started one, waits `arrive_after` more (the light task arrives part-way through
    /// the running heavy tasks, as a request at a random moment would), then submits a light
    /// task and returns how long it waited to start. Returns only after the whole backlog
    /// has run. `None` for kinds without a queue ([`Kind::has_queue`]).
    ///
    /// tokengate submits the heavy tasks as [`HEAVY`] (`Weight::Heavy`) and the light one as
    /// [`LIGHT`] (`Weight::Light`); every peer runs its queue in submission order.
    pub(crate) fn light_wait(
        &self,
        heavy_iters: u64,
        backlog: usize,
        arrive_after: Duration,
    ) -> Option<Duration> {
        if !self.kind.has_queue() {
            return None;
        }
        assert!(
            backlog >= self.workers,
            "the backlog must occupy every worker"
        );
        let (started_tx, started_rx) = unbounded::<()>();
        let (began_tx, began_rx) = bounded::<Instant>(1);
        let heavy = move || {
            let _ = started_tx.send(());
            black_box(burn(heavy_iters));
        };
        let light = move || {
            let _ = began_tx.send(Instant::now());
        };
        // The submitter blocks in `recv` and `sleep`: it takes no core from the workers.
        let arrive = || {
            for _ in 0..self.workers {
                started_rx.recv().expect("a heavy task started");
            }
            thread::sleep(arrive_after);
            Instant::now()
        };
        let (submitted, began) = match &self.inner {
            Inner::Tokengate(rt) => {
                let heavies: Vec<_> = (0..backlog)
                    .map(|_| rt.submit(&HEAVY, heavy.clone()))
                    .collect();
                let submitted = arrive();
                let light = rt.submit(&LIGHT, light);
                let began = began_rx.recv().expect("the light task ran");
                light.join().expect("the light task ran");
                for h in heavies {
                    h.join().expect("a heavy task ran");
                }
                (submitted, began)
            }
            _ => {
                LATCH.arm(backlog + 1);
                for _ in 0..backlog {
                    let heavy = heavy.clone();
                    self.spawn_detached(move || {
                        heavy();
                        LATCH.count_down();
                    });
                }
                let submitted = arrive();
                self.spawn_detached(move || {
                    light();
                    LATCH.count_down();
                });
                let began = began_rx.recv().expect("the light task ran");
                LATCH.wait();
                (submitted, began)
            }
        };
        Some(began.saturating_duration_since(submitted))
    }

    /// Fire and forget, then count down the [`LATCH`] once `f` has run. tokengate's handle is
    /// dropped at once (its task runs all the same); the others go through
    /// [`spawn_detached`](Self::spawn_detached).
    fn spawn_counted(&self, op: &Operation, f: impl FnOnce() + Send + 'static) {
        let f = move || {
            f();
            LATCH.count_down();
        };
        match &self.inner {
            Inner::Tokengate(rt) => drop(rt.submit(op, f)),
            _ => self.spawn_detached(f),
        }
    }

    /// Fire and forget, for the pools that have no result handle of their own.
    fn spawn_detached(&self, f: impl FnOnce() + Send + 'static) {
        match &self.inner {
            Inner::Rayon(pool) => pool.spawn(f),
            Inner::Channel(pool) => pool.execute(f),
            Inner::ThreadPool(pool) => pool.execute(f),
            Inner::Tokio(rt) => drop(rt.spawn_blocking(f)),
            Inner::Tokengate(_) | Inner::StdThread => {
                unreachable!("{} has its own way to submit", self.kind.name())
            }
        }
    }
}

/// A tokengate runtime of `workers` workers, recording timings if `metrics`; pinned if asked
/// and this machine allows it.
pub(crate) fn tokengate_runtime(workers: usize, pin: bool, metrics: bool) -> Runtime {
    let builder = || Runtime::builder().workers(workers).metrics(metrics);
    builder().pin(pin).build().unwrap_or_else(|e| {
        eprintln!("tokengate: pinned build failed ({e}); using pin(false)");
        builder()
            .pin(false)
            .build()
            .expect("an unpinned runtime builds")
    })
}

/// rayon's divide and conquer over `lo..hi`: one leaf per index.
fn join_range<F>(lo: usize, hi: usize, task: F)
where
    F: Fn(usize) + Copy + Send + Sync,
{
    match hi - lo {
        0 => {}
        1 => task(lo),
        len => {
            let mid = lo + len / 2;
            rayon::join(|| join_range(lo, mid, task), || join_range(mid, hi, task));
        }
    }
}

/// A thread per task, at most `workers` of them alive: when all are out, the submitter waits
/// for whichever ends first, joins it, and starts the next.
fn std_thread_batch<F>(workers: usize, n: usize, task: F)
where
    F: Fn(usize) + Copy + Send + Sync + 'static,
{
    let (ended_tx, ended_rx) = unbounded::<usize>();
    let mut slots: Vec<Option<JoinHandle<()>>> = (0..workers).map(|_| None).collect();
    let reap = |slots: &mut [Option<JoinHandle<()>>]| {
        let slot = ended_rx.recv().expect("a task thread ended");
        if let Some(t) = slots[slot].take() {
            t.join().expect("a task thread ran");
        }
        slot
    };
    let mut alive = 0;
    for i in 0..n {
        let slot = if alive < workers {
            alive += 1;
            alive - 1
        } else {
            reap(&mut slots)
        };
        let ended = ended_tx.clone();
        slots[slot] = Some(thread::spawn(move || {
            task(i);
            let _ = ended.send(slot);
        }));
    }
    for _ in 0..alive {
        reap(&mut slots);
    }
}

/// The countdown latch the peers without handles use to say "all done": the last
/// `count_down` unparks the thread that armed it. One static instance, because one batch at
/// a time runs in a process; a `&'static` in every task costs no reference counting.
pub(crate) struct Latch {
    remaining: AtomicUsize,
    waiter: Mutex<Option<Thread>>,
}

pub(crate) static LATCH: Latch = Latch {
    remaining: AtomicUsize::new(0),
    waiter: Mutex::new(None),
};

impl Latch {
    /// Expects `n` count-downs; the calling thread will wait.
    pub(crate) fn arm(&self, n: usize) {
        *self.waiter.lock().expect("latch lock") = Some(thread::current());
        assert_eq!(self.remaining.swap(n, Ordering::AcqRel), 0, "latch in use");
    }

    #[inline]
    pub(crate) fn count_down(&self) {
        if self.remaining.fetch_sub(1, Ordering::AcqRel) == 1 {
            if let Some(t) = &*self.waiter.lock().expect("latch lock") {
                t.unpark();
            }
        }
    }

    /// Parks until every count-down came in. A stale unpark only makes `park` return early.
    pub(crate) fn wait(&self) {
        while self.remaining.load(Ordering::Acquire) != 0 {
            thread::park();
        }
    }
}

type Job = Box<dyn FnOnce() + Send + 'static>;

/// The textbook pool: worker threads receiving boxed jobs from one unbounded
/// crossbeam-channel.
pub(crate) struct ChannelPool {
    tx: Option<Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
}

impl ChannelPool {
    pub(crate) fn new(workers: usize) -> Self {
        let (tx, rx) = unbounded::<Job>();
        let threads = (0..workers)
            .map(|_| {
                let rx = rx.clone();
                thread::spawn(move || {
                    while let Ok(job) = rx.recv() {
                        job();
                    }
                })
            })
            .collect();
        Self {
            tx: Some(tx),
            threads,
        }
    }

    pub(crate) fn execute(&self, job: impl FnOnce() + Send + 'static) {
        if let Some(tx) = &self.tx {
            tx.send(Box::new(job)).expect("channel pool workers alive");
        }
    }
}

impl Drop for ChannelPool {
    fn drop(&mut self) {
        self.tx = None;
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// The tiny task of T1: a multiply the optimiser cannot remove.
#[inline]
pub(crate) fn tiny(i: usize) {
    black_box(black_box(i).wrapping_mul(3));
}

/// CPU work without memory traffic: `iters` dependent xorshift steps (about a nanosecond
/// each). The unit of every heavy task; [`calibrate`] says how many make a given time.
#[inline(never)]
pub(crate) fn burn(iters: u64) -> u64 {
    let mut x = black_box(0x9E37_79B9_7F4A_7C15u64);
    for _ in 0..iters {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    black_box(x)
}

/// The number of [`burn`] iterations that take about `target` on this thread, from the
/// fastest of a few timed runs (the least disturbed one).
pub(crate) fn calibrate(target: Duration) -> u64 {
    const PROBE: u64 = 1 << 20;
    burn(PROBE);
    let fastest = (0..5)
        .map(|_| {
            let start = Instant::now();
            burn(PROBE);
            start.elapsed()
        })
        .min()
        .expect("five probes");
    let per_iter = fastest.as_secs_f64() / PROBE as f64;
    (target.as_secs_f64() / per_iter.max(1e-12))
        .round()
        .max(1.0) as u64
}

/// T3's batch: `count` tasks of `iters` each.
pub(crate) fn heavy_costs(count: usize, iters: u64) -> &'static [u64] {
    vec![iters; count].leak()
}

/// T7's batch: `count` tasks of `short_iters`, of which `long` are `factor` times longer, in
/// a shuffled order that is the same in every run (a fixed-seed Fisher-Yates shuffle).
pub(crate) fn skewed_costs(
    count: usize,
    long: usize,
    factor: u64,
    short_iters: u64,
) -> &'static [u64] {
    let mut costs: Vec<u64> = (0..count)
        .map(|i| {
            if i < long {
                short_iters * factor
            } else {
                short_iters
            }
        })
        .collect();
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    for i in (1..costs.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        costs.swap(i, (state % (i as u64 + 1)) as usize);
    }
    costs.leak()
}

/// A task of a heavy batch: `burn(costs[i])`.
pub(crate) fn burn_task(costs: &'static [u64]) -> impl Fn(usize) + Copy + Send + Sync + 'static {
    move |i| {
        burn(costs[i]);
    }
}

/// The physical floor of T2: two threads bouncing one cache line. The measuring thread
/// writes an odd value, the partner answers with the next even one; one round trip is two
/// cache-line transfers.
///
/// Both sides spin, by design, and only after [`SPINS_BEFORE_YIELD`] fruitless looks yield
/// their core: a quiet machine never gets there (a round trip is a few hundred spins at
/// most), but when a third runnable thread shares the two cores, a pure spinner would wait
/// out the other side's whole time slice. Run it alone: no pool may be busy meanwhile.
pub(crate) struct PingPong {
    flag: Arc<Padded<AtomicUsize>>,
    stop: Arc<Padded<AtomicBool>>,
    partner: Option<JoinHandle<()>>,
}

#[repr(align(128))]
struct Padded<T>(T);

const SPINS_BEFORE_YIELD: u32 = 1 << 12;

/// Spins on `ready`, yielding the core now and then once the wait is long.
#[inline]
fn spin_until<T>(mut ready: impl FnMut() -> Option<T>) -> T {
    let mut spins = 0u32;
    loop {
        if let Some(v) = ready() {
            return v;
        }
        spins += 1;
        if spins < SPINS_BEFORE_YIELD {
            spin_loop();
        } else {
            spins = 0;
            thread::yield_now();
        }
    }
}

impl PingPong {
    pub(crate) fn start() -> Self {
        let flag = Arc::new(Padded(AtomicUsize::new(0)));
        let stop = Arc::new(Padded(AtomicBool::new(false)));
        let (f, s) = (flag.clone(), stop.clone());
        let partner = thread::spawn(move || loop {
            let request = spin_until(|| {
                let v = f.0.load(Ordering::Acquire);
                if v & 1 == 1 {
                    Some(Some(v))
                } else if s.0.load(Ordering::Relaxed) {
                    Some(None)
                } else {
                    None
                }
            });
            match request {
                Some(v) => f.0.store(v + 1, Ordering::Release),
                None => return,
            }
        });
        Self {
            flag,
            stop,
            partner: Some(partner),
        }
    }

    #[inline]
    pub(crate) fn round_trip(&self) -> usize {
        // Only this thread writes odd values, so the value is even (ours) here.
        let v = self.flag.0.load(Ordering::Relaxed);
        self.flag.0.store(v + 1, Ordering::Release);
        spin_until(|| {
            let now = self.flag.0.load(Ordering::Acquire);
            (now != v + 1).then_some(now)
        })
    }
}

impl Drop for PingPong {
    fn drop(&mut self) {
        self.stop.0.store(true, Ordering::Relaxed);
        if let Some(p) = self.partner.take() {
            let _ = p.join();
        }
    }
}
