//! The task state word: a task's lifecycle and the flags of its result hand-over, in one
//! atomic so that every transition is one atomic step.
//!
//! | bits | name | meaning |
//! | --- | --- | --- |
//! | 0–2 | lifecycle | a [`TokenState`]; only moves forward |
//! | 3 | `READY` | the outcome is written; set once, after the lifecycle became terminal |
//! | 4 | `WAITER_SET` | a waiter is registered and owned by the completer |
//! | 5 | `REGISTERING` | a joiner is writing the waiter cell (excludes other joiners) |
//! | 6 | `TAKEN` | the outcome was taken by a joiner |
//! | 7 | `DETACHED` | the handle is gone: whoever sees it with `READY` first drops the outcome |
//!
//! Lifecycle transitions, each by one CAS:
//!
//! | from | to | by |
//! | --- | --- | --- |
//! | `Admitted` | `Executing` | the thread that runs the task: its worker, a worker joining it (inline), or a worker that submitted it into a dry ring (without a token) |
//! | `Admitted` | `Killed` | `cancel`; a worker reaching a task that `shutdown_now`, `kill(id)`, `kill_operation` or `drain_operation` doomed, or whose operation is blocked; `kill`/`kill_operation` at once for a task held by a pause |
//! | `Admitted` | `TimedOut` | a worker reaching a task past its start deadline; a joiner (not a worker) waiting past it |
//! | `Executing` | `Completed` / `Failed` | the runner, with `READY` in the same step |
//!
//! A refused submission (shut down, blocked operation) gets a slot created already resolved:
//! `Killed` with `READY` set, no transition at all. No task is ever in `Waiting`: a handle
//! exists only once its task is admitted (see [`TokenState::Waiting`]).

/// Where a task is in its life. Transitions are atomic and only go forward.
///
/// # Examples
///
/// ```
/// use tokengate::{Runtime, TokenState};
///
/// let rt = Runtime::builder().workers(1).pin(false).build()?;
/// let h = rt.spawn(|| 1);
/// assert!(h.wait_timeout(std::time::Duration::from_secs(5)));
/// assert_eq!(h.state(), TokenState::Completed);
/// assert!(TokenState::Completed.is_terminal());
/// # Ok::<(), tokengate::BuildError>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TokenState {
    /// Waiting for a token. No handle is ever in this state: `submit` returns the handle
    /// only once its task is admitted (a submitter waiting for a token has no handle yet).
    /// The name is the Python original's; it is kept so that the states read as there.
    Waiting = 0,
    /// Holds a token and waits in a mailbox.
    Admitted = 1,
    /// Running on a worker.
    Executing = 2,
    /// Ran and returned a value.
    Completed = 3,
    /// Ran and panicked.
    Failed = 4,
    /// Killed before it started (cancelled; killed by `kill`, `kill_operation`,
    /// `drain_operation` or `shutdown_now`; dropped unrun because its operation got blocked;
    /// or refused because the runtime was shut down or the operation is blocked); never ran.
    Killed = 5,
    /// Its deadline passed before it started; never ran.
    TimedOut = 6,
}

impl TokenState {
    /// Whether the state is final.
    pub const fn is_terminal(self) -> bool {
        (self as u32) >= TokenState::Completed as u32
    }

    /// The state's name, as `Debug` prints it.
    pub const fn as_str(self) -> &'static str {
        match self {
            TokenState::Waiting => "Waiting",
            TokenState::Admitted => "Admitted",
            TokenState::Executing => "Executing",
            TokenState::Completed => "Completed",
            TokenState::Failed => "Failed",
            TokenState::Killed => "Killed",
            TokenState::TimedOut => "TimedOut",
        }
    }

    pub(crate) const fn from_word(word: u32) -> Self {
        match word & LIFECYCLE {
            0 => TokenState::Waiting,
            1 => TokenState::Admitted,
            2 => TokenState::Executing,
            3 => TokenState::Completed,
            4 => TokenState::Failed,
            5 => TokenState::Killed,
            _ => TokenState::TimedOut,
        }
    }
}

/// The final state of a task that never ran: what a [`TaskSlot`](super::TaskSlot) accepts
/// where a task is abandoned ([`TaskSlot::abandon`](super::TaskSlot::abandon)) or created
/// already resolved ([`TaskSlot::resolved`](super::TaskSlot::resolved)). A type of its own, so
/// that a state from which the task could still run (`Admitted`) cannot be passed there.
///
/// # Examples
///
/// ```
/// use tokengate::primitives::NeverRan;
/// use tokengate::TokenState;
///
/// assert_eq!(TokenState::from(NeverRan::TimedOut), TokenState::TimedOut);
/// assert_eq!(NeverRan::try_from(TokenState::Killed), Ok(NeverRan::Killed));
/// assert_eq!(NeverRan::try_from(TokenState::Admitted), Err(TokenState::Admitted));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum NeverRan {
    /// [`TokenState::Killed`].
    Killed,
    /// [`TokenState::TimedOut`].
    TimedOut,
}

impl From<NeverRan> for TokenState {
    #[inline]
    fn from(state: NeverRan) -> Self {
        match state {
            NeverRan::Killed => TokenState::Killed,
            NeverRan::TimedOut => TokenState::TimedOut,
        }
    }
}

impl TryFrom<TokenState> for NeverRan {
    /// The state, which is not one a task ends in without running.
    type Error = TokenState;

    #[inline]
    fn try_from(state: TokenState) -> Result<Self, TokenState> {
        match state {
            TokenState::Killed => Ok(NeverRan::Killed),
            TokenState::TimedOut => Ok(NeverRan::TimedOut),
            other => Err(other),
        }
    }
}

/// Mask of the lifecycle bits.
pub(crate) const LIFECYCLE: u32 = 0b111;
/// The outcome is written.
pub(crate) const READY: u32 = 1 << 3;
/// A waiter is registered.
pub(crate) const WAITER_SET: u32 = 1 << 4;
/// A joiner is writing the waiter cell.
pub(crate) const REGISTERING: u32 = 1 << 5;
/// The outcome was taken.
pub(crate) const TAKEN: u32 = 1 << 6;
/// The handle is gone: nobody will take the outcome (see `TaskSlot::detach`).
pub(crate) const DETACHED: u32 = 1 << 7;

impl std::fmt::Display for TokenState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
