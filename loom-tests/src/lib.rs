//! Loom models live in `tests/`; this crate only holds what they share. The model helpers are
//! tokengate's own, public for users in `tokengate::loom` (built with `--cfg loom`), whose
//! docs explain the two loom 0.7 limitations they work around (missed interleavings: run a
//! model in both spawn orders; unfair yields: avoid retry loops).
//!
//! Run them with
//!
//! ```text
//! CARGO_TARGET_DIR=target/loom RUSTFLAGS="--cfg loom -C debug-assertions" \
//!     cargo test -p tokengate-loom-tests --release -- --test-threads=1
//! ```
//!
//! Without `--cfg loom` every model file compiles to nothing.

#[cfg(loom)]
pub use tokengate::loom::{check, check_each_order, check_with, Order};

/// The smallest runtime a model can drive through the public API: one worker, unpinned (loom
/// has no cores to pin to), with `capacity` tokens. Its worker is a loom thread spawned by
/// `build`, so the model explores it like any thread of its own.
///
/// Every model must let the runtime drop (or shut it down) before the model returns:
/// graceful shutdown joins the worker, and a worker left running is a thread loom waits for.
#[cfg(loom)]
pub fn tiny_runtime(capacity: usize) -> tokengate::Runtime {
    tokengate::Runtime::builder()
        .workers(1)
        .pin(false)
        .capacity(capacity)
        .build()
        .expect("a one-worker runtime builds under loom")
}
