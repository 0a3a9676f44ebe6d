//! Fork-join on the stack, the worker side of [`Runtime::join`](crate::Runtime::join): the
//! second closure becomes a [`StackJob`] in the caller's frame (no allocation, no token, no
//! task record), a pointer to it goes on the worker's job deque, the first closure runs
//! inline, then the worker pops the job back and runs it inline too, unless an idle worker of
//! the runtime stole it meanwhile; then it runs other work of its runtime until the thief sets
//! the job's latch.
//!
//! | step | owner (the worker that forks) | thief (another worker of the runtime) |
//! | --- | --- | --- |
//! | fork | writes the job in its frame; pushes its address on its job deque; wakes a sleeping worker if one sleeps | — |
//! | run | runs `a` inline, panics caught | steals the address (the deque's CAS: taken once), takes the closure, runs it, panics caught, writes the result |
//! | join | pops: its own job back → runs `b` inline | reads the owner's index, then sets the latch (its last touch of the job); wakes the owner if it announced a wait |
//! | wait (stolen) | probes the latch; announces a wait; runs other work (`help_until`), parking only because the setter will wake it | — |
//! | end | re-raises `a`'s panic, else `b`'s, once both are done | — |
//!
//! The job lives until its latch is set: the owner cannot leave its frame before (it pops the
//! job itself or waits for the latch, and catches every panic in between), and the thief
//! touches nothing of the job after setting it. A job deque that is full (joins nested deeper
//! than its capacity) makes the fork run `b` inline after `a`: nothing is ever allocated.
//!
//! The protocol (the deque, the latch, the result hand-over) is modelled in
//! `loom-tests/tests/join.rs` over the public primitives, and through a two-worker runtime
//! (the fork's wake-up, the owner's wait for a stolen job) in `runtime_join.rs`.

use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::ptr::NonNull;
use std::thread::Result as Outcome;

use super::worker::Worker;
use super::Engine;
use crate::contain::{drop_contained, forget_payload};
use crate::primitives::StackLatch;
use crate::sync::{bump_exclusive, fence, Ordering, UnsafeCell};

/// Slots in each worker's job deque: the nesting depth of joins that can be stolen; deeper
/// joins run both closures inline on the forking worker.
pub(crate) const JOB_DEQUE_CAPACITY: usize = if cfg!(loom) { 4 } else { 1024 };

/// The start of every [`StackJob`]: what a thief needs to run a job whose types it does not
/// know. The job deque holds pointers to it.
#[repr(C)]
pub(crate) struct JobHeader {
    /// Runs the job that starts with this header on the thief `worker`, then sets its latch.
    run: unsafe fn(NonNull<JobHeader>, &Worker),
}

/// `join`'s second closure, forked: it lives in the frame of the `fork_join` call that made
/// it, until its latch is set or its owner pops it back.
#[repr(C)]
struct StackJob<F, R> {
    /// First, so that a pointer to the job is a pointer to its header.
    header: JobHeader,
    latch: StackLatch,
    /// The index of the worker that forked it (whom the thief wakes).
    owner: usize,
    /// The closure, until its one taker (the owner popping it back, or the thief that stole
    /// it: the deque hands the job to one of them) takes it.
    func: UnsafeCell<Option<F>>,
    /// Written by the thief before it sets the latch; read by the owner after it sees it set.
    result: UnsafeCell<Option<Outcome<R>>>,
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
    unsafe fn take_func(&self) -> F {
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
    unsafe fn run_stolen(this: NonNull<JobHeader>, thief: &Worker) {
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
            thief.engine().workers[owner].sleeper.wake();
        }
    }
}

/// Runs a job stolen from another worker's job deque.
///
/// # Safety
///
/// `job` was taken from a job deque of `thief`'s runtime by a steal that succeeded (the deque
/// hands each job to one taker).
#[inline]
pub(crate) unsafe fn run_stolen(job: NonNull<JobHeader>, thief: &Worker) {
    // SAFETY: the header is alive (its job is alive until its latch is set, which only the
    // run below does) and `run` is the function `fork_join` wrote for its type.
    let run = unsafe { job.as_ref().run };
    // SAFETY: forwarded from the caller: we are the job's one taker.
    unsafe { run(job, thief) };
}

/// `join(a, b)` on `worker`, a worker of the runtime the join is for: forks `b` on the stack,
/// runs `a`, then runs or waits for `b`. A panic of either is re-raised after both are done
/// (`a`'s if both panicked).
#[inline]
pub(crate) fn fork_join<A, B, RA, RB>(worker: &Worker, a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    let engine = worker.engine();
    let me = &engine.workers[worker.index()];
    // Not dropped: every path below leaves both cells empty (the closure taken, the result
    // taken or never written), so there is nothing to drop, and the compiler need not check.
    let job = ManuallyDrop::new(StackJob {
        header: JobHeader {
            run: StackJob::<B, RB>::run_stolen,
        },
        latch: StackLatch::new(),
        owner: worker.index(),
        func: UnsafeCell::new(Some(b)),
        result: UnsafeCell::new(None),
    });
    // From the whole job, so that a thief may reach every field through it.
    let ptr = NonNull::from(&*job).cast::<JobHeader>();
    // SAFETY: `worker` lives on its own thread (a `Worker` is never sent), the one owner of
    // its job deque.
    if unsafe { me.jobs.push(ptr) }.is_err() {
        // Nested deeper than the deque holds: both inline, nothing stolen, nothing allocated.
        let ra = catch_unwind(AssertUnwindSafe(a));
        // SAFETY: the job was never pushed: this frame is its one taker.
        let b = unsafe { job.take_func() };
        return finish(ra, catch_unwind(AssertUnwindSafe(b)));
    }
    bump_exclusive(&me.counters.forks, 1);
    engine.wake_a_job_thief_if_one_sleeps(worker.index());
    let ra = catch_unwind(AssertUnwindSafe(a));
    // SAFETY: as for the push: this thread owns the deque.
    let rb = match unsafe { me.jobs.pop() } {
        // Nobody stole it (the common case): it is ours again, run it here.
        Some(popped) if popped == ptr => {
            // SAFETY: popped back: this frame is the job's one taker.
            let b = unsafe { job.take_func() };
            catch_unwind(AssertUnwindSafe(b))
        }
        // A job pushed after ours and left there. It cannot happen: every fork nested in `a`
        // popped its own job back or waited for its thief before its frame returned. Were it
        // to happen, that job's frame would be gone: running it would use freed memory, and
        // so would leaving it to a thief. Stop the process instead.
        Some(_) => job_deque_corrupted(),
        // Stolen: everything pushed before it was stolen first, and everything after it
        // popped by its own join.
        None => {
            wait_for_latch(worker, &job.latch);
            // SAFETY: the latch is set: the thief wrote the result before setting it (the
            // latch's Acquire makes it visible) and touches the job no more.
            let outcome = job.result.with_mut(|r| unsafe { (*r).take() });
            match outcome {
                Some(outcome) => outcome,
                None => unreachable!("a set latch follows a written result"),
            }
        }
    };
    finish(ra, rb)
}

/// Runs other work of `worker`'s runtime until `latch` is set, parking only once the latch's
/// setter is bound to wake this worker.
#[cold]
#[inline(never)]
fn wait_for_latch(worker: &Worker, latch: &StackLatch) {
    if latch.probe() {
        return;
    }
    let wakes_us = latch.announce_wait();
    // The thief still uses the job in this frame: unwinding out of it now would free the job
    // under the thief. Every task and stolen job run while helping catches its own panics, so
    // this only guards against a bug of the runtime, by aborting (as rayon-core does).
    let guard = AbortOnUnwind;
    worker.help_until(|| latch.probe(), wakes_us);
    std::mem::forget(guard);
}

/// A job deque holding a job of a frame that returned: a bug of the runtime that no safe
/// continuation exists for.
#[cold]
#[inline(never)]
fn job_deque_corrupted() -> ! {
    eprintln!("tokengate: a join found a stack job of a frame that returned; aborting");
    std::process::abort()
}

/// Aborts the process if dropped: held across a region that must not unwind.
struct AbortOnUnwind;

impl Drop for AbortOnUnwind {
    #[cold]
    fn drop(&mut self) {
        eprintln!("tokengate: a panic escaped while a stolen join job was running; aborting");
        std::process::abort();
    }
}

/// Both closures' outcomes, once both are done: the values, or the first panic re-raised (the
/// other outcome dropped, its `Drop` contained).
#[inline]
fn finish<RA, RB>(ra: Outcome<RA>, rb: Outcome<RB>) -> (RA, RB) {
    match (ra, rb) {
        (Ok(ra), Ok(rb)) => (ra, rb),
        (Err(payload), rb) => {
            match rb {
                Ok(value) => drop_contained(value),
                Err(other) => forget_payload(other),
            }
            resume_unwind(payload)
        }
        (Ok(ra), Err(payload)) => {
            drop_contained(ra);
            resume_unwind(payload)
        }
    }
}

/// Runs `a` then `b` on the calling thread with `join`'s panic rule: for a join that cannot
/// reach a worker of its runtime (the runtime is shut down).
pub(crate) fn join_inline<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA,
    B: FnOnce() -> RB,
{
    let ra = catch_unwind(AssertUnwindSafe(a));
    finish(ra, catch_unwind(AssertUnwindSafe(b)))
}

impl Engine {
    /// After worker `me` forked a stack job: wakes a sleeping worker to steal it, if one
    /// sleeps (as `wake_a_thief_if_one_sleeps` in `dispatch.rs` does for the local deque).
    #[inline]
    fn wake_a_job_thief_if_one_sleeps(&self, me: usize) {
        if self.workers.len() == 1 {
            return; // nobody to steal it
        }
        // ORDERING: SeqCst fence between the push and reading `sleepers`, paired with the
        // fence of a worker going to sleep (`Sleeper::prepare_sleep`), which counts itself in
        // `sleepers` before its fence and looks at every job deque after it: either it sees
        // the push, or we see it counted. (`loom-tests/tests/runtime_join.rs` deadlocks without
        // it: its mutant build removes it.)
        #[cfg(not(tokengate_mutant = "join_wake_fence"))]
        fence(Ordering::SeqCst);
        // ORDERING: Relaxed, ordered by the fence above.
        if self.sleepers.load(Ordering::Relaxed) != 0 {
            self.wake_one_job_thief(me);
        }
    }

    #[cold]
    fn wake_one_job_thief(&self, except: usize) {
        for (w, shared) in self.workers.iter().enumerate() {
            if w != except && shared.sleeper.wake() {
                return;
            }
        }
    }
}
