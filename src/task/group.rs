//! [`TaskGroup`]: the tasks of one scope or broadcast, counted until nothing of them can touch
//! a borrow.

use std::mem::{ManuallyDrop, MaybeUninit};

use crate::sync::{thread, Arc, AtomicUsize, Ordering};

/// A group of tasks that may borrow from one stack frame (a scope's, a broadcast's): it counts
/// the group's members still alive and unparks its owner when the count reaches zero.
///
/// A task's member lives in its closure ([`GroupTask`]) and, once the closure returned, in its
/// output ([`GroupOutput`]); it is dropped last of either. So it is gone once the closure has
/// run and its output has been taken or dropped, or once the closure was dropped unrun, or
/// once it panicked (a panic payload is `'static`): whatever of the task may borrow is gone
/// with it. Once the count is zero, nothing of the group can touch a borrow. (A cancelled
/// task lets its group end as soon as its closure is dropped, without waiting for a worker to
/// reach its token.)
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
            func: MaybeUninit::new(func),
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

/// A closure of a [`TaskGroup`], with its member.
///
/// The closure is kept out of sight of the borrow model's retags: every frame that holds a
/// `GroupTask` by value (the slot's `catch_unwind`, the runtime's wrapper, [`call`](Self::call),
/// `contain::drop_contained`) would otherwise keep the closure's borrows protected until it
/// returns, and the member may end the group inside such a frame (when the closure panics or
/// is dropped unrun), letting the group's owner free what the closure borrowed while the
/// frame still lives. A `MaybeUninit` field is not retagged: among the frames that run or drop
/// the task, the borrows are protected only in the closure's own call, which has returned or
/// unwound by the time the member goes. (The submit side, `Scope::submit` and `broadcast`,
/// also holds the closure by value, before it is a task; the group cannot end there: its
/// owner is the submitter, or the submitter is a task whose own member is alive.)
pub(crate) struct GroupTask<F> {
    /// Initialised until `call` moves it out (and then forgets `self`); otherwise dropped in
    /// place by `Drop`.
    func: MaybeUninit<F>,
    member: GroupMember,
}

impl<F> GroupTask<F> {
    /// Runs the closure; the member moves into the output (or, if the closure panics, is
    /// dropped as the unwind leaves this frame, after the closure's own frame is gone).
    pub(crate) fn call<T>(self) -> GroupOutput<T>
    where
        F: FnOnce() -> T,
    {
        let this = ManuallyDrop::new(self);
        // SAFETY: `func` is initialised until read here or dropped in `Drop`; `this` is never
        // dropped, so both fields are read out exactly once.
        let (func, member) = unsafe {
            (
                std::ptr::read(&this.func).assume_init(),
                std::ptr::read(&this.member),
            )
        };
        GroupOutput {
            value: func(),
            member,
        }
    }
}

impl<F> Drop for GroupTask<F> {
    /// A closure dropped unrun: dropped in place, then the member (a field, dropped after
    /// this even if the closure's `Drop` panics) lets the group end.
    fn drop(&mut self) {
        // SAFETY: `func` is initialised (`call` does not drop `self`) and dropped once, here.
        unsafe { self.func.assume_init_drop() }
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
    ///
    /// The member is dropped while this frame holds the value, whose borrows stay protected
    /// until it returns: sound only because this member is never the one that ends the group.
    /// Whoever joins a group's handle is its owner (inside `scope`'s closure, or `broadcast`
    /// itself) or runs inside a live member (a scoped task, or a thread scoped within one of
    /// those), since a `ScopedHandle`'s `'scope` cannot be named outside the scope. An API that
    /// lets a handle be joined from elsewhere (an awaitable scoped handle, say) must revisit
    /// this.
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
