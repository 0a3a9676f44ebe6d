//! Loom models live in `tests/`; this crate only holds the helpers they share.
//!
//! Run them with
//!
//! ```text
//! CARGO_TARGET_DIR=target/loom RUSTFLAGS="--cfg loom -C debug-assertions" \
//!     cargo test -p tokengate-loom-tests --release -- --test-threads=1
//! ```
//!
//! Without `--cfg loom` every model file compiles to nothing.
//!
//! ## Two loom 0.7 limitations the models work around
//!
//! - **Missed interleavings (tokio-rs/loom#392, #166).** Loom's DPOR remembers only the last
//!   access to each atomic. If thread X loads an atomic and thread Y then loads and stores
//!   it, Y's store is compared with Y's own load only, and the schedule "X loads after Y's
//!   store" is never tried. So a model whose reader happens to run first in loom's initial
//!   schedule can pass with a bug in it. The models therefore run their threads from
//!   `Order::spawn_all` and every model under `check_each_order`: once with the threads
//!   spawned in order and once reversed, so each pair of threads meets in both orders in an
//!   initial schedule (loom runs spawned threads in spawn order until one blocks).
//! - **Unfair yields (tokio-rs/loom#53).** At a `yield_now` loom may hand the processor to any
//!   other thread, including the schedule in which two spinning threads take turns forever
//!   while the thread they wait for never runs. Two retry loops waiting on a third thread
//!   therefore fail a model ("exceeded maximum number of branches") although real hardware
//!   makes progress. The models avoid retry loops, or keep at most one thread in one.

/// The order in which `Order::spawn_all` spawns a model's threads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Order {
    /// First role first.
    Forward,
    /// Last role first.
    Reverse,
}

#[cfg(loom)]
impl Order {
    /// Spawns one loom thread per role in this order, joins them all, and returns their
    /// results in role order (not spawn order). A panicking role fails the model.
    pub fn spawn_all<R: 'static>(self, roles: Vec<Box<dyn FnOnce() -> R>>) -> Vec<R> {
        let mut indexed: Vec<(usize, Box<dyn FnOnce() -> R>)> =
            roles.into_iter().enumerate().collect();
        if self == Order::Reverse {
            indexed.reverse();
        }
        let handles: Vec<(usize, loom::thread::JoinHandle<R>)> = indexed
            .into_iter()
            .map(|(i, role)| (i, loom::thread::spawn(role)))
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

/// Explores `model` under loom with at most `preemption_bound` preemptions per execution,
/// then prints (to the test's captured output; see it with `--nocapture`) how many executions
/// were explored and how long it took.
///
/// The bound keeps a model within minutes on a small machine; `LOOM_MAX_PREEMPTIONS` in the
/// environment overrides it (say to search deeper once, or shallower while iterating). The
/// cap on one execution's atomic operations is raised to 10,000 (see the body).
#[cfg(loom)]
pub fn check<F>(preemption_bound: usize, model: F)
where
    F: Fn() + Sync + Send + 'static,
{
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    let mut builder = loom::model::Builder::new();
    if builder.preemption_bound.is_none() {
        builder.preemption_bound = Some(preemption_bound);
    }
    // Loom's default cap on the atomic operations of one execution (1,000) is below what a
    // two-worker runtime model takes: each look for work reads the mailboxes, the deque and
    // the job deque of the other worker. A cap still catches a spin loop that never ends.
    // `LOOM_MAX_BRANCHES` in the environment overrides it.
    if std::env::var_os("LOOM_MAX_BRANCHES").is_none() {
        builder.max_branches = builder.max_branches.max(10_000);
    }
    let bound = builder.preemption_bound;
    // A plain std counter: loom runs the executions one after another, and the count is not
    // part of any model.
    let executions = Arc::new(AtomicUsize::new(0));
    let counter = executions.clone();
    let started = std::time::Instant::now();
    builder.check(move || {
        counter.fetch_add(1, Ordering::Relaxed);
        model();
    });
    eprintln!(
        "loom: {} executions, preemption bound {:?}, {:.2?}",
        executions.load(Ordering::Relaxed),
        bound,
        started.elapsed()
    );
}

/// [`check`]s `model` twice: with its threads spawned [`Order::Forward`], then
/// [`Order::Reverse`] (see the crate docs for why).
#[cfg(loom)]
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

/// The smallest runtime a model can drive through the public API: one worker, unpinned (loom
/// has no cores to pin to), with `capacity` tokens. Its worker is a loom thread spawned by
/// `build`, so the model explores it like any thread of its own.
///
/// Every model must let the runtime drop (or shut it down) before the model returns:
/// graceful shutdown joins the worker, and a worker left running is a thread loom waits for.
#[cfg(loom)]
pub fn tiny_runtime(capacity: usize) -> tokengate::Runtime {
    tokengate::Runtime::builder()
        .workers(1)
        .pin(false)
        .capacity(capacity)
        .build()
        .expect("a one-worker runtime builds under loom")
}
