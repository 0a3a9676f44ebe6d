//! Loom model of `join` on a runtime's workers, driven through the public API: a [`Runtime`]
//! with two workers (loom threads spawned by `build`).
//!
//! The protocols under test (`engine/join.rs`): the fork's publication (the owner pushes the
//! stack job on its job deque, `SeqCst` fence, reads how many workers sleep and wakes one if
//! any; a worker going to sleep counts itself, fences, and looks at every job deque once
//! more), and the owner's wait for a stolen job (it announces the wait on the job's latch and
//! helps, parking when idle; the thief sets the latch and wakes the owner's sleeper if the
//! latch says it waits).
//!
//! The model: a task joins `a`, which blocks (a loom `Notify`) until `b` has run, with `b`,
//! which notifies. The forking worker is blocked in `a`, so only the other worker can run
//! `b`: it must steal it, waking first if it went to sleep; then the owner finds `b` stolen
//! and waits for its latch, perhaps parked. A lost wake-up on either side leaves every thread
//! blocked, which loom reports as a deadlock. The task's result carries both halves; the
//! runtime drops.
//!
//! The `mutant` model is built only with `--cfg tokengate_mutant="join_wake_fence"`, which
//! removes the owner's `SeqCst` fence between its push and its read of the sleepers; loom must
//! then find the deadlock (the owner reads a stale count while the other worker misses the
//! job and parks), and `.ci/run` checks that it does.
//!
//! Preemption bound: 2, as `runtime_steal.rs`: about 230,000 executions and a minute in a
//! release build on two cores.
#![cfg(loom)]

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::{Arc, Notify};
use tokengate::Runtime;
use tokengate_loom_tests::check;

const PREEMPTION_BOUND: usize = 2;

#[cfg(not(tokengate_mutant = "join_wake_fence"))]
#[test]
fn a_fork_its_owner_waits_for_is_stolen_and_its_latch_wakes_the_owner() {
    check(PREEMPTION_BOUND, join_model);
}

/// With the owner's fence removed, loom must find the lost wake-up: this test must FAIL with
/// loom's "deadlock" report (see `runtime_steal.rs` for why it is not `should_panic`).
#[cfg(tokengate_mutant = "join_wake_fence")]
#[test]
fn mutant_without_the_forks_fence_deadlocks() {
    check(PREEMPTION_BOUND, join_model);
}

/// A task joins a half that blocks until the other half ran (see the module docs).
fn join_model() {
    let rt = Arc::new(
        Runtime::builder()
            .workers(2)
            .pin(false)
            .capacity(2)
            .build()
            .expect("a two-worker runtime builds under loom"),
    );
    let runs = Arc::new(AtomicUsize::new(0));
    let task = {
        let (rt2, runs) = (rt.clone(), runs.clone());
        rt.spawn(move || {
            let b_ran = Notify::new();
            rt2.join(
                || {
                    b_ran.wait();
                    1
                },
                || {
                    // Relaxed: read after the joins below.
                    runs.fetch_add(1, Ordering::Relaxed);
                    b_ran.notify();
                    2
                },
            )
        })
    };
    assert_eq!(task.join(), Ok((1, 2)));
    assert_eq!(runs.load(Ordering::Relaxed), 1);
    drop(rt);
}
