//! Fork-join on the stack: [`join`] and [`Runtime::join`], as `rayon::join`. The worker side
//! (the stack job, its steal and its latch) is `engine/join.rs`.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use super::Runtime;
use crate::engine::current;
use crate::engine::join::{fork_join, join_inline};

/// Runs `a` and `b`, potentially in parallel, and returns both results: [`Runtime::join`] on
/// the runtime of the calling worker, or on [`global()`](crate::global) when the caller is
/// not a tokengate worker.
///
/// Called on a worker, `b` is forked on the caller's stack (no allocation) where idle workers
/// of its runtime can steal it, and `a` runs inline; `b` runs inline after it if nobody took
/// it. The closures may borrow from the caller's stack.
///
/// # Panics
///
/// If `a` or `b` panics, the panic is re-raised once both are done (`a`'s if both panicked).
///
/// # Examples
///
/// ```
/// fn fib(n: u64) -> u64 {
///     if n < 2 {
///         return n;
///     }
///     let (a, b) = tokengate::join(|| fib(n - 1), || fib(n - 2));
///     a + b
/// }
///
/// assert_eq!(fib(20), 6765);
/// ```
pub fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    current::with_any_current_or(
        (a, b),
        |worker, (a, b)| fork_join(worker, a, b),
        |(a, b)| run(super::global(), a, b),
    )
}

/// [`Runtime::join`].
#[inline]
pub(super) fn run<A, B, RA, RB>(runtime: &Runtime, a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    current::with_current_or(
        runtime.engine().id(),
        (a, b),
        |worker, (a, b)| fork_join(worker, a, b),
        |(a, b)| run_on_a_worker(runtime, a, b),
    )
}

/// The closures handed to a worker closure that runs once.
#[inline]
fn take<T>(pair: &mut Option<T>) -> T {
    match pair.take() {
        Some(pair) => pair,
        None => unreachable!("the closures are taken once"),
    }
}

/// A join called off the runtime's workers: the pair runs on one of them as a scoped task,
/// and the caller waits (a worker of another runtime keeps serving its own runtime meanwhile,
/// as every scope does). If the task cannot run (the runtime is shut down, or shuts down now
/// and kills it), the pair runs here.
#[cold]
#[inline(never)]
fn run_on_a_worker<A, B, RA, RB>(runtime: &Runtime, a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    let mut pair = Some((a, b));
    let mut outcome = None;
    let id = runtime.engine().id();
    runtime.scope(|s| {
        let (pair, outcome) = (&mut pair, &mut outcome);
        // Its outcome comes back through `outcome`; the scope waits for it either way.
        let _detached = s.spawn(move || {
            let (a, b) = take(pair);
            // A scoped task runs on a worker of its runtime; should it not, inline.
            *outcome = Some(catch_unwind(AssertUnwindSafe(|| {
                current::with_current_or(
                    id,
                    (a, b),
                    |worker, (a, b)| fork_join(worker, a, b),
                    |(a, b)| join_inline(a, b),
                )
            })));
        });
    });
    match (outcome, pair) {
        (Some(Ok(results)), _) => results,
        (Some(Err(payload)), _) => resume_unwind(payload),
        (None, Some((a, b))) => join_inline(a, b),
        (None, None) => unreachable!("a task that took the closures ran them"),
    }
}
