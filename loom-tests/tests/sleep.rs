//! Loom models of [`Sleeper`], the park/wake protocol of a worker
//! (`src/primitives/sleep.md`): a consumer that announces sleep, looks for work once more and
//! parks, against a producer that publishes work and wakes it. A lost wake-up leaves the
//! consumer parked forever, which loom reports as a deadlock; so every model here passes only
//! if the consumer always finishes.
//!
//! The work flag is a loom `AtomicBool` stored and loaded with `Relaxed`: the protocol's two
//! `SeqCst` fences (in `prepare_sleep` and `wake`) must carry it on their own.
//!
//! Every model runs its threads in both spawn orders (see the crate docs).
//!
//! Preemption bound: 3 for every model.
#![cfg(loom)]

use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use loom::sync::Arc;
use tokengate::primitives::Sleeper;
use tokengate_loom_tests::{check_each_order, Order};

/// Preemptions per execution; every model here finishes within seconds at 3.
const PREEMPTION_BOUND: usize = 3;

type Role = Box<dyn FnOnce() -> usize>;

/// The consumer's loop from the brief: announce sleep, look for work, cancel or park.
/// Returns how many times it parked.
fn consume_until(sleeper: &Sleeper, found: impl Fn() -> bool) -> usize {
    let mut parks = 0;
    loop {
        sleeper.prepare_sleep();
        if found() {
            sleeper.cancel_sleep();
            return parks;
        }
        sleeper.sleep();
        parks += 1;
    }
}

/// The brief's model: one consumer, one producer that sets the work flag (Relaxed) and calls
/// `wake()`. The consumer must finish; and if it parked, somebody must have woken it (loom
/// has no spurious wake-ups), so `wake()` returned `true`.
#[test]
fn a_wake_after_publishing_work_is_never_lost() {
    check_each_order(PREEMPTION_BOUND, |order: Order| {
        let sleeper = Arc::new(Sleeper::new());
        let work = Arc::new(AtomicBool::new(false));
        let consumer: Role = {
            let (sleeper, work) = (sleeper.clone(), work.clone());
            Box::new(move || {
                sleeper.register_current_thread();
                consume_until(&sleeper, || work.load(Ordering::Relaxed))
            })
        };
        let producer: Role = {
            let (sleeper, work) = (sleeper.clone(), work.clone());
            Box::new(move || {
                work.store(true, Ordering::Relaxed);
                usize::from(sleeper.wake())
            })
        };
        let [parks, woke]: [usize; 2] = order
            .spawn_all(vec![consumer, producer])
            .try_into()
            .expect("two roles, two results");
        assert!(parks <= woke, "parked {parks} times but woken {woke} times");
        assert!(
            !sleeper.is_sleeping(),
            "the consumer finished but looks asleep"
        );
    });
}

/// Two items of work from two producers, each publishing (Relaxed) and waking: the consumer
/// takes both, possibly parking in between, so it sleeps again after a wake-up, perhaps with
/// an unpark left over from the other producer. It must finish with both items taken.
#[test]
fn two_producers_two_items_no_lost_wake_up() {
    check_each_order(PREEMPTION_BOUND, |order: Order| {
        let sleeper = Arc::new(Sleeper::new());
        let published = Arc::new(AtomicUsize::new(0));
        let consumer: Role = {
            let (sleeper, published) = (sleeper.clone(), published.clone());
            Box::new(move || {
                sleeper.register_current_thread();
                let mut taken = 0;
                let mut parks = 0;
                while taken < 2 {
                    // Take what is published (a worker's "find work"), then sleep if that
                    // was not everything.
                    taken = published.load(Ordering::Relaxed);
                    if taken < 2 {
                        parks +=
                            consume_until(&sleeper, || published.load(Ordering::Relaxed) > taken);
                    }
                }
                parks
            })
        };
        let producer = |sleeper: &Arc<Sleeper>, published: &Arc<AtomicUsize>| -> Role {
            let (sleeper, published) = (sleeper.clone(), published.clone());
            Box::new(move || {
                published.fetch_add(1, Ordering::Relaxed);
                usize::from(sleeper.wake())
            })
        };
        let [parks, woke_a, woke_b]: [usize; 3] = order
            .spawn_all(vec![
                consumer,
                producer(&sleeper, &published),
                producer(&sleeper, &published),
            ])
            .try_into()
            .expect("three roles, three results");
        assert!(
            parks <= woke_a + woke_b,
            "parked {parks} times, woken {woke_a}+{woke_b}"
        );
        assert_eq!(published.load(Ordering::Relaxed), 2);
    });
}
