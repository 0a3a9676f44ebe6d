//! The primitives against sequential models (proptest): single-threaded, every operation
//! sequence must behave exactly like the obvious `VecDeque` model.

use std::collections::VecDeque;

use proptest::prelude::*;
use tokengate::primitives::{ArrayQueue, LanePicker, Mailbox, TokenRing};
use tokengate::Weight;

#[derive(Clone, Debug)]
enum QueueOp {
    Push(u32),
    Pop,
}

fn queue_ops() -> impl Strategy<Value = Vec<QueueOp>> {
    prop::collection::vec(
        prop_oneof![any::<u32>().prop_map(QueueOp::Push), Just(QueueOp::Pop)],
        0..200,
    )
}

fn weight() -> impl Strategy<Value = Weight> {
    prop_oneof![
        Just(Weight::Light),
        Just(Weight::Medium),
        Just(Weight::Heavy)
    ]
}

#[test]
fn smoke() {
    let q = ArrayQueue::new(1);
    assert_eq!(q.push(1), Ok(()));
    assert_eq!(q.push(2), Err(2));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn array_queue_matches_a_bounded_vecdeque(cap_log in 0u32..4, ops in queue_ops()) {
        let cap = 1usize << cap_log;
        let q = ArrayQueue::new(cap);
        let mut model = VecDeque::new();
        for op in ops {
            match op {
                QueueOp::Push(v) => {
                    let expected = if model.len() < cap { model.push_back(v); Ok(()) } else { Err(v) };
                    prop_assert_eq!(q.push(v), expected);
                }
                QueueOp::Pop => prop_assert_eq!(q.pop(), model.pop_front()),
            }
            prop_assert_eq!(q.len(), model.len());
        }
    }

    #[test]
    fn token_ring_never_hands_out_a_token_twice(cap_log in 0u32..5, takes in prop::collection::vec(any::<bool>(), 0..200)) {
        let ring = TokenRing::new(1 << cap_log);
        let mut held: VecDeque<tokengate::primitives::Token> = VecDeque::new();
        for take in takes {
            if take {
                match ring.try_take() {
                    Some(t) => {
                        prop_assert!(held.iter().all(|h| h.index() != t.index()));
                        prop_assert!(t.index() < ring.capacity());
                        held.push_back(t);
                    }
                    None => prop_assert_eq!(held.len(), ring.capacity()),
                }
            } else if let Some(t) = held.pop_front() {
                ring.give_back(t);
            }
            prop_assert_eq!(ring.available() + held.len(), ring.capacity());
        }
        for t in held { ring.give_back(t); }
        prop_assert_eq!(ring.available(), ring.capacity());
    }

    /// Mailbox: FIFO within a lane (across its front and its overflow), Light before Medium before Heavy, and no lane passed over
    /// more than STARVATION_LIMIT + 1 times in a row while it holds work.
    #[test]
    fn mailbox_is_fifo_per_lane_and_starves_no_lane(ops in prop::collection::vec(prop::option::of(weight()), 0..300)) {
        let ring = TokenRing::new(256);
        // Fronts of 4: most sequences spill, so the lanes' overflow is modelled too.
        let mailbox = Mailbox::new(4);
        let mut picker = LanePicker::default();
        let mut lanes: [VecDeque<usize>; 3] = Default::default();
        let mut passed_over = [0usize; 3];
        for op in ops {
            match op {
                Some(w) => {
                    if let Some(t) = ring.try_take() {
                        lanes[w.lane()].push_back(t.index());
                        mailbox.push(w, t);
                    }
                }
                None => match mailbox.pop(&mut picker) {
                    Some((w, t)) => {
                        prop_assert_eq!(lanes[w.lane()].pop_front(), Some(t.index()));
                        for other in Weight::ALL {
                            if other == w || lanes[other.lane()].is_empty() {
                                passed_over[other.lane()] = 0;
                            } else {
                                passed_over[other.lane()] += 1;
                                prop_assert!(passed_over[other.lane()] <= tokengate::primitives::STARVATION_LIMIT as usize + 1);
                            }
                        }
                        // Without a starving lane, the highest-priority non-empty lane is served.
                        if passed_over.iter().all(|&p| p < tokengate::primitives::STARVATION_LIMIT as usize) && w != Weight::Light {
                            prop_assert!(Weight::ALL[..w.lane()].iter().all(|l| lanes[l.lane()].is_empty()) || passed_over[w.lane()] == 0);
                        }
                        ring.give_back(t);
                    }
                    None => prop_assert!(lanes.iter().all(|l| l.is_empty())),
                },
            }
        }
    }
}
