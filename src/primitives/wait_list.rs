//! Threads blocked on a condition that other threads make true: submitters waiting for a token,
//! a shutdown waiting for every token to come home.
//!
//! This is a slow path by design. The side that makes the condition true pays one fence and one
//! load when nobody waits; only when somebody does it takes a short lock to find them.
//!
//! ## Memory ordering
//!
//! A lost wake-up needs the waiter to check the condition before the notifier changed it, and
//! the notifier to check for waiters before the waiter registered. Both sides put a `SeqCst`
//! fence between their write (registration / the change) and their read (the condition /
//! the waiter count), so at least one of them sees the other's write.

use std::fmt;

use crate::sync::{fence, thread, AtomicUsize, Backoff, Mutex, Ordering};

pub(crate) struct WaitList {
    waiting: AtomicUsize,
    threads: Mutex<Waiters>,
}

struct Waiters {
    next_ticket: u64,
    parked: Vec<(u64, thread::Thread)>,
}

impl WaitList {
    pub(crate) fn new() -> Self {
        Self {
            waiting: AtomicUsize::new(0),
            threads: Mutex::new(Waiters {
                next_ticket: 0,
                parked: Vec::new(),
            }),
        }
    }

    /// Calls `attempt` until it returns `Some`: spinning, then yielding, then parked until a
    /// `notify_*` call. `attempt` is re-checked after every wake-up, spurious or not.
    pub(crate) fn wait_for<R>(&self, mut attempt: impl FnMut() -> Option<R>) -> R {
        let mut backoff = Backoff::new();
        while backoff.snooze() {
            if let Some(r) = attempt() {
                return r;
            }
        }
        loop {
            if let Some(r) = attempt() {
                return r;
            }
            let ticket = self.register();
            // ORDERING: SeqCst fence between our registration and the re-check, paired with
            // the fence in `notify_*` (see the module docs).
            fence(Ordering::SeqCst);
            if let Some(r) = attempt() {
                self.deregister(ticket);
                return r;
            }
            thread::park();
            self.deregister(ticket);
        }
    }

    fn register(&self) -> u64 {
        let mut w = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        let ticket = w.next_ticket;
        w.next_ticket += 1;
        w.parked.push((ticket, thread::current()));
        // ORDERING: Relaxed: the fence in `wait_for` orders it before the re-check.
        self.waiting.fetch_add(1, Ordering::Relaxed);
        ticket
    }

    fn deregister(&self, ticket: u64) {
        let mut w = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(at) = w.parked.iter().position(|(t, _)| *t == ticket) {
            w.parked.swap_remove(at);
            // ORDERING: Relaxed: only a hint for notifiers, who take the lock to act on it.
            self.waiting.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// Wakes every waiter; call after making the condition true.
    #[inline]
    pub(crate) fn notify_all(&self) {
        // ORDERING: SeqCst fence between the caller's change of the condition and our read of
        // the waiter count, paired with the fence in `wait_for`.
        fence(Ordering::SeqCst);
        // ORDERING: Relaxed, ordered by the fence above.
        if self.waiting.load(Ordering::Relaxed) != 0 {
            self.notify_slow();
        }
    }

    #[cold]
    fn notify_slow(&self) {
        let mut w = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        for (_, t) in w.parked.drain(..) {
            // ORDERING: Relaxed: a hint only (see `deregister`).
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            t.unpark();
        }
    }
}

impl fmt::Debug for WaitList {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitList")
            // ORDERING: Relaxed: a report.
            .field("waiting", &self.waiting.load(Ordering::Relaxed))
            .finish()
    }
}
