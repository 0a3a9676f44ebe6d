//! The order of tasks a worker submits: newest first by default (its local deque), first-in
//! first-out with `spawn_fifo` / `Scope::spawn_fifo` / `Operation::fifo` (its mailbox), as
//! rayon's `spawn_fifo` and `scope_fifo` order tests check. One worker, so the order is the
//! worker's alone; the submitting task returns before the others run (or waits in a scope,
//! where the worker runs them meanwhile).

mod common;

use std::sync::{Arc, Mutex};

use common::watchdog;
use tokengate::{Operation, Runtime};

type Order = Arc<Mutex<Vec<usize>>>;

fn one_worker() -> Arc<Runtime> {
    Arc::new(common::runtime(1))
}

/// Runs `body` as a task on `rt`'s worker and waits for every task it returns.
fn from_the_worker(
    rt: &Arc<Runtime>,
    body: impl FnOnce(&Runtime) -> Vec<tokengate::TaskHandle<()>> + Send + 'static,
) {
    let r = rt.clone();
    let handles = rt.spawn(move || body(&r)).join().unwrap();
    for h in handles {
        h.join().unwrap();
    }
}

fn push(order: &Order, i: usize) -> impl FnOnce() + Send + 'static {
    let order = order.clone();
    move || order.lock().unwrap().push(i)
}

#[test]
fn smoke() {
    watchdog(|_| {
        let rt = one_worker();
        let order = Order::default();
        let o = order.clone();
        from_the_worker(&rt, move |r| {
            vec![r.spawn_fifo(push(&o, 0)), r.spawn_fifo(push(&o, 1))]
        });
        assert_eq!(*order.lock().unwrap(), [0, 1]);
    });
}

#[test]
fn spawn_fifo_runs_in_submission_order() {
    watchdog(|_| {
        let rt = one_worker();
        let order = Order::default();
        let o = order.clone();
        from_the_worker(&rt, move |r| {
            (0..10).map(|i| r.spawn_fifo(push(&o, i))).collect()
        });
        assert_eq!(*order.lock().unwrap(), (0..10).collect::<Vec<_>>());
    });
}

#[test]
fn spawn_runs_newest_first() {
    watchdog(|_| {
        let rt = one_worker();
        let order = Order::default();
        let o = order.clone();
        from_the_worker(&rt, move |r| {
            (0..10).map(|i| r.spawn(push(&o, i))).collect()
        });
        assert_eq!(*order.lock().unwrap(), (0..10).rev().collect::<Vec<_>>());
    });
}

#[test]
fn a_fifo_operation_of_any_name_runs_in_submission_order() {
    watchdog(|_| {
        const HEAVY_IN_ORDER: Operation = Operation::new("heavy_in_order")
            .weight(tokengate::Weight::Heavy)
            .fifo();
        let rt = one_worker();
        let order = Order::default();
        let o = order.clone();
        from_the_worker(&rt, move |r| {
            (0..10)
                .map(|i| r.submit(&HEAVY_IN_ORDER, push(&o, i)))
                .collect()
        });
        assert_eq!(*order.lock().unwrap(), (0..10).collect::<Vec<_>>());
    });
}

/// Each FIFO task spawns FIFO children: breadth first, so the children run in order after
/// every parent (rayon's `nested_fifo_order`).
#[test]
fn nested_spawn_fifo_runs_breadth_first() {
    watchdog(|_| {
        let rt = one_worker();
        let order = Order::default();
        let o = order.clone();
        let r2 = rt.clone();
        let r3 = rt.clone();
        let parents = rt
            .spawn(move || {
                (0..4)
                    .map(|i| {
                        let (o, r) = (o.clone(), r3.clone());
                        r2.spawn_fifo(move || {
                            o.lock().unwrap().push(i * 10);
                            (1..4)
                                .map(|j| r.spawn_fifo(push(&o, i * 10 + j)))
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect::<Vec<_>>()
            })
            .join()
            .unwrap();
        for p in parents {
            for child in p.join().unwrap() {
                child.join().unwrap();
            }
        }
        assert_eq!(
            *order.lock().unwrap(),
            [0, 10, 20, 30, 1, 2, 3, 11, 12, 13, 21, 22, 23, 31, 32, 33]
        );
    });
}

/// A scope on the worker: its FIFO tasks run in spawn order while the scope waits (rayon's
/// `scope_fifo` order).
#[test]
fn scope_spawn_fifo_runs_in_spawn_order() {
    watchdog(|_| {
        let rt = one_worker();
        let r = rt.clone();
        let order = rt
            .spawn(move || {
                let order = Mutex::new(Vec::new());
                r.scope(|s| {
                    for i in 0..10 {
                        let order = &order;
                        let _ = s.spawn_fifo(move || order.lock().unwrap().push(i));
                    }
                });
                order.into_inner().unwrap()
            })
            .join()
            .unwrap();
        assert_eq!(order, (0..10).collect::<Vec<_>>());
    });
}

/// FIFO and newest-first tasks mixed: the worker takes its mailbox (the FIFO tasks, in
/// order) before its local deque (the others, newest first).
#[test]
fn mixed_fifo_tasks_run_before_the_newest_first_ones() {
    watchdog(|_| {
        let rt = one_worker();
        let order = Order::default();
        let o = order.clone();
        from_the_worker(&rt, move |r| {
            (0..8)
                .map(|i| {
                    if i % 2 == 0 {
                        r.spawn_fifo(push(&o, i))
                    } else {
                        r.spawn(push(&o, i))
                    }
                })
                .collect()
        });
        assert_eq!(*order.lock().unwrap(), [0, 2, 4, 6, 7, 5, 3, 1]);
    });
}
