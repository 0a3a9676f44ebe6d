//! A worker's local deque: a bounded Chase–Lev work-stealing deque of [`Token`]s.
//!
//! The owner (one thread: the worker) pushes and pops at the *bottom*, newest first (LIFO), so
//! a task it submits and then joins comes straight back to it, cache-hot, as `rayon::join`'s
//! does. Any other thread steals at the *top*, oldest first: in nested fork-join the oldest
//! task is the largest piece of work left.
//!
//! The owner's push and pop make no read-modify-write in the common case: a push is two
//! stores (the second a release); a pop is a store, one `SeqCst` fence and a load, plus a CAS
//! only when it takes the last token (racing the thieves for it). A steal is one CAS.
//!
//! It is bounded without a resize: the runtime sizes it to the token ring, and a token is in at
//! most one queue at a time, so a push never finds it full. Slots hold the token (its number
//! and its ring's serial, one word) in an atomic, so a thief's speculative read of a slot that
//! the owner overwrites is not a data race (its CAS of `top` then fails and the read is
//! discarded).
//!
//! ## Memory ordering
//!
//! These are the C11 orderings of Lê, Pop, Cohen and Zappa Nardelli, *Correct and Efficient
//! Work-Stealing for Weak Memory Models* (PPoPP 2013), for a fixed buffer:
//!
//! - `push`: slot store (Relaxed); `bottom` store (Release). The paper puts a release fence
//!   before a relaxed store instead; that fence also makes every *later* relaxed store of
//!   `bottom` (a pop's, a restore's) carry the push's writes to a thief that reads it. Here
//!   every store of `bottom` is a release store, which gives thieves the same (a thief that
//!   reads a pop's `bottom` sees the pushes before it) and, unlike a fence, is understood by
//!   ThreadSanitizer. On x86 both are plain stores. (With only the push's store a release,
//!   the deque model finds the thief reading a slot's payload unordered: loom reported it.)
//!   A thief's `Acquire` load of `bottom` so sees the token and everything its holder wrote
//!   before pushing it (such as its task in the token table).
//! - `pop`: `bottom` store of `b - 1` (Release, see above); `fence(SeqCst)`; `top` load.
//!   Paired with the thief's `fence(SeqCst)` between its `top` and `bottom` loads: the owner
//!   and a thief cannot both miss each other's claim on the last token, so they race for it
//!   with a CAS of `top`, and exactly one wins. Without this fence both may take it (the `mutant` model in
//!   `loom-tests/tests/deque.rs` shows loom catching exactly that).
//! - `steal`: `top` load (Acquire); `fence(SeqCst)`; `bottom` load (Acquire); slot load; CAS
//!   of `top` (SeqCst). A failed CAS means another thread took the token: the thief reports
//!   [`Steal::Retry`] and reads nothing it loaded.
//!
//! The owner's methods are `unsafe`: two threads acting as the owner at once could both pop
//! one token, and a token must have one holder (the token table relies on it).

use crossbeam_utils::CachePadded;
use std::fmt;

use super::ring::Token;
use crate::sync::{fence, AtomicU64, AtomicUsize, Ordering};

/// What a [`LocalDeque::steal`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Steal {
    /// The oldest token, now the thief's.
    Taken(Token),
    /// Nothing to steal.
    Empty,
    /// Lost a race for the oldest token (to the owner or another thief): try again.
    Retry,
}

/// A bounded Chase–Lev deque of tokens: LIFO for its owner, FIFO for thieves.
///
/// # Examples
///
/// ```
/// use tokengate::primitives::{LocalDeque, Steal, TokenRing};
///
/// let ring = TokenRing::new(4);
/// let deque = LocalDeque::new(4);
/// let (a, b) = (ring.try_take().unwrap(), ring.try_take().unwrap());
/// let (a_index, b_index) = (a.index(), b.index());
/// // SAFETY: this thread is the deque's only owner.
/// unsafe {
///     deque.push(a);
///     deque.push(b);
/// }
/// // A thief takes the oldest; the owner pops the newest.
/// let Steal::Taken(oldest) = deque.steal() else { unreachable!() };
/// assert_eq!(oldest.index(), a_index);
/// // SAFETY: as above.
/// let newest = unsafe { deque.pop() }.unwrap();
/// assert_eq!(newest.index(), b_index);
/// assert_eq!(deque.steal(), Steal::Empty);
/// # ring.give_back(oldest);
/// # ring.give_back(newest);
/// ```
pub struct LocalDeque {
    /// Index of the oldest token: thieves advance it by CAS; the owner by CAS for the last.
    top: CachePadded<AtomicUsize>,
    /// One past the newest token: written by the owner only.
    bottom: CachePadded<AtomicUsize>,
    /// Tokens as words (`Token::into_raw`: the number and the ring serial).
    slots: Box<[AtomicU64]>,
    /// `capacity - 1`; positions map to slots by `pos & mask`.
    mask: usize,
}

impl LocalDeque {
    /// An empty deque with room for `capacity` tokens (a power of two).
    ///
    /// # Panics
    ///
    /// If `capacity` is zero or not a power of two.
    pub fn new(capacity: usize) -> Self {
        assert!(
            capacity.is_power_of_two(),
            "deque capacity {capacity} must be a power of two"
        );
        Self {
            top: CachePadded::new(AtomicUsize::new(0)),
            bottom: CachePadded::new(AtomicUsize::new(0)),
            slots: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
            mask: capacity - 1,
        }
    }

    /// Pushes `token` at the bottom.
    ///
    /// # Safety
    ///
    /// Only the deque's owner calls `push`, [`try_push`](Self::try_push) and
    /// [`pop`](Self::pop): one thread for the deque's whole life (or threads ordered by a
    /// happens-before hand-over of the ownership).
    ///
    /// # Panics
    ///
    /// If the deque already holds `capacity` tokens (a caller that cannot know there is
    /// room uses [`try_push`](Self::try_push)).
    #[inline]
    pub unsafe fn push(&self, token: Token) {
        // SAFETY: the caller is the owner (this function's contract).
        if unsafe { self.try_push(token) }.is_err() {
            self.full();
        }
    }

    #[cold]
    #[inline(never)]
    fn full(&self) -> ! {
        panic!("a local deque holds at most {} tokens", self.mask + 1)
    }

    /// Pushes `token` at the bottom, or hands it back if the deque holds `capacity` tokens
    /// (thieves only ever make room: a full deque stays full until the owner or a thief takes
    /// a token).
    ///
    /// # Safety
    ///
    /// As [`push`](Self::push): only the owner.
    #[inline]
    pub unsafe fn try_push(&self, token: Token) -> Result<(), Token> {
        // ORDERING: Relaxed: only the owner writes `bottom`.
        let b = self.bottom.load(Ordering::Relaxed);
        // ORDERING: Acquire: a thief's CAS that freed the slot we are about to overwrite read
        // it before (its CAS is SeqCst, so a release); the slot store below comes after.
        let t = self.top.load(Ordering::Acquire);
        if b.wrapping_sub(t) > self.mask {
            return Err(token);
        }
        // ORDERING: Relaxed: published by the `bottom` store below.
        self.slots[b & self.mask].store(token.into_raw(), Ordering::Relaxed);
        // ORDERING: Release: the slot (and what the holder wrote before pushing) happens
        // before a thief's Acquire load of `bottom` that sees `b + 1`, or any later value:
        // every store of `bottom` is a release (see the module docs).
        self.bottom.store(b.wrapping_add(1), Ordering::Release);
        Ok(())
    }

    /// Pops the newest token, if any.
    ///
    /// # Safety
    ///
    /// As [`push`](Self::push): only the owner.
    #[inline]
    pub unsafe fn pop(&self) -> Option<Token> {
        // ORDERING: Relaxed: only the owner writes `bottom`.
        let b = self.bottom.load(Ordering::Relaxed);
        // ORDERING: Relaxed: a hint; an empty deque is decided below.
        if b == self.top.load(Ordering::Relaxed) {
            return None;
        }
        let b = b.wrapping_sub(1);
        // ORDERING: Release, as every store of `bottom` (module docs); ordered before the
        // `top` load by the fence below.
        self.bottom.store(b, Ordering::Release);
        // ORDERING: SeqCst fence between claiming `b` (the store above) and reading `top`,
        // paired with the fence in `steal` between its `top` and `bottom` loads: a thief and
        // the owner cannot both miss the other's claim (see the module docs).
        #[cfg(not(tokengate_mutant = "deque_pop_fence"))]
        fence(Ordering::SeqCst);
        // ORDERING: Relaxed, ordered by the fence above.
        let t = self.top.load(Ordering::Relaxed);
        let len = b.wrapping_sub(t) as isize;
        if len < 0 {
            // Empty: a thief took the last token meanwhile. Restore `bottom`.
            // ORDERING: Release, as every store of `bottom` (module docs).
            self.bottom.store(b.wrapping_add(1), Ordering::Release);
            return None;
        }
        // ORDERING: Relaxed: the owner wrote this slot itself.
        let raw = self.slots[b & self.mask].load(Ordering::Relaxed);
        if len > 0 {
            // More than one token: thieves stop at `top < b`, this one is the owner's.
            return Some(Token::from_raw(raw));
        }
        // The last token: race the thieves for it by advancing `top`.
        // ORDERING: SeqCst on success, as the thieves' CAS (one total order of claims);
        // Relaxed on failure: we read nothing we rely on.
        let won = self
            .top
            .compare_exchange(t, t.wrapping_add(1), Ordering::SeqCst, Ordering::Relaxed)
            .is_ok();
        // ORDERING: Release, as every store of `bottom` (module docs); empty now either way.
        self.bottom.store(b.wrapping_add(1), Ordering::Release);
        // The number was this deque's token, taken once: by the CAS, won here or by a thief.
        won.then(|| Token::from_raw(raw))
    }

    /// The number of the newest token, without taking it (a thief may still take it if it is
    /// the only one).
    ///
    /// # Safety
    ///
    /// As [`push`](Self::push): only the owner.
    #[inline]
    pub unsafe fn peek_newest(&self) -> Option<usize> {
        // ORDERING: Relaxed: only the owner writes `bottom`.
        let b = self.bottom.load(Ordering::Relaxed);
        // ORDERING: Relaxed: a hint; `top` only grows, and the slot below `b` was written by
        // the owner (us), so reading it is no race whatever thieves do.
        let t = self.top.load(Ordering::Relaxed);
        if b.wrapping_sub(t) as isize <= 0 {
            return None;
        }
        let b = b.wrapping_sub(1);
        // ORDERING: Relaxed: the owner wrote this slot itself.
        Some(Token::index_of_raw(
            self.slots[b & self.mask].load(Ordering::Relaxed),
        ))
    }

    /// Steals the oldest token.
    #[inline]
    pub fn steal(&self) -> Steal {
        // ORDERING: Acquire: pairs with a previous thief's (or the owner's) CAS of `top`, so
        // the slot we read below is not one a later push has overwritten unseen.
        let t = self.top.load(Ordering::Acquire);
        // ORDERING: SeqCst fence between the `top` and `bottom` loads, paired with the fence
        // in `pop` (see the module docs).
        fence(Ordering::SeqCst);
        // ORDERING: Acquire: pairs with the Release store in `push`, so the slot and the
        // pusher's writes before it are visible.
        let b = self.bottom.load(Ordering::Acquire);
        if b.wrapping_sub(t) as isize <= 0 {
            return Steal::Empty;
        }
        // ORDERING: Relaxed: published by the push (see above); if the owner reuses the slot
        // meanwhile, `top` has moved and the CAS below fails.
        let raw = self.slots[t & self.mask].load(Ordering::Relaxed);
        // ORDERING: SeqCst: one total order of claims with the owner's CAS for the last token.
        match self
            .top
            .compare_exchange(t, t.wrapping_add(1), Ordering::SeqCst, Ordering::Relaxed)
        {
            // The CAS claimed position `t`: its number is ours alone.
            Ok(_) => Steal::Taken(Token::from_raw(raw)),
            Err(_) => Steal::Retry,
        }
    }

    /// How many tokens wait (approximate under concurrency).
    #[inline]
    pub fn len(&self) -> usize {
        // ORDERING: Relaxed: a hint. `bottom` first: a stale `top` can only make the count
        // larger, never wrap it below zero in a way the `max` below misses.
        let b = self.bottom.load(Ordering::Relaxed);
        // ORDERING: Relaxed: a hint.
        let t = self.top.load(Ordering::Relaxed);
        (b.wrapping_sub(t) as isize).max(0) as usize
    }

    /// Whether the deque looks empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many tokens it has room for.
    pub fn capacity(&self) -> usize {
        self.mask + 1
    }
}

impl fmt::Debug for LocalDeque {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalDeque")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::primitives::TokenRing;
    use std::sync::atomic::AtomicBool;
    use std::sync::Arc;

    #[test]
    fn owner_is_lifo_thieves_fifo() {
        let ring = TokenRing::new(8);
        let d = LocalDeque::new(8);
        let tokens: Vec<Token> = (0..4).map(|_| ring.try_take().unwrap()).collect();
        let order: Vec<usize> = tokens.iter().map(Token::index).collect();
        for t in tokens {
            // SAFETY: this test's thread is the only owner.
            unsafe { d.push(t) };
        }
        assert_eq!(d.len(), 4);
        let Steal::Taken(first) = d.steal() else {
            panic!("a full deque has something to steal")
        };
        assert_eq!(first.index(), order[0]);
        // SAFETY: as above.
        let last = unsafe { d.pop() }.unwrap();
        assert_eq!(last.index(), order[3]);
        let mut rest = Vec::new();
        // SAFETY: as above.
        while let Some(t) = unsafe { d.pop() } {
            rest.push(t.index());
            ring.give_back(t);
        }
        assert_eq!(rest, vec![order[2], order[1]]);
        assert!(d.is_empty());
        ring.give_back(first);
        ring.give_back(last);
    }

    #[test]
    fn wraps_around_many_times() {
        let ring = TokenRing::new(2);
        let d = LocalDeque::new(2);
        for _ in 0..100 {
            let (a, b) = (ring.try_take().unwrap(), ring.try_take().unwrap());
            // SAFETY: this test's thread is the only owner.
            unsafe {
                d.push(a);
                d.push(b);
            }
            let Steal::Taken(x) = d.steal() else {
                panic!("two tokens queued")
            };
            // SAFETY: as above.
            let y = unsafe { d.pop() }.unwrap();
            // SAFETY: as above.
            assert!(unsafe { d.pop() }.is_none());
            assert_eq!(d.steal(), Steal::Empty);
            ring.give_back(x);
            ring.give_back(y);
        }
    }

    /// The owner pushes and pops while two thieves steal; every token is taken exactly once:
    /// each taker clears the token's "queued" mark, and finding it clear would mean a second
    /// taker. (The interleavings are loom's job; this runs the real atomics, and under miri
    /// checks the accesses.)
    #[test]
    fn owner_and_thieves_take_each_token_once() {
        const CAPACITY: usize = 16;
        let n = if cfg!(miri) { 64 } else { 20_000 };
        let ring = Arc::new(TokenRing::new(CAPACITY));
        let d = Arc::new(LocalDeque::new(CAPACITY));
        let queued: Arc<Vec<AtomicBool>> =
            Arc::new((0..CAPACITY).map(|_| AtomicBool::new(false)).collect());
        let done = Arc::new(AtomicBool::new(false));
        let take = {
            let (ring, queued) = (ring.clone(), queued.clone());
            move |t: Token| {
                assert!(
                    queued[t.index()].swap(false, Ordering::Relaxed),
                    "token {} taken twice",
                    t.index()
                );
                ring.give_back(t);
            }
        };
        let thieves: Vec<_> = (0..2)
            .map(|_| {
                let (d, done, take) = (d.clone(), done.clone(), take.clone());
                std::thread::spawn(move || {
                    let mut taken = 0usize;
                    loop {
                        match d.steal() {
                            Steal::Taken(t) => {
                                taken += 1;
                                take(t);
                            }
                            Steal::Retry => {}
                            Steal::Empty if done.load(Ordering::Acquire) => return taken,
                            Steal::Empty => std::thread::yield_now(),
                        }
                    }
                })
            })
            .collect();
        let (mut pushed, mut popped) = (0usize, 0usize);
        while pushed < n {
            if let Some(t) = ring.try_take() {
                queued[t.index()].store(true, Ordering::Relaxed);
                // SAFETY: this thread is the only owner.
                unsafe { d.push(t) };
                pushed += 1;
            }
            if pushed % 3 == 0 {
                // SAFETY: as above.
                if let Some(t) = unsafe { d.pop() } {
                    popped += 1;
                    take(t);
                }
            }
        }
        // SAFETY: as above.
        while let Some(t) = unsafe { d.pop() } {
            popped += 1;
            take(t);
        }
        done.store(true, Ordering::Release);
        let stolen: usize = thieves.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(popped + stolen, n, "every token pushed was taken");
        assert_eq!(ring.available(), CAPACITY);
    }
}
