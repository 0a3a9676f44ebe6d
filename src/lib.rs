//! # tokengate
//!
//! A minimal, lock-free, no-async runtime for synchronous work. Tag a closure with an
//! [`Operation`] (a name and a [`Weight`]); the runtime hands it a token from a bounded
//! lock-free token ring, routes it to one of a set of worker threads pinned one per core, and
//! the worker runs it from its lock-free mailbox. You get a [`TaskHandle`] back and join it,
//! or `.await` it from async code (it is a `Future`, needing no async runtime of its own).
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
//! - Submitting, routing, popping, stealing and completing take no lock. A small task lives
//!   in its token's cell (closure, state and outcome together) and allocates nothing; a
//!   larger one makes one allocation. Tokens are recycled.
//! - An idle runtime parks its workers. A worker that submits or joins never deadlocks the
//!   runtime, even with one worker and a full ring.
//! - A panicking task resolves [`TaskError::Panicked`]; the worker lives on.
//! - **Happens-before**: everything a task did happens before its [`TaskHandle::join`]
//!   returns (and before `is_finished`/`wait_timeout` report it finished, and before an
//!   `.await` of the handle returns); everything the submitter did before `submit` happens
//!   before the task starts.
//!
//! ## Research primitives
//!
//! The lock-free structures are public in [`primitives`], each with its memory-ordering
//! contract, and model-checked with loom (`loom-tests/`).
//!
//! ## Model-checking your own code
//!
//! Built with `--cfg loom`, tokengate runs on loom's threads and atomics, so your code on top
//! of it can be model-checked, runtime included: the module `tokengate::loom` (present only
//! under that cfg) has the helpers, and `docs/loom.md` in the repository is the guide, with a
//! worked example crate (`loom-example/`).

mod contain;
mod engine;
mod error;
#[cfg(loom)]
pub mod loom;
mod metrics;
mod operation;
pub mod primitives;
mod runtime;
mod sync;
mod task;

pub use engine::current::current_worker;
pub use engine::reputation::Health;
pub use engine::route::Routing;
pub use error::{BuildError, PanicPayload, TaskError, TrySubmitError};
pub use operation::{
    sticky_key, Operation, ParseStorageTierError, ParseWeightError, StorageTier, Weight,
};
pub use primitives::TokenState;
pub use runtime::{global, join, spawn, submit};
pub use runtime::{
    BroadcastContext, Builder, ExecutionRecord, Histogram, OperationStats, Runtime, Scope,
    ScopedHandle, Stats, TaskHandle, WorkerStats,
};
pub use task::TaskId;

/// Makes a synchronous function submit its body as a task and return the [`TaskHandle`] at
/// once: the Rust form of the Python original's decorator. Enabled by the default `macros`
/// feature.
///
/// | Python (Py-TokenGate) | Rust (tokengate) |
/// | --- | --- |
/// | `@task_token_guard(operation_type='prime_check', tags={'weight': 'medium'})` | `#[tokengate::task_token_guard(operation_type = "prime_check", weight = "medium")]` |
/// | `def prime_operation(n):` | `fn prime_operation(n: u64) -> bool { .. }` |
/// | a call becomes a token that the `OperationsCoordinator` routes to a worker | the call returns a `TaskHandle<bool>` at once; `.join()` it for the result |
///
/// ```python
/// @task_token_guard(operation_type='prime_check', tags={'weight': 'medium'})
/// def prime_operation(n):
///     ...  # a plain synchronous body
/// ```
///
/// ```
/// use tokengate::TaskHandle;
///
/// #[tokengate::task_token_guard(operation_type = "prime_check", weight = "medium")]
/// fn prime_operation(n: u64) -> bool {
///     n > 1 && (2..).take_while(|d| d * d <= n).all(|d| n % d != 0)
/// }
///
/// // Each call is a task on the global runtime; the handles are joined for the results.
/// let handles: Vec<TaskHandle<bool>> = (1_000_000..1_000_100).map(prime_operation).collect();
/// let primes = handles.into_iter().map(|h| h.join().unwrap()).filter(|&p| p).count();
/// assert_eq!(primes, 6);
/// ```
///
/// # Keys
///
/// | key | value | default | what it does |
/// | --- | --- | --- | --- |
/// | `operation_type` | a string literal (required) | — | the operation's name, as in [`Operation::new`]; calls of one name share their statistics and limits |
/// | `weight` | `"light"`, `"medium"` or `"heavy"`, in any case | `"medium"` | the [`Weight`]: the lane the call waits in (light is taken first) and, with [`Routing::Isolated`], the workers that may run it |
/// | `sticky` | an expression over the arguments, of any `Hash` type | none | every call with an equal key runs on one worker, in call order, never two at once: [`Operation::sticky`] of [`sticky_key`]`(&expr)`, computed per call before the arguments move into the task |
/// | `retries` | an integer | `0` | a call that panics is run again up to this many times and the handle gets the last attempt's outcome ([`Operation::retries`], [`Runtime::submit_retrying`]); every argument must then be `Clone`, since each attempt gets a clone |
/// | `deadline_ms` | an integer, at least 1 | none | a call not started within this many milliseconds resolves [`TaskError::TimedOut`] and never runs ([`Operation::deadline`]) |
/// | `concurrency_limit` | an integer, at least 1, or a [`StorageTier`]: `"slow"` (10), `"moderate"` (25), `"fast"` (50), `"insane"` (70) | none | at most this many calls of the operation run at once; the others wait without holding a worker ([`Operation::concurrency_limit`]) |
/// | `runtime` | the path of a function returning `&Runtime` | [`global`] | the [`Runtime`] the calls are submitted to |
///
/// Every key at once, on a runtime of its own:
///
/// ```
/// use std::sync::OnceLock;
/// use tokengate::Runtime;
///
/// fn two_workers() -> &'static Runtime {
///     static RT: OnceLock<Runtime> = OnceLock::new();
///     RT.get_or_init(|| Runtime::builder().workers(2).pin(false).build().unwrap())
/// }
///
/// /// Stores one user's record; the saves of one user never overlap.
/// #[tokengate::task_token_guard(
///     operation_type = "save_user",
///     weight = "light",
///     sticky = user_id,
///     retries = 2,
///     deadline_ms = 60_000,
///     concurrency_limit = "slow",
///     runtime = two_workers,
/// )]
/// fn save(user_id: u64, record: String) -> usize {
///     record.len()
/// }
///
/// assert_eq!(save(7, "hello".to_string()).join(), Ok(5));
/// ```
///
/// # What the function becomes
///
/// It keeps its visibility, name, attributes (doc comments included) and arguments, and
/// returns `TaskHandle<T>` for a declared return type `T` (`TaskHandle<()>` without one). Its
/// body moves, unchanged, into a nested function that the task calls with the arguments; so a
/// recursive call calls the decorated function and submits a new task. With `retries`, it
/// calls [`Runtime::submit_retrying`] with a closure that clones every argument for each
/// attempt.
///
/// # What the function may be
///
/// - Synchronous, safe, not `const`, not `extern`, not variadic, and not a method taking
///   `self` (an associated function without `self` is fine, if its signature names its types
///   rather than `Self`).
/// - Its arguments and return value cross to a worker thread and are used after the call
///   returns, so they must be `Send + 'static`: no borrowed arguments (`&T` without
///   `'static`, `'_`, lifetime parameters). Take owned values (`String`, `Vec<T>`, `Arc<T>`).
/// - Argument patterns (`mut x: T`, `(a, b): (A, B)`) are kept in the body; a `sticky`
///   expression can use the names they bind.
/// - Type and const generic parameters are kept as written; give type parameters the bounds
///   the task needs (`T: Send + 'static`, and `Clone` with `retries`).
///
/// Each refusal is a compile error pointing at the offending token and saying what to write
/// instead; so are unknown or repeated keys, unknown weights and storage tiers, values of the
/// wrong kind, `concurrency_limit = 0` and a missing `operation_type`:
///
/// ```compile_fail
/// #[tokengate::task_token_guard(operation_type = "fetch")]
/// async fn fetch(url: String) -> usize { url.len() } // error: an `async fn` cannot be a task
/// ```
#[cfg(feature = "macros")]
pub use tokengate_macros::task_token_guard;

/// The README's examples, compiled and run as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
