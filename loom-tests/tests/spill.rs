//! Loom models of [`SpillQueue`] (a lock-free bounded front, an overflow behind a lock).
//!
//! Checks: pushes that overflow the front while pops drain it (and move the overflow's values
//! back to the front) lose and duplicate nothing, and each producer's values come out in the
//! order it pushed them: across the front, the overflow, the move back, and a push that finds
//! the overflow drained and uses the front again. Loom's model of the overflow's mutex and
//! the `spilled` count is the one the crate ships (`crate::sync`).
//!
//! Two mutant builds, each with its own test that expects loom to fail the model (`.ci/run`
//! runs both, so the models are known to be able to catch a broken spill rule):
//! - `--cfg tokengate_mutant="spill_push_front_first"`: a push tries the front before looking
//!   at the overflow; loom finds a producer's value overtaking its older one that waits in
//!   the overflow.
//! - `--cfg tokengate_mutant="spill_pop_skips_claimed"`: a pop that finds the front empty
//!   takes from the overflow without checking for a push still under way in the front; loom
//!   finds the overflow's value overtaking an older one of the same producer, queued in the
//!   front behind that push.
//!
//! - `--cfg tokengate_mutant="spill_has_ready_front_first"`: `has_ready` looks at the front
//!   before the overflow; loom finds the look that misses a value a pop moves from the
//!   overflow to the front in between (a worker would sleep on work of its own).
//!
//! No role retries in a loop (see the crate docs): a consumer makes a fixed number of pop
//! attempts, each of which may find nothing, and whatever is left is drained after the join.
//! Every model runs its threads in both spawn orders. Preemption bound: 3 (the file takes
//! about 15 s on a 2-core machine, nearly all in the two-producer model).
#![cfg(loom)]

use loom::sync::Arc;
use tokengate::primitives::SpillQueue;
use tokengate_loom_tests::{check_each_order, Order};

const PREEMPTION_BOUND: usize = 3;

/// A value the model's own thread pushes first, so that the front (of one slot) is full and
/// the producers' first push overflows.
const FILLER: usize = 100;

type Role = Box<dyn FnOnce() -> Vec<usize>>;

/// A producer: pushes `values` in order (a push is never refused).
fn producer(q: &Arc<SpillQueue<usize>>, values: &'static [usize]) -> Role {
    let q = q.clone();
    Box::new(move || {
        for &v in values {
            q.push(v);
        }
        Vec::new()
    })
}

/// A consumer: makes `attempts` pops, no waiting; each may legitimately find nothing.
fn consumer(q: &Arc<SpillQueue<usize>>, attempts: usize) -> Role {
    let q = q.clone();
    Box::new(move || (0..attempts).filter_map(|_| q.pop()).collect())
}

/// Pops everything left; the model's threads are joined, so this sees the final state.
fn drain(q: &SpillQueue<usize>) -> Vec<usize> {
    std::iter::from_fn(|| q.pop()).collect()
}

/// Every value of `pushed` (one list per producer, plus the filler if `filled`) appears
/// exactly once in `out`, and each producer's in its push order.
fn assert_all_once_in_order(out: &[usize], pushed: &[&[usize]], filled: bool) {
    let mut sorted = out.to_vec();
    sorted.sort_unstable();
    let mut expected: Vec<usize> = pushed.concat();
    if filled {
        expected.push(FILLER);
    }
    expected.sort_unstable();
    assert_eq!(sorted, expected, "a value was lost or duplicated: {out:?}");
    for values in pushed {
        let mine: Vec<usize> = out.iter().copied().filter(|v| values.contains(v)).collect();
        assert_eq!(&mine, values, "a producer's values reordered: {out:?}");
    }
}

/// One producer pushes two values into a full one-slot front (both wait in the overflow, or
/// the second finds it drained) while a consumer makes three pop attempts (the filler, then
/// the overflow's values, moved back to the front). The consumer's values, then what is left,
/// are the filler and the producer's values in order.
#[cfg(not(tokengate_mutant = "spill_pop_skips_claimed"))]
fn push_overflowing_while_a_pop_drains(order: Order) {
    const VALUES: &[usize] = &[0, 1];
    let q = Arc::new(SpillQueue::new(1));
    q.push(FILLER);
    let mut out: Vec<usize> = order
        .spawn_all(vec![producer(&q, VALUES), consumer(&q, 3)])
        .concat();
    out.extend(drain(&q));
    assert_all_once_in_order(&out, &[VALUES], true);
    assert_eq!(out[0], FILLER, "the oldest value comes first: {out:?}");
    assert_eq!(q.spilled(), 0, "a drained queue has nothing spilled");
    assert!(q.is_empty());
}

#[cfg(not(any(
    tokengate_mutant = "spill_push_front_first",
    tokengate_mutant = "spill_pop_skips_claimed"
)))]
#[test]
fn a_push_overflowing_while_a_pop_drains_keeps_fifo() {
    check_each_order(PREEMPTION_BOUND, push_overflowing_while_a_pop_drains);
}

#[cfg(not(tokengate_mutant = "spill_push_front_first"))]
fn two_producers_overflowing_while_a_pop_drains(order: Order) {
    const A: &[usize] = &[0, 1];
    const B: &[usize] = &[10];
    let q = Arc::new(SpillQueue::new(2));
    let mut out: Vec<usize> = order
        .spawn_all(vec![producer(&q, A), producer(&q, B), consumer(&q, 1)])
        .concat();
    out.extend(drain(&q));
    assert_all_once_in_order(&out, &[A, B], false);
    assert!(q.is_empty());
}

/// Two producers push three values into a two-slot front while a consumer makes one pop
/// attempt: one producer's push may still be under way in the front while the other's
/// second value spills, and a pop that then finds the front empty must not take the
/// overflow's value before the older one behind the push under way. Nothing lost or
/// duplicated, FIFO per producer.
#[cfg(not(any(
    tokengate_mutant = "spill_push_front_first",
    tokengate_mutant = "spill_pop_skips_claimed"
)))]
#[test]
fn two_producers_overflowing_while_a_pop_drains_keep_fifo_per_producer() {
    check_each_order(
        PREEMPTION_BOUND,
        two_producers_overflowing_while_a_pop_drains,
    );
}

/// The mutant build: a push that tries the front first overtakes its own older value in the
/// overflow once a pop has made room in the front. Loom must find that interleaving; this
/// test passes only if the model above fails.
#[cfg(tokengate_mutant = "spill_push_front_first")]
#[test]
#[should_panic(expected = "a producer's values reordered")]
fn mutant_pushing_to_the_front_first_is_caught() {
    check_each_order(PREEMPTION_BOUND, push_overflowing_while_a_pop_drains);
}

/// The mutant build: a pop that takes the overflow's value while an older one of the same
/// producer waits in the front behind a push under way. Loom must find that interleaving.
#[cfg(tokengate_mutant = "spill_pop_skips_claimed")]
#[test]
#[should_panic(expected = "a producer's values reordered")]
fn mutant_popping_past_a_push_under_way_is_caught() {
    check_each_order(
        PREEMPTION_BOUND,
        two_producers_overflowing_while_a_pop_drains,
    );
}

/// `has_ready` (what a worker asks before it sleeps) races a pop that takes from the overflow
/// and moves the rest to the front: one value is left whatever the pop did, so `has_ready`
/// says yes, also when the move happens between its looks at the front and the overflow.
fn has_ready_against_a_pop_moving_the_overflow(order: Order) {
    let q = Arc::new(SpillQueue::new(1));
    for v in [1, 2, 3] {
        q.push(v); // 1 in the front, 2 and 3 in the overflow
    }
    assert_eq!(q.pop(), Some(1)); // the front is empty, the overflow holds 2 and 3
    let checker = {
        let q = q.clone();
        Box::new(move || {
            assert!(q.has_ready(), "has_ready missed a value left in the queue");
            Vec::new()
        }) as Role
    };
    let out = order.spawn_all(vec![checker, consumer(&q, 1)]);
    assert_eq!(out[1], [2]);
    assert_eq!(drain(&q), [3]);
}

#[cfg(not(tokengate_mutant = "spill_has_ready_front_first"))]
#[test]
fn has_ready_sees_values_a_pop_moves_from_the_overflow() {
    check_each_order(
        PREEMPTION_BOUND,
        has_ready_against_a_pop_moving_the_overflow,
    );
}

/// With `has_ready` looking at the front first, loom must find the missed value.
#[cfg(tokengate_mutant = "spill_has_ready_front_first")]
#[test]
#[should_panic(expected = "has_ready missed a value")]
fn mutant_looking_at_the_front_first_is_caught() {
    check_each_order(
        PREEMPTION_BOUND,
        has_ready_against_a_pop_moving_the_overflow,
    );
}
