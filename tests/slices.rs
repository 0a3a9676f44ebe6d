//! Parallel slices (`Runtime::for_each`, `Runtime::map_reduce`), through the public API, under
//! the watchdog of `common`.

mod common;

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering::SeqCst};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::watchdog;

#[test]
fn smoke() {
    watchdog(|_| {
        let rt = common::runtime(2);
        let mut v = vec![1u32; 1_000];
        rt.for_each(&mut v, |x| *x += 1);
        assert!(v.iter().all(|&x| x == 2));
        assert_eq!(
            rt.map_reduce(&v, || 0u64, |&x| u64::from(x), |a, b| a + b),
            2_000
        );
    });
}

#[test]
fn every_element_is_visited_once_at_every_worker_count_and_size() {
    watchdog(|_| {
        for workers in [1, 2, 3] {
            let rt = Arc::new(common::runtime(workers));
            for len in [0, 1, 2, 3, 17, 1_000, 100_000] {
                let mut marks: Vec<AtomicU8> = (0..len).map(|_| AtomicU8::new(0)).collect();
                rt.for_each(&mut marks, |m| {
                    m.fetch_add(1, SeqCst);
                });
                assert!(marks.iter().all(|m| m.load(SeqCst) == 1), "len {len}");
                // The same from a worker of the runtime.
                let r = rt.clone();
                let ok = rt
                    .spawn(move || {
                        let mut v: Vec<u64> = (0..len as u64).collect();
                        r.for_each(&mut v, |x| *x += 1);
                        v.iter().enumerate().all(|(i, &x)| x == i as u64 + 1)
                    })
                    .join();
                assert_eq!(ok, Ok(true));
            }
        }
    });
}

#[test]
fn map_reduce_matches_the_serial_fold_in_order() {
    watchdog(|_| {
        let rt = common::runtime(2);
        let v: Vec<u64> = (0..1_000_000).collect();
        let sum = rt.map_reduce(&v, || 0u64, |&x| x, |a, b| a + b);
        assert_eq!(sum, v.iter().sum::<u64>());
        // Not commutative: pieces are combined left before right.
        let words: Vec<String> = (0..500).map(|i| i.to_string()).collect();
        let joined = rt.map_reduce(&words, String::new, |w| w.clone(), |a, b| a + &b);
        assert_eq!(joined, words.concat());
        let empty: [u8; 0] = [];
        assert_eq!(rt.map_reduce(&empty, || 7u32, |_| 1, |a, b| a + b), 7);
    });
}

/// The first element's call waits until an element of the second half was visited: only
/// another worker can have done that, by stealing the forked half.
#[test]
fn an_idle_worker_takes_half_the_slice() {
    watchdog(|_| {
        let rt = common::runtime(2);
        let len = 1_000;
        let right_seen = AtomicBool::new(false);
        let mut v: Vec<usize> = (0..len).collect();
        let start = Instant::now();
        rt.for_each(&mut v, |x| {
            if *x == 0 {
                while !right_seen.load(SeqCst) && start.elapsed() < Duration::from_secs(10) {
                    std::thread::yield_now();
                }
            } else if *x >= len / 2 {
                right_seen.store(true, SeqCst);
            }
        });
        assert!(right_seen.load(SeqCst));
        assert!(
            rt.stats()
                .workers
                .iter()
                .map(|w| w.forks_stolen)
                .sum::<u64>()
                >= 1
        );
    });
}

#[test]
fn a_panic_in_f_reaches_the_caller_after_the_other_pieces() {
    common::quiet_planned_panics();
    watchdog(|_| {
        let rt = Arc::new(common::runtime(2));
        let mut v: Vec<u32> = (0..10_000).collect();
        let caught = catch_unwind(AssertUnwindSafe(|| {
            rt.for_each(&mut v, |x| {
                if *x == 5_000 {
                    panic!("planned panic in for_each");
                }
                *x = u32::MAX;
            })
        }));
        let message = caught.err().and_then(|p| p.downcast_ref::<&str>().copied());
        assert_eq!(message, Some("planned panic in for_each"));
        // The pieces that did not panic finished: the last element is done.
        assert_eq!(v[9_999], u32::MAX);
        // The runtime goes on.
        assert_eq!(rt.map_reduce(&[1, 2, 3], || 0, |&x| x, |a, b| a + b), 6);
    });
}
