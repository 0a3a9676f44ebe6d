//! The worker: a thread (pinned to a core when asked) that runs tasks from its mailbox and its
//! local deque (the tasks it submitted itself, newest first), steals from its neighbours when
//! it has none, and parks when there is nothing to do. A join of a task still in its deque
//! pops it back and runs it inline, as `rayon::join` does.
//!
//! Idle strategy: spin a little, then yield, then park (see `src/primitives/sleep.md` for the
//! protocol that makes parking safe against a concurrent submission); under loom, straight
//! to the park protocol, which is what a model checks.
//!
//! ## Where user code runs, and how each place is contained
//!
//! User code is hostile until proven otherwise: it may panic wherever it runs, including in a
//! `Drop`. Every place the runtime runs it, and what keeps the promises there (the worker
//! lives on, the token comes home, the handle resolves, `drop(rt)` returns):
//!
//! | where | on which thread | containment |
//! | --- | --- | --- |
//! | the closure's body (and the drops of its captures as it returns) | a worker, or a joiner running it inline, or a worker submitting into a dry ring | `catch_unwind` in `TaskSlot::run_then`: the handle resolves `Panicked` |
//! | both halves of a `join` (and the drops of their captures) | the forking worker (the first half, and the second when popped back), a thief worker (the second, stolen), or the caller when the join cannot reach a worker | `catch_unwind` per half (`join.rs`); the first panic is re-raised in the caller once both halves are done, the other half's outcome dropped contained |
//! | each attempt of a retried closure, and the drop of a failed attempt's payload | as above | `catch_unwind` per attempt (`retry.rs`); a payload that panics in drop ends the loop as a panic of the task |
//! | the drop of a closure never run: `cancel`, `kill`, `kill_operation`, drain, expired deadline, blocked operation, `shutdown_now` | the caller of `cancel`, a worker, an admin caller | `TaskSlot::abandon` drops it under `contain::drop_contained` and publishes the outcome regardless |
//! | the drop of a refused closure (`try_submit` hands it back; `submit` after shutdown drops it) | the submitter | the submitter's own code: its panic is the submitter's, as for any value it drops |
//! | the drop of an output or a panic payload nobody joined (the handle was dropped first) | the thread that publishes it (a worker, a joiner running it inline) | `TaskSlot::publish` drops a detached outcome in place (`drop_outcome_in_place`: `catch_unwind`, then `contain::forget_payload`) |
//! | the same, the handle dropped after the task finished | the handle's thread, in `TaskHandle::drop` (`TaskSlot::detach`) | the dropper's own code, as when it held the last reference |
//! | the drop of a task's last reference (`execute`, `kill_held`, a handle's drop, the token table's drop): what is left of it, such as a waker, or an outcome nobody joined | whoever drops it | the task's disposal (`task::dispose`) catches a panic of the in-place drop, then frees the cell or the allocation all the same |
//! | the drop of an output or payload taken by `join` | the joiner | the joiner's own value |
//! | a waker's `wake` | the finisher | `catch_unwind` in the slot (`Waiter::wake`) |
//! | a waker's `clone` and `drop` | the poller; the finisher for a replaced waker | the poller's executor; a replaced waker is dropped with no flag held |
//!
//! Two limits are Rust's, not ours: a `Drop` that panics while its thread already unwinds
//! (a capture that panics in drop when the body panicked) aborts the process, as everywhere
//! in Rust; and a scope waits until every scoped task's closure is gone and its output taken
//! or dropped (`task::TaskGroup`), so a `ScopedHandle` leaked with `mem::forget` before its
//! task finished keeps its scope waiting (as with `std::thread::scope`).

use std::cell::Cell;
use std::fmt;
use std::ptr::NonNull;
use std::time::{Duration, Instant};

use super::op_table::OpEntry;
use super::stack_job::{self, JobHeader};
use super::{reputation, Engine};
use crate::contain::drop_contained;
use crate::error::TaskError;
use crate::metrics::counters::{OpCounters, Stripe};
use crate::metrics::history::RawRecord;
use crate::operation::Weight;
use crate::primitives::{JobSteal, LanePicker, NeverRan, Registration, Steal, Token, TokenState};
use crate::sync::{bump_exclusive, thread, Arc, Backoff, Ordering};
use crate::task::{Job, JobRef, Outcome, TaskId, TaskMeta};

/// A worker's own state, living on its thread's stack for the thread's whole life.
pub(crate) struct Worker {
    engine: Arc<Engine>,
    index: usize,
    picker: Cell<LanePicker>,
    /// Alternates the sticky queue before and after the mailbox, so neither starves.
    sticky_first: Cell<bool>,
    /// The task running on this thread (innermost, for retries), valid while it runs.
    running: Cell<Option<*const TaskMeta>>,
    /// Counts this worker's runs, to time one in [`Settings::sample_every`](super::Settings).
    sample_tick: Cell<u32>,
    /// When the current busy period began on the runtime's clock, 0 while idle or with
    /// timings off (mirrored in `WorkerCounters::busy_since` for `stats()`).
    busy_since: Cell<u64>,
}

impl Worker {
    pub(crate) fn new(engine: Arc<Engine>, index: usize) -> Self {
        Self {
            engine,
            index,
            picker: Cell::new(LanePicker::default()),
            sticky_first: Cell::new(false),
            running: Cell::new(None),
            sample_tick: Cell::new(0),
            busy_since: Cell::new(0),
        }
    }

    /// The worker's index in its runtime.
    #[inline]
    pub(crate) fn index(&self) -> usize {
        self.index
    }

    /// The runtime this worker serves.
    #[inline]
    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    fn stripe(&self) -> Stripe {
        Stripe {
            index: self.index,
            exclusive: true,
        }
    }

    /// Pops this worker's sticky queue: the oldest sticky task homed here, of any key.
    ///
    /// Only this worker runs the tasks of its keys, one at a time, from this one queue, so
    /// each key's tasks start in submission order and never on two threads at once. A task
    /// that waits (a join, a scope, `wait_timeout`) lets this worker help meanwhile, and
    /// helping may pop the next task of any key, its own key's included: the task it waits
    /// for may need them (directly, or through a task another worker runs), and a rule that
    /// skipped a key running beneath would hang such a wait (see `Operation::sticky`).
    #[inline]
    fn pop_sticky(&self) -> Option<Token> {
        self.engine.workers[self.index].sticky.pop()
    }

    /// Pops the newest token of this worker's local deque.
    #[inline]
    fn pop_local(&self) -> Option<Token> {
        // SAFETY: `self` lives on worker `index`'s thread (a `Worker` is never sent), the
        // one owner of that worker's deque.
        unsafe { self.engine.workers[self.index].deque.pop() }
    }

    /// Puts back a token just popped from this worker's local deque (where it has room: no
    /// other thread pushes there).
    #[inline]
    fn push_local(&self, token: Token) {
        // SAFETY: as in `pop_local`.
        unsafe { self.engine.workers[self.index].deque.push(token) }
    }

    /// The thread's main loop; returns when the runtime stops. Called by `run_worker` of
    /// `current.rs`, which marks the thread as this worker meanwhile (this module does not
    /// import that one: the loop needs no answer to "which worker am I").
    pub(crate) fn serve(&self) {
        let me = self;
        me.engine.workers[me.index]
            .sleeper
            .register_current_thread();
        loop {
            if let Some(work) = me.find_work() {
                me.run_work(work);
                continue;
            }
            if me.engine.should_stop() {
                break;
            }
            me.idle(|| me.engine.should_stop(), None);
        }
    }

    /// The next work to run: the own sticky queue and mailbox (alternating, so neither
    /// starves), then the local deque (newest first: what this worker submitted itself comes
    /// after what others sent it, so its own nested work never starves a Light task waiting
    /// in its mailbox), then broadcast runs (after what was queued here before them), then
    /// tasks handed over without a token, then steal from neighbours i+1, i+2, …: their
    /// mailbox lanes in priority order (only lanes this worker may run), then the oldest of
    /// their deque, then the oldest stack job they forked with `join` (`join.rs`).
    #[inline]
    fn find_work(&self) -> Option<Work> {
        let engine = &*self.engine;
        let me = &engine.workers[self.index];
        let sticky_first = !self.sticky_first.get();
        self.sticky_first.set(sticky_first);
        if sticky_first {
            if let Some(token) = self.pop_sticky() {
                return Some(Work::Token(token));
            }
        }
        let mut picker = self.picker.get();
        let own = me.mailbox.pop(&mut picker);
        self.picker.set(picker);
        if let Some((_, token)) = own {
            return Some(Work::Token(token));
        }
        if !sticky_first {
            if let Some(token) = self.pop_sticky() {
                return Some(Work::Token(token));
            }
        }
        if let Some(token) = self.pop_local() {
            return Some(Work::Token(token));
        }
        if let Some(token) = me.broadcasts.pop() {
            return Some(Work::Token(token));
        }
        if let Some(job) = me.handoffs.pop() {
            return Some(Work::Handoff(job));
        }
        let n = engine.workers.len();
        for k in 1..n {
            let victim = &engine.workers[(self.index + k) % n];
            for weight in Weight::ALL {
                if engine.routes.may_run(self.index, weight) {
                    if let Some(token) = victim.mailbox.steal(weight) {
                        bump_exclusive(&me.counters.tasks_stolen, 1);
                        return Some(Work::Token(token));
                    }
                }
            }
            // A deque holds only weights every worker may run. A lost race (`Retry`) leaves
            // the token to its winner; `has_work` brings this worker back if more is left.
            if let Steal::Taken(token) = victim.deque.steal() {
                bump_exclusive(&me.counters.tasks_stolen, 1);
                return Some(Work::Token(token));
            }
            // Then the oldest stack job it forked with `join` (any worker may run one).
            if let JobSteal::Taken(job) = victim.jobs.steal() {
                bump_exclusive(&me.counters.forks_stolen, 1);
                return Some(Work::Stack(job));
            }
        }
        None
    }

    /// Runs what [`find_work`](Self::find_work) found.
    #[inline]
    fn run_work(&self, work: Work) {
        match work {
            Work::Token(token) => self.execute(token),
            Work::Handoff(job) => {
                self.mark_busy();
                self.run_tokenless(&*job);
                drop_contained(job);
            }
            Work::Stack(job) => {
                self.mark_busy();
                // SAFETY: `find_work` stole it from a job deque of this runtime.
                unsafe { stack_job::run_stolen(job, &self.engine) };
            }
        }
    }

    /// Whether any work this worker may run is waiting: in its own queues (mailbox, deque,
    /// broadcast runs, the sticky queue, hand-offs) or
    /// stealable from a neighbour's mailbox or deque. What [`find_work`](Self::find_work)
    /// would find, without taking it.
    ///
    /// Array queues count only values whose push completed (`has_ready`): a push in progress
    /// is not work this worker could take yet, and its pusher wakes a sleeper once it is
    /// done. Counting it would make the worker spin on another thread's progress, which loom
    /// explores as an unbounded loop.
    fn has_work(&self) -> bool {
        let engine = &*self.engine;
        let me = &engine.workers[self.index];
        if Weight::ALL.iter().any(|&w| me.mailbox.has_ready(w))
            || !me.deque.is_empty()
            || me.broadcasts.has_ready()
            || me.sticky.has_ready()
            || me.handoffs.has_any()
        {
            return true;
        }
        let n = engine.workers.len();
        (1..n).any(|k| {
            let victim = &engine.workers[(self.index + k) % n];
            !victim.deque.is_empty()
                || !victim.jobs.is_empty()
                || Weight::ALL
                    .iter()
                    .any(|&w| engine.routes.may_run(self.index, w) && victim.mailbox.has_ready(w))
        })
    }

    /// Runs the task of `token` (or kills it: `shutdown_now`, `kill`, drain, deadline,
    /// blocked operation; or parks it until its operation's concurrency limit lets it run),
    /// then gives the token back. The task's operation entry is looked up once, here.
    #[inline]
    fn execute(&self, token: Token) {
        let engine = &*self.engine;
        self.mark_busy();
        let held = engine.tokens.held(&token);
        let job = held.take_job();
        let meta = job.meta();
        let entry = engine.ops.of_task(meta);
        let permit = meta.limited && held.take_permit();
        let mut token = Some(token);
        if let Some((error, lifecycle)) = self.verdict(meta, entry) {
            job.abandon(error, lifecycle);
            engine.count_unrun(entry, &*job, self.stripe());
            self.record_unrun(&*job);
        } else {
            // A limited task without its permit waits for one (the limiter is looked up for
            // such a task only: a plain task's run skips it).
            let limiter = if meta.limited && !permit {
                entry.limiter.get()
            } else {
                None
            };
            if let Some(limiter) = limiter {
                let Some(token) = token.take() else {
                    unreachable!("the token is still held")
                };
                // The job goes back into the token's slot while the token waits for a permit.
                engine.tokens.held(&token).put_job(job);
                // The permit goes to the oldest waiter, perhaps not this token. This one runs
                // here (its verdict checked again: it may have been killed meanwhile); another
                // goes back to routing (it may be sticky, a broadcast, or of a weight this
                // worker may not run).
                let mine = token.index();
                if let Some(first) = limiter.acquire(token) {
                    engine.tokens.held(&first).give_permit();
                    if first.index() == mine {
                        self.execute(first);
                    } else {
                        engine.dispatch(first);
                    }
                }
                return; // else it waits: whoever releases a permit dispatches it
            }
            // The token goes home before the outcome is published, so that a joiner woken by
            // it finds the token free (`try_submit` right after a `join` is not `Full`). The
            // task itself (in the token's cell, or on the heap) lives until its last
            // reference goes: its handle's, or ours below.
            let ran = self.run_recorded(&*job, entry, &mut token, permit);
            if !ran {
                engine.count_unrun(entry, &*job, self.stripe());
            }
        }
        // Perhaps the last reference: an output or panic payload nobody joined is dropped
        // here, and its `Drop` is user code (contained by the task's disposal).
        drop(job);
        if let Some(token) = token {
            self.finish(token, entry, permit);
        }
    }

    /// Releases the task's permit (handing it to a waiting task), empties the token's slot
    /// and gives the token back.
    #[inline(always)]
    fn finish(&self, token: Token, entry: &OpEntry, permit: bool) {
        let engine = &*self.engine;
        if permit {
            if let Some(next) = entry.limiter.get().and_then(|l| l.release()) {
                engine.tokens.held(&next).give_permit();
                engine.dispatch(next);
            }
        }
        engine.give_token_from(self.index, token);
    }

    /// Why a task of `entry` must not run, if it must not: `shutdown_now`, a drain or kill of
    /// its operation since it was admitted, `kill(id)`, its operation blocked, its deadline
    /// past.
    #[inline]
    fn verdict(&self, meta: &TaskMeta, entry: &OpEntry) -> Option<(TaskError, NeverRan)> {
        let engine = &*self.engine;
        if engine.kill_queued()
            || meta.epoch != entry.epoch()
            || engine.tokens.kill_requested(meta.id)
        {
            return Some((TaskError::Killed, NeverRan::Killed));
        }
        if entry.is_blocked() {
            return Some((TaskError::Blocked, NeverRan::Killed));
        }
        match meta.deadline {
            Some(deadline) if Instant::now() > deadline => {
                Some((TaskError::TimedOut, NeverRan::TimedOut))
            }
            _ => None,
        }
    }

    /// Runs `job` inline for a join or `wait_timeout` on this worker, unless it must not run
    /// (see [`verdict`](Self::verdict): then it is resolved without running, as a worker
    /// reaching it would). Returns whether it ran.
    pub(crate) fn run_inline(&self, job: &dyn Job) -> bool {
        let engine = &*self.engine;
        let Some(entry) = engine.ops.by_index(job.meta().op) else {
            return false; // refused at admission: resolved already, nothing to run
        };
        if let Some((error, lifecycle)) = self.verdict(job.meta(), entry) {
            job.abandon(error, lifecycle);
            return false;
        }
        // Held by a pause or under a concurrency limit: not this thread's to run now (the
        // joiner helps with other work until it is done). Sticky: it runs from its home
        // worker's queue, after the earlier tasks of its key (the joiner helps meanwhile,
        // which on the home worker pops that queue in order).
        if job.meta().limited || job.meta().sticky || entry.is_paused() || engine.is_paused() {
            return false;
        }
        self.run_recorded(job, entry, &mut None, false)
    }

    /// Runs (or resolves without running, see [`verdict`](Self::verdict)) a task that has no
    /// token: submitted by a worker into a dry ring, run in place or handed over to this
    /// worker. Its permit, if it needs one, is held by its submitter.
    pub(crate) fn run_tokenless(&self, job: &dyn Job) {
        let entry = self.engine.ops.of_task(job.meta());
        if let Some((error, lifecycle)) = self.verdict(job.meta(), entry) {
            if job.abandon(error, lifecycle) {
                self.engine.count_unrun(entry, job, self.stripe());
                self.record_unrun(job);
            }
            return;
        }
        self.run_recorded(job, entry, &mut None, false);
    }

    /// Runs `job` (of operation `entry`) here if nobody has run or killed it yet, recording
    /// counters, timings and history, then gives `token` back (if it holds one: the task's,
    /// releasing its permit if `permit`) before the outcome is published. Returns whether it
    /// ran; `token` is left where it is if it did not.
    #[inline]
    pub(crate) fn run_recorded(
        &self,
        job: &dyn Job,
        entry: &OpEntry,
        token: &mut Option<Token>,
        permit: bool,
    ) -> bool {
        let meta = job.meta();
        if meta.home().is_some_and(|w| w != self.index) {
            return false; // another worker's broadcast run or sticky task: only it may run it
        }
        let start = self.sample_start();
        let outer = self.running.replace(Some(meta as *const TaskMeta));
        // Counters and history are written before the outcome is published, so a snapshot
        // taken after a join includes the joined task.
        let ran = job.run_then(&mut |state| {
            self.record_run(meta, entry, state, start);
            if let Some(token) = token.take() {
                self.finish(token, entry, permit);
            }
        });
        self.running.set(outer);
        ran
    }

    /// When the run about to start starts, on the runtime's clock, if this worker times it
    /// (see [`sample_this_run`](Self::sample_this_run)); else 0.
    #[inline]
    fn sample_start(&self) -> u64 {
        if self.sample_this_run() {
            self.engine.clock.now_ns()
        } else {
            0
        }
    }

    /// Whether the run about to start is one this worker times (one in
    /// [`Builder::sample_timings`](crate::Builder::sample_timings), if timings are on): its run
    /// time and queue wait go into the histograms, and it into the history. Every run is
    /// counted all the same.
    #[inline]
    fn sample_this_run(&self) -> bool {
        let tick = self.sample_tick.get().wrapping_add(1);
        self.sample_tick.set(tick);
        self.engine.settings.timings && tick & self.engine.settings.sample_mask == 0
    }

    /// This worker runs something from now on (a task, a stolen job, or the task that waited
    /// in a join, once it goes on): a busy period begins if none has. Only the period's two
    /// ends read the clock, so a worker busy with a stream of tasks reads it for none of them.
    #[inline]
    fn mark_busy(&self) {
        self.engine.workers[self.index].sleeper.set_busy(true);
        if self.busy_since.get() == 0 && self.engine.settings.timings {
            self.begin_busy_period();
        }
    }

    #[cold]
    fn begin_busy_period(&self) {
        // At least 1: 0 means no period.
        let now = self.engine.clock.now_ns().max(1);
        self.busy_since.set(now);
        let counters = &self.engine.workers[self.index].counters;
        // ORDERING: Relaxed: a statistic, written by this worker only.
        counters.busy_since.store(now, Ordering::Relaxed);
    }

    /// This worker has nothing to run (it goes idle, or naps while a join waits): the busy
    /// period, if any, ends and is added to its busy time. Tasks run nested inside others
    /// (a join running one inline, or helping) fall inside their outer task's period, so
    /// the busy time never exceeds the wall time.
    #[inline]
    fn mark_idle(&self) {
        self.engine.workers[self.index].sleeper.set_busy(false);
        let since = self.busy_since.replace(0);
        if since != 0 {
            let counters = &self.engine.workers[self.index].counters;
            // ORDERING: Relaxed: a statistic, written by this worker only (see `stats()` for
            // what a reader racing with this sees).
            counters.busy_since.store(0, Ordering::Relaxed);
            let now = self.engine.clock.now_ns();
            bump_exclusive(&counters.busy_ns, now.saturating_sub(since));
        }
    }

    /// Records a task of `entry` that ran here: `state` is how it ended; `start`, when it
    /// started if this run is timed (see [`sample_this_run`](Self::sample_this_run)), else 0.
    #[inline]
    fn record_run(&self, meta: &TaskMeta, entry: &OpEntry, state: TokenState, start: u64) {
        let engine = &*self.engine;
        let stripe = self.stripe();
        let me = &engine.workers[self.index];
        bump_exclusive(&me.counters.tasks_run, 1);
        let c = entry.counters.stripe(stripe);
        if state == TokenState::Completed {
            stripe.add(&c.completed, 1);
        } else {
            stripe.add(&c.failed, 1);
            self.check_auto_block(entry);
        }
        if start != 0 {
            self.record_timed_run(meta, c, state, start);
        }
    }

    /// The timings and the history record of a sampled run (see
    /// [`sample_this_run`](Self::sample_this_run)).
    #[cold]
    fn record_timed_run(&self, meta: &TaskMeta, c: &OpCounters, state: TokenState, start: u64) {
        let engine = &*self.engine;
        let stripe = self.stripe();
        let end = engine.clock.now_ns();
        c.run_time.record(stripe, end.saturating_sub(start));
        c.queue_wait
            .record(stripe, start.saturating_sub(meta.submitted_ns));
        engine.workers[self.index].history.record(RawRecord {
            id: meta.id.as_u64(),
            worker: self.index,
            op: meta.op,
            outcome: state,
            wait_ns: start.saturating_sub(meta.submitted_ns),
            run_ns: end.saturating_sub(start),
            finished_ns: end,
        });
    }

    /// Records a task that ended without running into the history.
    fn record_unrun(&self, job: &dyn Job) {
        let engine = &*self.engine;
        if !engine.settings.timings {
            return;
        }
        let meta = job.meta();
        if !matches!(job.state(), TokenState::Killed | TokenState::TimedOut) {
            return; // it ran elsewhere (an inline join), which recorded it
        }
        let now = engine.clock.now_ns();
        engine.workers[self.index].history.record(RawRecord {
            id: meta.id.as_u64(),
            worker: self.index,
            op: meta.op,
            outcome: job.state(),
            wait_ns: now.saturating_sub(meta.submitted_ns),
            run_ns: 0,
            finished_ns: now,
        });
    }

    /// Blocks `entry` if auto-block is on and its reputation says so (see `reputation.rs`).
    fn check_auto_block(&self, entry: &OpEntry) {
        if self.engine.settings.auto_block {
            reputation::check_auto_block(entry);
        }
    }

    /// Whether the task running on this thread may run another attempt (a retry): not if it
    /// was cancelled or killed while running, its operation was drained, killed or blocked,
    /// or the runtime is shutting down now. When it may, the failed attempt is counted as
    /// retried in its operation's reputation (which may block the operation).
    pub(crate) fn may_retry(&self) -> bool {
        let Some(meta) = self.running.get() else {
            return true;
        };
        // SAFETY: `running` points to the metadata of the task this thread is running now
        // (set and restored around the run in `run_recorded`); the task outlives its run.
        let meta = unsafe { &*meta };
        if meta.stop_requested() {
            return false;
        }
        let Some(entry) = self.engine.ops.by_index(meta.op) else {
            return true;
        };
        if self.verdict(meta, entry).is_some() {
            return false;
        }
        let stripe = self.stripe();
        stripe.add(&entry.counters.stripe(stripe).retried, 1);
        self.check_auto_block(entry);
        !entry.is_blocked()
    }

    /// Waits for work or for `done()`: spins, yields, then parks (until woken, or for at most
    /// `nap`). Returns when either may be true (spurious returns are allowed; callers loop).
    fn idle(&self, done: impl Fn() -> bool, nap: Option<Duration>) {
        let sleeper = &self.engine.workers[self.index].sleeper;
        self.mark_idle();
        // Spinning and yielding first is a bet on real hardware (work often comes within
        // microseconds, and parking costs a system call each way). Under loom it only
        // multiplies the interleavings: what a model checks is the park protocol, so an idle
        // worker goes straight to it there.
        if !cfg!(loom) {
            let mut backoff = Backoff::new();
            while backoff.snooze() {
                if self.has_work() || done() {
                    return;
                }
            }
        }
        // ORDERING: Relaxed: ordered before our last look for work by the SeqCst fence in
        // `prepare_sleep`, paired with the fence in `Sleeper::wake` of a dispatcher.
        self.engine.sleepers.fetch_add(1, Ordering::Relaxed);
        sleeper.prepare_sleep();
        if self.has_work() || done() {
            sleeper.cancel_sleep();
            if cfg!(loom) {
                // Work seen that `find_work` did not get (a steal lost to its winner, an
                // owner's pop of a deque's last token in progress): tell loom that this
                // thread waits for another, as the spin and yield above do on real hardware,
                // or it explores this loop forever. (A push in progress does not count as
                // work, see `has_work`: its pusher wakes us.)
                thread::yield_now();
            }
        } else {
            bump_exclusive(&self.engine.workers[self.index].counters.parks, 1);
            match nap {
                None => sleeper.sleep(),
                Some(nap) => {
                    // A waker may unpark us meanwhile (new work): then the nap ends early.
                    thread::park_timeout(nap);
                    sleeper.cancel_sleep();
                }
            }
        }
        // ORDERING: Relaxed: a hint for dispatchers.
        self.engine.sleepers.fetch_sub(1, Ordering::Relaxed);
    }

    /// Joins `task` from this worker for its handle, which this thread owns: runs it here if
    /// it has not started (popped back from the local deque when it is the newest there, as
    /// `rayon::join` does, its outcome then handed straight back by
    /// [`execute_taking`](Self::execute_taking); else claimed in place), else runs other
    /// tasks until it is finished. `None`: the outcome is ready in the task, for the handle
    /// to take.
    #[inline]
    pub(crate) fn join_taking<T>(&self, task: &dyn Outcome<T>) -> Option<Result<T, TaskError>> {
        // The deque first: a task whose token is still there has not started (the common
        // case), unless its handle's `wait_timeout` ran it in place, which `execute_taking`
        // finds.
        if let Some(token) = self.pop_own_newest(task.meta().id) {
            if let Some(outcome) = self.execute_taking(token, task) {
                return Some(outcome);
            }
        }
        self.claim_or_wait(task.as_job());
        None
    }

    /// The rest of [`join_taking`](Self::join_taking) once the task was not popped back: runs
    /// it in place if it has not started and may run here, else helps until it is finished.
    #[inline(never)]
    fn claim_or_wait(&self, job: &dyn Job) {
        if job.is_ready() || self.run_inline(job) || job.is_ready() {
            return;
        }
        self.wait_helping(job);
    }

    /// Pops the newest token of the local deque if it carries the task `id`.
    ///
    /// It looks before it pops: a token popped and pushed back would be out of thieves' sight
    /// meanwhile, and a worker going to sleep then could miss it.
    #[inline(always)]
    fn pop_own_newest(&self, id: TaskId) -> Option<Token> {
        let me = &self.engine.workers[self.index];
        // SAFETY: `self` lives on worker `index`'s thread, the one owner of its deque.
        if unsafe { me.deque.peek_newest() } != Some(id.index() as usize) {
            return None;
        }
        // `None`: a thief took it meanwhile.
        let token = self.pop_local()?;
        // Popped, the token is ours: its generation says which task it carries now (another,
        // in the instant between a task's token going home and its outcome's publication).
        let held = self.engine.tokens.held(&token);
        if token.index() != id.index() as usize || held.generation() != id.generation() {
            let weight = held.with_job(|other| other.meta().weight);
            self.push_local(token);
            // It was out of thieves' sight for a moment: as after any local push.
            self.engine.wake_a_thief_if_one_sleeps(weight, self.index);
            return None;
        }
        Some(token)
    }

    /// [`execute`](Self::execute) for the task's own joiner, which holds `task`'s handle: the
    /// token just popped back from the local deque carries `task`. Runs it here and returns
    /// its outcome directly (no publication for a later take: nobody else may take it), its
    /// token given back before. A task with a concurrency limit, or one that must not run
    /// ([`verdict`](Self::verdict)), goes through `execute` instead (then `None`: its
    /// outcome is in the task).
    #[inline]
    fn execute_taking<T>(
        &self,
        token: Token,
        task: &dyn Outcome<T>,
    ) -> Option<Result<T, TaskError>> {
        let engine = &*self.engine;
        let meta = task.meta();
        // The local deque holds only tasks any worker may run (`dispatch_routed`): no home to
        // check, as `run_recorded` does.
        debug_assert!(meta.home().is_none());
        let entry = engine.ops.of_task(meta);
        if meta.limited || self.verdict(meta, entry).is_some() {
            self.execute(token);
            return None;
        }
        // The token table's reference to the task: the token goes home without it.
        let job = engine.tokens.held(&token).take_job();
        // No `mark_busy`: the joiner is running a task, so this worker is busy already.
        let start = self.sample_start();
        let outer = self.running.replace(Some(meta as *const TaskMeta));
        let mut token = Some(token);
        let outcome = task.run_and_take(&mut |state| {
            self.record_run(meta, entry, state, start);
            if let Some(token) = token.take() {
                self.finish(token, entry, false);
            }
        });
        self.running.set(outer);
        if outcome.is_none() {
            engine.count_unrun(entry, &*job, self.stripe());
        }
        drop(job);
        if let Some(token) = token {
            self.finish(token, entry, false);
        }
        outcome
    }

    /// Runs this worker's queued tasks until `job` (of this runtime or another) is finished.
    /// A worker that waits keeps serving its runtime: two runtimes whose tasks join each
    /// other's tasks then cannot deadlock.
    pub(crate) fn wait_helping(&self, job: &dyn Job) {
        if job.is_ready() {
            return;
        }
        let registered = job.register_waiter();
        if registered == Registration::Ready {
            return;
        }
        self.help_until(|| job.is_ready(), registered == Registration::Registered);
    }

    /// Runs queued tasks until `done()`. `wakes_us`: whoever makes `done()` true unparks this
    /// thread, so idling may park until woken; otherwise idling parks for short naps (50 µs,
    /// doubling up to 1 ms) and looks at `done()` after each: a long wait costs almost no
    /// CPU, and new work for this worker still wakes it at once.
    pub(crate) fn help_until(&self, done: impl Fn() -> bool, wakes_us: bool) {
        let mut nap = POLL_NAP_MIN;
        while !done() {
            if let Some(work) = self.find_work() {
                self.run_work(work);
                nap = POLL_NAP_MIN;
            } else if wakes_us {
                self.idle(&done, None);
            } else {
                self.idle(&done, Some(nap));
                nap = (nap * 2).min(POLL_NAP_MAX);
            }
        }
        // Back to the task that joined: it is running, so count as busy.
        self.mark_busy();
    }
}

/// The first nap of a worker that helps while it waits for something that does not unpark
/// it (see [`Worker::help_until`]); each empty look doubles it, up to [`POLL_NAP_MAX`].
const POLL_NAP_MIN: Duration = Duration::from_micros(50);
/// The longest such nap: how late, at most, such a wait notices that it is over.
const POLL_NAP_MAX: Duration = Duration::from_millis(1);

/// What a worker found to do.
enum Work {
    /// A token popped or stolen: its task waits in the token table.
    Token(Token),
    /// A task handed over without a token.
    Handoff(JobRef),
    /// A stack job stolen from another worker's job deque (`join.rs`).
    Stack(NonNull<JobHeader>),
}

impl fmt::Debug for Worker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Worker")
            .field("index", &self.index)
            .finish()
    }
}
