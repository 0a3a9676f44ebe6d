//! # tokengate
//!
//! A minimal, lock-free, no-async runtime for synchronous work. Tag a closure with an
//! [`Operation`] (a name and a [`Weight`]); the runtime hands it a token from a bounded
//! lock-free token ring, routes it to one of a set of worker threads pinned one per core, and
//! the worker runs it from its lock-free mailbox. You get a [`TaskHandle`] back and join it.
//!
//! ```
//! use tokengate::{Operation, Runtime, Weight};
//!
//! const PRIME: Operation = Operation::new("prime_check").weight(Weight::Heavy);
//!
//! fn is_prime(n: u64) -> bool {
//!     n > 1 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0)
//! }
//!
//! let rt = Runtime::builder().workers(2).pin(false).build()?;
//! let handles: Vec<_> = (1_000_000..1_000_100u64)
//!     .map(|n| rt.submit(&PRIME, move || is_prime(n)))
//!     .collect();
//! let primes = handles.into_iter().map(|h| h.join().unwrap()).filter(|&p| p).count();
//! assert_eq!(primes, 6);
//! # Ok::<(), tokengate::BuildError>(())
//! ```
//!
//! ## Guarantees
//!
//! - Every admitted task runs exactly once, or resolves `Killed`/`TimedOut`/`ShutDown`
//!   without running; every handle resolves.
//! - At most `capacity` tasks are admitted and unfinished at once; memory is fixed by it.
//! - Submitting, routing, popping, stealing and completing take no lock; the one allocation
//!   per task holds the closure, its state and its outcome. Tokens are recycled.
//! - An idle runtime parks its workers. A worker that submits or joins never deadlocks the
//!   runtime, even with one worker and a full ring.
//! - A panicking task resolves [`TaskError::Panicked`]; the worker lives on.
//! - **Happens-before**: everything a task did happens before its [`TaskHandle::join`]
//!   returns (and before `is_finished`/`wait_timeout` report it finished); everything the
//!   submitter did before `submit` happens before the task starts.
//!
//! ## Research primitives
//!
//! The lock-free structures are public in [`primitives`], each with its memory-ordering
//! contract, and model-checked with loom (`loom-tests/`).

#![deny(unsafe_op_in_unsafe_fn)]
#![warn(clippy::undocumented_unsafe_blocks)]

mod admin;
mod broadcast;
mod clock;
mod counters;
mod error;
#[cfg(not(loom))]
mod global;
mod handle;
mod history;
mod mailbox;
mod operation;
mod ops;
mod prometheus;
mod queue;
mod retry;
mod ring;
mod route;
mod runtime;
mod scope;
mod shared;
mod sleep;
mod slot;
mod stats;
mod sync;
mod task;
mod token;
mod topology;
mod wait_list;
mod worker;

pub use broadcast::{BroadcastContext, BROADCAST};
pub use error::{BuildError, PanicPayload, TaskError, TrySubmitError};
#[cfg(not(loom))]
pub use global::global;
pub use handle::TaskHandle;
pub use history::ExecutionRecord;
pub use operation::{sticky_key, Operation, ParseWeightError, StorageTier, Weight};
pub use route::Routing;
pub use runtime::{Builder, Runtime};
pub use scope::{Scope, ScopedHandle};
pub use stats::{Health, Histogram, OperationStats, Stats, WorkerStats};
pub use task::TaskId;
pub use token::TokenState;

/// The index of the worker the calling thread is, if it is a tokengate worker (of any
/// runtime).
///
/// # Examples
///
/// ```
/// let rt = tokengate::Runtime::builder().workers(1).pin(false).build()?;
/// assert_eq!(tokengate::current_worker(), None);
/// assert_eq!(rt.spawn(tokengate::current_worker).join(), Ok(Some(0)));
/// # Ok::<(), tokengate::BuildError>(())
/// ```
pub fn current_worker() -> Option<usize> {
    worker::current_worker()
}

/// The lock-free building blocks of the runtime, public for study and reuse. Each documents
/// its memory-ordering contract; each is model-checked with loom in `loom-tests/`.
pub mod primitives {
    pub use crate::mailbox::{LanePicker, Mailbox, STARVATION_LIMIT};
    pub use crate::queue::ArrayQueue;
    pub use crate::ring::{Token, TokenRing};
    pub use crate::sleep::Sleeper;
    pub use crate::slot::{Registration, TaskSlot};
}

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// Compile-time checks of the auto traits users rely on.
#[allow(dead_code)]
fn assert_send_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Runtime>();
    send_sync::<TaskHandle<u8>>();
    send_sync::<primitives::TokenRing>();
    send_sync::<primitives::Mailbox>();
    send_sync::<primitives::Sleeper>();
}
