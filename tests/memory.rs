//! The memory a runtime takes is what `Builder::capacity` documents: measured with a counting
//! global allocator around `build()`, around an operation's first limited submission, and
//! once every token's task cell was used. And a warm runtime allocates nothing per small task,
//! from a worker or from any other thread: a task is built in its token's cell.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

use tokengate::{Operation, Runtime};

/// Counts the bytes live on the heap (allocated minus freed), by every thread of the process.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
/// Allocations made, by every thread.
static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to `System`, only counting sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Relaxed);
        ALLOCATIONS.fetch_add(1, Relaxed);
        // SAFETY: forwarded.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Relaxed);
        // SAFETY: forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

/// The tests measure process-wide counts: one at a time.
static SERIAL: Mutex<()> = Mutex::new(());

/// The bytes `Builder::capacity` documents for `capacity` tokens and `workers` workers, with
/// the history off: 208 per token (the token table, the ring, the task cell's state on its own
/// cache line) and 8 per
/// 64 tokens (a task cell chunk's pointer), and per worker 88 per slot
/// of its queues' lock-free fronts (five 16-byte queue slots and an 8-byte deque slot), each
/// front holding the worker's share of the ring, rounded up to a power of two, at least 256
/// and at most the whole ring.
fn documented(capacity: usize, workers: usize) -> usize {
    let front = (capacity / workers)
        .next_power_of_two()
        .clamp(256.min(capacity), capacity);
    capacity * 208 + capacity.div_ceil(64) * 8 + workers * front * 88
}

/// The task cells' bytes once every token was used (`Builder::capacity`).
const CELL_BYTES: usize = 256;

/// What `Builder::capacity` documents beside [`documented`]: a few tens of KiB for the
/// runtime, and per worker its bookkeeping (counters, token cache, its thread's own
/// allocations), about 13 KiB measured; these bounds leave room for allocator and platform
/// differences.
const FIXED: usize = 64 << 10;
const PER_WORKER: usize = 16 << 10;

fn built_bytes(capacity: usize, workers: usize) -> (Runtime, usize) {
    let before = LIVE.load(Relaxed);
    let rt = Runtime::builder()
        .workers(workers)
        .pin(false)
        .capacity(capacity)
        .history(0)
        .build()
        .unwrap();
    (rt, LIVE.load(Relaxed) - before)
}

#[test]
fn smoke() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let (rt, bytes) = built_bytes(1024, 1);
    assert!(bytes > 0);
    assert_eq!(rt.spawn(|| 1).join(), Ok(1));
}

#[test]
fn a_runtime_takes_the_documented_memory_per_token() {
    if cfg!(miri) {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    for (capacity, workers) in [
        (1 << 10, 1),
        (1 << 10, 8),
        (1 << 14, 1),
        (1 << 16, 2),
        (1 << 16, 4),
        (1 << 14, 64),
    ] {
        let (rt, bytes) = built_bytes(capacity, workers);
        let expected = documented(capacity, workers);
        let most = expected + FIXED + PER_WORKER * workers;
        assert!(
            bytes >= expected && bytes <= most,
            "capacity {capacity}, {workers} workers: {bytes} bytes, documented {expected} (+ at \
             most {} fixed and per worker)",
            most - expected
        );
        drop(rt);
    }
}

/// The reserve grows with the capacity plus a constant per worker, not with their product
/// (issue 20): 256 workers at the default capacity (16384 tokens) take at most 16 MB, as the
/// formula says; built for real (unpinned threads are cheap to start).
#[test]
fn two_hundred_fifty_six_workers_take_at_most_sixteen_megabytes() {
    if cfg!(miri) {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const WORKERS: usize = 256;
    let most = documented(1 << 14, WORKERS) + FIXED + PER_WORKER * WORKERS;
    assert!(most <= 16_000_000, "the formula gives {most} bytes");
    let before = LIVE.load(Relaxed);
    let rt = Runtime::builder()
        .workers(WORKERS)
        .pin(false)
        .history(0)
        .build()
        .unwrap();
    let bytes = LIVE.load(Relaxed) - before;
    assert_eq!(
        rt.capacity(),
        1 << 14,
        "the default capacity at 256 workers"
    );
    assert!(
        bytes >= documented(1 << 14, WORKERS) && bytes <= most,
        "{WORKERS} workers at the default capacity: {bytes} bytes, at most {most} documented"
    );
}

#[test]
fn a_limited_operation_takes_sixteen_bytes_per_token() {
    if cfg!(miri) {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    const LIMITED: Operation = Operation::new("limited").concurrency_limit(4);
    let capacity = 1 << 16;
    let (rt, _) = built_bytes(capacity, 1);
    assert_eq!(rt.spawn(|| ()).join(), Ok(())); // the default operation's entry exists
    let before = LIVE.load(Relaxed);
    let h = rt.submit(&LIMITED, || ());
    let grown = LIVE.load(Relaxed) - before;
    assert_eq!(h.join(), Ok(()));
    let expected = 16 * capacity;
    assert!(
        grown >= expected && grown <= expected + (64 << 10),
        "a limited operation's first task took {grown} bytes, documented {expected}"
    );
}

/// Task cells are allocated as tokens are first used, in chunks of 64: after tasks used every
/// token, the runtime has grown by `capacity × 256` bytes, and not by one byte per task more.
#[test]
fn task_cells_take_their_documented_bytes_once_every_token_was_used() {
    if cfg!(miri) {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let capacity = 1 << 10;
    let (rt, _) = built_bytes(capacity, 1);
    let before = LIVE.load(Relaxed);
    // Handles held until all are submitted: every token is out at once, so each is used.
    let handles: Vec<_> = (0..capacity as u64).map(|i| rt.spawn(move || i)).collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join(), Ok(i as u64));
    }
    let grown = LIVE.load(Relaxed) - before;
    let cells = capacity * CELL_BYTES;
    // The handles' vector (freed again) and the operation's entry come and go beside them.
    assert!(
        grown >= cells && grown <= cells + (64 << 10),
        "{capacity} tokens used: grown by {grown} bytes, documented {cells} of task cells"
    );
    let before = ALLOCATIONS.load(Relaxed);
    for i in 0..4 * capacity as u64 {
        assert_eq!(rt.spawn(move || i).join(), Ok(i));
    }
    // (Another test's runtime, dropped just before, may still be winding its threads down.)
    let allocations = ALLOCATIONS.load(Relaxed) - before;
    assert!(
        allocations < 64,
        "{allocations} allocations for {} tasks once every cell exists",
        4 * capacity
    );
}

/// Round trips (submit, join) of small tasks, from another thread and from a worker (nested
/// submit + join), once their tokens' cells exist: no allocation at all, each task built in
/// its token's cell.
#[test]
fn a_warm_runtime_allocates_nothing_per_small_task() {
    if cfg!(miri) {
        return;
    }
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let rt = std::sync::Arc::new(
        Runtime::builder()
            .workers(1)
            .pin(false)
            .capacity(64)
            .history(0)
            .build()
            .unwrap(),
    );
    let round_trips = |rt: &Runtime, n: u64| {
        for i in 0..n {
            assert_eq!(rt.spawn(move || i + 1).join(), Ok(i + 1));
        }
    };
    // Warm: every token's cell exists (the ring and the worker caches hand tokens out in
    // turn).
    round_trips(&rt, 1_000);
    let before = ALLOCATIONS.load(Relaxed);
    round_trips(&rt, 1_000);
    let from_outside = ALLOCATIONS.load(Relaxed) - before;
    assert_eq!(
        from_outside, 0,
        "allocations in 1000 warm round trips from outside"
    );

    let nested = {
        let rt2 = rt.clone();
        move || {
            for i in 0..1_000u64 {
                assert_eq!(rt2.spawn(move || i * 2).join(), Ok(i * 2));
            }
        }
    };
    rt.spawn(nested.clone()).join().unwrap();
    let before = ALLOCATIONS.load(Relaxed);
    rt.spawn(nested).join().unwrap();
    let nested_allocations = ALLOCATIONS.load(Relaxed) - before;
    assert_eq!(
        nested_allocations, 0,
        "allocations in 1000 warm nested round trips"
    );
}
