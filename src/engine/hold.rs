//! Pause and hold: tokens admitted while their admission is paused (globally or per
//! operation) wait here, in one list under one lock, until a resume releases them, a kill
//! resolves them where they wait, or a shutdown releases them all.
//!
//! None of this adds a lock to the submit path while nothing is paused: submitters read one
//! flag of the runtime and one of the operation; only a paused submission takes the lock.
//!
//! ## The bound on what pauses hold
//!
//! Held tasks keep their tokens, so without a bound a paused operation that keeps receiving
//! tasks would take every token and stop every other operation, and broadcasts. Pauses may
//! hold at most `max_held` tokens (`Builder::max_held`, default half the capacity): a
//! submission that sees a pause first claims a *hold slot* (`claimed`, never above
//! `max_held`), then takes a token; with no slot free it waits before taking a token
//! (`try_submit`: `Full`) until a resume, a kill of held tasks or a shutdown frees one or
//! lifts the pause. A slot is given back when its token leaves the held list
//! (`drain_held`), or at once if the submission ends up not held. A submission that saw no
//! pause but meets one under the hold lock (the pause began meanwhile) is held only if it
//! can claim a slot, else dispatched: it counts as admitted before the pause. So at least
//! `capacity - max_held` tokens always serve everything that is not paused.

use super::current;
use super::op_table::OpEntry;
use super::Engine;
use crate::contain::drop_contained;
use crate::error::TaskError;
use crate::primitives::{NeverRan, Token};
use crate::sync::{AtomicBool, AtomicUsize, Mutex, Ordering};
use crate::task::{Job, TaskId};

/// The global pause flag and the tokens held back by a pause.
pub(crate) struct Holds {
    paused: AtomicBool,
    /// Tokens admitted while their admission was paused (globally or per operation). Only
    /// touched when something is paused, so a lock is fine here.
    held: Mutex<Vec<Token>>,
    held_len: AtomicUsize,
    /// Hold slots claimed: tokens held, plus submissions on their way to be held. At most
    /// `max_held` (module docs).
    claimed: AtomicUsize,
    max_held: usize,
}

impl Holds {
    pub(crate) fn new(max_held: usize) -> Self {
        Self {
            paused: AtomicBool::new(false),
            held: Mutex::new(Vec::new()),
            held_len: AtomicUsize::new(0),
            claimed: AtomicUsize::new(0),
            max_held,
        }
    }
}

/// A claimed hold slot (see the module docs): given back on drop, unless [`kept`] for a
/// token put on the held list, whose leaving the list gives it back.
///
/// [`kept`]: HoldSlot::keep
#[must_use]
pub(crate) struct HoldSlot<'e> {
    holds: &'e Holds,
    engine: &'e Engine,
}

impl HoldSlot<'_> {
    /// The slot now belongs to a held token (`drain_held` gives it back).
    fn keep(self) {
        std::mem::forget(self);
    }
}

impl Drop for HoldSlot<'_> {
    fn drop(&mut self) {
        self.engine.give_back_hold_slots(self.holds, 1);
    }
}

impl Engine {
    #[inline]
    pub(crate) fn is_paused(&self) -> bool {
        // ORDERING: Acquire pairs with the Release store in `set_paused`: a submitter that
        // sees the pause lifted dispatches after the held tasks were (sticky order).
        self.holds.paused.load(Ordering::Acquire)
    }

    /// How many tokens a pause holds back (a report).
    pub(crate) fn held_len(&self) -> usize {
        // ORDERING: Relaxed: a report.
        self.holds.held_len.load(Ordering::Relaxed)
    }

    /// Keeps an admitted token back while its admission is paused, or dispatches it if the
    /// pause ended meanwhile (checked under the lock `resume` takes, so nothing is stranded).
    /// `slot`: the hold slot its submission claimed, if it saw the pause; without one, it is
    /// held only if a slot is free (module docs).
    #[cold]
    pub(crate) fn hold(&self, token: Token, slot: Option<HoldSlot<'_>>) {
        let mut held = self.holds.held.lock().unwrap_or_else(|e| e.into_inner());
        let entry = self.entry_of(&token);
        // Closed: `close` has released (or is about to release, after this lock) what is held;
        // a token held now would never come home.
        let paused = !self.is_closed() && (self.is_paused() || entry.is_paused());
        match slot.or_else(|| paused.then(|| self.try_claim_hold_slot()).flatten()) {
            Some(slot) if paused => {
                slot.keep();
                // ORDERING: Relaxed: a report, written under the hold lock.
                entry.held.fetch_add(1, Ordering::Relaxed);
                held.push(token);
                // ORDERING: Relaxed: a report.
                self.holds.held_len.store(held.len(), Ordering::Relaxed);
            }
            slot => {
                drop(held);
                drop(slot);
                self.dispatch(token);
            }
        }
    }

    /// For a submission of `entry` that sees a pause: a hold slot, claimed before it takes a
    /// token. With none free it waits (helping, on a worker) until one is, or the pause is
    /// lifted or the runtime closes; `Err` if it may not wait (`try_submit`). `Ok(None)`: no
    /// slot is needed any more (no pause, or closed: the admission goes on and finds out).
    #[cold]
    pub(crate) fn claim_hold_slot(
        &self,
        entry: &OpEntry,
        wait: bool,
    ) -> Result<Option<HoldSlot<'_>>, ()> {
        let mut attempt = || {
            if self.is_closed() || !(self.is_paused() || entry.is_paused()) {
                return Some(None);
            }
            self.try_claim_hold_slot().map(Some)
        };
        if let Some(claimed) = attempt() {
            return Ok(claimed);
        }
        if !wait {
            return Err(());
        }
        let free_or_lifted = || {
            self.is_closed()
                || !(self.is_paused() || entry.is_paused())
                // ORDERING: Relaxed: a hint; the claim is the CAS in `try_claim_hold_slot`.
                || self.holds.claimed.load(Ordering::Relaxed) < self.holds.max_held
        };
        loop {
            // A worker (of any runtime) keeps serving its runtime meanwhile.
            if current::with_any_current(|w| w.help_until(free_or_lifted, false)).is_none() {
                // A plain thread: woken by every give-back of a slot or token and every resume.
                return Ok(self.ring.wait_for(&mut attempt));
            }
            if let Some(claimed) = attempt() {
                return Ok(claimed);
            }
        }
    }

    /// Claims a hold slot if one is free.
    fn try_claim_hold_slot(&self) -> Option<HoldSlot<'_>> {
        let holds = &self.holds;
        // ORDERING: Relaxed: a count that bounds itself (the CAS); nothing is published by it.
        let mut now = holds.claimed.load(Ordering::Relaxed);
        while now < holds.max_held {
            // ORDERING: Relaxed, as above.
            match holds.claimed.compare_exchange_weak(
                now,
                now + 1,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    return Some(HoldSlot {
                        holds,
                        engine: self,
                    })
                }
                Err(actual) => now = actual,
            }
        }
        None
    }

    /// Gives back `n` hold slots and wakes the submitters that may wait for one.
    fn give_back_hold_slots(&self, holds: &Holds, n: usize) {
        if n == 0 {
            return;
        }
        // ORDERING: Relaxed, see `try_claim_hold_slot`; the wake-up below is the wait list's
        // own protocol (its notify is ordered after this change).
        holds.claimed.fetch_sub(n, Ordering::Relaxed);
        self.ring.wake_all_waiters();
    }

    /// Sets the global pause flag (`true`) or clears it and dispatches what it held.
    pub(crate) fn set_paused(&self, paused: bool) {
        let mut held = self.holds.held.lock().unwrap_or_else(|e| e.into_inner());
        if !paused {
            // Dispatch what was held before lifting the flag, so that nothing submitted after
            // the lift overtakes it. (The global flag is still set: only the operations'
            // own pauses keep tokens back.)
            for token in self.drain_held(&mut held, |_, entry| !entry.is_paused()) {
                self.dispatch(token);
            }
        }
        // ORDERING: Release, see `is_paused`; submitters that saw the pause re-check under
        // this lock.
        self.holds.paused.store(paused, Ordering::Release);
        if !paused {
            // Submitters waiting for a hold slot go on unheld.
            self.ring.wake_all_waiters();
        }
    }

    /// Sets an operation's pause flag, releasing its held tokens when cleared (unless the
    /// global pause holds them).
    pub(crate) fn set_operation_paused(&self, entry: &OpEntry, paused: bool) {
        let mut held = self.holds.held.lock().unwrap_or_else(|e| e.into_inner());
        if !paused && !self.is_paused() {
            // As in `set_paused`: dispatch what was held, then lift the flag.
            let op = entry.index;
            for token in self.drain_held(&mut held, |_, e| e.index == op) {
                self.dispatch(token);
            }
        }
        // ORDERING: Release pairs with the Acquire in `OpEntry::is_paused`.
        entry.paused.store(paused, Ordering::Release);
        if !paused {
            // Submitters waiting for a hold slot go on unheld.
            self.ring.wake_all_waiters();
        }
    }

    /// Dispatches every held token, paused or not (shutdown: they must run or be killed).
    pub(crate) fn release_all_held(&self) {
        let mut held = self.holds.held.lock().unwrap_or_else(|e| e.into_inner());
        for token in self.drain_held(&mut held, |_, _| true) {
            self.dispatch(token);
        }
    }

    /// Kills the task `id` where it waits: held by a pause, at once; else when a worker
    /// reaches it (nothing if `id` is of another runtime).
    pub(crate) fn kill_task(&self, id: TaskId) {
        if id.runtime() != self.serial {
            return;
        }
        self.tokens.request_kill(id);
        self.kill_held(|job| job.meta().id == id);
    }

    /// Kills the held tasks `which` selects, at once. (The kills happen after the hold lock is
    /// released: dropping a closure or waking a waker may run user code.)
    pub(crate) fn kill_held(&self, which: impl Fn(&dyn Job) -> bool) {
        let chosen = {
            let mut held = self.holds.held.lock().unwrap_or_else(|e| e.into_inner());
            self.drain_held(&mut held, |token, _| {
                self.tokens.held(token).with_job(|job| which(&**job))
            })
        };
        let stripe = self.stripe();
        for token in chosen {
            let entry = self.entry_of(&token);
            let job = self.tokens.held(&token).take_job();
            // The closure's drop is contained by `abandon`; the last reference's drop (a
            // handle already gone: the error value, a waker) by `drop_contained`. Every
            // chosen task is resolved and its token comes home.
            job.abandon(TaskError::Killed, NeverRan::Killed);
            self.count_unrun(entry, &*job, stripe);
            drop_contained(job);
            self.ring.give_back(token);
        }
    }

    /// The one way tokens leave the held list: takes out the tokens `pick` selects (given
    /// each token and its operation's entry), in order, lowering their operations' held
    /// counts; keeps the others in order. The caller holds the hold lock (`held` is its
    /// guarded list) and dispatches or kills what it gets.
    fn drain_held(
        &self,
        held: &mut Vec<Token>,
        pick: impl Fn(&Token, &OpEntry) -> bool,
    ) -> Vec<Token> {
        let mut picked = Vec::new();
        let mut kept = Vec::new();
        for token in held.drain(..) {
            let entry = self.entry_of(&token);
            if pick(&token, entry) {
                // ORDERING: Relaxed: a report, written under the hold lock.
                entry.held.fetch_sub(1, Ordering::Relaxed);
                picked.push(token);
            } else {
                kept.push(token);
            }
        }
        *held = kept;
        // ORDERING: Relaxed: a report.
        self.holds.held_len.store(held.len(), Ordering::Relaxed);
        // Their hold slots are free again.
        self.give_back_hold_slots(&self.holds, picked.len());
        picked
    }

    /// The operation entry of the task under `token` (which the caller holds).
    fn entry_of(&self, token: &Token) -> &OpEntry {
        self.tokens
            .held(token)
            .with_job(|job| self.ops.of_task(job.meta()))
    }
}
