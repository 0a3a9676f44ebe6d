//! Loom model of what a worker may run while it helps: a sticky task waits in a join, and the
//! task it waits for needs a sticky task of another key homed on the same worker. Driven
//! through the public API: a [`Runtime`] with two workers (loom threads spawned by `build`).
//!
//! The rule under test (`engine/worker.rs`, `pop_sticky`): a worker that helps while a task
//! waits pops its sticky queue in order, whatever keys run beneath on its stack. Before it, a
//! worker running any sticky task took no sticky task at all while it helped.
//!
//! The model (keys 0 and 2 live on worker 0): task A of key 0 spawns a plain task X and blocks
//! (a loom `Notify`, not a join) until X has started, so X is stolen by worker 1; then A joins
//! X. X submits task B of key 2 (home: worker 0) and joins it. Only worker 0 may run B, and it
//! can only do so while it helps in A's join. Under the old rule every thread ends up parked,
//! which loom reports as a deadlock; under the new one B runs exactly once, on worker 0.
//!
//! Preemption bound: 2, as the other two-worker models (`runtime_steal.rs`): about 180,000
//! executions and a minute in a release build on two cores.
#![cfg(loom)]

use loom::sync::{Arc, Notify};
use tokengate::{Operation, Runtime};
use tokengate_loom_tests::check;

const PREEMPTION_BOUND: usize = 2;

const KEYED: Operation = Operation::new("keyed");

#[test]
fn a_worker_helping_under_a_sticky_task_runs_a_sticky_task_of_another_key() {
    // `check` allows the few thousand scheduling decisions of one execution with two workers.
    check(PREEMPTION_BOUND, || {
        let rt = Arc::new(
            Runtime::builder()
                .workers(2)
                .pin(false)
                .capacity(4)
                .metrics(false)
                .build()
                .expect("a two-worker runtime builds under loom"),
        );
        let a = {
            let rt2 = rt.clone();
            rt.submit(&KEYED.sticky(0), move || {
                let started = Arc::new(Notify::new());
                let signal = started.clone();
                let rt3 = rt2.clone();
                let x = rt2.spawn(move || {
                    signal.notify();
                    rt3.submit(&KEYED.sticky(2), tokengate::current_worker)
                        .join()
                        .expect("B does not panic")
                });
                started.wait(); // X runs on worker 1: worker 0 is blocked here
                x.join().expect("X does not panic")
            })
        };
        assert_eq!(a.join(), Ok(Some(0)), "B runs on its home worker, 0");
        drop(rt);
    });
}
