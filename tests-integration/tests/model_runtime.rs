//! Random command sequences against the runtime (proptest), checking DESIGN.md's invariants:
//! every handle resolves exactly once; submitted = completed + failed + killed + shut down;
//! a task runs at most once, and not at all once `cancel` said it never will or after shutdown.

#[path = "../../tests/common/mod.rs"]
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use proptest::prelude::*;
use tokengate::{Operation, Runtime, TaskError, TaskHandle, TokenState, Weight};

const OPS: [Operation; 3] = [
    Operation::new("light").weight(Weight::Light),
    Operation::new("medium").weight(Weight::Medium),
    Operation::new("heavy").weight(Weight::Heavy),
];

#[derive(Clone, Debug)]
enum Command {
    /// Submit a task of weight `lane`; it panics if `panics`, and spins `work` rounds.
    Submit {
        lane: usize,
        panics: bool,
        work: u16,
    },
    /// Cancel the `n`-th handle (modulo how many there are).
    Cancel(usize),
    /// Shut down: gracefully, or killing queued tasks.
    Shutdown { now: bool },
}

fn command() -> impl Strategy<Value = Command> {
    prop_oneof![
        6 => (0usize..3, prop::bool::weighted(0.1), 0u16..2000)
            .prop_map(|(lane, panics, work)| Command::Submit { lane, panics, work }),
        2 => any::<usize>().prop_map(Command::Cancel),
        1 => any::<bool>().prop_map(|now| Command::Shutdown { now }),
    ]
}

struct Submitted {
    handle: TaskHandle<u64>,
    runs: Arc<AtomicUsize>,
    panics: bool,
    after_shutdown: bool,
    cancelled: bool,
}

#[test]
fn smoke() {
    let rt = common::runtime(2);
    assert_eq!(rt.spawn(|| 1u64).join(), Ok(1));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_commands_keep_the_invariants(
        workers in 1usize..3,
        capacity_log in 0u32..4,
        commands in prop::collection::vec(command(), 1..120),
    ) {
        common::quiet_planned_panics();
        let rt = Runtime::builder()
            .workers(workers)
            .pin(false)
            .capacity(1 << capacity_log)
            .build()
            .unwrap();
        let mut submitted: Vec<Submitted> = Vec::new();
        let mut shut_down = false;
        for command in commands {
            match command {
                Command::Submit { lane, panics, work } => {
                    let runs = Arc::new(AtomicUsize::new(0));
                    let r = runs.clone();
                    let handle = rt.submit(&OPS[lane], move || {
                        r.fetch_add(1, Ordering::SeqCst);
                        let mut x = work as u64;
                        for _ in 0..work {
                            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(1));
                        }
                        if panics {
                            panic!("planned panic");
                        }
                        x
                    });
                    submitted.push(Submitted { handle, runs, panics, after_shutdown: shut_down, cancelled: false });
                }
                Command::Cancel(n) if !submitted.is_empty() => {
                    let i = n % submitted.len();
                    if submitted[i].handle.cancel() {
                        submitted[i].cancelled = true;
                        prop_assert!(!submitted[i].handle.state().is_terminal() || matches!(
                            submitted[i].handle.state(),
                            TokenState::Killed | TokenState::TimedOut
                        ));
                    }
                }
                Command::Cancel(_) => {}
                Command::Shutdown { now } => {
                    if now { rt.shutdown_now() } else { rt.shutdown() }
                    shut_down = true;
                }
            }
        }
        drop(rt); // graceful shutdown: every admitted task has finished after this
        let (mut completed, mut failed, mut killed, mut refused) = (0, 0, 0, 0);
        let total = submitted.len();
        for s in submitted {
            let outcome = s.handle.join();
            let runs = s.runs.load(Ordering::SeqCst);
            prop_assert!(runs <= 1, "a task ran {} times", runs);
            match outcome {
                Ok(_) => { completed += 1; prop_assert_eq!(runs, 1); prop_assert!(!s.panics); }
                Err(TaskError::Panicked(_)) => { failed += 1; prop_assert_eq!(runs, 1); prop_assert!(s.panics); }
                Err(TaskError::Killed) => { killed += 1; prop_assert_eq!(runs, 0); }
                Err(TaskError::ShutDown) => { refused += 1; prop_assert_eq!(runs, 0); }
                Err(e) => prop_assert!(false, "unexpected outcome {}", e),
            }
            if s.cancelled {
                prop_assert_eq!(runs, 0, "a task ran after cancel said it never would");
            }
            if s.after_shutdown {
                prop_assert_eq!(runs, 0, "a task submitted after shutdown ran");
            }
        }
        prop_assert_eq!(completed + failed + killed + refused, total);
    }
}
