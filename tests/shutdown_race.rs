//! Shutdown racing with submitters, cancels and panics: every handle resolves, and the
//! accounting adds up.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokengate::TaskError;

#[derive(Default, Debug, PartialEq)]
struct Tally {
    ok: usize,
    panicked: usize,
    killed: usize,
    shut_down: usize,
}

fn race(kill: bool) {
    common::quiet_planned_panics();
    let rt = Arc::new(common::runtime_with_capacity(2, 64));
    let ran = Arc::new(AtomicUsize::new(0));
    let per_thread = if cfg!(miri) { 20 } else { 20_000 };
    let submitters: Vec<_> = (0..3)
        .map(|t| {
            let (rt, ran) = (rt.clone(), ran.clone());
            std::thread::spawn(move || {
                let mut tally = Tally::default();
                let mut handles = Vec::new();
                for i in 0..per_thread {
                    // The last tenth of each thread's submissions surely comes after the
                    // shutdown (which races with the rest): they must all be refused.
                    if i == per_thread - per_thread / 10 {
                        while !rt.is_shut_down() {
                            std::thread::yield_now();
                        }
                    }
                    let ran = ran.clone();
                    let h = rt.spawn(move || {
                        ran.fetch_add(1, Ordering::Relaxed);
                        if (i + t) % 101 == 0 {
                            panic!("planned");
                        }
                    });
                    if i % 13 == 0 {
                        let _ = h.cancel();
                    }
                    handles.push(h);
                }
                for h in handles {
                    match h.join() {
                        Ok(()) => tally.ok += 1,
                        Err(TaskError::Panicked(_)) => tally.panicked += 1,
                        Err(TaskError::Killed) => tally.killed += 1,
                        Err(TaskError::ShutDown) => tally.shut_down += 1,
                        Err(e) => panic!("unexpected {e}"),
                    }
                }
                tally
            })
        })
        .collect();
    // Shut down while the submitters are mid-stream.
    while ran.load(Ordering::Relaxed) < per_thread / 2 {
        std::thread::yield_now();
    }
    if kill {
        rt.shutdown_now();
    } else {
        rt.shutdown();
    }
    let mut total = Tally::default();
    for s in submitters {
        let t = s.join().unwrap();
        total.ok += t.ok;
        total.panicked += t.panicked;
        total.killed += t.killed;
        total.shut_down += t.shut_down;
    }
    assert_eq!(
        total.ok + total.panicked + total.killed + total.shut_down,
        3 * per_thread,
        "{total:?}"
    );
    // Exactly the tasks that report having run ran.
    assert_eq!(
        ran.load(Ordering::Relaxed),
        total.ok + total.panicked,
        "{total:?}"
    );
    assert!(total.shut_down >= 3 * (per_thread / 10), "{total:?}");
}

#[test]
fn smoke() {
    let rt = common::runtime(1);
    rt.shutdown();
    assert_eq!(rt.spawn(|| 1).join(), Err(TaskError::ShutDown));
}

#[test]
fn graceful_shutdown_racing_submitters_loses_nothing() {
    race(false);
}

#[test]
fn shutdown_now_racing_submitters_loses_nothing() {
    race(true);
}
