//! Where a handler's CPU work runs: the backends the service can be started with.

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};

use tokengate::{Operation, Routing, Runtime, TaskError, TrySubmitError, Weight};
use tokio::sync::oneshot;

/// Light requests' operation: taken first from a worker's mailbox, and with
/// [`BackendKind::Tokengate`] run on a worker of its own.
pub const LIGHT: Operation = Operation::new("light").weight(Weight::Light);

/// Heavy requests' operation.
pub const HEAVY: Operation = Operation::new("heavy").weight(Weight::Heavy);

/// Which of the two endpoints' work a call is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Work {
    /// `GET /light`: tens of microseconds, latency-sensitive.
    Light,
    /// `POST /heavy`: milliseconds.
    Heavy,
}

/// How the service runs its CPU work.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BackendKind {
    /// tokengate with one worker per core for Heavy work and one more worker for Light work
    /// (`Builder::lane_workers`): heavy work keeps every core busy, but can never occupy the
    /// worker light work runs on; the heavy workers run at a low OS priority
    /// ([`BackendConfig::heavy_nice`]), so that the OS runs the light worker and the async
    /// threads first when they wake. Handles are awaited as futures.
    Tokengate,
    /// tokengate with one worker per core and the default routing (`Routing::Spread`): lanes
    /// only, so a light task waits for a worker to finish its heavy task.
    TokengateSpread,
    /// `tokio::task::spawn_blocking`: a thread per call in flight, from tokio's blocking pool.
    SpawnBlocking,
    /// A rayon pool of one thread per core: `ThreadPool::spawn` and a oneshot channel back.
    Rayon,
    /// On the async runtime's own threads, blocking them (the anti-pattern, as a reference).
    Inline,
}

impl BackendKind {
    /// Every backend, in the order the bench runs them.
    pub const ALL: [BackendKind; 5] = [
        BackendKind::Tokengate,
        BackendKind::TokengateSpread,
        BackendKind::SpawnBlocking,
        BackendKind::Rayon,
        BackendKind::Inline,
    ];

    /// The name used on the command line and in reports.
    pub const fn name(self) -> &'static str {
        match self {
            BackendKind::Tokengate => "tokengate",
            BackendKind::TokengateSpread => "tokengate-spread",
            BackendKind::SpawnBlocking => "spawn_blocking",
            BackendKind::Rayon => "rayon",
            BackendKind::Inline => "inline",
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for BackendKind {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        BackendKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = BackendKind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown backend {s:?}; use one of {}", names.join(", "))
            })
    }
}

/// Settings of a [`Backend`].
#[derive(Clone, Debug)]
pub struct BackendConfig {
    /// Which backend.
    pub kind: BackendKind,
    /// Cores to use for CPU work (tokengate workers, rayon threads). Default: the number of
    /// cores this process may run on.
    pub cores: usize,
    /// tokengate's capacity (tokens: tasks admitted and unfinished at once; a power of two).
    /// A light or heavy call that finds every token out is refused (503), never queued.
    pub capacity: usize,
    /// Whether `tokengate-spread` pins its workers to cores.
    pub pin: bool,
    /// With `tokengate`, the OS niceness (Linux, 0 to 19) of the Heavy workers' threads.
    /// Default 19 (on Linux): when the light worker or an async thread wakes, the OS runs it
    /// at once rather than after the heavy worker's time slice, and the heavy workers still
    /// get every cycle nothing else of higher priority wants. (With Linux's autogroups, the
    /// default for a process started from a terminal, niceness only ranks the threads of
    /// the process's own session against each other; elsewhere, heavy work also yields to
    /// other programs.) 0 leaves them as they are.
    pub heavy_nice: i32,
}

impl BackendConfig {
    /// The defaults for `kind`: every core, capacity 1024, no pinning, heavy workers at
    /// niceness 19 on Linux.
    pub fn new(kind: BackendKind) -> Self {
        Self {
            kind,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            capacity: 1024,
            pin: false,
            heavy_nice: if cfg!(target_os = "linux") { 19 } else { 0 },
        }
    }
}

/// Why a call's work did not produce a value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OffloadError {
    /// The backend would not take the work (full, or shut down): the work never ran.
    Refused(String),
    /// The work panicked (the message).
    Panicked(String),
}

impl fmt::Display for OffloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            OffloadError::Refused(why) => write!(f, "refused: {why}"),
            OffloadError::Panicked(msg) => write!(f, "the work panicked: {msg}"),
        }
    }
}

impl std::error::Error for OffloadError {}

enum Inner {
    Tokengate(Runtime),
    SpawnBlocking,
    Rayon(rayon::ThreadPool),
    Inline,
}

/// A backend, shared by the handlers: [`run`](Self::run) runs a closure there and awaits its
/// result.
pub struct Backend {
    kind: BackendKind,
    inner: Inner,
    closed: AtomicBool,
}

impl fmt::Debug for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backend")
            .field("kind", &self.kind)
            .field("closed", &self.closed.load(Ordering::Relaxed))
            .finish()
    }
}

impl Backend {
    /// Starts the backend's threads (none for `spawn_blocking`, which uses the tokio runtime
    /// the service runs on, and for `inline`).
    pub fn new(config: &BackendConfig) -> Result<Self, String> {
        let cores = config.cores.max(1);
        let inner = match config.kind {
            BackendKind::Tokengate => {
                // Workers 0..cores run Heavy work, worker `cores` runs Light (and Medium)
                // work. Heavy work can keep every core busy, yet a light task never waits
                // for a heavy one: its worker is a thread of its own, which the OS runs as
                // soon as it is woken, beside at most one heavy worker per core.
                let light = [cores];
                let rt = Runtime::builder()
                    .workers(cores + 1)
                    .pin(false)
                    .capacity(config.capacity)
                    .lane_workers(Weight::Heavy, 0..cores)
                    .lane_workers(Weight::Medium, light)
                    .lane_workers(Weight::Light, light)
                    .build()
                    .map_err(|e| e.to_string())?;
                if config.heavy_nice != 0 {
                    let nice = config.heavy_nice;
                    for result in rt.broadcast(|ctx| {
                        if ctx.index() < cores {
                            renice_current_thread(nice)
                        } else {
                            Ok(())
                        }
                    }) {
                        result.map_err(|e| e.to_string())??;
                    }
                }
                Inner::Tokengate(rt)
            }
            BackendKind::TokengateSpread => {
                let rt = Runtime::builder()
                    .workers(cores)
                    .pin(config.pin)
                    .capacity(config.capacity)
                    .routing(Routing::Spread)
                    .build()
                    .map_err(|e| e.to_string())?;
                Inner::Tokengate(rt)
            }
            BackendKind::SpawnBlocking => Inner::SpawnBlocking,
            BackendKind::Rayon => Inner::Rayon(
                rayon::ThreadPoolBuilder::new()
                    .num_threads(cores)
                    .thread_name(|i| format!("rayon-{i}"))
                    .build()
                    .map_err(|e| e.to_string())?,
            ),
            BackendKind::Inline => Inner::Inline,
        };
        Ok(Self {
            kind: config.kind,
            inner,
            closed: AtomicBool::new(false),
        })
    }

    /// Which backend this is.
    pub fn kind(&self) -> BackendKind {
        self.kind
    }

    /// Runs `f` on the backend and awaits its value. Never waits for room: a backend that
    /// cannot take the work now refuses it.
    pub async fn run<F, T>(&self, work: Work, f: F) -> Result<T, OffloadError>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        // ORDERING: pairs with the Release store in `shutdown`; a call that sees the flag
        // clear may still race with it, and each backend then refuses in its own way.
        if self.closed.load(Ordering::Acquire) {
            return Err(OffloadError::Refused("the service is shutting down".into()));
        }
        match &self.inner {
            Inner::Tokengate(rt) => {
                let op = match work {
                    Work::Light => &LIGHT,
                    Work::Heavy => &HEAVY,
                };
                match rt.try_submit(op, f) {
                    Ok(handle) => handle.await.map_err(|e| match e {
                        TaskError::Panicked(p) => OffloadError::Panicked(p.message().into()),
                        other => OffloadError::Refused(other.to_string()),
                    }),
                    Err(TrySubmitError::Full(_)) => Err(OffloadError::Refused(format!(
                        "every one of tokengate's {} tokens is out",
                        rt.capacity()
                    ))),
                    Err(TrySubmitError::ShutDown(_)) => {
                        Err(OffloadError::Refused("tokengate is shut down".into()))
                    }
                    Err(e) => Err(OffloadError::Refused(e.to_string())),
                }
            }
            Inner::SpawnBlocking => tokio::task::spawn_blocking(f).await.map_err(|e| {
                if e.is_panic() {
                    OffloadError::Panicked(panic_message(e.into_panic().as_ref()))
                } else {
                    OffloadError::Refused("tokio's runtime is shutting down".into())
                }
            }),
            Inner::Rayon(pool) => {
                let (tx, rx) = oneshot::channel();
                pool.spawn(move || {
                    // A panic would abort the process from a rayon::spawn job: catch it.
                    let _ = tx.send(panic::catch_unwind(AssertUnwindSafe(f)));
                });
                match rx.await {
                    Ok(Ok(value)) => Ok(value),
                    Ok(Err(payload)) => Err(OffloadError::Panicked(panic_message(&*payload))),
                    Err(_) => Err(OffloadError::Refused(
                        "the rayon pool dropped the job".into(),
                    )),
                }
            }
            Inner::Inline => panic::catch_unwind(AssertUnwindSafe(f))
                .map_err(|payload| OffloadError::Panicked(panic_message(&*payload))),
        }
    }

    /// Refuses new work from now on, lets the work already taken finish, and stops the
    /// backend's threads (tokengate: a graceful `Runtime::shutdown`). Blocks until then:
    /// call it off the async runtime's threads. Idempotent.
    pub fn shutdown(&self) {
        // ORDERING: pairs with the Acquire load in `run`.
        self.closed.store(true, Ordering::Release);
        if let Inner::Tokengate(rt) = &self.inner {
            rt.shutdown();
        }
        // The rayon pool's threads end when the backend is dropped; spawn_blocking's belong
        // to tokio.
    }
}

/// Sets the calling thread's niceness (Linux threads have their own).
#[cfg(target_os = "linux")]
fn renice_current_thread(nice: i32) -> Result<(), String> {
    // SAFETY: gettid has no preconditions; setpriority only reads its arguments.
    let rc = unsafe {
        let tid = libc::gettid();
        libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!(
            "cannot set the heavy workers' niceness to {nice}: {}",
            std::io::Error::last_os_error()
        ))
    }
}

#[cfg(not(target_os = "linux"))]
fn renice_current_thread(_nice: i32) -> Result<(), String> {
    Err("heavy_nice is only supported on Linux".into())
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_string()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "a panic with a non-text payload".into()
    }
}
