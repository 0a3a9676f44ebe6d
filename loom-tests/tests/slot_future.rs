//! Loom models of [`TaskSlot`] as a future's core: `poll_output` registers a `Waker` in the
//! slot's waiter cell, the finisher wakes it, and the value comes out exactly once; a future
//! dropped while its waker is registered leaks nothing and drops nothing twice; a waker
//! replaced by a later poll (the future moved to another async task) or by a joining thread
//! is dropped, and whoever is registered last is woken.
//!
//! The wakers are `std::task::Waker`s built from [`Wake`] over a std `Arc` holding loom
//! atomics (a wake count) and the polling loom thread (to unpark). A lost wake-up leaves the
//! poller parked forever, which loom reports as a deadlock. Every waker also owns a loom
//! `Arc` sentinel, so a leaked waker clone is a leaked loom `Arc`, which loom reports at the
//! end of the execution; the models also check the std `Arc`'s count.
//!
//! Preemption bound: 3 for every model, as in `slot.rs`, but 2 for (e) (see there).
#![cfg(loom)]

use std::sync::Arc as StdArc;
use std::task::{Context, Poll, Wake, Waker};

use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use tokengate::primitives::{Registration, TaskSlot};
use tokengate::TaskError;
use tokengate_loom_tests::{check_each_order, Order};

/// Preemptions per execution; every model here but (e) finishes within seconds at 3.
const PREEMPTION_BOUND: usize = 3;

/// Model (e) has three threads, two of them in retry loops: at 3 it runs for minutes.
const PREEMPTION_BOUND_E: usize = 2;

/// A waker's shared state: how often it was woken, and the thread it unparks.
struct Flag {
    wakes: AtomicUsize,
    thread: loom::thread::Thread,
    /// Dropped with the last clone of the waker: loom reports it if a clone leaks.
    _sentinel: Arc<()>,
}

impl Wake for Flag {
    fn wake(self: StdArc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &StdArc<Self>) {
        // Release pairs with the Acquire in `wait_for`/`wakes`: the poller that sees the
        // count sees what the waker's caller did before waking (the slot's READY, in these
        // models).
        self.wakes.fetch_add(1, Ordering::Release);
        self.thread.unpark();
    }
}

impl Flag {
    /// A flag whose waker unparks the calling thread, and that waker.
    fn for_current_thread() -> (StdArc<Flag>, Waker) {
        let flag = StdArc::new(Flag {
            wakes: AtomicUsize::new(0),
            thread: loom::thread::current(),
            _sentinel: Arc::new(()),
        });
        (flag.clone(), Waker::from(flag))
    }

    fn wakes(&self) -> usize {
        self.wakes.load(Ordering::Acquire)
    }

    /// Parks until the waker was woken at least `n` times in all (what an executor does
    /// with a task that returned `Pending`).
    fn wait_for(&self, n: usize) {
        while self.wakes() < n {
            loom::thread::park();
        }
    }
}

/// A value that counts its drops.
#[derive(Debug)]
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        // Relaxed: the models read the count after joining every thread.
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

impl PartialEq for Counted {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

/// What one thread of a model did.
#[derive(Debug)]
enum Did {
    /// `run()` returned this.
    Ran(bool),
    /// Something that reports nothing.
    Nothing,
    /// The flags of the wakers it used, for the main thread to check once every thread,
    /// the finisher included, is done with them.
    Wakers(Vec<StdArc<Flag>>),
}

/// Checks that no clone of these wakers is left (the caller holds the only reference).
fn no_waker_kept(did: &Did) {
    let Did::Wakers(flags) = did else {
        panic!("expected wakers, got {did:?}");
    };
    for (i, flag) in flags.iter().enumerate() {
        assert_eq!(
            StdArc::strong_count(flag),
            1,
            "waker {i} was kept or leaked"
        );
    }
}

impl std::fmt::Debug for Flag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flag").finish_non_exhaustive()
    }
}

type Role = Box<dyn FnOnce() -> Did>;

/// The runner role: runs the slot, then drops its `Arc`.
fn runner<F: FnOnce() -> T + 'static, T: 'static>(slot: &Arc<TaskSlot<F, T>>) -> Role {
    let slot = slot.clone();
    Box::new(move || Did::Ran(slot.run()))
}

/// (a) A worker runs the slot while a poller drives it as an executor would: poll, park
/// until woken, poll again. The value arrives exactly once, each `Pending` is followed by
/// exactly one wake-up (none lost, none doubled), the task's plain write is visible once the
/// poll returns `Ready`, and no waker clone stays behind in the slot.
#[test]
fn a_polled_slot_wakes_its_poller_and_yields_the_value_once() {
    check_each_order(PREEMPTION_BOUND, |order: Order| {
        let drops = Arc::new(AtomicUsize::new(0));
        let data = Arc::new(UnsafeCell::new(0_u32));
        let slot = Arc::new(TaskSlot::new({
            let (drops, data) = (drops.clone(), data.clone());
            move || {
                // SAFETY: only the closure writes the cell; the poller reads it only after
                // its poll returned `Ready` (the claim under test: loom fails the model if
                // that read is not ordered after this write).
                data.with_mut(|p| unsafe { *p = 42 });
                Counted(drops)
            }
        }));
        let poller: Role = {
            let slot = slot.clone();
            let drops = drops.clone();
            Box::new(move || {
                let (flag, waker) = Flag::for_current_thread();
                let mut cx = Context::from_waker(&waker);
                let mut pendings = 0;
                let outcome = loop {
                    match slot.poll_output(&mut cx) {
                        Poll::Ready(outcome) => break outcome,
                        Poll::Pending => {
                            pendings += 1;
                            flag.wait_for(pendings);
                        }
                    }
                };
                // SAFETY: see the write above.
                assert_eq!(data.with(|p| unsafe { *p }), 42, "the task's write is lost");
                assert!(outcome.is_ok(), "the value, not an error");
                assert_eq!(
                    drops.load(Ordering::Relaxed),
                    0,
                    "dropped before it arrived"
                );
                drop(outcome);
                assert_eq!(drops.load(Ordering::Relaxed), 1);
                assert!(pendings <= 1, "woken before READY: {pendings} pendings");
                assert_eq!(flag.wakes(), pendings, "one wake-up per Pending");
                Did::Wakers(vec![flag])
            })
        };
        let [ran, polled]: [Did; 2] = order
            .spawn_all(vec![runner(&slot), poller])
            .try_into()
            .expect("two roles, two results");
        assert!(matches!(ran, Did::Ran(true)), "{ran:?}");
        assert_eq!(
            drops.load(Ordering::Relaxed),
            1,
            "the value was dropped twice"
        );
        no_waker_kept(&polled);
    });
}

/// Model (b): a future polls once, then is dropped while the slot completes. With
/// `withdraw` it withdraws its waker first (what `TaskHandle`'s `Drop` does after a
/// `Pending` poll); without it, the waker stays for the finisher or the slot's drop. The
/// value is dropped exactly once (by the poller if its poll returned it, else with the
/// slot by its last owner), the waker is woken at most once, and loom finds no leaked
/// `Arc` (the slot's or a waker clone's).
fn a_future_dropped_while_registered(withdraw: bool) {
    check_each_order(PREEMPTION_BOUND, move |order: Order| {
        let drops = Arc::new(AtomicUsize::new(0));
        let slot = Arc::new(TaskSlot::new({
            let drops = drops.clone();
            move || Counted(drops)
        }));
        let poller: Role = {
            let slot = slot.clone();
            Box::new(move || {
                let (flag, waker) = Flag::for_current_thread();
                let poll = slot.poll_output(&mut Context::from_waker(&waker));
                if poll.is_pending() && withdraw {
                    slot.unregister_waker();
                }
                drop((poll, waker, slot));
                assert!(flag.wakes() <= 1, "woken twice");
                Did::Nothing
            })
        };
        let runner = runner(&slot);
        // The main thread must not hold the slot past the threads, or it would always be
        // the last owner.
        drop(slot);
        let [ran, _]: [Did; 2] = order
            .spawn_all(vec![runner, poller])
            .try_into()
            .expect("two roles, two results");
        assert!(matches!(ran, Did::Ran(true)), "{ran:?}");
        assert_eq!(drops.load(Ordering::Relaxed), 1, "value drops");
    });
}

/// (b) The future withdraws its waker, then is dropped, racing completion.
#[test]
fn a_future_withdraws_its_waker_and_is_dropped_while_the_slot_completes() {
    a_future_dropped_while_registered(true);
}

/// (b') The future is dropped with its waker still registered, racing completion.
#[test]
fn a_future_is_dropped_with_its_waker_registered_while_the_slot_completes() {
    a_future_dropped_while_registered(false);
}

/// (c) The future is polled with one waker, then (still pending) moved to another async
/// task and polled with a second waker, racing completion; if still pending it waits for
/// the second waker. Whoever is registered last is woken: if the second poll returned
/// `Pending`, the second waker is woken exactly once and the first, replaced, never; if it
/// returned `Ready`, the second waker is never woken (the first at most once, if the
/// outcome came between the polls). The value arrives exactly once; no clone stays behind.
#[test]
fn the_last_registered_waker_is_woken() {
    check_each_order(PREEMPTION_BOUND, |order: Order| {
        let slot = Arc::new(TaskSlot::new(|| 11_u32));
        let poller: Role = {
            let slot = slot.clone();
            Box::new(move || {
                let (first, waker1) = Flag::for_current_thread();
                let (second, waker2) = Flag::for_current_thread();
                let mut cx1 = Context::from_waker(&waker1);
                let mut cx2 = Context::from_waker(&waker2);
                let outcome = match slot.poll_output(&mut cx1) {
                    Poll::Ready(outcome) => {
                        assert_eq!((first.wakes(), second.wakes()), (0, 0));
                        outcome
                    }
                    Poll::Pending => match slot.poll_output(&mut cx2) {
                        Poll::Ready(outcome) => {
                            assert!(first.wakes() <= 1, "the first waker woken twice");
                            assert_eq!(second.wakes(), 0, "the second waker was never pending");
                            outcome
                        }
                        Poll::Pending => {
                            second.wait_for(1);
                            let Poll::Ready(outcome) = slot.poll_output(&mut cx2) else {
                                panic!("woken, yet still pending");
                            };
                            assert_eq!(first.wakes(), 0, "a replaced waker was woken");
                            assert_eq!(second.wakes(), 1, "the last waker woken twice");
                            outcome
                        }
                    },
                };
                assert_eq!(outcome, Ok(11));
                Did::Wakers(vec![first, second])
            })
        };
        let [ran, polled]: [Did; 2] = order
            .spawn_all(vec![runner(&slot), poller])
            .try_into()
            .expect("two roles, two results");
        assert!(matches!(ran, Did::Ran(true)), "{ran:?}");
        no_waker_kept(&polled);
    });
}

/// (d) A future polled once (its waker registered if pending) and then joined: the thread
/// `wait()`s, which replaces the waker, racing completion. No lost wake-up (loom reports a
/// deadlock otherwise), the value arrives, the waker is woken at most once (only if the
/// outcome came before the join registered) and not kept.
#[test]
fn a_join_after_a_pending_poll_is_woken() {
    check_each_order(PREEMPTION_BOUND, |order: Order| {
        let slot = Arc::new(TaskSlot::new(|| 4_u32));
        let joiner: Role = {
            let slot = slot.clone();
            Box::new(move || {
                let (flag, waker) = Flag::for_current_thread();
                let outcome = match slot.poll_output(&mut Context::from_waker(&waker)) {
                    Poll::Ready(outcome) => outcome,
                    Poll::Pending => {
                        slot.wait();
                        slot.take_output().expect("wait() returned before READY")
                    }
                };
                assert_eq!(outcome, Ok(4));
                assert!(flag.wakes() <= 1);
                Did::Wakers(vec![flag])
            })
        };
        let [ran, joined]: [Did; 2] = order
            .spawn_all(vec![runner(&slot), joiner])
            .try_into()
            .expect("two roles, two results");
        assert!(matches!(ran, Did::Ran(true)), "{ran:?}");
        no_waker_kept(&joined);
    });
}

/// (e) A thread parked as in `wait()` and a future polling the same slot, racing completion:
/// the poll never displaces the thread (it is `Contended`, wakes its own waker and is
/// polled again), the thread that displaces the future's waker wakes it, so both are woken
/// (no deadlock) and the future gets the value.
#[test]
fn a_poll_never_displaces_a_parked_thread() {
    check_each_order(PREEMPTION_BOUND_E, |order: Order| {
        let slot = Arc::new(TaskSlot::new(|| 8_u32));
        let waiter: Role = {
            let slot = slot.clone();
            // `wait()` without its spin-and-yield prelude, which only multiplies the
            // interleavings: register, park until ready, register again if contended.
            Box::new(move || {
                while !slot.is_ready() {
                    match slot.register_waiter() {
                        Registration::Ready => break,
                        Registration::Registered => loom::thread::park(),
                        Registration::Contended => loom::thread::yield_now(),
                    }
                }
                Did::Nothing
            })
        };
        let poller: Role = {
            let slot = slot.clone();
            Box::new(move || {
                let (flag, waker) = Flag::for_current_thread();
                let mut cx = Context::from_waker(&waker);
                let mut pendings = 0;
                let outcome = loop {
                    match slot.poll_output(&mut cx) {
                        Poll::Ready(outcome) => break outcome,
                        Poll::Pending => {
                            pendings += 1;
                            flag.wait_for(pendings);
                            // A self-wake (`Contended`) returns at once: let the others run.
                            loom::thread::yield_now();
                        }
                    }
                };
                assert_eq!(outcome, Ok(8));
                Did::Nothing
            })
        };
        order.spawn_all(vec![runner(&slot), waiter, poller]);
        assert!(slot.is_ready());
    });
}

/// The error path is the same hand-over: a cancelled slot's `Killed` reaches a pending
/// poll.
#[test]
fn a_cancel_wakes_a_pending_poll() {
    check_each_order(PREEMPTION_BOUND, |order: Order| {
        let slot = Arc::new(TaskSlot::new(|| 1_u32));
        let canceller: Role = {
            let slot = slot.clone();
            Box::new(move || Did::Ran(slot.cancel()))
        };
        let poller: Role = {
            let slot = slot.clone();
            Box::new(move || {
                let (flag, waker) = Flag::for_current_thread();
                let mut cx = Context::from_waker(&waker);
                let mut pendings = 0;
                let outcome = loop {
                    match slot.poll_output(&mut cx) {
                        Poll::Ready(outcome) => break outcome,
                        Poll::Pending => {
                            pendings += 1;
                            flag.wait_for(pendings);
                        }
                    }
                };
                assert_eq!(outcome, Err(TaskError::Killed));
                Did::Nothing
            })
        };
        let [cancelled, _]: [Did; 2] = order
            .spawn_all(vec![canceller, poller])
            .try_into()
            .expect("two roles, two results");
        assert!(matches!(cancelled, Did::Ran(true)), "{cancelled:?}");
    });
}
