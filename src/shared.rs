//! The state a runtime shares with its workers, and the admission path (take a token, route,
//! push, wake) that runs on the submitting thread.

use crossbeam_utils::CachePadded;
use std::fmt;
use std::sync::Arc as StdArc;

use crate::error::{TaskError, TrySubmitError};
use crate::handle::TaskHandle;
use crate::mailbox::Mailbox;
use crate::operation::{Operation, Weight};
use crate::ring::{Token, TokenRing};
use crate::route::Routes;
use crate::sleep::Sleeper;
use crate::sync::{fence, AtomicBool, AtomicU32, AtomicUsize, Ordering, UnsafeCell};
use crate::task::{Job, JobRef, Outcome, Task, TaskId, TaskMeta};
use crate::token::TokenState;
use crate::worker;

/// What one worker shares with everybody: its mailbox and its activity word.
#[derive(Debug)]
pub(crate) struct WorkerShared {
    pub(crate) mailbox: Mailbox,
    pub(crate) sleeper: Sleeper,
}

/// Per token: the task waiting under it. Only the token's holder touches a slot, so plain
/// cells suffice; padded so that neighbouring tokens held by different threads do not share
/// a cache line.
struct TokenSlot {
    job: UnsafeCell<Option<JobRef>>,
    generation: UnsafeCell<u32>,
}

pub(crate) struct Shared {
    pub(crate) ring: TokenRing,
    tokens: Box<[CachePadded<TokenSlot>]>,
    pub(crate) workers: Box<[CachePadded<WorkerShared>]>,
    pub(crate) routes: Routes,
    /// No new admissions (set by `shutdown` and `shutdown_now`).
    closed: AtomicBool,
    /// Queued tasks are killed instead of run (set by `shutdown_now`).
    kill_queued: AtomicBool,
    /// Workers exit (set once every token is home after `closed`).
    stop: AtomicBool,
    /// How many workers are parked or about to park.
    pub(crate) sleepers: AtomicUsize,
    /// Ids of tasks run in place without a token.
    inline_ids: AtomicU32,
}

// SAFETY: the token slots' cells are only touched by the holder of the token (module docs of
// `ring`); every other field is Sync.
unsafe impl Sync for Shared {}
// SAFETY: all fields are Send (`JobRef` is `Arc<dyn Job>`, `Job: Send + Sync`).
unsafe impl Send for Shared {}

impl Shared {
    pub(crate) fn new(capacity: usize, routes: Routes, workers: usize) -> Self {
        Self {
            ring: TokenRing::new(capacity),
            tokens: (0..capacity)
                .map(|_| {
                    CachePadded::new(TokenSlot {
                        job: UnsafeCell::new(None),
                        generation: UnsafeCell::new(0),
                    })
                })
                .collect(),
            workers: (0..workers)
                .map(|_| {
                    CachePadded::new(WorkerShared {
                        mailbox: Mailbox::new(capacity),
                        sleeper: Sleeper::new(),
                    })
                })
                .collect(),
            routes,
            closed: AtomicBool::new(false),
            kill_queued: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            inline_ids: AtomicU32::new(0),
        }
    }

    /// This runtime's identity, as recorded in its tasks.
    #[inline]
    pub(crate) fn id(&self) -> usize {
        self as *const Self as usize
    }

    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        // ORDERING: Relaxed: the authoritative check in `admit` is fenced; this one is a hint
        // (and `shutdown` wakes waiters after setting the flag).
        self.closed.load(Ordering::Relaxed)
    }

    #[inline]
    pub(crate) fn kill_queued(&self) -> bool {
        // ORDERING: Relaxed: set before `closed`'s fence in `close`; a worker that misses it
        // runs a task that `shutdown_now` would have killed, which the docs allow for tasks
        // already being picked up.
        self.kill_queued.load(Ordering::Relaxed)
    }

    #[inline]
    pub(crate) fn should_stop(&self) -> bool {
        // ORDERING: Acquire pairs with the Release store in `stop_workers`.
        self.stop.load(Ordering::Acquire)
    }

    /// Admits `func` as a task of `op`. `wait`: block while every token is out (else refuse
    /// with `Full`).
    pub(crate) fn admit<F, T>(
        &self,
        op: &Operation,
        func: F,
        wait: bool,
    ) -> Result<TaskHandle<T>, TrySubmitError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        // SAFETY: `F: 'static` and `T: 'static`: nothing to outlive.
        unsafe { self.admit_unchecked(op, func, wait) }
    }

    /// [`admit`](Self::admit) for closures that borrow.
    ///
    /// # Safety
    ///
    /// The caller must not let `'a` end before the task has finished (run or been dropped
    /// unrun) and its handle is dropped: `scope` waits for that.
    pub(crate) unsafe fn admit_unchecked<'a, F, T>(
        &self,
        op: &Operation,
        func: F,
        wait: bool,
    ) -> Result<TaskHandle<T>, TrySubmitError<F>>
    where
        F: FnOnce() -> T + Send + 'a,
        T: Send + 'a,
    {
        if self.is_closed() {
            return Err(TrySubmitError::ShutDown(func));
        }
        let token = match self.ring.try_take() {
            Some(token) => token,
            None if !wait => return Err(TrySubmitError::Full(func)),
            None if worker::is_worker_of(self.id()) => {
                // A worker must not wait for a token it may itself hold: run it in place.
                return Ok(self.run_in_place(op, func));
            }
            None => match self.ring.take_or(|| self.is_closed()) {
                Some(token) => token,
                None => return Err(TrySubmitError::ShutDown(func)),
            },
        };
        // ORDERING: SeqCst fence between taking the token and reading `closed`, paired with
        // the fence in `close` between setting `closed` and counting the tokens home: either
        // we see `closed` and give the token back, or `close` sees our token out and waits
        // for this task to finish.
        fence(Ordering::SeqCst);
        // ORDERING: Relaxed, ordered by the fence.
        if self.closed.load(Ordering::Relaxed) {
            self.ring.give_back(token);
            return Err(TrySubmitError::ShutDown(func));
        }
        let slot = &self.tokens[token.index()];
        // SAFETY: we hold the token, so we alone touch its slot.
        let generation = slot.generation.with_mut(|g| unsafe {
            *g = (*g).wrapping_add(1);
            *g
        });
        let meta = self.meta(op, TaskId::new(generation, token.index() as u32));
        let task: StdArc<dyn Outcome<T> + 'a> = StdArc::new(Task::new(meta, func));
        let job: StdArc<dyn Job + 'a> = task.clone();
        // SAFETY: (1) the lifetimes erased here are `'static` for `admit`; (2) for `scope`,
        // the caller keeps `'a` alive until the task finished and the handle is gone; the job
        // reference held by the token table outlives that only as an `Option::None` closure
        // and an already-moved outcome, whose drops touch no borrowed data.
        let (task, job) = unsafe {
            (
                std::mem::transmute::<StdArc<dyn Outcome<T> + 'a>, StdArc<dyn Outcome<T>>>(task),
                std::mem::transmute::<StdArc<dyn Job + 'a>, JobRef>(job),
            )
        };
        // SAFETY: we hold the token (see above); the mailbox push below publishes the write.
        slot.job.with_mut(|j| unsafe { *j = Some(job) });
        self.dispatch(op.get_weight(), token);
        Ok(TaskHandle::new(task))
    }

    fn meta(&self, op: &Operation, id: TaskId) -> TaskMeta {
        TaskMeta {
            id,
            operation: op.name(),
            runtime: self.id(),
        }
    }

    /// Runs `func` on the calling worker without a token (the ring is dry and a worker must
    /// not wait for tokens). The handle is already finished.
    #[cold]
    fn run_in_place<'a, F, T>(&self, op: &Operation, func: F) -> TaskHandle<T>
    where
        F: FnOnce() -> T + Send + 'a,
        T: Send + 'a,
    {
        // ORDERING: Relaxed: a counter for unique ids only.
        let n = self.inline_ids.fetch_add(1, Ordering::Relaxed);
        let task = Task::new(self.meta(op, TaskId::new(n, u32::MAX)), func);
        task.run();
        let task: StdArc<dyn Outcome<T> + 'a> = StdArc::new(task);
        // SAFETY: the task has finished (it ran above); see `admit_unchecked` for the handle.
        TaskHandle::new(unsafe {
            std::mem::transmute::<StdArc<dyn Outcome<T> + 'a>, StdArc<dyn Outcome<T>>>(task)
        })
    }

    /// A handle that is already resolved with `error` (a refused submission).
    pub(crate) fn refused<'a, T: Send + 'a>(
        &self,
        op: &Operation,
        error: TaskError,
    ) -> TaskHandle<T> {
        let meta = self.meta(op, TaskId::new(0, u32::MAX));
        let task: StdArc<dyn Outcome<T> + 'a> = StdArc::new(Task::<fn() -> T, T>::resolved(
            meta,
            error,
            TokenState::Killed,
        ));
        // SAFETY: the task holds no closure and no value of `T`, only the error: nothing in it
        // borrows from `'a`.
        TaskHandle::new(unsafe {
            std::mem::transmute::<StdArc<dyn Outcome<T> + 'a>, StdArc<dyn Outcome<T>>>(task)
        })
    }

    /// Routes an admitted token to a worker's mailbox and wakes whoever should run it.
    #[inline]
    fn dispatch(&self, weight: Weight, token: Token) {
        let target = match worker::current_index(self.id()) {
            // Locality: a task submitted by a worker stays with it, if it may run it.
            Some(me) if self.routes.may_run(me, weight) => me,
            _ => self.routes.least_loaded(weight, |w| self.load(w, weight)),
        };
        self.workers[target].mailbox.push(weight, token);
        if !self.workers[target].sleeper.wake() {
            // The target is awake, perhaps busy for long: let a sleeping worker steal.
            // ORDERING: Relaxed, ordered by the SeqCst fence inside `wake` above, paired with
            // the fence of a worker going to sleep (see `sleep`).
            if self.sleepers.load(Ordering::Relaxed) != 0 {
                self.wake_one_thief(weight, target);
            }
        }
    }

    /// How much runs on `worker` before a new task of `weight` would: the task it is busy
    /// with plus the tasks queued in lanes of at least `weight`'s priority.
    #[inline]
    fn load(&self, worker: usize, weight: Weight) -> usize {
        let w = &self.workers[worker];
        let queued: usize = Weight::ALL[..=weight.lane()]
            .iter()
            .map(|&lane| w.mailbox.len(lane))
            .sum();
        queued + w.sleeper.is_busy() as usize
    }

    #[cold]
    fn wake_one_thief(&self, weight: Weight, except: usize) {
        for &w in self.routes.eligible(weight) {
            if w != except && self.workers[w].sleeper.wake() {
                return;
            }
        }
    }

    /// Takes the task waiting under `token` out of the token table.
    #[inline]
    pub(crate) fn take_job(&self, token: &Token) -> JobRef {
        // SAFETY: the caller popped `token` from a mailbox, so it is the token's holder; the
        // pop's Acquire made the submitter's write visible.
        let job = self.tokens[token.index()]
            .job
            .with_mut(|j| unsafe { (*j).take() });
        match job {
            Some(job) => job,
            None => unreachable!("an admitted token always has its task"),
        }
    }

    /// Closes admission: graceful (`kill == false`) or killing queued tasks.
    pub(crate) fn close(&self, kill: bool) {
        if kill {
            // ORDERING: Relaxed, see `kill_queued`.
            self.kill_queued.store(true, Ordering::Relaxed);
        }
        // ORDERING: Relaxed, ordered by the fence below.
        self.closed.store(true, Ordering::Relaxed);
        // ORDERING: SeqCst fence between setting `closed` and the caller's count of tokens
        // home, paired with the fence in `admit_unchecked`.
        fence(Ordering::SeqCst);
        // Submitters blocked on a dry ring must see `closed` and give up.
        self.ring.wake_all_waiters();
    }

    /// Tells the workers to exit and wakes them. Call once every token is home.
    pub(crate) fn stop_workers(&self) {
        // ORDERING: Release pairs with the Acquire in `should_stop`.
        self.stop.store(true, Ordering::Release);
        for w in self.workers.iter() {
            w.sleeper.wake();
        }
    }
}

impl fmt::Debug for Shared {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Shared")
            .field("ring", &self.ring)
            .field("workers", &self.workers.len())
            .field("closed", &self.is_closed())
            .finish()
    }
}
