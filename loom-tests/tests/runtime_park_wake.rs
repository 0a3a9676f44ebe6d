//! Loom models of the runtime's park/wake protocols, driven through the public API: a real
//! [`Runtime`] with one worker (a loom thread spawned by `build`) and one or two tokens.
//!
//! What they check:
//!
//! - **No lost wake-up of the worker** (`src/primitives/sleep.md`): a task submitted while the
//!   worker looks for work, announces sleep, or is parked still runs, and its `join` returns
//!   `Ok`.
//! - **No lost wake-up of a joiner**: the thread parked in `join` is woken by the worker.
//! - **No lost wake-up of a submitter waiting for a token** (`wait_list.rs`): with one token,
//!   a second submission may find it still out (`join` returns before the worker gives the
//!   token back) and park until the worker's give-back wakes it.
//! - **Dropping the runtime does not hang**: graceful shutdown waits for every token to come
//!   home (parking on the same wait list), then stops and joins the parked worker.
//! - Every task runs exactly once (counted with a loom `AtomicUsize`).
//!
//! Any lost wake-up leaves a thread parked forever, which loom reports as a deadlock; so these
//! models pass only if every execution finishes. Loom also checks, at the end of each
//! execution, that the worker thread finished and the runtime's loom `Arc` was freed.
//!
//! Loom only tries the schedules its DPOR derives from the first one (crate docs), and in the
//! first schedule the thread that built the runtime keeps running. So each model runs once per
//! *head start*: the submitting thread first yields 0, 1, 2 or 3 times, each yield handing the
//! processor to the worker. Under loom the worker's idle backoff is one yield, so with 0 the
//! task is pushed before the worker ever looked, with 1 while it is between its backoff and
//! its last look, and with 2 after it parked (checked by tracing loom's first schedule); 3
//! leaves room for one more backoff yield should the loom budget grow.
//!
//! Preemption bound: 3 for every model. On two cores the slowest,
//! `a_second_task_waits_for_the_only_token`, takes about 40 s over its four head starts; the
//! others take about a second each.
#![cfg(loom)]

use loom::sync::atomic::{AtomicUsize, Ordering};
use loom::sync::Arc;
use tokengate::Runtime;
use tokengate_loom_tests::{check, tiny_runtime};

/// Preemptions per execution.
const PREEMPTION_BOUND: usize = 3;

/// How many times the submitting thread yields to the worker before it submits, per run.
const HEAD_STARTS: [usize; 4] = [0, 1, 2, 3];

/// [`check`]s `model` once per head start (see the module docs).
fn check_each_head_start<F>(model: F)
where
    F: Fn(usize) + Sync + Send + 'static,
{
    let model = std::sync::Arc::new(model);
    for yields in HEAD_STARTS {
        let model = model.clone();
        eprint!("head start {yields}: ");
        check(PREEMPTION_BOUND, move || model(yields));
    }
}

/// Lets the worker run `yields` steps of its loop first (in loom's first schedule).
fn give_the_worker_a_head_start(yields: usize) {
    for _ in 0..yields {
        loom::thread::yield_now();
    }
}

/// Submits a task that counts its runs into `runs` and returns `value`.
fn submit_counted(rt: &Runtime, runs: &Arc<AtomicUsize>, value: u32) -> tokengate::TaskHandle<u32> {
    let runs = runs.clone();
    rt.spawn(move || {
        // Relaxed: `join` returning is ordered after the task (the runtime's happens-before
        // guarantee), and the models read the count only after a join or the runtime's drop.
        runs.fetch_add(1, Ordering::Relaxed);
        value
    })
}

/// The brief's model: the thread that built the runtime submits one task, perhaps after the
/// worker went to sleep, and joins it; the task runs once; then the runtime drops (graceful
/// shutdown stops and joins the worker, which may be parked again by then).
#[test]
fn a_task_submitted_to_a_sleeping_worker_runs() {
    check_each_head_start(|yields| {
        let rt = tiny_runtime(1);
        let runs = Arc::new(AtomicUsize::new(0));
        give_the_worker_a_head_start(yields);
        let handle = submit_counted(&rt, &runs, 7);
        assert_eq!(handle.join(), Ok(7));
        assert_eq!(
            runs.load(Ordering::Relaxed),
            1,
            "joined, but the task did not run once"
        );
        drop(rt);
        assert_eq!(runs.load(Ordering::Relaxed), 1, "the task ran again");
    });
}

/// The same from a spawned submitter sharing the runtime, which the main thread drops after
/// joining the submitter. In loom's first schedule the main thread blocks in that join and the
/// worker runs first, up to its backoff yield; so here the head starts mean one yield more than
/// in the model above (with 1 or more the worker parks before the submitter starts).
#[test]
fn a_spawned_submitter_wakes_the_sleeping_worker() {
    check_each_head_start(|yields| {
        let rt = Arc::new(tiny_runtime(1));
        let runs = Arc::new(AtomicUsize::new(0));
        let submitter = {
            let (rt, runs) = (rt.clone(), runs.clone());
            loom::thread::spawn(move || {
                give_the_worker_a_head_start(yields);
                submit_counted(&rt, &runs, 7).join()
            })
        };
        let joined = submitter.join().expect("the submitter does not panic");
        assert_eq!(joined, Ok(7));
        drop(rt);
        assert_eq!(runs.load(Ordering::Relaxed), 1);
    });
}

/// One token, two tasks in a row. `join` of the first returns once its outcome is published,
/// possibly before the worker gave the token back, so the second submission may park on the
/// token wait list until the give-back wakes it; meanwhile the worker may go back to sleep and
/// must be woken for the second task. Both tasks run once; the drop does not hang.
#[test]
fn a_second_task_waits_for_the_only_token() {
    check_each_head_start(|yields| {
        let rt = tiny_runtime(1);
        let runs = Arc::new(AtomicUsize::new(0));
        give_the_worker_a_head_start(yields);
        assert_eq!(submit_counted(&rt, &runs, 1).join(), Ok(1));
        assert_eq!(submit_counted(&rt, &runs, 2).join(), Ok(2));
        drop(rt);
        assert_eq!(runs.load(Ordering::Relaxed), 2);
    });
}

/// A task nobody joined yet when the runtime drops: the drop's graceful shutdown waits for its
/// token to come home (parked on the wait list until the worker's give-back wakes it), so the
/// task has run when the drop returns, and its handle still resolves `Ok`.
#[test]
fn dropping_the_runtime_runs_a_task_nobody_joined() {
    check_each_head_start(|yields| {
        let rt = tiny_runtime(1);
        let runs = Arc::new(AtomicUsize::new(0));
        give_the_worker_a_head_start(yields);
        let handle = submit_counted(&rt, &runs, 7);
        drop(rt);
        // The drop joined the worker thread, which ran the task first: the count is visible.
        assert_eq!(
            runs.load(Ordering::Relaxed),
            1,
            "the runtime dropped without running an admitted task"
        );
        assert_eq!(handle.join(), Ok(7));
        assert_eq!(runs.load(Ordering::Relaxed), 1, "the task ran again");
    });
}

/// One token, two tasks submitted back to back without a join in between: the second
/// submission finds every token out and parks on the ring's wait list; the worker gives the
/// token back into its own cache (`engine/token_cache.rs`), not the ring, and must wake the
/// waiter, which takes it from there. (With the wake-up after the cache push removed, this
/// model deadlocks.)
#[test]
fn a_submitter_waiting_for_a_token_is_woken_by_a_give_back_into_a_workers_cache() {
    check_each_head_start(|yields| {
        let rt = tiny_runtime(1);
        let runs = Arc::new(AtomicUsize::new(0));
        give_the_worker_a_head_start(yields);
        let first = submit_counted(&rt, &runs, 1);
        let second = submit_counted(&rt, &runs, 2);
        assert_eq!(first.join(), Ok(1));
        assert_eq!(second.join(), Ok(2));
        drop(rt);
        assert_eq!(runs.load(Ordering::Relaxed), 2);
    });
}
