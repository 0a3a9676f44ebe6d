//! A worker's activity word and its park/wake protocol. The full design is in
//! `src/primitives/sleep.md`.
//!
//! | state | written by | meaning |
//! | --- | --- | --- |
//! | `IDLE` | the worker; a waker (`SLEEPING → IDLE`) | awake, looking for work |
//! | `BUSY` | the worker | awake, running a task (routing counts it as load) |
//! | `SLEEPING` | the worker | parked, or about to park after a last look for work |
//!
//! A second word records the registration of the thread that sleeps here, once:
//!
//! | registration | meaning |
//! | --- | --- |
//! | `UNSET` | no thread registered; a waker unparks nobody |
//! | `WRITING` | the first registrant won the CAS out of `UNSET` and is writing the cell |
//! | `SET` | the cell holds the registered thread, and is never written again |
//!
//! ## Memory ordering
//!
//! The lost wake-up to avoid: the worker looks for work and finds none, a submitter pushes
//! work and sees the worker awake so does not unpark it, the worker parks. Both sides write
//! then read: the worker writes `SLEEPING` then reads the mailboxes, the submitter writes the
//! mailbox then reads the state. A `SeqCst` fence sits between the write and the read on both
//! sides ([`Sleeper::prepare_sleep`], [`Sleeper::wake`]), so at least one of them sees the
//! other's write: the worker finds the work, or the submitter finds it sleeping and wakes it.
//!
//! The thread cell is written once, by the one caller that moves the registration from
//! `UNSET` to `WRITING`, and published by its `Release` store of `SET`; a waker reads the
//! cell only after an `Acquire` load that sees `SET`. Every other registration is refused
//! before it touches the cell, so the cell is never written while anyone may read it.

use std::fmt;

use crate::sync::{fence, thread, AtomicU8, Ordering, UnsafeCell};

const IDLE: u8 = 0;
const BUSY: u8 = 1;
const SLEEPING: u8 = 2;

/// Registration states (module docs).
const UNSET: u8 = 0;
const WRITING: u8 = 1;
const SET: u8 = 2;

/// The activity word and thread handle of one parkable consumer (a worker).
///
/// One thread sleeps here: the first to call
/// [`register_current_thread`](Self::register_current_thread). A registration from another
/// thread is refused with a panic (see there), so the thread handle that wakers read is
/// written once, before any of them can read it (module docs, *Memory ordering*).
///
/// # Examples
///
/// ```
/// use std::sync::atomic::{AtomicBool, Ordering};
/// use std::sync::Arc;
/// use tokengate::primitives::Sleeper;
///
/// let sleeper = Arc::new(Sleeper::new());
/// let work = Arc::new(AtomicBool::new(false));
/// let (s, w) = (sleeper.clone(), work.clone());
/// let consumer = std::thread::spawn(move || {
///     s.register_current_thread();
///     loop {
///         s.prepare_sleep();
///         if w.load(Ordering::Relaxed) { s.cancel_sleep(); return; }
///         s.sleep();
///     }
/// });
/// work.store(true, Ordering::Relaxed);
/// sleeper.wake();
/// consumer.join().unwrap();
/// ```
pub struct Sleeper {
    state: AtomicU8,
    /// `UNSET`, `WRITING` or `SET`: who may touch `thread` (module docs).
    registration: AtomicU8,
    thread: UnsafeCell<Option<thread::Thread>>,
}

// SAFETY: `thread` is written once, by the one caller of `register_current_thread` that wins
// the registration CAS out of `UNSET`, before its Release store of `SET`; it is read only after
// an Acquire load of `SET` (`with_registered_thread`), and never written again. `Thread` is
// Send + Sync.
unsafe impl Sync for Sleeper {}
// SAFETY: all fields are Send.
unsafe impl Send for Sleeper {}

impl Sleeper {
    /// A sleeper in state idle, with no thread registered yet.
    pub fn new() -> Self {
        Self {
            state: AtomicU8::new(IDLE),
            registration: AtomicU8::new(UNSET),
            thread: UnsafeCell::new(None),
        }
    }

    /// Records the calling thread as the one that sleeps here. Call it from that thread before
    /// the first [`prepare_sleep`](Self::prepare_sleep): a sleeper with no thread registered
    /// has nobody to unpark. Calling it again from the registered thread does nothing.
    ///
    /// # Panics
    ///
    /// If another thread registered (or is registering) already: a sleeper belongs to one
    /// thread. The refusal touches nothing, so the registered thread keeps its wake-ups.
    ///
    /// ```should_panic
    /// use std::sync::Arc;
    /// use tokengate::primitives::Sleeper;
    ///
    /// let sleeper = Arc::new(Sleeper::new());
    /// let s = sleeper.clone();
    /// std::thread::spawn(move || s.register_current_thread()).join().unwrap();
    /// sleeper.register_current_thread(); // panics: another thread sleeps here
    /// ```
    pub fn register_current_thread(&self) {
        let me = thread::current();
        // ORDERING: Relaxed on success: the CAS only elects the one writer of the cell, which
        // nobody reads before the Release store of SET below. Relaxed on failure: a refusal reads
        // nothing, and the same thread re-registering reads the cell through the Acquire load
        // of `with_registered_thread`.
        match self.registration.compare_exchange(
            UNSET,
            WRITING,
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            Ok(_) => {
                // SAFETY: winning UNSET → WRITING makes us the cell's only writer, once; no
                // reader touches it before seeing SET, stored below (see the `Sync` impl).
                self.thread.with_mut(|t| unsafe { *t = Some(me) });
                // ORDERING: Release publishes the cell to wakers' Acquire load of SET.
                self.registration.store(SET, Ordering::Release);
            }
            Err(SET) if self.with_registered_thread(|t| t.id()) == Some(me.id()) => {}
            Err(_) => panic!(
                "Sleeper::register_current_thread: another thread is already registered to \
                 sleep here (thread {:?} may not register); a Sleeper belongs to one thread",
                me.id()
            ),
        }
    }

    /// Calls `f` with the registered thread, once its registration is complete (`SET`);
    /// `None` before.
    #[inline]
    fn with_registered_thread<R>(&self, f: impl FnOnce(&thread::Thread) -> R) -> Option<R> {
        // ORDERING: Acquire pairs with the Release store of SET in `register_current_thread`:
        // the cell's write happens before our read.
        if self.registration.load(Ordering::Acquire) != SET {
            return None;
        }
        // SAFETY: SET is stored once, after the cell's only write, and the cell is never
        // written again (see the `Sync` impl), so shared reads of it race with nothing.
        self.thread.with(|t| unsafe { (*t).as_ref() }.map(f))
    }

    /// Marks the consumer busy (`true`) or idle (`false`). Owner only.
    #[inline]
    pub fn set_busy(&self, busy: bool) {
        let new = if busy { BUSY } else { IDLE };
        // ORDERING: Relaxed: a load hint for routing; no data is published by it. Only the
        // owner writes IDLE/BUSY, and only while awake, so no wake-up is overwritten.
        if self.state.load(Ordering::Relaxed) != new {
            // ORDERING: Relaxed, as above.
            self.state.store(new, Ordering::Relaxed);
        }
    }

    /// Whether the consumer is running a task (a routing hint).
    #[inline]
    pub fn is_busy(&self) -> bool {
        // ORDERING: Relaxed: a hint.
        self.state.load(Ordering::Relaxed) == BUSY
    }

    /// Whether the consumer is parked or about to park.
    #[inline]
    pub fn is_sleeping(&self) -> bool {
        // ORDERING: Relaxed: a hint; `wake` is the synchronising path.
        self.state.load(Ordering::Relaxed) == SLEEPING
    }

    /// Announces the intent to park. The caller must then look for work once more and call
    /// [`cancel_sleep`](Self::cancel_sleep) if it finds some, else [`sleep`](Self::sleep).
    #[inline]
    pub fn prepare_sleep(&self) {
        // ORDERING: Release: what the sleeper did before announcing sleep happens before a
        // waker's Acquire CAS out of SLEEPING (the thread handle has its own word).
        self.state.store(SLEEPING, Ordering::Release);
        // ORDERING: SeqCst fence between this store and the caller's last look for work,
        // paired with the fence in `wake` (module docs).
        fence(Ordering::SeqCst);
    }

    /// Takes back a [`prepare_sleep`](Self::prepare_sleep): work was found.
    #[inline]
    pub fn cancel_sleep(&self) {
        // ORDERING: Relaxed: if a waker raced us to IDLE its unpark only makes a later park
        // return early, which every caller tolerates.
        self.state.store(IDLE, Ordering::Relaxed);
    }

    /// Parks until woken (or spuriously), then marks the consumer idle.
    pub fn sleep(&self) {
        thread::park();
        // ORDERING: Relaxed, as in `cancel_sleep`.
        self.state.store(IDLE, Ordering::Relaxed);
    }

    /// Wakes the consumer if it sleeps; returns whether it did. Call after publishing work.
    #[inline]
    pub fn wake(&self) -> bool {
        // ORDERING: SeqCst fence between the caller's publication of work and our read of the
        // state, paired with the fence in `prepare_sleep`.
        fence(Ordering::SeqCst);
        // ORDERING: Relaxed, ordered by the fence; the CAS below synchronises.
        self.state.load(Ordering::Relaxed) == SLEEPING && self.wake_slow()
    }

    #[cold]
    fn wake_slow(&self) -> bool {
        // ORDERING: Acquire pairs with the Release store of SLEEPING; only one waker wins the
        // CAS, so one unpark per sleep.
        if self
            .state
            .compare_exchange(SLEEPING, IDLE, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        // Read only once the registration is SET (module docs); a sleeper nobody registered
        // has nobody to unpark.
        self.with_registered_thread(thread::Thread::unpark);
        true
    }
}

impl Default for Sleeper {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for Sleeper {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // ORDERING: Relaxed: a report.
        let state = match self.state.load(Ordering::Relaxed) {
            IDLE => "idle",
            BUSY => "busy",
            _ => "sleeping",
        };
        f.debug_struct("Sleeper").field("state", &state).finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::panic::{catch_unwind, AssertUnwindSafe};
    use std::sync::Arc;

    #[test]
    fn smoke() {
        let sleeper = Sleeper::new();
        sleeper.register_current_thread();
        sleeper.register_current_thread(); // the same thread again: nothing changes
        sleeper.prepare_sleep();
        assert!(sleeper.is_sleeping());
        assert!(sleeper.wake());
        assert!(!sleeper.wake(), "one wake-up per sleep");
        sleeper.prepare_sleep();
        sleeper.sleep(); // the unpark above is still pending: returns at once
        assert!(!sleeper.is_sleeping());
    }

    /// Registers the calling thread, catching the refusal; the panic message if refused.
    fn try_register(sleeper: &Sleeper) -> Result<(), String> {
        catch_unwind(AssertUnwindSafe(|| sleeper.register_current_thread())).map_err(|e| {
            e.downcast_ref::<String>()
                .cloned()
                .unwrap_or_else(|| "?".into())
        })
    }

    /// Regression (issue 21): two threads registering one sleeper wrote its thread cell at
    /// once (a data race under miri; natively the old `Thread` was released twice). The
    /// first registration wins; the other is refused before it touches the cell.
    #[test]
    fn two_threads_registering_one_sleeper_one_is_refused() {
        let sleeper = Arc::new(Sleeper::new());
        let outcomes: Vec<Result<(), String>> = (0..2)
            .map(|_| {
                let s = sleeper.clone();
                std::thread::spawn(move || try_register(&s))
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        let refused: Vec<&String> = outcomes.iter().filter_map(|o| o.as_ref().err()).collect();
        assert_eq!(refused.len(), 1, "exactly one refused: {outcomes:?}");
        assert!(
            refused[0].contains("already registered"),
            "refused in words: {}",
            refused[0]
        );
    }

    /// Regression (issue 21): a registration from another thread racing `wake()` rewrote the
    /// cell that `wake_slow` reads (a data race under miri). It is refused; the wake-up
    /// reaches the registered thread.
    #[test]
    fn a_registration_racing_wake_is_refused() {
        let sleeper = Arc::new(Sleeper::new());
        sleeper.register_current_thread();
        sleeper.prepare_sleep();
        let s = sleeper.clone();
        let intruder = std::thread::spawn(move || try_register(&s));
        assert!(sleeper.wake());
        sleeper.sleep(); // woken above: returns
        assert!(
            intruder.join().unwrap().is_err(),
            "another thread is refused"
        );
    }
}
