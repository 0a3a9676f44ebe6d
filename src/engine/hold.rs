//! Pause and hold: tokens admitted while their admission is paused (globally or per
//! operation) wait here, in one list under one lock, until a resume releases them, a kill
//! resolves them where they wait, or a shutdown releases them all.
//!
//! None of this adds a lock to the submit path while nothing is paused: submitters read one
//! flag of the runtime and one of the operation; only a paused submission takes the lock.

use super::op_table::OpEntry;
use super::Engine;
use crate::contain::drop_contained;
use crate::error::TaskError;
use crate::primitives::{Token, TokenState};
use crate::sync::{AtomicBool, AtomicUsize, Mutex, Ordering};
use crate::task::{Job, TaskId};

/// The global pause flag and the tokens held back by a pause.
pub(crate) struct Holds {
    paused: AtomicBool,
    /// Tokens admitted while their admission was paused (globally or per operation). Only
    /// touched when something is paused, so a lock is fine here.
    held: Mutex<Vec<Token>>,
    held_len: AtomicUsize,
}

impl Holds {
    pub(crate) fn new() -> Self {
        Self {
            paused: AtomicBool::new(false),
            held: Mutex::new(Vec::new()),
            held_len: AtomicUsize::new(0),
        }
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
    #[cold]
    pub(crate) fn hold(&self, token: Token) {
        let mut held = self.holds.held.lock().unwrap_or_else(|e| e.into_inner());
        let entry = self.entry_of(&token);
        // Closed: `close` has released (or is about to release, after this lock) what is held;
        // a token held now would never come home.
        if !self.is_closed() && (self.is_paused() || entry.is_paused()) {
            // ORDERING: Relaxed: a report, written under the hold lock.
            entry.held.fetch_add(1, Ordering::Relaxed);
            held.push(token);
            // ORDERING: Relaxed: a report.
            self.holds.held_len.store(held.len(), Ordering::Relaxed);
        } else {
            drop(held);
            self.dispatch(token);
        }
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
            job.abandon(TaskError::Killed, TokenState::Killed);
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
        picked
    }

    /// The operation entry of the task under `token` (which the caller holds).
    fn entry_of(&self, token: &Token) -> &OpEntry {
        self.tokens
            .held(token)
            .with_job(|job| self.ops.of_task(job.meta()))
    }
}
