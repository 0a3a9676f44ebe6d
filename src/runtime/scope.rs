//! Scoped tasks: tasks that borrow from the caller's stack, all finished before
//! [`Runtime::scope`](crate::Runtime::scope) returns.

use std::fmt;
use std::marker::PhantomData;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use super::{Runtime, TaskHandle};
use crate::engine::{current, Engine};
use crate::error::TaskError;
use crate::operation::Operation;
use crate::primitives::TokenState;
use crate::sync::{thread, Arc};
use crate::task::{GroupOutput, TaskGroup};

/// A scope for tasks that borrow; see [`Runtime::scope`].
///
/// A scoped task's handle cannot leave its scope:
///
/// ```compile_fail
/// let rt = tokengate::Runtime::builder().workers(1).pin(false).build().unwrap();
/// let data = vec![1, 2, 3];
/// let escaped = rt.scope(|s| s.spawn(|| data.len())); // error: borrowed data escapes
/// ```
///
/// and a task may only borrow what outlives the scope:
///
/// ```compile_fail
/// let rt = tokengate::Runtime::builder().workers(1).pin(false).build().unwrap();
/// rt.scope(|s| {
///     let local = vec![1, 2, 3];
///     s.spawn(|| local.len()); // error: `local` does not live long enough
/// });
/// ```
pub struct Scope<'scope, 'env: 'scope> {
    runtime: &'scope Runtime,
    /// Every scoped task counts here until its closure is gone and its output taken or
    /// dropped: `scope` returns only once the group is empty, so nothing a scoped task may
    /// borrow from `'env` is touched after it returns.
    group: Arc<TaskGroup>,
    /// Invariant in `'scope` and `'env`, as `std::thread::Scope` is.
    _scope: PhantomData<&'scope mut &'scope ()>,
    _env: PhantomData<&'env mut &'env ()>,
}

/// The handle of a scoped task; it cannot outlive its scope.
#[must_use = "a task's panic or cancellation is only seen through its handle"]
pub struct ScopedHandle<'scope, T> {
    inner: TaskHandle<GroupOutput<T>>,
    _scope: PhantomData<&'scope ()>,
}

impl<T> ScopedHandle<'_, T> {
    /// Waits for the task; see [`TaskHandle::join`].
    pub fn join(self) -> Result<T, TaskError> {
        self.inner.join().map(GroupOutput::into_value)
    }

    /// See [`TaskHandle::is_finished`].
    pub fn is_finished(&self) -> bool {
        self.inner.is_finished()
    }

    /// See [`TaskHandle::cancel`].
    pub fn cancel(&self) -> bool {
        self.inner.cancel()
    }

    /// See [`TaskHandle::state`].
    pub fn state(&self) -> TokenState {
        self.inner.state()
    }
}

impl<T> fmt::Debug for ScopedHandle<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ScopedHandle").field(&self.inner).finish()
    }
}

impl<'scope, 'env> Scope<'scope, 'env> {
    /// Submits a task that may borrow anything that outlives the scope; blocks while the
    /// runtime is at capacity, like [`Runtime::submit`]. Like it, it runs `func` once (a
    /// debug build panics when `op` has [`retries`](Operation::retries)).
    pub fn submit<F, T>(&'scope self, op: &Operation, func: F) -> ScopedHandle<'scope, T>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        super::debug_assert_runs_once(op, "Scope::submit");
        let task = TaskGroup::task(&self.group, func);
        // SAFETY: the closure is a task of `self.group`, and `scope` does not return (so
        // `'scope` and `'env` do not end) before the group is empty.
        let outcome = unsafe {
            self.runtime
                .engine()
                .submit_unchecked(op, move || task.call(), None)
        };
        ScopedHandle {
            inner: TaskHandle::new(outcome),
            _scope: PhantomData,
        }
    }

    /// [`submit`](Self::submit) with the default operation.
    pub fn spawn<F, T>(&'scope self, func: F) -> ScopedHandle<'scope, T>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        self.submit(&Operation::DEFAULT, func)
    }

    /// [`spawn`](Self::spawn) in first-in, first-out order, as rayon's `Scope::spawn_fifo`
    /// (see [`Operation::fifo`]).
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::Mutex;
    ///
    /// let rt = tokengate::Runtime::builder().workers(1).pin(false).build()?;
    /// let order = Mutex::new(Vec::new());
    /// // Spawned from the worker (a scope inside a task), FIFO tasks run in spawn order.
    /// rt.scope(|outer| {
    ///     let _ = outer.spawn(|| {
    ///         rt.scope(|s| {
    ///             for i in 0..3 {
    ///                 let order = &order;
    ///                 let _ = s.spawn_fifo(move || order.lock().unwrap().push(i));
    ///             }
    ///         })
    ///     });
    /// });
    /// assert_eq!(*order.lock().unwrap(), [0, 1, 2]);
    /// # Ok::<(), tokengate::BuildError>(())
    /// ```
    pub fn spawn_fifo<F, T>(&'scope self, func: F) -> ScopedHandle<'scope, T>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        self.submit(&Operation::DEFAULT.fifo(), func)
    }

    fn wait_all(&self) {
        wait_for_group(self.runtime.engine(), &self.group);
    }
}

/// Waits until every task of `group` has been dropped. A worker (of this runtime or another)
/// keeps serving its runtime meanwhile; another thread parks (the last task's drop unparks
/// the group's owner, which is the caller).
pub(super) fn wait_for_group(engine: &Engine, group: &TaskGroup) {
    let done = || group.is_empty();
    let helped = current::with_current(engine.id(), |w| w.help_until(done, true))
        .or_else(|| current::with_any_current(|w| w.help_until(done, true)));
    if helped.is_none() {
        while !done() {
            thread::park();
        }
    }
}

impl fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("done", &self.group.is_empty())
            .finish()
    }
}

/// [`Runtime::scope`]: runs `f` with a new scope, then waits for the scope's tasks.
pub(super) fn run<'env, F, R>(runtime: &Runtime, f: F) -> R
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> R,
{
    let scope = Scope {
        runtime,
        group: TaskGroup::new(),
        _scope: PhantomData,
        _env: PhantomData,
    };
    let result = catch_unwind(AssertUnwindSafe(|| f(&scope)));
    scope.wait_all();
    match result {
        Ok(r) => r,
        Err(payload) => resume_unwind(payload),
    }
}
