//! A submitted task: its [`TaskSlot`] plus what the runtime knows about it, behind the two
//! type-erased views the runtime needs: [`Job`] for workers (no types) and [`Outcome<T>`] for
//! handles (the output type only).

use std::fmt;
use std::task::{Context, Poll};

use crate::error::TaskError;
use crate::slot::{Registration, TaskSlot};
use crate::token::TokenState;

/// A task's identity: unique among the tasks of one runtime at any time, and across time
/// unless a token is reused 2³² times.
///
/// # Examples
///
/// ```
/// use tokengate::Runtime;
///
/// let rt = Runtime::builder().workers(1).pin(false).build()?;
/// let (a, b) = (rt.spawn(|| ()), rt.spawn(|| ()));
/// assert_ne!(a.id(), b.id());
/// # Ok::<(), tokengate::BuildError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(u64);

impl TaskId {
    /// The id of the `generation`-th task admitted with token `index`.
    pub(crate) fn new(generation: u32, index: u32) -> Self {
        Self((generation as u64) << 32 | index as u64)
    }

    pub(crate) fn from_u64(id: u64) -> Self {
        Self(id)
    }

    pub(crate) fn generation(self) -> u32 {
        (self.0 >> 32) as u32
    }

    pub(crate) fn index(self) -> u32 {
        self.0 as u32
    }

    /// The id as one number.
    pub fn as_u64(self) -> u64 {
        self.0
    }
}

impl fmt::Debug for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TaskId({self})")
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let index = self.0 as u32;
        if index == u32::MAX {
            write!(f, "inline-{}", self.0 >> 32)
        } else {
            write!(f, "{}.{}", index, self.0 >> 32)
        }
    }
}

/// What the runtime records about a task besides its slot.
#[derive(Debug)]
pub(crate) struct TaskMeta {
    pub(crate) id: TaskId,
    pub(crate) operation: &'static str,
    /// Identity of the runtime that admitted it (the address of its shared state), so that a
    /// worker joining the task knows whether it may run it inline.
    pub(crate) runtime: usize,
    /// Index of its operation in the runtime's operation table.
    pub(crate) op: u32,
    /// The operation's kill epoch at admission (see `OpEntry::epoch`).
    pub(crate) epoch: u32,
    pub(crate) weight: crate::operation::Weight,
    pub(crate) sticky: Option<u64>,
    /// Only this worker may run it (broadcast).
    pub(crate) pinned_to: Option<usize>,
    /// The worker it must run on: `pinned_to`, or its sticky key's worker.
    pub(crate) home: Option<usize>,
    /// Admission time on the runtime's clock (0 when timings are off).
    pub(crate) submitted_ns: u64,
    /// Start deadline, if its operation has one.
    pub(crate) deadline: Option<std::time::Instant>,
}

pub(crate) struct Task<F, T> {
    meta: TaskMeta,
    slot: TaskSlot<F, T>,
}

impl<F: FnOnce() -> T, T> Task<F, T> {
    pub(crate) fn new(meta: TaskMeta, func: F) -> Self {
        Self {
            meta,
            slot: TaskSlot::new(func),
        }
    }

    pub(crate) fn resolved(meta: TaskMeta, error: TaskError, lifecycle: TokenState) -> Self {
        Self {
            meta,
            slot: TaskSlot::resolved(error, lifecycle),
        }
    }
}

/// The worker's view of a task: run it or kill it.
pub(crate) trait Job: Send + Sync {
    fn meta(&self) -> &TaskMeta;
    /// Runs the task here unless it ran or was killed already, calling `before_publish` with
    /// the final state just before the outcome becomes visible; returns whether it ran.
    fn run_then(&self, before_publish: &mut dyn FnMut(TokenState)) -> bool;
    /// Resolves the task without running it, if it has not started.
    fn abandon(&self, error: TaskError, lifecycle: TokenState) -> bool;
    fn is_ready(&self) -> bool;
    fn state(&self) -> TokenState;
    fn register_waiter(&self) -> Registration;
    fn unregister_waiter(&self);
    /// Blocks until the outcome is ready.
    fn wait(&self);
}

/// The handle's view of a task: the [`Job`] view plus the outcome.
pub(crate) trait Outcome<T>: Job {
    fn take_output(&self) -> Option<Result<T, TaskError>>;
    /// Polls the outcome as a future; see [`TaskSlot::poll_output`].
    fn poll_output(&self, cx: &mut Context<'_>) -> Poll<Result<T, TaskError>>;
    /// Withdraws the waker of a future dropped before its outcome arrived.
    fn unregister_waker(&self);
    fn as_job(&self) -> &dyn Job;
}

/// A type-erased, shared task, as the token table and workers hold it.
pub(crate) type JobRef = std::sync::Arc<dyn Job>;

impl<F, T> Job for Task<F, T>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    fn meta(&self) -> &TaskMeta {
        &self.meta
    }

    #[inline]
    fn run_then(&self, before_publish: &mut dyn FnMut(TokenState)) -> bool {
        self.slot.run_then(before_publish)
    }

    fn abandon(&self, error: TaskError, lifecycle: TokenState) -> bool {
        self.slot.abandon(error, lifecycle)
    }

    #[inline]
    fn is_ready(&self) -> bool {
        self.slot.is_ready()
    }

    fn state(&self) -> TokenState {
        self.slot.state()
    }

    fn register_waiter(&self) -> Registration {
        self.slot.register_waiter()
    }

    fn unregister_waiter(&self) {
        self.slot.unregister_waiter()
    }

    fn wait(&self) {
        self.slot.wait()
    }
}

impl<F, T> Outcome<T> for Task<F, T>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    fn take_output(&self) -> Option<Result<T, TaskError>> {
        self.slot.take_output()
    }

    fn poll_output(&self, cx: &mut Context<'_>) -> Poll<Result<T, TaskError>> {
        self.slot.poll_output(cx)
    }

    fn unregister_waker(&self) {
        self.slot.unregister_waker()
    }

    fn as_job(&self) -> &dyn Job {
        self
    }
}
