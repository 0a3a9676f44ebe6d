//! `TaskHandle` as a `Future`, awaited under executors that know nothing of tokengate:
//! `futures`' `block_on` and tokio's multi-threaded runtime. An async program offloads CPU
//! work to the workers and awaits it; many handles are awaited at once; a pending handle is
//! dropped by a timeout or a `select!`; errors (a panic, a kill, a shutdown) arrive as
//! outcomes; and the waker protocol is checked with counting wakers.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures::executor::block_on;
use futures::future::join_all;
use tokengate::{Operation, Runtime, TaskError, TaskHandle, TokenState, Weight};

use common::{hold_worker, runtime, Gate};

const HEAVY: Operation = Operation::new("future_heavy").weight(Weight::Heavy);

fn is_prime(n: u64) -> bool {
    n > 1 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0)
}

/// A waker that counts its wake-ups; `Arc::strong_count` counts its live clones.
#[derive(Default)]
struct Counting(AtomicUsize);

impl Wake for Counting {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl Counting {
    fn wakes(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

fn counting() -> (Arc<Counting>, Waker) {
    let counter = Arc::new(Counting::default());
    (counter.clone(), Waker::from(counter))
}

/// Polls `handle` once with `waker`.
fn poll_once<T>(handle: &mut TaskHandle<T>, waker: &Waker) -> Poll<Result<T, TaskError>> {
    Pin::new(handle).poll(&mut Context::from_waker(waker))
}

/// A task that holds its worker until the returned gate opens (or is dropped), then returns
/// "released".
fn gated(rt: &Runtime) -> (TaskHandle<&'static str>, Gate) {
    hold_worker(rt, &Operation::DEFAULT, || "released")
}

#[test]
fn smoke() {
    let rt = runtime(2);
    assert_eq!(block_on(rt.spawn(|| 2 + 2)), Ok(4));
}

#[test]
fn block_on_awaits_many_handles_at_once() {
    let n = if cfg!(miri) { 50 } else { 10_000 };
    let rt = runtime(2);
    let handles: Vec<_> = (0..n as u64).map(|i| rt.spawn(move || i * 2)).collect();
    let outcomes = block_on(join_all(handles));
    let sum: u64 = outcomes.into_iter().map(Result::unwrap).sum();
    assert_eq!(sum, (n as u64) * (n as u64 - 1));
}

#[test]
fn a_pending_handle_is_woken_once_and_then_ready() {
    let rt = runtime(2);
    let (mut h, release) = gated(&rt);
    let (counter, waker) = counting();
    assert!(poll_once(&mut h, &waker).is_pending());
    assert!(
        poll_once(&mut h, &waker).is_pending(),
        "polled again, same waker"
    );
    assert_eq!(
        Arc::strong_count(&counter),
        3,
        "one clone registered, not two"
    );
    release.open();
    while counter.wakes() == 0 {
        std::thread::yield_now();
    }
    assert_eq!(poll_once(&mut h, &waker), Poll::Ready(Ok("released")));
    assert_eq!(counter.wakes(), 1);
    assert_eq!(Arc::strong_count(&counter), 2, "the runtime keeps no clone");
}

#[test]
fn a_handle_moved_to_another_task_wakes_the_new_waker_only() {
    let rt = runtime(2);
    let (mut h, release) = gated(&rt);
    let (old, old_waker) = counting();
    let (new, new_waker) = counting();
    assert!(poll_once(&mut h, &old_waker).is_pending());
    assert!(poll_once(&mut h, &new_waker).is_pending());
    assert_eq!(Arc::strong_count(&old), 2, "the replaced waker is dropped");
    release.open();
    while new.wakes() == 0 {
        std::thread::yield_now();
    }
    assert_eq!(old.wakes(), 0);
    assert_eq!(poll_once(&mut h, &new_waker), Poll::Ready(Ok("released")));
}

#[test]
fn dropping_a_pending_handle_releases_its_waker_and_the_task_still_runs() {
    let rt = runtime(2);
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let (mut h, release) = hold_worker(&rt, &Operation::DEFAULT, move || {
        r.fetch_add(1, Ordering::SeqCst);
    });
    let (counter, waker) = counting();
    assert!(poll_once(&mut h, &waker).is_pending());
    assert_eq!(Arc::strong_count(&counter), 3);
    drop(h);
    assert_eq!(
        Arc::strong_count(&counter),
        2,
        "the dropped handle withdrew its waker"
    );
    release.open();
    rt.shutdown();
    assert_eq!(
        ran.load(Ordering::SeqCst),
        1,
        "dropping a handle does not cancel"
    );
    assert_eq!(counter.wakes(), 0);
}

#[test]
fn a_handle_polled_then_joined_still_joins() {
    let rt = runtime(2);
    let (mut h, release) = gated(&rt);
    let (counter, waker) = counting();
    assert!(poll_once(&mut h, &waker).is_pending());
    let releaser = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(20));
        release.open();
    });
    assert_eq!(h.join(), Ok("released"));
    releaser.join().unwrap();
    assert_eq!(
        counter.wakes(),
        1,
        "the displaced waker is woken (spuriously), once"
    );
    assert_eq!(Arc::strong_count(&counter), 2);
}

#[test]
#[should_panic(expected = "TaskHandle polled after completion")]
fn polling_after_completion_panics() {
    let rt = runtime(1);
    let mut h = rt.spawn(|| 1);
    assert_eq!(block_on(&mut h), Ok(1));
    let _ = block_on(&mut h);
}

#[test]
#[should_panic(expected = "TaskHandle joined after it was polled to completion")]
fn joining_after_completion_panics() {
    let rt = runtime(1);
    let mut h = rt.spawn(|| 1);
    assert_eq!(block_on(&mut h), Ok(1));
    let _ = h.join();
}

#[test]
fn a_panicking_task_resolves_to_its_error() {
    common::quiet_planned_panics();
    let rt = runtime(1);
    let h = rt.spawn(|| -> u8 { panic!("planned panic in an awaited task") });
    match block_on(h) {
        Err(TaskError::Panicked(p)) => assert_eq!(p.message(), "planned panic in an awaited task"),
        other => panic!("expected Panicked, got {other:?}"),
    }
    assert_eq!(block_on(rt.spawn(|| 3)), Ok(3), "the worker lives on");
}

/// The async program the feature is for: tokio serves async work and offloads CPU-heavy
/// calls to the pinned workers, awaiting them without blocking its own threads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_offloads_cpu_work_and_awaits_it() {
    let rt = runtime(2);
    let start = 1_000_000u64;
    let handles: Vec<_> = (start..start + 2_000)
        .map(|n| rt.submit(&HEAVY, move || is_prime(n)))
        .collect();
    let primes = join_all(handles)
        .await
        .into_iter()
        .filter(|p| *p == Ok(true))
        .count();
    assert_eq!(
        primes,
        (start..start + 2_000).filter(|&n| is_prime(n)).count()
    );

    // Each handle awaited in its own tokio task: wakers from every tokio thread.
    let rt = Arc::new(rt);
    let tasks: Vec<_> = (0..200u64)
        .map(|i| {
            let rt = rt.clone();
            tokio::spawn(async move { rt.spawn(move || i * i).await })
        })
        .collect();
    let mut sum = 0;
    for t in tasks {
        sum += t.await.unwrap().unwrap();
    }
    assert_eq!(sum, (0..200u64).map(|i| i * i).sum::<u64>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_timeout_drops_a_pending_handle() {
    let rt = runtime(2);
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let (h, release) = hold_worker(&rt, &Operation::DEFAULT, move || {
        r.fetch_add(1, Ordering::SeqCst);
    });
    let timed_out = tokio::time::timeout(Duration::from_millis(20), h).await;
    assert!(
        timed_out.is_err(),
        "the handle cannot finish before the gate opens"
    );
    release.open();
    // Through a `select!` too: the sleep wins, the handle is dropped pending.
    let (h, release2) = gated(&rt);
    tokio::select! {
        _ = h => panic!("the gated task finished before it was released"),
        _ = tokio::time::sleep(Duration::from_millis(20)) => {}
    }
    release2.open();
    rt.shutdown();
    assert_eq!(
        ran.load(Ordering::SeqCst),
        1,
        "a dropped handle's task still runs"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokio_gets_a_panicking_tasks_error() {
    common::quiet_planned_panics();
    let rt = runtime(2);
    match rt
        .spawn(|| -> u8 { panic!("planned panic under tokio") })
        .await
    {
        Err(TaskError::Panicked(p)) => assert_eq!(p.message(), "planned panic under tokio"),
        other => panic!("expected Panicked, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handles_awaited_after_shutdown_resolve() {
    let rt = runtime(2);
    let before = rt.spawn(|| "ran before the shutdown");
    rt.shutdown();
    assert_eq!(before.await, Ok("ran before the shutdown"));
    let after = rt.spawn(|| "never runs");
    assert_eq!(after.state(), TokenState::Killed);
    assert_eq!(after.await, Err(TaskError::ShutDown));
}

/// A handle pending in a tokio task while `shutdown_now` kills it: the kill wakes the task.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_now_wakes_a_pending_await_with_killed() {
    let rt = Arc::new(runtime(1));
    let (running, release) = gated(&rt);
    let queued = rt.spawn(|| "killed before it ran");
    let awaiting = tokio::spawn(queued);
    // Let the tokio task poll the handle and register its waker.
    tokio::time::sleep(Duration::from_millis(10)).await;
    let r = rt.clone();
    let shutting = std::thread::spawn(move || r.shutdown_now());
    while !rt.is_shut_down() {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    release.open();
    assert_eq!(awaiting.await.unwrap(), Err(TaskError::Killed));
    assert_eq!(running.await, Ok("released"));
    shutting.join().unwrap();
}

/// Many handles awaited by `block_on` on many threads at once, each with its own waker,
/// while the workers finish them: every one resolves.
#[test]
fn many_threads_block_on_handles_concurrently() {
    let per_thread = if cfg!(miri) { 10 } else { 2_000 };
    let rt = Arc::new(runtime(2));
    let start = Arc::new(Barrier::new(4));
    let threads: Vec<_> = (0..4u64)
        .map(|t| {
            let (rt, start) = (rt.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                (0..per_thread)
                    .map(|i| block_on(rt.spawn(move || t * 1_000_000 + i)).unwrap())
                    .sum::<u64>()
            })
        })
        .collect();
    let total: u64 = threads.into_iter().map(|t| t.join().unwrap()).sum();
    let expected: u64 = (0..4u64)
        .map(|t| (0..per_thread).map(|i| t * 1_000_000 + i).sum::<u64>())
        .sum();
    assert_eq!(total, expected);
}
