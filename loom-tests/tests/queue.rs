//! Loom models of [`ArrayQueue`] (Vyukov's bounded MPMC queue), capacity 2 (and 1).
//!
//! Checks: concurrent pushes and pops lose and duplicate nothing; each producer's values come
//! out in the order it pushed them, also across a lap of the ring (which exercises the
//! pop's `Release` / next push's `Acquire` hand-back of a slot); a push to a full queue hands
//! its value back and a pop of an empty one returns `None`, also while racing the operation
//! that would change the answer; a capacity-1 queue holds one value (regression models of the
//! half-step stamps); `has_ready` (asked by a worker before it sleeps) says yes only for a
//! value a pop then finds, and follows a concurrent pop; `pop_many` (one claim for a batch)
//! takes each value once, in push order, racing a push and a pop, and a mutant
//! (`pop_many_first_stamp_only`: it claims positions whose stamps it did not look at) that CI
//! expects this model to catch. Loom's `UnsafeCell` tracking fails
//! any model in which a slot's value is read without the push's write happening before it,
//! or overwritten before the previous lap's pop read it.
//!
//! No thread retries in a loop: a refused push or an empty pop is recorded and checked (see
//! the crate docs on loom's unfair yields). Every concurrent model runs its threads in both
//! spawn orders (see the crate docs on loom's missed interleavings).
//!
//! Preemption bound: 3 for every model.
#![cfg(loom)]

use loom::sync::Arc;
use tokengate::primitives::ArrayQueue;
use tokengate_loom_tests::{check, check_each_order, Order};

/// Preemptions per execution; at 3 the slowest model here (the lap model) takes about 20 s
/// per spawn order on a 2-core machine.
const PREEMPTION_BOUND: usize = 3;

/// What one thread of a model did.
#[derive(Debug, PartialEq)]
enum Did {
    /// Pushed this many values of its list, then had this one handed back (or none).
    Pushed(usize, Option<usize>),
    /// Popped these values.
    Popped(Vec<usize>),
}

impl Did {
    fn popped(self) -> Vec<usize> {
        match self {
            Did::Popped(values) => values,
            other => panic!("expected a consumer's result, got {other:?}"),
        }
    }

    fn pushed(self) -> (usize, Option<usize>) {
        match self {
            Did::Pushed(n, back) => (n, back),
            other => panic!("expected a producer's result, got {other:?}"),
        }
    }
}

type Role = Box<dyn FnOnce() -> Did>;

/// A producer: pushes `values` in order and stops at the first refusal (a full queue is a
/// legitimate answer; retrying would be a spin loop).
fn producer(q: &Arc<ArrayQueue<usize>>, values: &'static [usize]) -> Role {
    let q = q.clone();
    Box::new(move || {
        for (n, &v) in values.iter().enumerate() {
            if let Err(back) = q.push(v) {
                return Did::Pushed(n, Some(back));
            }
        }
        Did::Pushed(values.len(), None)
    })
}

/// A consumer: makes `attempts` pops, no waiting; each may legitimately find nothing.
fn consumer(q: &Arc<ArrayQueue<usize>>, attempts: usize) -> Role {
    let q = q.clone();
    Box::new(move || Did::Popped((0..attempts).filter_map(|_| q.pop()).collect()))
}

/// Pops everything left; the model's threads are joined, so this sees the final state.
fn drain(q: &ArrayQueue<usize>) -> Vec<usize> {
    std::iter::from_fn(|| q.pop()).collect()
}

/// The brief's model: two producers push one value each while a consumer makes two pop
/// attempts; after the join, the consumer's values and what is left hold each value once.
#[test]
fn two_producers_one_consumer_lose_and_duplicate_nothing() {
    check_each_order(PREEMPTION_BOUND, |order: Order| {
        let q = Arc::new(ArrayQueue::new(2));
        let [a, b, c]: [Did; 3] = order
            .spawn_all(vec![
                producer(&q, &[10]),
                producer(&q, &[20]),
                consumer(&q, 2),
            ])
            .try_into()
            .expect("three roles, three results");
        // Capacity 2 and two values: the queue is never full, not even transiently (a push
        // is refused only by a slot still holding the previous lap).
        assert_eq!(a, Did::Pushed(1, None), "refused while not full");
        assert_eq!(b, Did::Pushed(1, None), "refused while not full");
        let mut seen = c.popped();
        seen.extend(drain(&q));
        seen.sort_unstable();
        assert_eq!(seen, [10, 20], "a value was lost or duplicated");
        assert!(q.is_empty());
    });
}

/// Two producers push up to three and two values through a capacity-2 queue while a consumer
/// makes three pop attempts, so a push may reuse a slot in its second lap right after a
/// concurrent pop freed it. Each producer's values must come out as exactly the prefix it
/// managed to push, in push order, and a refused push must hand back the next value.
#[test]
fn fifo_per_producer_across_a_lap() {
    const A: &[usize] = &[0, 1, 2];
    const B: &[usize] = &[10, 11];
    check_each_order(PREEMPTION_BOUND, |order: Order| {
        let q = Arc::new(ArrayQueue::new(2));
        let [a, b, c]: [Did; 3] = order
            .spawn_all(vec![producer(&q, A), producer(&q, B), consumer(&q, 3)])
            .try_into()
            .expect("three roles, three results");
        let mut out = c.popped();
        out.extend(drain(&q));

        let (a_in, a_back) = a.pushed();
        let (b_in, b_back) = b.pushed();
        for (values, pushed, back) in [(A, a_in, a_back), (B, b_in, b_back)] {
            let mine: Vec<usize> = out.iter().copied().filter(|v| values.contains(v)).collect();
            assert_eq!(
                mine,
                values[..pushed],
                "lost, duplicated or reordered: {out:?}"
            );
            assert_eq!(
                back,
                values.get(pushed).copied(),
                "a refusal hands back its value"
            );
        }
        assert_eq!(out.len(), a_in + b_in, "a value from nowhere: {out:?}");
    });
}

/// The edges without a race: a full queue hands the value back, an empty one pops `None`,
/// and the queue keeps working after both.
#[test]
fn full_and_empty_edges() {
    check(PREEMPTION_BOUND, || {
        let q = ArrayQueue::new(2);
        assert_eq!(q.pop(), None, "a new queue is empty");
        assert_eq!(q.push(1), Ok(()));
        assert_eq!(q.push(2), Ok(()));
        assert_eq!(q.push(3), Err(3), "a full queue must hand the value back");
        assert_eq!(q.len(), 2);
        assert_eq!(q.pop(), Some(1));
        assert_eq!(q.push(3), Ok(()), "a pop makes room for one push");
        assert_eq!(q.push(4), Err(4));
        assert_eq!(q.pop(), Some(2));
        assert_eq!(q.pop(), Some(3));
        assert_eq!(q.pop(), None, "an emptied queue pops None");
        assert!(q.is_empty());
    });
}

/// A push to a full queue races the pop that frees a slot: the push either succeeds (into
/// the slot the pop just freed, whose old value the pop must have finished reading) or hands
/// back exactly its value, and either way nothing is lost or duplicated.
#[test]
fn push_to_full_races_a_pop() {
    check_each_order(PREEMPTION_BOUND, |order: Order| {
        let q = Arc::new(ArrayQueue::new(2));
        assert_eq!(q.push(1), Ok(()));
        assert_eq!(q.push(2), Ok(()));
        let [popper, pusher]: [Did; 2] = order
            .spawn_all(vec![consumer(&q, 1), producer(&q, &[3])])
            .try_into()
            .expect("two roles, two results");
        assert_eq!(
            popper.popped(),
            [1],
            "the queue held two values; the oldest comes first"
        );
        match pusher.pushed() {
            (1, None) => assert_eq!(drain(&q), [2, 3]),
            (0, Some(3)) => assert_eq!(drain(&q), [2]),
            other => panic!("a push reports success or hands back its own value: {other:?}"),
        }
    });
}

/// A pop of an empty queue races a push: the pop returns `None` or exactly the pushed value,
/// and the value is then in the queue exactly when the pop missed it.
#[test]
fn pop_of_empty_races_a_push() {
    check_each_order(PREEMPTION_BOUND, |order: Order| {
        let q = Arc::new(ArrayQueue::new(2));
        let [popper, pusher]: [Did; 2] = order
            .spawn_all(vec![consumer(&q, 1), producer(&q, &[7])])
            .try_into()
            .expect("two roles, two results");
        assert_eq!(pusher, Did::Pushed(1, None), "an empty queue is not full");
        match popper.popped().as_slice() {
            [7] => assert_eq!(q.pop(), None),
            [] => assert_eq!(drain(&q), [7]),
            other => panic!("popped a value nobody pushed: {other:?}"),
        }
    });
}

/// `has_ready` (what a worker asks before it sleeps) races a push: when it says yes, the one
/// consumer's pop finds the value; when it says no, the value is still to come. A push in
/// progress is never reported as ready (then the pop would miss it).
#[cfg(not(tokengate_mutant = "has_ready_counts_claims"))]
#[test]
fn has_ready_means_a_pop_finds_the_value() {
    check_each_order(PREEMPTION_BOUND, has_ready_against_a_push);
}

/// With `has_ready` counting claimed positions (`len() != 0`), loom must find the schedule in
/// which it says yes while the push is between its claim and its stamp.
#[cfg(tokengate_mutant = "has_ready_counts_claims")]
#[test]
#[should_panic(expected = "has_ready said yes")]
fn mutant_counting_claims_is_caught() {
    check_each_order(PREEMPTION_BOUND, has_ready_against_a_push);
}

/// A checker asks `has_ready`, and pops if it said yes, while a producer pushes one value.
fn has_ready_against_a_push(order: Order) {
    {
        let q = Arc::new(ArrayQueue::new(2));
        let checker = {
            let q = q.clone();
            Box::new(move || {
                if q.has_ready() {
                    let got = q.pop();
                    assert_eq!(got, Some(7), "has_ready said yes, the pop found nothing");
                    Did::Popped(vec![7])
                } else {
                    Did::Popped(Vec::new())
                }
            }) as Role
        };
        let [checked, pusher]: [Did; 2] = order
            .spawn_all(vec![checker, producer(&q, &[7])])
            .try_into()
            .expect("two roles, two results");
        assert_eq!(pusher, Did::Pushed(1, None));
        match checked.popped().as_slice() {
            [7] => assert_eq!(q.pop(), None),
            [] => assert_eq!(drain(&q), [7]),
            other => panic!("popped a value nobody pushed: {other:?}"),
        }
    }
}

/// `has_ready` races a pop that moves the head: with two values in and one popped meanwhile,
/// one is always left, so `has_ready` says yes whichever head it reads first (a stale head
/// finds its slot popped and looks again).
#[test]
fn has_ready_follows_a_concurrent_pop() {
    check_each_order(PREEMPTION_BOUND, |order: Order| {
        let q = Arc::new(ArrayQueue::new(2));
        assert_eq!(q.push(1), Ok(()));
        assert_eq!(q.push(2), Ok(()));
        let checker = {
            let q = q.clone();
            Box::new(move || {
                assert!(q.has_ready(), "one value is left whatever the pop did");
                Did::Popped(Vec::new())
            }) as Role
        };
        let [_, popper]: [Did; 2] = order
            .spawn_all(vec![checker, consumer(&q, 1)])
            .try_into()
            .expect("two roles, two results");
        assert_eq!(popper.popped(), [1]);
        assert_eq!(drain(&q), [2]);
    });
}

/// Capacity 1, sequentially: a full queue refuses a second push and pops the first value.
/// Regression model: with single-step stamps, "full, holding position `p`" (`p + 1`) equals
/// "empty, ready for position `p + 1`" (`p + cap`) when `cap == 1`, so the second push was
/// accepted, overwrote value 1, and every later pop retried forever.
#[test]
fn capacity_one_refuses_a_push_when_full() {
    check(PREEMPTION_BOUND, || {
        let q = ArrayQueue::new(1);
        for lap in 0..2 {
            assert_eq!(q.push(lap), Ok(()));
            let second = q.push(9);
            if second.is_ok() {
                // The stamp would be ahead of the head: every pop, and so the queue's
                // `Drop`, would retry forever. Leak the queue to report the failure.
                std::mem::forget(q);
                panic!("a full capacity-1 queue accepted a second push (lap {lap})");
            }
            assert_eq!(second, Err(9), "a refused push hands back its value");
            assert_eq!(q.pop(), Some(lap));
            assert_eq!(q.pop(), None);
        }
    });
}

/// Capacity 1, concurrently: while a value waits in the single slot, a push of the next
/// position races the pop of the waiting value. The push must be refused or land after the
/// pop read the slot; with single-step stamps both claimed the slot at once, which loom
/// reports as "Causality violation: Concurrent read and write accesses".
#[test]
fn capacity_one_push_does_not_overwrite_a_value_being_popped() {
    check_each_order(PREEMPTION_BOUND, |order: Order| {
        let q = Arc::new(ArrayQueue::new(1));
        assert_eq!(q.push(1), Ok(()));
        let [popper, pusher]: [Did; 2] = order
            .spawn_all(vec![consumer(&q, 1), producer(&q, &[2])])
            .try_into()
            .expect("two roles, two results");
        assert_eq!(popper.popped(), [1]);
        match pusher.pushed() {
            (1, None) => assert_eq!(drain(&q), [2]),
            (0, Some(2)) => assert_eq!(q.pop(), None),
            other => panic!("a push reports success or hands back its own value: {other:?}"),
        }
    });
}

/// A batch consumer: one `pop_many` of up to `max` values.
fn batch_consumer(q: &Arc<ArrayQueue<usize>>, max: usize) -> Role {
    let q = q.clone();
    Box::new(move || {
        let mut out = Vec::new();
        q.pop_many(max, &mut out);
        Did::Popped(out)
    })
}

/// A producer pushes three values while one consumer takes a batch (`pop_many`, up to
/// three: what `submit_batch` does to the token ring) and another makes one plain pop. Each
/// value comes out once; a batch holds values in push order; nothing is read before its
/// push wrote it (loom's `UnsafeCell` tracking).
fn pop_many_against_a_push_and_a_pop(order: Order) {
    const A: &[usize] = &[0, 1, 2];
    let q = Arc::new(ArrayQueue::new(4));
    let [a, batch, single]: [Did; 3] = order
        .spawn_all(vec![
            producer(&q, A),
            batch_consumer(&q, 3),
            consumer(&q, 1),
        ])
        .try_into()
        .expect("three roles, three results");
    assert_eq!(a, Did::Pushed(3, None), "refused while not full");
    let batch = batch.popped();
    assert!(
        batch.windows(2).all(|w| w[0] < w[1]),
        "a batch out of push order: {batch:?}"
    );
    let mut out = batch;
    out.extend(single.popped());
    out.extend(drain(&q));
    out.sort_unstable();
    assert_eq!(out, A, "a value was lost or duplicated");
}

#[cfg(not(tokengate_mutant = "pop_many_first_stamp_only"))]
#[test]
fn pop_many_takes_each_value_once_in_order() {
    check_each_order(PREEMPTION_BOUND, pop_many_against_a_push_and_a_pop);
}

/// With `pop_many` claiming positions whose stamps it did not look at, loom must find a value
/// read before its push wrote it, or lost.
#[cfg(tokengate_mutant = "pop_many_first_stamp_only")]
#[test]
#[should_panic]
fn mutant_claiming_unchecked_positions_is_caught() {
    check_each_order(PREEMPTION_BOUND, pop_many_against_a_push_and_a_pop);
}
