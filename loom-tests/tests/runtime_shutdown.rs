//! Loom models of shutdown racing a submission, driven through the public API: a real
//! [`Runtime`](tokengate::Runtime) with one worker (a loom thread spawned by `build`) and one
//! token, shared (through a loom `Arc`) by a submitter that `spawn`s a task and joins it and a
//! thread that shuts the runtime down.
//!
//! The protocol under test (`src/primitives/sleep.md`, "shutdown against submit"): the
//! submitter takes a token, `SeqCst` fence, reads `closed`; shutdown sets `closed`, `SeqCst`
//! fence, waits for every token to come home, then stops and joins the worker. Either the
//! submitter sees `closed` and is refused, or shutdown sees the token out and waits for the
//! task.
//!
//! What every execution must show:
//!
//! - the handle resolves, and nothing hangs (a task admitted after the worker stopped would
//!   leave its joiner parked forever, which loom reports as a deadlock);
//! - `Ok` means the task ran exactly once; an error means it never ran: `ShutDown` (refused)
//!   after either shutdown, `Killed` (dropped unrun from the mailbox) only after
//!   `shutdown_now`;
//! - when `shutdown` returns, every admitted task has finished: the run count the shutting
//!   thread reads right then is the final one;
//! - dropping the runtime afterwards (a second, idempotent shutdown) returns.
//!
//! A third model has the submitter wait for the only token while shutdown happens: both may
//! then park on the ring's wait list.
//!
//! Every model runs its two threads in both spawn orders (see the crate docs); the worker is
//! spawned by `build`, before both.
//!
//! Preemption bound: 2 for every model. On two cores the two one-task models take about 20 s
//! and 40 s (both orders), the two-task model about 3 min. The one-task models also pass at 3,
//! but too slowly to run routinely: the graceful one took 3.7 min (2.4 million executions over
//! both orders), the `shutdown_now` one 8.1 min (5.3 million). Search deeper with
//! `LOOM_MAX_PREEMPTIONS=3` in the environment.
#![cfg(loom)]

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use tokengate::TaskError;
use tokengate_loom_tests::{check_each_order, tiny_runtime, Order};

/// Preemptions per execution (see the module docs for why not 3).
const PREEMPTION_BOUND: usize = 2;

/// What one thread of a model did.
#[derive(Debug)]
enum Did {
    /// Submitted and joined: the outcome.
    Joined(Result<u32, TaskError>),
    /// Submitted two tasks, then joined them: their outcomes.
    JoinedTwo(Result<u32, TaskError>, Result<u32, TaskError>),
    /// Shut the runtime down, then read this run count.
    ShutDown { runs_seen: usize },
}

type Role = Box<dyn FnOnce() -> Did>;

/// How the model shuts the runtime down.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Shutdown {
    Graceful,
    Now,
}

/// One submitter (`spawn` + `join`) against one thread calling `shutdown` or `shutdown_now`.
fn shutdown_races_submit(how: Shutdown) {
    check_each_order(PREEMPTION_BOUND, move |order: Order| {
        let rt = Arc::new(tiny_runtime(1));
        let runs = Arc::new(AtomicUsize::new(0));
        let submitter: Role = {
            let (rt, runs) = (rt.clone(), runs.clone());
            Box::new(move || {
                let handle = rt.spawn(move || {
                    // Relaxed: the reads below come after a join (of the task or of the
                    // worker thread), which orders this increment first.
                    runs.fetch_add(1, Ordering::Relaxed);
                    7_u32
                });
                Did::Joined(handle.join())
            })
        };
        let shutter: Role = {
            let (rt, runs) = (rt.clone(), runs.clone());
            Box::new(move || {
                match how {
                    Shutdown::Graceful => rt.shutdown(),
                    Shutdown::Now => rt.shutdown_now(),
                }
                assert!(rt.is_shut_down());
                // `shutdown` joined the worker thread: every task that ran is counted.
                Did::ShutDown {
                    runs_seen: runs.load(Ordering::Relaxed),
                }
            })
        };
        let [joined, shut]: [Did; 2] = order
            .spawn_all(vec![submitter, shutter])
            .try_into()
            .expect("two roles, two results");
        let (Did::Joined(outcome), Did::ShutDown { runs_seen }) = (joined, shut) else {
            panic!("roles returned out of order");
        };
        let runs_now = runs.load(Ordering::Relaxed);
        match &outcome {
            Ok(7) => assert_eq!(runs_now, 1, "joined Ok, but the task ran {runs_now} times"),
            Err(TaskError::ShutDown) => assert_eq!(runs_now, 0, "refused, but the task ran"),
            Err(TaskError::Killed) if how == Shutdown::Now => {
                assert_eq!(runs_now, 0, "killed, but the task ran")
            }
            other => panic!("unexpected outcome {other:?} after {how:?} shutdown"),
        }
        assert_eq!(
            runs_seen, runs_now,
            "a task ran after shutdown returned (or shutdown returned before it finished)"
        );
        // The last reference: drop shuts down again, which must return at once.
        drop(rt);
    });
}

/// `shutdown` against `spawn` + `join`: `Ok` (ran once) or `ShutDown` (never ran).
#[test]
fn graceful_shutdown_races_submit() {
    shutdown_races_submit(Shutdown::Graceful);
}

/// `shutdown_now` against `spawn` + `join`: `Ok` (ran once), or `ShutDown` or `Killed`
/// (never ran).
#[test]
fn shutdown_now_races_submit() {
    shutdown_races_submit(Shutdown::Now);
}

/// One token, two tasks: the submitter spawns a task and, without joining it, a second one,
/// which may find the only token out and park on the ring's wait list, beside a shutdown
/// parked there waiting for the tokens to come home. The first task's give-back, or shutdown
/// closing admission, must wake the waiting submitter, which then is refused (`ShutDown`) or
/// gets the token and its task runs. Each task runs once or never; once one is refused, so is
/// the next; nothing hangs.
#[test]
fn graceful_shutdown_wakes_a_submitter_waiting_for_a_token() {
    check_each_order(PREEMPTION_BOUND, |order: Order| {
        let rt = Arc::new(tiny_runtime(1));
        let runs = [Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0))];
        let submitter: Role = {
            let (rt, runs) = (rt.clone(), runs.clone());
            Box::new(move || {
                let [first, second] = runs.map(|runs| {
                    rt.spawn(move || {
                        // Relaxed: read after the joins below, which order it first.
                        runs.fetch_add(1, Ordering::Relaxed);
                        7_u32
                    })
                });
                Did::JoinedTwo(first.join(), second.join())
            })
        };
        let shutter: Role = {
            let (rt, runs) = (rt.clone(), runs.clone());
            Box::new(move || {
                rt.shutdown();
                Did::ShutDown {
                    runs_seen: runs.iter().map(|r| r.load(Ordering::Relaxed)).sum(),
                }
            })
        };
        let [joined, shut]: [Did; 2] = order
            .spawn_all(vec![submitter, shutter])
            .try_into()
            .expect("two roles, two results");
        let (Did::JoinedTwo(first, second), Did::ShutDown { runs_seen }) = (joined, shut) else {
            panic!("roles returned out of order");
        };
        let mut total = 0;
        for (outcome, runs) in [(&first, &runs[0]), (&second, &runs[1])] {
            let ran = runs.load(Ordering::Relaxed);
            match outcome {
                Ok(7) => assert_eq!(ran, 1, "joined Ok, but the task ran {ran} times"),
                Err(TaskError::ShutDown) => assert_eq!(ran, 0, "refused, but the task ran"),
                other => panic!("unexpected outcome {other:?}"),
            }
            total += ran;
        }
        assert!(
            !(first.is_err() && second.is_ok()),
            "admitted {second:?} after refusing {first:?}"
        );
        assert_eq!(runs_seen, total, "a task ran after shutdown returned");
        drop(rt);
    });
}
