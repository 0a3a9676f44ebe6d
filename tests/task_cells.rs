//! Tasks in their tokens' cells, from many threads at once: handles kept, dropped, sent to
//! another thread and joined or dropped there after the runtime is gone. Every closure runs
//! once and every output is dropped once, whichever thread holds the last reference to its
//! task (the orphaned cell table is freed by the last of them; `scripts/tsan.sh` runs this
//! under ThreadSanitizer, and `tests/miri_smoke.rs` has a smaller version for miri, which
//! also reports leaks).

mod common;

use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc};
use std::thread;

use tokengate::TaskHandle;

/// Counts its drops.
struct Counted(Arc<AtomicUsize>);

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.fetch_add(1, SeqCst);
    }
}

#[test]
fn outcomes_outlive_their_runtime_across_threads_and_each_is_dropped_once() {
    let per_submitter = if cfg!(miri) { 16 } else { 2_000 };
    for round in 0..if cfg!(miri) { 1 } else { 5 } {
        let rt = Arc::new(common::runtime_with_capacity(2, 8));
        let runs = Arc::new(AtomicUsize::new(0));
        let drops = Arc::new(AtomicUsize::new(0));
        let (send, receive) = mpsc::channel::<TaskHandle<Counted>>();
        let submitters: Vec<_> = (0..2)
            .map(|s| {
                let (rt, runs, drops, send) =
                    (rt.clone(), runs.clone(), drops.clone(), send.clone());
                thread::spawn(move || {
                    for i in 0..per_submitter {
                        let (runs, drops) = (runs.clone(), drops.clone());
                        let h = rt.spawn(move || {
                            runs.fetch_add(1, SeqCst);
                            Counted(drops)
                        });
                        match (i + s + round) % 3 {
                            0 => drop(h),                 // detached: the worker drops the output
                            1 => send.send(h).unwrap(),   // another thread decides
                            _ => drop(h.join().unwrap()), // joined here
                        }
                    }
                })
            })
            .collect();
        drop(send);
        for s in submitters {
            s.join().unwrap();
        }
        // The runtime goes (its drop waits for every admitted task) while a third thread
        // still holds a third of the handles, whose tasks may sit in cells.
        let holder = thread::spawn(move || {
            let handles: Vec<_> = receive.iter().collect();
            handles
        });
        let handles = holder.join().unwrap();
        drop(Arc::try_unwrap(rt).unwrap_or_else(|_| panic!("the submitters are gone")));
        let total = 2 * per_submitter;
        assert_eq!(runs.load(SeqCst), total, "every closure ran once");
        let joiner = thread::spawn(move || {
            for (i, h) in handles.into_iter().enumerate() {
                if i % 2 == 0 {
                    drop(h.join().unwrap());
                } else {
                    drop(h);
                }
            }
        });
        joiner.join().unwrap();
        assert_eq!(drops.load(SeqCst), total, "every output dropped once");
    }
}
