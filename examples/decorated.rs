//! `#[tokengate::task_token_guard]`: plain functions that run as tasks.
//!
//! Part 1 is the Python original's README example in its Rust form. Part 2 is a mixed
//! workload: light, medium and heavy operations, one kept in order per user by a sticky key,
//! one limited to the "slow" storage tier's 10 calls at once. Every call is joined, then the
//! outcomes are counted per operation.
//!
//! Run: `cargo run --release --example decorated`

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokengate::{task_token_guard, TaskHandle};

// Part 1. The Python original:
//
//     @task_token_guard(operation_type='prime_check', tags={'weight': 'medium'})
//     def prime_operation(n):
//         ...

/// Whether `n` is prime; each call is a task on the global runtime.
#[task_token_guard(operation_type = "prime_check", weight = "medium")]
fn prime_operation(n: u64) -> bool {
    n > 1 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0)
}

// Part 2. A mixed workload.

/// Records a user's visit; one user's visits run on one worker, in call order. Returns the
/// worker that ran it.
#[task_token_guard(operation_type = "touch_session", weight = "light", sticky = user_id)]
fn touch_session(user_id: u64, visit: u32) -> Option<usize> {
    let _ = (user_id, visit);
    tokengate::current_worker()
}

/// Parses a `user,amount` record; a malformed record panics, and its call fails.
#[task_token_guard(operation_type = "parse_record", weight = "medium")]
fn parse_record(line: String) -> u64 {
    let (_, amount) = line
        .split_once(',')
        .unwrap_or_else(|| panic!("malformed record {line:?}"));
    amount
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("malformed record {line:?}"))
}

/// Counts the primes below `limit`: long CPU-bound work.
#[task_token_guard(operation_type = "count_primes", weight = "heavy")]
fn count_primes(limit: u64) -> usize {
    (2..limit)
        .filter(|&n| (2..).take_while(|d| d * d <= n).all(|d| n % d != 0))
        .count()
}

/// Stores a report: slow I/O (simulated), at most 10 at once.
#[task_token_guard(
    operation_type = "save_report",
    weight = "light",
    concurrency_limit = "slow"
)]
fn save_report(user_id: u64, bytes: usize) -> usize {
    let _ = user_id;
    std::thread::sleep(Duration::from_micros(200));
    bytes
}

const USERS: u64 = 40;
const VISITS: u32 = 50;
const RECORDS: u64 = 1_000;
const HEAVY: u64 = 16;
const REPORTS: u64 = 200;

/// How many of `handles` succeeded, and how many failed (panicked, timed out, ...).
fn outcomes<T>(handles: Vec<TaskHandle<T>>) -> (usize, usize) {
    handles
        .into_iter()
        .fold((0, 0), |(ok, failed), h| match h.join() {
            Ok(_) => (ok + 1, failed),
            Err(_) => (ok, failed + 1),
        })
}

fn main() {
    // Part 1.
    println!("prime_operation(n), each call a task on the global runtime:");
    let handles: Vec<(u64, TaskHandle<bool>)> = (1..=20).map(|n| (n, prime_operation(n))).collect();
    for (n, h) in handles {
        println!(
            "  {n:>2}: {}",
            h.join().expect("prime_operation does not panic")
        );
    }

    // Part 2. Malformed records panic on purpose; keep their reports off the terminal.
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if !info.to_string().contains("malformed record") {
            report(info);
        }
    }));

    let start = Instant::now();
    let sessions: Vec<(u64, TaskHandle<Option<usize>>)> = (0..VISITS)
        .flat_map(|visit| (0..USERS).map(move |user| (user, visit)))
        .map(|(user, visit)| (user, touch_session(user, visit)))
        .collect();
    let records: Vec<TaskHandle<u64>> = (0..RECORDS)
        .map(|i| {
            // Every 25th record is malformed.
            let line = if i % 25 == 0 {
                format!("user{i}")
            } else {
                format!("user{i},{}", i % 100)
            };
            parse_record(line)
        })
        .collect();
    let heavy: Vec<TaskHandle<usize>> = (0..HEAVY).map(|_| count_primes(30_000)).collect();
    let reports: Vec<TaskHandle<usize>> = (0..REPORTS)
        .map(|i| save_report(i % USERS, 1_024))
        .collect();
    let submitted = sessions.len() + records.len() + heavy.len() + reports.len();

    // One user's visits must all report one worker.
    let mut workers_of: HashMap<u64, Vec<Option<usize>>> = HashMap::new();
    let mut session_counts = (0, 0);
    for (user, h) in sessions {
        match h.join() {
            Ok(worker) => {
                session_counts.0 += 1;
                workers_of.entry(user).or_default().push(worker);
            }
            Err(_) => session_counts.1 += 1,
        }
    }
    let steady_users = workers_of
        .values()
        .filter(|ws| ws.iter().all(|w| *w == ws[0]))
        .count();
    let rows = [
        ("touch_session", "light, sticky per user", session_counts),
        ("parse_record", "medium", outcomes(records)),
        ("count_primes", "heavy", outcomes(heavy)),
        ("save_report", "light, storage tier slow", outcomes(reports)),
    ];
    let elapsed = start.elapsed();

    println!();
    println!("{submitted} calls joined in {elapsed:.2?}:");
    println!(
        "  {:<14} {:<26} {:>6} {:>7}",
        "operation", "weight", "ok", "failed"
    );
    for (name, weight, (ok, failed)) in rows {
        println!("  {name:<14} {weight:<26} {ok:>6} {failed:>7}");
    }
    println!("  users whose visits all ran on one worker: {steady_users} of {USERS}");

    // The runtime's own view: per-operation reputation, as the original's GuardHouse kept it.
    println!();
    println!("reputation (tokengate::global().stats()):");
    println!(
        "  {:<14} {:>8} {:>9} {:>8} {:>8} {:<12} {:>10} {:>10}",
        "operation", "attempts", "successes", "failures", "rate", "health", "p50 wait", "p95 run"
    );
    for op in tokengate::global().stats().operations {
        let rate = op
            .success_rate()
            .map_or("-".to_string(), |r| format!("{:.1}%", r * 100.0));
        let upper = |d: Option<std::time::Duration>| d.map_or("-".into(), |d| format!("≤{d:?}"));
        println!(
            "  {:<14} {:>8} {:>9} {:>8} {:>8} {:<12} {:>10} {:>10}",
            op.name,
            op.attempts(),
            op.successes(),
            op.failures(),
            rate,
            format!("{:?}", op.health()),
            upper(op.queue_wait.quantile(0.5)),
            upper(op.run_time.quantile(0.95)),
        );
    }
}
