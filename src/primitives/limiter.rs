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
    pub fn acquire(&self, token: Token) -> Option<Token> {
        // Push before counting: a thread that counts a permit for a waiter (here or in
        // `release`) then finds a token in the queue, because every token counted before its
        // own RMW on `demand` was pushed before that RMW.
        // The waiting queue has room for every token of the ring.
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
    pub fn release(&self) -> Option<Token> {
        // ORDERING: AcqRel, see `acquire`.
        if self.demand.fetch_sub(1, Ordering::AcqRel) > self.limit {
            Some(self.pop_counted())
        } else {
            None
        }
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
}
