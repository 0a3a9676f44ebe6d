//! A hostile-task model (proptest): random small programs of tasks that panic in their body,
//! in the drop of a capture, of their output or of their panic payload, that sleep, or that
//! submit a child from their worker (joining it or dropping its handle); interleaved with
//! `cancel`, `kill(id)`, `pause`/`resume`, `pause_operation`/`resume_operation`,
//! `drain_operation`, `kill_operation`, deadlines, retries, concurrency limits, on 1–2
//! workers with 1–8 tokens; ended by a graceful shutdown or `shutdown_now`.
//!
//! Invariants (DESIGN.md 1, 2, 6 and 8): every handle resolves, with the outcome of what its
//! task did; every token comes home; the shutdown and `drop(rt)` return; per operation,
//! submitted = completed + failed + killed + timed out once everything is resolved; no admin
//! call or handle method lets user code's panic escape.
//!
//! Each task has exactly one hostile behaviour, and a bomb never goes off while its thread is
//! already unwinding (that would abort the process). Each case runs under a watchdog: a hang
//! fails the case ("hung: ...") instead of the test run.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Mutex, Once};
use std::thread;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use tokengate::{Operation, Runtime, TaskError, TaskHandle, TaskId, TrySubmitError};

/// How long one case may take before it counts as hung (only catches hangs).
const CASE_LIMIT: Duration = Duration::from_secs(30);
/// How long a handle, or the token count, may take to settle once nothing holds it back.
const PROMPTLY: Duration = Duration::from_secs(10);

const OPS: [Operation; 7] = [
    Operation::new("plain"),
    Operation::new("deadline").deadline(Duration::from_millis(2)),
    Operation::new("limited").concurrency_limit(1),
    Operation::new("retrying").retries(2),
    Operation::new("nest"),
    Operation::new("child"),
    Operation::new("child_limited").concurrency_limit(1),
];
const DEADLINE: usize = 1;
const RETRYING: usize = 3;
const NEST: usize = 4;
const CHILD: usize = 5;
const CHILD_LIMITED: usize = 6;

/// What a nested parent returns for its child's outcome.
const CHILD_VALUE: u64 = 7;
const CHILD_PANICKED: u64 = 1_001;
const CHILD_KILLED: u64 = 1_002;
const CHILD_SHUT_DOWN: u64 = 1_003;
const CHILD_OTHER: u64 = 1_004;
const CHILD_DROPPED: u64 = 1_005;

// ---- hostile values ---------------------------------------------------------------------------

/// One case's switch: its bombs go off only while it is armed. A failing case disarms it, so
/// that what it leaves behind (leaked runtimes, dead workers) stays quiet.
#[derive(Default)]
struct Case {
    armed: AtomicBool,
}

/// Panics when dropped, if live and its case armed, and never while already unwinding.
struct Bomb {
    case: Arc<Case>,
    live: bool,
    what: &'static str,
}

impl Bomb {
    fn new(case: &Arc<Case>, what: &'static str) -> Self {
        Self {
            case: case.clone(),
            live: true,
            what,
        }
    }

    fn defuse(&mut self) {
        self.live = false;
    }
}

impl Drop for Bomb {
    fn drop(&mut self) {
        if self.live && self.case.armed.load(SeqCst) && !thread::panicking() {
            panic!("planned panic in the drop of {}", self.what);
        }
    }
}

/// A panic payload whose drop panics (`panic_any`).
struct PayloadBomb(Bomb);

/// What every task returns: a value, and perhaps a bomb (an output that panics in drop).
struct Out {
    value: u64,
    bomb: Option<Bomb>,
}

/// Silences the planned panics: messages starting with "planned", and bomb payloads.
fn quiet() {
    common::quiet_planned_panics();
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !info.payload().is::<PayloadBomb>() {
                previous(info);
            }
        }));
    });
}

// ---- programs ---------------------------------------------------------------------------------

/// A task's one hostile behaviour.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Hostile {
    Returns,
    Sleeps(u8),
    PanicsInBody,
    PanicsInCaptureDrop,
    PanicsInOutputDrop,
    PanicsInPayloadDrop,
}

#[derive(Clone, Copy, Debug)]
enum Kind {
    /// A task of `OPS[op]` (plain, deadline or limited) behaving as `Hostile`.
    Op(usize, Hostile),
    /// `submit_retrying` of the `retrying` operation (2 retries): always panics, or panics
    /// once and then returns.
    Retrying { always_fails: bool },
    /// A task of `nest` that submits, from its worker, a child of `child` (or of
    /// `child_limited`, limit 1) behaving as `child`, then joins it or drops its handle.
    Nested {
        child: Hostile,
        limited: bool,
        join: bool,
    },
}

#[derive(Clone, Debug)]
enum Step {
    /// Submit from the test thread; `keep`: keep the handle (else drop it at once).
    Submit {
        kind: Kind,
        keep: bool,
    },
    /// Cancel the n-th kept handle (modulo).
    Cancel(usize),
    /// `kill(id)` of the n-th task (modulo), kept or not.
    Kill(usize),
    Pause,
    Resume,
    PauseOp(usize),
    ResumeOp(usize),
    /// `drain_operation` (skipped while anything is paused: a drain then waits for tasks that
    /// wait for the pause to lift, which only this thread could do).
    DrainOp(usize),
    KillOp(usize),
    Nap(u8),
}

#[derive(Clone, Copy, Debug)]
enum End {
    /// Resume everything, join every handle, then `shutdown()` and drop.
    Graceful,
    /// `shutdown_now()`, then join every handle and drop.
    ShutdownNow,
}

#[derive(Clone, Debug)]
struct Program {
    workers: usize,
    capacity: usize,
    steps: Vec<Step>,
    end: End,
}

fn hostile(capture: bool) -> BoxedStrategy<Hostile> {
    let mut options = vec![
        (3, Just(Hostile::Returns).boxed()),
        (1, (0u8..3).prop_map(Hostile::Sleeps).boxed()),
        (2, Just(Hostile::PanicsInBody).boxed()),
        (2, Just(Hostile::PanicsInOutputDrop).boxed()),
        (2, Just(Hostile::PanicsInPayloadDrop).boxed()),
    ];
    if capture {
        options.push((2, Just(Hostile::PanicsInCaptureDrop).boxed()));
    }
    proptest::strategy::Union::new_weighted(options).boxed()
}

fn kind() -> impl Strategy<Value = Kind> {
    prop_oneof![
        6 => (0usize..3, hostile(true)).prop_map(|(op, h)| Kind::Op(op, h)),
        1 => any::<bool>().prop_map(|always_fails| Kind::Retrying { always_fails }),
        // Children carry no capture bomb: a child refused after shutdown would drop it in its
        // parent's body, a case the model does not decide.
        2 => (hostile(false), any::<bool>(), any::<bool>())
            .prop_map(|(child, limited, join)| Kind::Nested { child, limited, join }),
    ]
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        10 => (kind(), prop::bool::weighted(0.6)).prop_map(|(kind, keep)| Step::Submit { kind, keep }),
        2 => any::<usize>().prop_map(Step::Cancel),
        2 => any::<usize>().prop_map(Step::Kill),
        1 => Just(Step::Pause),
        1 => Just(Step::Resume),
        1 => (0..OPS.len()).prop_map(Step::PauseOp),
        1 => (0..OPS.len()).prop_map(Step::ResumeOp),
        1 => (0..OPS.len()).prop_map(Step::DrainOp),
        1 => (0..OPS.len()).prop_map(Step::KillOp),
        1 => (0u8..3).prop_map(Step::Nap),
    ]
}

fn program() -> impl Strategy<Value = Program> {
    (
        1usize..3,
        0u32..4,
        prop::collection::vec(step(), 1..24),
        prop_oneof![Just(End::Graceful), Just(End::ShutdownNow)],
    )
        .prop_map(|(workers, capacity_log, steps, end)| Program {
            workers,
            capacity: 1 << capacity_log,
            steps,
            end,
        })
}

// ---- tasks ------------------------------------------------------------------------------------

/// What a task does once it runs (after its capture, if any, was defused).
fn act(case: &Arc<Case>, hostile: Hostile, value: u64) -> Out {
    match hostile {
        Hostile::Returns | Hostile::PanicsInCaptureDrop => Out { value, bomb: None },
        Hostile::Sleeps(ms) => {
            thread::sleep(Duration::from_millis(ms as u64));
            Out { value, bomb: None }
        }
        Hostile::PanicsInBody => panic!("planned panic in a task's body"),
        Hostile::PanicsInOutputDrop => Out {
            value,
            bomb: Some(Bomb::new(case, "an output")),
        },
        Hostile::PanicsInPayloadDrop => {
            std::panic::panic_any(PayloadBomb(Bomb::new(case, "a panic payload")))
        }
    }
}

/// Waits (bounded) until the test thread has dropped the task's handle, so that the worker,
/// not the test thread, holds the last reference to the output or payload.
fn wait_for(flag: &AtomicBool) {
    let start = Instant::now();
    while !flag.load(SeqCst) && start.elapsed() < PROMPTLY {
        thread::sleep(Duration::from_micros(100));
    }
}

/// A joined outcome, its bombs defused (the test thread is not the place for them to go off).
enum Seen {
    Value(u64),
    /// The task panicked: the payload's message ("a payload bomb" for a bomb).
    Panicked(String),
    Error(TaskError),
}

fn defuse(outcome: Result<Out, TaskError>) -> Seen {
    match outcome {
        Ok(mut out) => {
            if let Some(bomb) = out.bomb.as_mut() {
                bomb.defuse();
            }
            Seen::Value(out.value)
        }
        Err(TaskError::Panicked(payload)) => {
            let message = payload.message().to_string();
            match payload.into_inner().downcast::<PayloadBomb>() {
                Ok(mut bomb) => {
                    bomb.0.defuse();
                    Seen::Panicked("a payload bomb".into())
                }
                Err(_) => Seen::Panicked(message),
            }
        }
        Err(e) => Seen::Error(e),
    }
}

/// A nested parent's code for its joined child's outcome.
fn child_code(outcome: Result<Out, TaskError>) -> u64 {
    match defuse(outcome) {
        Seen::Value(v) => v,
        Seen::Panicked(_) => CHILD_PANICKED,
        Seen::Error(TaskError::Killed) => CHILD_KILLED,
        Seen::Error(TaskError::ShutDown) => CHILD_SHUT_DOWN,
        Seen::Error(_) => CHILD_OTHER,
    }
}

/// One submitted task, as the test thread knows it.
struct Rec {
    handle: Option<TaskHandle<Out>>,
    id: TaskId,
    kind: Kind,
    value: u64,
    runs: Arc<AtomicUsize>,
    cancelled: bool,
}

/// The step a case reached, for the "hung" message.
#[derive(Clone, Default)]
struct Steps(Arc<Mutex<String>>);

impl Steps {
    fn at(&self, step: impl Into<String>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = step.into();
    }

    fn last(&self) -> String {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(not a string)".into())
}

/// Calls an admin call or a handle method; a panic escaping it fails the case.
fn contained<R>(what: &str, f: impl FnOnce() -> R) -> Result<R, TestCaseError> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|p| {
        TestCaseError::fail(format!(
            "{what} let a panic escape: {:?}",
            panic_message(&*p)
        ))
    })
}

// ---- the model --------------------------------------------------------------------------------

/// A task just submitted: its handle and its count of runs (attempts).
type Submitted = (TaskHandle<Out>, Arc<AtomicUsize>);

/// Submits the task of `kind` from the test thread; `None` if the ring was full while
/// something was paused (then `try_submit` is used, and the closure is leaked unrun).
fn submit(
    rt: &Arc<Runtime>,
    case: &Arc<Case>,
    kind: Kind,
    value: u64,
    handle_gone: &Arc<AtomicBool>,
    anything_paused: bool,
) -> Result<Option<Submitted>, TestCaseError> {
    let runs = Arc::new(AtomicUsize::new(0));
    let r = runs.clone();
    let (op, task): (usize, Box<dyn FnOnce() -> Out + Send>) = match kind {
        Kind::Op(op, hostile) => {
            let mut capture = (hostile == Hostile::PanicsInCaptureDrop)
                .then(|| Bomb::new(case, "a captured value"));
            let (case, gone) = (case.clone(), handle_gone.clone());
            (
                op,
                Box::new(move || {
                    r.fetch_add(1, SeqCst);
                    if let Some(c) = capture.as_mut() {
                        c.defuse();
                    }
                    wait_for(&gone);
                    act(&case, hostile, value)
                }),
            )
        }
        Kind::Nested {
            child,
            limited,
            join,
        } => {
            let (case, rt) = (case.clone(), rt.clone());
            let child_op = if limited { CHILD_LIMITED } else { CHILD };
            (
                NEST,
                Box::new(move || {
                    r.fetch_add(1, SeqCst);
                    let c = case.clone();
                    let h = rt.submit(&OPS[child_op], move || act(&c, child, CHILD_VALUE));
                    let value = if join {
                        child_code(h.join())
                    } else {
                        drop(h);
                        CHILD_DROPPED
                    };
                    Out { value, bomb: None }
                }),
            )
        }
        Kind::Retrying { always_fails } => {
            if anything_paused {
                return Ok(None); // no try_submit_retrying: a blocking submit could wait forever
            }
            let h = rt.submit_retrying(&OPS[RETRYING], move || {
                if r.fetch_add(1, SeqCst) == 0 || always_fails {
                    panic!("planned panic in a retried attempt");
                }
                Out { value, bomb: None }
            });
            return Ok(Some((h, runs)));
        }
    };
    if !anything_paused {
        return Ok(Some((rt.submit(&OPS[op], task), runs)));
    }
    // Held tasks keep their tokens: a blocking submit could wait for a resume only this thread
    // can do.
    match rt.try_submit(&OPS[op], task) {
        Ok(h) => Ok(Some((h, runs))),
        Err(TrySubmitError::Full(task)) => {
            std::mem::forget(task); // its capture must not go off here
            Ok(None)
        }
        Err(e) => Err(TestCaseError::fail(format!("try_submit refused: {e:?}"))),
    }
}

/// Checks a joined handle's outcome against what its task did.
fn check(index: usize, rec: &Rec, outcome: Result<Out, TaskError>) -> Result<(), TestCaseError> {
    let runs = rec.runs.load(SeqCst);
    let kind = rec.kind;
    let shown = format!("task #{index} {kind:?}: runs {runs}");
    if rec.cancelled {
        prop_assert_eq!(runs, 0, "{}: ran after cancel said it never would", shown);
    }
    match defuse(outcome) {
        Seen::Value(value) => {
            match kind {
                Kind::Op(_, hostile) => {
                    prop_assert_eq!(runs, 1, "{}", shown);
                    prop_assert!(
                        !matches!(
                            hostile,
                            Hostile::PanicsInBody | Hostile::PanicsInPayloadDrop
                        ),
                        "{}: a panicking task resolved Ok",
                        shown
                    );
                    prop_assert_eq!(value, rec.value, "{}", shown);
                }
                Kind::Retrying { always_fails } => {
                    prop_assert!(
                        !always_fails,
                        "{}: an always-failing task resolved Ok",
                        shown
                    );
                    prop_assert_eq!(runs, 2, "{}", shown);
                    prop_assert_eq!(value, rec.value, "{}", shown);
                }
                Kind::Nested { child, join, .. } => {
                    prop_assert_eq!(runs, 1, "{}", shown);
                    let expected = match child {
                        _ if !join => CHILD_DROPPED,
                        Hostile::PanicsInBody | Hostile::PanicsInPayloadDrop => CHILD_PANICKED,
                        _ => CHILD_VALUE,
                    };
                    // A child may also be killed (drain, kill_operation, shutdown_now) or
                    // refused after shutdown.
                    prop_assert!(
                        value == expected
                            || (join && (value == CHILD_KILLED || value == CHILD_SHUT_DOWN)),
                        "{}: child outcome code {}, expected {}",
                        shown,
                        value,
                        expected
                    );
                }
            }
        }
        Seen::Panicked(message) => {
            prop_assert!(
                runs > 0,
                "{}: resolved Panicked ({}) without running",
                shown,
                message
            );
            let planned = message.starts_with("planned") || message == "a payload bomb";
            prop_assert!(planned, "{}: unexpected outcome {:?}", shown, message);
            match kind {
                Kind::Op(_, hostile) => {
                    prop_assert_eq!(runs, 1, "{}", shown);
                    prop_assert!(
                        matches!(
                            hostile,
                            Hostile::PanicsInBody | Hostile::PanicsInPayloadDrop
                        ),
                        "{}: resolved Panicked ({})",
                        shown,
                        message
                    );
                }
                Kind::Retrying { always_fails } => {
                    // Up to 1 + 2 attempts; a kill may stop the loop between attempts.
                    prop_assert!((1..=3).contains(&runs), "{}", shown);
                    prop_assert!(always_fails || runs == 1, "{}", shown);
                }
                Kind::Nested { child, join, .. } => {
                    // Only a parent that dropped a finished child's handle panics: the child's
                    // output or payload went off in the parent's own body, as user code does.
                    prop_assert!(
                        !join
                            && matches!(
                                child,
                                Hostile::PanicsInOutputDrop | Hostile::PanicsInPayloadDrop
                            )
                            && message.contains("planned panic in the drop of"),
                        "{}: resolved Panicked ({})",
                        shown,
                        message
                    );
                }
            }
        }
        Seen::Error(error) => {
            prop_assert_eq!(runs, 0, "{}: ran, yet resolved {:?}", shown, error);
            let expected = matches!(error, TaskError::Killed)
                || (error == TaskError::TimedOut && matches!(kind, Kind::Op(DEADLINE, _)));
            prop_assert!(expected, "{}: unexpected outcome {:?}", shown, error);
        }
    }
    Ok(())
}

/// Runs one program; the caller runs this under the watchdog.
fn run(program: Program, case: Arc<Case>, steps: Steps) -> Result<(), TestCaseError> {
    // Kept in a `ManuallyDrop`: a failing case leaks its runtime rather than hang in `Drop`.
    let rt = ManuallyDrop::new(Arc::new(
        Runtime::builder()
            .workers(program.workers)
            .pin(false)
            .capacity(program.capacity)
            .build()
            .unwrap(),
    ));
    let mut recs: Vec<Rec> = Vec::new();
    let mut paused = false;
    let mut paused_ops = [false; OPS.len()];
    for (i, step) in program.steps.iter().enumerate() {
        steps.at(format!("step {i}: {step:?}"));
        let anything_paused = paused || paused_ops.iter().any(|&p| p);
        match *step {
            Step::Submit { kind, keep } => {
                let value = 100 + recs.len() as u64;
                let gone = Arc::new(AtomicBool::new(keep));
                let Some((handle, runs)) = submit(&rt, &case, kind, value, &gone, anything_paused)?
                else {
                    continue;
                };
                let id = handle.id();
                let handle = if keep {
                    Some(handle)
                } else {
                    drop(handle);
                    gone.store(true, SeqCst);
                    None
                };
                recs.push(Rec {
                    handle,
                    id,
                    kind,
                    value,
                    runs,
                    cancelled: false,
                });
            }
            Step::Cancel(n) => {
                let kept: Vec<usize> = (0..recs.len())
                    .filter(|&i| recs[i].handle.is_some())
                    .collect();
                if let Some(&i) = kept.get(n % kept.len().max(1)) {
                    let h = recs[i].handle.as_ref().unwrap();
                    if contained("cancel", || h.cancel())? {
                        recs[i].cancelled = true;
                    }
                }
            }
            Step::Kill(n) if !recs.is_empty() => {
                let id = recs[n % recs.len()].id;
                contained("kill(id)", || rt.kill(id))?;
            }
            Step::Kill(_) => {}
            Step::Pause => {
                rt.pause();
                paused = true;
            }
            Step::Resume => {
                contained("resume", || rt.resume())?;
                paused = false;
            }
            Step::PauseOp(op) => {
                rt.pause_operation(OPS[op].name());
                paused_ops[op] = true;
            }
            Step::ResumeOp(op) => {
                contained("resume_operation", || rt.resume_operation(OPS[op].name()))?;
                paused_ops[op] = false;
            }
            Step::DrainOp(_) if anything_paused => {}
            Step::DrainOp(op) => {
                contained("drain_operation", || rt.drain_operation(OPS[op].name()))?;
            }
            Step::KillOp(op) => {
                contained("kill_operation", || rt.kill_operation(OPS[op].name()))?;
            }
            Step::Nap(ms) => thread::sleep(Duration::from_millis(ms as u64)),
        }
    }

    match program.end {
        End::Graceful => {
            steps.at("resuming everything");
            contained("resume", || rt.resume())?;
            for op in &OPS {
                contained("resume_operation", || rt.resume_operation(op.name()))?;
            }
        }
        End::ShutdownNow => {
            steps.at("shutdown_now");
            contained("shutdown_now", || rt.shutdown_now())?;
        }
    }

    for (i, rec) in recs.iter_mut().enumerate() {
        let Some(h) = rec.handle.take() else {
            continue;
        };
        steps.at(format!("joining task #{i} {:?}", rec.kind));
        prop_assert!(
            h.wait_timeout(PROMPTLY),
            "task #{} {:?} never resolved (state {:?})",
            i,
            rec.kind,
            h.state()
        );
        let outcome = contained("join", || h.join())?;
        check(i, rec, outcome)?;
    }

    steps.at("waiting for every token to come home");
    prop_assert!(
        common::eventually(PROMPTLY, || rt.stats().tokens_in_use == 0),
        "tokens never came home: {} of {} in use",
        rt.stats().tokens_in_use,
        rt.capacity()
    );
    if let End::Graceful = program.end {
        steps.at("try_submit of capacity tasks");
        let mut extra = Vec::new();
        for _ in 0..rt.capacity() {
            match rt.try_submit(&OPS[0], || 1u8) {
                Ok(h) => extra.push(h),
                Err(e) => prop_assert!(false, "a token is missing: try_submit gave {:?}", e),
            }
        }
        for h in extra {
            prop_assert_eq!(h.join(), Ok(1));
        }
    }

    steps.at("shutdown");
    contained("shutdown", || rt.shutdown())?;
    let stats = rt.stats();
    prop_assert_eq!(stats.tokens_in_use, 0);
    prop_assert_eq!(stats.held, 0);
    for o in &stats.operations {
        prop_assert_eq!(
            o.submitted,
            o.completed + o.failed + o.killed + o.timed_out,
            "the counts of {} do not add up: {:?}",
            o.name,
            o
        );
    }
    steps.at("drop(rt)");
    drop(ManuallyDrop::into_inner(rt));
    Ok(())
}

/// Runs `program` on a thread of its own; a hang or a panic fails the case (and disarms its
/// bombs: what a failed case leaves behind dies quietly).
fn run_watched(program: Program) -> Result<(), TestCaseError> {
    let case = Arc::new(Case::default());
    case.armed.store(true, SeqCst);
    let steps = Steps::default();
    let (c, s) = (case.clone(), steps.clone());
    let (tx, rx) = mpsc::channel();
    let body = thread::Builder::new()
        .name("hostile case".into())
        .spawn(move || {
            let _ = tx.send(run(program, c, s));
        })
        .expect("could not spawn a case's thread");
    let result = match rx.recv_timeout(CASE_LIMIT) {
        Ok(result) => {
            let _ = body.join();
            result
        }
        Err(RecvTimeoutError::Timeout) => Err(TestCaseError::fail(format!(
            "hung: no answer within {CASE_LIMIT:?}; stuck at {}",
            steps.last()
        ))),
        Err(RecvTimeoutError::Disconnected) => {
            let message = match body.join() {
                Err(p) => panic_message(&*p),
                Ok(()) => "no answer".into(),
            };
            Err(TestCaseError::fail(format!(
                "panicked at {}: {message}",
                steps.last()
            )))
        }
    };
    case.armed.store(false, SeqCst);
    result
}

fn config() -> ProptestConfig {
    // `default()` reads the PROPTEST_* environment variables; keep theirs when set.
    let mut config = ProptestConfig::default();
    if std::env::var_os("PROPTEST_CASES").is_none() {
        config.cases = 48;
    }
    // A failing case may be a hang, which costs its watchdog's time at every shrinking step:
    // bound the shrinking.
    if std::env::var_os("PROPTEST_MAX_SHRINK_ITERS").is_none() {
        config.max_shrink_iters = 32;
    }
    if std::env::var_os("PROPTEST_MAX_SHRINK_TIME").is_none() {
        config.max_shrink_time = 120_000;
    }
    config
}

#[test]
#[cfg_attr(
    miri,
    ignore = "thousands of tasks and threads: far too slow under miri"
)]
fn smoke() {
    quiet();
    let program = Program {
        workers: 1,
        capacity: 1,
        steps: vec![
            Step::Submit {
                kind: Kind::Op(0, Hostile::PanicsInBody),
                keep: true,
            },
            Step::Submit {
                kind: Kind::Op(0, Hostile::Returns),
                keep: true,
            },
            Step::Submit {
                kind: Kind::Nested {
                    child: Hostile::Returns,
                    limited: false,
                    join: true,
                },
                keep: true,
            },
        ],
        end: End::Graceful,
    };
    if let Err(e) = run_watched(program) {
        panic!("{e}");
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    #[cfg_attr(miri, ignore = "thousands of tasks and threads: far too slow under miri")]
    fn hostile_programs_keep_the_invariants(program in program()) {
        quiet();
        run_watched(program)?;
    }
}
