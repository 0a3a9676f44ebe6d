//! `join(a, b)`: fork-join on the stack, through the public API. Every test that could hang
//! on broken code runs under the watchdog of `common`.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::watchdog;
use tokengate::Runtime;

fn runtime(workers: usize) -> Arc<Runtime> {
    Arc::new(common::runtime(workers))
}

fn fib(rt: &Runtime, n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let (a, b) = rt.join(|| fib(rt, n - 1), || fib(rt, n - 2));
    a + b
}

/// Waits (spinning, bounded) until `flag` is set; returns whether it was.
fn wait_for(flag: &AtomicBool) -> bool {
    let start = Instant::now();
    while !flag.load(SeqCst) {
        if start.elapsed() > Duration::from_secs(10) {
            return false;
        }
        std::thread::yield_now();
    }
    true
}

#[test]
fn smoke() {
    watchdog(|_| {
        let rt = runtime(2);
        assert_eq!(rt.join(|| 1, || "two"), (1, "two"));
        let r = rt.clone();
        assert_eq!(rt.spawn(move || r.join(|| 3, || 4)).join(), Ok((3, 4)));
    });
}

#[test]
fn fib_with_join_on_workers() {
    watchdog(|_| {
        let rt = runtime(2);
        let r = rt.clone();
        assert_eq!(rt.spawn(move || fib(&r, 22)).join(), Ok(17_711));
        let forks: u64 = rt.stats().workers.iter().map(|w| w.forks).sum();
        assert!(forks >= 17_710, "every join on a worker forks: {forks}");
        // From outside: the pair goes to a worker, which forks the rest.
        assert_eq!(fib(&rt, 18), 2_584);
    });
}

#[test]
fn one_worker_runtime() {
    watchdog(|_| {
        let rt = runtime(1);
        let r = rt.clone();
        assert_eq!(rt.spawn(move || fib(&r, 20)).join(), Ok(6_765));
        assert_eq!(fib(&rt, 15), 610);
        let w = &rt.stats().workers[0];
        assert_eq!(w.forks_stolen, 0, "nobody to steal");
        assert!(w.forks > 0);
    });
}

#[test]
fn closures_borrow_from_the_stack() {
    watchdog(|_| {
        let rt = runtime(2);
        let r = rt.clone();
        let out = rt
            .spawn(move || {
                let mut data: Vec<u64> = (0..10_000).collect();
                let total = 7u64;
                let (left, right) = data.split_at_mut(5_000);
                let (a, b) = r.join(
                    || {
                        left.iter_mut().for_each(|x| *x += total);
                        left.len()
                    },
                    || {
                        right.iter_mut().for_each(|x| *x *= 2);
                        right.len()
                    },
                );
                (a, b, data[0], data[4_999], data[5_000], data[9_999])
            })
            .join();
        assert_eq!(out, Ok((5_000, 5_000, 7, 5_006, 10_000, 19_998)));
    });
}

/// `b` cannot run on the forking worker while `a` spins waiting for it: a thief must steal
/// it (and be woken to, if it slept), and it is counted.
#[test]
fn an_idle_worker_steals_the_fork() {
    watchdog(|_| {
        let rt = runtime(2);
        std::thread::sleep(Duration::from_millis(50)); // let the workers go to sleep
        let r = rt.clone();
        let stolen = rt
            .spawn(move || {
                let ran = AtomicBool::new(false);
                let (seen, on) = r.join(
                    || wait_for(&ran),
                    || {
                        ran.store(true, SeqCst);
                        tokengate::current_worker()
                    },
                );
                (seen, on != tokengate::current_worker())
            })
            .join();
        assert_eq!(stolen, Ok((true, true)));
        let stats = rt.stats();
        assert_eq!(stats.workers.iter().map(|w| w.forks_stolen).sum::<u64>(), 1);
    });
}

#[test]
fn a_panic_in_a_is_raised_after_b_completes() {
    common::quiet_planned_panics();
    watchdog(|_| {
        let rt = runtime(2);
        for on_worker in [true, false] {
            let r = rt.clone();
            let run = move || {
                let b_done = AtomicBool::new(false);
                let caught = catch_unwind(AssertUnwindSafe(|| {
                    r.join(
                        || -> u32 { panic!("planned panic in a") },
                        || {
                            std::thread::sleep(Duration::from_millis(20));
                            b_done.store(true, SeqCst);
                        },
                    )
                }));
                let message = caught
                    .err()
                    .and_then(|p| p.downcast_ref::<&str>().map(|s| s.to_string()));
                (message, b_done.load(SeqCst))
            };
            let (message, b_done) = if on_worker {
                rt.spawn(run).join().unwrap()
            } else {
                run()
            };
            assert_eq!(message.as_deref(), Some("planned panic in a"));
            assert!(b_done, "b finished before the panic reached the caller");
        }
    });
}

#[test]
fn a_panic_in_b_is_raised_after_a_completes() {
    common::quiet_planned_panics();
    watchdog(|_| {
        let rt = runtime(2);
        let r = rt.clone();
        let (message, a_done) = rt
            .spawn(move || {
                let a_done = AtomicBool::new(false);
                let caught = catch_unwind(AssertUnwindSafe(|| {
                    r.join(
                        || {
                            std::thread::sleep(Duration::from_millis(20));
                            a_done.store(true, SeqCst);
                        },
                        || -> u32 { panic!("planned panic in b") },
                    )
                }));
                let message = caught
                    .err()
                    .and_then(|p| p.downcast_ref::<&str>().map(|s| s.to_string()));
                (message, a_done.load(SeqCst))
            })
            .join()
            .unwrap();
        assert_eq!(message.as_deref(), Some("planned panic in b"));
        assert!(a_done);
        // Both panic: a's panic wins, and the worker lives on.
        let r = rt.clone();
        let message = rt
            .spawn(move || {
                let caught = catch_unwind(AssertUnwindSafe(|| {
                    r.join(
                        || -> u8 { panic!("planned first") },
                        || -> u8 { panic!("planned second") },
                    )
                }));
                caught.err().and_then(|p| p.downcast_ref::<&str>().copied())
            })
            .join()
            .unwrap();
        assert_eq!(message, Some("planned first"));
        assert_eq!(rt.spawn(|| 5).join(), Ok(5));
    });
}

/// Panics in `Drop` (once the thread is not already unwinding).
struct Bomb(&'static str);

impl Drop for Bomb {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("{}", self.0);
        }
    }
}

#[test]
fn a_capture_whose_drop_panics_is_that_closures_panic() {
    common::quiet_planned_panics();
    watchdog(|_| {
        let rt = runtime(2);
        for stolen in [false, true] {
            let r = rt.clone();
            let (message, a_done) = rt
                .spawn(move || {
                    let a_done = AtomicBool::new(false);
                    let b_started = AtomicBool::new(false);
                    let bomb = Bomb("planned drop of b's capture");
                    let caught = catch_unwind(AssertUnwindSafe(|| {
                        r.join(
                            || {
                                if stolen {
                                    wait_for(&b_started);
                                }
                                a_done.store(true, SeqCst);
                            },
                            {
                                let b_started = &b_started;
                                move || {
                                    b_started.store(true, SeqCst);
                                    let _bomb = bomb; // dropped as b returns
                                    1
                                }
                            },
                        )
                    }));
                    let message = caught
                        .err()
                        .and_then(|p| p.downcast_ref::<String>().cloned());
                    (message, a_done.load(SeqCst))
                })
                .join()
                .unwrap();
            assert_eq!(message.as_deref(), Some("planned drop of b's capture"));
            assert!(a_done);
        }
        assert_eq!(rt.spawn(|| 6).join(), Ok(6));
    });
}

fn deep(rt: &Runtime, depth: usize) -> usize {
    if depth == 0 {
        return 0;
    }
    let (a, b) = rt.join(|| deep(rt, depth - 1), || 1);
    a + b
}

#[test]
fn ten_thousand_nested_joins() {
    watchdog(|_| {
        let rt = Arc::new(
            Runtime::builder()
                .workers(2)
                .pin(false)
                .stack_size(256 << 20)
                .build()
                .unwrap(),
        );
        let r = rt.clone();
        assert_eq!(rt.spawn(move || deep(&r, 10_000)).join(), Ok(10_000));
        // Deeper than the job deque holds: the rest ran inline, still counted right.
        let forks: u64 = rt.stats().workers.iter().map(|w| w.forks).sum();
        assert!(
            (1_000..=10_000).contains(&forks),
            "forks up to the deque's depth, the rest inline: {forks}"
        );
    });
}

#[test]
fn join_from_a_worker_of_another_runtime_keeps_serving_its_own() {
    watchdog(|_| {
        let ours = runtime(1);
        let theirs = runtime(2);
        let (o, t) = (ours.clone(), theirs.clone());
        // Our only worker blocks in `theirs.join`; the pair needs a task of ours to finish,
        // which only our worker can run: it must keep serving while it waits.
        let out = ours
            .spawn(move || {
                let o2 = o.clone();
                t.join(move || o2.spawn(|| 40).join().unwrap(), || 2)
            })
            .join();
        assert_eq!(out, Ok((40, 2)));
    });
}

#[test]
fn the_free_function_off_any_worker_uses_the_global_runtime() {
    watchdog(|_| {
        fn tree(n: u32) -> u64 {
            if n == 0 {
                return 1;
            }
            let (a, b) = tokengate::join(|| tree(n - 1), || tree(n - 1));
            a + b
        }
        assert_eq!(tokengate::current_worker(), None);
        assert_eq!(tree(10), 1_024);
        // On a worker of a runtime, the free function forks there.
        let rt = runtime(2);
        assert_eq!(rt.spawn(|| tree(8)).join(), Ok(256));
        assert!(rt.stats().workers.iter().map(|w| w.forks).sum::<u64>() >= 255);
    });
}

#[test]
fn shutdown_while_forks_are_in_flight() {
    watchdog(|_| {
        for now in [false, true] {
            let rt = runtime(2);
            let started = Arc::new(AtomicUsize::new(0));
            let handles: Vec<_> = (0..8)
                .map(|_| {
                    let (r, started) = (rt.clone(), started.clone());
                    rt.spawn(move || {
                        started.fetch_add(1, SeqCst);
                        fib(&r, 20)
                    })
                })
                .collect();
            while started.load(SeqCst) == 0 {
                std::thread::yield_now();
            }
            if now {
                rt.shutdown_now();
            } else {
                rt.shutdown();
            }
            for h in handles {
                match h.join() {
                    Ok(v) => assert_eq!(v, 6_765),
                    Err(e) => assert!(now, "graceful shutdown runs every task: {e}"),
                }
            }
            // After shutdown, a join still returns both results (run on the caller).
            assert_eq!(rt.join(|| 1, || 2), (1, 2));
            assert_eq!(fib(&rt, 10), 55);
        }
    });
}

/// The path the panic tests rarely take: `b` stolen and running on the other worker when `a`
/// panics. The owner must wait for the thief before it unwinds out of the frame holding `b`'s
/// job; the caller then gets `a`'s panic, with `b` finished.
#[test]
fn a_panic_in_a_while_b_runs_on_a_thief_waits_for_b() {
    common::quiet_planned_panics();
    watchdog(|_| {
        let rt = Arc::new(common::runtime(2));
        let r = Arc::clone(&rt);
        let (message, b_done) = rt
            .spawn(move || {
                let started = AtomicBool::new(false);
                let b_done = AtomicBool::new(false);
                let caught = catch_unwind(AssertUnwindSafe(|| {
                    r.join(
                        || -> u8 {
                            let t = Instant::now();
                            while !started.load(SeqCst) && t.elapsed() < Duration::from_secs(10) {
                                std::thread::yield_now();
                            }
                            assert!(started.load(SeqCst), "b was never stolen");
                            panic!("planned: a fails while b runs")
                        },
                        || {
                            started.store(true, SeqCst);
                            std::thread::sleep(Duration::from_millis(50));
                            b_done.store(true, SeqCst);
                        },
                    )
                }));
                let message = caught
                    .err()
                    .and_then(|p| p.downcast_ref::<&str>().map(|s| s.to_string()));
                (message, b_done.load(SeqCst))
            })
            .join()
            .unwrap();
        assert_eq!(message.as_deref(), Some("planned: a fails while b runs"));
        assert!(b_done, "b finished before the panic left the join");
    });
}
