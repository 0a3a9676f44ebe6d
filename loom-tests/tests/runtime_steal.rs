//! Loom model of the local-deque wake-up, driven through the public API: a [`Runtime`] with
//! two workers (loom threads spawned by `build`).
//!
//! The protocol under test (`engine/dispatch.rs`, `wake_a_thief_if_one_sleeps`): a worker
//! pushes a task it submits onto its own deque, `SeqCst` fence, reads how many workers sleep
//! and wakes one if any; a worker going to sleep counts itself, `SeqCst` fence (in
//! `prepare_sleep`), and looks at every deque once more. Either the sleeper sees the task, or
//! the pusher sees the sleeper and wakes it.
//!
//! The model: a task submits a sibling and then blocks (a loom `Notify`, not a join) until the
//! sibling has run. Its own worker is blocked, so only the other worker can run the sibling:
//! it must steal it, waking first if it went to sleep. A lost wake-up leaves every thread
//! blocked, which loom reports as a deadlock. The sibling runs exactly once; the runtime drops.
//!
//! The `mutant` model is built only with `--cfg tokengate_mutant="local_wake_fence"`, which
//! removes the pusher's `SeqCst` fence; loom must then find the deadlock (the pusher reads a
//! stale count of sleepers while the other worker misses the task and parks), so that model
//! fails, and `.ci/run` checks that it does. (Removing the wake-up altogether deadlocks as well.)
//!
//! Preemption bound: 2. Two workers and the main thread make a large state space: about
//! 700,000 executions and 3 minutes in a release build on two cores. It stays tractable
//! because an idle worker goes straight to the park protocol under loom and does not take a
//! push in progress for work (it would spin on the pusher). `LOOM_MAX_PREEMPTIONS` overrides
//! the bound.
#![cfg(loom)]

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::{Arc, Notify};
use tokengate::Runtime;
use tokengate_loom_tests::check;

const PREEMPTION_BOUND: usize = 2;

#[cfg(not(tokengate_mutant = "local_wake_fence"))]
#[test]
fn a_sibling_queued_by_a_blocked_task_is_stolen_by_the_other_worker() {
    check(PREEMPTION_BOUND, sibling_model);
}

/// With the pusher's fence removed, loom must find the lost wake-up: this test must FAIL
/// with loom's "deadlock" report. (Not `should_panic`: loom's deadlock report panics again
/// while it unwinds its threads, which aborts the process; `.ci/run` checks the failure.)
#[cfg(tokengate_mutant = "local_wake_fence")]
#[test]
fn mutant_without_the_pushers_fence_deadlocks() {
    check(PREEMPTION_BOUND, sibling_model);
}

/// A task submits a sibling, then blocks until the sibling has run (see the module docs).
fn sibling_model() {
    {
        let rt = Arc::new(
            Runtime::builder()
                .workers(2)
                .pin(false)
                .capacity(2)
                .build()
                .expect("a two-worker runtime builds under loom"),
        );
        let runs = Arc::new(AtomicUsize::new(0));
        let parent = {
            let (rt2, runs) = (rt.clone(), runs.clone());
            rt.spawn(move || {
                let sibling_ran = Arc::new(Notify::new());
                let signal = sibling_ran.clone();
                let sibling = rt2.spawn(move || {
                    // Relaxed: read after the joins below.
                    runs.fetch_add(1, Ordering::Relaxed);
                    signal.notify();
                });
                sibling_ran.wait();
                sibling
            })
        };
        let sibling = parent.join().expect("the parent task does not panic");
        assert_eq!(sibling.join(), Ok(()));
        assert_eq!(runs.load(Ordering::Relaxed), 1);
        drop(rt);
    }
}
