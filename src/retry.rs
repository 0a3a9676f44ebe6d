//! Retries: a closure that can be called again, wrapped into one that calls it until it
//! returns or its retries are spent.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

/// `func` run up to `1 + retries` times while it panics; the last panic propagates (so the
/// task resolves `Panicked` with the last attempt's payload). Each failed attempt that is
/// retried is reported to the running worker's statistics.
pub(crate) fn retrying<F, T>(retries: u32, mut func: F) -> impl FnOnce() -> T + Send
where
    F: FnMut() -> T + Send,
{
    move || {
        let mut left = retries;
        loop {
            match catch_unwind(AssertUnwindSafe(&mut func)) {
                Ok(value) => return value,
                Err(payload) if left == 0 => resume_unwind(payload),
                Err(_) => {
                    left -= 1;
                    crate::worker::note_retried_attempt();
                }
            }
        }
    }
}
