//! Helpers shared by the integration tests: runtimes as the tests build them, a task that holds
//! a worker until the test lets it go, and quiet planned panics.

// Each test file compiles this module on its own and uses only some of its helpers.
#![allow(dead_code)]

use std::sync::{mpsc, Once};
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

/// How long a test body may take before it counts as hung (as in `hostile.rs`). Generous: it
/// only catches hangs, never measures speed.
pub(crate) const HANG: Duration = Duration::from_secs(if cfg!(miri) { 3_600 } else { 30 });

/// Runs `body` on a thread of its own and returns what it returns; a panic in it is the
/// test's panic; no answer within [`HANG`] fails the test with "hung" (the body's thread is
/// left behind, blocked).
pub(crate) fn watchdog<T: Send + 'static>(body: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    let body_thread = std::thread::Builder::new()
        .name("test body".into())
        .stack_size(64 << 20)
        .spawn(move || {
            let out = body();
            let _ = tx.send(out);
        })
        .expect("could not spawn the test body's thread");
    match rx.recv_timeout(HANG) {
        Ok(out) => {
            let _ = body_thread.join();
            out
        }
        Err(mpsc::RecvTimeoutError::Timeout) => panic!("hung: no answer within {HANG:?}"),
        Err(mpsc::RecvTimeoutError::Disconnected) => match body_thread.join() {
            Err(payload) => std::panic::resume_unwind(payload),
            Ok(()) => unreachable!("the body returned without answering"),
        },
    }
}
