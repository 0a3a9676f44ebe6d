//! Loom models of [`LocalDeque`] (the bounded Chase–Lev deque of a worker's own tokens).
//!
//! Checks: the owner pushing and popping while a thief steals takes every token exactly once
//! (each taker clears the token's "queued" mark; finding it clear is a double take), and the
//! thief sees what the owner wrote before pushing a token (a loom `UnsafeCell` per token:
//! a read not ordered after the write fails the model).
//!
//! The `mutant` model is built only with `--cfg tokengate_mutant="deque_pop_fence"`, which
//! removes the `SeqCst` fence of the owner's pop; it expects loom to find the double take
//! (the owner reads a stale `top` and takes a token without a CAS while a thief, reading a
//! stale `bottom`, takes the same one). `.ci/run` runs it, so the models are known to be able
//! to catch a weakened ordering in this protocol.
//!
//! No role retries in a loop (see the crate docs); every model runs its threads in both spawn
//! orders. Preemption bound: 3.
#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicBool, Ordering};
use loom::sync::Arc;
use tokengate::primitives::{LocalDeque, Steal, Token, TokenRing};
use tokengate_loom_tests::{check_each_order, Order};

const PREEMPTION_BOUND: usize = 3;
const CAPACITY: usize = 2;

/// The deque, its ring, and per token: what its pusher wrote, and whether it is queued.
struct Model {
    ring: TokenRing,
    deque: LocalDeque,
    payload: Vec<UnsafeCell<usize>>,
    queued: Vec<AtomicBool>,
}

impl Model {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            ring: TokenRing::new(CAPACITY),
            deque: LocalDeque::new(CAPACITY),
            payload: (0..CAPACITY).map(|_| UnsafeCell::new(0)).collect(),
            queued: (0..CAPACITY).map(|_| AtomicBool::new(false)).collect(),
        })
    }

    /// The owner takes a token, writes its payload, marks it queued and pushes it.
    fn push_one(&self, value: usize) {
        let token = self
            .ring
            .try_take()
            .expect("the model never runs the ring dry");
        let i = token.index();
        // SAFETY: the token's holder alone writes its payload, before handing it on.
        self.payload[i].with_mut(|p| unsafe { *p = value });
        self.queued[i].store(true, Ordering::Relaxed);
        // SAFETY: the calling role is the deque's only owner.
        unsafe { self.deque.push(token) };
    }

    /// Whoever took `token` reads its payload and clears its mark; returns the payload.
    fn took(&self, token: Token) -> usize {
        let i = token.index();
        assert!(
            self.queued[i].swap(false, Ordering::Relaxed),
            "token {i} taken twice"
        );
        // SAFETY: the token's holder alone reads its payload; loom fails the model if this
        // read is not ordered after the pusher's write.
        let value = self.payload[i].with(|p| unsafe { *p });
        self.ring.give_back(token);
        value
    }
}

/// The owner pushes two tokens and pops twice while a thief makes two steal attempts; then
/// whatever is left is drained. Every pushed value is taken exactly once, with its payload.
fn push_pop_against_two_steals(order: Order) {
    let m = Model::new();
    let owner = {
        let m = m.clone();
        Box::new(move || {
            m.push_one(10);
            m.push_one(20);
            // SAFETY: this role is the deque's only owner.
            let popped = [unsafe { m.deque.pop() }, unsafe { m.deque.pop() }];
            popped
                .into_iter()
                .flatten()
                .map(|t| m.took(t))
                .collect::<Vec<_>>()
        }) as Box<dyn FnOnce() -> Vec<usize>>
    };
    let thief = {
        let m = m.clone();
        Box::new(move || {
            (0..2)
                .filter_map(|_| match m.deque.steal() {
                    Steal::Taken(t) => Some(m.took(t)),
                    Steal::Empty | Steal::Retry => None,
                })
                .collect::<Vec<_>>()
        }) as Box<dyn FnOnce() -> Vec<usize>>
    };
    let mut seen: Vec<usize> = order.spawn_all(vec![owner, thief]).concat();
    // The roles are joined: this thread is the owner now.
    // SAFETY: the owner role has ended; its ownership passed here by the joins.
    while let Some(t) = unsafe { m.deque.pop() } {
        seen.push(m.took(t));
    }
    seen.sort_unstable();
    assert_eq!(seen, [10, 20], "a token was lost");
    assert_eq!(m.ring.available(), CAPACITY);
}

#[cfg(not(tokengate_mutant = "deque_pop_fence"))]
#[test]
fn owner_push_pop_and_a_thief_take_each_token_once() {
    check_each_order(PREEMPTION_BOUND, push_pop_against_two_steals);
}

/// The owner pops its only token while a thief steals it: exactly one of them gets it.
#[cfg(not(tokengate_mutant = "deque_pop_fence"))]
#[test]
fn the_last_token_goes_to_the_owner_or_the_thief_not_both() {
    check_each_order(PREEMPTION_BOUND, |order: Order| {
        let m = Model::new();
        m.push_one(7);
        let owner = {
            let m = m.clone();
            // SAFETY: this role is the deque's only owner (the model's thread pushed before
            // spawning it, which orders that push before everything here).
            Box::new(move || unsafe { m.deque.pop() }.map(|t| m.took(t)))
                as Box<dyn FnOnce() -> Option<usize>>
        };
        let thief = {
            let m = m.clone();
            Box::new(move || match m.deque.steal() {
                Steal::Taken(t) => Some(m.took(t)),
                Steal::Empty | Steal::Retry => None,
            }) as Box<dyn FnOnce() -> Option<usize>>
        };
        let got: Vec<usize> = order
            .spawn_all(vec![owner, thief])
            .into_iter()
            .flatten()
            .collect();
        // A thief's `Retry` may leave it to nobody only if the owner's CAS won.
        assert_eq!(got, [7], "the last token was lost or taken twice");
    });
}

/// With the owner's pop fence removed, loom must find a double take.
#[cfg(tokengate_mutant = "deque_pop_fence")]
#[test]
#[should_panic(expected = "taken twice")]
fn mutant_without_the_pop_fence_is_caught() {
    check_each_order(PREEMPTION_BOUND, push_pop_against_two_steals);
}
