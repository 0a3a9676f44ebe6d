//! Loom models of [`TokenRing`]: tokens are exclusive, all come home, and a taker blocked in
//! `take_or` is woken by a give-back (no lost wake-up in the ring's wait list).
//!
//! Exclusivity is tracked with a bitmask of token indices: whoever takes token `i` sets bit
//! `i` with `fetch_or` and must not find it set; it clears the bit before giving the token
//! back. A deadlock (every thread parked or blocked) fails a loom model on its own.
//!
//! Every model runs its threads in both spawn orders, and at most one thread at a time can
//! be in a retry loop (see the crate docs for both loom limitations).
//!
//! Preemption bound: 3 for every model.
#![cfg(loom)]

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use loom::thread;
use tokengate::primitives::{Token, TokenRing};
use tokengate_loom_tests::{check_each_order, Order};

type Role = Box<dyn FnOnce()>;

/// Preemptions per execution; at 3 the slowest model here (two rounds of two takers) takes
/// about 45 s per spawn order on a 2-core machine.
const PREEMPTION_BOUND: usize = 3;

/// Which token indices are held right now, one bit each.
#[derive(Default)]
struct Holders(AtomicUsize);

impl Holders {
    /// Records that the caller holds `token`; panics if somebody else already does.
    fn acquire(&self, token: &Token) {
        let bit = 1 << token.index();
        // Relaxed is enough: the bitmask's own modification order decides a double hold, and
        // the model needs no other data ordered by it.
        let before = self.0.fetch_or(bit, Ordering::Relaxed);
        assert_eq!(before & bit, 0, "token {} is held twice", token.index());
    }

    /// Records that the caller no longer holds `token`; call before giving it back.
    fn release(&self, token: &Token) {
        let bit = 1 << token.index();
        let before = self.0.fetch_and(!bit, Ordering::Relaxed);
        assert_ne!(
            before & bit,
            0,
            "token {} released but not held",
            token.index()
        );
    }
}

/// Takes a token, yielding while the ring is (or transiently looks) empty. Only used where at
/// most one thread at a time can be in this loop (loom's unfair yields, see the crate docs).
fn take_spinning(ring: &TokenRing) -> Token {
    loop {
        match ring.try_take() {
            Some(token) => return token,
            None => thread::yield_now(),
        }
    }
}

/// A thread that takes a token (spinning), marks it held, unmarks it and gives it back,
/// `rounds` times.
fn taker(ring: &Arc<TokenRing>, holders: &Arc<Holders>, rounds: usize) -> Role {
    let (ring, holders) = (ring.clone(), holders.clone());
    Box::new(move || {
        for _ in 0..rounds {
            let token = take_spinning(&ring);
            holders.acquire(&token);
            holders.release(&token);
            ring.give_back(token);
        }
    })
}

/// The brief's model: two threads each take a token and give it back, twice, through a
/// ring of two. The second round takes tokens the first round gave back (positions 2 and 3,
/// the ring's second lap), so a take can race the give-back that refills its slot. At most
/// one of them spins at a time: two tokens, and each thread holds at most one.
#[test]
fn tokens_are_exclusive_and_all_come_home() {
    check_each_order(PREEMPTION_BOUND, |order: Order| {
        let ring = Arc::new(TokenRing::new(2));
        let holders = Arc::new(Holders::default());
        order.spawn_all(vec![taker(&ring, &holders, 2), taker(&ring, &holders, 2)]);
        assert_eq!(
            ring.available(),
            ring.capacity(),
            "a token did not come home"
        );
        // And they are the two distinct tokens 0 and 1, each exactly once.
        let mut indices: Vec<usize> = std::iter::from_fn(|| ring.try_take())
            .map(|t| t.index())
            .collect();
        indices.sort_unstable();
        assert_eq!(indices, [0, 1]);
    });
}

/// The main thread holds one of the two tokens while two threads compete for the other:
/// only one of them can hold it at a time, and the loser waits, spinning (alone: the one
/// free token is in the ring or in the winner's hand).
#[test]
fn two_takers_share_one_free_token() {
    check_each_order(PREEMPTION_BOUND, |order: Order| {
        let ring = Arc::new(TokenRing::new(2));
        let holders = Arc::new(Holders::default());
        let kept = ring.try_take().expect("a new ring has every token free");
        holders.acquire(&kept);
        order.spawn_all(vec![taker(&ring, &holders, 1), taker(&ring, &holders, 1)]);
        holders.release(&kept);
        ring.give_back(kept);
        assert_eq!(
            ring.available(),
            ring.capacity(),
            "a token did not come home"
        );
    });
}

/// A taker blocks in `take_or` (it tries, yields, then registers in the wait list and parks)
/// on a ring of one whose token another thread holds and then gives back. The give-back must
/// wake it: a lost wake-up leaves the taker parked forever, which loom reports as a deadlock.
#[test]
fn a_blocked_taker_is_woken_by_a_give_back() {
    check_each_order(PREEMPTION_BOUND, |order: Order| {
        let ring = Arc::new(TokenRing::new(1));
        let holders = Arc::new(Holders::default());
        let token = ring.try_take().expect("a new ring has every token free");
        holders.acquire(&token);
        let giver: Role = {
            let (ring, holders) = (ring.clone(), holders.clone());
            Box::new(move || {
                holders.release(&token);
                ring.give_back(token);
            })
        };
        let blocked_taker: Role = {
            let (ring, holders) = (ring.clone(), holders.clone());
            Box::new(move || {
                // `give_up` never fires: only a give-back can end this wait.
                let Some(taken) = ring.take_or(|| false) else {
                    panic!("take_or returned None although give_up never fires");
                };
                holders.acquire(&taken);
                assert_eq!(taken.index(), 0);
                holders.release(&taken);
                ring.give_back(taken);
            })
        };
        order.spawn_all(vec![giver, blocked_taker]);
        assert_eq!(ring.available(), 1, "the token did not come home");
    });
}

/// `wait_all_home` blocks until every token is back: two holders give theirs back
/// concurrently, the waiter must be woken by the last give-back (deadlock otherwise) and then
/// see the ring full.
#[test]
fn wait_all_home_is_woken_by_the_last_give_back() {
    check_each_order(PREEMPTION_BOUND, |order: Order| {
        let ring = Arc::new(TokenRing::new(2));
        let mut roles: Vec<Role> = (0..2)
            .map(|_| {
                let token = ring.try_take().expect("a new ring has every token free");
                let ring = ring.clone();
                Box::new(move || ring.give_back(token)) as Role
            })
            .collect();
        roles.push({
            let ring = ring.clone();
            Box::new(move || {
                ring.wait_all_home();
                assert_eq!(
                    ring.available(),
                    ring.capacity(),
                    "woken before all came home"
                );
            })
        });
        order.spawn_all(roles);
    });
}
