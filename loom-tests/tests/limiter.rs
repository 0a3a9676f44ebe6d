//! Loom models of [`Limiter`], the concurrency limiter behind `Operation::concurrency_limit`:
//! the number of permit holders never exceeds the limit, no waiting token is stranded (every
//! token eventually runs, exactly once), and what one holder wrote is seen by the holder its
//! permit is handed to.
//!
//! Each thread plays a worker: it takes a token, asks for a permit, and if it got one "runs"
//! the token (counting holders), then releases; a release that hands the permit to a waiting
//! token makes the releasing thread run that token too, as `Worker::finish` dispatches it.
//! Only releasers spin (waiting for a waiter's push), and only one thread at a time can be in
//! that loop, as the crate docs require.
//!
//! Preemption bound: 3 with two threads, 2 with three (3 takes over 15 minutes).
#![cfg(loom)]

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use tokengate::primitives::{Limiter, Token, TokenRing};
use tokengate_loom_tests::{check_each_order, Order};

struct World {
    ring: TokenRing,
    limiter: Limiter,
    holders: AtomicUsize,
    runs: AtomicUsize,
    /// Written by each holder; with limit 1 holders are serialised, so plain writes are safe
    /// only if the hand-over orders them (loom checks it).
    log: UnsafeCell<Vec<usize>>,
}

impl World {
    fn run(&self, token: &Token, limit: usize) {
        let now = self.holders.fetch_add(1, Ordering::Relaxed) + 1;
        assert!(now <= limit, "{now} permit holders with a limit of {limit}");
        if limit == 1 {
            self.log
                .with_mut(|log| unsafe { (*log).push(token.index()) });
        }
        self.runs.fetch_add(1, Ordering::Relaxed);
        self.holders.fetch_sub(1, Ordering::Relaxed);
    }

    /// One worker's part: submit one token through the limiter and run what comes its way.
    fn work(&self, limit: usize) {
        let Some(token) = self.ring.try_take() else {
            unreachable!("the ring holds a token per thread")
        };
        let Some(mut token) = self.limiter.acquire(token) else {
            return; // waits in the limiter; a releaser runs it
        };
        loop {
            self.run(&token, limit);
            let next = self.limiter.release();
            self.ring.give_back(token);
            match next {
                Some(t) => token = t,
                None => return,
            }
        }
    }
}

fn model(threads: usize, limit: usize, order: Order) {
    let world = Arc::new(World {
        ring: TokenRing::new(4),
        limiter: Limiter::new(limit, 4),
        holders: AtomicUsize::new(0),
        runs: AtomicUsize::new(0),
        log: UnsafeCell::new(Vec::new()),
    });
    let roles: Vec<Box<dyn FnOnce()>> = (0..threads)
        .map(|_| {
            let w = world.clone();
            Box::new(move || w.work(limit)) as Box<dyn FnOnce()>
        })
        .collect();
    order.spawn_all(roles);
    assert_eq!(
        world.runs.load(Ordering::Relaxed),
        threads,
        "a token was stranded"
    );
    assert_eq!(world.limiter.demand(), 0);
    assert_eq!(world.ring.available(), 4);
}

#[test]
fn limit_one_two_workers_hand_over_the_permit() {
    check_each_order(3, |order| model(2, 1, order));
}

#[test]
fn limit_one_three_workers_serialise_and_strand_nothing() {
    check_each_order(2, |order| model(3, 1, order));
}

#[test]
fn limit_two_three_workers() {
    check_each_order(2, |order| model(3, 2, order));
}
