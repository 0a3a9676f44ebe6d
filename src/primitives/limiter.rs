//! The concurrency limiter of an operation: at most `limit` tasks hold a permit, the others
//! wait in the limiter (not on a thread) in arrival order.

use crossbeam_utils::CachePadded;
use std::fmt;

use super::queue::ArrayQueue;
use super::ring::Token;
use crate::sync::{thread, AtomicUsize, Backoff, Ordering};

/// A concurrency limiter that never blocks a thread: at most `limit` tokens hold a permit at
/// once; the others wait *in the limiter* (not on a thread) until a permit is handed to them.
/// What `Operation::concurrency_limit` uses.
///
/// ## Protocol and ordering contract
///
/// Every token entering [`acquire`](Self::acquire) is first pushed onto the waiting queue,
/// then counted in `demand` (tokens holding or waiting for a permit, `AcqRel` RMWs). Whoever
/// raises `demand` from below `limit` (a free permit) pops the oldest waiter and runs it;
/// whoever lowers it from above `limit` in [`release`](Self::release) (a waiter exists) pops
/// the oldest waiter and hands it the permit. Pops never outnumber pushes: a token counted
/// before an RMW was pushed before it. So no waiter is stranded, waiters leave in arrival
/// order, and the number of permits held never exceeds `limit`. Everything a
/// permit holder did before `release` happens before the next holder of that permit starts
/// (the hand-over goes through the waiting queue's Release/Acquire).
///
/// Model-checked in `loom-tests/tests/limiter.rs`.
///
/// # Examples
///
/// ```
/// use tokengate::primitives::{Limiter, TokenRing};
///
/// let ring = TokenRing::new(4);
/// let limiter = Limiter::new(1, 4);
/// let a = limiter.acquire(ring.try_take().unwrap()).expect("first gets the permit");
/// assert!(limiter.acquire(ring.try_take().unwrap()).is_none()); // waits in the limiter
/// let b = limiter.release().expect("the permit goes to the waiter");
/// assert!(limiter.release().is_none());
/// ring.give_back(a);
/// ring.give_back(b);
/// ```
pub struct Limiter {
    pub(crate) limit: usize,
    demand: CachePadded<AtomicUsize>,
    waiting: ArrayQueue<Token>,
}

impl Limiter {
    /// A limiter of `limit` permits whose waiting queue holds up to `capacity` tokens (the
    /// ring's capacity).
    ///
    /// # Panics
    ///
    /// If `limit` or `capacity` is 0.
    pub fn new(limit: usize, capacity: usize) -> Self {
        assert!(limit > 0, "a limiter needs at least one permit");
        Self {
            limit,
            demand: CachePadded::new(AtomicUsize::new(0)),
            waiting: ArrayQueue::new(capacity),
        }
    }

    /// Enters `token` and returns the token that now holds a permit, if a permit was free
    /// (not necessarily `token`: waiters leave in arrival order); else every entered token
    /// waits and `None` is returned (a later [`release`](Self::release) hands one out).
    ///
    /// # Panics
    ///
    /// If the waiting queue is full: `capacity` was smaller than the ring (`token` is then
    /// dropped, and nothing counted).
    pub fn acquire(&self, token: Token) -> Option<Token> {
        // Push before counting: a thread that counts a permit for a waiter (here or in
        // `release`) then finds a token in the queue, because every token counted before its
        // own RMW on `demand` was pushed before that RMW.
        // The waiting queue has room for every token of the ring (when made as `new` says; a
        // smaller one panics here, saying so, rather than spin).
        self.waiting.push_bounded_by_caller(token);
        // ORDERING: AcqRel: the RMWs on `demand` form one release sequence, so the pushes
        // of every token counted before ours are visible to us (and the effects of the
        // holder whose permit we take happen before we run).
        if self.demand.fetch_add(1, Ordering::AcqRel) < self.limit {
            Some(self.pop_counted())
        } else {
            None
        }
    }

    /// Takes a permit without entering the waiting queue, if one is free (which means nobody
    /// waits): for a holder that has no token to queue. It counts in `demand` like any
    /// holder and gives the permit back with [`release`](Self::release).
    ///
    /// ```
    /// use tokengate::primitives::Limiter;
    ///
    /// let limiter = Limiter::new(1, 4);
    /// assert!(limiter.try_acquire());
    /// assert!(!limiter.try_acquire() && !limiter.has_free_permit());
    /// assert!(limiter.release().is_none());
    /// assert!(limiter.has_free_permit());
    /// ```
    pub fn try_acquire(&self) -> bool {
        // ORDERING: Relaxed: a first guess, checked by the CAS.
        let mut demand = self.demand.load(Ordering::Relaxed);
        while demand < self.limit {
            // ORDERING: AcqRel, as the RMWs of `acquire`: the effects of the holder whose
            // permit we take happen before we run. Relaxed on failure: retried.
            match self.demand.compare_exchange_weak(
                demand,
                demand + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => demand = now,
            }
        }
        false
    }

    /// Whether a permit is free (a hint: another thread may take it first).
    pub fn has_free_permit(&self) -> bool {
        self.demand() < self.limit
    }

    /// Gives a permit back; returns the waiting token that now holds it, if any (the caller
    /// must then run it or hand it on).
    ///
    /// # Panics
    ///
    /// If no permit is out (more releases than permits taken): the count is left as it was.
    /// The limiter counts permits, it does not know their holders: a release by a thread that
    /// holds none while others hold some is not detected here, only when the count runs out.
    ///
    /// ```should_panic
    /// use tokengate::primitives::Limiter;
    ///
    /// let limiter = Limiter::new(2, 4);
    /// limiter.release(); // panics: no permit is out
    /// ```
    pub fn release(&self) -> Option<Token> {
        // A checked decrement (a CAS, one locked instruction uncontended like the `fetch_sub`
        // it replaces): a decrement from 0 would wrap `demand`, and every later `release`
        // would then hand out permits for waiters that do not exist, spinning forever on the
        // empty queue. Refusing needs the check and the decrement in one step; undoing a
        // wrapped `fetch_sub` would let an `acquire` in between count itself as a waiter.
        // ORDERING: AcqRel on success, as the RMWs of `acquire` (one release sequence on
        // `demand`). Relaxed on failure: retried, or refused without a change.
        let before = self
            .demand
            .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |d| d.checked_sub(1))
            .unwrap_or_else(|_| Self::no_permit_out());
        if before > self.limit {
            Some(self.pop_counted())
        } else {
            None
        }
    }

    #[cold]
    #[inline(never)]
    fn no_permit_out() -> ! {
        panic!("Limiter::release: no permit is out (release called more often than acquire)")
    }

    /// Pops a token that the count says is there. The queue may still look empty for a
    /// moment if a later pusher claimed the head position and has not published it: wait.
    fn pop_counted(&self) -> Token {
        let mut backoff = Backoff::new();
        loop {
            if let Some(token) = self.waiting.pop() {
                return token;
            }
            if !backoff.snooze() {
                thread::yield_now();
            }
        }
    }

    /// How many tokens hold or wait for a permit.
    pub fn demand(&self) -> usize {
        // ORDERING: Relaxed: a report.
        self.demand.load(Ordering::Relaxed)
    }
}

impl fmt::Debug for Limiter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Limiter")
            .field("limit", &self.limit)
            .field("demand", &self.demand())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::primitives::TokenRing;
    use std::panic::{catch_unwind, AssertUnwindSafe};

    #[test]
    fn limiter_hands_permits_to_waiters_in_order() {
        let ring = TokenRing::new(4);
        let limiter = Limiter::new(2, 4);
        let take = || ring.try_take().unwrap();
        let a = limiter.acquire(take()).unwrap();
        let b = limiter.acquire(take()).unwrap();
        assert!(limiter.acquire(take()).is_none());
        assert!(limiter.acquire(take()).is_none());
        assert_eq!(limiter.demand(), 4);
        let c = limiter.release().unwrap();
        let d = limiter.release().unwrap();
        assert_eq!(
            (c.index(), d.index()),
            (2, 3),
            "waiters leave in arrival order"
        );
        assert!(limiter.release().is_none());
        assert!(limiter.release().is_none());
        assert_eq!(limiter.demand(), 0);
        for t in [a, b, c, d] {
            ring.give_back(t);
        }
    }

    /// Regression (issue 21): a release with no permit out wrapped the count, and the next
    /// release then waited forever for a waiter that does not exist. It is refused, in words,
    /// and the count is unchanged.
    #[test]
    fn a_release_without_a_permit_is_refused() {
        let limiter = Limiter::new(1, 2);
        let refused = catch_unwind(AssertUnwindSafe(|| limiter.release()));
        let message = refused.expect_err("refused").downcast::<&str>().unwrap();
        assert!(message.contains("no permit is out"), "{message}");
        assert_eq!(limiter.demand(), 0, "the count is unchanged");
        assert!(limiter.try_acquire());
        assert!(limiter.release().is_none());
        assert!(catch_unwind(AssertUnwindSafe(|| limiter.release())).is_err());
    }

    /// A waiting queue smaller than the ring was a spin forever in `acquire` once full; it
    /// is a panic in words now.
    #[test]
    #[should_panic(expected = "the queue is full")]
    fn a_waiting_queue_smaller_than_the_ring_is_refused() {
        let ring = TokenRing::new(4);
        let limiter = Limiter::new(1, 1);
        let _holder = limiter.acquire(ring.try_take().unwrap()).unwrap();
        assert!(limiter.acquire(ring.try_take().unwrap()).is_none());
        limiter.acquire(ring.try_take().unwrap());
    }
}
