//! A worker's mailbox: one lock-free lane per [`Weight`], taken Light before Medium before
//! Heavy, without starving a lower lane.
//!
//! Lanes carry [`Token`]s; the task itself waits in the token table under the token's number.
//! Each lane is a [`SpillQueue`]: a lock-free front of the size the mailbox is made with, and
//! an overflow behind a lock for a burst beyond it, so a push is never refused and a mailbox
//! need not be sized for every token of the ring.
//!
//! ## Starvation
//!
//! [`LanePicker`] counts, per lane, how many picks in a row passed the lane over while it held
//! work. A lane passed over [`STARVATION_LIMIT`] times goes first on the next pick. So a Light
//! task normally overtakes every Medium and Heavy task waiting, and a non-empty lane waits at
//! most `STARVATION_LIMIT + 1` picks (+1: two starving lanes take turns).
//!
//! ## Memory ordering
//!
//! That of [`SpillQueue`]: a pushed token's task, written to the token table before the push,
//! is visible to whoever pops the token; tokens pushed in causal order leave a lane in that
//! order.

use std::fmt;

use super::ring::Token;
use super::spill::SpillQueue;
use crate::operation::Weight;

/// How many picks in a row may pass over a non-empty lane before it goes first.
pub const STARVATION_LIMIT: u8 = 8;

/// A worker's three lanes, each first-in, first-out.
///
/// # Examples
///
/// ```
/// use tokengate::primitives::{LanePicker, Mailbox, TokenRing};
/// use tokengate::Weight;
///
/// let ring = TokenRing::new(4);
/// let mailbox = Mailbox::new(2);
/// let heavy = ring.try_take().unwrap();
/// let light = ring.try_take().unwrap();
/// let light_index = light.index();
/// mailbox.push(Weight::Heavy, heavy);
/// mailbox.push(Weight::Light, light);
///
/// let mut picker = LanePicker::default();
/// let (weight, token) = mailbox.pop(&mut picker).unwrap();
/// assert_eq!((weight, token.index()), (Weight::Light, light_index)); // Light first
/// # ring.give_back(token);
/// # ring.give_back(mailbox.pop(&mut picker).unwrap().1);
/// ```
pub struct Mailbox {
    lanes: [SpillQueue<Token>; 3],
}

impl Mailbox {
    /// A mailbox whose lanes each hold up to `front_capacity` tokens without a lock (more
    /// wait in the lane's overflow, see [`SpillQueue`]).
    ///
    /// # Panics
    ///
    /// If `front_capacity` is zero or not a power of two.
    pub fn new(front_capacity: usize) -> Self {
        Self {
            lanes: [
                SpillQueue::new(front_capacity),
                SpillQueue::new(front_capacity),
                SpillQueue::new(front_capacity),
            ],
        }
    }

    /// Puts `token` at the back of the lane of `weight`. Never refused: beyond the lane's
    /// front, the token waits in its overflow (taking its lock, see [`SpillQueue::push`]).
    ///
    /// ```
    /// use tokengate::primitives::{LanePicker, Mailbox, TokenRing};
    /// use tokengate::Weight;
    ///
    /// let ring = TokenRing::new(4);
    /// let small = Mailbox::new(1); // a front smaller than the ring
    /// for _ in 0..4 {
    ///     small.push(Weight::Light, ring.try_take().unwrap());
    /// }
    /// assert_eq!(small.len(Weight::Light), 4);
    /// while let Some((_, token)) = small.pop(&mut LanePicker::default()) {
    ///     ring.give_back(token);
    /// }
    /// assert_eq!(ring.available(), 4);
    /// ```
    #[inline]
    pub fn push(&self, weight: Weight, token: Token) {
        self.lanes[weight.lane()].push(token)
    }

    /// Takes the next token by lane priority and `picker`'s starvation rule.
    #[inline]
    pub fn pop(&self, picker: &mut LanePicker) -> Option<(Weight, Token)> {
        let order = picker.order();
        for (position, weight) in order.into_iter().enumerate() {
            if let Some(token) = self.lanes[weight.lane()].pop() {
                picker.served(&order, position, |w| !self.lanes[w.lane()].is_empty());
                return Some((weight, token));
            }
        }
        None
    }

    /// Takes the oldest token of one lane: what a thief or a lane-specific consumer does.
    #[inline]
    pub fn steal(&self, weight: Weight) -> Option<Token> {
        self.lanes[weight.lane()].pop()
    }

    /// How many tokens wait in the lane of `weight` (approximate under concurrency).
    #[inline]
    pub fn len(&self, weight: Weight) -> usize {
        self.lanes[weight.lane()].len()
    }

    /// Whether every lane looks empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.lanes.iter().all(|lane| lane.is_empty())
    }

    /// Whether a pop of the lane of `weight` now would find a token whose push completed
    /// (see [`SpillQueue::has_ready`](super::SpillQueue::has_ready)): what a worker asks
    /// before it sleeps.
    #[inline]
    pub fn has_ready(&self, weight: Weight) -> bool {
        self.lanes[weight.lane()].has_ready()
    }
}

impl fmt::Debug for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mailbox")
            .field("light", &self.len(Weight::Light))
            .field("medium", &self.len(Weight::Medium))
            .field("heavy", &self.len(Weight::Heavy))
            .finish()
    }
}

/// A consumer's memory of which lanes it passed over: the starvation rule of [`Mailbox::pop`].
/// Owned by one consumer (a worker); plain data.
#[derive(Clone, Copy, Debug, Default)]
pub struct LanePicker {
    passed_over: [u8; 3],
}

impl LanePicker {
    /// The lane order for the next pick.
    #[inline]
    fn order(&self) -> [Weight; 3] {
        use Weight::*;
        if self.passed_over[Heavy.lane()] >= STARVATION_LIMIT {
            [Heavy, Light, Medium]
        } else if self.passed_over[Medium.lane()] >= STARVATION_LIMIT {
            [Medium, Light, Heavy]
        } else {
            [Light, Medium, Heavy]
        }
    }

    /// Records that `order[served]` was served: the lanes before it in `order` were just found
    /// empty (not passed over); each lane after it that `holds_work` was passed over.
    #[inline]
    fn served(&mut self, order: &[Weight; 3], served: usize, holds_work: impl Fn(Weight) -> bool) {
        for (position, &other) in order.iter().enumerate() {
            let count = &mut self.passed_over[other.lane()];
            if position <= served || !holds_work(other) {
                *count = 0;
            } else {
                *count = count.saturating_add(1);
            }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::primitives::TokenRing;

    #[test]
    fn smoke() {
        let ring = TokenRing::new(4);
        let mb = Mailbox::new(4);
        assert!(mb.is_empty());
        mb.push(Weight::Medium, ring.try_take().unwrap());
        assert_eq!(mb.len(Weight::Medium), 1);
        let (w, t) = mb.pop(&mut LanePicker::default()).unwrap();
        assert_eq!(w, Weight::Medium);
        ring.give_back(t);
        assert!(mb.pop(&mut LanePicker::default()).is_none());
    }

    #[test]
    fn a_heavy_lane_is_not_starved_by_a_stream_of_light_work() {
        let ring = TokenRing::new(64);
        let mb = Mailbox::new(64);
        let mut picker = LanePicker::default();
        mb.push(Weight::Heavy, ring.try_take().unwrap());
        let mut picks_before_heavy = 0;
        loop {
            // Keep the Light lane non-empty at every pick.
            mb.push(Weight::Light, ring.try_take().unwrap());
            let (w, t) = mb.pop(&mut picker).unwrap();
            ring.give_back(t);
            if w == Weight::Heavy {
                break;
            }
            picks_before_heavy += 1;
            assert!(
                picks_before_heavy <= STARVATION_LIMIT as usize,
                "heavy lane starved"
            );
        }
        assert_eq!(picks_before_heavy, STARVATION_LIMIT as usize);
    }

    /// Regression (issue 21): a mailbox smaller than the ring spun forever in `push` once a
    /// lane was full; later it refused the push. Now a lane spills beyond its front: nothing
    /// is refused, and the lane stays first-in, first-out.
    #[test]
    fn a_full_lane_spills_and_keeps_its_order() {
        let ring = TokenRing::new(8);
        let mb = Mailbox::new(2);
        let mut pushed = Vec::new();
        for _ in 0..8 {
            let token = ring.try_take().unwrap();
            pushed.push(token.index());
            mb.push(Weight::Heavy, token);
        }
        assert_eq!(mb.len(Weight::Heavy), 8);
        let mut popped = Vec::new();
        while let Some((w, t)) = mb.pop(&mut LanePicker::default()) {
            assert_eq!(w, Weight::Heavy);
            popped.push(t.index());
            ring.give_back(t);
        }
        assert_eq!(popped, pushed);
        assert!(mb.is_empty());
        assert_eq!(ring.available(), 8);
    }
}
