//! Token caches: each worker keeps a few free tokens at hand, so that a task it submits and a
//! task it finishes take and give back a token without touching the ring that every thread
//! shares (the magazines of Bonwick and Adams, one token at a time).
//!
//! The bound stays exact: a cached token is a free token, and every taker can reach it. A
//! worker takes from its own cache first, then the ring, then the other workers' caches; any
//! other thread takes from the ring, then the caches. So a submission sees `Full` (or waits)
//! only when it found no free token in any of these places, looked at one after another: a
//! token given back into a place already looked at while another is taken from one not yet
//! looked at can make a `try_submit` see `Full` at an instant when one was free (as a
//! concurrent take and give-back could before, within the ring alone); `submit` waits and
//! looks again.
//!
//! A cache is an [`ArrayQueue`] of [`CACHE_LEN`] tokens (fewer for a smaller ring): its owner
//! pushes and pops it with uncontended atomics on its own cache lines; others pop it only when
//! the ring is dry.
//!
//! ## Memory ordering
//!
//! Handing a token over through a cache is a push and a pop of an [`ArrayQueue`]: Release and
//! Acquire, as through the ring. A thread waiting for a token (on the ring's wait list) must
//! not miss one put into a cache: after every such push the worker calls
//! [`TokenRing::wake_all_waiters`], whose `SeqCst` fence and waiter count pair with the
//! waiter's fence between registering and re-checking (`wait_list.rs`), exactly as a give-back
//! to the ring does.

use crossbeam_utils::CachePadded;
use std::fmt;

use super::{current, Engine};
use crate::primitives::{ArrayQueue, Token};

/// The most free tokens a worker keeps at hand.
pub(crate) const CACHE_LEN: usize = 32;

/// One cache of free tokens per worker.
pub(crate) struct TokenCaches {
    caches: Box<[CachePadded<ArrayQueue<Token>>]>,
}

impl TokenCaches {
    /// Caches for `workers` workers of a ring of `capacity` tokens (a power of two): each
    /// holds at most `CACHE_LEN` tokens, and at most a quarter of the ring per worker.
    pub(crate) fn new(workers: usize, capacity: usize) -> Self {
        let len = CACHE_LEN.min(capacity / 4).max(1);
        Self {
            caches: (0..workers)
                .map(|_| CachePadded::new(ArrayQueue::new(len)))
                .collect(),
        }
    }

    /// How many free tokens the caches hold (approximate while workers use them).
    pub(crate) fn len(&self) -> usize {
        self.caches.iter().map(|c| c.len()).sum()
    }
}

impl fmt::Debug for TokenCaches {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenCaches")
            .field("workers", &self.caches.len())
            .field("cached", &self.len())
            .finish()
    }
}

impl Engine {
    /// Takes a free token, never waiting: the calling worker's cache, the ring, then the other
    /// caches.
    #[inline]
    pub(crate) fn take_token(&self) -> Option<Token> {
        self.take_token_as(current::current_index(self.id()))
    }

    /// [`take_token`](Self::take_token) on worker `me` (the calling thread's index, if it is a
    /// worker of this runtime).
    #[inline(always)]
    pub(crate) fn take_token_as(&self, me: Option<usize>) -> Option<Token> {
        if let Some(me) = me {
            if let Some(token) = self.caches.caches[me].pop() {
                return Some(token);
            }
        }
        self.ring
            .try_take()
            .or_else(|| self.take_token_from_caches(me))
    }

    /// Takes a free token from any worker's cache but `except`'s (the ring was dry).
    /// Takes up to `max` free tokens at once, appending them to `out` (for a batch of
    /// submissions): the calling worker's cache first, then the ring in one claim, then
    /// other workers' caches. Returns how many.
    pub(crate) fn take_tokens(&self, max: usize, out: &mut Vec<Token>) -> usize {
        let before = out.len();
        let me = current::current_index(self.id());
        if let Some(me) = me {
            self.caches.caches[me].pop_many(max, out);
        }
        let missing = max - (out.len() - before);
        if missing > 0 && self.ring.try_take_many(missing, out) == 0 {
            // The ring is dry: a token from another worker's cache, as `take_token` does.
            if let Some(token) = self.take_token_from_caches(me) {
                out.push(token);
            }
        }
        out.len() - before
    }

    #[cold]
    fn take_token_from_caches(&self, except: Option<usize>) -> Option<Token> {
        let caches = &self.caches.caches;
        let start = except.map_or(0, |me| me + 1);
        (0..caches.len())
            .map(|k| (start + k) % caches.len())
            .filter(|&w| Some(w) != except)
            .find_map(|w| caches[w].pop())
    }

    /// Takes a free token, waiting while every token is out; `None` as soon as `give_up()`.
    pub(crate) fn take_token_or(&self, give_up: impl Fn() -> bool) -> Option<Token> {
        self.ring.wait_for(|| match self.take_token() {
            Some(token) => Some(Some(token)),
            None if give_up() => Some(None),
            None => None,
        })
    }

    /// Gives a token back from worker `worker` (the calling thread): into its cache if it has
    /// room, else to the ring.
    #[inline(always)]
    pub(crate) fn give_token_from(&self, worker: usize, token: Token) {
        match self.caches.caches[worker].push(token) {
            // A waiter for a token must see it: see the module docs.
            Ok(()) => self.ring.wake_all_waiters(),
            Err(token) => self.ring.give_back(token),
        }
    }

    /// How many tokens are free: in the ring and in the caches (approximate while others
    /// take and give back).
    pub(crate) fn free_tokens(&self) -> usize {
        self.ring.available() + self.caches.len()
    }

    /// Blocks until every token is free (every admitted task finished). Call once admission
    /// is closed.
    ///
    /// The count is a sum of queue lengths read one after another. Each length is never
    /// above what its queue held when its read began (`ArrayQueue::len` reads `tail` before
    /// `head`), so the sum can overcount only a token counted in one place and then moved to
    /// a place read later. After `close`, a free token in the ring only moves back to the
    /// ring (an admitter that took it sees `closed` and gives it back there), and the ring is
    /// read first; a token still out is in no queue until its task ends. So the sum never
    /// reaches the capacity while a token is out.
    pub(crate) fn wait_all_tokens_home(&self) {
        let all_home = || self.free_tokens() == self.ring.capacity();
        // On a worker (of another runtime: a worker never waits for its own runtime's
        // tokens), keep serving that worker's runtime meanwhile: a task of this runtime may
        // be waiting for a task queued on it.
        if current::with_any_current(|w| w.help_until(all_home, false)).is_none() {
            self.ring.wait_for(|| all_home().then_some(()));
        }
    }
}
