//! A submitted task: its [`TaskSlot`] plus what the runtime knows about it ([`TaskMeta`]),
//! behind the two type-erased views the runtime needs: [`Job`] for workers (no types) and
//! [`Outcome<T>`] for handles (the output type only); and [`erase`], the one place where a
//! task's borrow is erased.

mod group;
mod id;

use std::any::TypeId;
use std::ptr;
use std::sync::Arc as StdArc;
use std::task::{Context, Poll};
use std::time::Instant;

use crate::error::TaskError;
use crate::operation::{Operation, Weight};
use crate::primitives::{NeverRan, Registration, TaskSlot, TokenState};
use crate::sync::{AtomicBool, Ordering};

pub(crate) use group::{GroupOutput, TaskGroup};
pub(crate) use id::next_runtime_serial;
pub use id::TaskId;

/// Where a task must run, when routing may not choose.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Placement {
    /// A broadcast run: only this worker may run it, from its broadcast queue.
    pub(crate) broadcast_to: Option<usize>,
    /// The worker it must run on: `broadcast_to`, or its sticky key's worker (its home).
    pub(crate) home: Option<usize>,
}

/// When a task was admitted, on its runtime's clock (0 when timings are off), and the
/// instant by which it must start, if its operation has a deadline. The default (0, none) is
/// that of a task refused at admission.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct AdmissionTime {
    pub(crate) ns: u64,
    pub(crate) deadline: Option<Instant>,
}

/// The operation index of a task that has no entry in its runtime's table (refused).
const NO_OPERATION: u32 = u32::MAX;

/// What the runtime records about a task besides its slot.
#[derive(Debug)]
pub(crate) struct TaskMeta {
    pub(crate) id: TaskId,
    pub(crate) operation: &'static str,
    /// Identity of the runtime that admitted it (the address of its engine), so that a
    /// worker joining the task knows whether it may run it inline.
    pub(crate) runtime: usize,
    /// Index of its operation in the runtime's operation table.
    pub(crate) op: u32,
    /// The operation's kill epoch at admission (see `OpEntry::epoch`).
    pub(crate) epoch: u32,
    pub(crate) weight: Weight,
    pub(crate) sticky: Option<u64>,
    /// Only this worker may run it (a broadcast run).
    pub(crate) broadcast_to: Option<usize>,
    /// The worker it must run on: `broadcast_to`, or its sticky key's worker.
    pub(crate) home: Option<usize>,
    /// Admission time on the runtime's clock (0 when timings are off).
    pub(crate) submitted_ns: u64,
    /// Start deadline, if its operation has one.
    pub(crate) deadline: Option<Instant>,
    /// Its operation has a concurrency limit: it runs only with a permit.
    pub(crate) limited: bool,
    /// `Some` when nothing in it borrows (it is not a scope's or a broadcast's): its concrete
    /// type, `TypeId::of::<Task<F, T>>()`. Once it ran, the worker may leave it under its
    /// token, where the token's next taker drops it or, for a task of the same type, builds
    /// the new task in its allocation ([`recycle`]; see `tokens.rs`).
    pub(crate) task_type: Option<TypeId>,
    /// Submitted by a worker of its runtime.
    pub(crate) from_worker: bool,
    /// Its operation is [`fifo`](Operation::fifo): a worker that submits it queues it in
    /// its mailbox, not its local deque.
    pub(crate) fifo: bool,
    /// Asked to stop: a kill or cancel that came while it was running, so a retry loop stops
    /// between attempts.
    pub(crate) stop: AtomicBool,
}

impl TaskMeta {
    /// The metadata of task `id` of `op`, admitted by the runtime `runtime`. `entry`: the
    /// index of its operation in the runtime's table and that operation's kill epoch at
    /// admission (`None` for a refused task, which has no entry).
    pub(crate) fn new(
        id: TaskId,
        runtime: usize,
        op: &Operation,
        entry: Option<(u32, u32)>,
        time: AdmissionTime,
        placement: Placement,
        task_type: Option<TypeId>,
    ) -> Self {
        let (index, epoch) = entry.unwrap_or((NO_OPERATION, 0));
        Self {
            id,
            operation: op.name(),
            runtime,
            op: index,
            epoch,
            weight: op.get_weight(),
            sticky: op.get_sticky(),
            broadcast_to: placement.broadcast_to,
            home: placement.home,
            submitted_ns: time.ns,
            deadline: time.deadline,
            limited: op.get_concurrency_limit().is_some(),
            task_type,
            from_worker: false,
            fifo: op.is_fifo(),
            stop: AtomicBool::new(false),
        }
    }

    /// Whether a kill, cancel or shutdown asked the running task to stop retrying.
    pub(crate) fn stop_requested(&self) -> bool {
        // ORDERING: Relaxed: a request, checked between attempts.
        self.stop.load(Ordering::Relaxed)
    }

    pub(crate) fn request_stop(&self) {
        // ORDERING: Relaxed, see `stop_requested`.
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A task's allocation: its slot (closure, output, waiter) and what the runtime knows of it.
pub(crate) struct Task<F, T> {
    slot: TaskSlot<F, T>,
    meta: TaskMeta,
}

impl<F: FnOnce() -> T, T> Task<F, T> {
    pub(crate) fn new(meta: TaskMeta, func: F) -> Self {
        Self {
            slot: TaskSlot::new(func),
            meta,
        }
    }

    pub(crate) fn resolved(meta: TaskMeta, error: TaskError, lifecycle: NeverRan) -> Self {
        Self {
            slot: TaskSlot::resolved(error, lifecycle),
            meta,
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
    fn abandon(&self, error: TaskError, lifecycle: NeverRan) -> bool;
    fn is_ready(&self) -> bool;
    fn state(&self) -> TokenState;
    fn register_waiter(&self) -> Registration;
    fn unregister_waiter(&self);
    /// Blocks until the outcome is ready.
    fn wait(&self);
    /// Whether the handle is gone (a hint: it may go any time).
    fn is_detached(&self) -> bool;
}

/// The handle's view of a task: the [`Job`] view plus the outcome.
pub(crate) trait Outcome<T>: Job {
    fn take_output(&self) -> Option<Result<T, TaskError>>;
    /// Polls the outcome as a future; see [`TaskSlot::poll_output`].
    fn poll_output(&self, cx: &mut Context<'_>) -> Poll<Result<T, TaskError>>;
    /// Withdraws the waker of a future dropped before its outcome arrived.
    fn unregister_waker(&self);
    /// The handle is gone: the outcome is dropped as soon as it exists (`TaskSlot::detach`).
    fn detach(&self);
    fn as_job(&self) -> &dyn Job;
}

/// A type-erased, shared task, as the token table and workers hold it.
pub(crate) type JobRef = StdArc<dyn Job>;

/// A type-erased, shared task, as its handle holds it.
pub(crate) type OutcomeRef<T> = StdArc<dyn Outcome<T>>;

/// Wraps `task` for the runtime: its handle's view and its workers' view, with the borrow
/// `'a` erased from both.
///
/// # Safety
///
/// Nothing the task borrows for `'a` may be used or dropped after `'a` ends. Either `'a` is
/// `'static`; or the closure is a [`GroupTask`](group::GroupTask) of a [`TaskGroup`] whose owner does not let
/// `'a` end before the group is empty (`scope`, `broadcast`): by then the closure has run or
/// was dropped, and its output (a [`GroupOutput`]) was taken or dropped, or it panicked (a
/// payload is `'static`), so what remains of the allocation (an empty closure cell, an error,
/// a waiter, the metadata) borrows nothing; or the task holds no closure and no value of `T`
/// (a refusal's resolved task).
pub(crate) unsafe fn erase<'a, F, T>(task: Task<F, T>) -> (OutcomeRef<T>, JobRef)
where
    F: FnOnce() -> T + Send + 'a,
    T: Send + 'a,
{
    // SAFETY: forwarded from the caller.
    unsafe { views(StdArc::new(task)) }
}

/// The task of `meta` and `func`, built in the allocation of `previous` if `previous` is a
/// task of the same type that nobody else references (no allocation, no free); else
/// everything back.
///
/// # Safety
///
/// `task_type` is `TypeId::of::<Task<F, T>>()` (so `F` and `T` are `'static`), and `meta`'s
/// `task_type` is `Some(task_type)`.
// The `Err` hands the caller's values back by move; boxing them would allocate on the very
// path that exists to avoid allocating.
#[allow(clippy::result_large_err)]
pub(crate) unsafe fn recycle<F, T>(
    mut previous: JobRef,
    task_type: TypeId,
    meta: TaskMeta,
    func: F,
) -> Result<(OutcomeRef<T>, JobRef), (JobRef, TaskMeta, F)>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    if previous.meta().task_type != Some(task_type) {
        return Err((previous, meta, func));
    }
    let Some(old) = StdArc::get_mut(&mut previous) else {
        return Err((previous, meta, func)); // someone still holds it
    };
    let place = old as *mut dyn Job as *mut Task<F, T>;
    // SAFETY: `previous` is a `Task<F, T>`: its metadata says so (set only by the code that
    // built it as one, see `TaskMeta::task_type`), and so do the caller's `task_type`. We are
    // its only owner (`get_mut`), so nothing reads it while it is dropped and rebuilt. A
    // panic in the old value's drop (an output nobody took, a waker) is contained; the drop
    // glue has then dropped the other fields, and the place is overwritten without a drop.
    // (Not caught under loom, which reports what it finds by panicking; see `contain.rs`.)
    // SAFETY: as above.
    let dropped = unsafe { crate::contain::drop_in_place_caught(place) };
    // SAFETY: as above: the place holds no live value any more.
    unsafe { ptr::write(place, Task::new(meta, func)) };
    if let Err(payload) = dropped {
        crate::contain::forget_payload(payload);
    }
    // SAFETY: the allocation was made as an `Arc<Task<F, T>>` (see above); turning the fat
    // pointer back into a thin one of its concrete type is `Arc::downcast`'s step.
    let task = unsafe { StdArc::from_raw(StdArc::into_raw(previous) as *const Task<F, T>) };
    // SAFETY: `F` and `T` are `'static` (see the contract): nothing to outlive.
    Ok(unsafe { views(task) })
}

/// The handle's and the workers' views of `task`, with the borrow `'a` erased.
///
/// # Safety
///
/// As [`erase`].
unsafe fn views<'a, F, T>(task: StdArc<Task<F, T>>) -> (OutcomeRef<T>, JobRef)
where
    F: FnOnce() -> T + Send + 'a,
    T: Send + 'a,
{
    let task: StdArc<dyn Outcome<T> + 'a> = task;
    let job: StdArc<dyn Job + 'a> = task.clone();
    // SAFETY: the two types differ only in the lifetime bound of the trait object; the caller
    // guarantees that no borrow for `'a` is used after `'a` ends (see above).
    unsafe {
        (
            std::mem::transmute::<StdArc<dyn Outcome<T> + 'a>, OutcomeRef<T>>(task),
            std::mem::transmute::<StdArc<dyn Job + 'a>, JobRef>(job),
        )
    }
}

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

    fn abandon(&self, error: TaskError, lifecycle: NeverRan) -> bool {
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

    fn is_detached(&self) -> bool {
        self.slot.is_detached()
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

    fn detach(&self) {
        self.slot.detach()
    }

    fn as_job(&self) -> &dyn Job {
        self
    }
}
