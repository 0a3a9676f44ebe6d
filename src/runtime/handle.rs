//! [`TaskHandle`]: the caller's side of a submitted task.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::engine::current;
use crate::error::TaskError;
use crate::primitives::{NeverRan, Registration, TokenState};
use crate::sync::thread;
use crate::task::{OutcomeRef, TaskId};

/// A submitted task: join it for its outcome, await it, or cancel it. Shaped like
/// `std::thread::JoinHandle`. Dropping the handle does not cancel the task.
///
/// Everything the task did happens before [`join`](Self::join) returns (and before
/// [`is_finished`](Self::is_finished) or [`wait_timeout`](Self::wait_timeout) return `true`,
/// and before an `.await` of the handle returns).
///
/// # As a future
///
/// `TaskHandle<T>` is a [`Future`] with output `Result<T, TaskError>`, so async code can
/// offload CPU work to the pinned workers and await it under any executor: it needs no async
/// runtime of its own. It stores the executor's waker in the task's slot (lock-free, see
/// [`TaskSlot::poll_output`](crate::primitives::TaskSlot::poll_output)) and the worker that
/// finishes the task wakes it. It is `Unpin`.
///
/// - Dropping a pending handle (a `select!` that took another branch, a timeout) is fine:
///   the task still runs, its waker is withdrawn, its outcome is dropped.
/// - A handle polled (pending) and then [`join`](Self::join)ed still works.
/// - Polling it again after it returned `Poll::Ready` panics ("TaskHandle polled after
///   completion"), as futures may; so does joining it then.
/// - On a worker of its own runtime prefer [`join`](Self::join): it runs queued tasks while
///   it waits, whereas a blocking executor's park there idles the worker.
///
/// ```
/// use std::future::Future;
/// use std::pin::pin;
/// use std::sync::Arc;
/// use std::task::{Context, Poll, Wake, Waker};
/// use std::thread::{self, Thread};
/// use tokengate::Runtime;
///
/// /// A tiny executor: poll, park until woken, poll again.
/// fn block_on<F: Future>(future: F) -> F::Output {
///     struct Unpark(Thread);
///     impl Wake for Unpark {
///         fn wake(self: Arc<Self>) {
///             self.0.unpark();
///         }
///     }
///     let waker = Waker::from(Arc::new(Unpark(thread::current())));
///     let mut cx = Context::from_waker(&waker);
///     let mut future = pin!(future);
///     loop {
///         match future.as_mut().poll(&mut cx) {
///             Poll::Ready(output) => return output,
///             Poll::Pending => thread::park(),
///         }
///     }
/// }
///
/// let rt = Runtime::builder().workers(2).pin(false).build()?;
/// let total = block_on(async {
///     let low = rt.spawn(|| (1..=100u64).sum::<u64>());
///     let high = rt.spawn(|| (101..=200u64).sum::<u64>());
///     low.await.unwrap() + high.await.unwrap()
/// });
/// assert_eq!(total, 20_100);
/// # Ok::<(), tokengate::BuildError>(())
/// ```
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
    task: OutcomeRef<T>,
    /// What polling the handle as a future did so far.
    polled: Polled,
}

/// How far a [`TaskHandle`] was polled as a future.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Polled {
    /// Never, or only to a `Pending` that registered no waker.
    Never,
    /// The last poll returned `Pending`: a waker may be registered in the slot.
    Pending,
    /// A poll returned `Ready`: the outcome was taken.
    Done,
}

impl<T> TaskHandle<T> {
    pub(crate) fn new(task: OutcomeRef<T>) -> Self {
        Self {
            task,
            polled: Polled::Never,
        }
    }

    /// Waits for the task and returns its value, or why there is none.
    ///
    /// On a worker of the task's runtime this never blocks the worker idly: it runs the task
    /// inline if it has not started, else runs other queued tasks until it finishes, so nested
    /// submit-and-join cannot deadlock.
    ///
    /// # Panics
    ///
    /// If the handle was already awaited (polled to `Poll::Ready`): its outcome is gone.
    pub fn join(mut self) -> Result<T, TaskError> {
        assert!(
            self.polled != Polled::Done,
            "TaskHandle joined after it was polled to completion"
        );
        match current::with_current(self.task.meta().runtime, |w| w.join_taking(&*self.task)) {
            // Run here, its outcome handed straight back (a fork popped back by its joiner).
            Some(Some(outcome)) => {
                self.polled = Polled::Done; // taken: nothing left for `Drop` to do
                return outcome;
            }
            // Ready in the task: taken below.
            Some(None) => {}
            // Off the runtime's workers: wait, unless it is finished already (a handle joined
            // long after its task ran, as in a flood of tasks joined at the end).
            None if self.task.is_ready() => {}
            None => self.wait_off_worker(),
        }
        let outcome = match self.task.take_output() {
            Some(outcome) => outcome,
            None => unreachable!(
                "only `join` (which consumes the handle) and a `Ready` poll take the outcome"
            ),
        };
        self.polled = Polled::Done; // taken: nothing left for `Drop` to do
        outcome
    }

    /// Waits for the task's outcome on a thread that is not a worker of its runtime.
    #[cold]
    fn wait_off_worker(&self) {
        let job = self.task.as_job();
        if let Some(deadline) = job.meta().deadline {
            // Enforce the start deadline here too, in case no worker reaches the task in
            // time: past it, a task that has not started resolves TimedOut.
            let now = Instant::now();
            if !(now < deadline && self.wait_timeout(deadline - now)) {
                job.abandon(TaskError::TimedOut, NeverRan::TimedOut);
            }
        }
        // A worker of another runtime keeps serving its own while it waits (its tasks may be
        // what this task waits for); any other thread blocks.
        if current::with_any_current(|w| w.wait_helping(job)).is_none() {
            job.wait();
        }
    }

    /// Whether the task has its outcome (ran, failed, or was killed).
    pub fn is_finished(&self) -> bool {
        self.task.is_ready()
    }

    /// Waits at most `timeout` for the task to finish; returns whether it did. A worker of the
    /// task's runtime runs the task inline if it has not started (a sticky task excepted: it
    /// runs after the earlier tasks of its key). On a worker, of any runtime, the wait keeps
    /// serving that worker's runtime, so it may end later than `timeout` by the rest of a task
    /// it was running meanwhile. A timeout too large to add to the current time (such as
    /// `Duration::MAX`) waits as long as it takes.
    ///
    /// Built with `--cfg loom` (a model, see `docs/loom.md`), only `Duration::ZERO` (a poll)
    /// and `Duration::MAX` (a join) are accepted; any other timeout panics in words: a model
    /// has no clock.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// let rt = tokengate::Runtime::builder().workers(1).pin(false).build()?;
    /// let h = rt.spawn(|| 2 + 2);
    /// assert!(h.wait_timeout(Duration::MAX));
    /// assert_eq!(h.join(), Ok(4));
    /// # Ok::<(), tokengate::BuildError>(())
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        // Refused in every schedule, finished or not, so that a model fails the same way.
        if cfg!(loom) && timeout != Duration::ZERO && timeout != Duration::MAX {
            crate::sync::unsupported_under_loom(
                "TaskHandle::wait_timeout with a timeout other than Duration::ZERO or \
                 Duration::MAX",
                "a model has no clock, and a wait measured on the real one would make two \
                 executions of one schedule differ",
                "use join, is_finished, or wait_timeout(Duration::ZERO) to poll",
            );
        }
        let job = self.task.as_job();
        if job.is_ready() {
            return true;
        }
        if current::with_current(job.meta().runtime, |w| w.run_inline(job)).is_some()
            && job.is_ready()
        {
            return true;
        }
        let Some(deadline) = Instant::now().checked_add(timeout) else {
            // No instant that far away: wait for the outcome, as `join` does.
            if current::with_any_current(|w| w.wait_helping(job)).is_none() {
                job.wait();
            }
            return true;
        };
        // On a worker (of any runtime), keep serving it meanwhile: the task may wait behind
        // work only this worker runs (a sticky task homed here, after the earlier ones of its
        // key). The wait then ends at the first look after the deadline, or after the helped
        // task that runs across it.
        let helped = current::with_any_current(|w| {
            w.help_until(|| job.is_ready() || Instant::now() >= deadline, false);
        });
        if helped.is_some() {
            return job.is_ready();
        }
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
    /// then returns [`TaskError::Killed`]), `false` if it is running or finished. A running
    /// task submitted with [`Runtime::submit_retrying`](crate::Runtime::submit_retrying) is
    /// not retried after its current attempt.
    ///
    /// The closure of a cancelled task is dropped here; a panic in its captures' `Drop` is
    /// contained (the panic hook reports it) and the task still resolves `Killed`.
    pub fn cancel(&self) -> bool {
        if self.task.abandon(TaskError::Killed, NeverRan::Killed) {
            return true;
        }
        if self.task.state() == TokenState::Executing {
            self.task.meta().request_stop();
        }
        false
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

impl<T> Future for TaskHandle<T> {
    type Output = Result<T, TaskError>;

    /// Takes the outcome if the task finished, else registers the waker to be woken when it
    /// does. See the type's docs.
    ///
    /// # Panics
    ///
    /// If polled again after it returned `Poll::Ready`.
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        assert!(
            this.polled != Polled::Done,
            "TaskHandle polled after completion"
        );
        let poll = this.task.poll_output(cx);
        this.polled = if poll.is_ready() {
            Polled::Done
        } else {
            Polled::Pending
        };
        poll
    }
}

impl<T> Drop for TaskHandle<T> {
    fn drop(&mut self) {
        // A future dropped while pending: withdraw its waker now, so the executor's task is
        // not kept alive until this task finishes. Joined or never-polled handles skip it.
        if self.polled == Polled::Pending {
            self.task.unregister_waker();
        }
        // Dropped without its outcome taken: nobody will take it. It is dropped as soon as it
        // exists: here if the task is finished (as when this was the task's last reference),
        // else by the thread that publishes it, contained. Never left in the task, whose
        // memory (its token's cell, or its allocation) lives until its last reference goes,
        // unless it is a value with no drop glue (then there is nothing to drop).
        // A joined or completed handle skips this: its outcome is gone, and the task's cache
        // line is left alone.
        if self.polled != Polled::Done {
            self.task.detach();
        }
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
