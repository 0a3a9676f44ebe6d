//! A small end-to-end run of the runtime, sized for miri (`scripts/miri.sh`); also a plain test.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokengate::{Operation, Runtime, TaskError, Weight};

#[test]
fn smoke() {
    common::quiet_planned_panics();
    let rt = Runtime::builder()
        .workers(2)
        .pin(false)
        .capacity(4)
        .build()
        .unwrap();
    let count = Arc::new(AtomicUsize::new(0));
    let ops = [
        Operation::new("l").weight(Weight::Light),
        Operation::new("m"),
        Operation::new("h").weight(Weight::Heavy),
    ];
    let n = if cfg!(miri) { 12 } else { 3_000 };
    let handles: Vec<_> = (0..n)
        .map(|i| {
            let c = count.clone();
            rt.submit(&ops[i % 3], move || {
                if i % 5 == 4 {
                    panic!("planned panic {i}");
                }
                c.fetch_add(1, Ordering::Relaxed);
                i
            })
        })
        .collect();
    let cancelled = handles.iter().step_by(7).filter(|h| h.cancel()).count();
    let mut ok = 0;
    let mut panicked = 0;
    let mut killed = 0;
    for h in handles {
        match h.join() {
            Ok(_) => ok += 1,
            Err(TaskError::Panicked(_)) => panicked += 1,
            Err(TaskError::Killed) => killed += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(killed, cancelled);
    assert_eq!(ok + panicked + killed, n);
    assert_eq!(count.load(Ordering::Relaxed), ok);
    // Nested submit + join from a worker, and a scope.
    let rt = Arc::new(rt);
    let r = rt.clone();
    assert_eq!(
        rt.spawn(move || r.spawn(|| 2).join().unwrap() * 3).join(),
        Ok(6)
    );
    let data = [1, 2, 3];
    let total = rt.scope(|s| {
        let hs: Vec<_> = data.iter().map(|x| s.spawn(move || x * 2)).collect();
        hs.into_iter().map(|h| h.join().unwrap()).sum::<i32>()
    });
    assert_eq!(total, 12);
    rt.shutdown_now();
}
