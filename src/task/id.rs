//! [`TaskId`]: which task of which runtime.

use std::fmt;

/// A task's identity: unique among the tasks of one runtime at any time, and across time
/// unless a token is reused 2³² times; ids of two runtimes never compare equal.
///
/// # Examples
///
/// ```
/// use tokengate::Runtime;
///
/// let rt = Runtime::builder().workers(1).pin(false).build()?;
/// let (a, b) = (rt.spawn(|| ()), rt.spawn(|| ()));
/// assert_ne!(a.id(), b.id());
/// # Ok::<(), tokengate::BuildError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId {
    /// The runtime's serial number in this process (see [`next_runtime_serial`]).
    runtime: u32,
    /// Generation in the high half, token index in the low half.
    raw: u64,
}

/// A process-wide serial number for a new runtime, so that task ids of two runtimes differ.
///
/// A std atomic, not the loom shim's: a process-wide static outlives any loom model, and this
/// counter takes part in no protocol (only its uniqueness matters).
pub(crate) fn next_runtime_serial() -> u32 {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    // ORDERING: Relaxed: only uniqueness matters.
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl TaskId {
    /// The id of the `generation`-th task admitted with token `index` by runtime `runtime`.
    pub(crate) fn new(runtime: u32, generation: u32, index: u32) -> Self {
        Self {
            runtime,
            raw: (generation as u64) << 32 | index as u64,
        }
    }

    pub(crate) fn from_u64(runtime: u32, raw: u64) -> Self {
        Self { runtime, raw }
    }

    pub(crate) fn runtime(self) -> u32 {
        self.runtime
    }

    pub(crate) fn generation(self) -> u32 {
        (self.raw >> 32) as u32
    }

    pub(crate) fn index(self) -> u32 {
        self.raw as u32
    }

    /// The id as one number, unique within its runtime.
    pub fn as_u64(self) -> u64 {
        self.raw
    }
}

impl fmt::Debug for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TaskId({self})")
    }
}

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let index = self.raw as u32;
        if index == u32::MAX {
            write!(f, "inline-{}", self.raw >> 32)
        } else {
            write!(f, "{}.{}", index, self.raw >> 32)
        }
    }
}
