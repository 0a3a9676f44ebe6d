//! A submitted task: its [`TaskSlot`] plus what the runtime knows about it ([`TaskMeta`]),
//! behind the two type-erased views the runtime needs: [`Job`] for workers (no types) and
//! [`Outcome<T>`] for handles (the output type only), each held through a [`TaskRef`] (a
//! reference counted in the task's header); and [`erase`], the one place where a task is put
//! in its memory (its token's cell, `cells.rs`, or the heap) and its borrow is erased.

mod group;
mod id;

use std::alloc::{self, Layout};
use std::ptr::NonNull;
use std::task::{Context, Poll};
use std::time::Instant;

use crate::error::TaskError;
use crate::operation::{Operation, Weight};
use crate::primitives::{CellTable, NeverRan, Registration, TaskSlot, TokenState};
use crate::sync::{AtomicBool, AtomicUsize, Ordering};

pub(crate) use group::{GroupOutput, TaskGroup};
pub(crate) use id::next_runtime_serial;
pub use id::TaskId;

/// Where a task must run, when routing may not choose.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Placement {
    /// A broadcast run: only this worker may run it, from its broadcast queue.
    pub(crate) broadcast_to: Option<usize>,
    /// The worker it must run on: `broadcast_to`, or its sticky key's worker (its home).
    pub(crate) home: Option<usize>,
}

/// When a task was admitted, on its runtime's clock (0 when timings are off), and the
/// instant by which it must start, if its operation has a deadline. The default (0, none) is
/// that of a task refused at admission.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct AdmissionTime {
    pub(crate) ns: u64,
    pub(crate) deadline: Option<Instant>,
}

/// The operation index of a task that has no entry in its runtime's table (refused).
const NO_OPERATION: u32 = u32::MAX;

/// The home of a task any worker may run.
const NO_HOME: u32 = u32::MAX;

/// What the runtime records about a task besides its slot.
#[derive(Debug)]
pub(crate) struct TaskMeta {
    pub(crate) id: TaskId,
    pub(crate) operation: &'static str,
    /// Identity of the runtime that admitted it (the address of its engine), so that a
    /// worker joining the task knows whether it may run it inline.
    pub(crate) runtime: usize,
    /// Index of its operation in the runtime's operation table.
    pub(crate) op: u32,
    /// The operation's kill epoch at admission (see `OpEntry::epoch`).
    pub(crate) epoch: u32,
    /// The worker it must run on ([`NO_HOME`] if any may): its broadcast's, or its sticky
    /// key's worker. (A `u32` and flags rather than `Option`s: the record is part of every
    /// task's cell, where each byte saved is room for a closure.)
    home: u32,
    pub(crate) weight: Weight,
    /// Its operation has a sticky key (its home is that key's worker).
    pub(crate) sticky: bool,
    /// A broadcast run: only its home worker may run it, from its broadcast queue.
    broadcast: bool,
    /// Its operation has a concurrency limit: it runs only with a permit.
    pub(crate) limited: bool,
    /// Its operation is [`fifo`](Operation::fifo): a worker that submits it queues it in
    /// its mailbox, not its local deque.
    pub(crate) fifo: bool,
    /// Admission time on the runtime's clock (0 when timings are off).
    pub(crate) submitted_ns: u64,
    /// Start deadline, if its operation has one.
    pub(crate) deadline: Option<Instant>,
    /// Asked to stop: a kill or cancel that came while it was running, so a retry loop stops
    /// between attempts.
    pub(crate) stop: AtomicBool,
}

impl TaskMeta {
    /// The metadata of task `id` of `op`, admitted by the runtime `runtime`. `entry`: the
    /// index of its operation in the runtime's table and that operation's kill epoch at
    /// admission (`None` for a refused task, which has no entry).
    #[inline(always)]
    pub(crate) fn new(
        id: TaskId,
        runtime: usize,
        op: &Operation,
        entry: Option<(u32, u32)>,
        time: AdmissionTime,
        placement: Placement,
    ) -> Self {
        let (index, epoch) = entry.unwrap_or((NO_OPERATION, 0));
        Self {
            id,
            operation: op.name(),
            runtime,
            op: index,
            epoch,
            home: placement.home.map_or(NO_HOME, |w| w as u32),
            weight: op.get_weight(),
            sticky: op.get_sticky().is_some(),
            broadcast: placement.broadcast_to.is_some(),
            limited: op.get_concurrency_limit().is_some(),
            fifo: op.is_fifo(),
            submitted_ns: time.ns,
            deadline: time.deadline,
            stop: AtomicBool::new(false),
        }
    }

    /// The worker it must run on, if any: its broadcast's, or its sticky key's.
    #[inline]
    pub(crate) fn home(&self) -> Option<usize> {
        (self.home != NO_HOME).then_some(self.home as usize)
    }

    /// The worker whose broadcast run it is, if it is one.
    #[inline]
    pub(crate) fn broadcast_to(&self) -> Option<usize> {
        self.home().filter(|_| self.broadcast)
    }

    /// Whether a kill, cancel or shutdown asked the running task to stop retrying.
    pub(crate) fn stop_requested(&self) -> bool {
        // ORDERING: Relaxed: a request, checked between attempts.
        self.stop.load(Ordering::Relaxed)
    }

    pub(crate) fn request_stop(&self) {
        // ORDERING: Relaxed, see `stop_requested`.
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// A task: its header (reference count, how to dispose of it, where it lives), what the
/// runtime knows of it and its slot (closure, output, waiter). `repr(C)` with the header
/// first, so that a pointer to the task is a pointer to its header ([`TaskRef`]), and the
/// record next, at the same offset in every task ([`META_OFFSET`]), so that a view that does
/// not know the task's type reads it without a virtual call.
#[repr(C)]
pub(crate) struct Task<F, T> {
    header: Header,
    meta: TaskMeta,
    slot: TaskSlot<F, T>,
}

/// Where a task's [`TaskMeta`] is, from its start: after the header, whatever the task's
/// closure and output (`repr(C)` lays the fields out in order, and neither `Header` nor
/// `TaskMeta` depends on them; `erase` checks it for each type).
const META_OFFSET: usize = std::mem::offset_of!(Task<fn(), ()>, meta);

/// The record of the task that `view` (a [`Job`] or [`Outcome`] of it) points to.
///
/// # Safety
///
/// `view` points to a `Task<F, T>` (the only implementor of the `unsafe` trait [`Job`]).
#[inline]
unsafe fn meta_of<D: ?Sized>(view: &D) -> &TaskMeta {
    // SAFETY: `view` is a `Task<F, T>` (the contract), whose record is at `META_OFFSET` (see
    // `Task`); it lives as long as the view.
    unsafe {
        &*(view as *const D)
            .cast::<u8>()
            .add(META_OFFSET)
            .cast::<TaskMeta>()
    }
}

impl dyn Job + '_ {
    /// What the runtime knows of the task.
    #[inline]
    pub(crate) fn meta(&self) -> &TaskMeta {
        // SAFETY: a `dyn Job` is a `Task<F, T>`: `Job` is an `unsafe` trait that only `Task`
        // implements.
        unsafe { meta_of(self) }
    }
}

impl<T> dyn Outcome<T> + '_ {
    /// What the runtime knows of the task.
    #[inline]
    pub(crate) fn meta(&self) -> &TaskMeta {
        // SAFETY: as for `dyn Job` (`Outcome` extends `Job`).
        unsafe { meta_of(self) }
    }
}

/// What a [`TaskRef`] needs of a task whose type it does not know.
#[repr(C)]
pub(crate) struct Header {
    /// The references to the task ([`TaskRef`]s): its handle's and the runtime's.
    refs: AtomicUsize,
    /// Drops the task in place and frees its memory: `dispose::<F, T>` of its type.
    dispose: unsafe fn(NonNull<Header>),
    home: Home,
}

/// Where a task's memory is.
#[derive(Clone, Copy)]
enum Home {
    /// Its own heap allocation, of `Layout::new::<Task<F, T>>()`.
    Heap,
    /// Cell `index` of a [`CellTable`]: its token's.
    Cell {
        table: NonNull<CellTable>,
        index: u32,
    },
}

// SAFETY: the table a cell home points to is `Sync` and `Send` (`CellTable`), and the pointer
// is only used to release the cell, by the task's last holder.
unsafe impl Send for Home {}
// SAFETY: as above.
unsafe impl Sync for Home {}

/// The most references a task may have (as `Arc`'s limit: past it, the count could wrap).
const MAX_REFS: usize = isize::MAX as usize;

impl<F: FnOnce() -> T, T> Task<F, T> {
    /// Whether a task of this type fits a token's cell (else it lives on the heap).
    #[inline]
    pub(crate) const fn fits_a_cell() -> bool {
        CellTable::fits::<Self>()
    }
}

/// The worker's view of a task: run it or kill it.
///
/// # Safety
///
/// Implemented by [`Task`] alone: its record is read from any `dyn Job` (and `dyn Outcome`) at
/// a fixed offset ([`META_OFFSET`]), which another implementor would not have there.
pub(crate) unsafe trait Job: Send + Sync {
    /// Runs the task here unless it ran or was killed already, calling `before_publish` with
    /// the final state just before the outcome becomes visible; returns whether it ran.
    fn run_then(&self, before_publish: &mut dyn FnMut(TokenState)) -> bool;
    /// Resolves the task without running it, if it has not started.
    fn abandon(&self, error: TaskError, lifecycle: NeverRan) -> bool;
    fn is_ready(&self) -> bool;
    fn state(&self) -> TokenState;
    fn register_waiter(&self) -> Registration;
    fn unregister_waiter(&self);
    /// Blocks until the outcome is ready.
    fn wait(&self);
}

/// The handle's view of a task: the [`Job`] view plus the outcome.
pub(crate) trait Outcome<T>: Job {
    fn take_output(&self) -> Option<Result<T, TaskError>>;
    /// Runs the task here for its handle's join unless it ran or was killed already (then
    /// `None`), calling `before_publish` as [`Job::run_then`] does, and returns the outcome
    /// itself, marked taken ([`TaskSlot::run_and_take`]).
    fn run_and_take(
        &self,
        before_publish: &mut dyn FnMut(TokenState),
    ) -> Option<Result<T, TaskError>>;
    /// Polls the outcome as a future; see [`TaskSlot::poll_output`].
    fn poll_output(&self, cx: &mut Context<'_>) -> Poll<Result<T, TaskError>>;
    /// Withdraws the waker of a future dropped before its outcome arrived.
    fn unregister_waker(&self);
    /// The handle is gone: the outcome is dropped as soon as it exists (`TaskSlot::detach`).
    fn detach(&self);
    /// The same task as a [`Job`] (a virtual call: the crate's MSRV, 1.80, has no trait
    /// upcasting; the fork's path reads the record with [`meta`](dyn Outcome::meta) instead).
    fn as_job(&self) -> &dyn Job;
}

/// A reference to a task, counted in the task's header: `Arc`'s protocol, for tasks that
/// live in a token's cell as well as on the heap. `D` is the view: [`Job`] or [`Outcome`].
pub(crate) struct TaskRef<D: ?Sized> {
    /// Points to a `Task<F, T>` (so, to its header: `repr(C)`, header first).
    ptr: NonNull<D>,
}

// SAFETY: a `TaskRef` shares the task as `Arc` shares its value: it hands out `&D` only, and
// the last reference drops the task, on whichever thread that is; so `D: Send + Sync`.
unsafe impl<D: ?Sized + Send + Sync> Send for TaskRef<D> {}
// SAFETY: as above.
unsafe impl<D: ?Sized + Send + Sync> Sync for TaskRef<D> {}

impl<D: ?Sized> TaskRef<D> {
    #[inline]
    fn header(&self) -> &Header {
        // SAFETY: `ptr` points to a live task (this reference keeps it alive), which starts
        // with its header (`Task` is `repr(C)`).
        unsafe { self.ptr.cast::<Header>().as_ref() }
    }
}

impl<D: ?Sized> std::ops::Deref for TaskRef<D> {
    type Target = D;

    #[inline]
    fn deref(&self) -> &D {
        // SAFETY: the task is alive while this reference is.
        unsafe { self.ptr.as_ref() }
    }
}

impl<D: ?Sized> Clone for TaskRef<D> {
    #[inline]
    fn clone(&self) -> Self {
        // ORDERING: Relaxed, as `Arc::clone`: a new reference comes from an existing one,
        // which keeps the task alive meanwhile.
        let before = self.header().refs.fetch_add(1, Ordering::Relaxed);
        if before > MAX_REFS {
            std::process::abort();
        }
        Self { ptr: self.ptr }
    }
}

impl<D: ?Sized> Drop for TaskRef<D> {
    #[inline]
    fn drop(&mut self) {
        // ORDERING: Release, as `Arc`'s drop: whatever this holder did with the task happens
        // before the last holder disposes of it.
        if self.header().refs.fetch_sub(1, Ordering::Release) != 1 {
            return;
        }
        // ORDERING: Acquire, paired with every other holder's Release above (the decrements
        // form one release sequence on the count). A load rather than a fence, as `Arc` does
        // under ThreadSanitizer, which does not see fences: the same guarantee, and one that
        // every checker sees.
        self.header().refs.load(Ordering::Acquire);
        let dispose = self.header().dispose;
        // SAFETY: this was the last reference: nobody else reaches the task, and `dispose` is
        // the function of its type (written by `erase`).
        unsafe { dispose(self.ptr.cast()) };
    }
}

/// Drops a `Task<F, T>` in place (a panic of a `Drop` in it, user code, contained) and frees
/// its memory: its heap allocation, or its cell.
///
/// # Safety
///
/// `header` is the header of a `Task<F, T>` whose last reference is gone.
unsafe fn dispose<F: FnOnce() -> T, T>(header: NonNull<Header>) {
    const { assert!(!std::mem::needs_drop::<Header>() && !std::mem::needs_drop::<TaskMeta>()) };
    let task = header.cast::<Task<F, T>>().as_ptr();
    // SAFETY: the task is alive and ours alone (the contract).
    let home = unsafe { (*task).header.home };
    // SAFETY: as above; it is not touched again. A spent slot (its task ran, its outcome
    // was taken) leaves nothing to drop: the header and the record have no drop glue.
    let dropped = if unsafe { (*task).slot.is_spent() } {
        Ok(())
    } else {
        // SAFETY: as above.
        unsafe { crate::contain::drop_in_place_caught(task) }
    };
    match home {
        // SAFETY: allocated by `erase` with this layout.
        Home::Heap => unsafe { alloc::dealloc(task.cast(), Layout::new::<Task<F, T>>()) },
        // SAFETY: the cell was claimed for this task (`erase`), which is dropped.
        Home::Cell { table, index } => unsafe { CellTable::release(table, index as usize) },
    }
    if let Err(payload) = dropped {
        crate::contain::forget_payload(payload);
    }
}

/// A claimed token cell, for [`erase`] to build a task in.
pub(crate) struct CellPlace {
    pub(crate) table: NonNull<CellTable>,
    pub(crate) index: u32,
    pub(crate) bytes: NonNull<u8>,
}

/// A type-erased, shared task, as the token table and workers hold it.
pub(crate) type JobRef = TaskRef<dyn Job>;

/// A type-erased, shared task, as its handle holds it.
pub(crate) type OutcomeRef<T> = TaskRef<dyn Outcome<T>>;

/// Builds the task of `meta` and `slot` in `cell` (a token's cell, claimed for it: the caller
/// checked that the task [fits](Task::fits_a_cell)) or on the heap, and returns its handle's
/// and its workers' views, with the borrow `'a` erased from both.
///
/// # Safety
///
/// Nothing the task borrows for `'a` may be used or dropped after `'a` ends. Either `'a` is
/// `'static`; or the closure is a [`GroupTask`](group::GroupTask) of a [`TaskGroup`] whose
/// owner does not let `'a` end before the group is empty (`scope`, `broadcast`): by then the
/// closure has run or was dropped, and its output (a [`GroupOutput`]) was taken or dropped,
/// or it panicked (a payload is `'static`), so what remains of the task (an empty closure
/// cell, an error, a waiter, the metadata) borrows nothing; or the task holds no closure and
/// no value of `T` (a refusal's resolved task). A `cell` given is claimed for this task and
/// `Task<F, T>` fits it.
#[inline]
pub(crate) unsafe fn erase<'a, F, T>(
    meta: TaskMeta,
    slot: TaskSlot<F, T>,
    cell: Option<CellPlace>,
) -> (OutcomeRef<T>, JobRef)
where
    F: FnOnce() -> T + Send + 'a,
    T: Send + 'a,
{
    // SAFETY: forwarded from the caller; `write_slot` writes one slot at the place it is
    // given.
    unsafe { build(|| meta, cell, |place| place.write(slot)) }
}

/// [`erase`] of a new task of `func` (its slot as [`TaskSlot::new`] makes it) and of the
/// record `meta` makes, both written in place once the task's memory is known: the
/// admission's path.
///
/// # Safety
///
/// As [`erase`].
#[inline(always)]
pub(crate) unsafe fn erase_new<'a, F, T>(
    meta: impl FnOnce() -> TaskMeta,
    func: F,
    cell: Option<CellPlace>,
) -> (OutcomeRef<T>, JobRef)
where
    F: FnOnce() -> T + Send + 'a,
    T: Send + 'a,
{
    // SAFETY: forwarded from the caller; the place is fresh memory for the slot.
    unsafe { build(meta, cell, |place| TaskSlot::write_new(place, func)) }
}

/// What [`erase`] and [`erase_new`] share: the task's memory, its header, its record (made
/// by `meta`), its slot written by `write_slot` (given the slot's place, fresh memory), and
/// the two views.
///
/// # Safety
///
/// As [`erase`]; `write_slot` initialises the slot at the place it is given.
#[inline(always)]
unsafe fn build<'a, F, T>(
    meta: impl FnOnce() -> TaskMeta,
    cell: Option<CellPlace>,
    write_slot: impl FnOnce(*mut TaskSlot<F, T>),
) -> (OutcomeRef<T>, JobRef)
where
    F: FnOnce() -> T + Send + 'a,
    T: Send + 'a,
{
    let (place, home) = match cell {
        Some(cell) => {
            debug_assert!(Task::<F, T>::fits_a_cell());
            let home = Home::Cell {
                table: cell.table,
                index: cell.index,
            };
            (cell.bytes.cast::<Task<F, T>>(), home)
        }
        None => {
            let layout = Layout::new::<Task<F, T>>();
            // SAFETY: a task is never zero-sized (its header is not).
            let raw = unsafe { alloc::alloc(layout) };
            match NonNull::new(raw.cast::<Task<F, T>>()) {
                Some(place) => (place, Home::Heap),
                None => alloc::handle_alloc_error(layout),
            }
        }
    };
    const { assert!(std::mem::offset_of!(Task<F, T>, meta) == META_OFFSET) };
    let task = place.as_ptr();
    // SAFETY: `place` is fresh memory for one `Task<F, T>`: a claimed cell it fits (the
    // contract) or a new allocation of its layout. Written field by field, in place (a
    // whole `Task` built first would be copied into it).
    unsafe {
        std::ptr::addr_of_mut!((*task).header).write(Header {
            // The handle's and the runtime's (the two views below).
            refs: AtomicUsize::new(2),
            dispose: dispose::<F, T>,
            home,
        });
        std::ptr::addr_of_mut!((*task).meta).write(meta());
        write_slot(std::ptr::addr_of_mut!((*task).slot));
    }
    let outcome: *mut (dyn Outcome<T> + 'a) = place.as_ptr();
    let job: *mut (dyn Job + 'a) = place.as_ptr();
    // SAFETY: the pointer types differ only in the lifetime bound of the trait object; the
    // caller guarantees that no borrow for `'a` is used after `'a` ends (see above). The two
    // references are the two counted in the header (written above).
    unsafe {
        let outcome = std::mem::transmute::<
            *mut (dyn Outcome<T> + 'a),
            *mut (dyn Outcome<T> + 'static),
        >(outcome);
        let job = std::mem::transmute::<*mut (dyn Job + 'a), *mut (dyn Job + 'static)>(job);
        (
            TaskRef {
                ptr: NonNull::new_unchecked(outcome),
            },
            TaskRef {
                ptr: NonNull::new_unchecked(job),
            },
        )
    }
}

// SAFETY: `Task` is the type whose record sits at `META_OFFSET` (see `Job`).
unsafe impl<F, T> Job for Task<F, T>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    #[inline]
    fn run_then(&self, before_publish: &mut dyn FnMut(TokenState)) -> bool {
        self.slot.run_then(before_publish)
    }

    fn abandon(&self, error: TaskError, lifecycle: NeverRan) -> bool {
        self.slot.abandon(error, lifecycle)
    }

    #[inline]
    fn is_ready(&self) -> bool {
        self.slot.is_ready()
    }

    fn state(&self) -> TokenState {
        self.slot.state()
    }

    fn register_waiter(&self) -> Registration {
        self.slot.register_waiter()
    }

    fn unregister_waiter(&self) {
        self.slot.unregister_waiter()
    }

    fn wait(&self) {
        self.slot.wait()
    }
}

impl<F, T> Outcome<T> for Task<F, T>
where
    F: FnOnce() -> T + Send,
    T: Send,
{
    fn take_output(&self) -> Option<Result<T, TaskError>> {
        self.slot.take_output()
    }

    #[inline]
    fn run_and_take(
        &self,
        before_publish: &mut dyn FnMut(TokenState),
    ) -> Option<Result<T, TaskError>> {
        self.slot.run_and_take(before_publish)
    }

    fn poll_output(&self, cx: &mut Context<'_>) -> Poll<Result<T, TaskError>> {
        self.slot.poll_output(cx)
    }

    fn unregister_waker(&self) {
        self.slot.unregister_waker()
    }

    fn detach(&self) {
        self.slot.detach()
    }

    fn as_job(&self) -> &dyn Job {
        self
    }
}
