//! Snapshots of a runtime's metrics: [`Stats`] (per worker and per operation, with the
//! reputation of operations and histograms of queue wait and run time) and the
//! [`ExecutionRecord`]s of the history; their JSON form with the `serde` feature.
//!
//! A snapshot sums counters that workers keep in their own cache lines; it is not atomic
//! across counters (a task finishing while the snapshot is taken may be counted in one counter
//! and not yet in another), but every counter only grows. The snapshot types are plain data
//! with public fields, `#[non_exhaustive]` so that fields can be added.

use std::time::Duration;

use super::Runtime;
use crate::engine::op_table::OpEntry;
use crate::engine::reputation::{Health, Tally};
use crate::engine::Engine;
use crate::metrics::counters::{read, BUCKETS, BUCKET_BOUNDS_NS};
use crate::operation::Weight;
use crate::primitives::TokenState;
use crate::task::TaskId;

/// A histogram of durations with log-scale buckets (upper bounds 1 µs, 4 µs, 16 µs, … ×4 …
/// ~16.8 s, then +∞).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Histogram {
    /// Count per bucket (not cumulative); `counts[i]` holds durations ≤ `bounds_ns()[i]` and
    /// above the bound before; the last holds the rest.
    pub counts: Vec<u64>,
    /// Sum of all recorded durations.
    #[cfg_attr(
        feature = "serde",
        serde(
            rename = "sum_ns",
            serialize_with = "crate::runtime::stats::ser::nanos"
        )
    )]
    pub sum: Duration,
}

impl Histogram {
    pub(crate) fn from_raw(counts: [u64; BUCKETS], sum_ns: u64) -> Self {
        Self {
            counts: counts.to_vec(),
            sum: Duration::from_nanos(sum_ns),
        }
    }

    /// The buckets' upper bounds in nanoseconds (the last bucket, +∞, has none).
    pub fn bounds_ns() -> &'static [u64] {
        &BUCKET_BOUNDS_NS
    }

    /// How many durations were recorded.
    pub fn count(&self) -> u64 {
        self.counts.iter().sum()
    }

    /// The mean duration, if any was recorded.
    pub fn mean(&self) -> Option<Duration> {
        let n = self.count();
        (n != 0).then(|| self.sum / n.min(u32::MAX as u64) as u32)
    }

    /// An upper estimate of quantile `q` (0.0 ..= 1.0): the upper bound of the bucket that
    /// holds it (`None` if empty or if it falls in the +∞ bucket).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokengate::Histogram;
    /// let mut h = Histogram::default();
    /// h.counts = vec![0; Histogram::bounds_ns().len() + 1];
    /// h.counts[0] = 90; // ≤ 1 µs
    /// h.counts[2] = 10; // ≤ 16 µs
    /// assert_eq!(h.quantile(0.5), Some(std::time::Duration::from_micros(1)));
    /// assert_eq!(h.quantile(0.95), Some(std::time::Duration::from_micros(16)));
    /// ```
    pub fn quantile(&self, q: f64) -> Option<Duration> {
        let n = self.count();
        if n == 0 {
            return None;
        }
        let rank = ((q.clamp(0.0, 1.0) * n as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return BUCKET_BOUNDS_NS.get(i).map(|&b| Duration::from_nanos(b));
            }
        }
        None
    }
}

/// One operation's counters and reputation.
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct OperationStats {
    /// The operation's name.
    pub name: &'static str,
    /// The weight of its first submission.
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "crate::runtime::stats::ser::display")
    )]
    pub weight: Weight,
    /// Tasks admitted (refused submissions are not counted here).
    pub submitted: u64,
    /// Tasks that ran and returned.
    pub completed: u64,
    /// Tasks that ran and panicked (after their retries).
    pub failed: u64,
    /// Tasks killed before they ran (cancel, kill, drain, `shutdown_now`, or dropped from the
    /// queue because the operation got blocked).
    pub killed: u64,
    /// Tasks that did not start before their deadline.
    pub timed_out: u64,
    /// Submissions refused because the operation was blocked (not counted in `submitted`).
    pub blocked: u64,
    /// Panicking attempts that were run again (`retries`).
    pub retried: u64,
    /// Whether admission of this operation is paused.
    pub paused: bool,
    /// Whether the operation is blocked (auto-block).
    pub is_blocked: bool,
    /// Its concurrency limit, if any.
    pub concurrency_limit: Option<u32>,
    /// Run time of the runs the workers sampled (one in
    /// [`Builder::sample_timings`](crate::Builder::sample_timings), 16 by default): its
    /// `count` is the sample's size, its quantiles estimate every run's. The exact counts are
    /// `completed` and `failed`.
    pub run_time: Histogram,
    /// Time from submission to start of the sampled runs (or to being dropped unrun).
    pub queue_wait: Histogram,
}

impl OperationStats {
    /// Runs of its tasks: completed + failed + retried attempts.
    pub fn attempts(&self) -> u64 {
        self.tally().attempts()
    }

    /// Runs that returned.
    pub fn successes(&self) -> u64 {
        self.tally().successes()
    }

    /// Runs that panicked (retried or not).
    pub fn failures(&self) -> u64 {
        self.tally().failures()
    }

    /// Successes over attempts, if any attempt was made.
    pub fn success_rate(&self) -> Option<f64> {
        let a = self.attempts();
        (a != 0).then(|| self.successes() as f64 / a as f64)
    }

    /// The health class of the success rate.
    pub fn health(&self) -> Health {
        self.tally().health()
    }

    /// Tasks admitted and not yet resolved (waiting or running).
    pub fn in_flight(&self) -> u64 {
        self.tally().in_flight()
    }

    /// The counts the reputation formulas read (one place for them: `reputation.rs`).
    fn tally(&self) -> Tally {
        Tally {
            submitted: self.submitted,
            completed: self.completed,
            failed: self.failed,
            killed: self.killed,
            timed_out: self.timed_out,
            blocked: self.blocked,
            retried: self.retried,
        }
    }
}

/// One worker's counters.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct WorkerStats {
    /// The worker's index.
    pub index: usize,
    /// Tasks it ran (including tasks stolen from other workers and tasks run inline by a join).
    pub tasks_run: u64,
    /// Tasks it took from other workers' mailboxes.
    pub tasks_stolen: u64,
    /// Times it parked (slept) for lack of work.
    pub parks: u64,
    /// Stack jobs it forked with [`join`](crate::Runtime::join) (whoever ran them).
    pub forks: u64,
    /// Stack jobs it stole from other workers' forks and ran.
    pub forks_stolen: u64,
    /// Time spent running tasks, credited when each task ends; a task run inside another (a
    /// join running it inline, or running other tasks while it waits) counts as part of the
    /// outer one, once.
    #[cfg_attr(
        feature = "serde",
        serde(
            rename = "busy_ns",
            serialize_with = "crate::runtime::stats::ser::nanos"
        )
    )]
    pub busy: Duration,
    /// Time alive and not running tasks: the runtime's uptime minus [`busy`](Self::busy).
    /// Since `busy` is credited when a task ends, `idle` includes the elapsed part of a task
    /// still running and steps back when that task ends; take differences of two snapshots
    /// with `saturating_sub`.
    #[cfg_attr(
        feature = "serde",
        serde(
            rename = "idle_ns",
            serialize_with = "crate::runtime::stats::ser::nanos"
        )
    )]
    pub idle: Duration,
    /// Tasks queued in its mailbox, per lane (Light, Medium, Heavy).
    pub lane_depth: [usize; 3],
    /// Tasks queued for it alone, of which it is the home worker: its sticky queue and its
    /// broadcast runs.
    pub home_depth: usize,
    /// Tasks it submitted itself, queued in its local deque (others may steal them).
    pub local_depth: usize,
    /// Whether it is running a task right now.
    pub busy_now: bool,
}

impl WorkerStats {
    /// Busy time over lifetime, 0.0 ..= 1.0.
    pub fn utilization(&self) -> f64 {
        let total = (self.busy + self.idle).as_secs_f64();
        if total == 0.0 {
            0.0
        } else {
            self.busy.as_secs_f64() / total
        }
    }
}

/// A snapshot of a runtime's metrics ([`Runtime::stats`](crate::Runtime::stats)).
#[derive(Clone, Debug, PartialEq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct Stats {
    /// Time since the runtime was built.
    #[cfg_attr(
        feature = "serde",
        serde(
            rename = "uptime_ns",
            serialize_with = "crate::runtime::stats::ser::nanos"
        )
    )]
    pub uptime: Duration,
    /// Tokens in the ring.
    pub capacity: usize,
    /// Tokens out: tasks admitted and not finished.
    pub tokens_in_use: usize,
    /// Whether admission is paused ([`Runtime::pause`](crate::Runtime::pause)).
    pub paused: bool,
    /// Tasks held by a pause, waiting for `resume`.
    pub held: usize,
    /// Whether timings (histograms, busy time, history) are recorded
    /// ([`Builder::metrics`](crate::Builder::metrics)).
    pub timings: bool,
    /// Per worker, in worker order.
    pub workers: Vec<WorkerStats>,
    /// Per operation, in order of first submission.
    pub operations: Vec<OperationStats>,
}

impl Stats {
    /// The operation named `name`, if it was ever submitted.
    pub fn operation(&self, name: &str) -> Option<&OperationStats> {
        self.operations.iter().find(|o| o.name == name)
    }

    /// Tasks run by all workers.
    pub fn tasks_run(&self) -> u64 {
        self.workers.iter().map(|w| w.tasks_run).sum()
    }
}

/// One finished task, as [`Runtime::recent`](crate::Runtime::recent) reports it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
#[non_exhaustive]
pub struct ExecutionRecord {
    /// The task.
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "crate::runtime::stats::ser::display")
    )]
    pub id: TaskId,
    /// Its operation's name.
    pub operation: &'static str,
    /// The worker that ran (or killed) it.
    pub worker: usize,
    /// How it ended: `Completed`, `Failed`, `Killed`, `TimedOut`.
    #[cfg_attr(
        feature = "serde",
        serde(serialize_with = "crate::runtime::stats::ser::display")
    )]
    pub outcome: TokenState,
    /// From submission to the start of its run (or to being dropped unrun).
    #[cfg_attr(
        feature = "serde",
        serde(
            rename = "queue_wait_ns",
            serialize_with = "crate::runtime::stats::ser::nanos"
        )
    )]
    pub queue_wait: Duration,
    /// How long it ran (zero if it did not run).
    #[cfg_attr(
        feature = "serde",
        serde(
            rename = "run_time_ns",
            serialize_with = "crate::runtime::stats::ser::nanos"
        )
    )]
    pub run_time: Duration,
    /// When it finished, since the runtime was built.
    #[cfg_attr(
        feature = "serde",
        serde(
            rename = "finished_ns",
            serialize_with = "crate::runtime::stats::ser::nanos"
        )
    )]
    pub finished: Duration,
}

#[cfg(feature = "serde")]
pub(crate) mod ser {
    use std::time::Duration;

    pub(crate) fn display<S: serde::Serializer, T: std::fmt::Display>(
        v: &T,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_str(v)
    }

    pub(crate) fn nanos<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
    }
}

// ---- taking a snapshot ---------------------------------------------------------------------

fn operation_stats(entry: &OpEntry) -> OperationStats {
    let mut run = ([0u64; BUCKETS], 0u64);
    let mut wait = ([0u64; BUCKETS], 0u64);
    for s in entry.counters.stripes() {
        s.run_time.read_into(&mut run.0, &mut run.1);
        s.queue_wait.read_into(&mut wait.0, &mut wait.1);
    }
    let Tally {
        submitted,
        completed,
        failed,
        killed,
        timed_out,
        blocked,
        retried,
    } = Tally::of(entry);
    OperationStats {
        name: entry.name,
        weight: entry.weight,
        submitted,
        completed,
        failed,
        killed,
        timed_out,
        blocked,
        retried,
        paused: entry.is_paused(),
        is_blocked: entry.is_blocked(),
        concurrency_limit: entry.limiter.get().map(|l| l.limit as u32),
        run_time: Histogram::from_raw(run.0, run.1),
        queue_wait: Histogram::from_raw(wait.0, wait.1),
    }
}

fn stats(engine: &Engine) -> Stats {
    let uptime_ns = engine.clock.now_ns();
    let uptime = Duration::from_nanos(uptime_ns);
    let workers = engine
        .workers
        .iter()
        .enumerate()
        .map(|(index, w)| {
            // The ended periods plus the one in progress. A period that ends between the two
            // reads may count twice in this one snapshot (hence the cap at the uptime): a
            // statistic read without stopping the worker, not a ledger.
            let since = read(&w.counters.busy_since);
            let ongoing = if since == 0 {
                0
            } else {
                uptime_ns.saturating_sub(since)
            };
            let ended = read(&w.counters.busy_ns);
            let busy = Duration::from_nanos(ended + ongoing).min(uptime);
            WorkerStats {
                index,
                tasks_run: read(&w.counters.tasks_run),
                tasks_stolen: read(&w.counters.tasks_stolen),
                parks: read(&w.counters.parks),
                forks: read(&w.counters.forks),
                forks_stolen: read(&w.counters.forks_stolen),
                busy,
                idle: uptime.saturating_sub(busy),
                lane_depth: Weight::ALL.map(|l| w.mailbox.len(l)),
                home_depth: w.sticky.len() + w.broadcasts.len(),
                local_depth: w.deque.len(),
                busy_now: w.sleeper.is_busy(),
            }
        })
        .collect();
    Stats {
        uptime,
        capacity: engine.ring.capacity(),
        tokens_in_use: engine.ring.capacity().saturating_sub(engine.free_tokens()),
        paused: engine.is_paused(),
        held: engine.held_len(),
        timings: engine.settings.timings,
        workers,
        operations: engine.ops.iter().map(operation_stats).collect(),
    }
}

impl Runtime {
    /// A snapshot of the runtime's metrics: per worker and per operation.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokengate::{Health, Operation, Runtime};
    ///
    /// const JOB: Operation = Operation::new("job");
    /// let rt = Runtime::builder().workers(2).pin(false).build()?;
    /// # std::panic::set_hook(Box::new(|_| {}));
    /// let hs: Vec<_> = (0..100)
    ///     .map(|i| rt.submit(&JOB, move || if i % 10 == 0 { panic!("bad") } else { i }))
    ///     .collect();
    /// hs.into_iter().for_each(|h| { let _ = h.join(); });
    /// let job = rt.stats().operation("job").cloned().unwrap();
    /// assert_eq!((job.submitted, job.completed, job.failed), (100, 90, 10));
    /// assert_eq!(job.health(), Health::Healthy);
    /// // The timings are a sample (one run in 16 per worker by default), the counts exact.
    /// assert!(job.run_time.count() <= 100);
    /// # Ok::<(), tokengate::BuildError>(())
    /// ```
    pub fn stats(&self) -> Stats {
        stats(self.engine())
    }

    /// The counters and reputation of the operation `name`, if any task of it was submitted.
    pub fn operation_stats(&self, name: &str) -> Option<OperationStats> {
        self.engine().ops.lookup(name).map(operation_stats)
    }

    /// The last `n` (at most [`Builder::history`](crate::Builder::history)) tasks that
    /// finished on the workers and were sampled (one run in
    /// [`Builder::sample_timings`](crate::Builder::sample_timings) per worker, 16 by default;
    /// set 1 to keep every run), and the tasks that ended without running, newest first:
    /// what ran, where, how it ended, how long it waited and ran. Empty when timings are off
    /// ([`Builder::metrics`](crate::Builder::metrics)).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokengate::{Runtime, TokenState};
    ///
    /// let rt = Runtime::builder().workers(1).pin(false).sample_timings(1).build()?;
    /// let id = rt.spawn(|| 1).id();
    /// let last = rt.spawn(|| 2);
    /// let last_id = last.id();
    /// last.join().unwrap();
    /// let recent = rt.recent(2);
    /// assert_eq!(recent[0].id, last_id);
    /// assert_eq!(recent[1].id, id);
    /// assert_eq!(recent[0].outcome, TokenState::Completed);
    /// # Ok::<(), tokengate::BuildError>(())
    /// ```
    pub fn recent(&self, n: usize) -> Vec<ExecutionRecord> {
        let engine = self.engine();
        let mut raw = Vec::new();
        for (worker, w) in engine.workers.iter().enumerate() {
            let from = raw.len();
            w.history.read(&mut raw);
            raw[from..].iter_mut().for_each(|r| r.op_worker(worker));
        }
        raw.sort_by(|a, b| b.finished_ns.cmp(&a.finished_ns).then(b.id.cmp(&a.id)));
        raw.truncate(n.min(engine.settings.history_len));
        raw.into_iter()
            .map(|r| ExecutionRecord {
                id: TaskId::from_u64(engine.serial, r.id),
                operation: engine.ops.by_index(r.op).map_or("?", |e| e.name),
                worker: r.worker,
                outcome: r.outcome,
                queue_wait: Duration::from_nanos(r.wait_ns),
                run_time: Duration::from_nanos(r.run_ns),
                finished: Duration::from_nanos(r.finished_ns),
            })
            .collect()
    }

    /// [`recent`](Self::recent) as a JSON array (durations in nanoseconds), like the Python
    /// original's `dump_execution_history`.
    #[cfg(feature = "serde")]
    pub fn history_json(&self, n: usize) -> String {
        serde_json::to_string_pretty(&self.recent(n))
            .unwrap_or_else(|e| unreachable!("execution records always serialise: {e}"))
    }
}

#[cfg(feature = "serde")]
impl Stats {
    /// The snapshot as JSON (durations in nanoseconds).
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self)
            .unwrap_or_else(|e| unreachable!("stats always serialise: {e}"))
    }
}
