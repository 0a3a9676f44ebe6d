//! The memory a runtime takes is what `Builder::capacity` documents: measured with a counting
//! global allocator around `build()` and around an operation's first limited submission.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::Mutex;

use tokengate::{Operation, Runtime};

/// Counts the bytes live on the heap (allocated minus freed), by every thread of the process.
struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);

// SAFETY: forwards to `System`, only counting sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Relaxed);
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
/// the history off.
fn documented(capacity: usize, workers: usize) -> usize {
    capacity * (144 + 84 * workers)
}

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
    for (capacity, workers) in [(1 << 14, 1), (1 << 16, 2), (1 << 16, 4)] {
        let (rt, bytes) = built_bytes(capacity, workers);
        let expected = documented(capacity, workers);
        // Besides the per-token tables: the operation table, the workers' bookkeeping and
        // their threads' own allocations, which do not grow with the capacity.
        let fixed = 256 << 10;
        assert!(
            bytes >= expected && bytes <= expected + fixed,
            "capacity {capacity}, {workers} workers: {bytes} bytes, documented {expected} (+ at most {fixed} fixed)"
        );
        drop(rt);
    }
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
