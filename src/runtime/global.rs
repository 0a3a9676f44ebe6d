//! The lazily built default runtime.

use std::sync::OnceLock;

use super::Runtime;

/// The process-wide default runtime, built on first use: one worker per core, pinned when the
/// platform allows (unpinned otherwise). It is never shut down.
///
/// # Panics
///
/// In a child process made by `fork()` after the parent used `global()`: the child has a copy
/// of the runtime but none of its worker threads (`fork` copies only the calling thread), so
/// a task submitted there would never run. Rather than hang, `global()` says so; build a
/// [`Runtime`] in the child instead. (A `Runtime` built before a `fork` is equally unusable
/// in the child; only `global()` checks, since only it is reached implicitly.)
///
/// Built with `--cfg loom` (a model, see `docs/loom.md`): always, in words. A runtime that
/// lives as long as the process would outlive the model's execution; build one in the model.
///
/// # Examples
///
/// ```
/// let h = tokengate::global().spawn(|| 40 + 2);
/// assert_eq!(h.join(), Ok(42));
/// ```
pub fn global() -> &'static Runtime {
    if cfg!(loom) {
        crate::sync::unsupported_under_loom(
            "tokengate::global() (and a #[task_token_guard] function without `runtime = ...`)",
            "a runtime that lives as long as the process would outlive the model's execution, \
             whose threads loom ends",
            "build a Runtime inside the model (tokengate::loom::model_runtime) and submit to it",
        );
    }
    static GLOBAL: OnceLock<(u32, Runtime)> = OnceLock::new();
    let (pid, runtime) = GLOBAL.get_or_init(|| {
        let runtime = Runtime::new()
            .or_else(|_| Runtime::builder().pin(false).build())
            .expect("tokengate: could not start the global runtime's worker threads");
        (std::process::id(), runtime)
    });
    let here = std::process::id();
    if *pid != here {
        forked(*pid, here);
    }
    runtime
}

#[cold]
#[inline(never)]
fn forked(parent: u32, child: u32) -> ! {
    panic!(
        "tokengate::global() was started in process {parent} and used in process {child}, a \
         child made by fork(): the child has none of its worker threads, so its tasks would \
         never run; build a tokengate::Runtime in the child instead"
    )
}
