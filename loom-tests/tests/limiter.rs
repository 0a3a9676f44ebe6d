//! Loom models of [`Limiter`], the concurrency limiter behind `Operation::concurrency_limit`:
//! the number of permit holders never exceeds the limit, no waiting token is stranded (every
//! token eventually runs, exactly once), and what one holder wrote is seen by the holder its
//! permit is handed to.
//!
//! Each thread plays a worker: it takes a token, asks for a permit, and if it got one "runs"
//! the token (counting holders), then releases; a release that hands the permit to a waiting
//! token makes the releasing thread run that token too, as `Worker::finish` dispatches it.
//! A thread spins only when the queue's head position was claimed by a push not yet
//! published; the models keep that to one spinner at a time, as the crate docs require.
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
    fn run(&self, id: usize, limit: usize) {
        let now = self.holders.fetch_add(1, Ordering::Relaxed) + 1;
        assert!(now <= limit, "{now} permit holders with a limit of {limit}");
        if limit == 1 {
            // SAFETY (model): with limit 1 holders are serialised by the hand-over; loom
            // reports a causality violation if they are not.
            self.log.with_mut(|log| unsafe { (*log).push(id) });
        }
        self.runs.fetch_add(1, Ordering::Relaxed);
        self.holders.fetch_sub(1, Ordering::Relaxed);
    }

    /// One worker's part: enter `token` into the limiter and run whatever comes its way.
    /// Returns the tokens it ran (for the main thread to give back to the ring).
    fn work(&self, token: Token, limit: usize) -> Vec<Token> {
        let mut ran = Vec::new();
        let Some(mut token) = self.limiter.acquire(token) else {
            return ran; // waits in the limiter; a releaser runs it
        };
        loop {
            self.run(token.index(), limit);
            let next = self.limiter.release();
            ran.push(token);
            match next {
                Some(t) => token = t,
                None => return ran,
            }
        }
    }

    /// A worker running a task that has no token (submitted into a dry ring): it takes a
    /// permit with `try_acquire` or, finding none free, gives up (the runtime's worker helps
    /// and tries again; a model keeps no retry loop). Its release may hand the permit to a
    /// waiting token, which it then runs. Returns the tokens it ran.
    fn work_tokenless(&self, limit: usize) -> Vec<Token> {
        let mut ran = Vec::new();
        if !self.limiter.try_acquire() {
            return ran;
        }
        self.run(usize::MAX, limit);
        let mut next = self.limiter.release();
        while let Some(token) = next {
            self.run(token.index(), limit);
            next = self.limiter.release();
            ran.push(token);
        }
        ran
    }
}

/// One worker per entry of `tokens_per_thread`, entering that many tokens one after the
/// other (taken from the ring before the threads start, so the model explores the limiter
/// alone), limit `limit`.
fn model(tokens_per_thread: &[usize], limit: usize, order: Order) {
    let total: usize = tokens_per_thread.iter().sum();
    let world = Arc::new(World {
        ring: TokenRing::new(4),
        limiter: Limiter::new(limit, 4),
        holders: AtomicUsize::new(0),
        runs: AtomicUsize::new(0),
        log: UnsafeCell::new(Vec::new()),
    });
    let roles: Vec<Box<dyn FnOnce() -> Vec<Token>>> = tokens_per_thread
        .iter()
        .map(|&n| {
            let w = world.clone();
            let tokens: Vec<Token> = (0..n)
                .map(|_| w.ring.try_take().expect("the ring holds every token"))
                .collect();
            Box::new(move || {
                tokens
                    .into_iter()
                    .flat_map(|t| w.work(t, limit))
                    .collect::<Vec<_>>()
            }) as Box<dyn FnOnce() -> Vec<Token>>
        })
        .collect();
    let ran: Vec<Token> = order.spawn_all(roles).into_iter().flatten().collect();
    assert_eq!(ran.len(), total, "a token was stranded or ran twice");
    assert_eq!(world.runs.load(Ordering::Relaxed), total);
    assert_eq!(world.limiter.demand(), 0);
    for t in ran {
        world.ring.give_back(t);
    }
    assert_eq!(world.ring.available(), 4);
}

/// A token-holding worker and a tokenless one (`try_acquire`) share limit 1: never two
/// holders, the token is never stranded (if the tokenless holder has the permit, its release
/// hands it to the token), and what one holder wrote is seen by the next.
#[test]
fn limit_one_a_tokenless_holder_and_a_waiting_token() {
    check_each_order(3, |order| {
        let world = Arc::new(World {
            ring: TokenRing::new(4),
            limiter: Limiter::new(1, 4),
            holders: AtomicUsize::new(0),
            runs: AtomicUsize::new(0),
            log: UnsafeCell::new(Vec::new()),
        });
        let token = world.ring.try_take().expect("the ring holds every token");
        let (a, b) = (world.clone(), world.clone());
        let roles: Vec<Box<dyn FnOnce() -> Vec<Token>>> = vec![
            Box::new(move || a.work(token, 1)),
            Box::new(move || b.work_tokenless(1)),
        ];
        let ran: Vec<Token> = order.spawn_all(roles).into_iter().flatten().collect();
        assert_eq!(ran.len(), 1, "the token was stranded or ran twice");
        let runs = world.runs.load(Ordering::Relaxed);
        assert!(runs == 1 || runs == 2, "{runs} runs");
        assert_eq!(world.limiter.demand(), 0);
        for t in ran {
            world.ring.give_back(t);
        }
    });
}

#[test]
fn limit_one_two_workers_hand_over_the_permit() {
    check_each_order(3, |order| model(&[1, 1], 1, order));
}

#[test]
fn limit_one_three_workers_serialise_and_strand_nothing() {
    check_each_order(2, |order| model(&[1, 1, 1], 1, order));
}

/// Limit 2 with three tokens on two threads (three threads would let two grantees wait for
/// one unfinished push at once: loom's unfair-yield limitation, see the crate docs).
#[test]
fn limit_two_three_tokens() {
    check_each_order(3, |order| model(&[2, 1], 2, order));
}
