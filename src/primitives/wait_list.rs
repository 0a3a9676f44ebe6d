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
    ///
    /// If `attempt` panics, the panic passes through and the caller's registration does not
    /// outlive it: the entry is removed on the way out (a [`Registered`] guard), so a
    /// panicking condition leaves nothing behind in the list.
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
            // Deregisters when dropped: at the end of this iteration, or during an unwind out
            // of the re-check below.
            let _registered = self.register();
            // ORDERING: SeqCst fence between our registration and the re-check, paired with
            // the fence in `notify_*` (see the module docs).
            fence(Ordering::SeqCst);
            if let Some(r) = attempt() {
                return r;
            }
            thread::park();
        }
    }

    fn register(&self) -> Registered<'_> {
        let mut w = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        let ticket = w.next_ticket;
        w.next_ticket += 1;
        w.parked.push((ticket, thread::current()));
        // ORDERING: Relaxed: the fence in `wait_for` orders it before the re-check.
        self.waiting.fetch_add(1, Ordering::Relaxed);
        Registered { list: self, ticket }
    }

    fn deregister(&self, ticket: u64) {
        let mut w = self.threads.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(at) = w.parked.iter().position(|(t, _)| *t == ticket) {
            w.parked.swap_remove(at);
            // ORDERING: Relaxed: only a hint for notifiers, who take the lock to act on it.
            self.waiting.fetch_sub(1, Ordering::Relaxed);
        }
    }

    /// How many threads are registered (a report; tests check that none is left behind).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn registered(&self) -> usize {
        self.threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .parked
            .len()
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

/// A registration in a [`WaitList`]: removed when dropped, also by an unwind out of the
/// caller's condition (a notifier may have removed it first; then there is nothing to do).
struct Registered<'a> {
    list: &'a WaitList,
    ticket: u64,
}

impl Drop for Registered<'_> {
    fn drop(&mut self) {
        self.list.deregister(self.ticket);
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

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::panic::{catch_unwind, AssertUnwindSafe};

    #[test]
    fn smoke() {
        let list = WaitList::new();
        let mut calls = 0;
        let r = list.wait_for(|| {
            calls += 1;
            (calls == 3).then_some(calls)
        });
        assert_eq!(r, 3);
        list.notify_all();
        assert_eq!(list.registered(), 0);
    }

    /// Regression (issue 21): a condition that panicked after its caller registered (in the
    /// re-check after the fence) left the entry behind, a leak that grew with every such
    /// call. The entry goes with the unwind.
    #[test]
    fn a_condition_that_panics_after_registering_leaves_no_entry() {
        let list = WaitList::new();
        for _ in 0..3 {
            let unwound = catch_unwind(AssertUnwindSafe(|| {
                list.wait_for(|| -> Option<()> {
                    // ORDERING: Relaxed: read by the registering thread itself.
                    if list.waiting.load(Ordering::Relaxed) != 0 {
                        panic!("condition panics once registered");
                    }
                    None
                })
            }));
            assert!(unwound.is_err(), "the panic passes through");
        }
        assert_eq!(list.registered(), 0, "no entry left behind");
        // ORDERING: Relaxed: single-threaded test.
        assert_eq!(list.waiting.load(Ordering::Relaxed), 0);
    }
}
