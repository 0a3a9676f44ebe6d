//! The one place tokengate takes its synchronisation primitives from.
//!
//! Normally these are `std`'s; compiled with `RUSTFLAGS="--cfg loom"` they are loom's, so the
//! loom models in `loom-tests/` explore every interleaving of the very code that ships. Spinning
//! and yielding come from here too: a spin loop loom cannot see would hang a model.
//!
//! Tasks are reference-counted by the crate itself (`task::TaskRef`, the count in the task's
//! header, on these atomics), since a task may live in its token's cell rather than in an
//! allocation of its own; so loom sees that count too.

#[cfg(not(loom))]
pub(crate) use std::sync::atomic::{
    fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};
#[cfg(not(loom))]
pub(crate) use std::sync::{Arc, Mutex, MutexGuard};
#[cfg(not(loom))]
pub(crate) use std::thread_local;

#[cfg(loom)]
pub(crate) use loom::sync::atomic::{
    fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicU8, AtomicUsize, Ordering,
};
#[cfg(loom)]
pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};
#[cfg(loom)]
pub(crate) use loom::thread_local;

/// Statistics counters (metrics, reputation, history cells): std atomics under loom as well.
/// They order nothing and guard nothing (every protocol decision is taken on the shim's
/// atomics above); keeping them out of loom keeps the models small. Writers of a counter that
/// has one writer use [`bump_exclusive`], shared ones `fetch_add`.
pub(crate) use std::sync::atomic::AtomicU64 as StatCounter;

/// Adds `n` to a counter only the calling thread writes: a load and a store, no locked
/// instruction (readers see either value; no increment is lost as nobody else writes).
#[inline]
pub(crate) fn bump_exclusive(counter: &StatCounter, n: u64) {
    // ORDERING: Relaxed: a statistic; single writer, readers only need an atomic value.
    let v = counter.load(Ordering::Relaxed);
    // ORDERING: Relaxed, as above.
    counter.store(v.wrapping_add(n), Ordering::Relaxed);
}

/// Threads: spawn, park, unpark, yield.
pub(crate) mod thread {
    #[cfg(not(loom))]
    pub(crate) use std::thread::{current, park, yield_now, Builder, JoinHandle, Thread, ThreadId};

    #[cfg(loom)]
    pub(crate) use loom::thread::{
        current, park, yield_now, Builder, JoinHandle, Thread, ThreadId,
    };

    /// Parks for at most `timeout`. Loom has no clock: there it is a yield, which callers treat
    /// as the spurious wake-up every park may have.
    pub(crate) fn park_timeout(timeout: std::time::Duration) {
        #[cfg(not(loom))]
        std::thread::park_timeout(timeout);
        #[cfg(loom)]
        {
            let _ = timeout;
            loom::thread::yield_now();
        }
    }
}

/// A hint that the caller is busy-waiting.
#[inline]
pub(crate) fn spin_loop() {
    #[cfg(not(loom))]
    std::hint::spin_loop();
    #[cfg(loom)]
    loom::hint::spin_loop();
}

/// `UnsafeCell` with loom's closure-based API, so the same code compiles under both.
#[cfg(not(loom))]
#[derive(Debug)]
pub(crate) struct UnsafeCell<T>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
impl<T> UnsafeCell<T> {
    #[inline]
    pub(crate) const fn new(value: T) -> Self {
        Self(std::cell::UnsafeCell::new(value))
    }

    /// Gives `f` a shared raw pointer to the contents.
    #[inline]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Gives `f` a unique raw pointer to the contents.
    #[inline]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;

/// The idle strategy every waiter starts with: spin a little, then yield, then (when
/// [`Backoff::snooze`] says the budget is spent) park. Under loom every spin and yield is a
/// scheduling point, so the budget shrinks to keep the models small.
#[derive(Debug)]
pub(crate) struct Backoff {
    spins_left: u32,
    yields_left: u32,
}

impl Backoff {
    /// Spin iterations before a waiter starts yielding.
    const SPINS: u32 = if cfg!(loom) { 0 } else { 64 };
    /// Yields before a waiter parks.
    const YIELDS: u32 = if cfg!(loom) { 1 } else { 16 };

    #[inline]
    pub(crate) fn new() -> Self {
        Self {
            spins_left: Self::SPINS,
            yields_left: Self::YIELDS,
        }
    }

    /// Spins or yields once; returns `false`, doing nothing, once the budget is spent and the
    /// caller should park.
    #[inline]
    pub(crate) fn snooze(&mut self) -> bool {
        if self.spins_left > 0 {
            self.spins_left -= 1;
            spin_loop();
        } else if self.yields_left > 0 {
            self.yields_left -= 1;
            thread::yield_now();
        } else {
            return false;
        }
        true
    }
}

/// Panics in words for an API that cannot be modelled under loom (call it behind
/// `if cfg!(loom)`): `what` cannot work there because of `why`; `instead` says what a model
/// should do. The table of what works under loom is in `src/loom.rs`.
#[cold]
#[track_caller]
pub(crate) fn unsupported_under_loom(what: &str, why: &str, instead: &str) -> ! {
    panic!("tokengate under loom: {what} cannot be modelled: {why}; {instead} (see docs/loom.md)")
}
