//! [`Runtime::broadcast`]: one run of a closure on every worker.

use crate::error::{TaskError, TrySubmitError};
use crate::operation::{Operation, Weight};
use crate::runtime::Runtime;

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

/// The operation broadcast runs are counted under.
pub const BROADCAST: Operation = Operation::new("broadcast").weight(Weight::Light);

impl Runtime {
    /// Runs `f` once on every worker (per-core set-up, warming caches, reading per-core
    /// state) and returns one result per worker, in worker order. The closure may borrow: it
    /// has finished everywhere when `broadcast` returns.
    ///
    /// Each run waits in its worker's own queue (never stolen), after what that worker has
    /// queued before it; a pause does not hold it. After shutdown every result is
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
        let shared = self.shared();
        let workers = shared.workers.len();
        let f = &f;
        let handles: Vec<_> = (0..workers)
            .map(|index| {
                let ctx = BroadcastContext { index, workers };
                // SAFETY: every handle is joined below before `f` (borrowed) goes out of
                // scope, and joining waits until the task ran or was dropped unrun; a refused
                // submission drops its closure before returning.
                let admitted = unsafe {
                    shared.admit_unchecked(&BROADCAST, move || f(ctx), true, Some(index))
                };
                admitted.map_err(|e| match e {
                    TrySubmitError::Blocked(_) => TaskError::Blocked,
                    _ => TaskError::ShutDown,
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.and_then(|h| h.join()))
            .collect()
    }
}
