//! Dispatch: which worker gets an admitted token, and waking it. A task with a home (sticky,
//! broadcast) goes to its home worker's own queue. A task a worker submits goes to that
//! worker's local deque (Medium and Heavy tasks that every worker may run: a join pops it
//! back, idle workers steal it) or its mailbox (Light tasks keep their lane's priority). Any
//! other goes to the least loaded worker allowed for its weight, whose sleeper is woken (or,
//! if it is awake, a sleeping worker that may steal it). Tasks run without a token go through
//! [`Handoffs`] instead.
//!
//! A worker's queues are bounded (`queue_front` in `mod.rs`), none is ever refused a token:
//! the mailbox lanes and the home queues spill into their overflow (a
//! [`SpillQueue`](crate::primitives::SpillQueue)), and a full local deque moves its older
//! half to the worker's own mailbox ([`Engine::push_local`]): those tasks then run oldest
//! first, before the deque's newer ones, and thieves take them from the mailbox lanes
//! instead.

use std::collections::VecDeque;
use std::fmt;

use super::current;
use super::Engine;
use crate::operation::{Operation, Weight};
use crate::primitives::{Steal, Token};
use crate::sync::{fence, AtomicUsize, Mutex, Ordering};
use crate::task::{JobRef, TaskMeta};

/// Tasks that another worker submitted without a token and that only this worker may run
/// (sticky tasks homed here, broadcast runs for it), handed over when the ring was dry.
///
/// A worker that submits into a dry ring must not wait for a token: every token may be held
/// by tasks nested on the workers' own stacks. It runs the task in place when it may; a task
/// that must run elsewhere comes here instead, and its submitter helps with other work until
/// it has run. Each entry is a blocked submitter's, so the queue holds at most one task per
/// such stack frame. Only this dry-ring path touches it, never the hot path: a lock is fine,
/// and `len` lets the worker skip the lock when it is empty.
///
/// Under loom the queue is left out of the workers' loop (it is always seen empty, with no
/// atomic access): no model submits from a worker into a dry ring, and one more load per look
/// for work multiplies every runtime model's interleavings. `tests/hostile.rs` covers the
/// path (sticky and broadcast submissions from workers into a dry ring).
#[derive(Default)]
pub(crate) struct Handoffs {
    jobs: Mutex<VecDeque<JobRef>>,
    len: AtomicUsize,
}

/// See [`Handoffs`]: not modelled under loom.
const UNMODELLED: bool = cfg!(loom);

impl Handoffs {
    pub(crate) fn push(&self, job: JobRef) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.push_back(job);
        // ORDERING: Relaxed: a hint, written under the lock; the worker is woken after this
        // (the wake's fence orders it) and takes the job under the lock.
        self.len.store(jobs.len(), Ordering::Relaxed);
    }

    /// Takes the oldest job.
    pub(crate) fn pop(&self) -> Option<JobRef> {
        if !self.has_any() {
            return None;
        }
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let job = jobs.pop_front();
        // ORDERING: Relaxed, see `push`.
        self.len.store(jobs.len(), Ordering::Relaxed);
        job
    }

    /// How many jobs wait (a hint).
    pub(crate) fn len(&self) -> usize {
        // ORDERING: Relaxed, see `push`.
        self.len.load(Ordering::Relaxed)
    }

    /// Whether a job is waiting (a hint; always `false` under loom, see [`Handoffs`]).
    #[inline]
    pub(crate) fn has_any(&self) -> bool {
        // ORDERING: Relaxed: a hint, see `push`.
        !UNMODELLED && self.len.load(Ordering::Relaxed) != 0
    }
}

impl fmt::Debug for Handoffs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handoffs")
            .field("len", &self.len())
            .finish()
    }
}

/// What routing needs to know of a task: its weight, the worker it must run on (`home`; a
/// broadcast run's worker, with `broadcast`), and whether it keeps FIFO order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Route {
    pub(crate) weight: Weight,
    pub(crate) home: Option<usize>,
    pub(crate) broadcast: bool,
    pub(crate) fifo: bool,
}

impl Route {
    /// The route of the task of record `meta`.
    #[inline]
    pub(crate) fn of(meta: &TaskMeta) -> Self {
        Self {
            weight: meta.weight,
            home: meta.home(),
            broadcast: meta.broadcast_to().is_some(),
            fifo: meta.fifo,
        }
    }
}

impl Engine {
    /// Routes an admitted token to a worker and wakes whoever should run it: its home worker
    /// for sticky and broadcast tasks; else locality, then the least-loaded allowed worker.
    #[inline]
    pub(crate) fn dispatch(&self, token: Token) {
        self.dispatch_from(current::current_index(self.id()), token);
    }

    /// [`dispatch`](Self::dispatch) from worker `me` (the calling thread's index, if it is a
    /// worker of this runtime). The common case of a worker's fork, its own local deque, is
    /// inlined into the caller; every other route is [`route`](Self::route)'s.
    #[inline]
    pub(crate) fn dispatch_from(&self, me: Option<usize>, token: Token) {
        let route = self
            .tokens
            .held(&token)
            .with_job(|job| Route::of(job.meta()));
        self.dispatch_routed(me, token, route);
    }

    /// [`dispatch_from`](Self::dispatch_from) of a task whose [`Route`] the caller knows (it
    /// just admitted it), so that its record need not be read back.
    #[inline]
    pub(crate) fn dispatch_routed(&self, me: Option<usize>, token: Token, route: Route) {
        let Route {
            weight, home, fifo, ..
        } = route;
        match me {
            // Locality: a task submitted by a worker stays with it, on its deque if any
            // worker may steal it, and it needs no lane priority, no FIFO order (the deque
            // runs newest first; the mailbox's lanes, oldest first) and no home worker.
            Some(me)
                if home.is_none()
                    && !fifo
                    && weight != Weight::Light
                    && self.routes.everyone(weight) =>
            {
                self.push_local(me, token);
                self.wake_a_thief_if_one_sleeps(weight, me);
            }
            _ => self.route(me, token, route),
        }
    }

    /// Every route of [`dispatch_from`](Self::dispatch_from) but a worker's own deque, for the
    /// task of `token`: its home worker's queue, or a mailbox (the submitting worker's if it
    /// may run the task, else the least loaded allowed worker's).
    #[inline]
    fn route(&self, me: Option<usize>, token: Token, route: Route) {
        let Route {
            weight,
            home,
            broadcast,
            ..
        } = route;
        if let Some(target) = home {
            let queue = if broadcast {
                &self.workers[target].broadcasts
            } else {
                &self.workers[target].sticky
            };
            // Never refused: beyond its front, the queue spills (FIFO kept).
            queue.push(token);
            self.workers[target].sleeper.wake();
            return;
        }
        let target = match me {
            // Locality: a task submitted by a worker stays with it if it may run it.
            Some(me) if self.routes.may_run(me, weight) => me,
            _ => self.routes.least_loaded(weight, |w| self.load(w, weight)),
        };
        self.workers[target].mailbox.push(weight, token);
        if !self.workers[target].sleeper.wake() {
            // The target is awake, perhaps busy for long: let a sleeping worker steal.
            // ORDERING: Relaxed, ordered by the SeqCst fence inside `wake` above, paired with
            // the fence of a worker going to sleep (see `sleep.md`).
            if self.sleepers.load(Ordering::Relaxed) != 0 {
                self.wake_one_thief(weight, target);
            }
        }
    }

    /// Pushes `tokens` (all of `weight`, no home) round-robin over the eligible workers,
    /// then wakes each worker that got some (or a thief, if it is awake).
    pub(crate) fn spread(&self, weight: Weight, tokens: &mut Vec<Token>) {
        let eligible = self.routes.eligible(weight);
        let n = eligible.len();
        let first = self.routes.least_loaded(weight, |w| self.load(w, weight));
        let start = eligible.iter().position(|&w| w == first).unwrap_or(0);
        let used = n.min(tokens.len());
        for (i, t) in tokens.drain(..).enumerate() {
            self.workers[eligible[(start + i) % n]]
                .mailbox
                .push(weight, t);
        }
        for k in 0..used {
            let target = eligible[(start + k) % n];
            // ORDERING: Relaxed, ordered by the SeqCst fence inside `wake`, as in `dispatch`.
            if !self.workers[target].sleeper.wake() && self.sleepers.load(Ordering::Relaxed) != 0 {
                self.wake_one_thief(weight, target);
            }
        }
    }

    /// Pushes `token` onto worker `me`'s local deque, the calling thread being worker `me`.
    /// If the deque is full, its older half moves to `me`'s own mailbox first (as tokio's
    /// and Go's local run queues overflow in halves): the newest tasks stay where a join pops
    /// them back, and the moved ones keep their weight's lane (a deque holds only weights
    /// every worker may run, so thieves still reach them). The caller wakes a thief, as after
    /// any local push.
    #[inline]
    pub(crate) fn push_local(&self, me: usize, token: Token) {
        debug_assert_eq!(current::current_index(self.id()), Some(me));
        // SAFETY: the calling thread is worker `me`, its deque's one owner.
        if let Err(token) = unsafe { self.workers[me].deque.try_push(token) } {
            self.spill_local_half(me);
            // SAFETY: as above; the deque has room now (the spill took at least one token,
            // or thieves emptied it, and only this thread pushes).
            unsafe { self.workers[me].deque.push(token) };
        }
    }

    /// Moves the older half of worker `me`'s full local deque to its mailbox, oldest first.
    #[cold]
    #[inline(never)]
    fn spill_local_half(&self, me: usize) {
        let w = &self.workers[me];
        let mut moved = 0;
        // At least one, so that a deque of one slot has room after it too.
        while moved < (w.deque.capacity() / 2).max(1) {
            // The owner takes from the oldest end as a thief does (a lost race to a thief is
            // a token the thief now runs: it made room as well).
            let token = match w.deque.steal() {
                Steal::Taken(token) => token,
                Steal::Retry => continue,
                Steal::Empty => break,
            };
            let weight = self.tokens.held(&token).with_job(|job| job.meta().weight);
            w.mailbox.push(weight, token);
            moved += 1;
        }
    }

    /// The home worker of a task of `op` if `op` is sticky: its key's, among the workers
    /// allowed for its weight.
    #[inline]
    pub(crate) fn sticky_home(&self, op: &Operation) -> Option<usize> {
        let key = op.get_sticky()?;
        let eligible = self.routes.eligible(op.get_weight());
        Some(eligible[(key % eligible.len() as u64) as usize])
    }

    /// How much runs on `worker` before a new task of `weight` would: the task it is busy
    /// with plus the tasks queued in lanes of at least `weight`'s priority.
    #[inline]
    fn load(&self, worker: usize, weight: Weight) -> usize {
        let w = &self.workers[worker];
        let queued: usize = Weight::ALL[..=weight.lane()]
            .iter()
            .map(|&lane| w.mailbox.len(lane))
            .sum();
        queued + w.sleeper.is_busy() as usize
    }

    /// After worker `me` queued a task of `weight` for itself: wakes a sleeping worker that
    /// may steal it, if one sleeps, so the task does not wait for `me` while another core
    /// idles (and a task that blocks on it cannot deadlock `me`).
    #[inline]
    pub(crate) fn wake_a_thief_if_one_sleeps(&self, weight: Weight, me: usize) {
        if self.workers.len() == 1 {
            return; // no other worker to steal it
        }
        // ORDERING: SeqCst fence between the push and reading `sleepers`, paired with the
        // fence of a worker going to sleep (`Sleeper::prepare_sleep`), which counts itself in
        // `sleepers` before its fence and looks at every deque after it: either it sees the
        // push, or we see it counted. (`loom-tests/tests/runtime_steal.rs` deadlocks without
        // it: its mutant build removes it.)
        #[cfg(not(tokengate_mutant = "local_wake_fence"))]
        fence(Ordering::SeqCst);
        // ORDERING: Relaxed, ordered by the fence above.
        if self.sleepers.load(Ordering::Relaxed) != 0 {
            self.wake_one_thief(weight, me);
        }
    }

    #[cold]
    fn wake_one_thief(&self, weight: Weight, except: usize) {
        for &w in self.routes.eligible(weight) {
            if w != except && self.workers[w].sleeper.wake() {
                return;
            }
        }
    }
}
