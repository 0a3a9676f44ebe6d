//! Model-checking code that runs on tokengate, with [loom](https://docs.rs/loom/0.7).
//!
//! This module exists only when the crate is built with `--cfg loom` (for example
//! `RUSTFLAGS="--cfg loom" cargo test --release`). Under that cfg tokengate builds its
//! atomics, cells, threads, parking and thread-locals on loom's, so a [`Runtime`](crate::Runtime) built inside
//! a model is explored by loom like any thread of the model: your code that submits, joins,
//! scopes and cancels on tokengate can be checked in every interleaving, runtime included. No
//! cargo feature is needed; your crate needs `loom = "0.7"` as a
//! `[target.'cfg(loom)'.dependencies]` entry for its own atomics. The guide, with a worked
//! example crate, is `docs/loom.md` in the repository.
//!
//! ```ignore
//! // tests/loom.rs of a crate that depends on tokengate; runs only under --cfg loom.
//! #![cfg(loom)]
//! use loom::sync::atomic::{AtomicUsize, Ordering};
//! use loom::sync::Arc;
//!
//! #[test]
//! fn two_tasks_add_up() {
//!     tokengate::loom::check(2, || {
//!         let rt = tokengate::loom::model_runtime(2).build().unwrap();
//!         let total = Arc::new(AtomicUsize::new(0));
//!         let handles: Vec<_> = (0..2)
//!             .map(|_| {
//!                 let total = total.clone();
//!                 rt.spawn(move || {
//!                     total.fetch_add(1, Ordering::Relaxed);
//!                 })
//!             })
//!             .collect();
//!         for h in handles {
//!             h.join().unwrap();
//!         }
//!         assert_eq!(total.load(Ordering::Relaxed), 2);
//!         drop(rt); // every runtime must be dropped (or shut down) before the model returns
//!     });
//! }
//! ```
//!
//! ## What works under loom, and what refuses
//!
//! | API | under loom |
//! | --- | --- |
//! | `Runtime::builder()…build()`, `submit`, `spawn`, `try_submit`, `submit_batch`, `join`, `is_finished`, `cancel`, `state`, `scope`, `broadcast`, admin calls, `stats()` | as in a real run: what a model checks |
//! | `TaskHandle` as a `Future` | works with `loom::future::block_on` |
//! | [`Builder::pin`](crate::Builder::pin)`(true)` (the default) | a [`BuildError`](crate::BuildError) saying to use `.pin(false)`: loom has no cores |
//! | [`Builder::metrics`](crate::Builder::metrics) | works, but the timings read the real clock and only cost branches: turn it off ([`model_runtime`] does) |
//! | [`crate::global()`], the `#[task_token_guard]` functions that use it, and [`crate::join`] called off a worker (it joins on `global()`) | a panic in words: a process-wide runtime would outlive the model's execution, whose threads loom ends; `Runtime::join` and `tokengate::join` inside a task work |
//! | [`Operation::deadline`](crate::Operation::deadline) | a panic in words at submission: a model has no clock, and a deadline read from the real one would make executions differ |
//! | [`TaskHandle::wait_timeout`](crate::TaskHandle::wait_timeout) | `Duration::ZERO` (a poll) and `Duration::MAX` (a join) work; any other timeout panics in words, for the same reason |
//!
//! ## Keeping a model small
//!
//! Every atomic access of every thread is a point where loom may switch threads, and a
//! runtime has many: use one worker unless the property needs two, a capacity of 2 or 4, no
//! metrics, and as few tasks as show the property. Bound the preemptions (2 is the usual
//! choice, and takes a minute or two with two workers and a driving thread; 1 takes seconds;
//! `LOOM_MAX_PREEMPTIONS` overrides the bound). Two workers make each execution long (about a
//! thousand scheduling decisions), which [`check`] allows for.
//!
//! ## Two loom 0.7 limitations, worked around here
//!
//! - **Missed interleavings (tokio-rs/loom#392, #166).** Loom's DPOR remembers only the last
//!   access to each atomic. If thread X loads an atomic and thread Y then loads and stores
//!   it, Y's store is compared with Y's own load only, and the schedule "X loads after Y's
//!   store" is never tried. So a model whose reader happens to run first in loom's initial
//!   schedule can pass with a bug in it. [`check_each_order`] runs a model twice, with its
//!   threads spawned ([`Order::spawn_all`]) in order and reversed, so each pair of threads
//!   meets in both orders in an initial schedule.
//! - **Unfair yields (tokio-rs/loom#53).** At a `yield_now` loom may hand the processor to any
//!   other thread, including the schedule in which two spinning threads take turns forever
//!   while the thread they wait for never runs. Two retry loops waiting on a third thread
//!   therefore fail a model ("exceeded maximum number of branches") although real hardware
//!   makes progress. Avoid retry loops in models, or keep at most one thread in one.

use crate::runtime::Builder;

/// The most scheduling decisions [`check`] allows in one execution (loom's default is 1,000):
/// a runtime with two workers driven through the public API takes a few thousand in one
/// execution, every look for work and idle step of each worker being one. A spin loop that
/// never ends still fails the model, only later. `LOOM_MAX_BRANCHES` overrides it.
pub const MAX_BRANCHES: usize = 20_000;

/// Explores `model` under loom with at most `preemption_bound` preemptions per execution
/// (`LOOM_MAX_PREEMPTIONS` in the environment overrides it) and at most [`MAX_BRANCHES`]
/// scheduling decisions per execution, then prints (to the test's captured output) how many
/// executions were explored and how long it took. Panics, failing the test, on the first
/// execution that panics or deadlocks.
pub fn check<F>(preemption_bound: usize, model: F)
where
    F: Fn() + Sync + Send + 'static,
{
    check_with(preemption_bound, MAX_BRANCHES, model);
}

/// [`check`] with a limit of `max_branches` scheduling decisions per execution.
pub fn check_with<F>(preemption_bound: usize, max_branches: usize, model: F)
where
    F: Fn() + Sync + Send + 'static,
{
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let mut builder = ::loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(preemption_bound);
    }
    if std::env::var_os("LOOM_MAX_BRANCHES").is_none() {
        builder.max_branches = max_branches;
    }
    let bound = builder.preemption_bound;
    // A plain std counter, outside the model: loom runs the executions one after another.
    let executions = Arc::new(AtomicUsize::new(0));
    let counter = executions.clone();
    let started = std::time::Instant::now();
    builder.check(move || {
        // ORDERING: Relaxed: a count read after every execution ended, on this thread.
        counter.fetch_add(1, Ordering::Relaxed);
        model();
    });
    eprintln!(
        "loom: {} executions, preemption bound {:?}, {:.2?}",
        // ORDERING: Relaxed, as above.
        executions.load(Ordering::Relaxed),
        bound,
        started.elapsed()
    );
}

/// The order in which [`Order::spawn_all`] spawns a model's threads (see the module docs).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// First role first.
    Forward,
    /// Last role first.
    Reverse,
}

impl Order {
    /// Spawns one loom thread per role in this order, joins them all, and returns their
    /// results in role order (not spawn order). A panicking role fails the model.
    pub fn spawn_all<R: 'static>(self, roles: Vec<Box<dyn FnOnce() -> R>>) -> Vec<R> {
        let mut indexed: Vec<(usize, Box<dyn FnOnce() -> R>)> =
            roles.into_iter().enumerate().collect();
        if self == Order::Reverse {
            indexed.reverse();
        }
        let handles: Vec<(usize, ::loom::thread::JoinHandle<R>)> = indexed
            .into_iter()
            .map(|(i, role)| (i, ::loom::thread::spawn(role)))
            .collect();
        let mut results: Vec<(usize, R)> = handles
            .into_iter()
            .map(|(i, h)| match h.join() {
                Ok(r) => (i, r),
                Err(payload) => std::panic::resume_unwind(payload),
            })
            .collect();
        results.sort_by_key(|(i, _)| *i);
        results.into_iter().map(|(_, r)| r).collect()
    }
}

/// [`check`]s `model` twice: with its threads spawned [`Order::Forward`], then
/// [`Order::Reverse`] (see the module docs for why).
pub fn check_each_order<F>(preemption_bound: usize, model: F)
where
    F: Fn(Order) + Sync + Send + 'static,
{
    let model = std::sync::Arc::new(model);
    for order in [Order::Forward, Order::Reverse] {
        let model = model.clone();
        eprint!("{order:?}: ");
        check(preemption_bound, move || model(order));
    }
}

/// A [`Builder`] set for a model: `workers` workers, unpinned (loom has no cores), capacity
/// 4, no metrics, no history. Change what the model needs, then `build()`. Its workers are
/// loom threads spawned by `build`; drop the runtime (or shut it down) before the model
/// returns, since loom waits for every thread it spawned.
pub fn model_runtime(workers: usize) -> Builder {
    Builder::default()
        .workers(workers)
        .pin(false)
        .capacity(4)
        .metrics(false)
        .history(0)
}
