//! Admission, on the submitting thread: take a token (or, on a worker facing a dry ring, run
//! without one), write the task under it, and hand the token on (dispatch, or hold while
//! paused). Every submission of the public API comes through here; each returns the task's
//! [`OutcomeRef`], which the runtime layer wraps into its handle.

use std::collections::VecDeque;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::time::Instant;

use super::current;
use super::dispatch::Route;
use super::op_table::OpEntry;
use super::Engine;
use crate::error::{TaskError, TrySubmitError};
use crate::operation::Operation;
use crate::primitives::{Limiter, NeverRan, TaskSlot, Token};
use crate::sync::{fence, Ordering};
use crate::task::{self, AdmissionTime, OutcomeRef, Placement, TaskId, TaskMeta};

/// What [`Engine::admit_dry`] did.
enum Dry<F, T> {
    /// A token came home: admit as usual.
    Token(Token, F),
    /// The task ran (or was resolved) without a token.
    Done(OutcomeRef<T>),
    /// The runtime was shut down meanwhile.
    Closed(F),
}

/// Under loom, panics in words for an operation a model cannot run: one with a deadline. Called
/// before anything is taken, so that nothing is left behind by the panic.
#[inline]
fn refuse_what_loom_cannot_model(op: &Operation) {
    if cfg!(loom) && op.get_deadline().is_some() {
        crate::sync::unsupported_under_loom(
            "Operation::deadline",
            "a model has no clock, and a deadline read from the real one would make two \
             executions of one schedule differ",
            "leave the deadline out of the model and test it with real threads",
        );
    }
}

/// The index a task run without a token has in its id, where a token's index would be.
const NO_TOKEN: u32 = u32::MAX;

impl Engine {
    /// Admits `func` as a task of `op`. `wait`: block while every token is out (else refuse
    /// with `Full`).
    pub(crate) fn admit<F, T>(
        &self,
        op: &Operation,
        func: F,
        wait: bool,
    ) -> Result<OutcomeRef<T>, TrySubmitError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        // SAFETY: `F: 'static` and `T: 'static`: nothing to outlive.
        unsafe { self.admit_unchecked(op, func, wait, None) }
    }

    /// Admits `func`, waiting for a token while every token is out; a refused submission
    /// (shut down, blocked) gets an outcome resolved with the reason, its closure dropped here.
    pub(crate) fn submit<F, T>(&self, op: &Operation, func: F) -> OutcomeRef<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        // SAFETY: `F: 'static` and `T: 'static`: nothing to outlive.
        unsafe { self.submit_unchecked(op, func, None) }
    }

    /// [`submit`](Self::submit) for closures that borrow; see
    /// [`admit_unchecked`](Self::admit_unchecked). The one place where a refusal becomes the
    /// error of an outcome.
    ///
    /// # Safety
    ///
    /// As [`admit_unchecked`](Self::admit_unchecked).
    pub(crate) unsafe fn submit_unchecked<'a, F, T>(
        &self,
        op: &Operation,
        func: F,
        broadcast_to: Option<usize>,
    ) -> OutcomeRef<T>
    where
        F: FnOnce() -> T + Send + 'a,
        T: Send + 'a,
    {
        // SAFETY: forwarded from the caller.
        match unsafe { self.admit_unchecked(op, func, true, broadcast_to) } {
            Ok(outcome) => outcome,
            Err(refused) => {
                let error = match refused {
                    TrySubmitError::Blocked(_) => TaskError::Blocked,
                    TrySubmitError::Full(_) | TrySubmitError::ShutDown(_) => TaskError::ShutDown,
                };
                // `refused`, with the closure, was dropped by the match above: unrun, while
                // whatever it borrows is alive.
                self.refused(op, error)
            }
        }
    }

    /// [`admit`](Self::admit) for closures that borrow. `broadcast_to`: only that worker may
    /// run the task (a broadcast run).
    ///
    /// # Safety
    ///
    /// As [`task::erase`]: unless `F` and `T` are `'static`, the caller must not let `'a` end
    /// while the task's closure or output may still be used or dropped.
    pub(crate) unsafe fn admit_unchecked<'a, F, T>(
        &self,
        op: &Operation,
        func: F,
        wait: bool,
        broadcast_to: Option<usize>,
    ) -> Result<OutcomeRef<T>, TrySubmitError<F>>
    where
        F: FnOnce() -> T + Send + 'a,
        T: Send + 'a,
    {
        refuse_what_loom_cannot_model(op);
        if self.is_closed() {
            return Err(TrySubmitError::ShutDown(func));
        }
        let entry = self.ops.entry(op);
        if op.get_concurrency_limit().is_some() {
            entry.limiter_for(op);
        }
        if entry.is_blocked() {
            let counters = entry.counters.stripe(self.stripe());
            self.stripe().add(&counters.blocked, 1);
            return Err(TrySubmitError::Blocked(func));
        }
        // Which worker of this runtime submits, if one does (asked once: taking a token, the
        // counters and routing all need it).
        let me = current::current_index(self.id());
        let placement = Placement {
            broadcast_to,
            home: broadcast_to.or_else(|| self.sticky_home(op)),
        };
        // Paused: a hold slot first, so that pauses never hold every token (`hold.rs`).
        let holdable = broadcast_to.is_none();
        let hold_slot = if holdable && (self.is_paused() || entry.is_paused()) {
            match self.claim_hold_slot(entry, wait) {
                Ok(slot) => slot,
                Err(()) => return Err(TrySubmitError::Full(func)),
            }
        } else {
            None
        };
        let (token, func) = match self.take_token_as(me) {
            Some(token) => (token, func),
            None if !wait => return Err(TrySubmitError::Full(func)),
            // SAFETY: forwarded from the caller.
            None => match unsafe { self.admit_dry(op, entry, func, placement) } {
                Dry::Token(token, func) => (token, func),
                Dry::Done(outcome) => return Ok(outcome),
                Dry::Closed(func) => return Err(TrySubmitError::ShutDown(func)),
            },
        };
        // ORDERING: SeqCst fence between taking the token and reading `closed`, paired with
        // the fence in `close` between setting `closed` and counting the tokens home: either
        // we see `closed` and give the token back, or `close` sees our token out and waits
        // for this task to finish.
        fence(Ordering::SeqCst);
        // ORDERING: Relaxed, ordered by the fence.
        if self.closed.load(Ordering::Relaxed) {
            self.ring.give_back(token);
            return Err(TrySubmitError::ShutDown(func));
        }
        let time = self.admission_time(op);
        let stripe = self.stripe_as(me);
        stripe.add(&entry.counters.stripe(stripe).submitted, 1);
        // SAFETY: forwarded from the caller.
        let outcome = unsafe { self.install(&token, op, entry, func, time, placement) };
        if holdable && (hold_slot.is_some() || self.is_paused() || entry.is_paused()) {
            self.hold(token, hold_slot);
        } else {
            let route = Route {
                weight: op.get_weight(),
                home: placement.home,
                broadcast: placement.broadcast_to.is_some(),
                fifo: op.is_fifo(),
            };
            debug_assert_eq!(
                Some(route),
                self.tokens
                    .held(&token)
                    .with_job(|job| Some(Route::of(job.meta())))
            );
            self.dispatch_routed(me, token, route);
        }
        Ok(outcome)
    }

    /// Writes the task of `func` under `token` (which the caller holds and has not handed on)
    /// and returns its outcome.
    ///
    /// # Safety
    ///
    /// As [`admit_unchecked`](Self::admit_unchecked).
    #[inline]
    #[allow(clippy::too_many_arguments)]
    unsafe fn install<'a, F, T>(
        &self,
        token: &Token,
        op: &Operation,
        entry: &OpEntry,
        func: F,
        time: AdmissionTime,
        placement: Placement,
    ) -> OutcomeRef<T>
    where
        F: FnOnce() -> T + Send + 'a,
        T: Send + 'a,
    {
        let held = self.tokens.held(token);
        // In the token's cell if it fits and the token's previous task is gone (its handle
        // may still hold it: then on the heap). Claimed before the record is made, so that
        // the record is built where it goes rather than kept across the claim.
        let cell = held.claim_cell::<F, T>();
        let id = TaskId::new(self.serial, held.next_generation(), token.index() as u32);
        let meta = || TaskMeta::new(id, self.id(), op, Some(entry.tag()), time, placement);
        // SAFETY: forwarded from the caller; the cell was claimed for a `Task<F, T>`.
        let (outcome, job) = unsafe { task::erase_new(meta, func, cell) };
        // The hand-over of the token that follows publishes the job.
        held.put_job(job);
        outcome
    }

    /// Admits every closure of `funcs` as a task of `op`, pushing `wrap` of each outcome onto
    /// `out`, in order; in chunks that share the fixed costs: one operation lookup, one fence
    /// and one clock read per chunk, the chunk spread over the eligible workers, each woken
    /// once. Waits for tokens like `admit` (after handing on what it holds). Refused closures
    /// (shutdown, blocked) get resolved outcomes.
    ///
    /// If the iterator panics, the closures it gave before are admitted all the same (none is
    /// dropped unrun), then the panic goes on: their outcomes were pushed onto `out`, which
    /// the caller drops as it unwinds, so those tasks run detached.
    pub(crate) fn admit_batch<I, F, T, H>(
        &self,
        op: &Operation,
        funcs: I,
        out: &mut Vec<H>,
        wrap: impl Fn(OutcomeRef<T>) -> H,
    ) where
        I: Iterator<Item = F>,
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        const CHUNK: usize = 64;
        refuse_what_loom_cannot_model(op);
        let mut funcs = funcs;
        let mut pending: VecDeque<F> = VecDeque::new();
        let mut tokens: Vec<Token> = Vec::with_capacity(CHUNK);
        let fixed_route = op.get_sticky().is_some();
        let one_by_one = |f: F, out: &mut Vec<H>| out.push(wrap(self.submit(op, f)));
        let mut unwinding = None;
        loop {
            if unwinding.is_none() {
                let more = CHUNK - pending.len();
                // User code: a panic in `next` must not drop what `pending` holds unrun.
                let pulled = catch_unwind(AssertUnwindSafe(|| {
                    pending.extend(funcs.by_ref().take(more));
                }));
                unwinding = pulled.err();
            }
            if pending.is_empty() {
                if let Some(payload) = unwinding {
                    resume_unwind(payload);
                }
                return;
            }
            let entry = self.ops.entry(op);
            if op.get_concurrency_limit().is_some() {
                entry.limiter_for(op);
            }
            if fixed_route
                || self.is_closed()
                || entry.is_blocked()
                || self.is_paused()
                || entry.is_paused()
            {
                // Sticky: each key has its own worker. Refused: `admit` refuses and counts.
                // Paused: each submission claims its hold slot, waiting for one if it must.
                pending.drain(..).for_each(|f| one_by_one(f, out));
                continue;
            }
            // In bulk: one claim of the ring's head for the whole chunk.
            self.take_tokens(pending.len() - tokens.len(), &mut tokens);
            if tokens.is_empty() {
                // Dry ring: the single path waits for a token (or runs in place on a worker).
                if let Some(f) = pending.pop_front() {
                    one_by_one(f, out);
                }
                continue;
            }
            // ORDERING: SeqCst fence between taking the tokens and reading `closed`, as in
            // `admit_unchecked` (one fence orders all the takes before it).
            fence(Ordering::SeqCst);
            // ORDERING: Relaxed, ordered by the fence.
            if self.closed.load(Ordering::Relaxed) {
                for t in tokens.drain(..) {
                    self.ring.give_back(t);
                }
                continue; // refused one by one above
            }
            let time = self.admission_time(op);
            let stripe = self.stripe();
            stripe.add(
                &entry.counters.stripe(stripe).submitted,
                tokens.len() as u64,
            );
            for t in &tokens {
                let Some(f) = pending.pop_front() else {
                    unreachable!("at most one token per pending closure")
                };
                let placement = Placement::default();
                // SAFETY: `F: 'static` and `T: 'static`.
                out.push(wrap(unsafe {
                    self.install(t, op, entry, f, time, placement)
                }));
            }
            if self.is_paused() || entry.is_paused() {
                // The pause began after the check above: these count as admitted before it,
                // held if hold slots are free, else dispatched (see `hold.rs`).
                tokens.drain(..).for_each(|t| self.hold(t, None));
            } else {
                self.spread(op.get_weight(), &mut tokens);
            }
        }
    }

    /// When a task of `op` admitted now was submitted (runtime clock, if timings are on) and
    /// its start deadline.
    #[inline]
    fn admission_time(&self, op: &Operation) -> AdmissionTime {
        AdmissionTime {
            ns: if self.settings.timings {
                self.clock.now_ns()
            } else {
                0
            },
            deadline: op
                .get_deadline()
                .and_then(|d| Instant::now().checked_add(d)),
        }
    }

    /// Admission when the ring is dry and the caller may wait. A thread that is not a worker
    /// waits for a token (parked). A worker must not: every token may be held by tasks nested
    /// on the workers' own stacks (a join inside a task, a task waiting for a concurrency
    /// permit), so it runs the task without a token: in place when it may run it, else
    /// handed to the worker that must run it (`Handoffs`), helping with other work until it
    /// has run. Either way the outcome is ready when this returns, so such tasks are bounded
    /// by the stack frames blocked here. A limited task first takes a permit without a token
    /// (`Limiter::try_acquire`), helping until one is free or a token comes home. A worker of
    /// another runtime helps its own runtime while it waits for a token of this one.
    ///
    /// # Safety
    ///
    /// As [`admit_unchecked`](Self::admit_unchecked).
    #[cold]
    unsafe fn admit_dry<'a, F, T>(
        &self,
        op: &Operation,
        entry: &OpEntry,
        func: F,
        placement: Placement,
    ) -> Dry<F, T>
    where
        F: FnOnce() -> T + Send + 'a,
        T: Send + 'a,
    {
        let limiter = if op.get_concurrency_limit().is_some() {
            entry.limiter.get()
        } else {
            None
        };
        if current::with_any_current(|_| ()).is_none() {
            // A plain thread: park until a token comes home or the runtime closes.
            return match self.take_token_or(|| self.is_closed()) {
                Some(token) => Dry::Token(token, func),
                None => Dry::Closed(func),
            };
        }
        loop {
            if let Some(token) = self.take_token() {
                return Dry::Token(token, func);
            }
            if self.is_closed() {
                return Dry::Closed(func);
            }
            let token_or_closed = || self.free_tokens() != 0 || self.is_closed();
            if current::is_worker_of(self.id()) {
                match limiter {
                    Some(l) if !l.try_acquire() => {
                        current::with_current(self.id(), |w| {
                            w.help_until(|| token_or_closed() || l.has_free_permit(), false)
                        });
                    }
                    _ => {
                        // SAFETY: forwarded from the caller.
                        let outcome =
                            unsafe { self.run_tokenless(op, entry, func, placement, limiter) };
                        return Dry::Done(outcome);
                    }
                }
            } else {
                // A worker of another runtime: it keeps serving its own meanwhile.
                current::with_any_current(|w| w.help_until(token_or_closed, false));
            }
        }
    }

    /// Runs `func` without a token on behalf of the calling worker (see
    /// [`admit_dry`](Self::admit_dry)): in place, or on its home worker, which it is handed
    /// to (a sticky task even when its home is this worker); returns once it has run (or was
    /// resolved without running: killed, timed out). A limiter given holds a permit for it,
    /// released here.
    ///
    /// # Safety
    ///
    /// As [`admit_unchecked`](Self::admit_unchecked).
    #[cold]
    unsafe fn run_tokenless<'a, F, T>(
        &self,
        op: &Operation,
        entry: &OpEntry,
        func: F,
        placement: Placement,
        permit: Option<&Limiter>,
    ) -> OutcomeRef<T>
    where
        F: FnOnce() -> T + Send + 'a,
        T: Send + 'a,
    {
        // ORDERING: Relaxed: a counter for unique ids only.
        let n = self.inline_ids.fetch_add(1, Ordering::Relaxed);
        let id = TaskId::new(self.serial, n, NO_TOKEN);
        let time = self.admission_time(op);
        let meta = TaskMeta::new(id, self.id(), op, Some(entry.tag()), time, placement);
        let stripe = self.stripe();
        stripe.add(&entry.counters.stripe(stripe).submitted, 1);
        // SAFETY: forwarded from the caller.
        let (outcome, job) = unsafe { task::erase_new(|| meta, func, None) };
        let me = current::current_index(self.id());
        match placement.home {
            // Another worker's task, or a sticky task even if homed here: its home takes it
            // from its hand-offs after the sticky tasks queued before it (key order), and
            // this worker helps meanwhile, which is how it runs here if it is the home.
            Some(home) if Some(home) != me || placement.broadcast_to.is_none() => {
                self.workers[home].handoffs.push(job.clone());
                self.workers[home].sleeper.wake();
                current::with_current(self.id(), |w| w.wait_helping(&*job));
            }
            _ => {
                current::with_current(self.id(), |w| w.run_tokenless(&*job));
            }
        }
        if let Some(next) = permit.and_then(|l| l.release()) {
            self.tokens.held(&next).give_permit();
            self.dispatch(next);
        }
        outcome
    }

    /// An outcome already resolved with `error`: a refused submission of `op`, which never
    /// ran and has no entry in the operation table.
    fn refused<'a, T: Send + 'a>(&self, op: &Operation, error: TaskError) -> OutcomeRef<T> {
        let id = TaskId::new(self.serial, 0, NO_TOKEN);
        let (time, placement) = (AdmissionTime::default(), Placement::default());
        let meta = TaskMeta::new(id, self.id(), op, None, time, placement);
        let slot = TaskSlot::<fn() -> T, T>::resolved(error, NeverRan::Killed);
        // SAFETY: the task holds no closure and no value of `T`, only the error: nothing in it
        // borrows from `'a`.
        unsafe { task::erase(meta, slot, None) }.0
    }
}
