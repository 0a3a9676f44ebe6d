//! Word counts of documents, counted in parallel on a tokengate runtime: each document is a
//! scoped task that borrows it and adds its count to one shared tally.
//!
//! This crate is the worked example of `docs/loom.md`: it depends on tokengate like any crate
//! and checks its own code with loom, runtime included (`tests/models.rs`). Run the models with
//!
//! ```text
//! RUSTFLAGS="--cfg loom" cargo test -p tokengate-loom-example --release --test models
//! ```
//!
//! [`count_words_racy`] is the same program with a bug a test run almost never shows (a
//! read-then-write of the tally, which loses an update when two tasks interleave); the models
//! show that loom finds it.

use tokengate::Runtime;

/// The atomics of this crate: loom's under `--cfg loom`, so that loom sees every access;
/// std's otherwise. (tokengate does the same inside, which is why its runtime can be modelled.)
mod sync {
    #[cfg(loom)]
    pub(crate) use loom::sync::atomic::{AtomicUsize, Ordering};
    #[cfg(not(loom))]
    pub(crate) use std::sync::atomic::{AtomicUsize, Ordering};
}

use sync::{AtomicUsize, Ordering};

/// Counts the words of all `docs` on `rt`, one task per document, and returns the total.
///
/// # Examples
///
/// ```
/// use tokengate::Runtime;
///
/// let rt = Runtime::builder().workers(2).pin(false).build()?;
/// let docs = ["a small example", "of two documents"];
/// assert_eq!(tokengate_loom_example::count_words(&rt, &docs), 6);
/// # Ok::<(), tokengate::BuildError>(())
/// ```
pub fn count_words(rt: &Runtime, docs: &[&str]) -> usize {
    tally(rt, docs, |total, n| {
        // ORDERING: Relaxed: the scope's end orders every task before the read below.
        total.fetch_add(n, Ordering::Relaxed);
    })
}

/// [`count_words`] with a lost update: each task reads the tally, then writes back its sum.
/// Two tasks that interleave between the read and the write lose one count. Kept to show that
/// the models catch it; never use it.
pub fn count_words_racy(rt: &Runtime, docs: &[&str]) -> usize {
    tally(rt, docs, |total, n| {
        // ORDERING: Relaxed, as in `count_words` (the bug is the two steps, not the ordering).
        let now = total.load(Ordering::Relaxed);
        // ORDERING: Relaxed, as above.
        total.store(now + n, Ordering::Relaxed);
    })
}

/// Runs one scoped task per document, each calling `add(total, its word count)`.
fn tally(rt: &Runtime, docs: &[&str], add: fn(&AtomicUsize, usize)) -> usize {
    let total = AtomicUsize::new(0);
    rt.scope(|s| {
        for doc in docs {
            let total = &total;
            // The scope joins every task before it returns: no need to keep the handle.
            let _ = s.spawn(move || add(total, doc.split_whitespace().count()));
        }
    });
    // ORDERING: Relaxed: every task ended before `scope` returned.
    total.load(Ordering::Relaxed)
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn counts_the_words_of_every_document() {
        let rt = Runtime::builder().workers(2).pin(false).build().unwrap();
        let docs: Vec<String> = (0..100).map(|i| "word ".repeat(i)).collect();
        let docs: Vec<&str> = docs.iter().map(String::as_str).collect();
        assert_eq!(count_words(&rt, &docs), (0..100).sum::<usize>());
    }
}
