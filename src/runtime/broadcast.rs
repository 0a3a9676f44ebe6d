//! [`Runtime::broadcast`]: one run of a closure on every worker.

use super::scope::wait_for_group;
use super::{Runtime, TaskHandle};
use crate::error::TaskError;
use crate::operation::{Operation, Weight};
use crate::task::{GroupOutput, TaskGroup};

/// What a broadcast closure learns about where it runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BroadcastContext {
    index: usize,
    workers: usize,
}

impl BroadcastContext {
    /// The index of the worker this run is on.
    pub fn index(&self) -> usize {
        self.index
    }

    /// How many workers the runtime has (= how many runs).
    pub fn workers(&self) -> usize {
        self.workers
    }
}

/// The operation broadcast runs are counted under (in the statistics, as `"broadcast"`).
const BROADCAST: Operation = Operation::new("broadcast").weight(Weight::Light);

impl Runtime {
    /// Runs `f` once on every worker (per-core set-up, warming caches, reading per-core
    /// state) and returns one result per worker, in worker order. The closure may borrow: it
    /// has finished everywhere when `broadcast` returns.
    ///
    /// Each run waits in its worker's own queue (never stolen) and starts once that worker
    /// has nothing of its own queued: after the tasks queued on it before the broadcast (and
    /// any queued there meanwhile, as with rayon's broadcasts); a pause does not hold it.
    /// Called from a task while every token is out, the runs go to their workers without a
    /// token, one after the other. After shutdown every result is
    /// `Err(TaskError::ShutDown)`; a panicking run gives `Err(TaskError::Panicked(..))` for
    /// its worker and the others still run.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokengate::Runtime;
    ///
    /// let rt = Runtime::builder().workers(2).pin(false).build()?;
    /// let base = 10;
    /// let got = rt.broadcast(|ctx| (ctx.index(), tokengate::current_worker(), base + ctx.index()));
    /// assert_eq!(got, vec![Ok((0, Some(0), 10)), Ok((1, Some(1), 11))]);
    /// # Ok::<(), tokengate::BuildError>(())
    /// ```
    pub fn broadcast<F, R>(&self, f: F) -> Vec<Result<R, TaskError>>
    where
        F: Fn(BroadcastContext) -> R + Sync,
        R: Send,
    {
        let engine = self.engine();
        let workers = engine.workers.len();
        let f = &f;
        let group = TaskGroup::new();
        // Waits for the group when this function returns, and also if it unwinds after a
        // run was submitted: the runs borrow `f`.
        let _wait = WaitForGroup {
            runtime: self,
            group: &group,
        };
        let handles: Vec<_> = (0..workers)
            .map(|index| {
                let ctx = BroadcastContext { index, workers };
                let task = TaskGroup::task(&group, move || f(ctx));
                // SAFETY: the closure is a task of `group`, which is empty before this
                // function returns (so before `f`, borrowed, goes out of scope).
                let outcome = unsafe {
                    engine.submit_unchecked(&BROADCAST, move || task.call(), Some(index))
                };
                TaskHandle::new(outcome)
            })
            .collect();
        // `_wait` drops after the results are collected: each join has taken its output.
        handles
            .into_iter()
            .map(|h| h.join().map(GroupOutput::into_value))
            .collect()
    }
}

/// Waits, when dropped, until every run of a broadcast's group is gone.
struct WaitForGroup<'a> {
    runtime: &'a Runtime,
    group: &'a TaskGroup,
}

impl Drop for WaitForGroup<'_> {
    fn drop(&mut self) {
        wait_for_group(self.runtime.engine(), self.group);
    }
}
