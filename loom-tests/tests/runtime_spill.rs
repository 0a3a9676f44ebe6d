//! Loom model of a worker's sticky queue past its lock-free front, through the public API: a
//! [`Runtime`] with two workers and four tokens, whose queues' fronts hold two tokens under
//! loom (`MIN_QUEUE_FRONT`), so that a third task queued for one worker spills into the
//! queue's overflow (`SpillQueue`, modelled on its own in `spill.rs`).
//!
//! The model: the model's thread submits three sticky tasks of one key (their home is worker
//! 0; never stolen) and joins them. Each task takes the next number of a counter: they must
//! run exactly once each, in submission order, whichever of them waited in the overflow, and
//! whatever the worker was doing when the spill happened (parked, popping the front, moving
//! the overflow back).
//!
//! Preemption bound: 1, as the other two-worker models (`runtime_steal.rs`,
//! `runtime_sticky.rs`); search deeper with `LOOM_MAX_PREEMPTIONS`.
#![cfg(loom)]

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use tokengate::{Operation, Runtime};
use tokengate_loom_tests::check;

const PREEMPTION_BOUND: usize = 1;

const KEYED: Operation = Operation::new("keyed");

#[test]
fn sticky_tasks_past_the_queue_front_run_once_in_order() {
    check(PREEMPTION_BOUND, || {
        let rt = Runtime::builder()
            .workers(2)
            .pin(false)
            .capacity(4)
            .metrics(false)
            .build()
            .expect("a two-worker runtime builds under loom");
        let next = Arc::new(AtomicUsize::new(0));
        let handles: Vec<_> = (0..3)
            .map(|_| {
                let next = next.clone();
                // ORDERING: Relaxed: one key's tasks never overlap; the count is the order.
                rt.submit(&KEYED.sticky(0), move || {
                    next.fetch_add(1, Ordering::Relaxed)
                })
            })
            .collect();
        let order: Vec<usize> = handles
            .into_iter()
            .map(|h| h.join().expect("a task does not panic"))
            .collect();
        assert_eq!(order, [0, 1, 2], "run once each, in submission order");
        drop(rt);
    });
}
