//! [`TaskGroup`]: the tasks of one scope or broadcast, counted until their allocations are
//! gone.

use crate::sync::{thread, Arc, AtomicUsize, Ordering};

/// A group of tasks that may borrow from one stack frame (a scope's, a broadcast's): it counts
/// the group's task allocations still alive and unparks its owner when the count reaches
/// zero. A task's allocation holds its closure until it runs and its output until it is
/// taken or dropped, so once the count is zero nothing of the group can touch a borrow.
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

    /// Counts one more task of `group`; the member lives in the task's allocation. (An
    /// associated function: loom's `Arc` cannot be a method receiver.)
    pub(crate) fn member(group: &Arc<Self>) -> GroupMember {
        // ORDERING: Relaxed: the increment happens-before `is_empty` by program order on the
        // owner's thread, or by the submission of the task that adds a nested member.
        group.live.fetch_add(1, Ordering::Relaxed);
        GroupMember(group.clone())
    }

    /// Whether every task of the group has been dropped.
    pub(crate) fn is_empty(&self) -> bool {
        // ORDERING: Acquire pairs with the AcqRel decrement in `GroupMember::drop`: everything
        // the tasks did, and the drops of their closures and outputs, happen before.
        self.live.load(Ordering::Acquire) == 0
    }
}

/// One task's place in a [`TaskGroup`]; dropped last of the task's allocation.
#[derive(Debug)]
pub(crate) struct GroupMember(Arc<TaskGroup>);

impl Drop for GroupMember {
    fn drop(&mut self) {
        // ORDERING: AcqRel: Release publishes this task's effects (and the drops before this
        // one) to the owner's Acquire in `is_empty`; Acquire orders it before the unpark.
        if self.0.live.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.owner.unpark();
        }
    }
}
