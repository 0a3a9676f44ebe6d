//! A worker's job deque: a bounded Chase–Lev work-stealing deque of pointers to jobs that live
//! in their owner's stack frames (`join`'s second closure).
//!
//! The same algorithm and orderings as [`LocalDeque`](super::LocalDeque), over pointers
//! instead of token numbers, with one difference: it is sized by nesting depth, not by the
//! token ring, so a push may find it full. [`push`](JobDeque::push) then hands the pointer
//! back and the caller runs the job itself: nothing is ever allocated.
//!
//! The owner pushes and pops at the *bottom* (newest first); thieves steal at the *top*
//! (oldest first: in nested fork-join, the biggest piece of work left). A push is a load of
//! `top`, a slot store and a release store of `bottom`; a pop is a release store of `bottom`,
//! a `SeqCst` fence and a load of `top`, plus a CAS only when it takes the last job. Neither
//! makes a read-modify-write in the common case.
//!
//! The deque only moves pointers; it never reads through them. What a pointer points to, how
//! long it lives and who may use it are its users' business (tokengate's `join` keeps the job
//! alive until its latch is set, see [`StackLatch`](super::StackLatch)).
//!
//! ## Memory ordering
//!
//! As [`LocalDeque`](super::LocalDeque)'s (Lê, Pop, Cohen, Zappa Nardelli, PPoPP 2013):
//!
//! - `push`: `top` load (Acquire, pairs with the CAS of the thief that freed the slot); slot
//!   store (Relaxed); `bottom` store (Release). Every store of `bottom` is a release, so a
//!   thief's Acquire load of `bottom` sees every push before it, and everything the pusher
//!   wrote before pushing (the job's closure).
//! - `pop`: `bottom` store of `b - 1` (Release); `fence(SeqCst)`; `top` load; for the last job,
//!   a CAS of `top` (SeqCst) against the thieves.
//! - `steal`: `top` load (Acquire); `fence(SeqCst)`; `bottom` load (Acquire); slot load; CAS
//!   of `top` (SeqCst). The two fences make the owner and a thief unable to both miss each
//!   other's claim on the last job; the CAS decides who takes it, exactly once.
//!
//! Slots are atomics, so a thief's speculative read of a slot the owner overwrites is no data
//! race (the thief's CAS then fails and it discards what it read).
//!
//! The owner's methods are `unsafe`: two threads acting as the owner at once could both pop
//! one job.

use crossbeam_utils::CachePadded;
use std::fmt;
use std::ptr::NonNull;

use crate::sync::{fence, AtomicPtr, AtomicUsize, Ordering};

/// What a [`JobDeque::steal`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum JobSteal<T> {
    /// The oldest job, now the thief's.
    Taken(NonNull<T>),
    /// Nothing to steal.
    Empty,
    /// Lost a race for the oldest job (to the owner or another thief): try again.
    Retry,
}

/// A bounded Chase–Lev deque of job pointers: LIFO for its owner, FIFO for thieves.
///
/// # Examples
///
/// ```
/// use std::ptr::NonNull;
/// use tokengate::primitives::{JobDeque, JobSteal};
///
/// let (mut a, mut b) = (1, 2);
/// let deque = JobDeque::<i32>::new(2);
/// // SAFETY: this thread is the deque's only owner.
/// unsafe {
///     deque.push(NonNull::from(&mut a)).unwrap();
///     deque.push(NonNull::from(&mut b)).unwrap();
///     // Full: the pointer comes back, and the caller runs its job itself.
///     assert!(deque.push(NonNull::from(&mut a)).is_err());
/// }
/// // A thief takes the oldest; the owner pops the newest.
/// let JobSteal::Taken(oldest) = deque.steal() else { unreachable!() };
/// // SAFETY: `a` is alive and nobody else uses it.
/// assert_eq!(unsafe { *oldest.as_ptr() }, 1);
/// // SAFETY: as above, for the owner and `b`.
/// let newest = unsafe { deque.pop() }.unwrap();
/// assert_eq!(unsafe { *newest.as_ptr() }, 2);
/// assert_eq!(deque.steal(), JobSteal::Empty);
/// ```
pub struct JobDeque<T> {
    /// Position of the oldest job: thieves advance it by CAS; the owner by CAS for the last.
    top: CachePadded<AtomicUsize>,
    /// One past the newest job: written by the owner only.
    bottom: CachePadded<AtomicUsize>,
    slots: Box<[AtomicPtr<T>]>,
    /// `capacity - 1`; positions map to slots by `pos & mask`.
    mask: usize,
}

// SAFETY: the deque holds pointers only as values in atomics and never dereferences them;
// sending or sharing it sends or shares addresses, whose use is the users' (unsafe) business.
unsafe impl<T> Send for JobDeque<T> {}
// SAFETY: as above; every shared access goes through the atomics.
unsafe impl<T> Sync for JobDeque<T> {}

impl<T> JobDeque<T> {
    /// An empty deque with room for `capacity` jobs.
    ///
    /// # Panics
    ///
    /// If `capacity` is zero or not a power of two.
    pub fn new(capacity: usize) -> Self {
        assert!(
            capacity.is_power_of_two(),
            "job deque capacity {capacity} must be a power of two"
        );
        Self {
            top: CachePadded::new(AtomicUsize::new(0)),
            bottom: CachePadded::new(AtomicUsize::new(0)),
            slots: (0..capacity)
                .map(|_| AtomicPtr::new(std::ptr::null_mut()))
                .collect(),
            mask: capacity - 1,
        }
    }

    /// Pushes `job` at the bottom, or hands it back if the deque is full.
    ///
    /// # Safety
    ///
    /// Only the deque's owner calls `push` and [`pop`](Self::pop): one thread for the deque's
    /// whole life (or threads ordered by a happens-before hand-over of the ownership).
    #[inline]
    pub unsafe fn push(&self, job: NonNull<T>) -> Result<(), NonNull<T>> {
        // ORDERING: Relaxed: only the owner writes `bottom`.
        let b = self.bottom.load(Ordering::Relaxed);
        // ORDERING: Acquire: a thief's CAS that freed the slot we are about to overwrite read
        // it before (its CAS is SeqCst, so a release); the slot store below comes after.
        let t = self.top.load(Ordering::Acquire);
        if b.wrapping_sub(t) > self.mask {
            return Err(job);
        }
        // ORDERING: Relaxed: published by the `bottom` store below.
        self.slot(b).store(job.as_ptr(), Ordering::Relaxed);
        // ORDERING: Release: the slot (and what the owner wrote before pushing) happens before
        // a thief's Acquire load of `bottom` that sees `b + 1` or any later value (every store
        // of `bottom` is a release).
        self.bottom.store(b.wrapping_add(1), Ordering::Release);
        Ok(())
    }

    /// Pops the newest job, if any.
    ///
    /// # Safety
    ///
    /// As [`push`](Self::push): only the owner.
    #[inline]
    pub unsafe fn pop(&self) -> Option<NonNull<T>> {
        // ORDERING: Relaxed: only the owner writes `bottom`.
        let b = self.bottom.load(Ordering::Relaxed).wrapping_sub(1);
        // ORDERING: Release, as every store of `bottom`; ordered before the `top` load by the
        // fence below.
        self.bottom.store(b, Ordering::Release);
        // ORDERING: SeqCst fence between claiming `b` (the store above) and reading `top`,
        // paired with the fence in `steal` between its `top` and `bottom` loads: a thief and
        // the owner cannot both miss the other's claim.
        fence(Ordering::SeqCst);
        // ORDERING: Relaxed, ordered by the fence above.
        let t = self.top.load(Ordering::Relaxed);
        let len = b.wrapping_sub(t) as isize;
        if len < 0 {
            // Empty (perhaps a thief took the last job meanwhile). Restore `bottom`.
            // ORDERING: Release, as every store of `bottom`.
            self.bottom.store(b.wrapping_add(1), Ordering::Release);
            return None;
        }
        // ORDERING: Relaxed: the owner wrote this slot itself.
        let job = self.slot(b).load(Ordering::Relaxed);
        if len > 0 {
            // More than one job: thieves stop at `top < b`, this one is the owner's.
            return NonNull::new(job);
        }
        // The last job: race the thieves for it by advancing `top`.
        // ORDERING: SeqCst on success, as the thieves' CAS (one total order of claims);
        // Relaxed on failure: we read nothing we rely on.
        let won = self
            .top
            .compare_exchange(t, t.wrapping_add(1), Ordering::SeqCst, Ordering::Relaxed)
            .is_ok();
        // ORDERING: Release, as every store of `bottom`; empty now either way.
        self.bottom.store(b.wrapping_add(1), Ordering::Release);
        if won {
            NonNull::new(job)
        } else {
            None
        }
    }

    /// Steals the oldest job.
    #[inline]
    pub fn steal(&self) -> JobSteal<T> {
        // ORDERING: Acquire: pairs with a previous thief's (or the owner's) CAS of `top`, so
        // the slot we read below is not one a later push has overwritten unseen.
        let t = self.top.load(Ordering::Acquire);
        // ORDERING: SeqCst fence between the `top` and `bottom` loads, paired with the fence
        // in `pop`.
        fence(Ordering::SeqCst);
        // ORDERING: Acquire: pairs with the Release stores of `bottom`, so the slot and the
        // pusher's writes before it are visible.
        let b = self.bottom.load(Ordering::Acquire);
        if b.wrapping_sub(t) as isize <= 0 {
            return JobSteal::Empty;
        }
        // ORDERING: Relaxed: published by the push (see above); if the owner reuses the slot
        // meanwhile, `top` has moved and the CAS below fails.
        let job = self.slot(t).load(Ordering::Relaxed);
        // ORDERING: SeqCst: one total order of claims with the owner's CAS for the last job.
        match self
            .top
            .compare_exchange(t, t.wrapping_add(1), Ordering::SeqCst, Ordering::Relaxed)
        {
            // The CAS claimed position `t`: its job is ours alone.
            Ok(_) => match NonNull::new(job) {
                Some(job) => JobSteal::Taken(job),
                None => unreachable!("a claimed position holds a pushed pointer"),
            },
            Err(_) => JobSteal::Retry,
        }
    }

    /// The slot of position `pos`.
    #[inline]
    fn slot(&self, pos: usize) -> &AtomicPtr<T> {
        debug_assert_eq!(self.slots.len(), self.mask + 1);
        // SAFETY: `slots` has `mask + 1` entries (`new`), so `pos & mask` is in bounds.
        unsafe { self.slots.get_unchecked(pos & self.mask) }
    }

    /// How many jobs wait (approximate under concurrency).
    #[inline]
    pub fn len(&self) -> usize {
        // ORDERING: Relaxed: a hint.
        let b = self.bottom.load(Ordering::Relaxed);
        // ORDERING: Relaxed: a hint.
        let t = self.top.load(Ordering::Relaxed);
        (b.wrapping_sub(t) as isize).max(0) as usize
    }

    /// Whether the deque looks empty.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many jobs it has room for.
    pub fn capacity(&self) -> usize {
        self.mask + 1
    }
}

impl<T> fmt::Debug for JobDeque<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JobDeque")
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, AtomicUsize as StdAtomicUsize};
    use std::sync::Arc;

    #[test]
    fn owner_is_lifo_thieves_fifo_and_full_hands_back() {
        let mut jobs = [0u8; 5];
        let ptrs: Vec<NonNull<u8>> = jobs.iter_mut().map(NonNull::from).collect();
        let d = JobDeque::new(4);
        for &p in &ptrs[..4] {
            // SAFETY: this test's thread is the only owner.
            unsafe { d.push(p) }.unwrap();
        }
        // SAFETY: as above.
        assert_eq!(unsafe { d.push(ptrs[4]) }, Err(ptrs[4]));
        assert_eq!(d.steal(), JobSteal::Taken(ptrs[0]));
        // SAFETY: as above.
        unsafe {
            assert_eq!(d.pop(), Some(ptrs[3]));
            assert_eq!(d.pop(), Some(ptrs[2]));
            assert_eq!(d.pop(), Some(ptrs[1]));
            assert_eq!(d.pop(), None);
        }
        assert_eq!(d.steal(), JobSteal::Empty);
        assert!(d.is_empty());
    }

    /// The owner pushes and pops while two thieves steal; every job is taken exactly once.
    #[test]
    fn owner_and_thieves_take_each_job_once() {
        const JOBS: usize = 8;
        let n = if cfg!(miri) { 64 } else { 20_000 };
        // Each job is a flag: set while queued, cleared by its one taker.
        let flags: Arc<Vec<AtomicBool>> =
            Arc::new((0..JOBS).map(|_| AtomicBool::new(false)).collect());
        let d = Arc::new(JobDeque::<AtomicBool>::new(JOBS));
        let done = Arc::new(AtomicBool::new(false));
        let taken = Arc::new(StdAtomicUsize::new(0));
        let take = {
            let taken = taken.clone();
            move |p: NonNull<AtomicBool>| {
                // SAFETY: the flags outlive every thread of the test.
                let flag = unsafe { p.as_ref() };
                assert!(flag.swap(false, Ordering::AcqRel), "job taken twice");
                taken.fetch_add(1, Ordering::Relaxed);
            }
        };
        let thieves: Vec<_> = (0..2)
            .map(|_| {
                let (d, done, take, flags) = (d.clone(), done.clone(), take.clone(), flags.clone());
                std::thread::spawn(move || {
                    let _keep = flags;
                    loop {
                        match d.steal() {
                            JobSteal::Taken(p) => take(p),
                            JobSteal::Retry => {}
                            JobSteal::Empty if done.load(Ordering::Acquire) => return,
                            JobSteal::Empty => std::thread::yield_now(),
                        }
                    }
                })
            })
            .collect();
        let mut pushed = 0;
        let mut next = 0;
        while pushed < n {
            let flag = &flags[next % JOBS];
            next += 1;
            if flag.load(Ordering::Acquire) {
                continue; // still queued
            }
            flag.store(true, Ordering::Release);
            // SAFETY: this thread is the only owner.
            if unsafe { d.push(NonNull::from(flag)) }.is_ok() {
                pushed += 1;
            } else {
                flag.store(false, Ordering::Release);
            }
            if pushed % 3 == 0 {
                // SAFETY: as above.
                if let Some(p) = unsafe { d.pop() } {
                    take(p);
                }
            }
        }
        // SAFETY: as above.
        while let Some(p) = unsafe { d.pop() } {
            take(p);
        }
        done.store(true, Ordering::Release);
        for t in thieves {
            t.join().unwrap();
        }
        assert_eq!(
            taken.load(Ordering::Relaxed),
            n,
            "every job pushed was taken once"
        );
    }
}
