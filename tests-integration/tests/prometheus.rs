//! The Prometheus text exposition (`Stats::to_prometheus`, `Runtime::prometheus_text`),
//! parsed back with an independent parser and checked against a known workload.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::time::Duration;

use openmetrics_parser::prometheus::parse_prometheus;
use openmetrics_parser::{
    MetricFamily, MetricsExposition, PrometheusType, PrometheusValue, Sample,
};
use tokengate::{Histogram, Operation, Runtime, Weight};

/// A runtime that times every run (`sample_timings(1)`), so that each histogram's count is
/// the number of runs and the text can be checked against the counters exactly.
fn runtime(workers: usize) -> Runtime {
    Runtime::builder()
        .workers(workers)
        .pin(false)
        .sample_timings(1)
        .build()
        .unwrap()
}

type Exposition = MetricsExposition<PrometheusType, PrometheusValue>;
type Family = MetricFamily<PrometheusType, PrometheusValue>;

/// Parses `text`, failing the test with the text itself if it is not a valid exposition.
fn parse(text: &str) -> Exposition {
    parse_prometheus(text).unwrap_or_else(|e| panic!("invalid exposition: {e:?}\n{text}"))
}

fn family<'a>(exposition: &'a Exposition, name: &str) -> &'a Family {
    exposition
        .families
        .get(name)
        .unwrap_or_else(|| panic!("no family {name}"))
}

/// The sample of `name` whose labels are exactly `labels` (in any order).
fn sample<'a>(
    exposition: &'a Exposition,
    name: &str,
    labels: &[(&str, &str)],
) -> &'a Sample<PrometheusValue> {
    let fam = family(exposition, name);
    fam.iter_samples()
        .find(|s| {
            let set = s.get_labelset().unwrap();
            set.iter().count() == labels.len()
                && labels
                    .iter()
                    .all(|(k, v)| set.get_label_value(k) == Some(*v))
        })
        .unwrap_or_else(|| panic!("no sample {name}{labels:?}"))
}

/// The value of a counter or gauge sample.
fn value(exposition: &Exposition, name: &str, labels: &[(&str, &str)]) -> f64 {
    match &sample(exposition, name, labels).value {
        PrometheusValue::Counter(c) => c.value.as_f64(),
        PrometheusValue::Gauge(g) => g.as_f64(),
        other => panic!("{name} is not a counter or gauge: {other:?}"),
    }
}

#[test]
fn smoke() {
    let rt = runtime(1);
    let text = rt.prometheus_text();
    let exposition = parse(&text);
    assert_eq!(value(&exposition, "tokengate_tokens_in_use", &[]), 0.0);
    assert_eq!(
        value(&exposition, "tokengate_tokens_capacity", &[]),
        rt.capacity() as f64
    );
}

#[test]
fn a_known_workload_reads_back_from_the_parsed_text() {
    common::quiet_planned_panics();
    const HASH: Operation = Operation::new("hash").weight(Weight::Light);
    let rt = runtime(2);
    let handles: Vec<_> = (0..1000)
        .map(|i| {
            rt.submit(&HASH, move || {
                if i % 100 == 42 {
                    panic!("planned {i}");
                }
                if i % 4 == 0 {
                    std::thread::sleep(Duration::from_micros(100));
                }
            })
        })
        .collect();
    let failed = handles
        .into_iter()
        .map(|h| h.join())
        .filter(Result::is_err)
        .count();
    assert_eq!(failed, 10);
    // A worker counts a task just after handing its outcome over, so a joiner can be a hair
    // ahead of the counters; after a shutdown (which joins the workers) they are final.
    rt.shutdown();

    let stats = rt.stats();
    let exposition = parse(&stats.to_prometheus());
    let op = [("operation", "hash")];

    // Every family has its HELP and the type its name promises.
    for fam in exposition.families.values() {
        assert!(!fam.help.is_empty(), "{} has no HELP", fam.family_name);
        let promised = if fam.family_name.ends_with("_total") {
            Some(PrometheusType::Counter)
        } else if fam.family_name.ends_with("_seconds") && fam.family_name.contains("task_") {
            Some(PrometheusType::Histogram)
        } else {
            None
        };
        if let Some(t) = promised {
            assert_eq!(fam.family_type, t, "{}", fam.family_name);
        }
    }

    let counter = |name: &str| {
        assert_eq!(
            family(&exposition, name).family_type,
            PrometheusType::Counter
        );
        value(&exposition, name, &op)
    };
    assert_eq!(counter("tokengate_tasks_submitted_total"), 1000.0);
    assert_eq!(counter("tokengate_tasks_completed_total"), 990.0);
    assert_eq!(counter("tokengate_tasks_failed_total"), 10.0);
    assert_eq!(counter("tokengate_tasks_killed_total"), 0.0);
    assert_eq!(counter("tokengate_tasks_timed_out_total"), 0.0);
    assert_eq!(counter("tokengate_tasks_blocked_total"), 0.0);
    assert_eq!(counter("tokengate_task_retries_total"), 0.0);

    for (name, from_stats) in [
        (
            "tokengate_task_duration_seconds",
            &stats.operation("hash").unwrap().run_time,
        ),
        (
            "tokengate_task_queue_wait_seconds",
            &stats.operation("hash").unwrap().queue_wait,
        ),
    ] {
        let h = match &sample(&exposition, name, &op).value {
            PrometheusValue::Histogram(h) => h,
            other => panic!("{name} is not a histogram: {other:?}"),
        };
        assert_eq!(h.count, Some(1000), "{name}");
        let buckets: Vec<(f64, f64)> = h
            .buckets
            .iter()
            .map(|b| (b.upper_bound, b.count.as_f64()))
            .collect();
        // One bucket per bound, in seconds, then +Inf.
        let bounds: Vec<f64> = Histogram::bounds_ns()
            .iter()
            .map(|&ns| ns as f64 / 1e9)
            .chain([f64::INFINITY])
            .collect();
        assert_eq!(buckets.len(), bounds.len(), "{name}");
        for ((le, _), want) in buckets.iter().zip(&bounds) {
            let close = le == want || (le - want).abs() <= want * 1e-12;
            assert!(close, "{name}: le {le} ≠ {want}");
        }
        // Cumulative: bounds rise, counts never fall, +Inf holds everything.
        for pair in buckets.windows(2) {
            assert!(pair[0].0 < pair[1].0, "{name}: bounds out of order");
            assert!(pair[0].1 <= pair[1].1, "{name}: buckets not cumulative");
        }
        assert_eq!(buckets.last().unwrap(), &(f64::INFINITY, 1000.0), "{name}");
        // And they are the snapshot's own buckets, summed.
        let mut running = 0;
        for ((_, got), &count) in buckets.iter().zip(&from_stats.counts) {
            running += count;
            assert_eq!(*got, running as f64, "{name}");
        }
        let sum = h.sum.unwrap().as_f64();
        assert!(
            (sum - from_stats.sum.as_secs_f64()).abs() < 1e-9,
            "{name}: sum {sum}"
        );
    }
    // 250 tasks slept 100 µs: at least that much run time, at most a quarter of the tasks
    // at or below the 64 µs bound... and some above it.
    let run = match &sample(&exposition, "tokengate_task_duration_seconds", &op).value {
        PrometheusValue::Histogram(h) => h.clone(),
        _ => unreachable!(),
    };
    assert!(run.sum.unwrap().as_f64() >= 250.0 * 100e-6);
    let at_or_below_64us = run.buckets.iter().find(|b| b.upper_bound == 64e-6).unwrap();
    assert!(at_or_below_64us.count.as_f64() <= 750.0);

    // 990 of 1000 succeeded: excellent, and only that class is set.
    for (class, want) in [
        ("unknown", 0.0),
        ("excellent", 1.0),
        ("healthy", 0.0),
        ("at_risk", 0.0),
        ("problematic", 0.0),
    ] {
        let labels = [("operation", "hash"), ("health", class)];
        assert_eq!(
            value(&exposition, "tokengate_operation_health", &labels),
            want,
            "{class}"
        );
    }
    assert_eq!(value(&exposition, "tokengate_operation_paused", &op), 0.0);
    assert_eq!(value(&exposition, "tokengate_operation_blocked", &op), 0.0);

    // Workers: every task was run by one of them; the queues are empty.
    let per_worker = |name: &str| -> f64 {
        (0..2)
            .map(|w| value(&exposition, name, &[("worker", &w.to_string())]))
            .sum()
    };
    assert_eq!(per_worker("tokengate_worker_tasks_total"), 1000.0);
    assert!(per_worker("tokengate_worker_steals_total") <= 1000.0);
    assert!(per_worker("tokengate_worker_busy_seconds_total") >= 250.0 * 100e-6);
    for w in ["0", "1"] {
        for lane in ["light", "medium", "heavy", "home", "local"] {
            let labels = [("worker", w), ("lane", lane)];
            assert_eq!(value(&exposition, "tokengate_queue_depth", &labels), 0.0);
        }
        let u = value(
            &exposition,
            "tokengate_worker_utilization",
            &[("worker", w)],
        );
        assert!((0.0..=1.0).contains(&u), "utilization {u}");
    }
    assert_eq!(
        family(&exposition, "tokengate_queue_depth")
            .iter_samples()
            .count(),
        10
    );
    let busy = value(&exposition, "tokengate_workers_busy", &[]);
    let idle = value(&exposition, "tokengate_workers_idle", &[]);
    assert_eq!(busy + idle, 2.0);

    assert_eq!(value(&exposition, "tokengate_tokens_in_use", &[]), 0.0);
    assert_eq!(
        value(&exposition, "tokengate_tokens_capacity", &[]),
        rt.capacity() as f64
    );
    assert_eq!(value(&exposition, "tokengate_admission_paused", &[]), 0.0);
    assert_eq!(value(&exposition, "tokengate_tasks_held", &[]), 0.0);
    assert!(value(&exposition, "tokengate_uptime_seconds", &[]) > 0.0);
}

#[test]
fn label_values_with_quotes_backslashes_and_newlines_are_escaped() {
    const ODD: Operation = Operation::new("say \"hi\" \\ to C:\\temp\nand go");
    const PLAIN: Operation = Operation::new("plain");
    let rt = runtime(1);
    for h in (0..3).map(|i| rt.submit(&ODD, move || i)) {
        h.join().unwrap();
    }
    rt.submit(&PLAIN, || ()).join().unwrap();
    rt.shutdown(); // the counters are final (see above)
    let text = rt.prometheus_text();

    // Read back by the parser: the very name, and the samples of the two operations apart.
    let exposition = parse(&text);
    let name = ODD.name();
    assert_eq!(
        value(
            &exposition,
            "tokengate_tasks_completed_total",
            &[("operation", name)]
        ),
        3.0
    );
    assert_eq!(
        value(
            &exposition,
            "tokengate_tasks_completed_total",
            &[("operation", "plain")]
        ),
        1.0
    );
    let h = match &sample(
        &exposition,
        "tokengate_task_duration_seconds",
        &[("operation", name)],
    )
    .value
    {
        PrometheusValue::Histogram(h) => h,
        other => panic!("not a histogram: {other:?}"),
    };
    assert_eq!(h.count, Some(3));
    assert_eq!(h.buckets.last().unwrap().count.as_f64(), 3.0);
    // On the wire: escaped, each sample on one line.
    assert!(
        text.contains(
            "\ntokengate_tasks_completed_total{operation=\"say \\\"hi\\\" \\\\ to C:\\\\temp\\nand go\"} 3\n"
        ),
        "{text}"
    );
}

#[test]
fn a_paused_runtime_shows_its_held_tasks_and_tokens() {
    const JOB: Operation = Operation::new("job");
    let rt = runtime(1);
    rt.pause();
    let handles: Vec<_> = (0..3).map(|i| rt.submit(&JOB, move || i)).collect();
    let exposition = parse(&rt.prometheus_text());
    assert_eq!(value(&exposition, "tokengate_admission_paused", &[]), 1.0);
    assert_eq!(value(&exposition, "tokengate_tasks_held", &[]), 3.0);
    assert_eq!(value(&exposition, "tokengate_tokens_in_use", &[]), 3.0);
    assert_eq!(
        value(
            &exposition,
            "tokengate_tasks_submitted_total",
            &[("operation", "job")]
        ),
        3.0
    );
    rt.resume();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join(), Ok(i));
    }
}

#[test]
fn without_timings_the_histograms_are_left_out() {
    const JOB: Operation = Operation::new("job");
    let rt = Runtime::builder()
        .workers(1)
        .pin(false)
        .metrics(false)
        .build()
        .unwrap();
    rt.submit(&JOB, || ()).join().unwrap();
    rt.shutdown(); // the counters are final (see above)
    let exposition = parse(&rt.prometheus_text());
    for absent in [
        "tokengate_task_duration_seconds",
        "tokengate_task_queue_wait_seconds",
        "tokengate_worker_utilization",
        "tokengate_worker_busy_seconds_total",
    ] {
        assert!(
            !exposition.families.contains_key(absent),
            "{absent} is there"
        );
    }
    assert_eq!(
        value(
            &exposition,
            "tokengate_tasks_completed_total",
            &[("operation", "job")]
        ),
        1.0
    );
}

#[test]
fn a_runtime_with_no_operation_yet_is_still_a_valid_exposition() {
    let exposition = parse(&runtime(2).prometheus_text());
    let submitted = family(&exposition, "tokengate_tasks_submitted_total");
    assert_eq!(submitted.iter_samples().count(), 0);
    assert_eq!(value(&exposition, "tokengate_workers_idle", &[]), 2.0);
}
