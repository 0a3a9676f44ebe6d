//! Scoped tasks: tasks that borrow from the caller's stack, all finished before
//! [`Runtime::scope`](crate::Runtime::scope) returns.

use std::fmt;
use std::marker::PhantomData;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use crate::error::{TaskError, TrySubmitError};
use crate::handle::TaskHandle;
use crate::operation::Operation;
use crate::runtime::Runtime;
use crate::sync::{thread, Arc, AtomicUsize, Ordering};
use crate::token::TokenState;
use crate::worker;

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
    state: Arc<ScopeState>,
    /// Invariant in `'scope` and `'env`, as `std::thread::Scope` is.
    _scope: PhantomData<&'scope mut &'scope ()>,
    _env: PhantomData<&'env mut &'env ()>,
}

/// The handle of a scoped task; it cannot outlive its scope.
#[must_use = "a task's panic or cancellation is only seen through its handle"]
pub struct ScopedHandle<'scope, T> {
    inner: TaskHandle<T>,
    _scope: PhantomData<&'scope ()>,
}

impl<T> ScopedHandle<'_, T> {
    /// Waits for the task; see [`TaskHandle::join`].
    pub fn join(self) -> Result<T, TaskError> {
        self.inner.join()
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

struct ScopeState {
    /// Scoped tasks whose closure has not yet been consumed or dropped.
    pending: AtomicUsize,
    owner: thread::Thread,
}

/// Lives inside a scoped task's closure: dropped when the closure has run or was dropped
/// unrun, after everything it borrowed (field order), it lets the scope end.
struct PendingGuard(Arc<ScopeState>);

impl Drop for PendingGuard {
    fn drop(&mut self) {
        // ORDERING: AcqRel: Release makes the task's effects visible to the owner's Acquire
        // load in `wait_all`; Acquire orders this before the unpark.
        if self.0.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.owner.unpark();
        }
    }
}

/// A scoped closure and its guard; fields drop in declaration order, so the closure (and what
/// it borrowed) is gone before the guard lets the scope end.
struct ScopedTask<F> {
    func: F,
    guard: PendingGuard,
}

impl<F: FnOnce() -> T, T> ScopedTask<F> {
    fn call(self) -> T {
        let ScopedTask { func, guard } = self;
        let out = func();
        drop(guard);
        out
    }
}

impl<'scope, 'env> Scope<'scope, 'env> {
    /// Submits a task that may borrow anything that outlives the scope; blocks while the
    /// runtime is at capacity, like [`Runtime::submit`].
    pub fn submit<F, T>(&'scope self, op: &Operation, func: F) -> ScopedHandle<'scope, T>
    where
        F: FnOnce() -> T + Send + 'scope,
        T: Send + 'scope,
    {
        // ORDERING: Relaxed: the increment happens-before `wait_all` by program order on the
        // owner thread (submit is called inside the scope closure) or by the spawn of the
        // task that submits (nested).
        self.state.pending.fetch_add(1, Ordering::Relaxed);
        let task = ScopedTask {
            func,
            guard: PendingGuard(self.state.clone()),
        };
        let shared = self.runtime.shared();
        // SAFETY: `Runtime::scope` does not return before `pending` is zero, i.e. before every
        // scoped closure was consumed or dropped; borrowed data outlives `'scope`.
        let admitted = unsafe { shared.admit_unchecked(op, move || task.call(), true, None) };
        let inner = match admitted {
            Ok(handle) => handle,
            Err(refused) => {
                let error = match refused {
                    TrySubmitError::ShutDown(_) | TrySubmitError::Full(_) => TaskError::ShutDown,
                    TrySubmitError::Blocked(_) => TaskError::Blocked,
                };
                // `refused` (with the closure and guard) was dropped by the match above.
                shared.refused(op, error)
            }
        };
        ScopedHandle {
            inner,
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

    fn wait_all(&self) {
        // ORDERING: Acquire pairs with the AcqRel decrement in `PendingGuard::drop`.
        let done = || self.state.pending.load(Ordering::Acquire) == 0;
        let id = self.runtime.shared().id();
        if worker::with_current(id, |w| w.help_until(done, true)).is_none() {
            while !done() {
                thread::park();
            }
        }
    }
}

impl fmt::Debug for Scope<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            // ORDERING: Relaxed: a report.
            .field("pending", &self.state.pending.load(Ordering::Relaxed))
            .finish()
    }
}

pub(crate) fn scope<'env, F, R>(runtime: &Runtime, f: F) -> R
where
    F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> R,
{
    let scope = Scope {
        runtime,
        state: Arc::new(ScopeState {
            pending: AtomicUsize::new(0),
            owner: thread::current(),
        }),
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
