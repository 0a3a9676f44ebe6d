//! A submitted task: its [`TaskSlot`] plus what the runtime knows about it, behind the two
//! type-erased views the runtime needs: [`Job`] for workers (no types) and [`Outcome<T>`] for
//! handles (the output type only).

use std::fmt;
use std::task::{Context, Poll};

use crate::error::TaskError;
use crate::slot::{Registration, TaskSlot};
use crate::sync::{thread, Arc, AtomicBool, AtomicUsize, Ordering};
use crate::token::TokenState;

/// A task's identity: unique among the tasks of one runtime at any time, and across time
/// unless a token is reused 2³² times; ids of two runtimes never compare equal.
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
pub struct TaskId {
    /// The runtime's serial number in this process (see [`next_runtime_serial`]).
    runtime: u32,
    /// Generation in the high half, token index in the low half.
    raw: u64,
}

/// A process-wide serial number for a new runtime, so that task ids of two runtimes differ.
///
/// A std atomic, not the loom shim's: a process-wide static outlives any loom model, and this
/// counter takes part in no protocol (only its uniqueness matters).
pub(crate) fn next_runtime_serial() -> u32 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    // ORDERING: Relaxed: only uniqueness matters.
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl TaskId {
    /// The id of the `generation`-th task admitted with token `index` by runtime `runtime`.
    pub(crate) fn new(runtime: u32, generation: u32, index: u32) -> Self {
        Self {
            runtime,
            raw: (generation as u64) << 32 | index as u64,
        }
    }

    pub(crate) fn from_u64(runtime: u32, raw: u64) -> Self {
        Self { runtime, raw }
    }

    pub(crate) fn runtime(self) -> u32 {
        self.runtime
    }

    pub(crate) fn generation(self) -> u32 {
        (self.raw >> 32) as u32
    }

    pub(crate) fn index(self) -> u32 {
        self.raw as u32
    }

    /// The id as one number, unique within its runtime.
    pub fn as_u64(self) -> u64 {
        self.raw
    }
}

impl fmt::Debug for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TaskId({self})")
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let index = self.raw as u32;
        if index == u32::MAX {
            write!(f, "inline-{}", self.raw >> 32)
        } else {
            write!(f, "{}.{}", index, self.raw >> 32)
        }
    }
}

/// A group of tasks that may borrow from one stack frame (a scope's, a broadcast's): it counts
/// the group's members still alive and unparks its owner when the count reaches zero.
///
/// A task's member lives in its closure ([`GroupTask`]) and, once the closure returned, in its
/// output ([`GroupOutput`]); it is dropped last of either. So it is gone once the closure has
/// run and its output has been taken or dropped, or once the closure was dropped unrun, or
/// once it panicked (a panic payload is `'static`): whatever of the task may borrow is gone
/// with it. Once the count is zero, nothing of the group can touch a borrow.
#[derive(Debug)]
pub(crate) struct TaskGroup {
    live: AtomicUsize,
    owner: thread::Thread,
}

impl TaskGroup {
    /// A group owned (waited for) by the calling thread.
    pub(crate) fn new() -> Arc<Self> {
        Arc::new(Self {
            live: AtomicUsize::new(0),
            owner: thread::current(),
        })
    }

    /// `func` as a task of `group`. (An associated function: loom's `Arc` cannot be a method
    /// receiver.)
    pub(crate) fn task<F>(group: &Arc<Self>, func: F) -> GroupTask<F> {
        // ORDERING: Relaxed: the increment happens-before `is_empty` by program order on the
        // owner's thread, or by the submission of the task that adds a nested member.
        group.live.fetch_add(1, Ordering::Relaxed);
        GroupTask {
            func,
            member: GroupMember(group.clone()),
        }
    }

    /// Whether every member of the group is gone.
    pub(crate) fn is_empty(&self) -> bool {
        // ORDERING: Acquire pairs with the AcqRel decrement in `GroupMember::drop`: everything
        // the tasks did, and the drops of their closures and outputs, happen before.
        self.live.load(Ordering::Acquire) == 0
    }
}

/// A closure of a [`TaskGroup`]: fields drop in declaration order, so a closure dropped unrun
/// is gone before its member lets the group end.
pub(crate) struct GroupTask<F> {
    func: F,
    member: GroupMember,
}

impl<F> GroupTask<F> {
    /// Runs the closure; the member moves into the output (or, if the closure panics, is
    /// dropped after the closure's captures, as the unwind leaves this frame).
    pub(crate) fn call<T>(self) -> GroupOutput<T>
    where
        F: FnOnce() -> T,
    {
        let GroupTask { func, member } = self;
        GroupOutput {
            value: func(),
            member,
        }
    }
}

/// A [`TaskGroup`] task's output: the value, then its member, which lets the group end once
/// the value is taken or dropped.
pub(crate) struct GroupOutput<T> {
    value: T,
    member: GroupMember,
}

impl<T> GroupOutput<T> {
    /// The value; the member is dropped (the value now belongs to the caller, inside the
    /// group's frame).
    pub(crate) fn into_value(self) -> T {
        let GroupOutput { value, member } = self;
        drop(member);
        value
    }
}

/// One task's place in a [`TaskGroup`].
#[derive(Debug)]
struct GroupMember(Arc<TaskGroup>);

impl Drop for GroupMember {
    fn drop(&mut self) {
        // ORDERING: AcqRel: Release publishes this task's effects (and the drops before this
        // one) to the owner's Acquire in `is_empty`; Acquire orders it before the unpark.
        if self.0.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.owner.unpark();
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
    /// Its operation has a concurrency limit: it runs only with a permit.
    pub(crate) limited: bool,
    /// Asked to stop: a kill or cancel that came while it was running, so a retry loop stops
    /// between attempts.
    pub(crate) stop: AtomicBool,
}

impl TaskMeta {
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

    pub(crate) fn resolved(meta: TaskMeta, error: TaskError, lifecycle: TokenState) -> Self {
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

/// Wraps `task` for the runtime: its handle's view and its workers' view, with the borrow
/// `'a` erased from both.
///
/// # Safety
///
/// Nothing the task borrows for `'a` may be used or dropped after `'a` ends. Either `'a` is
/// `'static`; or the closure is a [`GroupTask`] of a [`TaskGroup`] whose owner does not let
/// `'a` end before the group is empty (`scope`, `broadcast`): by then the closure has run or
/// was dropped, and its output (a [`GroupOutput`]) was taken or dropped, or it panicked (a
/// payload is `'static`), so what remains of the allocation (an empty closure cell, an error,
/// a waiter, the metadata) borrows nothing; or the task holds no closure and no value of `T`
/// (a refusal's resolved task).
pub(crate) unsafe fn erase<'a, F, T>(task: Task<F, T>) -> (std::sync::Arc<dyn Outcome<T>>, JobRef)
where
    F: FnOnce() -> T + Send + 'a,
    T: Send + 'a,
{
    let task: std::sync::Arc<dyn Outcome<T> + 'a> = std::sync::Arc::new(task);
    let job: std::sync::Arc<dyn Job + 'a> = task.clone();
    // SAFETY: the two types differ only in the lifetime bound of the trait object; the caller
    // guarantees that no borrow for `'a` is used after `'a` ends (see above).
    unsafe {
        (
            std::mem::transmute::<
                std::sync::Arc<dyn Outcome<T> + 'a>,
                std::sync::Arc<dyn Outcome<T>>,
            >(task),
            std::mem::transmute::<std::sync::Arc<dyn Job + 'a>, JobRef>(job),
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
