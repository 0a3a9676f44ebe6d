//! The lazily built default runtime.

use std::sync::OnceLock;

use crate::runtime::Runtime;

/// The process-wide default runtime, built on first use: one worker per core, pinned when the
/// platform allows (unpinned otherwise). It is never shut down.
///
/// # Examples
///
/// ```
/// let h = tokengate::global().spawn(|| 40 + 2);
/// assert_eq!(h.join(), Ok(42));
/// ```
pub fn global() -> &'static Runtime {
    static GLOBAL: OnceLock<Runtime> = OnceLock::new();
    GLOBAL.get_or_init(|| {
        Runtime::new()
            .or_else(|_| Runtime::builder().pin(false).build())
            .expect("tokengate: could not start the global runtime's worker threads")
    })
}
