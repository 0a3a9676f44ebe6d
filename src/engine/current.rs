//! Which worker of which runtime the calling thread is: a thread-local that a worker sets for
//! its whole life. Joins, submissions and scopes ask it whether they run on a worker (which
//! then helps instead of blocking) and on which.

use std::cell::Cell;

use super::worker::Worker;
use crate::sync::thread_local;

/// (runtime id, worker) of the worker running on this thread, if any.
type Current = Cell<Option<(usize, *const Worker)>>;

#[cfg(not(loom))]
thread_local! {
    static CURRENT: Current = const { Cell::new(None) };
}

// loom's `thread_local!` does not accept the `const { .. }` form.
#[cfg(loom)]
thread_local! {
    static CURRENT: Current = Cell::new(None);
}

/// Runs `worker`'s loop on the calling thread (a worker thread of its runtime, from spawn to
/// exit), the thread marked as that worker meanwhile. The mark is set after the worker is
/// in place and cleared before it is dropped, so it never points to a worker that is gone.
pub(crate) fn run_worker(worker: Worker) {
    let runtime = worker.engine().id();
    CURRENT.with(|c| c.set(Some((runtime, &worker as *const Worker))));
    /// Clears the mark even if the loop unwinds (it catches user panics; this is for a bug).
    struct Unmark;
    impl Drop for Unmark {
        fn drop(&mut self) {
            CURRENT.with(|c| c.set(None));
        }
    }
    let _unmark = Unmark;
    worker.serve();
}

/// Calls `f` with the calling thread's worker and its runtime's id, if it is a worker.
#[inline]
fn with_worker<R>(f: impl FnOnce(Option<(usize, &Worker)>) -> R) -> R {
    let current = CURRENT.with(|c| c.get());
    // SAFETY: `CURRENT` holds a pointer only while the `Worker` it points to is alive on this
    // very thread: `run_worker` owns the worker for the loop's whole life, marks the thread
    // after it has it and unmarks it (even when unwinding) before dropping it. The reference
    // does not outlive `f`.
    f(current.map(|(runtime, w)| (runtime, unsafe { &*w })))
}

/// The index of the worker the calling thread is, if it is a tokengate worker (of any
/// runtime).
///
/// # Examples
///
/// ```
/// let rt = tokengate::Runtime::builder().workers(1).pin(false).build()?;
/// assert_eq!(tokengate::current_worker(), None);
/// assert_eq!(rt.spawn(tokengate::current_worker).join(), Ok(Some(0)));
/// # Ok::<(), tokengate::BuildError>(())
/// ```
pub fn current_worker() -> Option<usize> {
    with_worker(|current| current.map(|(_, w)| w.index()))
}

/// Calls `f` with the calling thread's worker, of whichever runtime.
#[inline]
pub(crate) fn with_any_current<R>(f: impl FnOnce(&Worker) -> R) -> Option<R> {
    with_worker(|current| current.map(|(_, w)| f(w)))
}

/// Calls `on_worker` with the calling thread's worker (of whichever runtime) and `data`, or
/// `elsewhere` with `data` if the thread is not a worker: `data` (closures to run, say) goes
/// to whichever runs, without an `Option` to take it out of.
#[inline]
pub(crate) fn with_any_current_or<T, R>(
    data: T,
    on_worker: impl FnOnce(&Worker, T) -> R,
    elsewhere: impl FnOnce(T) -> R,
) -> R {
    with_worker(|current| match current {
        Some((_, w)) => on_worker(w, data),
        None => elsewhere(data),
    })
}

/// [`with_any_current_or`] for a worker of runtime `runtime` only.
#[inline]
pub(crate) fn with_current_or<T, R>(
    runtime: usize,
    data: T,
    on_worker: impl FnOnce(&Worker, T) -> R,
    elsewhere: impl FnOnce(T) -> R,
) -> R {
    with_worker(|current| match current {
        Some((rt, w)) if rt == runtime => on_worker(w, data),
        _ => elsewhere(data),
    })
}

/// Calls `f` with the calling thread's worker if it is a worker of runtime `runtime`.
#[inline]
pub(crate) fn with_current<R>(runtime: usize, f: impl FnOnce(&Worker) -> R) -> Option<R> {
    with_worker(|current| match current {
        Some((rt, w)) if rt == runtime => Some(f(w)),
        _ => None,
    })
}

/// The index of the calling thread's worker, if it is a worker of runtime `runtime`.
#[inline]
pub(crate) fn current_index(runtime: usize) -> Option<usize> {
    with_current(runtime, |w| w.index())
}

/// Whether the calling thread is a worker of runtime `runtime`.
#[inline]
pub(crate) fn is_worker_of(runtime: usize) -> bool {
    current_index(runtime).is_some()
}
