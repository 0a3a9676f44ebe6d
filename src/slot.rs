//! The task slot: one allocation per task holding its closure going in and its outcome coming
//! out, driven by the state word of [`crate::token`].
//!
//! Exactly one thread runs or cancels the task (whoever wins the lifecycle CAS out of
//! `Admitted`); exactly one thread takes the outcome (whoever sets `TAKEN`); at most one joiner
//! at a time registers to be woken (whoever sets `REGISTERING`).
//!
//! ## Memory ordering
//!
//! - Outcome: the finisher writes the outcome cell, then sets `READY` with `Release` (in an
//!   `AcqRel` RMW); a joiner that sees `READY` with `Acquire` reads the outcome. So everything
//!   the task did happens before the join returns.
//! - Waiter: a joiner writes the waiter cell while it holds `REGISTERING`, then swaps
//!   `REGISTERING` for `WAITER_SET` with `Release`; the finisher's `AcqRel` RMW that sets
//!   `READY` reads `WAITER_SET` and so sees the waiter. Once `READY` is set no joiner can take
//!   `REGISTERING` again, so the finisher reads the cell alone.
//! - Closure: it is written before the slot is shared (an `Arc` or a mailbox hand-over
//!   publishes it) and taken by the single winner of the lifecycle CAS.

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::{PanicPayload, TaskError};
use crate::sync::{thread, AtomicU32, Backoff, Ordering, UnsafeCell};
use crate::token::{TokenState, LIFECYCLE, READY, REGISTERING, TAKEN, WAITER_SET};

/// What [`TaskSlot::register_waiter`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Registration {
    /// The waiter is registered: it will be unparked when the outcome is ready.
    Registered,
    /// The outcome is already ready: do not park.
    Ready,
    /// Another joiner is registering right now: poll instead.
    Contended,
}

/// A task's closure, state and outcome.
///
/// # Examples
///
/// ```
/// use tokengate::primitives::TaskSlot;
/// use tokengate::TokenState;
///
/// let slot = TaskSlot::new(|| 6 * 7);
/// assert_eq!(slot.state(), TokenState::Admitted);
/// assert!(slot.run());            // this thread won the right to run it
/// assert!(!slot.run());           // nobody runs it twice
/// assert!(!slot.cancel());        // too late to cancel
/// assert_eq!(slot.take_output().unwrap().unwrap(), 42);
/// assert!(slot.take_output().is_none()); // taken once
/// ```
pub struct TaskSlot<F, T> {
    state: AtomicU32,
    waiter: UnsafeCell<Option<thread::Thread>>,
    func: UnsafeCell<Option<F>>,
    output: UnsafeCell<Option<Result<T, TaskError>>>,
}

// SAFETY: the closure is moved to the one thread that wins the lifecycle CAS (needs `F: Send`);
// the outcome is moved to the one thread that sets `TAKEN` (needs `T: Send`); the waiter cell
// is handed over by the `REGISTERING`/`WAITER_SET`/`READY` protocol; no `&F` or `&T` is ever
// shared, so `Sync` bounds on them are not needed.
unsafe impl<F: Send, T: Send> Sync for TaskSlot<F, T> {}
// SAFETY: as above; the slot owns an `F`, a `T` and a `Thread`, all `Send`.
unsafe impl<F: Send, T: Send> Send for TaskSlot<F, T> {}

impl<F, T> TaskSlot<F, T>
where
    F: FnOnce() -> T,
{
    /// A slot holding `func`, in state `Admitted`.
    pub fn new(func: F) -> Self {
        Self {
            state: AtomicU32::new(TokenState::Admitted as u32),
            waiter: UnsafeCell::new(None),
            func: UnsafeCell::new(Some(func)),
            output: UnsafeCell::new(None),
        }
    }

    /// A slot that never runs: its outcome is `error`, in state `lifecycle`.
    pub fn resolved(error: TaskError, lifecycle: TokenState) -> Self {
        debug_assert!(lifecycle.is_terminal());
        Self {
            state: AtomicU32::new(lifecycle as u32 | READY),
            waiter: UnsafeCell::new(None),
            func: UnsafeCell::new(None),
            output: UnsafeCell::new(Some(Err(error))),
        }
    }

    /// The current lifecycle state.
    #[inline]
    pub fn state(&self) -> TokenState {
        // ORDERING: Relaxed: a report; `is_ready`/`take_output` synchronise.
        TokenState::from_word(self.state.load(Ordering::Relaxed))
    }

    /// Runs the closure here if nobody has run or cancelled it yet, catching a panic, then
    /// publishes the outcome and wakes the waiter. Returns whether this call ran it.
    pub fn run(&self) -> bool {
        if !self.transition(TokenState::Admitted, TokenState::Executing) {
            return false;
        }
        // SAFETY: winning Admitted → Executing makes this thread the only one to touch `func`.
        let func = self.func.with_mut(|f| unsafe { (*f).take() });
        let Some(func) = func else {
            unreachable!("an admitted task slot always holds its closure")
        };
        let (outcome, lifecycle) = match catch_unwind(AssertUnwindSafe(func)) {
            Ok(value) => (Ok(value), TokenState::Completed),
            Err(payload) => (
                Err(TaskError::Panicked(PanicPayload::new(payload))),
                TokenState::Failed,
            ),
        };
        self.publish(outcome, TokenState::Executing, lifecycle);
        true
    }

    /// Cancels the task if it has not started: it will never run and resolves
    /// [`TaskError::Killed`]. Returns `true` if the task will never run (also when it was
    /// already killed or timed out), `false` if it runs or ran.
    pub fn cancel(&self) -> bool {
        self.abandon(TaskError::Killed, TokenState::Killed)
    }

    /// Like [`cancel`](Self::cancel) with the outcome `error` and final state `lifecycle`
    /// (`Killed` or `TimedOut`).
    pub fn abandon(&self, error: TaskError, lifecycle: TokenState) -> bool {
        debug_assert!(matches!(
            lifecycle,
            TokenState::Killed | TokenState::TimedOut
        ));
        if self.transition(TokenState::Admitted, lifecycle) {
            // SAFETY: winning the CAS out of Admitted makes this thread the only one to touch
            // `func`; drop the closure unrun.
            drop(self.func.with_mut(|f| unsafe { (*f).take() }));
            self.publish(Err(error), lifecycle, lifecycle);
            return true;
        }
        matches!(self.state(), TokenState::Killed | TokenState::TimedOut)
    }

    /// CAS of the lifecycle bits from `from` to `to`, keeping the flag bits.
    fn transition(&self, from: TokenState, to: TokenState) -> bool {
        // ORDERING: Acquire on success: the winner owns the closure, published before the slot
        // was shared; Relaxed on failure: the loser touches nothing.
        self.state
            .fetch_update(Ordering::Acquire, Ordering::Relaxed, |word| {
                (word & LIFECYCLE == from as u32).then_some((word & !LIFECYCLE) | to as u32)
            })
            .is_ok()
    }

    /// Writes the outcome, moves the lifecycle from `from` to `to` and sets `READY`, then wakes
    /// the registered waiter. Only the winner of the lifecycle CAS calls this.
    fn publish(&self, outcome: Result<T, TaskError>, from: TokenState, to: TokenState) {
        // SAFETY: nobody reads `output` before `READY` is set, and only the winner of the
        // lifecycle CAS (us) writes it.
        self.output.with_mut(|o| unsafe { *o = Some(outcome) });
        let step = READY + (to as u32 - from as u32);
        // ORDERING: AcqRel: Release publishes the outcome to joiners that see READY; Acquire
        // sees the waiter cell written before WAITER_SET was set.
        let before = self.state.fetch_add(step, Ordering::AcqRel);
        debug_assert_eq!(before & (LIFECYCLE | READY), from as u32);
        if before & WAITER_SET != 0 {
            // SAFETY: WAITER_SET was set and READY is now set, so no joiner can take
            // REGISTERING again: we are the only one to touch the cell.
            let waiter = self.waiter.with_mut(|w| unsafe { (*w).take() });
            if let Some(thread) = waiter {
                thread.unpark();
            }
        }
    }

    /// Whether the outcome is ready (it may already have been taken).
    #[inline]
    pub fn is_ready(&self) -> bool {
        // ORDERING: Acquire pairs with the Release in `publish`: a caller that sees READY and
        // then takes the outcome sees it written.
        self.state.load(Ordering::Acquire) & READY != 0
    }

    /// Takes the outcome if it is ready and nobody took it yet.
    pub fn take_output(&self) -> Option<Result<T, TaskError>> {
        // ORDERING: Acquire pairs with the Release in `publish` (the outcome is written);
        // the CAS on TAKEN makes us the only taker.
        let claimed = self
            .state
            .fetch_update(Ordering::Acquire, Ordering::Acquire, |word| {
                (word & READY != 0 && word & TAKEN == 0).then_some(word | TAKEN)
            })
            .is_ok();
        if !claimed {
            return None;
        }
        // SAFETY: READY was set (the finisher is done with the cell) and we set TAKEN, which
        // nobody sets twice.
        self.output.with_mut(|o| unsafe { (*o).take() })
    }

    /// Registers the calling thread to be unparked when the outcome is ready.
    ///
    /// One thread is registered at a time: while another thread is, this returns
    /// [`Registration::Contended`] and leaves that registration alone (the caller polls).
    pub fn register_waiter(&self) -> Registration {
        let me = thread::current();
        if !self.lock_waiter() {
            return self.not_locked();
        }
        // SAFETY: we hold REGISTERING with WAITER_SET clear: the finisher does not read the
        // cell and no other joiner may touch it.
        let outcome = self.waiter.with_mut(|w| unsafe {
            match &*w {
                Some(other) if other.id() != me.id() => Registration::Contended,
                _ => {
                    *w = Some(me);
                    Registration::Registered
                }
            }
        });
        if self.unlock_waiter(true) {
            return Registration::Ready;
        }
        outcome
    }

    /// Withdraws the calling thread's registration, if it is the registered one (a waiter
    /// that stops waiting, e.g. on a timeout, so that other threads may register).
    pub fn unregister_waiter(&self) {
        let me = thread::current();
        if !self.lock_waiter() {
            return;
        }
        // SAFETY: as in `register_waiter`.
        let still_registered = self.waiter.with_mut(|w| unsafe {
            if (*w).as_ref().is_some_and(|t| t.id() == me.id()) {
                *w = None;
                false
            } else {
                (*w).is_some()
            }
        });
        self.unlock_waiter(still_registered);
    }

    /// Takes REGISTERING, clearing WAITER_SET so that the finisher leaves the waiter cell
    /// alone; `false` if the outcome is ready or another joiner holds it.
    fn lock_waiter(&self) -> bool {
        // ORDERING: Acquire on success: the previous registrant's cell write (before its
        // Release in `unlock_waiter`) happens before our read of the cell.
        self.state
            .fetch_update(Ordering::Acquire, Ordering::Acquire, |word| {
                (word & (READY | REGISTERING) == 0).then_some((word & !WAITER_SET) | REGISTERING)
            })
            .is_ok()
    }

    /// Why `lock_waiter` failed.
    fn not_locked(&self) -> Registration {
        if self.is_ready() {
            Registration::Ready
        } else {
            Registration::Contended
        }
    }

    /// Releases REGISTERING, setting WAITER_SET if the cell holds a waiter. Returns whether the
    /// outcome became ready meanwhile; then the finisher, which saw WAITER_SET clear, woke
    /// nobody, so we wake the registered waiter ourselves.
    fn unlock_waiter(&self, waiter_in_cell: bool) -> bool {
        let flip = if waiter_in_cell {
            REGISTERING | WAITER_SET
        } else {
            REGISTERING
        };
        // ORDERING: AcqRel: Release publishes the cell to the finisher's AcqRel RMW; Acquire
        // (when READY is already set) makes the outcome and the cell ours to read.
        let before = self.state.fetch_xor(flip, Ordering::AcqRel);
        if before & READY == 0 {
            return false;
        }
        // SAFETY: READY is set, so nobody can take REGISTERING again, and the finisher has
        // already decided not to touch the cell (it saw WAITER_SET clear).
        let waiter = self.waiter.with_mut(|w| unsafe { (*w).take() });
        if let Some(t) = waiter {
            if t.id() != thread::current().id() {
                t.unpark();
            }
        }
        true
    }

    /// Blocks the calling thread until the outcome is ready: spins briefly, yields, then
    /// registers and parks (a short task's outcome usually arrives before the park).
    pub fn wait(&self) {
        let mut backoff = Backoff::new();
        while backoff.snooze() {
            if self.is_ready() {
                return;
            }
        }
        while !self.is_ready() {
            match self.register_waiter() {
                Registration::Ready => return,
                Registration::Registered => thread::park(),
                Registration::Contended => {
                    thread::park_timeout(std::time::Duration::from_micros(50))
                }
            }
        }
    }
}

impl<F, T> fmt::Debug for TaskSlot<F, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // ORDERING: Relaxed: a report.
        let word = self.state.load(Ordering::Relaxed);
        f.debug_struct("TaskSlot")
            .field("state", &TokenState::from_word(word))
            .field("ready", &(word & READY != 0))
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn smoke() {
        let slot = TaskSlot::new(|| 1);
        assert!(slot.run());
        assert_eq!(slot.state(), TokenState::Completed);
        assert_eq!(slot.take_output().unwrap().unwrap(), 1);
    }

    #[test]
    fn a_panic_is_an_outcome() {
        let slot = TaskSlot::new(|| -> u8 { panic!("boom") });
        assert!(slot.run());
        assert_eq!(slot.state(), TokenState::Failed);
        match slot.take_output() {
            Some(Err(TaskError::Panicked(p))) => assert_eq!(p.message(), "boom"),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn cancel_drops_the_closure_unrun() {
        let guard = Arc::new(());
        let g = guard.clone();
        let slot = TaskSlot::new(move || drop(g));
        assert!(slot.cancel());
        assert!(slot.cancel(), "a killed task still will never run");
        assert_eq!(Arc::strong_count(&guard), 1);
        assert!(!slot.run());
        assert!(matches!(slot.take_output(), Some(Err(TaskError::Killed))));
    }

    #[test]
    fn a_waiter_is_woken() {
        let slot = Arc::new(TaskSlot::new(|| 5));
        let s = slot.clone();
        let runner = std::thread::spawn(move || {
            std::thread::yield_now();
            s.run()
        });
        slot.wait();
        assert_eq!(slot.take_output().unwrap().unwrap(), 5);
        assert!(runner.join().unwrap());
    }
}
