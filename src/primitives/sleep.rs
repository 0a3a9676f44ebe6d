//! A worker's activity word and its park/wake protocol. The full design is in
//! `src/primitives/sleep.md`.
//!
//! | state | written by | meaning |
//! | --- | --- | --- |
//! | `IDLE` | the worker; a waker (`SLEEPING → IDLE`) | awake, looking for work |
//! | `BUSY` | the worker | awake, running a task (routing counts it as load) |
//! | `SLEEPING` | the worker | parked, or about to park after a last look for work |
//!
//! ## Memory ordering
//!
//! The lost wake-up to avoid: the worker looks for work and finds none, a submitter pushes
//! work and sees the worker awake so does not unpark it, the worker parks. Both sides write
//! then read: the worker writes `SLEEPING` then reads the mailboxes, the submitter writes the
//! mailbox then reads the state. A `SeqCst` fence sits between the write and the read on both
//! sides ([`Sleeper::prepare_sleep`], [`Sleeper::wake`]), so at least one of them sees the
//! other's write: the worker finds the work, or the submitter finds it sleeping and wakes it.

use std::fmt;

use crate::sync::{fence, thread, AtomicU8, Ordering, UnsafeCell};

const IDLE: u8 = 0;
const BUSY: u8 = 1;
const SLEEPING: u8 = 2;

/// The activity word and thread handle of one parkable consumer (a worker).
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
    thread: UnsafeCell<Option<thread::Thread>>,
}

// SAFETY: `thread` is written once by the owning thread in `register_current_thread`, before it
// first stores `SLEEPING` with Release; it is read only by a waker whose CAS from `SLEEPING`
// acquired that store. `Thread` is Send + Sync.
unsafe impl Sync for Sleeper {}
// SAFETY: all fields are Send.
unsafe impl Send for Sleeper {}

impl Sleeper {
    /// A sleeper in state idle, with no thread registered yet.
    pub fn new() -> Self {
        Self {
            state: AtomicU8::new(IDLE),
            thread: UnsafeCell::new(None),
        }
    }

    /// Records the calling thread as the one that sleeps here. Call once, from that thread,
    /// before the first [`prepare_sleep`](Self::prepare_sleep).
    pub fn register_current_thread(&self) {
        // SAFETY: only the owning thread calls this, once, before any `SLEEPING` store; no
        // waker reads `thread` before such a store (see the `Sync` impl).
        self.thread
            .with_mut(|t| unsafe { *t = Some(thread::current()) });
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
        // ORDERING: Release publishes `thread` to a waker's CAS (Acquire).
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
        // ORDERING: Acquire pairs with the Release store of SLEEPING, making `thread` visible;
        // only one waker wins the CAS, so one unpark per sleep.
        if self
            .state
            .compare_exchange(SLEEPING, IDLE, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            return false;
        }
        // SAFETY: written before the Release store of SLEEPING that our CAS acquired, and never
        // written again (see the `Sync` impl).
        let thread = self.thread.with(|t| unsafe { (*t).clone() });
        if let Some(thread) = thread {
            thread.unpark();
        }
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
