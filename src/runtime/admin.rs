//! Admin controls of a [`Runtime`], after the Python original's coordinator: pause and resume
//! admission (all of it or one operation's), drain or kill an operation's waiting tasks, kill
//! one task, lift an auto-block.
//!
//! The mechanics (held tokens, the drain of one list) are the engine's `hold.rs`; this file is
//! the public surface and the waits that only a caller outside the workers may do.

use std::time::Duration;

use super::Runtime;
use crate::engine::current;
use crate::engine::op_table::OpEntry;
use crate::engine::reputation::{self, Tally};
use crate::sync::Ordering;
use crate::task::TaskId;

impl Runtime {
    /// Pauses admission: tasks submitted from now on are admitted (they take a token, and
    /// `submit` returns their handle) but held back, not run, until [`resume`](Self::resume).
    /// Running and already queued tasks go on. Nothing is lost: a shutdown releases what is
    /// held (graceful: it runs; `shutdown_now`: it is killed). Pauses hold at most
    /// [`Builder::max_held`](crate::Builder::max_held) tasks (default: half the capacity);
    /// past that, submissions wait before admission (`try_submit` returns `Full`) until a
    /// resume from another thread. With a tiny capacity that bound is small (0 at capacity 1):
    /// a thread that pauses, then submits, then resumes, blocks in its submit; raise
    /// `max_held` (up to the capacity) or use `try_submit` there.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokengate::{Runtime, TokenState};
    ///
    /// let rt = Runtime::builder().workers(1).pin(false).build()?;
    /// rt.pause();
    /// let h = rt.spawn(|| 7);
    /// std::thread::sleep(std::time::Duration::from_millis(20));
    /// assert_eq!(h.state(), TokenState::Admitted); // held, not run
    /// rt.resume();
    /// assert_eq!(h.join(), Ok(7));
    /// # Ok::<(), tokengate::BuildError>(())
    /// ```
    pub fn pause(&self) {
        self.engine().set_paused(true);
    }

    /// Resumes admission: every task held by [`pause`](Self::pause) is dispatched (unless
    /// its operation is paused on its own).
    pub fn resume(&self) {
        self.engine().set_paused(false);
    }

    /// Whether admission is paused.
    pub fn is_paused(&self) -> bool {
        self.engine().is_paused()
    }

    /// Pauses admission of the operation `name` only: its new tasks are held until
    /// [`resume_operation`](Self::resume_operation). Other operations run on.
    ///
    /// Held tasks keep their tokens (they are admitted, and their handles count against the
    /// capacity), but pauses hold at most [`Builder::max_held`](crate::Builder::max_held)
    /// tokens (default: half the capacity): past that, a submission of the paused operation
    /// waits *before* it takes a token (`submit` blocks, helping if it runs on a worker;
    /// `try_submit` returns `Full`) until the pause is lifted, held tasks are killed
    /// ([`kill_operation`](Self::kill_operation)) or the runtime shuts down. So a paused
    /// operation that keeps receiving tasks never stops the others, nor broadcasts: they
    /// keep at least `capacity - max_held` tokens.
    ///
    /// A runtime tracks 1,024 operation names separately; names seen after that share one
    /// entry, `(other operations)`, and so share its pause, its kills and its statistics:
    /// pausing one of them pauses all of them.
    pub fn pause_operation(&self, name: &str) {
        let engine = self.engine();
        engine.set_operation_paused(engine.ops.entry_by_name(name), true);
    }

    /// Resumes admission of the operation `name`, dispatching its held tasks.
    pub fn resume_operation(&self, name: &str) {
        let engine = self.engine();
        if let Some(entry) = engine.ops.lookup(name) {
            engine.set_operation_paused(entry, false);
        }
    }

    /// Kills every task of the operation `name` that waits (held by a pause, queued in a
    /// mailbox, or waiting for its concurrency limit): each resolves
    /// [`TaskError::Killed`](crate::TaskError::Killed) without running. Running tasks finish.
    /// Tasks submitted after the call are not affected. Returns at once: held tasks are
    /// resolved before it returns, queued ones as soon as a worker reaches them (without
    /// running them, so that is quick).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokengate::{Operation, Runtime, TaskError};
    ///
    /// const EXPORT: Operation = Operation::new("export");
    /// let rt = Runtime::builder().workers(1).pin(false).build()?;
    /// rt.pause();
    /// let hs: Vec<_> = (0..5).map(|i| rt.submit(&EXPORT, move || i)).collect();
    /// rt.kill_operation("export");
    /// rt.resume();
    /// assert!(hs.into_iter().all(|h| h.join() == Err(TaskError::Killed)));
    /// # Ok::<(), tokengate::BuildError>(())
    /// ```
    pub fn kill_operation(&self, name: &str) {
        let engine = self.engine();
        let Some(entry) = engine.ops.lookup(name) else {
            return;
        };
        // ORDERING: Relaxed: see `OpEntry::epoch`.
        entry.epoch.fetch_add(1, Ordering::Relaxed);
        let index = entry.index;
        engine.kill_held(|job| job.meta().op == index);
    }

    /// Drains the operation `name`: holds its new submissions for the while, kills its
    /// waiting tasks (as [`kill_operation`](Self::kill_operation)), waits until its running
    /// tasks have finished, then lets its admission go on (unless it was paused before).
    ///
    /// Called from a task on one of this runtime's workers it does not wait (a worker cannot
    /// wait for the tasks it may have to reach itself).
    pub fn drain_operation(&self, name: &str) {
        let engine = self.engine();
        let entry = engine.ops.entry_by_name(name);
        let was_paused = entry.is_paused();
        engine.set_operation_paused(entry, true);
        self.kill_operation(name);
        if !current::is_worker_of(engine.id()) {
            wait_until_idle(entry);
        }
        if !was_paused {
            engine.set_operation_paused(entry, false);
        }
    }

    /// Kills the task `id` if it has not started: it resolves
    /// [`TaskError::Killed`](crate::TaskError::Killed) without running (at once if it is
    /// held by a pause, else as soon as a worker reaches it). A running or finished task is
    /// not affected (a running task submitted with `submit_retrying` is not retried again);
    /// nor is an id of another runtime. (A task's own handle has
    /// [`cancel`](crate::TaskHandle::cancel), which also says whether it worked.)
    pub fn kill(&self, id: TaskId) {
        self.engine().kill_task(id);
    }

    /// Lifts the block of the operation `name` (see
    /// [`Builder::auto_block`](crate::Builder::auto_block)); its failure rate counts afresh.
    pub fn unblock_operation(&self, name: &str) {
        if let Some(entry) = self.engine().ops.lookup(name) {
            reputation::unblock(entry);
        }
    }
}

/// Waits until no task of `entry` is admitted and unresolved, except those held by its pause.
/// On a worker (of another runtime), it keeps serving that worker's runtime meanwhile: a task
/// of `entry` may be waiting for a task queued there.
fn wait_until_idle(entry: &OpEntry) {
    let idle = || Tally::of(entry).in_flight() <= reputation::held(entry);
    if current::with_any_current(|w| w.help_until(idle, false)).is_some() {
        return;
    }
    let mut nap = Duration::from_micros(50);
    while !idle() {
        std::thread::sleep(nap);
        nap = (nap * 2).min(Duration::from_millis(5));
    }
}
