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
//! ## Memory ordering
//!
//! Taking and giving back are a pop and a push of the queue, so everything the giver did before
//! giving a token back happens before the next taker of that token uses it.

use std::fmt;

use super::queue::ArrayQueue;
use super::wait_list::WaitList;

/// The right to have one task admitted. Move-only: exactly one holder at a time.
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
#[derive(Debug, PartialEq, Eq)]
pub struct Token(u32);

impl Token {
    /// The token's number, in `0..capacity`: an index into tables sized by the ring.
    #[inline]
    pub fn index(&self) -> usize {
        self.0 as usize
    }

    /// The token's number, consumed: how a structure that stores numbers holds a token.
    #[inline]
    pub(super) fn into_raw(self) -> u32 {
        self.0
    }

    /// The token numbered `raw`, back from a structure that held it as a number. The caller
    /// makes sure one token is never made twice (the number was the token's, taken once).
    #[inline]
    pub(super) fn from_raw(raw: u32) -> Self {
        Self(raw)
    }
}

/// A bounded, lock-free ring of `capacity` recycled [`Token`]s.
pub struct TokenRing {
    free: ArrayQueue<Token>,
    waiters: WaitList,
}

impl TokenRing {
    /// The largest capacity a ring may have (token numbers are 32-bit).
    pub const MAX_CAPACITY: usize = 1 << 24;

    /// Creates a ring holding tokens `0..capacity`.
    ///
    /// # Panics
    ///
    /// If `capacity` is zero, not a power of two, or above [`MAX_CAPACITY`](Self::MAX_CAPACITY).
    pub fn new(capacity: usize) -> Self {
        assert!(
            capacity <= Self::MAX_CAPACITY,
            "token ring capacity {capacity} is too large"
        );
        let free = ArrayQueue::new(capacity);
        for i in 0..capacity as u32 {
            // The queue has room for exactly `capacity` tokens; it cannot be full yet.
            let pushed = free.push(Token(i));
            debug_assert!(pushed.is_ok());
        }
        Self {
            free,
            waiters: WaitList::new(),
        }
    }

    /// Takes a token if one is free; never waits.
    #[inline]
    pub fn try_take(&self) -> Option<Token> {
        self.free.pop()
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
    #[inline]
    pub fn give_back(&self, token: Token) {
        // The ring has a slot for every token.
        self.free.push_bounded_by_caller(token);
        self.waiters.notify_all();
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
