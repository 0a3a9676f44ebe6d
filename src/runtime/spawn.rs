//! [`spawn`] and [`submit`]: a submission to the runtime the calling thread works for, with
//! no `Runtime` at hand (as `rayon::spawn` and `tokio::spawn`).

use super::{debug_assert_runs_once, TaskHandle};
use crate::engine::current;
use crate::operation::Operation;

/// Submits `func` as a task of `op` to the runtime of the calling worker, or to
/// [`global()`](crate::global) when the caller is not a tokengate worker: what
/// [`Runtime::submit`](crate::Runtime::submit) does on that runtime.
///
/// A task that submits more tasks (nested fork-join through handles, a tree walk) needs no
/// `Arc<Runtime>` cloned into each closure: that reference count is one cache line every
/// worker writes twice per task, which costs more than the rest of the submission once two
/// cores share it (`fib(34)` forking at every call above `fib(12)` ran 1.4× faster on two
/// workers through this function than through an `Arc<Runtime>` per fork).
///
/// Built with `--cfg loom` (a model, see `docs/loom.md`), a call off the workers panics in
/// words, as [`global()`](crate::global) does there: build the model's runtime and submit to it.
///
/// # Examples
///
/// ```
/// use tokengate::{Operation, Runtime, Weight};
///
/// const FIB: Operation = Operation::new("fib").weight(Weight::Medium);
///
/// fn serial(n: u64) -> u64 {
///     if n < 2 { n } else { serial(n - 1) + serial(n - 2) }
/// }
///
/// /// `fib(n)` forking `fib(n - 1)` as a task of the runtime it runs on.
/// fn fib(n: u64) -> u64 {
///     if n < 10 {
///         return serial(n);
///     }
///     let left = tokengate::submit(&FIB, move || fib(n - 1));
///     let right = fib(n - 2);
///     left.join().unwrap() + right
/// }
///
/// let rt = Runtime::builder().workers(2).pin(false).build()?;
/// assert_eq!(rt.submit(&FIB, || fib(20)).join(), Ok(6765));
/// # Ok::<(), tokengate::BuildError>(())
/// ```
pub fn submit<F, T>(op: &Operation, func: F) -> TaskHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    debug_assert_runs_once(op, "tokengate::submit");
    current::with_any_current_or(
        func,
        |worker, func| TaskHandle::new(worker.engine().submit(op, func)),
        |func| super::global().submit(op, func),
    )
}

/// [`submit`] with the default operation ([`Operation::DEFAULT`]): a task of the runtime of
/// the calling worker, or of [`global()`](crate::global) off the workers.
///
/// # Examples
///
/// ```
/// let rt = tokengate::Runtime::builder().workers(1).pin(false).build()?;
/// // On a worker: the inner task goes to that worker's runtime.
/// let outer = rt.spawn(|| tokengate::spawn(tokengate::current_worker).join());
/// assert_eq!(outer.join(), Ok(Ok(Some(0))));
/// // Off the workers: to the global runtime.
/// assert_eq!(tokengate::spawn(|| 6 * 7).join(), Ok(42));
/// # Ok::<(), tokengate::BuildError>(())
/// ```
pub fn spawn<F, T>(func: F) -> TaskHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    submit(&Operation::DEFAULT, func)
}
