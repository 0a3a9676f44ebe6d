//! [`Builder`]: a runtime's settings, checked and resolved ([`Plan`]) before its workers
//! start.

use super::{Runtime, WorkerThreads};
use crate::engine::route::{Routes, Routing};
use crate::engine::worker::Worker;
use crate::engine::{current, topology};
use crate::engine::{Engine, Settings};
use crate::error::BuildError;
use crate::operation::Weight;
use crate::primitives::TokenRing;
use crate::sync::{thread, Arc};

/// Settings for a [`Runtime`]; see [`Runtime::builder`].
///
/// # Examples
///
/// ```
/// use tokengate::{Routing, Runtime, Weight};
///
/// let rt = Runtime::builder()
///     .workers(2)
///     .pin(false)
///     .capacity(256)
///     .routing(Routing::Spread)
///     .lane_workers(Weight::Heavy, [0])
///     .build()?;
/// assert_eq!(rt.workers(), 2);
/// # Ok::<(), tokengate::BuildError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Builder {
    workers: Option<usize>,
    pin: bool,
    cores: Option<Vec<usize>>,
    capacity: Option<usize>,
    routing: Routing,
    lane_workers: [Option<Vec<usize>>; 3],
    metrics: bool,
    history: usize,
    sample_timings: u32,
    auto_block: bool,
    stack_size: usize,
    max_held: Option<usize>,
}

/// The worker threads' default stack size (as std's spawned threads).
const DEFAULT_STACK_SIZE: usize = 2 << 20;
/// The smallest worker stack `Builder::stack_size` accepts.
const MIN_STACK_SIZE: usize = 64 << 10;
/// One run in this many is timed by default (`Builder::sample_timings`).
const DEFAULT_SAMPLE_TIMINGS: u32 = 16;
/// The sparsest sampling `Builder::sample_timings` accepts.
const MAX_SAMPLE_TIMINGS: u32 = 1 << 16;

impl Default for Builder {
    fn default() -> Self {
        Self {
            workers: None,
            pin: true,
            cores: None,
            capacity: None,
            routing: Routing::default(),
            lane_workers: Default::default(),
            metrics: true,
            history: 256,
            sample_timings: DEFAULT_SAMPLE_TIMINGS,
            auto_block: false,
            stack_size: DEFAULT_STACK_SIZE,
            max_held: None,
        }
    }
}

impl Builder {
    /// The number of worker threads. Default: one per core the process may run on.
    ///
    /// "May run on" is read at `build()` from the calling thread's affinity: a thread pinned
    /// to one core before it builds (or a process under `taskset -c 0`) gets one worker, on
    /// that very core. A task submitted and joined from that thread then shares its core with
    /// the worker, and each round trip costs two spin budgets and two context switches (about
    /// 9–10 µs measured, against about 0.5 µs across two cores). Build first and pin the
    /// caller afterwards, or set the workers (and [`cores`](Self::cores)) explicitly.
    pub fn workers(mut self, workers: usize) -> Self {
        self.workers = Some(workers);
        self
    }

    /// Whether worker `i` is pinned to core `i` (of [`cores`](Self::cores), or of the cores the
    /// process may run on). Default `true`.
    pub fn pin(mut self, pin: bool) -> Self {
        self.pin = pin;
        self
    }

    /// The cores to pin workers to, one per worker, in worker order. Implies `pin(true)`; the
    /// worker count defaults to their number.
    pub fn cores(mut self, cores: impl IntoIterator<Item = usize>) -> Self {
        self.cores = Some(cores.into_iter().collect());
        self.pin = true;
        self
    }

    /// The number of tokens: the most tasks admitted and not yet finished at once. A power of
    /// two. Default: 256 per worker, at least 1024 and at most 16384.
    ///
    /// Memory is fixed by it and the worker count, allocated at build time:
    /// `capacity × 208 + workers × front × 88` bytes (plus 8 per 64 tokens). Per token: a
    /// 128-byte token-table entry, a 16-byte ring slot and its task cell's state (a 64-byte
    /// cache line of its own, so that neighbouring tokens held by different threads do not
    /// contend). Per
    /// worker, its queues' lock-free fronts of `front`
    /// slots each: five 16-byte queue slots (the three weight lanes of its mailbox, its sticky
    /// queue, its broadcast queue) and an 8-byte slot of its local deque, where `front` is
    /// the worker's share of the ring, `capacity / workers` rounded up to a power of two, at
    /// least 256 and at most `capacity`. So the queues take about `88 × capacity` bytes in
    /// all, or 22 KiB per worker where the share is under 256: the reserve grows with the
    /// capacity plus a constant per worker, not with their product. Add the history (see
    /// [`history`](Self::history)), about 13 KiB per worker of bookkeeping (counters, token
    /// cache, its thread) and a few tens of KiB that do not grow. Each operation with a
    /// concurrency limit adds `16 × capacity` bytes (its waiting queue) at its first
    /// submission. So the default capacity takes about 0.3 MB on 2 workers, 1.4 MB on 16,
    /// 5.7 MB on 64 and 12.6 MB on 256 at build; 2²⁴ tokens, the maximum, about 4.6 GiB (and
    /// as long to fill): size it to the tasks you need in flight, not more.
    ///
    /// Then, as tokens are first used, their **task cells**: 256 bytes per token, in chunks
    /// of 64 tokens (16 KiB; of the whole capacity if it is smaller), kept until the runtime
    /// and the last handle holding one are gone; `capacity × 256` bytes once every token
    /// was used (4 MiB at 16384 tokens, so 16.8 MB in all on 256 workers). A task is built
    /// in its token's cell when it fits (header, record, closure and output: about 180 bytes
    /// for a closure that captures nothing and returns `()`, so room for about 75 bytes of
    /// captures and output together, aligned to at most 64) and the cell is free (every
    /// reference to the token's previous task is gone); else on the heap, one allocation.
    /// So small tasks allocate nothing, from any thread, once their handles are joined or
    /// dropped. An outcome waiting for its handle holds a cell, never a token: a task run by
    /// a worker gives its token back before its outcome is published (one joined inline, or
    /// killed, when a worker next reaches its token), and the next task under that token
    /// goes on the heap while the cell is held. `tests/memory.rs` measures all of this.
    ///
    /// A worker's queue never refuses a task: a burst beyond its front waits in an overflow
    /// behind a lock ([`SpillQueue`](crate::primitives::SpillQueue): a lane, sticky or
    /// broadcast queue), or, for its local deque, moves (the older half) to its mailbox. The
    /// overflow is allocated while it is used and freed once it is drained; with every token
    /// in it, it holds `16 × capacity` bytes. Its lock is off the hot path: taken only while
    /// a queue is past its front.
    ///
    /// Tasks run without a token (a worker submitting into a dry ring, see
    /// [`Runtime::submit`]) are bounded by the stack frames blocked doing so, not by it.
    pub fn capacity(mut self, capacity: usize) -> Self {
        self.capacity = Some(capacity);
        self
    }

    /// The routing policy. Default [`Routing::Spread`].
    pub fn routing(mut self, routing: Routing) -> Self {
        self.routing = routing;
        self
    }

    /// Runs tasks of `weight` on exactly these workers, overriding the routing policy for
    /// that weight.
    pub fn lane_workers(
        mut self,
        weight: Weight,
        workers: impl IntoIterator<Item = usize>,
    ) -> Self {
        self.lane_workers[weight.lane()] = Some(workers.into_iter().collect());
        self
    }

    /// Whether to record timings: queue-wait and run-time histograms, busy time, and the
    /// execution history. Default `true`. Counters (submitted, completed, …) are always kept:
    /// each is a worker's own cache line (or a submitting thread's stripe), summed when
    /// [`Runtime::stats`] reads them. Off, no clock is read on the way of a task.
    ///
    /// On, what a task costs is kept off its path: its admission reads the clock once; a
    /// worker reads it only when it starts or ends a busy period (not per task) and for the
    /// runs it samples (see [`sample_timings`](Self::sample_timings)).
    pub fn metrics(mut self, on: bool) -> Self {
        self.metrics = on;
        self
    }

    /// Times one task run in `one_in` on each worker, when timings are on
    /// ([`metrics`](Self::metrics)): a sampled run's run time and queue wait go into its
    /// operation's histograms, and a record of it into the history ([`Runtime::recent`]).
    /// Default 16; 1 times every run. A power of two, at most 65536.
    ///
    /// Counts stay exact whatever the rate (submitted, completed, failed, … and each
    /// worker's tasks run), and so does the busy time (measured per busy period). What the
    /// rate thins out is the histograms' sample (their `count` is the number of sampled
    /// runs; their quantiles estimate every run's) and the history, which then holds the
    /// last sampled runs (and every task that ended without running: killed, timed out).
    ///
    /// ```
    /// use tokengate::{Operation, Runtime};
    ///
    /// const OP: Operation = Operation::new("every-run-timed");
    /// let rt = Runtime::builder().workers(1).pin(false).sample_timings(1).build()?;
    /// for _ in 0..10 {
    ///     rt.submit(&OP, || ()).join().unwrap();
    /// }
    /// let op = &rt.stats().operations[0];
    /// assert_eq!((op.completed, op.run_time.count()), (10, 10));
    /// # Ok::<(), tokengate::BuildError>(())
    /// ```
    pub fn sample_timings(mut self, one_in: u32) -> Self {
        self.sample_timings = one_in;
        self
    }

    /// How many execution records [`Runtime::recent`] can return (the last `n` finished
    /// tasks). Default 256; 0 turns the history off. Costs `48 × n` bytes per worker.
    pub fn history(mut self, n: usize) -> Self {
        self.history = n;
        self
    }

    /// Blocks an operation that failed more than 90 % of at least 10 attempts: its
    /// submissions then resolve [`TaskError::Blocked`](crate::TaskError::Blocked) (and
    /// `try_submit` hands the closure back) until [`Runtime::unblock_operation`]. Default
    /// `false`.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokengate::{Operation, Runtime, TaskError};
    ///
    /// const BAD: Operation = Operation::new("always_fails");
    /// let rt = Runtime::builder().workers(1).pin(false).auto_block(true).build()?;
    /// # std::panic::set_hook(Box::new(|_| {}));
    /// for _ in 0..10 {
    ///     let _ = rt.submit(&BAD, || -> () { panic!("broken") }).join();
    /// }
    /// assert_eq!(rt.submit(&BAD, || ()).join(), Err(TaskError::Blocked));
    /// rt.unblock_operation("always_fails");
    /// assert_eq!(rt.submit(&BAD, || ()).join(), Ok(()));
    /// # Ok::<(), tokengate::BuildError>(())
    /// ```
    pub fn auto_block(mut self, on: bool) -> Self {
        self.auto_block = on;
        self
    }

    /// The most tasks that pauses ([`Runtime::pause`], [`Runtime::pause_operation`]) may
    /// hold at once. Held tasks keep their tokens; past this bound a submission that would be
    /// held waits *before* it takes a token (`submit` blocks, `try_submit` returns
    /// [`Full`](crate::TrySubmitError::Full)) until a resume, a kill of held tasks or a
    /// shutdown. Default: half the capacity, so that a paused operation that keeps receiving
    /// tasks never takes the tokens every other operation, and broadcasts, need. At most the
    /// capacity (which lets pauses hold every token); 0 makes every paused submission wait
    /// for its resume.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokengate::{Operation, Runtime, TrySubmitError};
    ///
    /// const REPORT: Operation = Operation::new("report");
    /// const PING: Operation = Operation::new("ping");
    /// let rt = Runtime::builder().workers(1).pin(false).capacity(8).max_held(2).build()?;
    /// rt.pause_operation("report");
    /// let held: Vec<_> = (0..2).map(|_| rt.submit(&REPORT, || ())).collect();
    /// // A third would be held beyond the bound: it is not admitted.
    /// assert!(matches!(rt.try_submit(&REPORT, || ()), Err(TrySubmitError::Full(_))));
    /// // Every other operation still has the other tokens.
    /// assert_eq!(rt.submit(&PING, || "pong").join(), Ok("pong"));
    /// rt.resume_operation("report");
    /// for h in held {
    ///     assert_eq!(h.join(), Ok(()));
    /// }
    ///
    /// let err = Runtime::builder().capacity(8).max_held(9).build().unwrap_err();
    /// assert!(err.to_string().contains("max_held(9) is above the capacity 8"));
    /// # Ok::<(), tokengate::BuildError>(())
    /// ```
    pub fn max_held(mut self, n: usize) -> Self {
        self.max_held = Some(n);
        self
    }

    /// The stack size of each worker thread, in bytes. Default 2 MiB (as std's threads);
    /// at least 64 KiB.
    ///
    /// Nested submit-and-join from tasks (a task that submits a task and joins it, which runs
    /// it inline on the same worker, recursively) uses the worker's stack for every level.
    /// Measured on x86-64 (release build): about 0.7 KiB per level while tokens are free and
    /// 1.7 KiB once every token is out (deeper levels then run without a token, see
    /// [`Runtime::submit`]); a debug build takes 2.2–4.5 KiB. So the default stack holds
    /// about 1,200 levels at worst, and `stack_size(64 << 20)` about 38,000. The memory is
    /// reserved, not committed: pages are used only as deep as the recursion goes.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokengate::{Runtime, TaskHandle};
    /// use std::sync::Arc;
    ///
    /// fn depth(rt: Arc<Runtime>, n: u32) -> u32 {
    ///     if n == 0 { return 0; }
    ///     let inner = rt.clone();
    ///     let h: TaskHandle<u32> = rt.spawn(move || depth(inner, n - 1));
    ///     1 + h.join().unwrap()
    /// }
    ///
    /// let rt = Arc::new(Runtime::builder().workers(1).pin(false).stack_size(64 << 20).build()?);
    /// let inner = rt.clone();
    /// assert_eq!(rt.spawn(move || depth(inner, 3_000)).join(), Ok(3_000));
    /// assert!(Runtime::builder().stack_size(1024).build().is_err());
    /// # Ok::<(), tokengate::BuildError>(())
    /// ```
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = bytes;
        self
    }

    /// Builds the runtime and starts its workers, or says which setting to change.
    pub fn build(self) -> Result<Runtime, BuildError> {
        let plan = self.plan()?;
        if self.stack_size < MIN_STACK_SIZE {
            return Err(BuildError::new(format!(
                "stack_size({}) is too small for a worker thread; use at least {} (64 KiB)",
                self.stack_size, MIN_STACK_SIZE
            )));
        }
        if !self.sample_timings.is_power_of_two() || self.sample_timings > MAX_SAMPLE_TIMINGS {
            return Err(BuildError::new(format!(
                "sample_timings({}) must be a power of two from 1 to {MAX_SAMPLE_TIMINGS}; try {}",
                self.sample_timings,
                self.sample_timings
                    .clamp(1, MAX_SAMPLE_TIMINGS)
                    .next_power_of_two()
                    .min(MAX_SAMPLE_TIMINGS)
            )));
        }
        if self.history > 1 << 20 {
            return Err(BuildError::new(format!(
                "history({}) keeps too many records; use at most {}",
                self.history,
                1 << 20
            )));
        }
        let settings = Settings {
            capacity: plan.capacity,
            workers: plan.workers,
            timings: self.metrics,
            sample_mask: self.sample_timings - 1,
            history_len: self.history,
            auto_block: self.auto_block,
            max_held: plan.max_held,
        };
        let engine = Arc::new(Engine::new(settings, plan.routes));
        let mut threads = Vec::with_capacity(plan.workers);
        for index in 0..plan.workers {
            let worker_engine = engine.clone();
            let core = plan.cores.as_ref().map(|c| c[index]);
            let spawned = thread::Builder::new()
                .name(format!("tokengate-worker-{index}"))
                .stack_size(self.stack_size)
                .spawn(move || {
                    if let Some(core) = core {
                        topology::pin_current_thread(core);
                    }
                    current::run_worker(Worker::new(worker_engine, index));
                });
            match spawned {
                Ok(handle) => threads.push(handle),
                Err(e) => {
                    let runtime = Runtime {
                        engine,
                        threads: WorkerThreads::new(threads),
                    };
                    runtime.shutdown();
                    return Err(BuildError::new(format!(
                        "could not start worker thread {index}: {e}; use fewer workers"
                    )));
                }
            }
        }
        Ok(Runtime {
            engine,
            threads: WorkerThreads::new(threads),
        })
    }

    /// Checks the settings and resolves the defaults.
    fn plan(&self) -> Result<Plan, BuildError> {
        let available = topology::available_cores();
        let cores = match (&self.cores, self.pin) {
            (Some(cores), _) => {
                let available = available.clone().unwrap_or_default();
                if let Some(bad) = cores.iter().find(|c| !available.contains(c)) {
                    return Err(BuildError::new(format!(
                        "core {bad} does not exist or this process may not run on it \
                         (available: {}); choose among those, or use .pin(false)",
                        list(&available)
                    )));
                }
                Some(cores.clone())
            }
            (None, true) => available.clone(),
            (None, false) => None,
        };
        let workers = match (self.workers, &self.cores) {
            (Some(w), _) => w,
            (None, Some(cores)) => cores.len(),
            (None, None) => topology::parallelism(),
        };
        if workers == 0 {
            return Err(BuildError::new(
                "workers(0): a runtime needs at least one worker; use .workers(1) or more".into(),
            ));
        }
        let cores = match cores {
            Some(cores) if self.cores.is_some() && cores.len() != workers => {
                return Err(BuildError::new(format!(
                    "{workers} workers but {} cores given to .cores(); give one core per worker",
                    cores.len()
                )))
            }
            Some(cores) if cores.len() < workers => {
                return Err(BuildError::new(format!(
                    "{workers} workers cannot each be pinned to a core of their own: this \
                     process may run on {} cores ({}); use .workers({}) or fewer, or .pin(false)",
                    cores.len(),
                    list(&cores),
                    cores.len()
                )))
            }
            Some(mut cores) => {
                cores.truncate(workers);
                Some(cores)
            }
            None if self.pin => {
                return Err(BuildError::new(if cfg!(loom) {
                    "under loom there are no cores to pin workers to; use .pin(false) in a \
                     model (tokengate::loom::model_runtime does)"
                        .into()
                } else {
                    "this platform does not report the cores the process may run on, so \
                     workers cannot be pinned; use .pin(false)"
                        .into()
                }))
            }
            None => None,
        };
        let capacity = match self.capacity {
            None => (workers * 256).next_power_of_two().clamp(1024, 16384),
            Some(0) => {
                return Err(BuildError::new(
                    "capacity 0 admits no task; use a power of two such as 1024".into(),
                ))
            }
            Some(c) if c > TokenRing::MAX_CAPACITY => {
                return Err(BuildError::new(format!(
                    "capacity {c} is above the maximum {}; use a smaller power of two",
                    TokenRing::MAX_CAPACITY
                )))
            }
            Some(c) if !c.is_power_of_two() => {
                return Err(BuildError::new(format!(
                    "capacity {c} is not a power of two; try {}",
                    c.next_power_of_two()
                )))
            }
            Some(c) => c,
        };
        let routes = Routes::new(self.routing, &self.lane_workers, workers)?;
        let max_held = match self.max_held {
            None => capacity / 2,
            Some(n) if n > capacity => {
                return Err(BuildError::new(format!(
                    "max_held({n}) is above the capacity {capacity}: pauses can hold at most \
                     every token; use .max_held({}) or less (default: half the capacity, so \
                     that a paused operation never stops the others)",
                    capacity
                )))
            }
            Some(n) => n,
        };
        Ok(Plan {
            workers,
            cores,
            capacity,
            routes,
            max_held,
        })
    }
}

fn list(ids: &[usize]) -> String {
    if ids.is_empty() {
        return "none".into();
    }
    ids.iter()
        .map(|i| i.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The settings of a [`Builder`], checked, with the defaults resolved.
struct Plan {
    workers: usize,
    cores: Option<Vec<usize>>,
    capacity: usize,
    routes: Routes,
    max_held: usize,
}
