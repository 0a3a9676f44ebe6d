//! The public face: [`Runtime`] (submit, scope, shut down) over the engine, with its builder,
//! admin controls, broadcast, scopes, handles and observation, one concept a file.
//!
//! | file | concept |
//! | --- | --- |
//! | `mod.rs` | [`Runtime`]: the submit family, scope entry, shutdown |
//! | `builder.rs` | [`Builder`]: settings, checked before the workers start |
//! | `handle.rs` | [`TaskHandle`]: join, wait, cancel, await |
//! | `scope.rs` | [`Scope`]: tasks that borrow, all finished before `scope` returns |
//! | `broadcast.rs` | [`Runtime::broadcast`]: one run on every worker |
//! | `admin.rs` | pause, resume, drain, kill, unblock |
//! | `stats.rs` | snapshots: [`Stats`], [`OperationStats`], [`ExecutionRecord`], JSON |
//! | `prometheus.rs` | [`Stats::to_prometheus`] |
//! | `global.rs` | the lazily built default runtime |

mod admin;
mod broadcast;
mod builder;
mod global;
mod handle;
mod join;
mod prometheus;
mod scope;
mod slices;
mod spawn;
mod stats;

use std::fmt;

use crate::engine::{current, retry, Engine};
use crate::error::{BuildError, TaskError, TrySubmitError};
use crate::operation::Operation;
use crate::sync::{thread, Arc, AtomicBool, Mutex, Ordering};

pub use broadcast::BroadcastContext;
pub use builder::Builder;
pub use global::global;
pub use handle::TaskHandle;
pub use join::join;
pub use scope::{Scope, ScopedHandle};
pub use spawn::{spawn, submit};
pub use stats::{ExecutionRecord, Histogram, OperationStats, Stats, WorkerStats};

/// A set of worker threads, pinned one per core, that run synchronous tasks admitted through
/// a bounded token ring.
///
/// Dropping the runtime shuts it down gracefully (see [`shutdown`](Self::shutdown)).
///
/// # Examples
///
/// ```
/// use tokengate::{Operation, Runtime, Weight};
///
/// const PRIME: Operation = Operation::new("prime_check").weight(Weight::Medium);
/// fn is_prime(n: u64) -> bool { n > 1 && (2..n).take_while(|d| d * d <= n).all(|d| n % d != 0) }
///
/// let rt = Runtime::builder().workers(2).pin(false).build()?;
/// let h = rt.submit(&PRIME, || is_prime(1_000_003));
/// assert_eq!(h.join(), Ok(true));
/// # Ok::<(), tokengate::BuildError>(())
/// ```
pub struct Runtime {
    engine: Arc<Engine>,
    threads: WorkerThreads,
}

/// A runtime's worker threads, and which call of `shutdown` joins them.
///
/// One call takes the handles (under the lock, held only for that) and finishes the shutdown;
/// every other call waits until every admitted task has finished and, unless it runs nested
/// inside the finishing call's own wait (a task run by that call's thread while it helps, on a
/// worker of another runtime), until the threads are joined. The lock is never held across a
/// wait: a call nested that way would otherwise wait for itself.
struct WorkerThreads {
    /// The handles until the finishing call takes them; then that call's thread.
    state: Mutex<(Vec<thread::JoinHandle<()>>, Option<thread::ThreadId>)>,
    /// Every worker thread was joined.
    joined: AtomicBool,
}

impl WorkerThreads {
    fn new(threads: Vec<thread::JoinHandle<()>>) -> Self {
        Self {
            state: Mutex::new((threads, None)),
            joined: AtomicBool::new(false),
        }
    }

    /// Takes the handles, if no call took them before, recording the calling thread as the
    /// one that finishes; also returns that thread.
    fn take(&self) -> (Vec<thread::JoinHandle<()>>, Option<thread::ThreadId>) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let taken = std::mem::take(&mut state.0);
        if !taken.is_empty() {
            state.1 = Some(thread::current().id());
        }
        (taken, state.1)
    }

    fn is_joined(&self) -> bool {
        // ORDERING: Acquire pairs with the Release store in `Runtime::close`: the joins
        // happen before a waiter returns.
        self.joined.load(Ordering::Acquire)
    }
}

impl Runtime {
    /// A builder with the default settings.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// A runtime with the default settings: one pinned worker per core.
    pub fn new() -> Result<Self, BuildError> {
        Builder::default().build()
    }

    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The number of workers.
    pub fn workers(&self) -> usize {
        self.engine.workers.len()
    }

    /// The number of tokens (the capacity).
    pub fn capacity(&self) -> usize {
        self.engine.ring.capacity()
    }

    /// Submits `func` as a task of `op` and returns its handle.
    ///
    /// The closure must be `Send + 'static`; one that captures an `Rc` does not compile:
    ///
    /// ```compile_fail
    /// let rt = tokengate::Runtime::builder().workers(1).pin(false).build().unwrap();
    /// let shared = std::rc::Rc::new(5);
    /// rt.spawn(move || *shared + 1); // error: `Rc<i32>` cannot be sent between threads
    /// ```
    ///
    /// Blocks while every token is out (spinning, then yielding, then parked until a token
    /// comes back). After shutdown the handle resolves [`TaskError::ShutDown`] and `func`
    /// never runs.
    ///
    /// Called from a worker of this runtime when every token is out, it does not wait for a
    /// token (every token may be held by tasks nested on the workers' stacks): it runs the
    /// task without one and returns a finished handle. The task runs in place, unless it
    /// must run on another worker (a broadcast run for another worker, or a sticky task: it is
    /// handed to its home worker, this one included, which runs it after the earlier tasks of
    /// its key; this worker helps with other work until it has run) or its operation's concurrency limit has
    /// no free permit (this worker helps until one is free or a token comes home). Such a
    /// task still honours kills, blocks and its deadline, but not a pause (it is not held).
    /// A worker of *another* runtime waiting for a token here keeps serving its own.
    ///
    /// `submit` runs `func` once: an operation's [`retries`](Operation::retries) apply only
    /// to [`submit_retrying`](Self::submit_retrying), whose closure can be called again. A
    /// debug build panics when `op` has retries, to point at the mistake.
    pub fn submit<F, T>(&self, op: &Operation, func: F) -> TaskHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        debug_assert_runs_once(op, "Runtime::submit");
        TaskHandle::new(self.engine.submit(op, func))
    }

    /// [`submit`](Self::submit) for a closure that can be called again: when it panics and
    /// `op` has [`retries`](Operation::retries) left, it is run again on the same worker, and
    /// the handle gets the last attempt's outcome. Each attempt counts in the operation's
    /// reputation.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::atomic::{AtomicU32, Ordering};
    /// use std::sync::Arc;
    /// use tokengate::{Operation, Runtime};
    ///
    /// const FLAKY: Operation = Operation::new("flaky").retries(2);
    /// let rt = Runtime::builder().workers(1).pin(false).build()?;
    /// let tries = Arc::new(AtomicU32::new(0));
    /// let t = tries.clone();
    /// let h = rt.submit_retrying(&FLAKY, move || {
    ///     if t.fetch_add(1, Ordering::Relaxed) < 2 { panic!("not yet") }
    ///     "done"
    /// });
    /// # let _quiet = std::panic::take_hook();
    /// # std::panic::set_hook(Box::new(|_| {}));
    /// assert_eq!(h.join(), Ok("done"));
    /// assert_eq!(tries.load(Ordering::Relaxed), 3);
    /// # Ok::<(), tokengate::BuildError>(())
    /// ```
    pub fn submit_retrying<F, T>(&self, op: &Operation, func: F) -> TaskHandle<T>
    where
        F: FnMut() -> T + Send + 'static,
        T: Send + 'static,
    {
        let func = retry::retrying(op.get_retries(), func);
        TaskHandle::new(self.engine.submit(op, func))
    }

    /// Submits every closure of `funcs` as a task of `op` and returns their handles, in
    /// order. Cheaper per task than calling [`submit`](Self::submit) in a loop: tasks are
    /// admitted in chunks that share one operation lookup, one fence and one clock read, and
    /// each chunk is spread over the eligible workers with one wake-up each. Waits for tokens
    /// like `submit`; after shutdown the remaining handles resolve
    /// [`TaskError::ShutDown`]. Sticky operations go one by one (each key has its worker).
    ///
    /// If the iterator panics, every closure it yielded before the panic is still admitted
    /// and runs (its handle is dropped as the panic unwinds, so it runs detached); then the
    /// panic continues in the caller. Nothing taken from the iterator is dropped unrun.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokengate::{Operation, Runtime, Weight};
    ///
    /// const SQUARE: Operation = Operation::new("square").weight(Weight::Light);
    /// let rt = Runtime::builder().workers(2).pin(false).build()?;
    /// let handles = rt.submit_batch(&SQUARE, (0..1000u64).map(|i| move || i * i));
    /// let sum: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    /// assert_eq!(sum, (0..1000u64).map(|i| i * i).sum());
    /// # Ok::<(), tokengate::BuildError>(())
    /// ```
    pub fn submit_batch<I, F, T>(&self, op: &Operation, funcs: I) -> Vec<TaskHandle<T>>
    where
        I: IntoIterator<Item = F>,
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        debug_assert_runs_once(op, "Runtime::submit_batch");
        let funcs = funcs.into_iter();
        // The hint is the iterator's word: an endless iterator that ends by panicking says
        // `usize::MAX`, which must not become an allocation.
        let mut handles = Vec::with_capacity(funcs.size_hint().0.min(PREALLOCATED_HANDLES));
        self.engine
            .admit_batch(op, funcs, &mut handles, TaskHandle::new);
        handles
    }

    /// [`submit_batch`](Self::submit_batch) with the default operation.
    pub fn spawn_batch<I, F, T>(&self, funcs: I) -> Vec<TaskHandle<T>>
    where
        I: IntoIterator<Item = F>,
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.submit_batch(&Operation::DEFAULT, funcs)
    }

    /// [`submit`](Self::submit) with the default operation (Medium).
    pub fn spawn<F, T>(&self, func: F) -> TaskHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.submit(&Operation::DEFAULT, func)
    }

    /// [`spawn`](Self::spawn) in first-in, first-out order, as rayon's `spawn_fifo`: called
    /// on a worker, the task queues behind the worker's earlier FIFO tasks instead of going
    /// on top of its local deque (see [`Operation::fifo`]). Off the workers, the same as
    /// `spawn`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    ///
    /// let rt = Arc::new(tokengate::Runtime::builder().workers(1).pin(false).build()?);
    /// let order = Arc::new(Mutex::new(Vec::new()));
    /// let (r, o) = (rt.clone(), order.clone());
    /// let handles = rt
    ///     .spawn(move || {
    ///         (0..3)
    ///             .map(|i| {
    ///                 let o = o.clone();
    ///                 r.spawn_fifo(move || o.lock().unwrap().push(i))
    ///             })
    ///             .collect::<Vec<_>>()
    ///     })
    ///     .join()
    ///     .unwrap();
    /// handles.into_iter().for_each(|h| h.join().unwrap());
    /// assert_eq!(*order.lock().unwrap(), [0, 1, 2]);
    /// # Ok::<(), tokengate::BuildError>(())
    /// ```
    pub fn spawn_fifo<F, T>(&self, func: F) -> TaskHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.submit(&Operation::DEFAULT.fifo(), func)
    }

    /// Submits without ever blocking: when every token is out or the runtime is shut down,
    /// the closure comes back in the error.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokengate::{Operation, Runtime, TrySubmitError};
    ///
    /// let rt = Runtime::builder().workers(1).pin(false).capacity(1).build()?;
    /// let gate = std::sync::Arc::new(std::sync::Barrier::new(2));
    /// let g = gate.clone();
    /// let busy = rt.spawn(move || { g.wait(); });           // holds the only token
    /// let refused = rt.try_submit(&Operation::DEFAULT, || 7);
    /// assert!(matches!(refused, Err(TrySubmitError::Full(_))));
    /// assert_eq!(refused.unwrap_err().into_inner()(), 7);  // the closure came back
    /// gate.wait();
    /// busy.join().unwrap();
    /// # Ok::<(), tokengate::BuildError>(())
    /// ```
    pub fn try_submit<F, T>(
        &self,
        op: &Operation,
        func: F,
    ) -> Result<TaskHandle<T>, TrySubmitError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        debug_assert_runs_once(op, "Runtime::try_submit");
        self.engine.admit(op, func, false).map(TaskHandle::new)
    }

    /// [`try_submit`](Self::try_submit) with the default operation.
    pub fn try_spawn<F, T>(&self, func: F) -> Result<TaskHandle<T>, TrySubmitError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.try_submit(&Operation::DEFAULT, func)
    }

    /// Runs `f` with a [`Scope`] whose tasks may borrow from the caller; every scoped task has
    /// finished (or was killed unrun) when `scope` returns. A panic in `f` is resumed after
    /// that.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokengate::Runtime;
    ///
    /// let rt = Runtime::builder().workers(2).pin(false).build()?;
    /// let words = vec!["token", "gate"];
    /// let total = rt.scope(|s| {
    ///     let hs: Vec<_> = words.iter().map(|w| s.spawn(move || w.len())).collect();
    ///     hs.into_iter().map(|h| h.join().unwrap()).sum::<usize>()
    /// });
    /// assert_eq!(total, 9);
    /// # Ok::<(), tokengate::BuildError>(())
    /// ```
    pub fn scope<'env, F, R>(&self, f: F) -> R
    where
        F: for<'scope> FnOnce(&'scope Scope<'scope, 'env>) -> R,
    {
        scope::run(self, f)
    }

    /// Runs `a` and `b`, potentially in parallel, and returns both results, as `rayon::join`.
    /// The closures may borrow from the caller's stack.
    ///
    /// Called on a worker of this runtime, `b` becomes a job in the caller's stack frame (no
    /// allocation, no token) that idle workers of the runtime may steal, and `a` runs inline;
    /// then `b` is popped back and run inline if nobody took it (the common case costs a few
    /// stores), or the caller runs other work of the runtime until the thief has finished it.
    /// Joins nest to any depth; beyond the depth a worker keeps stealable (1,024), both
    /// closures run inline.
    ///
    /// Called from any other thread (or a worker of another runtime, which keeps serving its
    /// own runtime meanwhile), the pair runs on a worker of this runtime and the caller
    /// blocks. After [`shutdown`](Self::shutdown), the pair runs on the calling thread.
    ///
    /// A forked `b` has no operation or weight of its own: it is part of the task (or the
    /// call) that forked it, and any worker of the runtime may steal it, whatever the
    /// [`Routing`](crate::Routing). A worker steals a fork only after its own queues, and
    /// another worker's forks only after that worker's mailbox and deque; but a fork it took
    /// runs to its end before the worker looks for work again.
    ///
    /// Forks and stolen forks are counted per worker ([`WorkerStats::forks`],
    /// [`WorkerStats::forks_stolen`]).
    ///
    /// # Panics
    ///
    /// If `a` or `b` panics, the panic is re-raised in the caller once both are done (the
    /// other may borrow what the caller's frame holds); `a`'s if both panicked. A panic in the
    /// `Drop` of a closure's captures counts as that closure's panic.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokengate::Runtime;
    ///
    /// fn sum(rt: &Runtime, v: &[u64]) -> u64 {
    ///     if v.len() <= 1024 {
    ///         return v.iter().sum();
    ///     }
    ///     let (left, right) = v.split_at(v.len() / 2);
    ///     let (a, b) = rt.join(|| sum(rt, left), || sum(rt, right));
    ///     a + b
    /// }
    ///
    /// let rt = Runtime::builder().workers(2).pin(false).build()?;
    /// let v: Vec<u64> = (1..=100_000).collect();
    /// assert_eq!(sum(&rt, &v), 5_000_050_000);
    /// # Ok::<(), tokengate::BuildError>(())
    /// ```
    pub fn join<A, B, RA, RB>(&self, a: A, b: B) -> (RA, RB)
    where
        A: FnOnce() -> RA + Send,
        B: FnOnce() -> RB + Send,
        RA: Send,
        RB: Send,
    {
        join::run(self, a, b)
    }

    /// Shuts down gracefully: no new admissions (submissions resolve
    /// [`TaskError::ShutDown`]), every admitted task runs, then the workers exit and are
    /// joined. Idempotent; concurrent calls all return once the workers are joined. What
    /// `Drop` does.
    ///
    /// Called from a task on one of this runtime's workers, it closes admission and returns
    /// without waiting (a worker cannot wait for itself); the rest happens on drop.
    pub fn shutdown(&self) {
        self.close(false);
    }

    /// Shuts down now: no new admissions, queued tasks resolve [`TaskError::Killed`] without
    /// running, running tasks finish, then the workers exit and are joined.
    pub fn shutdown_now(&self) {
        self.close(true);
    }

    fn close(&self, kill: bool) {
        self.engine.close(kill);
        if current::is_worker_of(self.engine.id()) {
            return;
        }
        let (threads, finisher) = self.threads.take();
        if !threads.is_empty() {
            finish(&self.engine, threads);
            // ORDERING: Release pairs with the Acquire in `WorkerThreads::is_joined`.
            self.threads.joined.store(true, Ordering::Release);
            // Calls waiting in the ring's wait list for the joins.
            self.engine.ring.wake_all_waiters();
            return;
        }
        // Another call finishes the shutdown (or did). Wait as it does, for every task...
        self.engine.wait_all_tokens_home();
        if finisher == Some(thread::current().id()) {
            return; // ...nested in that call's wait: it cannot go on before this returns
        }
        // ...then for the joins.
        let joined = || self.threads.is_joined();
        if current::with_any_current(|w| w.help_until(joined, false)).is_none() {
            self.engine.ring.wait_for(|| joined().then_some(()));
        }
    }

    /// Whether [`shutdown`](Self::shutdown) or [`shutdown_now`](Self::shutdown_now) was called.
    pub fn is_shut_down(&self) -> bool {
        self.engine.is_closed()
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        if !current::is_worker_of(self.engine.id()) {
            self.shutdown();
            return;
        }
        // Dropped by one of its own tasks: finish the shutdown on a helper thread, since this
        // worker cannot wait for its own token.
        self.engine.close(false);
        let engine = self.engine.clone();
        let (threads, _) = self.threads.take();
        let _ = thread::Builder::new()
            .name("tokengate-shutdown".into())
            .spawn(move || finish(&engine, threads));
    }
}

/// The end of a shutdown, once admission is closed: waits until every admitted task has
/// finished (every token is home), stops the workers and joins their threads.
fn finish(engine: &Engine, threads: impl IntoIterator<Item = thread::JoinHandle<()>>) {
    engine.wait_all_tokens_home();
    engine.stop_workers();
    for t in threads {
        // A worker never panics (tasks' panics are caught); ignore it if one did.
        let _ = t.join();
    }
}

impl fmt::Debug for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Runtime")
            .field("workers", &self.workers())
            .field("capacity", &self.capacity())
            .field("shut_down", &self.is_shut_down())
            .finish()
    }
}

/// The most handles `submit_batch` reserves room for before it admits anything.
const PREALLOCATED_HANDLES: usize = 4096;

/// Panics in a debug build if `op` has [`retries`](Operation::retries): `method` (one of the
/// submit family, whose closures run once) would silently ignore them; only
/// [`Runtime::submit_retrying`] runs a task again.
#[inline]
fn debug_assert_runs_once(op: &Operation, method: &str) {
    debug_assert!(
        op.get_retries() == 0,
        "{method} of operation {:?}, which has retries({}): {method} runs its closure once \
         and ignores them; call Runtime::submit_retrying (with a closure that can be called \
         again) for the retries to take effect",
        op.name(),
        op.get_retries(),
    );
}

/// Compile-time checks of the auto traits users rely on.
#[allow(dead_code)]
fn assert_send_sync() {
    fn send_sync<T: Send + Sync>() {}
    send_sync::<Runtime>();
    send_sync::<TaskHandle<u8>>();
    fn unpin_future<F: std::future::Future<Output = Result<u8, TaskError>> + Unpin>() {}
    unpin_future::<TaskHandle<u8>>();
    send_sync::<crate::primitives::TokenRing>();
    send_sync::<crate::primitives::Mailbox>();
    send_sync::<crate::primitives::SpillQueue<crate::primitives::Token>>();
    send_sync::<crate::primitives::Sleeper>();
}
