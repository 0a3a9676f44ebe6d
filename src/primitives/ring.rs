//! The token ring: a bounded pool of recycled tokens that admits tasks.
//!
//! A submission takes a [`Token`] before it is admitted and the worker gives it back when the
//! task is finished, so at most `capacity` tasks are ever admitted and unfinished at once, and
//! every per-task structure indexed by a token (the token table, the mailbox lanes) has a fixed
//! size. Tokens are never allocated per task.
//!
//! The ring is an [`ArrayQueue`] of free token numbers, full at the start. A taker that finds it
//! empty waits in a `WaitList` (`wait_list.rs`) which every give-back notifies.
//!
//! Each token carries the serial number of the ring that made it, so a token given back to
//! another ring is refused with a panic (see [`TokenRing::give_back`]) rather than making that
//! ring hold one token twice. Serials are never reused: a process creates fewer than 2^40
//! rings, or the 2^40th creation panics.
//!
//! ## Memory ordering
//!
//! Taking and giving back are a pop and a push of the queue, so everything the giver did before
//! giving a token back happens before the next taker of that token uses it.

use std::fmt;

use super::queue::ArrayQueue;
use super::wait_list::WaitList;

/// The right to have one task admitted. Move-only: exactly one holder at a time.
///
/// A token knows the ring it belongs to: [`TokenRing::give_back`] refuses another ring's.
///
/// # Examples
///
/// ```
/// use tokengate::primitives::TokenRing;
///
/// let ring = TokenRing::new(2);
/// let a = ring.try_take().unwrap();
/// let b = ring.try_take().unwrap();
/// assert!(ring.try_take().is_none()); // every token is out
/// assert_ne!(a.index(), b.index());
/// ring.give_back(a);
/// assert_eq!(ring.available(), 1);
/// # ring.give_back(b);
/// ```
#[derive(PartialEq, Eq)]
pub struct Token(u64);

/// Bits of a token's number (`TokenRing::MAX_CAPACITY` is `1 << INDEX_BITS`); the bits above
/// hold its ring's serial.
const INDEX_BITS: u32 = 24;
const INDEX_MASK: u64 = (1 << INDEX_BITS) - 1;
/// Ring serials run from 1 below this bound.
const SERIAL_LIMIT: u64 = 1 << (64 - INDEX_BITS);

impl Token {
    /// The token's number, in `0..capacity`: an index into tables sized by the ring.
    #[inline]
    pub fn index(&self) -> usize {
        Self::index_of_raw(self.0)
    }

    /// The serial of the ring the token belongs to.
    #[inline]
    fn ring_serial(&self) -> u64 {
        self.0 >> INDEX_BITS
    }

    /// The token consumed into one word (its number and its ring's serial): how a structure
    /// that stores words holds a token.
    #[inline]
    pub(super) fn into_raw(self) -> u64 {
        self.0
    }

    /// The token's number, read from a word [`into_raw`](Self::into_raw) made.
    #[inline]
    pub(super) fn index_of_raw(raw: u64) -> usize {
        (raw & INDEX_MASK) as usize
    }

    /// The token back from a word that [`into_raw`](Self::into_raw) made. The caller makes
    /// sure one token is never made twice (the word was the token's, taken once).
    #[inline]
    pub(super) fn from_raw(raw: u64) -> Self {
        Self(raw)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("index", &self.index())
            .field("ring", &self.ring_serial())
            .finish()
    }
}

/// A bounded, lock-free ring of `capacity` recycled [`Token`]s.
pub struct TokenRing {
    free: ArrayQueue<Token>,
    waiters: WaitList,
    /// This ring's serial, in the high bits of each of its tokens.
    serial: u64,
}

impl TokenRing {
    /// The largest capacity a ring may have (token numbers are 32-bit).
    pub const MAX_CAPACITY: usize = 1 << INDEX_BITS;

    /// Creates a ring holding tokens `0..capacity`.
    ///
    /// # Panics
    ///
    /// If `capacity` is zero, not a power of two, or above [`MAX_CAPACITY`](Self::MAX_CAPACITY);
    /// if this is the 2^40th ring of the process (serials are never reused).
    pub fn new(capacity: usize) -> Self {
        assert!(
            capacity <= Self::MAX_CAPACITY,
            "token ring capacity {capacity} is too large"
        );
        // A std atomic under loom too: an identity, it orders nothing (as the op table's
        // serials).
        static NEXT_SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        // ORDERING: Relaxed: only uniqueness matters.
        let serial = NEXT_SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        assert!(
            serial < SERIAL_LIMIT,
            "more than 2^40 token rings created: ring serials would repeat"
        );
        let free = ArrayQueue::new(capacity);
        for i in 0..capacity as u64 {
            // The queue has room for exactly `capacity` tokens; it cannot be full yet.
            let pushed = free.push(Token(serial << INDEX_BITS | i));
            debug_assert!(pushed.is_ok());
        }
        Self {
            free,
            waiters: WaitList::new(),
            serial,
        }
    }

    /// Takes a token if one is free; never waits.
    #[inline]
    pub fn try_take(&self) -> Option<Token> {
        self.free.pop()
    }

    /// Takes up to `max` tokens at once (one claim of the ring's head for all of them; see
    /// [`ArrayQueue::pop_many`](super::ArrayQueue::pop_many)), appending them to `out`;
    /// returns how many.
    ///
    /// ```
    /// use tokengate::primitives::TokenRing;
    ///
    /// let ring = TokenRing::new(4);
    /// let mut tokens = Vec::new();
    /// assert_eq!(ring.try_take_many(3, &mut tokens), 3);
    /// assert_eq!(ring.available(), 1);
    /// tokens.into_iter().for_each(|t| ring.give_back(t));
    /// assert_eq!(ring.available(), 4);
    /// ```
    #[inline]
    pub fn try_take_many(&self, max: usize, out: &mut Vec<Token>) -> usize {
        self.free.pop_many(max, out)
    }

    /// Takes a token, waiting (spin, then yield, then park) while every token is out.
    /// Returns `None` as soon as `give_up()` is true, which is checked on every wake-up.
    pub fn take_or(&self, give_up: impl Fn() -> bool) -> Option<Token> {
        self.waiters.wait_for(|| match self.free.pop() {
            Some(t) => Some(Some(t)),
            None if give_up() => Some(None),
            None => None,
        })
    }

    /// Returns a token to the ring and wakes the threads waiting in [`take_or`](Self::take_or)
    /// or [`wait_all_home`](Self::wait_all_home), if any. All of them: they wait for different
    /// conditions, and a waiter only exists when the ring ran dry, off the hot path.
    ///
    /// # Panics
    ///
    /// If `token` was taken from another ring (the token is then dropped: that ring has one
    /// token less for good). Accepting it would give this ring one of its tokens twice.
    ///
    /// ```should_panic
    /// use tokengate::primitives::TokenRing;
    ///
    /// let (ours, theirs) = (TokenRing::new(2), TokenRing::new(2));
    /// ours.give_back(theirs.try_take().unwrap()); // panics: not this ring's token
    /// ```
    #[inline]
    pub fn give_back(&self, token: Token) {
        if token.ring_serial() != self.serial {
            Self::foreign_token(token);
        }
        // The ring has a slot for every token, and the check above keeps out any other.
        self.free.push_bounded_by_caller(token);
        self.waiters.notify_all();
    }

    #[cold]
    #[inline(never)]
    fn foreign_token(token: Token) -> ! {
        panic!(
            "TokenRing::give_back: token {} belongs to another ring (ring serial {}); a token \
             goes back to the ring it was taken from",
            token.index(),
            token.ring_serial()
        )
    }

    /// Calls `attempt` until it returns `Some`, waiting (spin, then yield, then park) on the
    /// ring's wait list in between: woken by every [`give_back`](Self::give_back) and
    /// [`wake_all_waiters`](Self::wake_all_waiters). For a condition on tokens that are held
    /// elsewhere as well as in the ring (a holder that keeps free tokens at hand must call
    /// `wake_all_waiters` after each one it puts there, so that no waiter misses it).
    pub fn wait_for<R>(&self, attempt: impl FnMut() -> Option<R>) -> R {
        self.waiters.wait_for(attempt)
    }

    /// Blocks until every token is back in the ring (spin, then yield, then park).
    pub fn wait_all_home(&self) {
        self.waiters
            .wait_for(|| (self.available() == self.capacity()).then_some(()));
    }

    /// Wakes every waiting taker, so that they re-check their `give_up` condition.
    pub fn wake_all_waiters(&self) {
        self.waiters.notify_all();
    }

    /// How many tokens are free (approximate while others take and give back).
    #[inline]
    pub fn available(&self) -> usize {
        self.free.len()
    }

    /// How many tokens the ring has in all.
    #[inline]
    pub fn capacity(&self) -> usize {
        self.free.capacity()
    }
}

impl fmt::Debug for TokenRing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenRing")
            .field("available", &self.available())
            .field("capacity", &self.capacity())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::panic::{catch_unwind, AssertUnwindSafe};

    #[test]
    fn smoke() {
        let ring = TokenRing::new(4);
        let tokens: Vec<Token> = (0..4).map(|_| ring.try_take().unwrap()).collect();
        assert!(ring.try_take().is_none());
        let mut indices: Vec<usize> = tokens.iter().map(Token::index).collect();
        indices.sort_unstable();
        assert_eq!(indices, [0, 1, 2, 3]);
        for t in tokens {
            ring.give_back(t);
        }
        assert_eq!(ring.available(), 4);
    }

    /// Regression (issue 21): a token of another ring was accepted, so this ring held one of
    /// its numbers twice (two live holders) and, once every token was home, a give-back spun
    /// forever on the full queue. It is refused, and the ring is left as it was.
    #[test]
    fn a_token_of_another_ring_is_refused() {
        let ours = TokenRing::new(2);
        let theirs = TokenRing::new(2);
        let mine = ours.try_take().unwrap();
        let foreign = theirs.try_take().unwrap();
        assert_eq!(
            mine.index(),
            foreign.index(),
            "same number, different rings"
        );
        let refused = catch_unwind(AssertUnwindSafe(|| ours.give_back(foreign)));
        let message = refused.expect_err("refused").downcast::<String>().unwrap();
        assert!(message.contains("belongs to another ring"), "{message}");
        assert_eq!(ours.available(), 1, "nothing was added");
        ours.give_back(mine);
        assert_eq!(ours.available(), 2);
        let taken: Vec<usize> = (0..2).map(|_| ours.try_take().unwrap().index()).collect();
        assert_ne!(taken[0], taken[1], "every number is out once");
    }

    /// Regression (issue 21): a `give_up` condition (or a `wait_for` attempt) that panicked
    /// after the taker registered left its wait-list entry behind, one per call.
    #[test]
    fn a_panicking_condition_leaves_no_wait_list_entry() {
        let ring = TokenRing::new(1);
        let held = ring.try_take().unwrap();
        for _ in 0..3 {
            let unwound = catch_unwind(AssertUnwindSafe(|| {
                ring.take_or(|| {
                    if ring.waiters.registered() != 0 {
                        panic!("give_up panics once registered");
                    }
                    false
                })
            }));
            assert!(unwound.is_err());
            let unwound = catch_unwind(AssertUnwindSafe(|| {
                ring.wait_for(|| -> Option<()> {
                    if ring.waiters.registered() != 0 {
                        panic!("attempt panics once registered");
                    }
                    None
                })
            }));
            assert!(unwound.is_err());
        }
        assert_eq!(ring.waiters.registered(), 0, "no entry left behind");
        ring.give_back(held);
    }
}
