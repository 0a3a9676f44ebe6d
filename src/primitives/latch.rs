//! A stack job's latch: how the thread that forked a job learns that a thief has finished it,
//! and whether the thief must wake it.
//!
//! | state | written by | meaning |
//! | --- | --- | --- |
//! | `UNSET` | nobody (the initial state) | the job is not finished; its owner is not waiting |
//! | `WAITING` | the owner ([`StackLatch::announce_wait`]) | not finished; the owner may park and relies on the setter to wake it |
//! | `SET` | the setter ([`StackLatch::set`]) | finished: the result is written and the job is the owner's again |
//!
//! Transitions: `UNSET → WAITING` (owner, CAS), `UNSET | WAITING → SET` (setter, one swap). The
//! setter learns from the swap's old value whether the owner announced a wait, so a thief
//! whose owner is still busy (the common case of a steal) wakes nobody, and an owner parks
//! only when the setter is bound to wake it.
//!
//! ## Memory ordering
//!
//! - [`set`](StackLatch::set): one `swap(SET, AcqRel)`. Its release half publishes everything
//!   the setter did before (the job's result) to the owner's acquire of `SET`; its acquire half
//!   pairs with the owner's release CAS to `WAITING`, so a setter that sees `WAITING` also
//!   sees what the owner wrote before announcing (such as its registration for wake-ups).
//! - [`probe`](StackLatch::probe): an `Acquire` load; seeing `SET` makes the setter's writes
//!   visible.
//! - [`announce_wait`](StackLatch::announce_wait): a CAS `UNSET → WAITING`, `Release` on
//!   success, `Acquire` on failure (the failure means `SET`: the owner then reads the result).
//!
//! The swap is a single read-modify-write, so the owner's CAS and the setter's swap are
//! ordered: either the CAS comes first (the setter sees `WAITING` and wakes the owner) or the
//! swap does (the CAS fails and the owner does not wait). A setter that read the state and
//! then stored `SET` with two operations could read `UNSET`, lose the owner's `WAITING` in
//! between, and never wake it: the `mutant` build of `loom-tests/tests/join.rs` does exactly
//! that, and loom reports the owner parked forever.
//!
//! The latch usually lives in the owner's stack frame, which the owner leaves as soon as it
//! sees `SET`; so [`set`](StackLatch::set) takes a raw pointer, and its caller must not touch
//! the latch (or anything next to it) after it returns — read what the wake-up needs first.

use std::fmt;

use crate::sync::{AtomicU8, Ordering};

const UNSET: u8 = 0;
const WAITING: u8 = 1;
const SET: u8 = 2;

/// A one-shot latch between the owner of a stack job and the thread that runs it.
///
/// # Examples
///
/// ```
/// use tokengate::primitives::StackLatch;
///
/// let latch = StackLatch::new();
/// std::thread::scope(|s| {
///     let owner = std::thread::current();
///     let latch = &latch;
///     s.spawn(move || {
///         // ... run the job, write its result ...
///         // SAFETY: `latch` is alive during the call, and nothing touches it afterwards.
///         if unsafe { StackLatch::set(latch) } {
///             owner.unpark(); // the owner announced a wait: wake it
///         }
///     });
///     if !latch.probe() && latch.announce_wait() {
///         while !latch.probe() {
///             std::thread::park();
///         }
///     }
///     assert!(latch.probe());
/// });
/// ```
pub struct StackLatch {
    state: AtomicU8,
}

impl StackLatch {
    /// An unset latch.
    #[inline]
    pub fn new() -> Self {
        Self {
            state: AtomicU8::new(UNSET),
        }
    }

    /// Whether the latch is set: the job is finished and its result visible to the caller.
    #[inline]
    pub fn probe(&self) -> bool {
        // ORDERING: Acquire pairs with the AcqRel swap in `set`: the setter's writes (the
        // result) happen before our reading them.
        self.state.load(Ordering::Acquire) == SET
    }

    /// The owner announces that it may park until the latch is set. Returns `true` if the
    /// setter will report the wait (so the owner may park, to be woken), `false` if the latch
    /// is set already (nothing to wait for).
    ///
    /// Call it from the owner only, at most once per latch. A second call breaks that contract:
    /// it is no undefined behaviour, but its answer is unspecified (it may say "set" while the
    /// latch is not), so an owner must not rely on it.
    #[inline]
    pub fn announce_wait(&self) -> bool {
        // ORDERING: Release on success pairs with the acquire half of the setter's swap, so
        // whatever the owner did to be wakeable happens before the setter's wake-up; Acquire
        // on failure: the state is SET, and the result must be visible.
        match self
            .state
            .compare_exchange(UNSET, WAITING, Ordering::Release, Ordering::Acquire)
        {
            Ok(_) => true,
            Err(state) => {
                debug_assert_eq!(state, SET, "only the owner announces a wait, once");
                false
            }
        }
    }

    /// Sets the latch. Returns `true` if the owner announced a wait before: the caller must
    /// then wake it (with what it read before this call).
    ///
    /// # Safety
    ///
    /// `this` points to a live latch for the duration of the call. Once `set` has stored
    /// `SET`, the owner may free the latch at any moment: the caller must not touch it again.
    #[inline]
    pub unsafe fn set(this: *const Self) -> bool {
        #[cfg(not(tokengate_mutant = "latch_set_swap"))]
        {
            // SAFETY: `this` is live for the call (the caller's contract); the swap is the
            // last access.
            let state = unsafe { &(*this).state };
            // ORDERING: AcqRel: the release half publishes the result to the owner's Acquire
            // of SET; the acquire half pairs with the Release CAS to WAITING (module docs).
            state.swap(SET, Ordering::AcqRel) == WAITING
        }
        #[cfg(tokengate_mutant = "latch_set_swap")]
        {
            // The mutant: a read, then a store. The owner's CAS to WAITING can fall between
            // them and its wake-up is lost (loom must catch this).
            // SAFETY: as above; the store is the last access.
            let state = unsafe { &(*this).state };
            // ORDERING: Acquire (mutant).
            let old = state.load(Ordering::Acquire);
            // ORDERING: Release (mutant).
            state.store(SET, Ordering::Release);
            old == WAITING
        }
    }
}

impl Default for StackLatch {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for StackLatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StackLatch")
            .field("set", &self.probe())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn set_reports_an_announced_wait_only() {
        let quiet = StackLatch::new();
        // SAFETY: the latch lives on this frame.
        assert!(!unsafe { StackLatch::set(&quiet) });
        assert!(quiet.probe());
        assert!(!quiet.announce_wait(), "set already: nothing to wait for");

        let waited = StackLatch::new();
        assert!(!waited.probe());
        assert!(waited.announce_wait());
        // SAFETY: as above.
        assert!(unsafe { StackLatch::set(&waited) });
        assert!(waited.probe());
    }
}
