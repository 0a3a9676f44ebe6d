//! Helpers shared by the integration tests: runtimes as the tests build them, a task that holds
//! a worker until the test lets it go, and quiet planned panics.

// Each test file compiles this module on its own and uses only some of its helpers.
#![allow(dead_code)]

use std::panic::resume_unwind;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, Once};
use std::thread;
use std::time::{Duration, Instant};

use tokengate::{Operation, Runtime, TaskHandle};

/// A runtime of `workers` workers, unpinned (the tests share their machine), with the default
/// capacity.
pub(crate) fn runtime(workers: usize) -> Runtime {
    Runtime::builder()
        .workers(workers)
        .pin(false)
        .build()
        .unwrap()
}

/// [`runtime`] with `capacity` tokens.
pub(crate) fn runtime_with_capacity(workers: usize, capacity: usize) -> Runtime {
    Runtime::builder()
        .workers(workers)
        .pin(false)
        .capacity(capacity)
        .build()
        .unwrap()
}

/// What holds a task started by [`hold_worker`]: [`open`](Gate::open) it (or drop it) and the
/// task goes on.
#[derive(Debug)]
pub(crate) struct Gate(mpsc::Sender<()>);

impl Gate {
    /// Lets the held task go on.
    pub(crate) fn open(self) {
        let _ = self.0.send(());
    }
}

/// Submits a task of `op` that holds its worker until the returned [`Gate`] opens, then
/// returns `then()`; returns once the task is running, so that what the test submits next
/// queues behind it.
pub(crate) fn hold_worker<T, F>(rt: &Runtime, op: &Operation, then: F) -> (TaskHandle<T>, Gate)
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let (release, gate) = mpsc::channel::<()>();
    let (started_tx, started) = mpsc::channel::<()>();
    let handle = rt.submit(op, move || {
        started_tx.send(()).unwrap();
        let _ = gate.recv();
        then()
    });
    started.recv().unwrap();
    (handle, Gate(release))
}

/// Silences the default panic report for panics whose message starts with "planned" (tests
/// that panic on purpose thousands of times); every other panic is reported as usual.
pub(crate) fn quiet_planned_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let payload = info.payload();
            let message = payload
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
            if !message.is_some_and(|m| m.starts_with("planned")) {
                default(info);
            }
        }));
    });
}

/// Polls `done` until it is true or `limit` has passed; returns `done()`.
pub(crate) fn eventually(limit: Duration, done: impl Fn() -> bool) -> bool {
    let start = Instant::now();
    while !done() {
        if start.elapsed() > limit {
            return done();
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    true
}

// ---- the watchdog of the tests that could hang ------------------------------------------------

/// How long a test body may take before it counts as hung. Generous: it only catches hangs.
pub(crate) const HANG: Duration = Duration::from_secs(if cfg!(miri) { 3_600 } else { 30 });

/// How long to wait for something that should happen promptly (a task to run, a handle to
/// resolve) before failing with a message that says which.
pub(crate) const PROMPTLY: Duration = Duration::from_secs(if cfg!(miri) { 600 } else { 10 });

/// The last step a test body reached, for the "hung" message.
#[derive(Clone, Default)]
pub(crate) struct Steps(Arc<Mutex<&'static str>>);

impl Steps {
    pub(crate) fn at(&self, step: &'static str) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = step;
    }

    pub(crate) fn last(&self) -> &'static str {
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Runs `body` on a thread of its own and returns what it returns; a panic in it is the
/// test's panic; no answer within [`HANG`] fails the test with "hung: ..." and the last step
/// the body reached (the body's thread is left behind, blocked).
pub(crate) fn watchdog<T: Send + 'static>(body: impl FnOnce(&Steps) -> T + Send + 'static) -> T {
    let steps = Steps::default();
    let s = steps.clone();
    let (tx, rx) = mpsc::channel();
    let name = thread::current().name().unwrap_or("hostile").to_string();
    let body_thread = thread::Builder::new()
        .name(format!("{name} (body)"))
        // Room for bodies that nest deeply on their own thread (10,000-deep joins run inline
        // there when no worker is involved).
        .stack_size(64 << 20)
        .spawn(move || {
            let out = body(&s);
            let _ = tx.send(out);
        })
        .expect("could not spawn the test body's thread");
    match rx.recv_timeout(HANG) {
        Ok(out) => {
            let _ = body_thread.join();
            out
        }
        Err(RecvTimeoutError::Timeout) => {
            panic!(
                "hung: no answer within {HANG:?}; stuck at: {}",
                steps.last()
            )
        }
        Err(RecvTimeoutError::Disconnected) => match body_thread.join() {
            Err(payload) => resume_unwind(payload),
            Ok(()) => unreachable!("the body returned without answering"),
        },
    }
}
