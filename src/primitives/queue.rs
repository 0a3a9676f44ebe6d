//! A bounded multi-producer multi-consumer queue: the building block of the token ring and of
//! the lock-free front of every worker queue ([`SpillQueue`](super::SpillQueue)).
//!
//! This is D. Vyukov's bounded MPMC array queue. Each slot carries a *stamp* that says which
//! operation the slot is ready for. Stamps count in half-steps, so that "full, waiting for the
//! pop of `pos`" and "empty, waiting for the push of `pos + cap`" never coincide (with the
//! textbook single-step stamps they do when `cap == 1`):
//!
//! | stamp of slot `pos % cap` | meaning |
//! | --- | --- |
//! | `2·pos` | empty, ready for the push of position `pos` |
//! | `2·pos + 1` | full, holds the value pushed at `pos`, ready for its pop |
//! | `2·(pos + cap)` | empty again, ready for the push of the next lap |
//!
//! A push claims position `tail` by CAS, writes the value, then publishes it by storing the
//! stamp `2·tail + 1`; a pop claims `head` by CAS, reads, then frees the slot by storing
//! `2·(head + cap)`.
//!
//! ## Memory ordering
//!
//! The value is handed over by the stamp: the pusher's `Release` store of `pos + 1` pairs with
//! the popper's `Acquire` load of the stamp, so the value write happens before the read. The
//! popper's `Release` store of `pos + cap` pairs with the next lap's pusher's `Acquire` load, so
//! the read of the old value happens before it is overwritten. The head and tail CASes only
//! arbitrate who owns a position and need no ordering of their own.
//!
//! ## Progress
//!
//! Honestly stated: this queue is not lock-free in the strict sense. A thread preempted between
//! claiming a position and storing its stamp makes that one slot look full (to pushers) or
//! empty (to poppers) until it runs again. Nobody blocks on it, they see a transient `Err`/`None`
//! and retry; the runtime's callers retry with a backoff.

use crossbeam_utils::CachePadded;
use std::fmt;
use std::mem::MaybeUninit;

use crate::sync::{AtomicUsize, Ordering, UnsafeCell};

struct Slot<T> {
    stamp: AtomicUsize,
    value: UnsafeCell<MaybeUninit<T>>,
}

/// A bounded MPMC queue whose capacity is a power of two.
///
/// # Examples
///
/// ```
/// use tokengate::primitives::ArrayQueue;
///
/// let q = ArrayQueue::new(2);
/// assert_eq!(q.push(1), Ok(()));
/// assert_eq!(q.push(2), Ok(()));
/// assert_eq!(q.push(3), Err(3)); // full: the value comes back
/// assert_eq!(q.pop(), Some(1));
/// assert_eq!(q.len(), 1);
/// ```
pub struct ArrayQueue<T> {
    head: CachePadded<AtomicUsize>,
    tail: CachePadded<AtomicUsize>,
    slots: Box<[Slot<T>]>,
    /// `capacity - 1`; positions map to slots by `pos & mask`.
    mask: usize,
}

// SAFETY: values move between threads through the queue, so `T: Send` is required and enough;
// each slot's value is accessed only by the one thread that owns its position (see the module
// docs), so shared references to the queue never give two threads the same `T`.
unsafe impl<T: Send> Send for ArrayQueue<T> {}
// SAFETY: as above: `&ArrayQueue<T>` only moves `T`s in and out, never shares one.
unsafe impl<T: Send> Sync for ArrayQueue<T> {}

impl<T> ArrayQueue<T> {
    /// Creates an empty queue holding at most `capacity` values.
    ///
    /// # Panics
    ///
    /// If `capacity` is zero or not a power of two.
    pub fn new(capacity: usize) -> Self {
        assert!(
            capacity.is_power_of_two(),
            "ArrayQueue capacity {capacity} is not a power of two"
        );
        let slots = (0..capacity)
            .map(|i: usize| Slot {
                stamp: AtomicUsize::new(i.wrapping_mul(2)),
                value: UnsafeCell::new(MaybeUninit::uninit()),
            })
            .collect();
        Self {
            head: CachePadded::new(AtomicUsize::new(0)),
            tail: CachePadded::new(AtomicUsize::new(0)),
            slots,
            mask: capacity - 1,
        }
    }

    /// The most values the queue holds at once.
    pub fn capacity(&self) -> usize {
        self.mask + 1
    }

    /// Appends `value`, or hands it back if the queue is (or, transiently, looks) full.
    #[inline]
    pub fn push(&self, value: T) -> Result<(), T> {
        self.push_or_blocked_at(value).map_err(|(value, _)| value)
    }

    /// [`push`](Self::push), handing back with the value the position whose slot was not
    /// free yet.
    #[inline]
    fn push_or_blocked_at(&self, value: T) -> Result<(), (T, usize)> {
        // ORDERING: Relaxed: the tail only names a candidate position; ownership of it is
        // decided by the CAS below and the data is guarded by the slot's stamp.
        let mut pos = self.tail.load(Ordering::Relaxed);
        loop {
            let slot = &self.slots[pos & self.mask];
            // ORDERING: Acquire pairs with the Release store of `2·pos` by the pop of the
            // previous lap: its read of the old value happens before our write.
            let stamp = slot.stamp.load(Ordering::Acquire);
            let lag = stamp.wrapping_sub(pos.wrapping_mul(2)) as isize;
            if lag == 0 {
                // ORDERING: Relaxed: the CAS only claims the position (see above).
                match self.tail.compare_exchange_weak(
                    pos,
                    pos.wrapping_add(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // SAFETY: winning the CAS for `pos` while the stamp said "empty for
                        // `pos`" makes this thread the only one that may touch the slot until
                        // it stores a new stamp.
                        slot.value.with_mut(|p| unsafe { (*p).write(value) });
                        // ORDERING: Release publishes the value to the pop of `pos`, which
                        // loads this stamp with Acquire.
                        slot.stamp
                            .store(pos.wrapping_mul(2).wrapping_add(1), Ordering::Release);
                        return Ok(());
                    }
                    Err(current) => pos = current,
                }
            } else if lag < 0 {
                // The slot still holds the value of the previous lap: full (or its pop is
                // in progress).
                return Err((value, pos));
            } else {
                // Another pusher took `pos`; move on to the current tail.
                // ORDERING: Relaxed, as the first load.
                pos = self.tail.load(Ordering::Relaxed);
            }
        }
    }

    /// Appends `value` unless the queue is really full: a push that finds its slot still
    /// held by a pop in progress (between the pop's claim and its stamp; that pop finishes
    /// without waiting for anybody) retries (spin, then yield) instead of failing, and the
    /// value comes back only if every slot holds a value no pop has claimed yet.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokengate::primitives::ArrayQueue;
    ///
    /// let q = ArrayQueue::new(1);
    /// assert_eq!(q.push_unless_full('a'), Ok(()));
    /// assert_eq!(q.push_unless_full('b'), Err('b'));
    /// ```
    pub fn push_unless_full(&self, value: T) -> Result<(), T> {
        let mut value = value;
        loop {
            let (back, pos) = match self.push_or_blocked_at(value) {
                Ok(()) => return Ok(()),
                Err(blocked) => blocked,
            };
            // The slot of `pos` holds (or is being given) the value of `pos - cap`, and every
            // position below `pos` was claimed by a pusher. If no pop has claimed `pos - cap`
            // either, `cap` values are in: full. An RMW reads the latest `head` (a plain load
            // may return an older one and call a queue full whose pop is under way).
            // ORDERING: Relaxed: only the value matters; the retry synchronises by the stamp.
            let head = self.head.fetch_add(0, Ordering::Relaxed);
            if pos.wrapping_sub(head) as isize >= self.capacity() as isize {
                return Err(back);
            }
            value = back;
            crate::sync::spin_loop();
            crate::sync::thread::yield_now();
        }
    }

    /// Appends `value` to a queue that has room for every value that can exist at once (a
    /// queue of tokens as large as the ring): a push then fails only while the pop of the slot
    /// it needs is between its claim and its stamp, and
    /// [`push_unless_full`](Self::push_unless_full) waits that out.
    ///
    /// # Panics
    ///
    /// If the queue is full after all: the caller's bound does not hold (before, this spun
    /// forever).
    ///
    /// ```should_panic
    /// use tokengate::primitives::ArrayQueue;
    ///
    /// let q = ArrayQueue::new(1);
    /// q.push_bounded_by_caller(1);
    /// q.push_bounded_by_caller(2); // panics: the caller said two values cannot be in at once
    /// ```
    #[inline]
    pub fn push_bounded_by_caller(&self, value: T) {
        if self.push_unless_full(value).is_err() {
            self.bound_broken();
        }
    }

    #[cold]
    #[inline(never)]
    fn bound_broken(&self) -> ! {
        panic!(
            "ArrayQueue::push_bounded_by_caller: the queue is full ({} values): more values \
             exist at once than the caller's bound allows",
            self.capacity()
        )
    }

    /// Removes the oldest value, or returns `None` if the queue is (or, transiently, looks)
    /// empty.
    #[inline]
    pub fn pop(&self) -> Option<T> {
        // ORDERING: Relaxed: the head only names a candidate position (see `push`).
        let mut pos = self.head.load(Ordering::Relaxed);
        loop {
            let slot = &self.slots[pos & self.mask];
            // ORDERING: Acquire pairs with the pusher's Release store of `2·pos + 1`: its
            // write of the value happens before our read.
            let stamp = slot.stamp.load(Ordering::Acquire);
            let lag = stamp.wrapping_sub(pos.wrapping_mul(2).wrapping_add(1)) as isize;
            if lag == 0 {
                // ORDERING: Relaxed: the CAS only claims the position.
                match self.head.compare_exchange_weak(
                    pos,
                    pos.wrapping_add(1),
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => {
                        // SAFETY: winning the CAS for `pos` while the stamp said "full for
                        // `pos`" makes this thread the only reader of the value written by
                        // the push of `pos`, which the Acquire load made visible.
                        let value = slot.value.with(|p| unsafe { (*p).assume_init_read() });
                        // ORDERING: Release: our read happens before the next lap's write,
                        // whose pusher loads this stamp with Acquire.
                        let next_lap = pos.wrapping_add(self.mask + 1).wrapping_mul(2);
                        slot.stamp.store(next_lap, Ordering::Release);
                        return Some(value);
                    }
                    Err(current) => pos = current,
                }
            } else if lag < 0 {
                // Not yet pushed (or its push is in progress): empty.
                return None;
            } else {
                // ORDERING: Relaxed, as the first load.
                pos = self.head.load(Ordering::Relaxed);
            }
        }
    }

    /// Removes up to `max` of the oldest values at once, appending them to `out` in queue
    /// order; returns how many. One CAS of the head claims them all: the values at the
    /// positions from the head on whose pushes completed, up to the first that is empty or
    /// whose push is under way (none if the head's is). So a batch costs one contended
    /// write of the head, not one per value.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokengate::primitives::ArrayQueue;
    ///
    /// let q = ArrayQueue::new(4);
    /// for v in 1..=3 {
    ///     q.push(v).unwrap();
    /// }
    /// let mut out = Vec::new();
    /// assert_eq!(q.pop_many(2, &mut out), 2);
    /// assert_eq!(out, [1, 2]);
    /// assert_eq!(q.pop_many(8, &mut out), 1);
    /// assert_eq!(out, [1, 2, 3]);
    /// assert_eq!(q.pop_many(8, &mut out), 0);
    /// ```
    pub fn pop_many(&self, max: usize, out: &mut Vec<T>) -> usize {
        let max = max.min(self.capacity());
        if max == 0 {
            return 0;
        }
        // Room first: once the positions are claimed, nothing may fail before each value is
        // read and its slot freed.
        out.reserve(max);
        // ORDERING: Relaxed: the head only names a candidate position (see `pop`).
        let mut pos = self.head.load(Ordering::Relaxed);
        loop {
            let mut ready = 0;
            let mut moved = false;
            while ready < max {
                let at = pos.wrapping_add(ready);
                // ORDERING: Acquire, as in `pop`: the push of `at` wrote its value before.
                let stamp = self.slots[at & self.mask].stamp.load(Ordering::Acquire);
                let lag = stamp.wrapping_sub(at.wrapping_mul(2).wrapping_add(1)) as isize;
                if lag != 0 {
                    // The first slot ahead of its lap: another pop took `pos`.
                    moved = ready == 0 && lag > 0;
                    break;
                }
                ready += 1;
                // The mutant: only the first position's stamp is looked at.
                #[cfg(tokengate_mutant = "pop_many_first_stamp_only")]
                {
                    ready = max;
                }
            }
            if moved {
                // ORDERING: Relaxed, as the first load.
                pos = self.head.load(Ordering::Relaxed);
                continue;
            }
            if ready == 0 {
                return 0; // empty, or the oldest push is under way
            }
            // ORDERING: Relaxed: the CAS only claims the positions (see `pop`).
            match self.head.compare_exchange_weak(
                pos,
                pos.wrapping_add(ready),
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    for k in 0..ready {
                        let at = pos.wrapping_add(k);
                        let slot = &self.slots[at & self.mask];
                        // SAFETY: winning the CAS for `pos..pos + ready` while each stamp
                        // said "full for its position" makes this thread the only reader of
                        // those values, which the Acquire loads made visible (no other pop
                        // can claim a position below the head we moved).
                        let value = slot.value.with(|p| unsafe { (*p).assume_init_read() });
                        // ORDERING: Release, as in `pop`: our read happens before the next
                        // lap's write.
                        let next_lap = at.wrapping_add(self.mask + 1).wrapping_mul(2);
                        slot.stamp.store(next_lap, Ordering::Release);
                        // Reserved above: no allocation, so no panic, in the loop.
                        out.push(value);
                    }
                    return ready;
                }
                Err(current) => pos = current,
            }
        }
    }

    /// Whether a [`pop`](Self::pop) now would find a value: the oldest position not yet
    /// claimed by a pop holds a value whose push completed. Unlike [`len`](Self::len), a push
    /// between its claim and its stamp does not count: a waiter that asks before it sleeps
    /// does not take a push in progress for work it could take, which it could only spin on;
    /// the pusher wakes it after the push (the wake-up protocols are "publish, fence, look
    /// for sleepers").
    ///
    /// # Examples
    ///
    /// ```
    /// use tokengate::primitives::ArrayQueue;
    ///
    /// let q = ArrayQueue::new(2);
    /// assert!(!q.has_ready());
    /// q.push(7).unwrap();
    /// assert!(q.has_ready());
    /// ```
    #[inline]
    pub fn has_ready(&self) -> bool {
        // The mutant CI expects loom to catch (`loom-tests/tests/queue.rs`): a push claimed
        // but not stamped counts as ready, so a pop after a "yes" can find nothing.
        #[cfg(tokengate_mutant = "has_ready_counts_claims")]
        return !self.is_empty();
        // ORDERING: Relaxed: the head only names the position to look at; a stale one is
        // noticed by its slot's stamp (below) and read again.
        let mut pos = self.head.load(Ordering::Relaxed);
        loop {
            let slot = &self.slots[pos & self.mask];
            // ORDERING: Acquire, as in `pop`: a stamp stored by the pop that claimed `pos`
            // makes that pop's claim of `head` visible to the load below, so the loop
            // moves forward.
            let stamp = slot.stamp.load(Ordering::Acquire);
            let lag = stamp.wrapping_sub(pos.wrapping_mul(2).wrapping_add(1)) as isize;
            if lag <= 0 {
                // Published and not popped (0), or not published yet (< 0).
                return lag == 0;
            }
            // A pop took `pos` already: look at the current head.
            // ORDERING: Relaxed, as the first load.
            let head = self.head.load(Ordering::Relaxed);
            if head == pos {
                // The pop of `pos` claimed it and stamped its slot, yet its claim is not
                // visible here: cannot happen (see the Acquire above); say "nothing" rather
                // than spin.
                return false;
            }
            pos = head;
        }
    }

    /// How many values the queue holds, approximately when other threads push or pop meanwhile.
    #[inline]
    pub fn len(&self) -> usize {
        // ORDERING: Relaxed: an estimate, used for load balancing and reports only.
        let tail = self.tail.load(Ordering::Relaxed);
        // ORDERING: Relaxed, as above.
        let head = self.head.load(Ordering::Relaxed);
        // A pop may move `head` past our stale `tail`; clamp rather than wrap.
        (tail.wrapping_sub(head) as isize).clamp(0, self.capacity() as isize) as usize
    }

    /// Whether a push has claimed a position that no pop has claimed yet, judged against the
    /// latest `head`: `false` means every position claimed before this call's read of `tail`
    /// has been claimed by a pop (a push still under way at such a position would make it
    /// `true`, where [`pop`](Self::pop) returns `None`). What a `tail` read can miss are
    /// pushes that did not happen before this call (see [`SpillQueue`](super::SpillQueue),
    /// which relies on exactly that).
    #[cfg_attr(tokengate_mutant = "spill_pop_skips_claimed", allow(dead_code))]
    pub(crate) fn holds_claimed_positions(&self) -> bool {
        // ORDERING: Relaxed RMW: it reads the latest `head` (a plain load may return an older
        // one and count a position whose pop already claimed it); no data is read here.
        let head = self.head.fetch_add(0, Ordering::Relaxed);
        // ORDERING: Relaxed: every push that happened before this call is seen (coherence);
        // later ones are the caller's concern (see above). Read after `head`, so the
        // difference cannot go below the true count at that moment.
        let tail = self.tail.load(Ordering::Relaxed);
        tail.wrapping_sub(head) as isize > 0
    }

    /// Whether the queue looks empty (see [`len`](Self::len)).
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T> Drop for ArrayQueue<T> {
    fn drop(&mut self) {
        // `&mut self`: no other thread can touch the queue; drop what is still in it.
        while self.pop().is_some() {}
    }
}

impl<T> fmt::Debug for ArrayQueue<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ArrayQueue")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn pop_many_takes_what_is_there_in_order_across_a_lap() {
        let q = ArrayQueue::new(4);
        let mut out = Vec::new();
        assert_eq!(q.pop_many(4, &mut out), 0);
        assert_eq!(q.pop_many(0, &mut out), 0);
        for v in 0..3 {
            q.push(v).unwrap();
        }
        assert_eq!(q.pop_many(2, &mut out), 2);
        for v in 3..6 {
            q.push(v).unwrap(); // the last two wrap around to the freed slots
        }
        assert_eq!(q.pop_many(100, &mut out), 4, "at most the capacity");
        assert_eq!(out, [0, 1, 2, 3, 4, 5]);
        assert!(q.is_empty());
    }

    #[test]
    fn pop_many_racing_pushes_and_pops_takes_each_value_once() {
        use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
        let n = if cfg!(miri) { 40 } else { 20_000 };
        let q = Arc::new(ArrayQueue::new(8));
        let done = Arc::new(AtomicBool::new(false));
        let producer = {
            let (q, done) = (q.clone(), done.clone());
            std::thread::spawn(move || {
                for v in 0..n {
                    while q.push(v).is_err() {
                        std::thread::yield_now();
                    }
                }
                done.store(true, SeqCst);
            })
        };
        // Both consumers take until the producer is done and the queue is empty, so the
        // producer never waits on a full queue nobody drains.
        let batches = {
            let (q, done) = (q.clone(), done.clone());
            std::thread::spawn(move || {
                let mut out = Vec::new();
                loop {
                    let finished = done.load(SeqCst);
                    let before = out.len();
                    if q.pop_many(3, &mut out) == 0 {
                        if finished && q.is_empty() {
                            return out;
                        }
                        std::thread::yield_now();
                    }
                    assert!(out[before..].windows(2).all(|w| w[0] < w[1]));
                }
            })
        };
        let mut singles = Vec::new();
        loop {
            let finished = done.load(SeqCst);
            match q.pop() {
                Some(v) => singles.push(v),
                None if finished && q.is_empty() => break,
                None => std::thread::yield_now(),
            }
        }
        producer.join().unwrap();
        let mut all = batches.join().unwrap();
        all.extend(singles);
        all.sort_unstable();
        assert_eq!(all, (0..n).collect::<Vec<_>>());
    }

    #[test]
    fn smoke() {
        let q = ArrayQueue::new(4);
        assert!(q.is_empty());
        for i in 0..4 {
            q.push(i).unwrap();
        }
        assert_eq!(q.push(9), Err(9));
        for lap in 0..3 {
            for i in 0..4 {
                assert_eq!(q.pop(), Some(i + lap * 10));
                q.push(i + (lap + 1) * 10).unwrap();
            }
        }
        assert_eq!(q.len(), 4);
    }

    #[test]
    fn capacity_one_holds_one() {
        let q = ArrayQueue::new(1);
        for i in 0..3 {
            assert_eq!(q.push(i), Ok(()));
            assert_eq!(q.push(9), Err(9));
            assert_eq!(q.pop(), Some(i));
            assert_eq!(q.pop(), None);
        }
    }

    #[test]
    fn drops_what_is_left() {
        let counted = Arc::new(());
        let q = ArrayQueue::new(8);
        for _ in 0..5 {
            q.push(counted.clone()).unwrap();
        }
        drop(q.pop());
        drop(q);
        assert_eq!(Arc::strong_count(&counted), 1);
    }

    #[test]
    fn two_producers_two_consumers_lose_nothing() {
        let per = if cfg!(miri) { 50 } else { 20_000 };
        let q = Arc::new(ArrayQueue::new(16));
        let seen = Arc::new(
            (0..2 * per)
                .map(|_| AtomicUsize::new(0))
                .collect::<Vec<_>>(),
        );
        std::thread::scope(|s| {
            for p in 0..2 {
                let q = &q;
                s.spawn(move || {
                    for i in 0..per {
                        let mut v = p * per + i;
                        while let Err(back) = q.push(v) {
                            v = back;
                            std::thread::yield_now();
                        }
                    }
                });
            }
            for _ in 0..2 {
                let (q, seen) = (&q, &seen);
                s.spawn(move || {
                    let mut got = 0;
                    while got < per {
                        match q.pop() {
                            Some(v) => {
                                seen[v].fetch_add(1, Ordering::Relaxed);
                                got += 1;
                            }
                            None => std::thread::yield_now(),
                        }
                    }
                });
            }
        });
        assert!(seen.iter().all(|c| c.load(Ordering::Relaxed) == 1));
    }

    #[test]
    fn push_unless_full_refuses_only_a_full_queue() {
        let q = ArrayQueue::new(2);
        assert_eq!(q.push_unless_full(1), Ok(()));
        assert_eq!(q.push_unless_full(2), Ok(()));
        assert_eq!(q.push_unless_full(3), Err(3));
        assert_eq!(q.pop(), Some(1));
        assert_eq!(q.push_unless_full(3), Ok(()));
    }

    /// `capacity` values circulate through a queue of `capacity` slots, so pushes often meet
    /// a slot whose pop is in progress: `push_bounded_by_caller` waits those out and never
    /// calls the queue full.
    #[test]
    fn a_bounded_push_waits_out_pops_in_progress() {
        let rounds = if cfg!(miri) { 30 } else { 20_000 };
        let q = ArrayQueue::new(2);
        q.push(0usize).unwrap();
        q.push(1).unwrap();
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    let mut moved = 0;
                    while moved < rounds {
                        if let Some(v) = q.pop() {
                            q.push_bounded_by_caller(v);
                            moved += 1;
                        } else {
                            std::thread::yield_now();
                        }
                    }
                });
            }
        });
        let mut left = [q.pop().unwrap(), q.pop().unwrap()];
        left.sort_unstable();
        assert_eq!(left, [0, 1]);
    }
}
