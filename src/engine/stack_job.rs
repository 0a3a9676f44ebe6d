//! A job on the stack: `join`'s second closure, forked into the frame of the `join` that made
//! it (see `join.rs` for the protocol), and how a thief that does not know its types runs it.
//! The worker loop knows only [`JobHeader`] and [`run_stolen`].

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::NonNull;
use std::thread::Result as Outcome;

use super::Engine;
use crate::primitives::StackLatch;
use crate::sync::UnsafeCell;

/// Slots in each worker's job deque: the nesting depth of joins that can be stolen; deeper
/// joins run both closures inline on the forking worker.
pub(crate) const JOB_DEQUE_CAPACITY: usize = if cfg!(loom) { 4 } else { 1024 };

/// The start of every [`StackJob`]: what a thief needs to run a job whose types it does not
/// know. The job deque holds pointers to it.
#[repr(C)]
pub(crate) struct JobHeader {
    /// Runs the job that starts with this header on a thief of the runtime `engine`, then sets
    /// its latch.
    pub(super) run: unsafe fn(NonNull<JobHeader>, &Engine),
}

/// `join`'s second closure, forked: it lives in the frame of the `fork_join` call that made
/// it, until its latch is set or its owner pops it back.
#[repr(C)]
pub(super) struct StackJob<F, R> {
    /// First, so that a pointer to the job is a pointer to its header.
    pub(super) header: JobHeader,
    pub(super) latch: StackLatch,
    /// The index of the worker that forked it (whom the thief wakes).
    pub(super) owner: usize,
    /// The closure, until its one taker (the owner popping it back, or the thief that stole
    /// it: the deque hands the job to one of them) takes it.
    pub(super) func: UnsafeCell<Option<F>>,
    /// Written by the thief before it sets the latch; read by the owner after it sees it set.
    pub(super) result: UnsafeCell<Option<Outcome<R>>>,
}

impl<F, R> StackJob<F, R>
where
    F: FnOnce() -> R + Send,
    R: Send,
{
    /// Takes the closure out.
    ///
    /// # Safety
    ///
    /// The caller is the job's one taker (it popped the job back, or stole it), and nothing
    /// else touches `func` meanwhile.
    #[inline]
    pub(super) unsafe fn take_func(&self) -> F {
        // SAFETY: the caller is the one taker (contract), so the access is exclusive.
        match self.func.with_mut(|f| unsafe { (*f).take() }) {
            Some(f) => f,
            None => unreachable!("a stack job is taken once"),
        }
    }

    /// What a thief runs (as [`JobHeader::run`]): the closure, panics caught, then the result
    /// and the latch.
    ///
    /// # Safety
    ///
    /// `this` points to the header of a live `StackJob<F, R>` that the caller stole (the job
    /// deque handed it to the caller alone) and whose latch is not set.
    pub(super) unsafe fn run_stolen(this: NonNull<JobHeader>, engine: &Engine) {
        let job = this.cast::<Self>().as_ptr() as *const Self;
        // SAFETY: 1. `this` came from `NonNull::from(&job).cast()` in `fork_join`, so it may
        // reach the whole job (which is `repr(C)` with the header first); 2. the job stays
        // alive until its latch is set below (the owner waits for it); 3. the deque handed it
        // to us alone, so we are its one taker.
        let func = unsafe { (*job).take_func() };
        let outcome = catch_unwind(AssertUnwindSafe(func));
        // SAFETY: as above (1, 2); only the one taker writes the result, and the owner reads
        // it only after seeing the latch set below.
        unsafe { (*job).result.with_mut(|r| *r = Some(outcome)) };
        // SAFETY: as above; read before the latch is set, after which the job may be gone.
        let owner = unsafe { (*job).owner };
        // SAFETY: the latch is alive until this call sets it; we do not touch the job after.
        let wake = unsafe { StackLatch::set(std::ptr::addr_of!((*job).latch)) };
        if wake {
            engine.workers[owner].sleeper.wake();
        }
    }
}

/// Runs a job stolen from another worker's job deque.
///
/// # Safety
///
/// `job` was taken from a job deque of the runtime `engine` by a steal that succeeded (the deque
/// hands each job to one taker).
#[inline]
pub(crate) unsafe fn run_stolen(job: NonNull<JobHeader>, engine: &Engine) {
    // SAFETY: the header is alive (its job is alive until its latch is set, which only the
    // run below does) and `run` is the function `fork_join` wrote for its type.
    let run = unsafe { job.as_ref().run };
    // SAFETY: forwarded from the caller: we are the job's one taker.
    unsafe { run(job, engine) };
}
