//! Loom models of this crate's code, runtime included: every interleaving (up to the
//! preemption bound) of two workers counting two documents. Only under `--cfg loom`:
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p tokengate-loom-example --release --test models
//! ```
#![cfg(loom)]

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use tokengate_loom_example::{count_words, count_words_racy};

/// Two workers: the tasks of the two documents must be able to run at once. Two workers and
/// the model's thread make a large state space: two preemptions per execution take about a
/// minute in a release build (`LOOM_MAX_PREEMPTIONS` overrides the bound; 1 takes seconds,
/// for a quick look while you edit).
const PREEMPTION_BOUND: usize = 2;

const DOCS: [&str; 2] = ["one two", "three"];

#[test]
fn count_words_counts_every_document_in_every_interleaving() {
    tokengate::loom::check(PREEMPTION_BOUND, || {
        let rt = tokengate::loom::model_runtime(2).build().unwrap();
        assert_eq!(count_words(&rt, &DOCS), 3);
        drop(rt); // loom waits for the workers: the runtime must go before the model ends
    });
}

/// The racy variant: loom must find an interleaving that loses a count. The model records
/// what it saw instead of failing, so the test can say that loom found the bug (and fails if
/// loom ever stops finding it).
#[test]
fn loom_finds_the_lost_update_of_count_words_racy() {
    static LOST: AtomicBool = AtomicBool::new(false);
    static EXECUTIONS: AtomicUsize = AtomicUsize::new(0);
    tokengate::loom::check(PREEMPTION_BOUND, || {
        let rt = tokengate::loom::model_runtime(2).build().unwrap();
        let counted = count_words_racy(&rt, &DOCS);
        drop(rt);
        EXECUTIONS.fetch_add(1, Ordering::Relaxed);
        if counted != 3 {
            LOST.store(true, Ordering::Relaxed);
        }
    });
    assert!(
        LOST.load(Ordering::Relaxed),
        "loom explored {} executions of count_words_racy and none lost an update",
        EXECUTIONS.load(Ordering::Relaxed)
    );
}
