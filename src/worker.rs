//! The worker: a thread (pinned to a core when asked) that runs tasks from its mailbox, steals
//! from its neighbours when it has none, and parks when there is nothing to do.
//!
//! Idle strategy: spin a little, then yield, then park (see `src/sleep.md` for the protocol
//! that makes parking safe against a concurrent submission).

use std::cell::Cell;
use std::fmt;

use crate::error::TaskError;
use crate::mailbox::LanePicker;
use crate::operation::Weight;
use crate::ring::Token;
use crate::shared::Shared;
use crate::slot::Registration;
use crate::sync::{thread, thread_local, Arc, Backoff, Ordering};
use crate::task::Job;
use crate::token::TokenState;

/// A worker's own state, living on its thread's stack for the thread's whole life.
pub(crate) struct Worker {
    shared: Arc<Shared>,
    index: usize,
    picker: Cell<LanePicker>,
}

type Current = Cell<Option<(usize, *const Worker)>>;

#[cfg(not(loom))]
thread_local! {
    /// The worker running on this thread, if any: (runtime id, worker).
    static CURRENT: Current = const { Cell::new(None) };
}

// loom's `thread_local!` does not accept the `const { .. }` form.
#[cfg(loom)]
thread_local! {
    static CURRENT: Current = Cell::new(None);
}

/// The index of the calling thread's worker, in whichever runtime.
pub(crate) fn current_worker() -> Option<usize> {
    // SAFETY: `CURRENT` only holds a pointer while the `Worker` it points to is alive on this
    // very thread (set and cleared in `Worker::run`).
    CURRENT.with(|c| c.get().map(|(_, w)| unsafe { (*w).index }))
}

/// The index of the calling thread's worker, if it is a worker of runtime `runtime`.
#[inline]
pub(crate) fn current_index(runtime: usize) -> Option<usize> {
    with_current(runtime, |w| w.index)
}

#[inline]
pub(crate) fn is_worker_of(runtime: usize) -> bool {
    current_index(runtime).is_some()
}

/// Calls `f` with the calling thread's worker if it is a worker of runtime `runtime`.
#[inline]
pub(crate) fn with_current<R>(runtime: usize, f: impl FnOnce(&Worker) -> R) -> Option<R> {
    let current = CURRENT.with(|c| c.get());
    match current {
        // SAFETY: see `current_worker`.
        Some((rt, w)) if rt == runtime => Some(f(unsafe { &*w })),
        _ => None,
    }
}

impl Worker {
    pub(crate) fn new(shared: Arc<Shared>, index: usize) -> Self {
        Self {
            shared,
            index,
            picker: Cell::new(LanePicker::default()),
        }
    }

    /// The thread's main loop; returns when the runtime stops.
    pub(crate) fn run(self) {
        let me = &self;
        CURRENT.with(|c| c.set(Some((me.shared.id(), me as *const Worker))));
        me.shared.workers[me.index]
            .sleeper
            .register_current_thread();
        loop {
            if let Some(token) = me.find_work() {
                me.execute(token);
                continue;
            }
            if me.shared.should_stop() {
                break;
            }
            me.idle(|| me.shared.should_stop());
        }
        CURRENT.with(|c| c.set(None));
    }

    /// The next token to run: own mailbox first, then steal from neighbours i+1, i+2, …, in
    /// lane priority order, only lanes this worker may run.
    #[inline]
    fn find_work(&self) -> Option<Token> {
        let shared = &*self.shared;
        let mut picker = self.picker.get();
        let own = shared.workers[self.index].mailbox.pop(&mut picker);
        self.picker.set(picker);
        if let Some((_, token)) = own {
            return Some(token);
        }
        let n = shared.workers.len();
        for k in 1..n {
            let victim = &shared.workers[(self.index + k) % n].mailbox;
            for weight in Weight::ALL {
                if shared.routes.may_run(self.index, weight) {
                    if let Some(token) = victim.steal(weight) {
                        return Some(token);
                    }
                }
            }
        }
        None
    }

    /// Whether any work this worker may run is waiting (own mailbox or stealable).
    fn has_work(&self) -> bool {
        let shared = &*self.shared;
        if !shared.workers[self.index].mailbox.is_empty() {
            return true;
        }
        let n = shared.workers.len();
        (1..n).any(|k| {
            let victim = &shared.workers[(self.index + k) % n].mailbox;
            Weight::ALL
                .iter()
                .any(|&w| shared.routes.may_run(self.index, w) && victim.len(w) != 0)
        })
    }

    /// Runs (or, after `shutdown_now`, kills) the task of `token`, then gives the token back.
    #[inline]
    fn execute(&self, token: Token) {
        let shared = &*self.shared;
        let job = shared.take_job(&token);
        shared.workers[self.index].sleeper.set_busy(true);
        if shared.kill_queued() {
            job.abandon(TaskError::Killed, TokenState::Killed);
        } else {
            job.run();
        }
        drop(job);
        shared.ring.give_back(token);
    }

    /// Waits for work or for `done()`: spins, yields, then parks. Returns when either may be
    /// true (spurious returns are allowed; callers loop).
    fn idle(&self, done: impl Fn() -> bool) {
        let sleeper = &self.shared.workers[self.index].sleeper;
        sleeper.set_busy(false);
        let mut backoff = Backoff::new();
        while backoff.snooze() {
            if self.has_work() || done() {
                return;
            }
        }
        // ORDERING: Relaxed: ordered before our last look for work by the SeqCst fence in
        // `prepare_sleep`, paired with the fence in `Sleeper::wake` of a dispatcher.
        self.shared.sleepers.fetch_add(1, Ordering::Relaxed);
        sleeper.prepare_sleep();
        if self.has_work() || done() {
            sleeper.cancel_sleep();
        } else {
            sleeper.sleep();
        }
        // ORDERING: Relaxed: a hint for dispatchers.
        self.shared.sleepers.fetch_sub(1, Ordering::Relaxed);
    }

    /// Joins `job` from this worker: runs it inline if it has not started, else runs other
    /// tasks until it is finished.
    pub(crate) fn join(&self, job: &dyn Job) {
        if job.run() || job.is_ready() {
            return;
        }
        let registered = job.register_waiter();
        if registered == Registration::Ready {
            return;
        }
        self.help_until(|| job.is_ready(), registered == Registration::Registered);
    }

    /// Runs queued tasks until `done()`. `wakes_us`: whoever makes `done()` true unparks this
    /// thread, so idling may park; otherwise it only spins and yields.
    pub(crate) fn help_until(&self, done: impl Fn() -> bool, wakes_us: bool) {
        while !done() {
            if let Some(token) = self.find_work() {
                self.execute(token);
            } else if wakes_us {
                self.idle(&done);
            } else {
                thread::yield_now();
            }
        }
        // Back to the task that joined: it is running, so count as busy.
        self.shared.workers[self.index].sleeper.set_busy(true);
    }
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("index", &self.index)
            .finish()
    }
}

/// Counts a failed attempt that is about to be retried, for the running task's operation.
pub(crate) fn note_retried_attempt() {}
