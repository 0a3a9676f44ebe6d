//! The workloads of the instruction-count benchmark (`scripts/instructions.sh` runs each under
//! `valgrind --tool=callgrind` at two sizes and divides the difference of the instruction
//! totals by the difference of the sizes, so that start-up and shut-down cancel).
//!
//! ```text
//! icount <mode> <size>
//! ```
//!
//! | mode | size | what runs, on one worker thread |
//! | --- | --- | --- |
//! | `serial` | `k` | `fib(k)` by plain recursion, leaves below `fib(3)`: the work, to subtract |
//! | `join` | `k` | `fib(k)` with `tokengate::join` at every call from `fib(3)` up, in a task |
//! | `handle` | `k` | the same with `submit` of one half and the handle's `join` |
//! | `fifo` | `k` | the same with `spawn_fifo` (the worker's mailbox, not its deque) |
//! | `free` | `k` | the same with `tokengate::spawn` (the worker's own runtime: no `Arc<Runtime>` cloned into each fork) |
//! | `rayon` | `k` | the same with `rayon::join` in `install` on a 1-thread pool |
//! | `chili` | `k` | the same with `chili::Scope::join` on a 1-thread pool |
//! | `submit` | `n` | `n` empty tasks from the main thread to a 1-worker runtime, handles dropped (a ring with room for all: each token and its task cell used once) |
//! | `joined` | `n` | `n` empty tasks from the main thread to a 1-worker runtime of 1,024 tokens, every handle kept, then all joined (most tasks find their token's cell held by an outcome not yet joined, and go on the heap) |
//! | `batch` | `n` | the `submit` tasks through one `submit_batch`, handles dropped |
//! | `submit_reuse` | `n` | the same on a 4,096-token ring: tokens and their cells used again and again, the submitter waiting when the ring is dry |
//! | `channel` | `n` | `n` empty boxed closures sent to a 1-thread crossbeam-channel pool |
//!
//! It prints the number of forks (for `fib(k)`: the calls from `fib(3)` up) or tasks.

use std::hint::black_box;
use std::num::NonZeroUsize;
use std::sync::Arc;

use tokengate::Runtime;

/// Below this, `fib` is computed serially (a leaf).
const CUTOFF: u32 = 3;

#[inline(never)]
fn leaf(n: u32) -> u64 {
    // fib(0) = 0, fib(1) = fib(2) = 1.
    black_box(u64::from(black_box(n) != 0))
}

fn serial(n: u32) -> u64 {
    if n < CUTOFF {
        return leaf(n);
    }
    black_box(serial(n - 1)) + black_box(serial(n - 2))
}

fn join(n: u32) -> u64 {
    if n < CUTOFF {
        return leaf(n);
    }
    let (a, b) = tokengate::join(|| join(n - 1), || join(n - 2));
    a + b
}

/// `FIFO`: with `spawn_fifo` instead of `spawn` (a parameter of the type, so that each
/// variant is the same code as a program using only it).
fn handle<const FIFO: bool>(rt: &Arc<Runtime>, n: u32) -> u64 {
    if n < CUTOFF {
        return leaf(n);
    }
    let inner = rt.clone();
    let half = move || handle::<FIFO>(&inner, n - 2);
    let b = if FIFO {
        rt.spawn_fifo(half)
    } else {
        rt.spawn(half)
    };
    let a = handle::<FIFO>(rt, n - 1);
    a + b.join().expect("a fib task ran")
}

/// [`handle`] through `tokengate::spawn`, which needs no runtime at hand.
fn free(n: u32) -> u64 {
    if n < CUTOFF {
        return leaf(n);
    }
    let b = tokengate::spawn(move || free(n - 2));
    let a = free(n - 1);
    a + b.join().expect("a fib task ran")
}

fn rayon(n: u32) -> u64 {
    if n < CUTOFF {
        return leaf(n);
    }
    let (a, b) = rayon::join(|| rayon(n - 1), || rayon(n - 2));
    a + b
}

fn chili(s: &mut chili::Scope<'_>, n: u32) -> u64 {
    if n < CUTOFF {
        return leaf(n);
    }
    let (a, b) = s.join(|s| chili(s, n - 1), |s| chili(s, n - 2));
    a + b
}

/// Calls of `fib(k)` at or above the cut-off.
fn forks(k: u32) -> u64 {
    let (mut below, mut last) = (0u64, 0u64);
    for _ in CUTOFF..=k {
        (below, last) = (last, 1 + last + below);
    }
    last
}

fn one_worker(capacity: usize) -> Arc<Runtime> {
    Arc::new(
        Runtime::builder()
            .workers(1)
            .pin(false)
            .capacity(capacity)
            .build()
            .expect("a one-worker runtime builds"),
    )
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(mode), Some(size)) = (args.next(), args.next()) else {
        eprintln!(
            "usage: icount <serial|join|handle|fifo|free|rayon|chili|submit|submit_reuse|joined|batch|channel> <size>"
        );
        std::process::exit(2);
    };
    let size: u32 = size.parse().expect("size: a number");
    let expected = || fib_value(size);
    let count = match mode.as_str() {
        "serial" => {
            assert_eq!(serial(size), expected());
            forks(size)
        }
        "join" => {
            let rt = one_worker(1024);
            assert_eq!(rt.spawn(move || join(size)).join(), Ok(expected()));
            forks(size)
        }
        "handle" => {
            let rt = one_worker(1024);
            let inner = rt.clone();
            let root = rt.spawn(move || handle::<false>(&inner, size));
            assert_eq!(root.join(), Ok(expected()));
            forks(size)
        }
        "fifo" => {
            let rt = one_worker(1024);
            let inner = rt.clone();
            let root = rt.spawn(move || handle::<true>(&inner, size));
            assert_eq!(root.join(), Ok(expected()));
            forks(size)
        }
        "free" => {
            let rt = one_worker(1024);
            assert_eq!(rt.spawn(move || free(size)).join(), Ok(expected()));
            forks(size)
        }
        "rayon" => {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(1)
                .build()
                .expect("a rayon pool builds");
            assert_eq!(pool.install(|| rayon(size)), expected());
            forks(size)
        }
        "chili" => {
            let pool = chili::ThreadPool::with_config(chili::Config {
                thread_count: NonZeroUsize::new(1),
                ..chili::Config::default()
            });
            assert_eq!(chili(&mut pool.scope(), size), expected());
            forks(size)
        }
        "submit" | "submit_reuse" => {
            // `submit`: room for every task, so the submitter never waits for a token (and
            // each token and its cell is used once). `submit_reuse`: 4,096 tokens, each used
            // again and again (its cell too), the submitter waiting whenever the ring is dry.
            let capacity = if mode == "submit" {
                (size as usize + 1).next_power_of_two()
            } else {
                4096
            };
            let rt = one_worker(capacity);
            for i in 0..size {
                drop(rt.spawn(move || {
                    black_box(i);
                }));
            }
            // One worker, one lane: the tasks run in order, so this one runs last.
            rt.spawn(|| ()).join().expect("the last task ran");
            u64::from(size)
        }
        "joined" => {
            // Every handle kept, then every one joined: far more tasks than the 1,024 tokens,
            // so most outcomes wait in their cells and most tasks find their token's cell
            // held (then on the heap).
            let rt = one_worker(1024);
            let handles: Vec<_> = (0..size)
                .map(|i| {
                    rt.spawn(move || {
                        black_box(i);
                    })
                })
                .collect();
            for h in handles {
                h.join().expect("a task ran");
            }
            u64::from(size)
        }
        "batch" => {
            // The same tasks through `submit_batch` (chunks of 64: one claim of the ring's
            // head, one fence and one clock read per chunk), handles dropped.
            let rt = one_worker((size as usize + 1).next_power_of_two());
            drop(rt.submit_batch(
                &tokengate::Operation::DEFAULT,
                (0..size).map(|i| {
                    move || {
                        black_box(i);
                    }
                }),
            ));
            rt.spawn(|| ()).join().expect("the last task ran");
            u64::from(size)
        }
        "channel" => {
            type Job = Box<dyn FnOnce() + Send>;
            let (tx, rx) = crossbeam_channel::unbounded::<Job>();
            let worker = std::thread::spawn(move || {
                for job in rx {
                    job();
                }
            });
            for i in 0..size {
                tx.send(Box::new(move || {
                    black_box(i);
                }))
                .expect("the worker lives");
            }
            drop(tx);
            worker.join().expect("the worker ran every task");
            u64::from(size)
        }
        other => {
            eprintln!("unknown mode {other}");
            std::process::exit(2);
        }
    };
    println!("{mode} {size}: {count}");
}

/// `fib(k)`, what the fork modes must compute.
fn fib_value(k: u32) -> u64 {
    let (mut a, mut b) = (0u64, 1u64);
    for _ in 0..k {
        (a, b) = (b, a + b);
    }
    a
}
