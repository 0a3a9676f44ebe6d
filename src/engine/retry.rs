//! Retries: a closure that can be called again, wrapped into one that calls it until it
//! returns or its retries are spent.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use super::current;

/// `func` run up to `1 + retries` times while it panics; the last panic propagates (so the
/// task resolves `Panicked` with the last attempt's payload). Between attempts the loop asks
/// the running worker whether it may go on ([`may_retry`]): a cancel, kill, drain,
/// block or `shutdown_now` stops it there, with the last attempt's panic as the outcome. Each
/// failed attempt that is retried is reported to the operation's reputation.
pub(crate) fn retrying<F, T>(retries: u32, mut func: F) -> impl FnOnce() -> T + Send
where
    F: FnMut() -> T + Send,
{
    move || {
        let mut left = retries;
        loop {
            match catch_unwind(AssertUnwindSafe(&mut func)) {
                Ok(value) => return value,
                Err(payload) if left == 0 || !may_retry() => resume_unwind(payload),
                Err(payload) => {
                    left -= 1;
                    // A payload whose drop panics ends the loop: that panic is the task's.
                    drop(payload);
                }
            }
        }
    }
}

/// Whether the task running on the calling thread may run another attempt: see
/// [`Worker::may_retry`](super::worker::Worker::may_retry). A thread that is not a worker runs
/// no task of a runtime, so nothing stops its loop.
fn may_retry() -> bool {
    current::with_any_current(|w| w.may_retry()).unwrap_or(true)
}
