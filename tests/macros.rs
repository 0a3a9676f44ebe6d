//! `#[tokengate::task_token_guard]` through the public API.

// Every public item of this test crate must be documented: the decorated functions in
// `documented` below compile only because the attribute keeps their doc comments.
#![deny(missing_docs)]

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokengate::{task_token_guard, Runtime, TaskError, TaskHandle};

fn is_prime(n: u64) -> bool {
    n > 1 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0)
}

/// The Python original's README example, in its Rust form.
#[tokengate::task_token_guard(operation_type = "prime_check", weight = "medium")]
fn prime_operation(n: u64) -> bool {
    is_prime(n)
}

/// Runtimes the tests submit to with `runtime = ...`.
mod runtimes {
    use super::*;

    /// Two unpinned workers, built on first use.
    pub(crate) fn two_workers() -> &'static Runtime {
        static RT: OnceLock<Runtime> = OnceLock::new();
        RT.get_or_init(|| common::runtime(2))
    }

    /// A runtime that is shut down: every submission resolves `ShutDown`, which shows the
    /// call went there and not to the global runtime.
    pub(crate) fn closed() -> &'static Runtime {
        static RT: OnceLock<Runtime> = OnceLock::new();
        RT.get_or_init(|| {
            let rt = common::runtime(1);
            rt.shutdown();
            rt
        })
    }
}

#[test]
fn smoke() {
    let h: TaskHandle<bool> = prime_operation(7);
    assert_eq!(h.join(), Ok(true));
}

#[test]
fn runs_on_the_global_runtime() {
    #[task_token_guard(operation_type = "where_am_i")]
    fn where_am_i() -> Option<usize> {
        tokengate::current_worker()
    }

    let worker = where_am_i().join().unwrap();
    assert!(worker.is_some_and(|w| w < tokengate::global().workers()));
    let handles: Vec<TaskHandle<bool>> = (1_000_000..1_000_100).map(prime_operation).collect();
    let primes = handles
        .into_iter()
        .map(|h| h.join().unwrap())
        .filter(|&p| p)
        .count();
    assert_eq!(primes, 6);
}

#[test]
fn runs_on_a_custom_runtime() {
    #[task_token_guard(operation_type = "custom", runtime = runtimes::two_workers)]
    fn on_two_workers(x: u64) -> (u64, Option<usize>) {
        (x * 2, tokengate::current_worker())
    }

    #[task_token_guard(operation_type = "custom", runtime = runtimes::closed)]
    fn on_closed(x: u64) -> u64 {
        x * 2
    }

    let (doubled, worker) = on_two_workers(21).join().unwrap();
    assert_eq!(doubled, 42);
    assert!(worker.is_some_and(|w| w < 2));
    assert_eq!(on_closed(21).join(), Err(TaskError::ShutDown));
}

/// One record of [`record`]: which user, which call of that user, which worker ran it.
type Visit = (u64, u32, Option<usize>);

#[task_token_guard(
    operation_type = "per_user",
    weight = "light",
    sticky = user,
    runtime = runtimes::two_workers
)]
fn record(user: u64, seq: u32, log: Arc<Mutex<Vec<Visit>>>) {
    log.lock()
        .unwrap()
        .push((user, seq, tokengate::current_worker()));
}

#[test]
fn sticky_key_keeps_one_user_on_one_worker_in_order() {
    let log = Arc::new(Mutex::new(Vec::new()));
    let handles: Vec<TaskHandle<()>> = (0..50)
        .flat_map(|seq| (0..8).map(move |user| (user, seq)))
        .map(|(user, seq)| record(user, seq, log.clone()))
        .collect();
    for h in handles {
        assert_eq!(h.join(), Ok(()));
    }
    let log = log.lock().unwrap();
    assert_eq!(log.len(), 8 * 50);
    let mut by_user: HashMap<u64, Vec<(u32, Option<usize>)>> = HashMap::new();
    for &(user, seq, worker) in log.iter() {
        by_user.entry(user).or_default().push((seq, worker));
    }
    for (user, visits) in by_user {
        let worker = visits[0].1;
        assert!(worker.is_some(), "user {user} ran off the workers");
        assert!(
            visits.iter().all(|v| v.1 == worker),
            "user {user} ran on more than one worker: {visits:?}"
        );
        let order: Vec<u32> = visits.iter().map(|v| v.0).collect();
        assert_eq!(
            order,
            (0..50).collect::<Vec<_>>(),
            "user {user} out of order"
        );
    }
}

#[test]
fn sticky_key_may_use_the_names_a_pattern_binds() {
    #[task_token_guard(
        operation_type = "per_account",
        sticky = account,
        runtime = runtimes::two_workers
    )]
    fn deposit((account, _): (String, u32), cents: u64) -> (String, Option<usize>) {
        let _ = cents;
        (account, tokengate::current_worker())
    }

    let handles: Vec<_> = (0..40)
        .map(|i| deposit((format!("account-{}", i % 3), i), 100))
        .collect();
    let mut workers: HashMap<String, Option<usize>> = HashMap::new();
    for h in handles {
        let (account, worker) = h.join().unwrap();
        assert_eq!(*workers.entry(account).or_insert(worker), worker);
    }
    assert_eq!(workers.len(), 3);
}

#[task_token_guard(operation_type = "flaky", retries = 3)]
fn flaky(tries: Arc<AtomicU32>, failures: u32) -> u32 {
    let attempt = tries.fetch_add(1, Ordering::SeqCst) + 1;
    if attempt <= failures {
        panic!("planned failure of attempt {attempt}");
    }
    attempt
}

#[test]
fn retries_reach_the_final_outcome() {
    common::quiet_planned_panics();

    let tries = Arc::new(AtomicU32::new(0));
    assert_eq!(flaky(tries.clone(), 2).join(), Ok(3));
    assert_eq!(tries.load(Ordering::SeqCst), 3);

    let tries = Arc::new(AtomicU32::new(0));
    match flaky(tries.clone(), 10).join() {
        Err(TaskError::Panicked(_)) => {}
        other => panic!("expected the last attempt's panic, got {other:?}"),
    }
    assert_eq!(tries.load(Ordering::SeqCst), 4, "one run and three retries");
}

#[test]
fn retries_clone_pattern_arguments_for_each_attempt() {
    common::quiet_planned_panics();

    #[task_token_guard(operation_type = "flaky_pattern", retries = 1)]
    fn append((mut text, tries): (String, Arc<AtomicU32>), suffix: String) -> String {
        text.push_str(&suffix);
        if tries.fetch_add(1, Ordering::SeqCst) == 0 {
            panic!("planned failure after changing its own copy");
        }
        text
    }

    let tries = Arc::new(AtomicU32::new(0));
    let h = append(("token".to_string(), tries.clone()), "gate".to_string());
    assert_eq!(h.join().as_deref(), Ok("tokengate"));
    assert_eq!(tries.load(Ordering::SeqCst), 2);
}

#[test]
fn deadline_and_concurrency_limit_compile_and_run() {
    #[task_token_guard(operation_type = "with_deadline", deadline_ms = 60_000)]
    fn with_deadline(x: u32) -> u32 {
        x + 1
    }

    #[task_token_guard(operation_type = "limited", concurrency_limit = 2)]
    fn limited(x: u32) -> u32 {
        x + 2
    }

    #[task_token_guard(operation_type = "slow_tier", concurrency_limit = "SLOW")]
    fn slow_tier(x: u32) -> u32 {
        x + 3
    }

    #[task_token_guard(operation_type = "insane_tier", concurrency_limit = "insane")]
    fn insane_tier(x: u32) -> u32 {
        x + 4
    }

    let handles = [with_deadline(1), limited(1), slow_tier(1), insane_tier(1)];
    let results: Vec<u32> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(results, [2, 3, 4, 5]);
}

#[test]
fn deadline_times_out_a_call_that_cannot_start() {
    fn one_worker() -> &'static Runtime {
        static RT: OnceLock<Runtime> = OnceLock::new();
        RT.get_or_init(|| common::runtime(1))
    }

    #[task_token_guard(operation_type = "blocker", runtime = one_worker)]
    fn block_until(release: mpsc::Receiver<()>) {
        release.recv().unwrap();
    }

    #[task_token_guard(operation_type = "hurried", deadline_ms = 1, runtime = one_worker)]
    fn hurried() -> u32 {
        7
    }

    let (release, wait) = mpsc::channel();
    let blocker = block_until(wait);
    let late = hurried();
    std::thread::sleep(Duration::from_millis(50));
    release.send(()).unwrap();
    assert_eq!(blocker.join(), Ok(()));
    assert_eq!(late.join(), Err(TaskError::TimedOut));
}

#[test]
fn concurrency_limit_bounds_the_calls_running_at_once() {
    static RUNNING: AtomicUsize = AtomicUsize::new(0);
    static MOST: AtomicUsize = AtomicUsize::new(0);

    fn three_workers() -> &'static Runtime {
        static RT: OnceLock<Runtime> = OnceLock::new();
        RT.get_or_init(|| common::runtime(3))
    }

    #[task_token_guard(operation_type = "one_at_a_time", concurrency_limit = 1, runtime = three_workers)]
    fn one_at_a_time() {
        let now = RUNNING.fetch_add(1, Ordering::SeqCst) + 1;
        MOST.fetch_max(now, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(1));
        RUNNING.fetch_sub(1, Ordering::SeqCst);
    }

    let handles: Vec<_> = (0..30).map(|_| one_at_a_time()).collect();
    for h in handles {
        assert_eq!(h.join(), Ok(()));
    }
    assert_eq!(MOST.load(Ordering::SeqCst), 1);
}

#[test]
fn every_weight_in_any_case() {
    #[task_token_guard(operation_type = "light_op", weight = "light")]
    fn light(x: u8) -> u8 {
        x
    }

    #[task_token_guard(operation_type = "medium_op", weight = "Medium")]
    fn medium(x: u8) -> u8 {
        x * 2
    }

    #[task_token_guard(operation_type = "heavy_op", weight = "HEAVY")]
    fn heavy(x: u8) -> u8 {
        x * 3
    }

    #[task_token_guard(operation_type = "default_weight")]
    fn unweighted(x: u8) -> u8 {
        x * 4
    }

    let handles = [light(1), medium(1), heavy(1), unweighted(1)];
    let results: Vec<u8> = handles.into_iter().map(|h| h.join().unwrap()).collect();
    assert_eq!(results, [1, 2, 3, 4]);
}

#[test]
fn a_function_without_a_return_value() {
    #[task_token_guard(operation_type = "log_line")]
    fn log_line(sink: Arc<Mutex<Vec<String>>>, line: String) {
        sink.lock().unwrap().push(line);
    }

    let sink = Arc::new(Mutex::new(Vec::new()));
    let h: TaskHandle<()> = log_line(sink.clone(), "hello".to_string());
    assert_eq!(h.join(), Ok(()));
    assert_eq!(*sink.lock().unwrap(), ["hello"]);
}

#[test]
fn argument_patterns() {
    struct Point {
        x: i64,
        y: i64,
    }

    #[task_token_guard(operation_type = "patterns")]
    fn patterns(
        (a, b): (u64, u64),
        mut scale: u64,
        Point { x, y }: Point,
        _: String,
        [first, .., last]: [u8; 4],
    ) -> u64 {
        scale += 1;
        (a + b) * scale + (x * y) as u64 + u64::from(first) + u64::from(last)
    }

    let h = patterns((1, 2), 1, Point { x: 3, y: 4 }, String::new(), [5, 0, 0, 6]);
    assert_eq!(h.join(), Ok(3 * 2 + 12 + 5 + 6));
}

#[test]
fn generics_are_forwarded() {
    #[task_token_guard(operation_type = "describe")]
    fn describe<T: std::fmt::Debug + Send + 'static>(value: T) -> String {
        format!("{value:?}")
    }

    #[task_token_guard(operation_type = "parse")]
    fn parse<T>(text: String) -> Option<T>
    where
        T: std::str::FromStr + Send + 'static,
    {
        text.parse().ok()
    }

    #[task_token_guard(operation_type = "repeat")]
    fn repeat<const N: usize>(byte: u8) -> [u8; N] {
        [byte; N]
    }

    #[task_token_guard(operation_type = "apply")]
    fn apply(f: impl FnOnce() -> u64 + Send + 'static) -> u64 {
        f()
    }

    assert_eq!(describe(vec![1, 2]).join().as_deref(), Ok("[1, 2]"));
    assert_eq!(parse::<u32>("42".to_string()).join(), Ok(Some(42)));
    assert_eq!(repeat::<3>(9).join(), Ok([9, 9, 9]));
    assert_eq!(apply(|| 5).join(), Ok(5));
}

#[test]
fn associated_functions_and_static_references() {
    struct Greeter;

    impl Greeter {
        #[task_token_guard(operation_type = "greet")]
        fn greet(name: &'static str) -> String {
            format!("hello, {name}")
        }
    }

    assert_eq!(
        Greeter::greet("tokengate").join().as_deref(),
        Ok("hello, tokengate")
    );
}

#[test]
fn argument_names_do_not_clash_with_the_expansion() {
    #[task_token_guard(operation_type = "hygiene", sticky = __op + __rt)]
    fn hygiene(__op: u32, __rt: u32, __arg0: u32) -> u32 {
        __op + __rt + __arg0
    }

    assert_eq!(hygiene(1, 2, 3).join(), Ok(6));
}

/// Decorated public functions with doc comments (see `#![deny(missing_docs)]` above).
pub mod documented {
    /// Checks `n` for primality on the global runtime.
    #[tokengate::task_token_guard(operation_type = "documented_prime", weight = "heavy")]
    pub fn documented_prime(n: u64) -> bool {
        super::is_prime(n)
    }

    /// Adds one, after an `#[inline]` kept beside the doc comment.
    #[inline]
    #[tokengate::task_token_guard(operation_type = "documented_add")]
    pub fn documented_add(n: u64) -> u64 {
        n + 1
    }
}

#[test]
fn doc_comments_and_attributes_are_kept() {
    assert_eq!(documented::documented_prime(13).join(), Ok(true));
    assert_eq!(documented::documented_add(1).join(), Ok(2));
}
