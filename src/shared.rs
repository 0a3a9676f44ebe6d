//! The state a runtime shares with its workers, and the admission path (take a token, route,
//! push, wake) that runs on the submitting thread.

use crossbeam_utils::CachePadded;
use std::fmt;
use std::time::Instant;

use crate::clock::Clock;
use crate::counters::{Stripe, WorkerCounters};
use crate::error::{TaskError, TrySubmitError};
use crate::handle::TaskHandle;
use crate::history::WorkerHistory;
use crate::mailbox::Mailbox;
use crate::operation::{Operation, Weight};
use crate::ops::{OpEntry, OpTable};
use crate::queue::ArrayQueue;
use crate::ring::{Token, TokenRing};
use crate::route::Routes;
use crate::sleep::Sleeper;
use crate::sync::{fence, AtomicBool, AtomicU32, AtomicUsize, Mutex, Ordering, UnsafeCell};
use crate::task::{self, Job, JobRef, Task, TaskId, TaskMeta};
use crate::token::TokenState;
use crate::worker;

/// What one worker shares with everybody: its mailbox, its queue of tasks only it may run
/// (sticky and broadcast), its activity word, its counters and its history.
#[derive(Debug)]
pub(crate) struct WorkerShared {
    pub(crate) mailbox: Mailbox,
    /// Sticky tasks homed on this worker, in submission order; never stolen.
    pub(crate) pinned: ArrayQueue<Token>,
    /// Broadcast runs for this worker; never stolen, taken even while a sticky task runs.
    pub(crate) broadcasts: ArrayQueue<Token>,
    pub(crate) sleeper: Sleeper,
    /// Tasks handed to this worker without a token (see [`Handoffs`]).
    pub(crate) handoffs: Handoffs,
    pub(crate) counters: CachePadded<WorkerCounters>,
    pub(crate) history: WorkerHistory,
}

/// Tasks that another worker submitted without a token and that only this worker may run
/// (sticky tasks homed here, broadcast runs for it), handed over when the ring was dry.
///
/// A worker that submits into a dry ring must not wait for a token: every token may be held
/// by tasks nested on the workers' own stacks. It runs the task in place when it may; a task
/// that must run elsewhere comes here instead, and its submitter helps with other work until
/// it has run. Each entry is a blocked submitter's, so the queue holds at most one task per
/// such stack frame. Only this dry-ring path touches it, never the hot path: a lock is fine,
/// and `len` lets the worker skip the lock when it is empty.
///
/// Under loom the queue is left out of the workers' loop (it is always seen empty, with no
/// atomic access): no model submits from a worker into a dry ring, and one more load per look
/// for work multiplies every runtime model's interleavings. `tests/hostile.rs` covers the
/// path (sticky and broadcast submissions from workers into a dry ring).
#[derive(Default)]
pub(crate) struct Handoffs {
    jobs: Mutex<std::collections::VecDeque<JobRef>>,
    len: AtomicUsize,
}

/// See [`Handoffs`]: not modelled under loom.
const UNMODELLED: bool = cfg!(loom);

impl Handoffs {
    fn push(&self, job: JobRef) {
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        jobs.push_back(job);
        // ORDERING: Relaxed: a hint, written under the lock; the worker is woken after this
        // (the wake's fence orders it) and takes the job under the lock.
        self.len.store(jobs.len(), Ordering::Relaxed);
    }

    /// Takes the oldest job, skipping sticky ones while `sticky_allowed` is false.
    pub(crate) fn pop(&self, sticky_allowed: bool) -> Option<JobRef> {
        // ORDERING: Relaxed: a hint, see `push`.
        if UNMODELLED || self.len.load(Ordering::Relaxed) == 0 {
            return None;
        }
        let mut jobs = self.jobs.lock().unwrap_or_else(|e| e.into_inner());
        let at = jobs
            .iter()
            .position(|j| sticky_allowed || j.meta().sticky.is_none())?;
        let job = jobs.remove(at);
        // ORDERING: Relaxed, see `push`.
        self.len.store(jobs.len(), Ordering::Relaxed);
        job
    }

    /// How many jobs wait (a hint).
    pub(crate) fn len(&self) -> usize {
        // ORDERING: Relaxed, see `push`.
        self.len.load(Ordering::Relaxed)
    }

    /// Whether a job is waiting that [`pop`](Self::pop) would take.
    pub(crate) fn has_runnable(&self, sticky_allowed: bool) -> bool {
        // ORDERING: Relaxed, see `push`.
        !UNMODELLED
            && self.len.load(Ordering::Relaxed) != 0
            && self
                .jobs
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .iter()
                .any(|j| sticky_allowed || j.meta().sticky.is_none())
    }
}

/// Per token: the task waiting under it. Only the token's holder touches the cells, so plain
/// cells suffice; padded so that neighbouring tokens held by different threads do not share
/// a cache line.
struct TokenSlot {
    job: UnsafeCell<Option<JobRef>>,
    generation: UnsafeCell<u32>,
    /// The task holds a permit of its operation's concurrency limiter (handed over by the
    /// task that released it).
    permit: UnsafeCell<bool>,
    /// `kill(id)`: the generation of the task under this token to kill when reached (0: none).
    kill_generation: AtomicU32,
}

/// What [`Shared::admit_dry`] did.
enum Dry<F, T> {
    /// A token came home: admit as usual.
    Token(Token, F),
    /// The task ran (or was resolved) without a token.
    Done(TaskHandle<T>),
    /// The runtime was shut down meanwhile.
    Closed(F),
}

impl fmt::Debug for Handoffs {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handoffs")
            .field("len", &self.len())
            .finish()
    }
}

/// A task's admission time and start deadline.
#[derive(Clone, Copy)]
struct AdmissionTime {
    ns: u64,
    deadline: Option<Instant>,
}

/// Options fixed at build time.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Settings {
    pub(crate) capacity: usize,
    pub(crate) workers: usize,
    /// Record timings: queue wait, run time, busy time, history.
    pub(crate) timings: bool,
    pub(crate) history_len: usize,
    pub(crate) auto_block: bool,
}

/// Admin state: global pause and the tokens it holds back.
struct Admin {
    paused: AtomicBool,
    /// Tokens admitted while their admission was paused (globally or per operation). Only
    /// touched when something is paused, so a lock is fine here.
    held: Mutex<Vec<Token>>,
    held_len: AtomicUsize,
}

pub(crate) struct Shared {
    pub(crate) ring: TokenRing,
    pub(crate) ops: OpTable,
    pub(crate) clock: Clock,
    pub(crate) settings: Settings,
    admin: Admin,
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
    /// This runtime's serial number in the process, part of its task ids.
    pub(crate) serial: u32,
}

// SAFETY: the token slots' cells are only touched by the holder of the token (module docs of
// `ring`); every other field is Sync.
unsafe impl Sync for Shared {}
// SAFETY: all fields are Send (`JobRef` is `Arc<dyn Job>`, `Job: Send + Sync`).
unsafe impl Send for Shared {}

impl Shared {
    pub(crate) fn new(settings: Settings, routes: Routes) -> Self {
        let Settings {
            capacity, workers, ..
        } = settings;
        let history_len = if settings.timings {
            settings.history_len
        } else {
            0
        };
        Self {
            ring: TokenRing::new(capacity),
            ops: OpTable::new(workers, capacity),
            clock: Clock::new(),
            settings,
            admin: Admin {
                paused: AtomicBool::new(false),
                held: Mutex::new(Vec::new()),
                held_len: AtomicUsize::new(0),
            },
            tokens: (0..capacity)
                .map(|_| {
                    CachePadded::new(TokenSlot {
                        job: UnsafeCell::new(None),
                        generation: UnsafeCell::new(0),
                        permit: UnsafeCell::new(false),
                        kill_generation: AtomicU32::new(0),
                    })
                })
                .collect(),
            workers: (0..workers)
                .map(|_| {
                    CachePadded::new(WorkerShared {
                        mailbox: Mailbox::new(capacity),
                        pinned: ArrayQueue::new(capacity),
                        broadcasts: ArrayQueue::new(capacity),
                        sleeper: Sleeper::new(),
                        handoffs: Handoffs::default(),
                        counters: CachePadded::default(),
                        history: WorkerHistory::new(history_len),
                    })
                })
                .collect(),
            routes,
            closed: AtomicBool::new(false),
            kill_queued: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            inline_ids: AtomicU32::new(0),
            serial: task::next_runtime_serial(),
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

    /// Where the calling thread records its counters.
    #[inline]
    pub(crate) fn stripe(&self) -> Stripe {
        match worker::current_index(self.id()) {
            Some(index) => Stripe {
                index,
                exclusive: true,
            },
            None => crate::counters::external_stripe(self.workers.len()),
        }
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
        unsafe { self.admit_unchecked(op, func, wait, None) }
    }

    /// Admits `func`, waiting for a token while every token is out; a refused submission
    /// (shut down, blocked) gets a handle resolved with the reason, its closure dropped here.
    pub(crate) fn submit<F, T>(&self, op: &Operation, func: F) -> TaskHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        // SAFETY: `F: 'static` and `T: 'static`: nothing to outlive.
        unsafe { self.submit_unchecked(op, func, None) }
    }

    /// [`submit`](Self::submit) for closures that borrow; see
    /// [`admit_unchecked`](Self::admit_unchecked).
    ///
    /// # Safety
    ///
    /// As [`admit_unchecked`](Self::admit_unchecked).
    pub(crate) unsafe fn submit_unchecked<'a, F, T>(
        &self,
        op: &Operation,
        func: F,
        pinned_to: Option<usize>,
    ) -> TaskHandle<T>
    where
        F: FnOnce() -> T + Send + 'a,
        T: Send + 'a,
    {
        // SAFETY: forwarded from the caller.
        match unsafe { self.admit_unchecked(op, func, true, pinned_to) } {
            Ok(handle) => handle,
            Err(refused) => {
                let error = match refused {
                    TrySubmitError::Blocked(_) => TaskError::Blocked,
                    TrySubmitError::Full(_) | TrySubmitError::ShutDown(_) => TaskError::ShutDown,
                };
                // `refused`, with the closure, was dropped by the match above: unrun, while
                // whatever it borrows is alive.
                self.refused(op, error)
            }
        }
    }

    /// [`admit`](Self::admit) for closures that borrow. `pinned_to`: only that worker may run
    /// the task (broadcast).
    ///
    /// # Safety
    ///
    /// As [`task::erase`]: unless `F` and `T` are `'static`, the caller must not let `'a` end
    /// while the task's closure or output may still be used or dropped.
    pub(crate) unsafe fn admit_unchecked<'a, F, T>(
        &self,
        op: &Operation,
        func: F,
        wait: bool,
        pinned_to: Option<usize>,
    ) -> Result<TaskHandle<T>, TrySubmitError<F>>
    where
        F: FnOnce() -> T + Send + 'a,
        T: Send + 'a,
    {
        if self.is_closed() {
            return Err(TrySubmitError::ShutDown(func));
        }
        let entry = self.ops.entry(op);
        if op.get_concurrency_limit().is_some() {
            entry.limiter_for(op);
        }
        if entry.is_blocked() {
            let counters = entry.counters.stripe(self.stripe());
            self.stripe().add(&counters.blocked, 1);
            return Err(TrySubmitError::Blocked(func));
        }
        let home = pinned_to.or_else(|| self.sticky_home(op));
        let (token, func) = match self.ring.try_take() {
            Some(token) => (token, func),
            None if !wait => return Err(TrySubmitError::Full(func)),
            // SAFETY: forwarded from the caller.
            None => match unsafe { self.admit_dry(op, entry, func, (pinned_to, home)) } {
                Dry::Token(token, func) => (token, func),
                Dry::Done(handle) => return Ok(handle),
                Dry::Closed(func) => return Err(TrySubmitError::ShutDown(func)),
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
        let now = self.admission_time(op);
        let stripe = self.stripe();
        stripe.add(&entry.counters.stripe(stripe).submitted, 1);
        // SAFETY: forwarded from the caller.
        let handle = unsafe { self.install(&token, op, entry, func, now, (pinned_to, home)) };
        if pinned_to.is_none() && (self.is_paused() || entry.is_paused()) {
            self.hold(token);
        } else {
            self.dispatch(token);
        }
        Ok(handle)
    }

    /// The metadata of a task of `op` admitted now as `id`.
    fn meta(
        &self,
        id: TaskId,
        op: &Operation,
        entry: &OpEntry,
        now: AdmissionTime,
        (pinned_to, home): (Option<usize>, Option<usize>),
    ) -> TaskMeta {
        TaskMeta {
            id,
            operation: op.name(),
            runtime: self.id(),
            op: entry.index,
            epoch: entry.epoch(),
            weight: op.get_weight(),
            sticky: op.get_sticky(),
            pinned_to,
            home,
            submitted_ns: now.ns,
            deadline: now.deadline,
            limited: op.get_concurrency_limit().is_some(),
            stop: AtomicBool::new(false),
        }
    }

    /// Writes the task of `func` under `token` (which the caller holds and has not handed on)
    /// and returns its handle. `(pinned_to, home)`: see `TaskMeta`.
    ///
    /// # Safety
    ///
    /// As [`admit_unchecked`](Self::admit_unchecked).
    #[inline]
    #[allow(clippy::too_many_arguments)]
    unsafe fn install<'a, F, T>(
        &self,
        token: &Token,
        op: &Operation,
        entry: &OpEntry,
        func: F,
        now: AdmissionTime,
        route: (Option<usize>, Option<usize>),
    ) -> TaskHandle<T>
    where
        F: FnOnce() -> T + Send + 'a,
        T: Send + 'a,
    {
        let slot = &self.tokens[token.index()];
        // SAFETY: we hold the token, so we alone touch its slot.
        let generation = slot.generation.with_mut(|g| unsafe {
            *g = (*g).wrapping_add(1).max(1);
            *g
        });
        let id = TaskId::new(self.serial, generation, token.index() as u32);
        let meta = self.meta(id, op, entry, now, route);
        // SAFETY: forwarded from the caller.
        let (task, job) = unsafe { task::erase(Task::new(meta, func)) };
        // SAFETY: we hold the token (see above); the hand-over that follows publishes it.
        slot.job.with_mut(|j| unsafe { *j = Some(job) });
        TaskHandle::new(task)
    }

    /// Admits every closure of `funcs` as a task of `op`, in chunks that share the fixed
    /// costs: one operation lookup, one fence and one clock read per chunk, the chunk spread
    /// over the eligible workers, each woken once. Waits for tokens like `admit` (after
    /// handing on what it holds). Refused closures (shutdown, blocked) get resolved handles.
    pub(crate) fn admit_batch<I, F, T>(&self, op: &Operation, funcs: I) -> Vec<TaskHandle<T>>
    where
        I: IntoIterator<Item = F>,
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        const CHUNK: usize = 64;
        let mut funcs = funcs.into_iter();
        let mut out = Vec::with_capacity(funcs.size_hint().0);
        let mut pending: std::collections::VecDeque<F> = std::collections::VecDeque::new();
        let mut tokens: Vec<Token> = Vec::with_capacity(CHUNK);
        let fixed_route = op.get_sticky().is_some();
        let one_by_one = |f: F, out: &mut Vec<TaskHandle<T>>| out.push(self.submit(op, f));
        loop {
            pending.extend(funcs.by_ref().take(CHUNK - pending.len()));
            if pending.is_empty() {
                return out;
            }
            let entry = self.ops.entry(op);
            if op.get_concurrency_limit().is_some() {
                entry.limiter_for(op);
            }
            if fixed_route || self.is_closed() || entry.is_blocked() {
                // Sticky: each key has its own worker. Refused: `admit` refuses and counts.
                pending.drain(..).for_each(|f| one_by_one(f, &mut out));
                continue;
            }
            while tokens.len() < pending.len() {
                match self.ring.try_take() {
                    Some(t) => tokens.push(t),
                    None => break,
                }
            }
            if tokens.is_empty() {
                // Dry ring: the single path waits for a token (or runs in place on a worker).
                if let Some(f) = pending.pop_front() {
                    one_by_one(f, &mut out);
                }
                continue;
            }
            // ORDERING: SeqCst fence between taking the tokens and reading `closed`, as in
            // `admit_unchecked` (one fence orders all the takes before it).
            fence(Ordering::SeqCst);
            // ORDERING: Relaxed, ordered by the fence.
            if self.closed.load(Ordering::Relaxed) {
                for t in tokens.drain(..) {
                    self.ring.give_back(t);
                }
                continue; // refused one by one above
            }
            let now = self.admission_time(op);
            let stripe = self.stripe();
            stripe.add(
                &entry.counters.stripe(stripe).submitted,
                tokens.len() as u64,
            );
            for t in &tokens {
                let Some(f) = pending.pop_front() else {
                    unreachable!("at most one token per pending closure")
                };
                // SAFETY: `F: 'static` and `T: 'static`.
                out.push(unsafe { self.install(t, op, entry, f, now, (None, None)) });
            }
            if self.is_paused() || entry.is_paused() {
                tokens.drain(..).for_each(|t| self.hold(t));
            } else {
                self.spread(op.get_weight(), &mut tokens);
            }
        }
    }

    /// Pushes `tokens` (all of `weight`, no fixed worker) round-robin over the eligible
    /// workers, then wakes each worker that got some (or a thief, if it is awake).
    fn spread(&self, weight: Weight, tokens: &mut Vec<Token>) {
        let eligible = self.routes.eligible(weight);
        let n = eligible.len();
        let first = self.routes.least_loaded(weight, |w| self.load(w, weight));
        let start = eligible.iter().position(|&w| w == first).unwrap_or(0);
        let used = n.min(tokens.len());
        for (i, t) in tokens.drain(..).enumerate() {
            self.workers[eligible[(start + i) % n]]
                .mailbox
                .push(weight, t);
        }
        for k in 0..used {
            let target = eligible[(start + k) % n];
            // ORDERING: Relaxed, ordered by the SeqCst fence inside `wake`, as in `dispatch`.
            if !self.workers[target].sleeper.wake() && self.sleepers.load(Ordering::Relaxed) != 0 {
                self.wake_one_thief(weight, target);
            }
        }
    }

    /// When a task of `op` admitted now was submitted (runtime clock, if timings are on) and
    /// its start deadline.
    #[inline]
    fn admission_time(&self, op: &Operation) -> AdmissionTime {
        AdmissionTime {
            ns: if self.settings.timings {
                self.clock.now_ns()
            } else {
                0
            },
            deadline: op
                .get_deadline()
                .and_then(|d| Instant::now().checked_add(d)),
        }
    }

    /// Admission when the ring is dry and the caller may wait. A thread that is not a worker
    /// waits for a token (parked). A worker must not: every token may be held by tasks nested
    /// on the workers' own stacks (a join inside a task, a task waiting for a concurrency
    /// permit), so it runs the task without a token: in place when it may run it, else
    /// handed to the worker that must run it ([`Handoffs`]), helping with other work until it
    /// has run. Either way the handle is finished when this returns, so such tasks are bounded
    /// by the stack frames blocked here. A limited task first takes a permit without a token
    /// (`Limiter::try_acquire`), helping until one is free or a token comes home. A worker of
    /// another runtime helps its own runtime while it waits for a token of this one.
    ///
    /// # Safety
    ///
    /// As [`admit_unchecked`](Self::admit_unchecked).
    #[cold]
    unsafe fn admit_dry<'a, F, T>(
        &self,
        op: &Operation,
        entry: &OpEntry,
        func: F,
        route: (Option<usize>, Option<usize>),
    ) -> Dry<F, T>
    where
        F: FnOnce() -> T + Send + 'a,
        T: Send + 'a,
    {
        let limiter = if op.get_concurrency_limit().is_some() {
            entry.limiter.get()
        } else {
            None
        };
        if worker::with_any_current(|_| ()).is_none() {
            // A plain thread: park until a token comes home or the runtime closes.
            return match self.ring.take_or(|| self.is_closed()) {
                Some(token) => Dry::Token(token, func),
                None => Dry::Closed(func),
            };
        }
        loop {
            if let Some(token) = self.ring.try_take() {
                return Dry::Token(token, func);
            }
            if self.is_closed() {
                return Dry::Closed(func);
            }
            let token_or_closed = || self.ring.available() != 0 || self.is_closed();
            if worker::is_worker_of(self.id()) {
                match limiter {
                    Some(l) if !l.try_acquire() => {
                        worker::with_current(self.id(), |w| {
                            w.help_until(|| token_or_closed() || l.has_free_permit(), false)
                        });
                    }
                    _ => {
                        // SAFETY: forwarded from the caller.
                        let handle = unsafe { self.run_tokenless(op, entry, func, route, limiter) };
                        return Dry::Done(handle);
                    }
                }
            } else {
                // A worker of another runtime: it keeps serving its own meanwhile.
                worker::with_any_current(|w| w.help_until(token_or_closed, false));
            }
        }
    }

    /// Runs `func` without a token on behalf of the calling worker (see
    /// [`admit_dry`](Self::admit_dry)): in place, or on its home worker, which it is handed
    /// to; returns once it has run (or was resolved without running: killed, timed out). A
    /// limiter given holds a permit for it, released here.
    ///
    /// # Safety
    ///
    /// As [`admit_unchecked`](Self::admit_unchecked).
    #[cold]
    unsafe fn run_tokenless<'a, F, T>(
        &self,
        op: &Operation,
        entry: &OpEntry,
        func: F,
        route: (Option<usize>, Option<usize>),
        permit: Option<&crate::ops::Limiter>,
    ) -> TaskHandle<T>
    where
        F: FnOnce() -> T + Send + 'a,
        T: Send + 'a,
    {
        // ORDERING: Relaxed: a counter for unique ids only.
        let n = self.inline_ids.fetch_add(1, Ordering::Relaxed);
        let id = TaskId::new(self.serial, n, u32::MAX);
        let meta = self.meta(id, op, entry, self.admission_time(op), route);
        let stripe = self.stripe();
        stripe.add(&entry.counters.stripe(stripe).submitted, 1);
        // SAFETY: forwarded from the caller.
        let (task, job) = unsafe { task::erase(Task::new(meta, func)) };
        let me = worker::current_index(self.id());
        match route.1 {
            Some(home) if Some(home) != me => {
                self.workers[home].handoffs.push(job.clone());
                self.workers[home].sleeper.wake();
                worker::with_current(self.id(), |w| w.wait_helping(&*job));
            }
            _ => {
                worker::with_current(self.id(), |w| w.run_tokenless(&*job));
            }
        }
        if let Some(next) = permit.and_then(|l| l.release()) {
            self.give_permit(&next);
            self.dispatch(next);
        }
        TaskHandle::new(task)
    }

    /// A handle that is already resolved with `error` (a refused submission).
    pub(crate) fn refused<'a, T: Send + 'a>(
        &self,
        op: &Operation,
        error: TaskError,
    ) -> TaskHandle<T> {
        let meta = TaskMeta {
            id: TaskId::new(self.serial, 0, u32::MAX),
            operation: op.name(),
            runtime: self.id(),
            op: u32::MAX,
            epoch: 0,
            weight: op.get_weight(),
            sticky: None,
            pinned_to: None,
            home: None,
            submitted_ns: 0,
            deadline: None,
            limited: false,
            stop: AtomicBool::new(false),
        };
        let task = Task::<fn() -> T, T>::resolved(meta, error, TokenState::Killed);
        // SAFETY: the task holds no closure and no value of `T`, only the error: nothing in it
        // borrows from `'a`.
        TaskHandle::new(unsafe { task::erase(task) }.0)
    }

    /// Calls `f` with the task under `token`. The caller holds the token.
    #[inline]
    fn with_job<R>(&self, token: &Token, f: impl FnOnce(&JobRef) -> R) -> R {
        // SAFETY: the caller holds `token` (popped it from a mailbox or a queue, or took it
        // from the ring), so it alone touches the slot; the hand-over's Acquire made the
        // submitter's write visible.
        self.tokens[token.index()]
            .job
            .with(|j| match unsafe { &*j } {
                Some(job) => f(job),
                None => unreachable!("an admitted token always has its task"),
            })
    }

    /// Routes an admitted token to a worker and wakes whoever should run it: its fixed worker
    /// for sticky and broadcast tasks; else locality, then the least-loaded allowed worker.
    #[inline]
    pub(crate) fn dispatch(&self, token: Token) {
        let (weight, pinned_to, home) = self.with_job(&token, |job| {
            let m = job.meta();
            (m.weight, m.pinned_to, m.home)
        });
        if let Some(target) = home {
            let queue = match pinned_to {
                Some(_) => &self.workers[target].broadcasts,
                None => &self.workers[target].pinned,
            };
            // A worker's own queues have room for every token of the ring.
            queue.push_bounded_by_caller(token);
            self.workers[target].sleeper.wake();
            return;
        }
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

    /// The worker a task of `op` must run on if `op` is sticky: its key's, among the workers
    /// allowed for its weight.
    #[inline]
    fn sticky_home(&self, op: &Operation) -> Option<usize> {
        let key = op.get_sticky()?;
        let eligible = self.routes.eligible(op.get_weight());
        Some(eligible[(key % eligible.len() as u64) as usize])
    }

    /// Whether `token` holds its operation's permit; clears the mark. Holder only.
    #[inline]
    pub(crate) fn take_permit(&self, token: &Token) -> bool {
        // SAFETY: the caller holds `token` (see `with_job`).
        self.tokens[token.index()]
            .permit
            .with_mut(|p| unsafe { std::mem::replace(&mut *p, false) })
    }

    /// Marks `token`'s task as holding its operation's permit. Holder only.
    pub(crate) fn give_permit(&self, token: &Token) {
        // SAFETY: the caller holds `token` (see `with_job`).
        self.tokens[token.index()]
            .permit
            .with_mut(|p| unsafe { *p = true });
    }

    /// Whether `kill(id)` asked for the task `id` (one admitted under a token).
    #[inline]
    pub(crate) fn kill_requested(&self, id: TaskId) -> bool {
        match self.tokens.get(id.index() as usize) {
            // ORDERING: Relaxed: a request; a kill racing the task's start may miss it
            // (documented on `Runtime::kill`).
            Some(slot) => slot.kill_generation.load(Ordering::Relaxed) == id.generation(),
            None => false,
        }
    }

    /// Asks for the task `id` to be killed when a worker reaches it (nothing if `id` is of
    /// another runtime).
    pub(crate) fn request_kill(&self, id: TaskId) {
        if id.runtime() != self.serial {
            return;
        }
        if let Some(slot) = self.tokens.get(id.index() as usize) {
            // ORDERING: Relaxed, see `kill_requested`.
            slot.kill_generation
                .store(id.generation(), Ordering::Relaxed);
        }
        self.kill_held(|job| job.meta().id == id);
    }

    // ---- pause and hold -------------------------------------------------------------------

    #[inline]
    pub(crate) fn is_paused(&self) -> bool {
        // ORDERING: Acquire pairs with the Release store in `set_paused`: a submitter that
        // sees the pause lifted dispatches after the held tasks were (sticky order).
        self.admin.paused.load(Ordering::Acquire)
    }

    /// Keeps an admitted token back while its admission is paused, or dispatches it if the
    /// pause ended meanwhile (checked under the lock `resume` takes, so nothing is stranded).
    #[cold]
    fn hold(&self, token: Token) {
        let mut held = self.admin.held.lock().unwrap_or_else(|e| e.into_inner());
        let entry = self.entry_of(&token);
        // Closed: `close` has released (or is about to release, after this lock) what is held;
        // a token held now would never come home.
        if !self.is_closed() && (self.is_paused() || entry.is_paused()) {
            // ORDERING: Relaxed: a report, written under the admin lock.
            entry.held.fetch_add(1, Ordering::Relaxed);
            held.push(token);
            // ORDERING: Relaxed: a report.
            self.admin.held_len.store(held.len(), Ordering::Relaxed);
        } else {
            drop(held);
            self.dispatch(token);
        }
    }

    fn entry_of(&self, token: &Token) -> &OpEntry {
        let op = self.with_job(token, |job| job.meta().op);
        match self.ops.by_index(op) {
            Some(e) => e,
            None => unreachable!("an admitted task's operation is in the table"),
        }
    }

    /// Sets the global pause flag (`true`) or clears it and dispatches what it held.
    pub(crate) fn set_paused(&self, paused: bool) {
        let mut held = self.admin.held.lock().unwrap_or_else(|e| e.into_inner());
        if !paused {
            // Dispatch what was held before lifting the flag, so that nothing submitted after
            // the lift overtakes it.
            self.release_held(&mut held, true);
        }
        // ORDERING: Release, see `is_paused`; submitters that saw the pause re-check under
        // this lock.
        self.admin.paused.store(paused, Ordering::Release);
    }

    /// Sets an operation's pause flag, releasing its held tokens when cleared.
    pub(crate) fn set_operation_paused(&self, entry: &OpEntry, paused: bool) {
        let mut held = self.admin.held.lock().unwrap_or_else(|e| e.into_inner());
        if !paused {
            // As in `set_paused`: dispatch what was held, then lift the flag.
            self.release_held_of(&mut held, entry.index);
        }
        // ORDERING: Release pairs with the Acquire in `OpEntry::is_paused`.
        entry.paused.store(paused, Ordering::Release);
    }

    /// Dispatches every held token whose admission is no longer paused; `lifting`: the global
    /// pause is being lifted (its flag is still set).
    fn release_held(&self, held: &mut Vec<Token>, lifting: bool) {
        self.release_held_where(held, |entry| {
            !(entry.is_paused() || (!lifting && self.is_paused()))
        });
    }

    /// Dispatches the held tokens of operation `op` (whose pause is being lifted), unless the
    /// global pause holds them.
    fn release_held_of(&self, held: &mut Vec<Token>, op: u32) {
        if !self.is_paused() {
            self.release_held_where(held, |entry| entry.index == op);
        }
    }

    fn release_held_where(&self, held: &mut Vec<Token>, release: impl Fn(&OpEntry) -> bool) {
        let mut kept = Vec::new();
        for token in held.drain(..) {
            let entry = self.entry_of(&token);
            if release(entry) {
                // ORDERING: Relaxed: a report, written under the admin lock.
                entry.held.fetch_sub(1, Ordering::Relaxed);
                self.dispatch(token);
            } else {
                kept.push(token);
            }
        }
        *held = kept;
        // ORDERING: Relaxed: a report.
        self.admin.held_len.store(held.len(), Ordering::Relaxed);
    }

    /// Dispatches every held token, paused or not (shutdown: they must run or be killed).
    fn release_all_held(&self) {
        let mut held = self.admin.held.lock().unwrap_or_else(|e| e.into_inner());
        for token in held.drain(..) {
            // ORDERING: Relaxed: a report, written under the admin lock.
            self.entry_of(&token).held.fetch_sub(1, Ordering::Relaxed);
            self.dispatch(token);
        }
        // ORDERING: Relaxed: a report.
        self.admin.held_len.store(0, Ordering::Relaxed);
    }

    /// Kills the held tasks `which` selects, at once. (The kills happen after the admin lock is
    /// released: dropping a closure or waking a waker may run user code.)
    pub(crate) fn kill_held(&self, which: impl Fn(&dyn Job) -> bool) {
        let mut chosen = Vec::new();
        {
            let mut held = self.admin.held.lock().unwrap_or_else(|e| e.into_inner());
            let mut kept = Vec::new();
            for token in held.drain(..) {
                if self.with_job(&token, |job| which(&**job)) {
                    // ORDERING: Relaxed: a report, written under the admin lock.
                    self.entry_of(&token).held.fetch_sub(1, Ordering::Relaxed);
                    chosen.push(token);
                } else {
                    kept.push(token);
                }
            }
            *held = kept;
            // ORDERING: Relaxed: a report.
            self.admin.held_len.store(held.len(), Ordering::Relaxed);
        }
        for token in chosen {
            let job = self.take_job(&token);
            // The closure's drop is contained by `abandon`; the last reference's drop (a
            // handle already gone: the error value, a waker) by `drop_contained`. Every
            // chosen task is resolved and its token comes home.
            job.abandon(TaskError::Killed, TokenState::Killed);
            self.count_unrun(&*job, self.stripe());
            crate::contain::drop_contained(job);
            self.ring.give_back(token);
        }
    }

    pub(crate) fn held_len(&self) -> usize {
        // ORDERING: Relaxed: a report.
        self.admin.held_len.load(Ordering::Relaxed)
    }

    /// Counts a task that ends without running here: killed, timed out, or run elsewhere
    /// (inline by a join, counted there).
    pub(crate) fn count_unrun(&self, job: &dyn Job, stripe: Stripe) {
        let Some(entry) = self.ops.by_index(job.meta().op) else {
            return;
        };
        let c = entry.counters.stripe(stripe);
        match job.state() {
            TokenState::Killed => stripe.add(&c.killed, 1),
            TokenState::TimedOut => stripe.add(&c.timed_out, 1),
            _ => {}
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

    /// Puts `job` back under `token` (holder only), before handing the token on.
    pub(crate) fn put_job(&self, token: &Token, job: JobRef) {
        // SAFETY: the caller holds `token`; the hand-over (queue push) publishes the write.
        self.tokens[token.index()]
            .job
            .with_mut(|j| unsafe { *j = Some(job) });
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
        // Held tasks must run (or be killed) for their tokens to come home.
        self.release_all_held();
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
