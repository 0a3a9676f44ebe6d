//! [`TaskHandle`]: the caller's side of a submitted task.

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::TaskError;
use crate::slot::Registration;
use crate::sync::thread;
use crate::task::{Outcome, TaskId};
use crate::token::TokenState;
use crate::worker;

/// A submitted task: join it for its outcome, or cancel it. Shaped like
/// `std::thread::JoinHandle`. Dropping the handle does not cancel the task.
///
/// Everything the task did happens before [`join`](Self::join) returns (and before
/// [`is_finished`](Self::is_finished) or [`wait_timeout`](Self::wait_timeout) return `true`).
///
/// # Examples
///
/// ```
/// use tokengate::{Operation, Runtime, Weight};
///
/// const SQUARE: Operation = Operation::new("square").weight(Weight::Light);
/// let rt = Runtime::builder().workers(2).pin(false).build()?;
/// let handles: Vec<_> = (0..10u64).map(|i| rt.submit(&SQUARE, move || i * i)).collect();
/// let sum: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
/// assert_eq!(sum, 285);
/// # Ok::<(), tokengate::BuildError>(())
/// ```
#[must_use = "a task's panic or cancellation is only seen through its handle"]
pub struct TaskHandle<T> {
    task: Arc<dyn Outcome<T>>,
}

impl<T> TaskHandle<T> {
    pub(crate) fn new(task: Arc<dyn Outcome<T>>) -> Self {
        Self { task }
    }

    /// Waits for the task and returns its value, or why there is none.
    ///
    /// On a worker of the task's runtime this never blocks the worker idly: it runs the task
    /// inline if it has not started, else runs other queued tasks until it finishes, so nested
    /// submit-and-join cannot deadlock.
    pub fn join(self) -> Result<T, TaskError> {
        let job = self.task.as_job();
        if worker::with_current(job.meta().runtime, |w| w.join(job)).is_none() {
            job.wait();
        }
        match self.task.take_output() {
            Some(outcome) => outcome,
            None => unreachable!("only `join`, which consumes the handle, takes the outcome"),
        }
    }

    /// Whether the task has its outcome (ran, failed, or was killed).
    pub fn is_finished(&self) -> bool {
        self.task.is_ready()
    }

    /// Waits at most `timeout` for the task to finish; returns whether it did. A worker of the
    /// task's runtime runs the task inline if it has not started.
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let job = self.task.as_job();
        if job.is_ready() {
            return true;
        }
        if worker::with_current(job.meta().runtime, |_| job.run()).is_some() && job.is_ready() {
            return true;
        }
        let deadline = Instant::now() + timeout;
        loop {
            let now = Instant::now();
            if now >= deadline {
                job.unregister_waiter();
                return job.is_ready();
            }
            match job.register_waiter() {
                Registration::Ready => return true,
                Registration::Registered => thread::park_timeout(deadline - now),
                Registration::Contended => {
                    thread::park_timeout((deadline - now).min(Duration::from_micros(50)))
                }
            }
            if job.is_ready() {
                return true;
            }
        }
    }

    /// Cancels the task if it has not started. Returns `true` if it will never run (its join
    /// then returns [`TaskError::Killed`]), `false` if it is running or finished.
    pub fn cancel(&self) -> bool {
        self.task.abandon(TaskError::Killed, TokenState::Killed)
    }

    /// Where the task is in its life.
    pub fn state(&self) -> TokenState {
        self.task.state()
    }

    /// The task's id.
    pub fn id(&self) -> TaskId {
        self.task.meta().id
    }

    /// The name of the task's operation.
    pub fn operation(&self) -> &'static str {
        self.task.meta().operation
    }
}

impl<T> fmt::Debug for TaskHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskHandle")
            .field("id", &self.id())
            .field("operation", &self.operation())
            .field("state", &self.state())
            .finish()
    }
}
