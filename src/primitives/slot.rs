//! The task slot: one place per task holding its closure going in and its outcome coming
//! out, driven by the state word of `state.rs`.
//!
//! Exactly one thread runs or cancels the task (whoever wins the lifecycle CAS out of
//! `Admitted`); exactly one thread takes the outcome (whoever sets `TAKEN`); at most one joiner
//! at a time registers to be woken (whoever sets `REGISTERING`).
//!
//! ## Waiters: threads and wakers
//!
//! The waiter cell holds at most one `Waiter`: a thread blocked in [`TaskSlot::wait`] (or a
//! worker joining the task), or the [`Waker`] of the async task that last polled the slot as a
//! future ([`TaskSlot::poll_output`]). The finisher wakes either the same way, after `READY`
//! is set and with no flag held, so a waker's own code never runs inside the protocol.
//!
//! A slot serves one handle, so one future: a waker replaces a previously registered waker
//! (the future moved to another async task; the old waker is dropped unwoken, as futures
//! allow). A thread replaces a registered waker too (a handle joined after it was polled), and
//! wakes it: a spurious wake-up costs an executor one poll, and a future polled from
//! elsewhere meanwhile must not lose its wake-up. Neither replaces another thread's
//! registration: that caller gets [`Registration::Contended`], and a poll then wakes its own
//! waker at once so that its executor polls again.
//!
//! | cell \ caller | thread `t` registers | waker `w` registers |
//! | --- | --- | --- |
//! | empty | `t` | `w` |
//! | the caller's own thread | `t` | `w` (that thread is polling, so it is not parked) |
//! | another thread | `Contended` | `Contended`, then `w.wake_by_ref()` |
//! | waker `v` | `t`; `v` woken | `v` if `v.will_wake(w)`, else `w`; `v` dropped |
//!
//! ## Memory ordering
//!
//! - Outcome: the finisher writes the outcome cell, then sets `READY` with `Release` (in an
//!   `AcqRel` RMW); a joiner or poller that sees `READY` with `Acquire` reads the outcome. So
//!   everything the task did happens before the join returns or the poll returns `Ready`.
//! - Waiter: a joiner or poller writes the waiter cell while it holds `REGISTERING`, then
//!   swaps `REGISTERING` for `WAITER_SET` with `Release`; the finisher's `AcqRel` RMW that
//!   sets `READY` reads `WAITER_SET` and so sees the waiter (a `Thread` or a `Waker`). Once
//!   `READY` is set no joiner can take `REGISTERING` again, so the finisher reads the cell
//!   alone. A registrant whose release of `REGISTERING` finds `READY` already set (the
//!   finisher saw `WAITER_SET` clear and woke nobody) takes the cell itself; that RMW is
//!   `AcqRel`, so it also acquires the outcome. Either the finisher's RMW or the registrant's
//!   comes first in the state word's order, so exactly one of them wakes the waiter: no
//!   wake-up is lost, none is doubled.
//! - Detach: the handle's `fetch_or` of `DETACHED` and the finisher's RMW that sets `READY`
//!   are ordered in the state word; whichever comes second sees the other's bit and drops the
//!   outcome (the handle after `READY`, the finisher after `DETACHED`), so a detached outcome
//!   is dropped exactly once and as soon as it exists, never left in the slot (except a value
//!   with no drop glue, which the finisher leaves where it is: its drop would do nothing).
//! - Closure: it is written before the slot is shared (an `Arc` or a mailbox hand-over
//!   publishes it) and taken by the single winner of the lifecycle CAS, which is `Relaxed`:
//!   the edge that shared the slot already orders the write before any taker (a loom model
//!   cannot make the CAS's ordering matter, which is why weakening it to `Relaxed` passed
//!   them all; it was redundant, and now says so).

use std::fmt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::task::{Context, Poll, Waker};

use super::state::{
    NeverRan, TokenState, DETACHED, LIFECYCLE, READY, REGISTERING, TAKEN, WAITER_SET,
};
use crate::error::{PanicPayload, TaskError};
use crate::sync::{thread, AtomicU32, Backoff, Ordering, UnsafeCell};

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

/// Who is woken when the outcome is ready.
enum Waiter {
    /// A thread blocked in `wait` (or a worker joining the task): unparked.
    Thread(thread::Thread),
    /// The waker of the async task that last polled the slot: woken.
    Waker(Waker),
}

impl Waiter {
    /// Wakes it. Callers hold no flag of the state word: a waker runs its executor's code.
    ///
    /// A waker that panics has a bug of its executor's; the caller is often the worker that
    /// just finished the task, which must not go down for it (the outcome is published
    /// already). The panic is caught here, after the panic hook reported it. Not under loom,
    /// which reports what it finds by panicking: a model must fail, whatever code it was in.
    fn wake(self) {
        match self {
            Waiter::Thread(thread) => thread.unpark(),
            Waiter::Waker(waker) if cfg!(loom) => waker.wake(),
            Waiter::Waker(waker) => {
                let _ = catch_unwind(AssertUnwindSafe(|| waker.wake()));
            }
        }
    }

    /// Whether it is the thread `id`.
    fn is_thread(&self, id: thread::ThreadId) -> bool {
        matches!(self, Waiter::Thread(t) if t.id() == id)
    }
}

/// Who asks to be woken: the calling thread, or the waker of a poll.
enum Candidate<'a> {
    Thread(thread::Thread),
    Waker(&'a Waker),
}

impl Candidate<'_> {
    /// The waiter the cell keeps for it (a waker is cloned).
    fn into_waiter(self) -> Waiter {
        match self {
            Candidate::Thread(t) => Waiter::Thread(t),
            Candidate::Waker(w) => Waiter::Waker(w.clone()),
        }
    }
}

/// What [`TaskSlot::unlock_waiter`] found.
enum Unlocked {
    /// The outcome is not ready: the finisher will wake whoever the cell holds.
    Pending,
    /// The outcome became ready while we held `REGISTERING`: the finisher saw `WAITER_SET`
    /// clear and woke nobody. This is what the cell held, ours to wake or drop.
    Ready(Option<Waiter>),
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
///
/// The slot is also a future's core ([`poll_output`](Self::poll_output)):
///
/// ```
/// use std::sync::Arc;
/// use std::task::{Context, Poll, Wake, Waker};
/// use tokengate::primitives::TaskSlot;
///
/// struct Noop;
/// impl Wake for Noop {
///     fn wake(self: Arc<Self>) {}
/// }
///
/// let slot = TaskSlot::new(|| "done");
/// let waker = Waker::from(Arc::new(Noop));
/// let mut cx = Context::from_waker(&waker);
/// assert!(slot.poll_output(&mut cx).is_pending()); // registers the waker
/// assert!(slot.run());                              // ... which this wakes
/// assert_eq!(slot.poll_output(&mut cx), Poll::Ready(Ok("done")));
/// ```
pub struct TaskSlot<F, T> {
    state: AtomicU32,
    waiter: UnsafeCell<Option<Waiter>>,
    func: UnsafeCell<Option<F>>,
    output: UnsafeCell<Option<Result<T, TaskError>>>,
}

// SAFETY: the closure is moved to the one thread that wins the lifecycle CAS (needs `F: Send`);
// the outcome is moved to the one thread that sets `TAKEN` (needs `T: Send`); the waiter cell
// is handed over by the `REGISTERING`/`WAITER_SET`/`READY` protocol; no `&F` or `&T` is ever
// shared, so `Sync` bounds on them are not needed.
unsafe impl<F: Send, T: Send> Sync for TaskSlot<F, T> {}
// SAFETY: as above; the slot owns an `F`, a `T`, and a `Thread` or a `Waker` (both `Send`).
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

    /// Writes at `place` a slot holding `func`, as [`new`](Self::new) makes it, field by
    /// field: built where it will live rather than built and then moved there.
    ///
    /// # Safety
    ///
    /// `place` is valid for writes of a `Self` and aligned for it; what it held before is
    /// not dropped.
    #[inline(always)]
    pub(crate) unsafe fn write_new(place: *mut Self, func: F) {
        // SAFETY: forwarded from the caller; each field is written once, in place.
        unsafe {
            std::ptr::addr_of_mut!((*place).state)
                .write(AtomicU32::new(TokenState::Admitted as u32));
            std::ptr::addr_of_mut!((*place).waiter).write(UnsafeCell::new(None));
            std::ptr::addr_of_mut!((*place).func).write(UnsafeCell::new(Some(func)));
            std::ptr::addr_of_mut!((*place).output).write(UnsafeCell::new(None));
        }
    }

    /// A slot that never runs: its outcome is `error`, in state `lifecycle`.
    ///
    /// `lifecycle` is a [`NeverRan`], so a slot cannot be made "resolved" in a state from
    /// which it could still be run or cancelled (that would hand out its outcome twice):
    ///
    /// ```compile_fail
    /// use tokengate::primitives::TaskSlot;
    /// use tokengate::{TaskError, TokenState};
    ///
    /// let slot = TaskSlot::<fn() -> u8, u8>::resolved(TaskError::Killed, TokenState::Admitted);
    /// ```
    ///
    /// # Examples
    ///
    /// ```
    /// use tokengate::primitives::{NeverRan, TaskSlot};
    /// use tokengate::{TaskError, TokenState};
    ///
    /// let slot = TaskSlot::<fn() -> u8, u8>::resolved(TaskError::ShutDown, NeverRan::Killed);
    /// assert_eq!(slot.state(), TokenState::Killed);
    /// assert!(slot.cancel() && !slot.run());
    /// assert_eq!(slot.take_output(), Some(Err(TaskError::ShutDown)));
    /// ```
    pub fn resolved(error: TaskError, lifecycle: NeverRan) -> Self {
        let lifecycle = TokenState::from(lifecycle);
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
        self.run_then(|_| {})
    }

    /// [`run`](Self::run), calling `before_publish` with the final state after the closure
    /// returned (or panicked) and before the outcome is published, so that whatever it
    /// records happens before any joiner sees the outcome.
    pub fn run_then(&self, before_publish: impl FnOnce(TokenState)) -> bool {
        let Some((outcome, lifecycle)) = self.claim_and_call() else {
            return false;
        };
        before_publish(lifecycle);
        self.write_outcome(outcome);
        self.publish(TokenState::Executing, lifecycle);
        true
    }

    /// [`run_then`](Self::run_then) for the outcome's one taker (the handle's owner, joining
    /// the task on the thread that runs it): runs the closure here if nobody has run or
    /// cancelled it yet and returns its outcome, marked taken, instead of writing it into the
    /// slot for [`take_output`](Self::take_output) to read back. `None` if this call did not
    /// run it (its outcome, when it comes, is in the slot as usual).
    ///
    /// A registered waiter (a future polled before the join) is woken as by
    /// [`run`](Self::run). Safe whoever calls it: the outcome is marked taken in the same RMW
    /// that sets `READY`, so a `take_output` or a `detach` racing it finds nothing to take.
    /// Everything the closure did happens before a waiter that sees the slot ready returns,
    /// as after `run`. (`loom-tests/tests/slot.rs` models it against a parked waiter; its
    /// mutant `run_and_take_relaxed` publishes without ordering, and loom must catch it.)
    ///
    /// # Examples
    ///
    /// ```
    /// use tokengate::primitives::TaskSlot;
    /// use tokengate::TokenState;
    ///
    /// let slot = TaskSlot::new(|| 6 * 7);
    /// assert_eq!(slot.run_and_take(|_| {}), Some(Ok(42)));
    /// assert_eq!(slot.state(), TokenState::Completed);
    /// assert!(slot.is_ready());
    /// assert_eq!(slot.take_output(), None); // handed out already
    /// assert_eq!(slot.run_and_take(|_| {}), None); // it ran
    /// ```
    #[inline]
    pub fn run_and_take(
        &self,
        before_publish: impl FnOnce(TokenState),
    ) -> Option<Result<T, TaskError>> {
        let (outcome, lifecycle) = self.claim_and_call()?;
        before_publish(lifecycle);
        let step = READY + TAKEN + (lifecycle as u32 - TokenState::Executing as u32);
        // ORDERING: AcqRel, as in `publish`: Acquire sees the waiter cell written before
        // WAITER_SET was set; Release orders what the task did before READY for whoever reads
        // the state (no outcome is left to read: TAKEN is set with it).
        #[cfg(not(tokengate_mutant = "run_and_take_relaxed"))]
        let before = self.state.fetch_add(step, Ordering::AcqRel);
        #[cfg(tokengate_mutant = "run_and_take_relaxed")]
        let before = self.state.fetch_add(step, Ordering::Relaxed);
        debug_assert_eq!(
            before & (LIFECYCLE | READY | TAKEN),
            TokenState::Executing as u32
        );
        if before & WAITER_SET != 0 {
            // SAFETY: as in `publish`: WAITER_SET and now READY are set, so the cell is ours.
            let waiter = self.waiter.with_mut(|w| unsafe { (*w).take() });
            if let Some(waiter) = waiter {
                waiter.wake();
            }
        }
        Some(outcome)
    }

    /// Wins the lifecycle CAS out of `Admitted` for a run (else `None`), takes the closure and
    /// calls it, catching a panic: its outcome and the final state to publish.
    #[inline]
    fn claim_and_call(&self) -> Option<(Result<T, TaskError>, TokenState)> {
        if !self.transition(TokenState::Admitted, TokenState::Executing) {
            return None;
        }
        // SAFETY: winning Admitted → Executing makes this thread the only one to touch `func`.
        let func = self.func.with_mut(|f| unsafe { (*f).take() });
        let Some(func) = func else {
            unreachable!("an admitted task slot always holds its closure")
        };
        Some(match catch_unwind(AssertUnwindSafe(func)) {
            Ok(value) => (Ok(value), TokenState::Completed),
            Err(payload) => (
                Err(TaskError::Panicked(PanicPayload::new(payload))),
                TokenState::Failed,
            ),
        })
    }

    /// Whether the slot holds nothing that a drop would drop: no closure, no outcome (or a
    /// value with no drop glue), no waiter (its task ran and its outcome was taken, say). Its
    /// last owner skips the drop then, and with it the cost of containing a panic that
    /// cannot come.
    #[inline]
    pub(crate) fn is_spent(&mut self) -> bool {
        // SAFETY: `&mut self`: nobody else touches the cells.
        unsafe {
            self.func.with(|f| (*f).is_none())
                && self.output.with(|o| match &*o {
                    None => true,
                    // A value with no drop glue: dropping it does nothing.
                    Some(Ok(_)) => !std::mem::needs_drop::<T>(),
                    Some(Err(_)) => false,
                })
                && self.waiter.with(|w| (*w).is_none())
        }
    }

    /// Cancels the task if it has not started: it will never run and resolves
    /// [`TaskError::Killed`]. Returns `true` if the task will never run (also when it was
    /// already killed or timed out), `false` if it runs or ran.
    pub fn cancel(&self) -> bool {
        self.abandon(TaskError::Killed, NeverRan::Killed)
    }

    /// Like [`cancel`](Self::cancel) with the outcome `error` and final state `lifecycle`
    /// (`Killed` or `TimedOut`: a [`NeverRan`], so a state that would let the closure be taken
    /// twice, such as `Admitted`, cannot be passed).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokengate::primitives::{NeverRan, TaskSlot};
    /// use tokengate::{TaskError, TokenState};
    ///
    /// let slot = TaskSlot::new(|| 1);
    /// assert!(slot.abandon(TaskError::TimedOut, NeverRan::TimedOut));
    /// assert_eq!(slot.state(), TokenState::TimedOut);
    /// assert!(!slot.run());
    /// ```
    ///
    /// ```compile_fail
    /// use tokengate::primitives::TaskSlot;
    /// use tokengate::{TaskError, TokenState};
    ///
    /// let slot = TaskSlot::new(|| 1);
    /// slot.abandon(TaskError::Killed, TokenState::Admitted);
    /// ```
    pub fn abandon(&self, error: TaskError, lifecycle: NeverRan) -> bool {
        let lifecycle = TokenState::from(lifecycle);
        if self.transition(TokenState::Admitted, lifecycle) {
            // SAFETY: winning the CAS out of Admitted makes this thread the only one to touch
            // `func`.
            let func = self.func.with_mut(|f| unsafe { (*f).take() });
            // Drop the closure unrun. Its captures' `Drop` is user code that may panic: the
            // panic is contained (the hook reported it), so the outcome is still published and
            // whoever abandons (a worker, `cancel`, a shutdown) goes on.
            crate::contain::drop_contained(func);
            self.write_outcome(Err(error));
            self.publish(lifecycle, lifecycle);
            return true;
        }
        matches!(self.state(), TokenState::Killed | TokenState::TimedOut)
    }

    /// CAS of the lifecycle bits from `from` to `to`, keeping the flag bits.
    fn transition(&self, from: TokenState, to: TokenState) -> bool {
        // ORDERING: Relaxed. The winner takes the closure, which was written when the slot was
        // created, before it could be shared: whatever made the slot reachable from another
        // thread (an `Arc` sent to it, a mailbox hand-over of the token under which the
        // runtime stores it, a thread spawn) is a Release/Acquire edge after that write, so
        // the closure is visible to every thread that can call this. The CAS itself only
        // decides who wins (one modification order); the loser touches nothing. Nothing else
        // is written before the slot is shared, so there is nothing else to acquire.
        self.state
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |word| {
                (word & LIFECYCLE == from as u32).then_some((word & !LIFECYCLE) | to as u32)
            })
            .is_ok()
    }

    /// Writes the outcome into its cell. Only the winner of the lifecycle CAS calls this,
    /// before [`publish`](Self::publish).
    ///
    /// A function of its own that returns before the outcome is published: a value passed to
    /// a function keeps its borrows protected until that function returns, and once `READY`
    /// is set a joiner may take the outcome, drop it and free what it borrowed (a scope's or a
    /// broadcast's borrowed data) while the publisher still runs. Publishing from the
    /// function that received the outcome would keep a borrow alive past that free (miri's
    /// borrow model reports exactly that).
    fn write_outcome(&self, outcome: Result<T, TaskError>) {
        // SAFETY: nobody reads `output` before `READY` is set, and only the winner of the
        // lifecycle CAS (us) writes it.
        self.output.with_mut(|o| unsafe { *o = Some(outcome) });
    }

    /// Moves the lifecycle from `from` to `to` and sets `READY` over the outcome
    /// [`write_outcome`](Self::write_outcome) wrote, then wakes the registered waiter. Only
    /// the winner of the lifecycle CAS calls this.
    fn publish(&self, from: TokenState, to: TokenState) {
        let step = READY + (to as u32 - from as u32);
        // ORDERING: AcqRel: Release publishes the outcome to joiners that see READY; Acquire
        // sees the waiter cell written before WAITER_SET was set.
        let before = self.state.fetch_add(step, Ordering::AcqRel);
        debug_assert_eq!(before & (LIFECYCLE | READY), from as u32);
        if before & WAITER_SET != 0 {
            // SAFETY: WAITER_SET was set and READY is now set, so no joiner can take
            // REGISTERING again: we are the only one to touch the cell.
            let waiter = self.waiter.with_mut(|w| unsafe { (*w).take() });
            // No flag is held: the waker's code runs outside the protocol.
            if let Some(waiter) = waiter {
                waiter.wake();
            }
        }
        // A value with nothing to drop (a task returning `()`, say) is left where it is: its
        // drop would do nothing, now or when the slot goes.
        let nothing_to_drop = to == TokenState::Completed && !std::mem::needs_drop::<T>();
        if before & DETACHED != 0 && !nothing_to_drop {
            // The handle is gone and saw no outcome: it is ours to drop (module docs). Its
            // `Drop` is user code; the finisher (often a worker) goes on if it panics.
            self.drop_outcome_in_place(true);
        }
    }

    /// Drops the outcome where it lies, if it is ready and nobody took it; a panic of its
    /// `Drop` is contained (`contain`) or passed on once the cell is emptied.
    ///
    /// In place, not moved out and dropped by value: an outcome's drop can end what lets
    /// another thread free what the outcome borrowed (a scope's task output signals its
    /// scope as it drops), and a value passed to a function keeps its borrows protected
    /// until that function returns, after the other thread may have freed them (miri's
    /// borrow model reports exactly that).
    fn drop_outcome_in_place(&self, contain: bool) {
        if !self.claim_outcome() {
            return;
        }
        self.output.with_mut(|place| {
            // SAFETY: READY is set and we set TAKEN: the cell is ours alone (see
            // `take_output`). After the drop, caught or not, the place is rewritten without
            // a drop, so nothing is dropped twice.
            // SAFETY: as above.
            let dropped = unsafe { crate::contain::drop_in_place_caught(place) };
            // SAFETY: as above.
            unsafe { std::ptr::write(place, None) };
            match dropped {
                Ok(()) => {}
                Err(payload) if contain => crate::contain::forget_payload(payload),
                Err(payload) => std::panic::resume_unwind(payload),
            }
        });
    }

    /// Whether [`detach`](Self::detach) was called (a hint for the finisher: a handle may be
    /// dropped any time).
    #[inline]
    pub fn is_detached(&self) -> bool {
        // ORDERING: Relaxed: a hint; `publish` decides by its own RMW.
        self.state.load(Ordering::Relaxed) & DETACHED != 0
    }

    /// Tells the slot that nobody will take the outcome (the handle was dropped unjoined): the
    /// outcome is dropped as soon as it exists, by this call if it is ready, else by the
    /// thread that publishes it (contained there); a completed value with no drop glue is
    /// left where it is instead (its drop would do nothing), so a `take_output` after a
    /// `detach`, against the rule, may still find it. Call at most once, instead of taking it.
    pub fn detach(&self) {
        // ORDERING: AcqRel: Acquire sees the outcome if READY is set (we then take it);
        // Release is not needed by the finisher (it reads no data of ours) but the RMW is one
        // total order with `publish`'s (module docs).
        let before = self.state.fetch_or(DETACHED, Ordering::AcqRel);
        if before & READY != 0 {
            // On the caller's thread, as when it held the last reference: a panic of the
            // outcome's `Drop` is the caller's.
            self.drop_outcome_in_place(false);
        }
    }

    /// Whether the outcome is ready (it may already have been taken).
    #[inline]
    pub fn is_ready(&self) -> bool {
        // ORDERING: Acquire pairs with the Release in `publish`: a caller that sees READY and
        // then takes the outcome sees it written.
        self.state.load(Ordering::Acquire) & READY != 0
    }

    /// Sets TAKEN if the outcome is ready and nobody took it yet; returns whether it did, so
    /// that the caller alone may touch the outcome cell.
    fn claim_outcome(&self) -> bool {
        // ORDERING: Acquire pairs with the Release in `publish` (the outcome is written);
        // the CAS on TAKEN makes us the only taker.
        self.state
            .fetch_update(Ordering::Acquire, Ordering::Acquire, |word| {
                (word & READY != 0 && word & TAKEN == 0).then_some(word | TAKEN)
            })
            .is_ok()
    }

    /// Takes the outcome if it is ready and nobody took it yet.
    pub fn take_output(&self) -> Option<Result<T, TaskError>> {
        if !self.claim_outcome() {
            return None;
        }
        // SAFETY: READY was set (the finisher is done with the cell) and we set TAKEN, which
        // nobody sets twice.
        self.output.with_mut(|o| unsafe { (*o).take() })
    }

    /// Registers the calling thread to be unparked when the outcome is ready.
    ///
    /// One thread is registered at a time: while another thread is, this returns
    /// [`Registration::Contended`] and leaves that registration alone (the caller polls). A
    /// registered waker is replaced and woken (see the module docs).
    pub fn register_waiter(&self) -> Registration {
        self.register(Candidate::Thread(thread::current()))
    }

    /// Withdraws the calling thread's registration, if it is the registered one (a waiter
    /// that stops waiting, e.g. on a timeout, so that other threads may register).
    ///
    /// Gives up when another joiner holds `REGISTERING`: the registration then stays, and
    /// costs its thread at most a spurious unpark.
    pub fn unregister_waiter(&self) {
        let me = thread::current().id();
        self.withdraw(|w| matches!(w, Waiter::Thread(t) if t.id() == me));
    }

    /// Polls the slot as a future: takes the outcome if it is ready, else registers the
    /// context's waker to be woken when it is.
    ///
    /// - Ready and not yet taken: takes it, `Poll::Ready`.
    /// - Not ready: the waker is registered (replacing a waker of an earlier poll unless
    ///   [`Waker::will_wake`] says it is the same) and `Poll::Pending` returned; releasing the
    ///   registration re-checks readiness in the same atomic step, so an outcome published
    ///   meanwhile is taken now (`Poll::Ready`) rather than lost.
    /// - Another thread is registered (one blocked in [`wait`](Self::wait)): the waker is woken
    ///   at once (`wake_by_ref`) and `Poll::Pending` returned, so the executor polls again.
    ///
    /// The slot serves one future: a poll replaces the waker of any earlier poll, from
    /// whichever thread, so two futures polling one slot would steal each other's wake-ups.
    ///
    /// # Panics
    ///
    /// If the outcome was already taken (by an earlier `Ready` poll or by
    /// [`take_output`](Self::take_output)), like a future polled after completion.
    ///
    /// A compromise: the waker is cloned while the registration flag is held; a `Waker`
    /// whose clone panics leaves the flag set. The outcome still arrives (joiners then see
    /// [`Registration::Contended`] and poll), but no waiter is woken for this slot again.
    pub fn poll_output(&self, cx: &mut Context<'_>) -> Poll<Result<T, TaskError>> {
        if !self.is_ready() {
            match self.register(Candidate::Waker(cx.waker())) {
                Registration::Registered => return Poll::Pending,
                Registration::Contended => {
                    cx.waker().wake_by_ref();
                    return Poll::Pending;
                }
                Registration::Ready => {}
            }
        }
        match self.take_output() {
            Some(outcome) => Poll::Ready(outcome),
            None => panic!("TaskSlot polled after its outcome was taken"),
        }
    }

    /// Withdraws a registered waker, if any (a future dropped before its outcome arrived),
    /// so that the waker is dropped now rather than when the task finishes. A registered
    /// thread is left alone; when the outcome is ready or another joiner holds
    /// `REGISTERING` this does nothing (the waker is then dropped by the finisher, or with
    /// the slot).
    pub fn unregister_waker(&self) {
        self.withdraw(|w| matches!(w, Waiter::Waker(_)));
    }

    /// Registers `candidate` as the table of the module docs says: it replaces what the cell
    /// holds, except another thread (`Contended`) and a waker that wakes the same task as the
    /// candidate waker (kept). A waker replaced by a thread is woken (its future may be
    /// polled elsewhere meanwhile and must not lose its wake-up); anything else replaced (a
    /// waker replaced by a newer one, the caller's own thread) is dropped.
    fn register(&self, candidate: Candidate<'_>) -> Registration {
        let (me, by_thread) = match &candidate {
            Candidate::Thread(t) => (t.id(), true),
            Candidate::Waker(_) => (thread::current().id(), false),
        };
        let edited = self.edit_waiter(|cell| {
            let kept = match &*cell {
                Some(Waiter::Thread(t)) if t.id() != me => Some(Registration::Contended),
                Some(Waiter::Waker(old)) => match &candidate {
                    Candidate::Waker(new) if old.will_wake(new) => Some(Registration::Registered),
                    _ => None,
                },
                _ => None,
            };
            match kept {
                Some(registration) => (registration, None),
                None => (
                    Registration::Registered,
                    cell.replace(candidate.into_waiter()),
                ),
            }
        });
        let Some(((registration, replaced), unlocked)) = edited else {
            return self.not_locked();
        };
        // With no flag held: the waker's code runs outside the protocol.
        match replaced {
            Some(waker @ Waiter::Waker(_)) if by_thread => waker.wake(),
            replaced => drop(replaced),
        }
        match unlocked {
            Unlocked::Pending => registration,
            Unlocked::Ready(waiter) => {
                // The cell holds the candidate (a thread that is running, or the waker of a
                // poll about to take the outcome: dropped unwoken) or, contended, another
                // thread, which the finisher skipped.
                if let Some(other @ Waiter::Thread(_)) = waiter.filter(|w| !w.is_thread(me)) {
                    other.wake();
                }
                Registration::Ready
            }
        }
    }

    /// Takes the waiter that `mine` recognises out of the cell, if it is there, and drops it.
    /// Does nothing when the outcome is ready or another joiner holds `REGISTERING`.
    fn withdraw(&self, mine: impl FnOnce(&Waiter) -> bool) {
        let edited = self.edit_waiter(|cell| {
            if cell.as_ref().is_some_and(mine) {
                cell.take()
            } else {
                None
            }
        });
        let Some((removed, unlocked)) = edited else {
            return;
        };
        drop(removed);
        if let Unlocked::Ready(Some(other)) = unlocked {
            other.wake();
        }
    }

    /// The one way into the waiter cell for joiners and pollers: takes `REGISTERING` (see
    /// [`lock_waiter`](Self::lock_waiter)), runs `edit` on the cell, and releases the flag,
    /// setting `WAITER_SET` if the cell then holds a waiter (see
    /// [`unlock_waiter`](Self::unlock_waiter)). `None`, without running `edit`, if the flag
    /// could not be taken. `edit` runs with the flag held, so it must not wake or drop a
    /// waiter (that is executor code): it returns what it takes out, for the caller to wake
    /// or drop after the release.
    fn edit_waiter<R>(&self, edit: impl FnOnce(&mut Option<Waiter>) -> R) -> Option<(R, Unlocked)> {
        if !self.lock_waiter() {
            return None;
        }
        let (result, occupied) = self.waiter.with_mut(|w| {
            // SAFETY: we hold REGISTERING with WAITER_SET clear: the finisher does not read
            // the cell and no other joiner may touch it.
            let cell = unsafe { &mut *w };
            let result = edit(cell);
            (result, cell.is_some())
        });
        Some((result, self.unlock_waiter(occupied)))
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

    /// Releases REGISTERING, setting WAITER_SET if the cell holds a waiter. If the outcome
    /// became ready meanwhile, the finisher (which saw WAITER_SET clear) woke nobody: the
    /// cell's waiter is taken out and handed to the caller to wake or drop.
    fn unlock_waiter(&self, waiter_in_cell: bool) -> Unlocked {
        let flip = if waiter_in_cell {
            REGISTERING | WAITER_SET
        } else {
            REGISTERING
        };
        // ORDERING: AcqRel: Release publishes the cell to the finisher's AcqRel RMW; Acquire
        // (when READY is already set) makes the outcome and the cell ours to read.
        let before = self.state.fetch_xor(flip, Ordering::AcqRel);
        if before & READY == 0 {
            return Unlocked::Pending;
        }
        // SAFETY: READY is set, so nobody can take REGISTERING again, and the finisher has
        // already decided not to touch the cell (it saw WAITER_SET clear).
        Unlocked::Ready(self.waiter.with_mut(|w| unsafe { (*w).take() }))
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

    /// `run_and_take` hands the outcome to its caller alone, wakes a thread parked on the
    /// slot, and leaves nothing for a later take, detach, cancel or run; its output is
    /// dropped once, by whoever holds it.
    #[test]
    fn run_and_take_keeps_the_outcome_and_wakes_a_waiter() {
        let guard = Arc::new(());
        let g = guard.clone();
        let slot = Arc::new(TaskSlot::new(move || g));
        let waiter = {
            let slot = slot.clone();
            std::thread::spawn(move || {
                slot.wait();
                slot.take_output().is_none()
            })
        };
        let mut seen = None;
        let output = slot.run_and_take(|state| seen = Some(state));
        assert_eq!(seen, Some(TokenState::Completed));
        assert!(waiter.join().unwrap(), "the waiter took the outcome too");
        assert_eq!(slot.state(), TokenState::Completed);
        slot.detach(); // nothing left to drop
        assert!(slot.take_output().is_none());
        assert!(!slot.cancel() && !slot.run());
        assert!(slot.run_and_take(|_| {}).is_none());
        assert_eq!(Arc::strong_count(&guard), 2);
        drop(output);
        assert_eq!(Arc::strong_count(&guard), 1);
        drop(slot);
    }

    /// A panic is an outcome of `run_and_take` too; a cancelled slot runs nothing and keeps
    /// its `Killed` for `take_output`.
    #[test]
    fn run_and_take_of_a_panic_and_of_a_cancelled_slot() {
        let slot = TaskSlot::new(|| -> u8 { panic!("boom") });
        match slot.run_and_take(|state| assert_eq!(state, TokenState::Failed)) {
            Some(Err(TaskError::Panicked(p))) => assert_eq!(p.message(), "boom"),
            other => panic!("unexpected {other:?}"),
        }
        let slot = TaskSlot::new(|| 1_u8);
        assert!(slot.cancel());
        assert!(slot.run_and_take(|_| unreachable!("not run")).is_none());
        assert!(matches!(slot.take_output(), Some(Err(TaskError::Killed))));
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

    /// Regression (issue 21): `resolved` and `abandon` took any `TokenState`; with
    /// `Admitted` the lifecycle CAS out of `Admitted` could be won again and again, so
    /// `take_output` raced `cancel` over the outcome and `abandon` raced `run` for the
    /// closure. The state is a `NeverRan` now (the `Admitted` calls are `compile_fail`
    /// doctests on `resolved` and `abandon`); these are the races with every state left.
    #[test]
    fn a_resolved_slot_is_neither_run_nor_cancelled_while_taken() {
        for lifecycle in [NeverRan::Killed, NeverRan::TimedOut] {
            let slot = Arc::new(TaskSlot::<fn() -> u8, u8>::resolved(
                TaskError::ShutDown,
                lifecycle,
            ));
            let threads: Vec<_> = (0..3)
                .map(|i| {
                    let s = slot.clone();
                    std::thread::spawn(move || match i {
                        0 => (s.take_output().is_some(), false),
                        1 => (false, s.cancel()),
                        _ => (false, s.run()),
                    })
                })
                .collect();
            let results: Vec<(bool, bool)> =
                threads.into_iter().map(|t| t.join().unwrap()).collect();
            assert_eq!(results, [(true, false), (false, true), (false, false)]);
            assert_eq!(slot.state(), TokenState::from(lifecycle));
        }
    }

    #[test]
    fn abandon_racing_run_takes_the_closure_once() {
        let rounds = if cfg!(miri) { 4 } else { 200 };
        for _ in 0..rounds {
            let guard = Arc::new(());
            let g = guard.clone();
            let slot = Arc::new(TaskSlot::new(move || drop(g)));
            let s = slot.clone();
            let runner = std::thread::spawn(move || s.run());
            let abandoned = slot.abandon(TaskError::TimedOut, NeverRan::TimedOut);
            let ran = runner.join().unwrap();
            assert!(ran != abandoned, "exactly one of them takes the closure");
            assert_eq!(Arc::strong_count(&guard), 1, "the closure is gone, once");
            let outcome = slot.take_output().unwrap();
            assert_eq!(outcome.is_ok(), ran);
        }
    }

    /// Regression (issue 21): a panic payload whose `Drop` takes its own slot's outcome, put
    /// in `resolved(Panicked(..), Admitted)` and then cancelled, was dropped in place and
    /// moved out again (SIGSEGV in a release build). With the states that compile, the
    /// cancel touches nothing and the payload is dropped once.
    #[test]
    fn a_payload_whose_drop_takes_its_own_slot_output_is_dropped_once() {
        use crate::error::PanicPayload;
        use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
        use std::sync::OnceLock;

        type Slot = TaskSlot<fn() -> u8, u8>;
        static SLOT: OnceLock<&'static Slot> = OnceLock::new();
        static DROPS: AtomicUsize = AtomicUsize::new(0);
        struct TakesItsOwnOutput;
        impl Drop for TakesItsOwnOutput {
            fn drop(&mut self) {
                DROPS.fetch_add(1, SeqCst);
                if let Some(slot) = SLOT.get() {
                    assert!(slot.take_output().is_none(), "taken already");
                }
            }
        }

        let payload = PanicPayload::new(Box::new(TakesItsOwnOutput));
        // Leaked on purpose: the payload's `Drop` reaches the slot through a static.
        let slot: &'static Slot = Box::leak(Box::new(Slot::resolved(
            TaskError::Panicked(payload),
            NeverRan::Killed,
        )));
        SLOT.set(slot).ok().unwrap();
        assert!(slot.cancel(), "it never runs");
        assert_eq!(DROPS.load(SeqCst), 0, "cancel drops nothing");
        assert!(matches!(
            slot.take_output(),
            Some(Err(TaskError::Panicked(_)))
        ));
        assert_eq!(DROPS.load(SeqCst), 1, "dropped once, as the outcome taken");
        assert!(slot.take_output().is_none());
        slot.detach();
        assert_eq!(DROPS.load(SeqCst), 1);
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

#[cfg(all(test, not(loom)))]
mod future_tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
    use std::sync::Arc;
    use std::task::Wake;

    /// A waker that counts its wake-ups; `Arc::strong_count` counts its live clones.
    #[derive(Default)]
    struct Counting(AtomicUsize);

    impl Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    fn counting() -> (Arc<Counting>, Waker) {
        let counter = Arc::new(Counting::default());
        (counter.clone(), Waker::from(counter))
    }

    #[test]
    fn smoke() {
        let slot = TaskSlot::new(|| 1);
        let (counter, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(slot.poll_output(&mut cx), Poll::Pending);
        assert!(slot.run());
        assert_eq!(
            counter.0.load(SeqCst),
            1,
            "run() wakes the registered waker"
        );
        assert_eq!(slot.poll_output(&mut cx), Poll::Ready(Ok(1)));
        assert_eq!(Arc::strong_count(&counter), 2, "the slot keeps no clone");
    }

    #[test]
    fn a_ready_slot_is_ready_at_the_first_poll() {
        let slot = TaskSlot::<fn() -> u8, u8>::resolved(TaskError::ShutDown, NeverRan::Killed);
        let (counter, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        assert_eq!(
            slot.poll_output(&mut cx),
            Poll::Ready(Err(TaskError::ShutDown))
        );
        assert_eq!(Arc::strong_count(&counter), 2);
        assert_eq!(counter.0.load(SeqCst), 0);
    }

    #[test]
    #[should_panic(expected = "TaskSlot polled after its outcome was taken")]
    fn polling_after_completion_panics() {
        let slot = TaskSlot::new(|| 1);
        let (_, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        slot.run();
        assert!(slot.poll_output(&mut cx).is_ready());
        let _ = slot.poll_output(&mut cx);
    }

    #[test]
    fn the_same_waker_is_registered_once_and_a_new_one_replaces_it() {
        let slot = TaskSlot::new(|| 1);
        let (first, waker1) = counting();
        let (second, waker2) = counting();
        assert!(slot
            .poll_output(&mut Context::from_waker(&waker1))
            .is_pending());
        assert!(slot
            .poll_output(&mut Context::from_waker(&waker1.clone()))
            .is_pending());
        assert_eq!(Arc::strong_count(&first), 3, "ours, and one in the slot");
        assert!(slot
            .poll_output(&mut Context::from_waker(&waker2))
            .is_pending());
        assert_eq!(
            Arc::strong_count(&first),
            2,
            "the replaced waker is dropped"
        );
        slot.run();
        assert_eq!(first.0.load(SeqCst), 0, "a replaced waker is not woken");
        assert_eq!(second.0.load(SeqCst), 1, "the last waker is woken");
        assert_eq!(Arc::strong_count(&second), 2);
    }

    #[test]
    fn unregister_waker_drops_it_and_the_slot_drops_a_registered_one() {
        let slot = TaskSlot::new(|| 1);
        let (counter, waker) = counting();
        let mut cx = Context::from_waker(&waker);
        assert!(slot.poll_output(&mut cx).is_pending());
        slot.unregister_waker();
        assert_eq!(Arc::strong_count(&counter), 2);
        assert!(slot.poll_output(&mut cx).is_pending());
        assert_eq!(Arc::strong_count(&counter), 3);
        drop(slot);
        assert_eq!(Arc::strong_count(&counter), 2);
        assert_eq!(counter.0.load(SeqCst), 0);
    }

    #[test]
    fn a_thread_registered_elsewhere_makes_a_poll_wake_itself() {
        let slot = Arc::new(TaskSlot::new(|| 1));
        let s = slot.clone();
        std::thread::spawn(move || assert_eq!(s.register_waiter(), Registration::Registered))
            .join()
            .unwrap();
        let (counter, waker) = counting();
        assert!(slot
            .poll_output(&mut Context::from_waker(&waker))
            .is_pending());
        assert_eq!(counter.0.load(SeqCst), 1, "Contended: woken at once");
        assert_eq!(Arc::strong_count(&counter), 2, "and not registered");
    }

    #[test]
    fn a_join_after_a_poll_replaces_the_waker() {
        let slot = Arc::new(TaskSlot::new(|| 5));
        let (counter, waker) = counting();
        assert!(slot
            .poll_output(&mut Context::from_waker(&waker))
            .is_pending());
        let s = slot.clone();
        let runner = std::thread::spawn(move || {
            std::thread::yield_now();
            s.run()
        });
        slot.wait();
        assert_eq!(slot.take_output(), Some(Ok(5)));
        assert!(runner.join().unwrap());
        // Woken once: by the finisher if it came first, else by the join that displaced it.
        assert_eq!(counter.0.load(SeqCst), 1);
        assert_eq!(Arc::strong_count(&counter), 2, "the waker was dropped");
    }

    #[test]
    fn a_panicking_waker_does_not_unwind_into_the_finisher() {
        struct Panicking;
        impl Wake for Panicking {
            fn wake(self: Arc<Self>) {
                panic!("a buggy executor's waker");
            }
        }
        let slot = TaskSlot::new(|| 2);
        let waker = Waker::from(Arc::new(Panicking));
        assert!(slot
            .poll_output(&mut Context::from_waker(&waker))
            .is_pending());
        assert!(slot.run(), "run() returns normally");
        assert_eq!(slot.take_output(), Some(Ok(2)));
    }

    #[test]
    fn a_pending_poll_is_woken_from_another_thread() {
        let slot = Arc::new(TaskSlot::new(|| 9));
        let s = slot.clone();
        let runner = std::thread::spawn(move || s.run());
        // A minimal executor: poll, park until woken, poll again.
        struct Unpark(std::thread::Thread);
        impl Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
        }
        let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
        let mut cx = Context::from_waker(&waker);
        let value = loop {
            match slot.poll_output(&mut cx) {
                Poll::Ready(value) => break value,
                Poll::Pending => std::thread::park(),
            }
        };
        assert_eq!(value, Ok(9));
        assert!(runner.join().unwrap());
    }
}
