//! The errors of tokengate: why a task has no value, why a submission was refused, why a
//! runtime could not be built.

use std::any::Any;
use std::fmt;

/// Why a task produced no value. `#[non_exhaustive]`: match with a wildcard arm.
///
/// # Examples
///
/// ```
/// use tokengate::{Runtime, TaskError};
///
/// let rt = Runtime::builder().workers(1).pin(false).build()?;
/// let err = rt.spawn(|| -> u32 { panic!("bad input") }).join().unwrap_err();
/// assert!(matches!(err, TaskError::Panicked(_)));
/// assert_eq!(err.to_string(), "task panicked: bad input");
/// # Ok::<(), tokengate::BuildError>(())
/// ```
#[non_exhaustive]
pub enum TaskError {
    /// The task panicked; the payload is kept.
    Panicked(PanicPayload),
    /// The task was cancelled or killed before it started; it never ran.
    Killed,
    /// The task did not start before its deadline; it never ran.
    TimedOut,
    /// The runtime was shut down before the task was admitted; it never ran.
    ShutDown,
    /// The task's operation is blocked; it never ran.
    Blocked,
}

impl TaskError {
    /// Whether the task's closure ran (only a panic means it did).
    pub fn ran(&self) -> bool {
        matches!(self, TaskError::Panicked(_))
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Panicked(p) => write!(f, "task panicked: {}", p.message()),
            TaskError::Killed => f.write_str("task was killed before it started"),
            TaskError::TimedOut => f.write_str("task did not start before its deadline"),
            TaskError::ShutDown => f.write_str("runtime was shut down; task never ran"),
            TaskError::Blocked => f.write_str("task's operation is blocked; task never ran"),
        }
    }
}

impl fmt::Debug for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Panicked(p) => f.debug_tuple("Panicked").field(p).finish(),
            TaskError::Killed => f.write_str("Killed"),
            TaskError::TimedOut => f.write_str("TimedOut"),
            TaskError::ShutDown => f.write_str("ShutDown"),
            TaskError::Blocked => f.write_str("Blocked"),
        }
    }
}

impl std::error::Error for TaskError {}

/// Errors are equal when they are the same variant; two panics when their messages are equal.
impl PartialEq for TaskError {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (TaskError::Panicked(a), TaskError::Panicked(b)) => a.message() == b.message(),
            _ => std::mem::discriminant(self) == std::mem::discriminant(other),
        }
    }
}

/// The value a task panicked with.
pub struct PanicPayload(Box<dyn Any + Send + 'static>);

impl PanicPayload {
    pub(crate) fn new(payload: Box<dyn Any + Send + 'static>) -> Self {
        Self(payload)
    }

    /// The panic message, when the payload is a string (as `panic!` makes it), else
    /// `"<non-string panic payload>"`.
    pub fn message(&self) -> &str {
        if let Some(s) = self.0.downcast_ref::<&'static str>() {
            s
        } else if let Some(s) = self.0.downcast_ref::<String>() {
            s
        } else {
            "<non-string panic payload>"
        }
    }

    /// The payload itself, for `std::panic::resume_unwind`.
    pub fn into_inner(self) -> Box<dyn Any + Send + 'static> {
        self.0
    }
}

impl fmt::Debug for PanicPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.message(), f)
    }
}

/// Why [`Runtime::try_submit`](crate::Runtime::try_submit) refused a task. The closure comes
/// back, unrun.
///
/// # Examples
///
/// ```
/// use tokengate::{Runtime, TrySubmitError};
///
/// let rt = Runtime::builder().workers(1).pin(false).build()?;
/// rt.shutdown();
/// match rt.try_spawn(|| 1) {
///     Err(TrySubmitError::ShutDown(f)) => assert_eq!(f(), 1), // still ours to call
///     _ => unreachable!(),
/// }
/// # Ok::<(), tokengate::BuildError>(())
/// ```
#[must_use]
pub enum TrySubmitError<F> {
    /// Every token is out: the runtime is at capacity.
    Full(F),
    /// The runtime is shut down (or shutting down).
    ShutDown(F),
    /// The operation is blocked by auto-block (see
    /// [`Builder::auto_block`](crate::Builder::auto_block)).
    Blocked(F),
}

impl<F> TrySubmitError<F> {
    /// The closure that was not submitted.
    pub fn into_inner(self) -> F {
        match self {
            TrySubmitError::Full(f) | TrySubmitError::ShutDown(f) | TrySubmitError::Blocked(f) => f,
        }
    }

    /// Whether the refusal was for lack of a token (and a retry may succeed).
    pub fn is_full(&self) -> bool {
        matches!(self, TrySubmitError::Full(_))
    }
}

impl<F> fmt::Debug for TrySubmitError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySubmitError::Full(_) => f.write_str("Full(..)"),
            TrySubmitError::ShutDown(_) => f.write_str("ShutDown(..)"),
            TrySubmitError::Blocked(_) => f.write_str("Blocked(..)"),
        }
    }
}

impl<F> fmt::Display for TrySubmitError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TrySubmitError::Full(_) => {
                f.write_str("every token is out: the runtime is at capacity")
            }
            TrySubmitError::ShutDown(_) => f.write_str("the runtime is shut down"),
            TrySubmitError::Blocked(_) => f.write_str(
                "the operation is blocked (it failed too often); unblock_operation lifts it",
            ),
        }
    }
}

impl<F> std::error::Error for TrySubmitError<F> {}

/// Why [`Builder::build`](crate::Builder::build) refused its settings. Its message says what to
/// change.
///
/// # Examples
///
/// ```
/// use tokengate::Runtime;
///
/// let err = Runtime::builder().capacity(1000).build().unwrap_err();
/// assert_eq!(err.to_string(), "capacity 1000 is not a power of two; try 1024");
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct BuildError {
    message: String,
}

impl BuildError {
    pub(crate) fn new(message: String) -> Self {
        Self { message }
    }
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl fmt::Debug for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BuildError({:?})", self.message)
    }
}

impl std::error::Error for BuildError {}
