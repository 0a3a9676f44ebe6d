//! [`Stats`] in the Prometheus text exposition format (version 0.0.4), the Python original's
//! metric set under the `tokengate_` prefix.
//!
//! This module only reads a snapshot: it adds nothing to the recording side (the counters the
//! workers keep) and nothing to the hot path. A scrape costs one [`Runtime::stats`] call and
//! one string.
//!
//! The metric set, the mapping from the original's `threading_*` names and an example are
//! documented on [`Stats::to_prometheus`] (this module is private, so that is where rustdoc
//! shows them).

use std::fmt::{self, Display, Write as _};

use super::stats::{Histogram, OperationStats, Stats, WorkerStats};
use super::Runtime;
use crate::engine::reputation::Health;

/// The mailbox lanes of a worker as `lane` label values, in [`WorkerStats::lane_depth`]
/// order, then the queues of the tasks whose home the worker is (sticky and broadcast tasks),
/// then its local deque (tasks it submitted itself).
///
/// [`WorkerStats::lane_depth`]: crate::WorkerStats::lane_depth
const LANES: [&str; 3] = ["light", "medium", "heavy"];
const HOME_LANE: &str = "home";
const LOCAL_LANE: &str = "local";

/// Every health class with its `health` label value (the state-set pattern: one sample per
/// class, 1 for the operation's class, 0 for the others).
const HEALTH: [(Health, &str); 5] = [
    (Health::Unknown, "unknown"),
    (Health::Excellent, "excellent"),
    (Health::Healthy, "healthy"),
    (Health::AtRisk, "at_risk"),
    (Health::Problematic, "problematic"),
];

impl Stats {
    /// The snapshot in the [Prometheus text exposition format], version 0.0.4: serve it with
    /// the content type `text/plain; version=0.0.4; charset=utf-8`.
    ///
    /// Every metric is named `tokengate_…`. Label values are escaped as the format asks
    /// (`\` → `\\`, `"` → `\"`, newline → `\n`), so any operation name is safe. Durations
    /// are in seconds; a histogram has cumulative `_bucket{le=".."}` samples (the bounds of
    /// [`Histogram::bounds_ns`], 1 µs to ~16.8 s by powers of 4, then `+Inf`), `_sum` and
    /// `_count`. Counters only grow while the runtime lives; a snapshot is not atomic across
    /// counters (see [`Stats`]).
    ///
    /// | metric | type | labels | from |
    /// | --- | --- | --- | --- |
    /// | `tokengate_tasks_submitted_total` | counter | `operation` | [`OperationStats::submitted`] |
    /// | `tokengate_tasks_completed_total` | counter | `operation` | [`OperationStats::completed`] |
    /// | `tokengate_tasks_failed_total` | counter | `operation` | [`OperationStats::failed`] |
    /// | `tokengate_tasks_killed_total` | counter | `operation` | [`OperationStats::killed`] |
    /// | `tokengate_tasks_timed_out_total` | counter | `operation` | [`OperationStats::timed_out`] |
    /// | `tokengate_tasks_blocked_total` | counter | `operation` | [`OperationStats::blocked`] |
    /// | `tokengate_task_retries_total` | counter | `operation` | [`OperationStats::retried`] |
    /// | `tokengate_task_duration_seconds` | histogram | `operation` | [`OperationStats::run_time`] |
    /// | `tokengate_task_queue_wait_seconds` | histogram | `operation` | [`OperationStats::queue_wait`] |
    /// | `tokengate_operation_health` | gauge (state set) | `operation`, `health` | [`OperationStats::health`]: 1 for its class, 0 for the others |
    /// | `tokengate_operation_paused` | gauge (0/1) | `operation` | [`OperationStats::paused`] |
    /// | `tokengate_operation_blocked` | gauge (0/1) | `operation` | [`OperationStats::is_blocked`] |
    /// | `tokengate_queue_depth` | gauge | `worker`, `lane` | [`WorkerStats::lane_depth`] (`light`, `medium`, `heavy`) and [`WorkerStats::home_depth`] (`home`) and [`WorkerStats::local_depth`] (`local`) |
    /// | `tokengate_workers_busy` | gauge | | workers whose [`WorkerStats::busy_now`] is true |
    /// | `tokengate_workers_idle` | gauge | | the other workers |
    /// | `tokengate_worker_utilization` | gauge (0..1) | `worker` | [`WorkerStats::utilization`], over the runtime's life |
    /// | `tokengate_worker_busy_seconds_total` | counter | `worker` | [`WorkerStats::busy`]; `rate()` of it is the recent utilization |
    /// | `tokengate_worker_tasks_total` | counter | `worker` | [`WorkerStats::tasks_run`] |
    /// | `tokengate_worker_steals_total` | counter | `worker` | [`WorkerStats::tasks_stolen`] |
    /// | `tokengate_worker_parks_total` | counter | `worker` | [`WorkerStats::parks`] |
    /// | `tokengate_worker_forks_total` | counter | `worker` | [`WorkerStats::forks`] |
    /// | `tokengate_worker_fork_steals_total` | counter | `worker` | [`WorkerStats::forks_stolen`] |
    /// | `tokengate_tokens_in_use` | gauge | | [`Stats::tokens_in_use`] |
    /// | `tokengate_tokens_capacity` | gauge | | [`Stats::capacity`] |
    /// | `tokengate_tasks_held` | gauge | | [`Stats::held`] (held by a pause) |
    /// | `tokengate_admission_paused` | gauge (0/1) | | [`Stats::paused`] |
    /// | `tokengate_uptime_seconds` | gauge | | [`Stats::uptime`] |
    ///
    /// The two histograms and the two busy-time metrics need timings
    /// ([`Builder::metrics`](crate::Builder::metrics), on by default); when timings are off
    /// they are left out rather than reported as zeros. The histograms observe the runs the
    /// workers sample ([`Builder::sample_timings`](crate::Builder::sample_timings), one in 16
    /// by default), so their `_count` is the sample's size; the `_total` counters are exact.
    ///
    /// ## From the Python original
    ///
    /// The original kept its metrics in a private `prometheus_client` registry read by its
    /// convergence loop. Its names map to these:
    ///
    /// | original | tokengate |
    /// | --- | --- |
    /// | `threading_tasks_submitted_total{operation_type}` | `tokengate_tasks_submitted_total{operation}` |
    /// | `threading_tasks_completed_total{op,core_id}` | `tokengate_tasks_completed_total{operation}`; per worker: `tokengate_worker_tasks_total{worker}` |
    /// | `threading_tasks_failed_total{op,core_id}` | `tokengate_tasks_failed_total{operation}` |
    /// | `threading_task_duration_seconds{op,core_id}` (buckets 1 ms–10 s) | `tokengate_task_duration_seconds{operation}` (buckets 1 µs–16.8 s) |
    /// | `threading_queue_wait_seconds{core_id}` | `tokengate_task_queue_wait_seconds{operation}` |
    /// | `threading_queue_depth{core_id}` | `tokengate_queue_depth{worker,lane}` |
    /// | `threading_workers_busy{core_id}`, `threading_workers_idle{core_id}` | `tokengate_workers_busy`, `tokengate_workers_idle` (one worker per core, so no core label) |
    /// | `threading_worker_utilization_percent{core_id}` | `tokengate_worker_utilization{worker}` (a ratio 0..1, Prometheus' base unit) and `tokengate_worker_busy_seconds_total{worker}` |
    /// | `threading_worker_pattern{core_id}` | none: tokengate has no per-core worker patterns |
    /// | `threading_convergence_pattern_changes_total` | none: tokengate has no convergence loop |
    ///
    /// New in tokengate: the killed, timed-out, blocked and retry counters, the operation
    /// health, paused and blocked gauges (the original's GuardHouse and admin state), steals,
    /// parks, tokens, tasks held and uptime.
    ///
    /// [Prometheus text exposition format]: https://prometheus.io/docs/instrumenting/exposition_formats/#text-based-format
    /// [`OperationStats::submitted`]: crate::OperationStats::submitted
    /// [`OperationStats::completed`]: crate::OperationStats::completed
    /// [`OperationStats::failed`]: crate::OperationStats::failed
    /// [`OperationStats::killed`]: crate::OperationStats::killed
    /// [`OperationStats::timed_out`]: crate::OperationStats::timed_out
    /// [`OperationStats::blocked`]: crate::OperationStats::blocked
    /// [`OperationStats::retried`]: crate::OperationStats::retried
    /// [`OperationStats::run_time`]: crate::OperationStats::run_time
    /// [`OperationStats::queue_wait`]: crate::OperationStats::queue_wait
    /// [`OperationStats::health`]: crate::OperationStats::health
    /// [`OperationStats::paused`]: crate::OperationStats::paused
    /// [`OperationStats::is_blocked`]: crate::OperationStats::is_blocked
    /// [`WorkerStats::lane_depth`]: crate::WorkerStats::lane_depth
    /// [`WorkerStats::home_depth`]: crate::WorkerStats::home_depth
    /// [`WorkerStats::local_depth`]: crate::WorkerStats::local_depth
    /// [`WorkerStats::busy_now`]: crate::WorkerStats::busy_now
    /// [`WorkerStats::utilization`]: crate::WorkerStats::utilization
    /// [`WorkerStats::busy`]: crate::WorkerStats::busy
    /// [`WorkerStats::tasks_run`]: crate::WorkerStats::tasks_run
    /// [`WorkerStats::tasks_stolen`]: crate::WorkerStats::tasks_stolen
    /// [`WorkerStats::parks`]: crate::WorkerStats::parks
    /// [`WorkerStats::forks`]: crate::WorkerStats::forks
    /// [`WorkerStats::forks_stolen`]: crate::WorkerStats::forks_stolen
    ///
    /// # Examples
    ///
    /// ```
    /// use tokengate::{Operation, Runtime, Weight};
    ///
    /// const RESIZE: Operation = Operation::new("resize").weight(Weight::Medium);
    /// // Every run timed, so that the histogram below counts all three.
    /// let rt = Runtime::builder().workers(2).pin(false).sample_timings(1).build()?;
    /// let hs: Vec<_> = (0..3).map(|i| rt.submit(&RESIZE, move || i * 2)).collect();
    /// hs.into_iter().for_each(|h| { h.join().unwrap(); });
    /// // A worker counts a task just after handing its outcome over: a joiner may be a hair
    /// // ahead of the counters. Once the runtime is shut down (workers joined) they are final.
    /// rt.shutdown();
    ///
    /// let text = rt.stats().to_prometheus();
    /// assert!(text.contains("# TYPE tokengate_tasks_completed_total counter\n"));
    /// assert!(text.contains("\ntokengate_tasks_completed_total{operation=\"resize\"} 3\n"));
    /// assert!(text.contains("\ntokengate_task_duration_seconds_bucket{operation=\"resize\",le=\"+Inf\"} 3\n"));
    /// assert!(text.contains("\ntokengate_task_duration_seconds_count{operation=\"resize\"} 3\n"));
    /// assert!(text.contains("\ntokengate_tokens_capacity "));
    /// # Ok::<(), tokengate::BuildError>(())
    /// ```
    pub fn to_prometheus(&self) -> String {
        let mut text = Text::default();
        self.write_operations(&mut text);
        self.write_workers(&mut text);
        self.write_runtime(&mut text);
        text.out
    }

    fn write_operations(&self, text: &mut Text) {
        let ops = &self.operations;
        type Count = fn(&OperationStats) -> u64;
        let counters: [(&str, &str, Count); 7] = [
            (
                "tokengate_tasks_submitted_total",
                "Tasks admitted (refused submissions are not counted).",
                |o| o.submitted,
            ),
            (
                "tokengate_tasks_completed_total",
                "Tasks that ran and returned.",
                |o| o.completed,
            ),
            (
                "tokengate_tasks_failed_total",
                "Tasks that ran and panicked, after their retries.",
                |o| o.failed,
            ),
            (
                "tokengate_tasks_killed_total",
                "Tasks killed before they ran (cancel, kill, drain, shutdown_now, block).",
                |o| o.killed,
            ),
            (
                "tokengate_tasks_timed_out_total",
                "Tasks that did not start before their deadline.",
                |o| o.timed_out,
            ),
            (
                "tokengate_tasks_blocked_total",
                "Submissions refused because the operation was blocked.",
                |o| o.blocked,
            ),
            (
                "tokengate_task_retries_total",
                "Panicking attempts that were run again.",
                |o| o.retried,
            ),
        ];
        for (name, help, count) in counters {
            text.family(name, "counter", help);
            for o in ops {
                text.sample(name, &[("operation", o.name)], count(o));
            }
        }

        if self.timings {
            type Hist = fn(&OperationStats) -> &Histogram;
            let histograms: [(&str, &str, Hist); 2] = [
                (
                    "tokengate_task_duration_seconds",
                    "Run time of the tasks that ran.",
                    |o| &o.run_time,
                ),
                (
                    "tokengate_task_queue_wait_seconds",
                    "Time from submission to start (or to being dropped unrun).",
                    |o| &o.queue_wait,
                ),
            ];
            for (name, help, hist) in histograms {
                text.family(name, "histogram", help);
                for o in ops {
                    text.histogram(name, ("operation", o.name), hist(o));
                }
            }
        }

        let name = "tokengate_operation_health";
        text.family(
            name,
            "gauge",
            "Health class of the operation's success rate: 1 for its class, 0 for the others.",
        );
        for o in ops {
            let health = o.health();
            for (class, label) in HEALTH {
                let labels = [("operation", o.name), ("health", label)];
                text.sample(name, &labels, u8::from(class == health));
            }
        }
        type Flag = fn(&OperationStats) -> bool;
        let flags: [(&str, &str, Flag); 2] = [
            (
                "tokengate_operation_paused",
                "Whether admission of the operation is paused (1) or not (0).",
                |o| o.paused,
            ),
            (
                "tokengate_operation_blocked",
                "Whether the operation is blocked by auto-block (1) or not (0).",
                |o| o.is_blocked,
            ),
        ];
        for (name, help, flag) in flags {
            text.family(name, "gauge", help);
            for o in ops {
                text.sample(name, &[("operation", o.name)], u8::from(flag(o)));
            }
        }
    }

    fn write_workers(&self, text: &mut Text) {
        let workers = &self.workers;
        let index: Vec<String> = workers.iter().map(|w| w.index.to_string()).collect();

        let name = "tokengate_queue_depth";
        text.family(
            name,
            "gauge",
            "Tasks queued for a worker: its mailbox per lane, its home queues, its local deque.",
        );
        for (w, i) in workers.iter().zip(&index) {
            for (lane, depth) in LANES.iter().zip(w.lane_depth) {
                text.sample(name, &[("worker", i.as_str()), ("lane", lane)], depth);
            }
            let labels = [("worker", i.as_str()), ("lane", HOME_LANE)];
            text.sample(name, &labels, w.home_depth);
            let labels = [("worker", i.as_str()), ("lane", LOCAL_LANE)];
            text.sample(name, &labels, w.local_depth);
        }

        let busy = workers.iter().filter(|w| w.busy_now).count();
        text.family(
            "tokengate_workers_busy",
            "gauge",
            "Workers running a task now.",
        );
        text.sample("tokengate_workers_busy", &[], busy);
        text.family(
            "tokengate_workers_idle",
            "gauge",
            "Workers not running a task now.",
        );
        text.sample("tokengate_workers_idle", &[], workers.len() - busy);

        if self.timings {
            let name = "tokengate_worker_utilization";
            text.family(
                name,
                "gauge",
                "Share of the runtime's life a worker spent running tasks (0 to 1).",
            );
            for (w, i) in workers.iter().zip(&index) {
                text.sample(name, &[("worker", i)], w.utilization());
            }
            let name = "tokengate_worker_busy_seconds_total";
            text.family(name, "counter", "Time a worker spent running tasks.");
            for (w, i) in workers.iter().zip(&index) {
                text.sample(name, &[("worker", i)], Seconds(w.busy.as_nanos()));
            }
        }

        type Count = fn(&WorkerStats) -> u64;
        let counters: [(&str, &str, Count); 5] = [
            (
                "tokengate_worker_tasks_total",
                "Tasks a worker ran (stolen and run-inline tasks included).",
                |w| w.tasks_run,
            ),
            (
                "tokengate_worker_steals_total",
                "Tasks a worker took from other workers' mailboxes.",
                |w| w.tasks_stolen,
            ),
            (
                "tokengate_worker_parks_total",
                "Times a worker parked for lack of work.",
                |w| w.parks,
            ),
            (
                "tokengate_worker_forks_total",
                "Stack jobs a worker forked with join.",
                |w| w.forks,
            ),
            (
                "tokengate_worker_fork_steals_total",
                "Stack jobs a worker stole from other workers' forks.",
                |w| w.forks_stolen,
            ),
        ];
        for (name, help, count) in counters {
            text.family(name, "counter", help);
            for (w, i) in workers.iter().zip(&index) {
                text.sample(name, &[("worker", i)], count(w));
            }
        }
    }

    fn write_runtime(&self, text: &mut Text) {
        let gauges: [(&str, &str, &dyn Display); 5] = [
            (
                "tokengate_tokens_in_use",
                "Tokens out: tasks admitted and not finished.",
                &self.tokens_in_use,
            ),
            (
                "tokengate_tokens_capacity",
                "Tokens in the ring: the most tasks admitted and unfinished at once.",
                &self.capacity,
            ),
            (
                "tokengate_tasks_held",
                "Tasks admitted and held back by a pause.",
                &self.held,
            ),
            (
                "tokengate_admission_paused",
                "Whether admission is paused (1) or not (0).",
                &u8::from(self.paused),
            ),
            (
                "tokengate_uptime_seconds",
                "Time since the runtime was built.",
                &Seconds(self.uptime.as_nanos()),
            ),
        ];
        for (name, help, value) in gauges {
            text.family(name, "gauge", help);
            text.sample(name, &[], value);
        }
    }
}

impl Runtime {
    /// [`stats`](Self::stats) in the Prometheus text exposition format:
    /// `self.stats().to_prometheus()`. The metrics are listed on [`Stats::to_prometheus`].
    ///
    /// # Examples
    ///
    /// ```
    /// use tokengate::Runtime;
    ///
    /// let rt = Runtime::builder().workers(1).pin(false).build()?;
    /// rt.pause();
    /// let text = rt.prometheus_text();
    /// assert!(text.contains("\ntokengate_admission_paused 1\n"));
    /// assert!(text.contains("\ntokengate_workers_idle 1\n"));
    /// # Ok::<(), tokengate::BuildError>(())
    /// ```
    pub fn prometheus_text(&self) -> String {
        self.stats().to_prometheus()
    }
}

/// The exposition being written. Writing into a `String` cannot fail, so the `fmt::Result`s
/// of `write!` are dropped here and nowhere else.
#[derive(Default)]
struct Text {
    out: String,
}

impl Text {
    /// `# HELP` and `# TYPE` of a metric family; its samples follow.
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        debug_assert!(!help.contains(['\\', '\n']), "help text needs no escaping");
        let _ = write!(self.out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
    }

    /// One sample line: `name{label="value",…} value`.
    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl Display) {
        self.out.push_str(name);
        self.labels(labels, None);
        let _ = writeln!(self.out, " {value}");
    }

    /// The `_bucket`, `_sum` and `_count` samples of one histogram.
    fn histogram(&mut self, name: &str, label: (&str, &str), h: &Histogram) {
        let bounds = Histogram::bounds_ns();
        let mut cumulative = 0u64;
        for i in 0..=bounds.len() {
            // `counts` is a public field: read it defensively, so that a histogram built by
            // hand with fewer or more buckets still gives a valid exposition (the excess
            // counts go to +Inf).
            let bound = bounds.get(i).copied();
            cumulative += match bound {
                Some(_) => h.counts.get(i).copied().unwrap_or(0),
                None => h.counts.iter().skip(i).sum(),
            };
            let le = match bound {
                Some(ns) => Seconds(u128::from(ns)).to_string(),
                None => "+Inf".to_owned(),
            };
            let _ = write!(self.out, "{name}_bucket");
            self.labels(&[label], Some(&le));
            let _ = writeln!(self.out, " {cumulative}");
        }
        let _ = write!(self.out, "{name}_sum");
        self.labels(&[label], None);
        let _ = writeln!(self.out, " {}", Seconds(h.sum.as_nanos()));
        let _ = write!(self.out, "{name}_count");
        self.labels(&[label], None);
        let _ = writeln!(self.out, " {cumulative}");
    }

    /// `{a="x",b="y"}` (nothing if there are no labels), then `le` if given.
    fn labels(&mut self, labels: &[(&str, &str)], le: Option<&str>) {
        if labels.is_empty() && le.is_none() {
            return;
        }
        self.out.push('{');
        let all = labels.iter().copied().chain(le.map(|le| ("le", le)));
        for (i, (key, value)) in all.enumerate() {
            if i > 0 {
                self.out.push(',');
            }
            let _ = write!(self.out, "{key}=\"{}\"", Escaped(value));
        }
        self.out.push('}');
    }
}

/// A label value escaped as the text format asks: backslash, double quote and line feed.
struct Escaped<'a>(&'a str);

impl Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for c in self.0.chars() {
            match c {
                '\\' => f.write_str("\\\\")?,
                '"' => f.write_str("\\\"")?,
                '\n' => f.write_str("\\n")?,
                c => f.write_char(c)?,
            }
        }
        Ok(())
    }
}

/// Nanoseconds written as an exact decimal number of seconds (`1000` → `0.000001`): exact
/// where `ns as f64 / 1e9` would not always be, and without an exponent.
struct Seconds(u128);

impl Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (secs, nanos) = (self.0 / 1_000_000_000, self.0 % 1_000_000_000);
        if nanos == 0 {
            return write!(f, "{secs}");
        }
        let frac = format!("{nanos:09}");
        write!(f, "{secs}.{}", frac.trim_end_matches('0'))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_are_exact_decimals() {
        let s = |ns: u128| Seconds(ns).to_string();
        assert_eq!(s(0), "0");
        assert_eq!(s(1_000), "0.000001");
        assert_eq!(s(4_096_000), "0.004096");
        assert_eq!(s(16_777_216_000), "16.777216");
        assert_eq!(s(2_000_000_000), "2");
        assert_eq!(s(1), "0.000000001");
    }

    #[test]
    fn label_values_are_escaped() {
        let e = |v: &str| Escaped(v).to_string();
        assert_eq!(e("plain"), "plain");
        assert_eq!(e(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(e("two\nlines"), r"two\nlines");
    }
}
