//! The token table: per token, the task admitted under it and what travels with the token
//! (its generation, its permit mark), in cells that only the token's holder touches; the
//! token's task cell (`primitives/cells.rs`: where a small task under the token is built, if the
//! token's previous task is gone); and the kill requests that `kill(id)` leaves for a token's
//! task.
//!
//! The holder reaches the cells through one door, [`TokenTable::held`], which takes a
//! `&Token` as the proof that the caller holds it: the one safety argument of the table is
//! made there, on [`Held`].

use crossbeam_utils::CachePadded;
use std::marker::PhantomData;
use std::ptr::NonNull;

use crate::contain::drop_contained;
use crate::primitives::{CellTable, Token};
use crate::sync::{AtomicU32, Ordering, UnsafeCell};
use crate::task::{CellPlace, JobRef, Task, TaskId};

/// Per token: the task waiting under it. Padded so that neighbouring tokens held by
/// different threads do not share a cache line.
struct TokenSlot {
    job: UnsafeCell<Option<JobRef>>,
    /// How many tasks this token admitted (never 0 once one was: 0 is "no kill requested").
    generation: UnsafeCell<u32>,
    /// The task holds a permit of its operation's concurrency limiter (handed over by the
    /// task that released it).
    permit: UnsafeCell<bool>,
    /// `kill(id)`: the generation of the task under this token to kill when reached (0: none).
    kill_generation: AtomicU32,
}

/// One [`TokenSlot`] per token of the ring.
pub(crate) struct TokenTable {
    slots: Box<[CachePadded<TokenSlot>]>,
    /// One task cell per token; orphaned when the table is dropped (tasks in cells may
    /// outlive the runtime, with their handles).
    cells: NonNull<CellTable>,
}

// SAFETY: a slot's cells are only touched through a `Held` of the slot's token, that is by the
// token's holder alone (see `Held`); `kill_generation` is atomic. Shared between threads, the
// table hands out nothing else. The task cells are `Sync` (`CellTable`), claimed through a
// `Held` too.
unsafe impl Sync for TokenTable {}
// SAFETY: the slots' contents are `Send` (a `JobRef` is); the cell table is `Send`.
unsafe impl Send for TokenTable {}

impl TokenTable {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            slots: (0..capacity)
                .map(|_| {
                    CachePadded::new(TokenSlot {
                        job: UnsafeCell::new(None),
                        generation: UnsafeCell::new(0),
                        permit: UnsafeCell::new(false),
                        kill_generation: AtomicU32::new(0),
                    })
                })
                .collect(),
            cells: CellTable::new(capacity),
        }
    }

    /// The cells of `token`'s slot, for the token's holder.
    #[inline]
    pub(crate) fn held<'a>(&'a self, token: &'a Token) -> Held<'a> {
        Held {
            slot: &self.slots[token.index()],
            cells: self.cells,
            index: token.index(),
            _token: PhantomData,
        }
    }

    /// Whether `kill(id)` asked for the task `id` (one admitted under a token).
    #[inline]
    pub(crate) fn kill_requested(&self, id: TaskId) -> bool {
        match self.slots.get(id.index() as usize) {
            // ORDERING: Relaxed: a request; a kill racing the task's start may miss it
            // (documented on `Runtime::kill`).
            Some(slot) => slot.kill_generation.load(Ordering::Relaxed) == id.generation(),
            None => false,
        }
    }

    /// Asks for the task `id` (of this table's runtime) to be killed when a worker reaches
    /// it. An id of no token (a task run without one) asks nothing.
    pub(crate) fn request_kill(&self, id: TaskId) {
        if let Some(slot) = self.slots.get(id.index() as usize) {
            // ORDERING: Relaxed, see `kill_requested`.
            slot.kill_generation
                .store(id.generation(), Ordering::Relaxed);
        }
    }
}

impl Drop for TokenTable {
    /// Drops the tasks still under their tokens (their last references perhaps: user code,
    /// contained), then lets go of the task cells, which live on while a handle holds a task
    /// in one.
    fn drop(&mut self) {
        for slot in self.slots.iter() {
            // SAFETY: `&mut self`: nobody else holds a token of this table any more.
            if let Some(job) = slot.job.with_mut(|j| unsafe { (*j).take() }) {
                drop_contained(job);
            }
        }
        // SAFETY: the table's own cell table, orphaned once: no token is taken again, so no
        // cell is claimed again.
        unsafe { CellTable::orphan(self.cells) };
    }
}

/// The slot of a token, as its holder sees it: the only access to the slot's cells.
///
/// ## Why only the holder touches the cells
///
/// 1. A `Held` is made from a `&Token` ([`TokenTable::held`]) and borrows it for its whole
///    life. Tokens are move-only (neither `Clone` nor `Copy`): the ring hands each to one
///    thread, and it moves on only by value (a queue push, a give-back). So the thread that
///    can lend a `&Token` is the token's one holder.
/// 2. `Held` is not `Send` (it holds a `&TokenSlot`, and the slot's cells are not `Sync`), so
///    the access stays on the holder's thread while the borrow lasts.
/// 3. Every hand-over of a token (a mailbox or queue push and its pop, a give-back to the
///    ring or a worker's token cache and the next take, a local deque's push and its pop or
///    steal, the limiter's queue) is a Release/Acquire pair (the deque's: a Release store
///    and an Acquire load of its `bottom`, or the owner's own pop), so what one holder wrote
///    in the cells happens before the next holder reads them.
pub(crate) struct Held<'a> {
    slot: &'a TokenSlot,
    cells: NonNull<CellTable>,
    index: usize,
    _token: PhantomData<&'a Token>,
}

impl Held<'_> {
    /// Calls `f` with the task waiting under the token.
    #[inline]
    pub(crate) fn with_job<R>(&self, f: impl FnOnce(&JobRef) -> R) -> R {
        self.slot.job.with(|j| {
            // SAFETY: the holder alone touches the cell (see `Held`).
            match unsafe { &*j } {
                Some(job) => f(job),
                None => unreachable!("an admitted token always has its task"),
            }
        })
    }

    /// Takes the task waiting under the token out of the table.
    #[inline]
    pub(crate) fn take_job(&self) -> JobRef {
        // SAFETY: the holder alone touches the cell (see `Held`).
        let job = self.slot.job.with_mut(|j| unsafe { (*j).take() });
        match job {
            Some(job) => job,
            None => unreachable!("an admitted token always has its task"),
        }
    }

    /// Puts `job` under the token, before the token is handed on (the hand-over publishes it).
    #[inline]
    pub(crate) fn put_job(&self, job: JobRef) {
        // SAFETY: the holder alone touches the cell (see `Held`).
        self.slot.job.with_mut(|j| unsafe { *j = Some(job) });
    }

    /// The token's task cell, claimed for a task of `F` and `T`, if such a task fits a
    /// cell and the token's previous task is gone; else the task goes on the heap.
    #[inline]
    pub(crate) fn claim_cell<F: FnOnce() -> T, T>(&self) -> Option<CellPlace> {
        if !Task::<F, T>::fits_a_cell() {
            return None;
        }
        let table = self.cells;
        // SAFETY: the table is orphaned only by `TokenTable::drop`, which takes `&mut`: not
        // while a token of it is held.
        let bytes = unsafe { table.as_ref() }.claim(self.index)?;
        Some(CellPlace {
            table,
            index: self.index as u32,
            bytes,
        })
    }

    /// Counts a new task admitted under the token; returns its generation (never 0).
    #[inline]
    pub(crate) fn next_generation(&self) -> u32 {
        // SAFETY: the holder alone touches the cell (see `Held`).
        self.slot.generation.with_mut(|g| unsafe {
            *g = (*g).wrapping_add(1).max(1);
            *g
        })
    }

    /// The generation of the task the token carries now (0: none admitted yet).
    #[inline]
    pub(crate) fn generation(&self) -> u32 {
        // SAFETY: the holder alone touches the cell (see `Held`).
        self.slot.generation.with(|g| unsafe { *g })
    }

    /// Whether the token's task holds its operation's permit; clears the mark.
    #[inline]
    pub(crate) fn take_permit(&self) -> bool {
        // SAFETY: the holder alone touches the cell (see `Held`).
        self.slot
            .permit
            .with_mut(|p| unsafe { std::mem::replace(&mut *p, false) })
    }

    /// Marks the token's task as holding its operation's permit.
    #[inline]
    pub(crate) fn give_permit(&self) {
        // SAFETY: the holder alone touches the cell (see `Held`).
        self.slot.permit.with_mut(|p| unsafe { *p = true });
    }
}
