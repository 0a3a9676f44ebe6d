//! Tasks in their tokens' cells: one cell carrying tasks of every shape in turn (captures of
//! nothing, over-aligned, large, scoped ones differing only by lifetime); and from many
//! threads at once: handles kept, dropped, sent to another thread and joined or dropped there
//! after the runtime is gone. Every closure runs
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

/// One token's cell carries tasks of many types in turn (two tokens, so each is reused at
/// once): a closure capturing nothing, an over-aligned capture (on the heap: a cell aligns
/// to 64), a large one (on the heap), and scoped closures of one type that differ only by
/// the lifetime of what they borrow. Each task's own type drops it: every value comes back
/// right, and every capture is dropped once.
/// A closure whose type differs between calls only by the lifetime of `data`.
fn summing(data: &[u64]) -> impl FnOnce() -> u64 + Send + '_ {
    move || data.iter().sum()
}

#[test]
fn a_cell_carries_tasks_of_every_shape_in_turn() {
    #[repr(align(128))]
    struct OverAligned(u64);
    let rounds = if cfg!(miri) { 4 } else { 500 };
    let rt = common::runtime_with_capacity(1, 2);
    let drops = Arc::new(AtomicUsize::new(0));
    for round in 0..rounds as u64 {
        assert_eq!(rt.spawn(|| ()).join(), Ok(()));
        let aligned = OverAligned(round);
        assert_eq!(rt.spawn(move || aligned.0 + 1).join(), Ok(round + 1));
        let big = [round; 64];
        assert_eq!(
            rt.spawn(move || big.iter().sum::<u64>()).join(),
            Ok(64 * round)
        );
        let counted = Counted(drops.clone());
        assert_eq!(
            rt.spawn(move || {
                let _keep = &counted;
                round * 2
            })
            .join(),
            Ok(round * 2)
        );
        // Scoped: one closure type (from `summing`) over borrows of two lifetimes.
        let outer_data = vec![round; 3];
        let total = {
            let inner_data = [round; 2];
            rt.scope(|s| {
                let outer = s.spawn(summing(&outer_data));
                let inner = s.spawn(summing(&inner_data));
                outer.join().unwrap() + inner.join().unwrap()
            })
        };
        assert_eq!(total, 5 * round);
    }
    assert_eq!(drops.load(SeqCst), rounds, "each capture dropped once");
}
