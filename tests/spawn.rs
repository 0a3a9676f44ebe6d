//! `tokengate::spawn` and `tokengate::submit`: a task of the runtime the calling worker works
//! for, or of `global()` off the workers.

use tokengate::{Operation, Runtime, TaskError};

fn runtime(workers: usize) -> Runtime {
    Runtime::builder()
        .workers(workers)
        .pin(false)
        .build()
        .expect("a runtime builds")
}

/// A task that submits through the free functions reaches its own runtime, not the global
/// one nor another runtime: its operation is counted there, and the task runs on a worker of
/// it (a one-worker runtime's only worker).
#[test]
fn on_a_worker_the_task_goes_to_that_workers_runtime() {
    const INNER: Operation = Operation::new("spawn-test-inner");
    let rt = runtime(1);
    let other = runtime(2);
    let outer = rt.spawn(|| {
        let by_submit = tokengate::submit(&INNER, tokengate::current_worker);
        let by_spawn = tokengate::spawn(|| 7);
        (by_submit.join(), by_spawn.join())
    });
    assert_eq!(outer.join(), Ok((Ok(Some(0)), Ok(7))));
    let stats = rt
        .operation_stats(INNER.name())
        .expect("the inner operation was submitted to the worker's own runtime");
    assert_eq!((stats.submitted, stats.completed), (1, 1));
    assert!(other.operation_stats(INNER.name()).is_none());
    assert!(tokengate::global().operation_stats(INNER.name()).is_none());
}

/// Off the workers, the task goes to the global runtime and runs on one of its workers.
#[test]
fn off_the_workers_the_task_goes_to_the_global_runtime() {
    const OUTSIDE: Operation = Operation::new("spawn-test-outside");
    let handle = tokengate::submit(&OUTSIDE, tokengate::current_worker);
    assert!(matches!(handle.join(), Ok(Some(_))));
    let stats = tokengate::global()
        .operation_stats(OUTSIDE.name())
        .expect("counted on the global runtime");
    assert_eq!(stats.submitted, 1);
}

/// Nested fork-join through the free functions, thousands of tasks on two workers: every
/// task runs once and the sum is right; a panicking task resolves its own handle.
#[test]
fn nested_fork_join_through_spawn() {
    fn fib(n: u64) -> u64 {
        if n < 8 {
            return if n < 2 { n } else { fib(n - 1) + fib(n - 2) };
        }
        let left = tokengate::spawn(move || fib(n - 1));
        let right = fib(n - 2);
        left.join().expect("a fib task ran") + right
    }
    let rt = runtime(2);
    assert_eq!(rt.spawn(|| fib(22)).join(), Ok(17_711));
    let panicked = rt.spawn(|| tokengate::spawn(|| -> u8 { panic!("inner") }).join());
    assert!(matches!(panicked.join(), Ok(Err(TaskError::Panicked(_)))));
}

/// A worker of a runtime that was shut down submits through `spawn`: the task resolves
/// `ShutDown` (as `Runtime::submit` after shutdown); it does not go to another runtime.
#[test]
fn a_worker_of_a_closed_runtime_gets_shut_down() {
    let rt = std::sync::Arc::new(runtime(1));
    let inner = rt.clone();
    let outer = rt.spawn(move || {
        // On its own worker: closes admission and returns (the rest happens on drop).
        inner.shutdown();
        tokengate::spawn(|| 1).join()
    });
    assert_eq!(outer.join(), Ok(Err(TaskError::ShutDown)));
    assert!(rt.is_shut_down());
}
