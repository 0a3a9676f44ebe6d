//! Loom model of [`Mailbox`]: two producers push tokens into lanes of different weights while
//! a consumer pops with a [`LanePicker`] and a thief steals; every token comes out exactly
//! once, from the lane it was pushed to, and what is left drains in lane priority order.
//!
//! Nobody retries in a loop (an empty pop or steal is a legitimate answer that the model
//! records), and `Mailbox::push` never meets a full lane front here (each lane's front has
//! room for every token, so the overflow is never used: `spill.rs` models that), so no
//! thread spins waiting on another. Both models run their threads in both
//! spawn orders (see the crate docs).
//!
//! Preemption bound: 3 for both models.
#![cfg(loom)]

use loom::sync::Arc;
use tokengate::primitives::{LanePicker, Mailbox, Token, TokenRing};
use tokengate::Weight;
use tokengate_loom_tests::{check_each_order, Order};

/// What a thread took out of the mailbox, with the lane it came from.
type Taken = Vec<(Weight, Token)>;
type Role = Box<dyn FnOnce() -> Taken>;

/// A producer: pushes its tokens in order, takes nothing.
fn producer(mailbox: &Arc<Mailbox>, batch: Vec<(Weight, Token)>) -> Role {
    let mailbox = mailbox.clone();
    Box::new(move || {
        for (weight, token) in batch {
            mailbox.push(weight, token);
        }
        Vec::new()
    })
}

/// A thief: one steal attempt per lane in `lanes`; a lane may legitimately be empty.
fn thief(mailbox: &Arc<Mailbox>, lanes: &'static [Weight]) -> Role {
    let mailbox = mailbox.clone();
    Box::new(move || {
        lanes
            .iter()
            .filter_map(|&weight| mailbox.steal(weight).map(|token| (weight, token)))
            .collect()
    })
}

/// A consumer: `attempts` pops with one picker, like a worker; each may find nothing.
fn consumer(mailbox: &Arc<Mailbox>, attempts: usize) -> Role {
    let mailbox = mailbox.clone();
    Box::new(move || {
        let mut picker = LanePicker::default();
        (0..attempts)
            .filter_map(|_| mailbox.pop(&mut picker))
            .collect()
    })
}

/// Preemptions per execution; at 3 each model here takes about 35 s per spawn order on a
/// 2-core machine (a third token or a second thief lane took over 5 minutes).
const PREEMPTION_BOUND: usize = 3;

/// Two producers push the tokens of `batches` (in order; one batch each); a consumer pops
/// `attempts` times with one picker; a thief steals once from each lane of `thief_lanes`.
/// After the join, the consumer's, the thief's and the drained tokens are each token exactly
/// once, each from the lane it was pushed to, and what was left drained in priority order.
fn every_token_comes_out_exactly_once(
    batches: [&'static [Weight]; 2],
    attempts: usize,
    thief_lanes: &'static [Weight],
) {
    check_each_order(PREEMPTION_BOUND, move |order: Order| {
        let tokens = batches[0].len() + batches[1].len();
        let ring = TokenRing::new(tokens.next_power_of_two());
        let mailbox = Arc::new(Mailbox::new(ring.capacity()));
        // Which weight each token index was pushed with: checked against where it came out.
        let mut lane_of = vec![Weight::Medium; ring.capacity()];
        let mut batch = |weights: &[Weight]| -> Vec<(Weight, Token)> {
            weights
                .iter()
                .map(|&weight| {
                    let token = ring.try_take().expect("the ring has a token per push");
                    lane_of[token.index()] = weight;
                    (weight, token)
                })
                .collect()
        };
        let roles = vec![
            producer(&mailbox, batch(batches[0])),
            producer(&mailbox, batch(batches[1])),
            consumer(&mailbox, attempts),
            thief(&mailbox, thief_lanes),
        ];
        let mut out: Taken = order.spawn_all(roles).into_iter().flatten().collect();

        // Drain with a fresh picker: with every lane quiet, priority order must hold.
        let mut fresh = LanePicker::default();
        let drained: Taken = std::iter::from_fn(|| mailbox.pop(&mut fresh)).collect();
        let drained_lanes: Vec<usize> = drained.iter().map(|(w, _)| w.lane()).collect();
        assert!(
            drained_lanes.windows(2).all(|w| w[0] <= w[1]),
            "a quiet mailbox drains Light before Heavy: {drained_lanes:?}"
        );
        out.extend(drained);
        assert!(mailbox.is_empty());

        for (weight, token) in &out {
            let index = token.index();
            assert_eq!(
                *weight, lane_of[index],
                "token {index} came out of the wrong lane"
            );
        }
        let mut indices: Vec<usize> = out.iter().map(|(_, t)| t.index()).collect();
        indices.sort_unstable();
        assert_eq!(
            indices,
            (0..tokens).collect::<Vec<_>>(),
            "a token was lost or duplicated"
        );

        for (_, token) in out {
            ring.give_back(token);
        }
        assert_eq!(ring.available(), ring.capacity());
    });
}

/// The brief's model: a Light producer and a Heavy producer, a consumer popping twice by
/// priority, a thief stealing once from the Heavy lane.
#[test]
fn light_and_heavy_producers_consumer_and_thief() {
    every_token_comes_out_exactly_once([&[Weight::Light], &[Weight::Heavy]], 2, &[Weight::Heavy]);
}

/// Two producers into the same lane (both Medium) while a consumer pops and a thief steals
/// from that lane: the lane is a real MPMC queue here, with two pushers and two takers
/// contending for the same positions.
#[test]
fn one_lane_two_pushers_two_takers() {
    check_each_order(PREEMPTION_BOUND, |order: Order| {
        let ring = TokenRing::new(2);
        let mailbox = Arc::new(Mailbox::new(ring.capacity()));
        let one = || vec![(Weight::Medium, ring.try_take().expect("a token per push"))];
        let roles = vec![
            producer(&mailbox, one()),
            producer(&mailbox, one()),
            consumer(&mailbox, 1),
            thief(&mailbox, &[Weight::Medium]),
        ];
        let mut out: Taken = order.spawn_all(roles).into_iter().flatten().collect();
        out.extend(
            std::iter::from_fn(|| mailbox.steal(Weight::Medium)).map(|t| (Weight::Medium, t)),
        );
        assert!(mailbox.is_empty());

        assert!(out.iter().all(|(w, _)| *w == Weight::Medium), "{out:?}");
        let mut indices: Vec<usize> = out.iter().map(|(_, t)| t.index()).collect();
        indices.sort_unstable();
        assert_eq!(indices, [0, 1], "a token was lost or duplicated");
        for (_, token) in out {
            ring.give_back(token);
        }
        assert_eq!(ring.available(), ring.capacity());
    });
}
