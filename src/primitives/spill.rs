//! A queue with a bounded lock-free front and an overflow behind a lock: a worker's queues
//! (mailbox lanes, sticky and broadcast queues) are sized for their usual depth, not for every
//! token of the ring, and a burst beyond that waits in the overflow instead of being refused.
//!
//! ## Protocol
//!
//! - The **front** is an [`ArrayQueue`]: pushes and pops there take no lock.
//! - The **overflow** is a `VecDeque` behind a mutex, with `spilled`, its length, readable
//!   without the lock. Only the overflow's lock holder writes `spilled`.
//! - `push`: while `spilled` is 0, the value goes to the front. When the front is full, or
//!   anything is in the overflow, the value goes to the back of the overflow (under the lock,
//!   the front is tried once more if the overflow is empty). So once a value is in the
//!   overflow, every push that comes after it (in happens-before) queues behind it: FIFO holds
//!   for causally ordered pushes, as in the front alone.
//! - `pop`: the front first; if it is empty and `spilled` is not 0, under the lock: the front
//!   once more (values there are older), and if no push to the front is still under way at a
//!   position before the overflow's values, the overflow's oldest value is returned and as
//!   many of the next ones as fit move to the front (so the next pops take no lock). Once the
//!   overflow is empty its buffer is freed and `spilled` goes back to 0, after the moved
//!   values are in the front.
//!
//! The lock is taken only on the overflow path: by a push that finds the front full or the
//! overflow non-empty, and by a pop that finds the front empty and the overflow non-empty.
//! While the overflow is empty and the front has room, nothing takes it. A push after a spill
//! takes the lock even if the front has room again, until a pop has drained the overflow
//! (that is what keeps FIFO); a pop drains up to a front's worth per lock.
//!
//! ## Memory ordering
//!
//! - A value in the front is handed over by the front's stamps ([`ArrayQueue`]); a value in
//!   the overflow by the mutex (the pusher's unlock happens before the popper's lock).
//! - `spilled` is stored with `Release` under the lock and loaded with `Acquire`. A pusher
//!   that loads 0 after a pop drained the overflow synchronises with that pop's store, which
//!   comes after the values it moved into the front: the pusher's claim of a front position
//!   then comes after theirs (the tail CAS reads the latest value), so it queues behind them.
//!   A pusher whose own earlier push spilled loads that push's store or a later one
//!   (coherence): it never sees 0 while its earlier value waits in the overflow.
//! - A pop that finds the front empty and `spilled` stale at 0 returns `None`, the transient
//!   answer [`ArrayQueue::pop`] gives too; a consumer that goes to sleep on it is protected
//!   by its own protocol (the runtime's: the pusher's wake fence and the sleeper's fence
//!   order the `spilled` store before the sleeper's last look, as for a front push).
//! - Under the lock, before taking from the overflow, a pop checks that no front position
//!   claimed by a push is still unclaimed by a pop (`ArrayQueue::holds_claimed_positions`,
//!   which reads the latest `head`): a push still under way there, or a value behind it, may
//!   be older than the overflow's. Every overflow value was pushed under the lock the pop now
//!   holds, so whatever its pusher did before (its own earlier front pushes, and the claims
//!   it saw fill the front) happens before the pop's read of `tail`.
//!
//! ## Progress
//!
//! As the front's (see [`ArrayQueue`]), plus the lock on the overflow path: a thread preempted
//! while it holds it delays the other threads on that path, not the front's users.
//!
//! `loom-tests/tests/spill.rs` models pushes that overflow while a pop drains, with two
//! mutant builds that loom must catch: `--cfg tokengate_mutant="spill_push_front_first"` (a
//! push tries the front before looking at the overflow) and
//! `--cfg tokengate_mutant="spill_pop_skips_claimed"` (a pop takes from the overflow without
//! checking for a push under way in the front).

use crossbeam_utils::CachePadded;
use std::collections::VecDeque;
use std::fmt;

use super::queue::ArrayQueue;
use crate::sync::{AtomicUsize, Mutex, MutexGuard, Ordering};

/// A MPMC queue: a lock-free bounded front and an unbounded overflow behind a lock, taken only
/// when the front is full (or an earlier value is still in the overflow). Causally ordered
/// pushes come out in order, as from an [`ArrayQueue`].
///
/// # Examples
///
/// ```
/// use tokengate::primitives::SpillQueue;
///
/// let q = SpillQueue::new(2);
/// for i in 0..5 {
///     q.push(i); // never refused: 2 in the front, 3 spilled
/// }
/// assert_eq!((q.len(), q.spilled()), (5, 3));
/// let out: Vec<i32> = std::iter::from_fn(|| q.pop()).collect();
/// assert_eq!(out, [0, 1, 2, 3, 4]); // first in, first out
/// assert_eq!(q.spilled(), 0);
/// ```
pub struct SpillQueue<T> {
    front: ArrayQueue<T>,
    /// Read by every push; written only on the overflow path: its own cache line, away from
    /// the front's `head` and `tail`.
    spill: CachePadded<Spill<T>>,
}

struct Spill<T> {
    /// How many values the overflow holds; written under `overflow`'s lock only.
    spilled: AtomicUsize,
    overflow: Mutex<VecDeque<T>>,
}

impl<T> SpillQueue<T> {
    /// An empty queue whose lock-free front holds `front_capacity` values.
    ///
    /// # Panics
    ///
    /// If `front_capacity` is zero or not a power of two.
    pub fn new(front_capacity: usize) -> Self {
        Self {
            front: ArrayQueue::new(front_capacity),
            spill: CachePadded::new(Spill {
                spilled: AtomicUsize::new(0),
                overflow: Mutex::new(VecDeque::new()),
            }),
        }
    }

    /// How many values the lock-free front holds.
    pub fn front_capacity(&self) -> usize {
        self.front.capacity()
    }

    /// Appends `value`: to the front if it has room and nothing waits in the overflow, else
    /// to the overflow (taking its lock).
    #[inline]
    pub fn push(&self, value: T) {
        #[cfg(not(tokengate_mutant = "spill_push_front_first"))]
        let to_front = self.spilled_acquire() == 0;
        // The mutant: a push tries the front whatever waits in the overflow, so it can
        // overtake an older value of its own pusher (`loom-tests/tests/spill.rs`).
        #[cfg(tokengate_mutant = "spill_push_front_first")]
        let to_front = true;
        let value = if to_front {
            match self.front.push_unless_full(value) {
                Ok(()) => return,
                Err(value) => value,
            }
        } else {
            value
        };
        self.push_slow(value);
    }

    /// The overflow path of [`push`](Self::push).
    #[cold]
    #[inline(never)]
    fn push_slow(&self, value: T) {
        let mut overflow = self.lock_overflow();
        let value = if overflow.is_empty() {
            // A pop may have made room since the front was found full; with nothing in the
            // overflow, the front is where the value belongs.
            match self.front.push_unless_full(value) {
                Ok(()) => return,
                Err(value) => value,
            }
        } else {
            value
        };
        overflow.push_back(value);
        self.publish_spilled(&overflow);
    }

    /// Removes the oldest value, or returns `None` if the queue is (or, transiently, looks)
    /// empty.
    #[inline]
    pub fn pop(&self) -> Option<T> {
        if let Some(value) = self.front.pop() {
            return Some(value);
        }
        if self.spilled_acquire() == 0 {
            return None;
        }
        self.pop_slow()
    }

    /// The overflow path of [`pop`](Self::pop).
    #[cold]
    #[inline(never)]
    fn pop_slow(&self) -> Option<T> {
        let mut overflow = self.lock_overflow();
        // Values in the front were pushed before the overflow's (or concurrently): first.
        if let Some(value) = self.front.pop() {
            return Some(value);
        }
        // The mutant build skips this check; `loom-tests/tests/spill.rs` must catch it.
        #[cfg(not(tokengate_mutant = "spill_pop_skips_claimed"))]
        let under_way = self.front.holds_claimed_positions();
        #[cfg(tokengate_mutant = "spill_pop_skips_claimed")]
        let under_way = false;
        if under_way {
            // A push to the front is under way at a position that may be older than the
            // overflow's values (its pusher claimed it before the front filled): wait for it,
            // as `ArrayQueue::pop` does, by answering "empty for now".
            return None;
        }
        let oldest = overflow.pop_front()?;
        // Move what fits of the rest to the front, oldest first: the next pops take no lock.
        while let Some(value) = overflow.pop_front() {
            if let Err(value) = self.front.push(value) {
                overflow.push_front(value);
                break;
            }
        }
        if overflow.is_empty() {
            // A burst is over: give its memory back.
            *overflow = VecDeque::new();
        }
        self.publish_spilled(&overflow);
        Some(oldest)
    }

    /// How many values the queue holds (approximate while other threads push or pop).
    #[inline]
    pub fn len(&self) -> usize {
        self.front.len() + self.spilled()
    }

    /// Whether the queue looks empty (see [`len`](Self::len)).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.front.is_empty() && self.spilled() == 0
    }

    /// Whether a [`pop`](Self::pop) now would find a value: a completed push waits at the
    /// front's head ([`ArrayQueue::has_ready`]), or values wait in the overflow. What a
    /// worker asks before it sleeps: a push still under way in the front does not count (its
    /// pusher wakes a sleeper once it is done).
    ///
    /// # Examples
    ///
    /// ```
    /// use tokengate::primitives::SpillQueue;
    ///
    /// let q = SpillQueue::new(1);
    /// assert!(!q.has_ready());
    /// q.push('a');
    /// q.push('b'); // spilled
    /// assert_eq!(q.pop(), Some('a'));
    /// assert!(q.has_ready()); // 'b' waits in the overflow
    /// ```
    ///
    /// The overflow is read first, with `Acquire`: a pop that moves overflow values into the
    /// front stores `spilled` after the moves and wakes nobody (the values were in the queue
    /// all along). Read in that order, a look that finds the overflow drained also finds the
    /// moved values in the front; read the other way round, it could miss them in both (the
    /// front looked at before the move, the overflow after it) and a worker would sleep on
    /// work of its own. A stale non-zero count only costs another look; a stale zero from
    /// before a spill is the spilling pusher's to announce (its fence and wake).
    #[inline]
    pub fn has_ready(&self) -> bool {
        // The mutant CI expects loom to catch (`loom-tests/tests/spill.rs`): the front first.
        #[cfg(tokengate_mutant = "spill_has_ready_front_first")]
        return self.front.has_ready() || self.spilled() != 0;
        #[cfg(not(tokengate_mutant = "spill_has_ready_front_first"))]
        return self.spilled_acquire() != 0 || self.front.has_ready();
    }

    /// How many values wait in the overflow (approximate while other threads push or pop).
    #[inline]
    pub fn spilled(&self) -> usize {
        // ORDERING: Relaxed: an estimate for load balancing, reports and the runtime's "any
        // work?" look, which its sleep protocol's fences order (see the module docs).
        self.spill.spilled.load(Ordering::Relaxed)
    }

    #[inline]
    fn spilled_acquire(&self) -> usize {
        // ORDERING: Acquire pairs with the Release store in `publish_spilled`: a push that
        // reads 0 written by a pop that drained the overflow claims its front position after
        // the positions of the values that pop moved to the front (module docs), and
        // `has_ready` that reads it sees their stamps.
        self.spill.spilled.load(Ordering::Acquire)
    }

    /// Stores the overflow's length; called with its lock held, after every change to it.
    fn publish_spilled(&self, overflow: &VecDeque<T>) {
        // ORDERING: Release pairs with the Acquire load in `spilled_acquire`: the values a
        // pop moved to the front before this store are in it for a pusher that reads 0.
        self.spill.spilled.store(overflow.len(), Ordering::Release);
    }

    fn lock_overflow(&self) -> MutexGuard<'_, VecDeque<T>> {
        // Nothing under the lock runs user code or panics (a `VecDeque` that cannot grow
        // aborts), so a poisoned lock still guards a consistent queue.
        self.spill
            .overflow
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<T> fmt::Debug for SpillQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpillQueue")
            .field("len", &self.len())
            .field("spilled", &self.spilled())
            .field("front_capacity", &self.front_capacity())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize as StdAtomicUsize;
    use std::sync::Arc;

    #[test]
    fn smoke() {
        let q = SpillQueue::new(2);
        assert!(q.is_empty());
        q.push(1);
        assert_eq!(q.pop(), Some(1));
        assert_eq!(q.pop(), None);
        assert!(q.is_empty());
    }

    #[test]
    fn a_full_front_spills_in_order_and_the_overflow_frees_its_buffer() {
        let q = SpillQueue::new(4);
        for i in 0..100 {
            q.push(i);
        }
        assert_eq!((q.len(), q.spilled()), (100, 96));
        for i in 0..50 {
            assert_eq!(q.pop(), Some(i));
        }
        // Pushes behind the overflow's values, even though the front has room now.
        for i in 100..110 {
            q.push(i);
        }
        let rest: Vec<i32> = std::iter::from_fn(|| q.pop()).collect();
        assert_eq!(rest, (50..110).collect::<Vec<_>>());
        assert_eq!(q.spilled(), 0);
        assert_eq!(
            q.lock_overflow().capacity(),
            0,
            "the overflow's buffer is freed"
        );
        // And the front is used again.
        q.push(7);
        assert_eq!((q.len(), q.spilled()), (1, 0));
    }

    #[test]
    fn drops_what_is_left_in_front_and_overflow() {
        let counted = Arc::new(());
        let q = SpillQueue::new(2);
        for _ in 0..7 {
            q.push(counted.clone());
        }
        drop(q.pop());
        drop(q);
        assert_eq!(Arc::strong_count(&counted), 1);
    }

    /// Two producers push far more than the front holds while two consumers pop: every value
    /// comes out exactly once, and each producer's values in the order it pushed them (each
    /// consumer sees them in increasing order, per producer). Under miri, small sizes.
    #[test]
    fn producers_overflowing_while_consumers_pop_lose_nothing_and_keep_fifo() {
        let per = if cfg!(miri) { 40 } else { 20_000 };
        let q = Arc::new(SpillQueue::new(4));
        let seen = Arc::new(
            (0..2 * per)
                .map(|_| StdAtomicUsize::new(0))
                .collect::<Vec<_>>(),
        );
        let taken = StdAtomicUsize::new(0);
        std::thread::scope(|s| {
            for p in 0..2 {
                let q = &q;
                s.spawn(move || {
                    for i in 0..per {
                        q.push(p * per + i);
                    }
                });
            }
            for _ in 0..2 {
                let (q, seen, taken) = (&q, &seen, &taken);
                s.spawn(move || {
                    let mut last = [None::<usize>; 2];
                    while taken.load(Ordering::Relaxed) < 2 * per {
                        match q.pop() {
                            Some(v) => {
                                let (p, i) = (v / per, v % per);
                                assert!(last[p] < Some(i), "producer {p}: {i} after {last:?}");
                                last[p] = Some(i);
                                seen[v].fetch_add(1, Ordering::Relaxed);
                                taken.fetch_add(1, Ordering::Relaxed);
                            }
                            None => std::thread::yield_now(),
                        }
                    }
                });
            }
        });
        assert!(seen.iter().all(|n| n.load(Ordering::Relaxed) == 1));
        assert!(q.is_empty());
    }
}
