//! [`CellTable`]: fixed-size, cache-line aligned cells, one per token of a runtime, where a
//! task admitted under that token is built when it fits ([`CELL_BYTES`]) and the cell is
//! free: so a small task allocates nothing, from any thread. The cells are allocated in
//! chunks of [`CHUNK_CELLS`] (or of the capacity rounded up to a power of two, if smaller),
//! each the first time one of its cells is claimed: a table reserves no cell memory when
//! made but the cells' states (a cache line each, so that threads claiming and releasing
//! neighbouring cells do not contend), and `capacity × CELL_BYTES` more once every cell was
//! used (rounded up to whole chunks).
//!
//! ## Who owns a cell when
//!
//! - **Free**: nobody. [`CellTable::claim`] takes it (a CAS: at most one claimer wins; the
//!   runtime claims a cell only while it holds the cell's token, so it never loses).
//! - **In use**: a value lives in it, owned by whoever claimed it, then by whoever it was
//!   handed to (for a task: its references, its handle's and the runtime's; whichever drops
//!   the last one drops the task in place). That owner frees the cell
//!   ([`CellTable::release`]), from any thread.
//!
//! In the runtime a task run by a worker gives its token back before its outcome is
//! published, so a token may be taken again while its cell still holds the task: an outcome
//! nobody joined yet, a handle kept after it took the outcome, or the worker's reference for
//! the instant after the run. A cell is free once every reference to its task is gone; until
//! then the token's next taker finds it in use and builds its task on the heap instead. An
//! outcome waiting for its handle holds a cell, never a token.
//!
//! ## The table outlives its owner while a cell is in use
//!
//! A handle may outlive its runtime, and its task may live in a cell. The runtime's drop
//! *orphans* the table ([`CellTable::orphan`]): it marks every cell (a marked cell cannot be
//! claimed again), counts those in use, and the table's memory is freed by whoever releases
//! the last of them (or at once if none is). The count starts at a bias larger than any
//! number of cells, which `orphan` removes (less the cells it found in use) only once it has
//! marked them all: a release racing the marking cannot bring the count to zero early.
//! Modelled in `loom-tests/tests/cells.rs`, with two mutants that CI expects the models to
//! catch: `cells_no_bias` (the count starts at one, and `orphan` adds each cell in use after
//! marking it) and `cells_claim_relaxed` (a claim does not acquire the last release).
//!
//! ## Memory ordering
//!
//! - Release → claim: `release` frees the cell with a Release RMW after its value was dropped
//!   in place; `claim`'s CAS acquires it. So the drop of the old value happens before the new
//!   one is written.
//! - Chunks: allocated by the first claim of one of their cells, published by a CAS
//!   (Release) that a later claim loads (Acquire); a losing racer frees its own.
//! - Orphaning: `orphan` marks each cell with an AcqRel RMW; a `release` that finds the mark
//!   (AcqRel) decrements the table's count (AcqRel), and the thread that brings it to zero
//!   frees the table: every other release and the marking happen before the free.

use std::alloc::{self, Layout};
use std::mem::MaybeUninit;
use std::ptr::NonNull;

use crate::sync::{AtomicPtr, AtomicU8, AtomicUsize, Ordering};

/// The bytes of a task (header, slot, record, closure and output inline) that fit a cell.
/// A larger or more aligned task lives on the heap.
pub const CELL_BYTES: usize = 256;

/// The alignment of a cell (a cache line): a task needing more lives on the heap.
pub const CELL_ALIGN: usize = 64;

/// Cells per chunk of memory (16 KiB), allocated when one of them is first claimed.
pub const CHUNK_CELLS: usize = if cfg!(loom) { 2 } else { 64 };

/// The cell is in use: a task lives in it.
const IN_USE: u8 = 1;
/// The table's runtime is gone: the release of this cell counts towards freeing the table.
const ORPHANED: u8 = 2;

/// Larger than any number of cells, so that releases alone never bring the count to zero
/// before [`CellTable::orphan`] has counted the cells in use.
const BIAS: usize = usize::MAX / 2;

/// The storage of one task.
#[repr(C, align(64))]
struct Bytes(MaybeUninit<[u8; CELL_BYTES]>);

/// A cell's state (`IN_USE`, `ORPHANED`), alone on its cache line. Neighbouring cells belong
/// to tokens that different threads hold at once, and a cell's state is written by its
/// claimer and by whoever releases it: packed 64 to a line, every claim and release on one
/// core evicted the line from the other (two workers each forking and joining their own
/// tasks through handles ran `fib(34)` 1.3× faster once the states were apart).
#[repr(align(64))]
struct CellState(AtomicU8);

impl std::ops::Deref for CellState {
    type Target = AtomicU8;

    #[inline]
    fn deref(&self) -> &AtomicU8 {
        &self.0
    }
}

const _: () = assert!(std::mem::align_of::<Bytes>() == CELL_ALIGN);

/// Cells for values of at most [`CELL_BYTES`] bytes, claimed and released by index from any
/// thread; the table lives until it was [orphaned](Self::orphan) and its last cell released.
///
/// ```
/// use tokengate::primitives::CellTable;
///
/// let table = CellTable::new(4);
/// // SAFETY (of the `unsafe` calls): the cell is claimed and written here, its value dropped
/// // (a `u64`: nothing to drop) before it is released; the table is orphaned once.
/// let place = unsafe { table.as_ref() }.claim(2).expect("a new table's cells are free");
/// unsafe { place.cast::<u64>().write(7) };
/// assert!(unsafe { table.as_ref() }.claim(2).is_none(), "in use");
/// unsafe { CellTable::release(table, 2) };
/// unsafe { CellTable::orphan(table) }; // no cell in use: freed now
/// ```
pub struct CellTable {
    /// Per `chunk_cells` cells, their bytes (`Bytes` is `repr(C)` and aligned, so a chunk's
    /// cells are contiguous); null until one of them is first claimed.
    chunks: Box<[AtomicPtr<Bytes>]>,
    /// Cells per chunk: [`CHUNK_CELLS`], or the capacity rounded up to a power of two if
    /// smaller; a power of two, so that a claim finds its chunk with a shift and a mask.
    chunk_cells: usize,
    /// `log2(chunk_cells)`.
    chunk_shift: u32,
    /// Per cell: `IN_USE`, `ORPHANED`, each on a cache line of its own.
    states: Box<[CellState]>,
    /// `BIAS` until [`orphan`](Self::orphan), then the cells still in use.
    remaining: AtomicUsize,
}

// SAFETY: the bytes of a cell are written only by the claimer (the holder of the cell's token)
// and then reached only through the references of the task built there, which hand the task
// over by the reference count's Release/Acquire (see the module's docs). The states and the
// count are atomics.
unsafe impl Send for CellTable {}
// SAFETY: as above.
unsafe impl Sync for CellTable {}

impl CellTable {
    /// A table of `capacity` free cells, on the heap (so that its address stays fixed: values
    /// built in it may point to it). Owned by the caller until [`orphan`](Self::orphan); never
    /// freed if it is not orphaned.
    pub fn new(capacity: usize) -> NonNull<CellTable> {
        let chunk_cells = CHUNK_CELLS.min(capacity.next_power_of_two());
        let table = Box::new(CellTable {
            chunks: (0..capacity.div_ceil(chunk_cells))
                .map(|_| AtomicPtr::new(std::ptr::null_mut()))
                .collect(),
            chunk_cells,
            chunk_shift: chunk_cells.trailing_zeros(),
            states: (0..capacity).map(|_| CellState(AtomicU8::new(0))).collect(),
            remaining: AtomicUsize::new(if cfg!(tokengate_mutant = "cells_no_bias") {
                1
            } else {
                BIAS
            }),
        });
        NonNull::from(Box::leak(table))
    }

    fn chunk_layout(&self) -> Layout {
        match Layout::array::<Bytes>(self.chunk_cells) {
            Ok(layout) => layout,
            Err(_) => unreachable!("at most CHUNK_CELLS cells of CELL_BYTES bytes"),
        }
    }

    /// The bytes of chunk `chunk`, allocated if this is the first claim of one of its cells.
    #[inline]
    fn chunk(&self, chunk: usize) -> NonNull<Bytes> {
        // ORDERING: Acquire, paired with the Release of the CAS below: the chunk's
        // allocation happens before its use by another token's holder (there is nothing to
        // see in the bytes themselves: a cell's contents are handed over by its claim).
        match NonNull::new(self.chunks[chunk].load(Ordering::Acquire)) {
            Some(bytes) => bytes,
            None => self.allocate_chunk(chunk),
        }
    }

    #[cold]
    fn allocate_chunk(&self, chunk: usize) -> NonNull<Bytes> {
        let layout = self.chunk_layout();
        // SAFETY: the layout's size is not zero (at least one cell).
        let raw = unsafe { alloc::alloc(layout) } as *mut Bytes;
        if raw.is_null() {
            alloc::handle_alloc_error(layout);
        }
        // Two holders of tokens of one chunk may race to allocate it: one wins, the other
        // frees its allocation and uses the winner's.
        // ORDERING: AcqRel on success (Release publishes the allocation), Acquire on failure
        // (the winner's allocation is the one we use).
        match self.chunks[chunk].compare_exchange(
            std::ptr::null_mut(),
            raw,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            // SAFETY: just allocated, not null.
            Ok(_) => unsafe { NonNull::new_unchecked(raw) },
            Err(winner) => {
                // SAFETY: ours, allocated above with this layout, never published.
                unsafe { alloc::dealloc(raw.cast(), layout) };
                // SAFETY: the winner's, published non-null.
                unsafe { NonNull::new_unchecked(winner) }
            }
        }
    }

    /// Whether a value of type `V` fits a cell.
    #[inline]
    pub const fn fits<V>() -> bool {
        std::mem::size_of::<V>() <= CELL_BYTES && std::mem::align_of::<V>() <= CELL_ALIGN
    }

    /// The number of cells.
    pub fn capacity(&self) -> usize {
        self.states.len()
    }

    /// Claims cell `index` if it is free: the returned place ([`CELL_BYTES`] bytes, aligned
    /// to [`CELL_ALIGN`]) is the caller's, to take one value that [`fits`](Self::fits),
    /// until it [releases](Self::release) the cell. `None` if the cell is in use, or the
    /// table was orphaned.
    ///
    /// # Panics
    ///
    /// If `index` is not below the capacity.
    #[inline]
    pub fn claim(&self, index: usize) -> Option<NonNull<u8>> {
        let state = &self.states[index];
        // The chunk first: were its allocation to unwind (an allocation-error hook that
        // panics), no cell would be left marked in use with no owner.
        let chunk = self.chunk(index >> self.chunk_shift);
        // ORDERING: Acquire on success, paired with the Release of `release`: the drop of
        // the cell's previous value happens before the claimer writes the next one. Relaxed
        // on failure: nothing is read.
        #[cfg(not(tokengate_mutant = "cells_claim_relaxed"))]
        let success = Ordering::Acquire;
        // The mutant: the next claimer's write races the previous owner's drop.
        #[cfg(tokengate_mutant = "cells_claim_relaxed")]
        let success = Ordering::Relaxed;
        state
            .compare_exchange(0, IN_USE, success, Ordering::Relaxed)
            .ok()?;
        // SAFETY: a chunk holds `chunk_cells` cells.
        let cell = unsafe { chunk.as_ptr().add(index & (self.chunk_cells - 1)) };
        // SAFETY: derived from a non-null chunk pointer.
        Some(unsafe { NonNull::new_unchecked(cell) }.cast())
    }

    /// Frees cell `index`, whose value was dropped in place (or moved out); frees the table
    /// too if it was orphaned and this was its last cell in use. The cell's place must not be
    /// used after.
    ///
    /// # Safety
    ///
    /// `table` is a table from [`new`](Self::new), cell `index` was claimed from it and not
    /// released since, and the caller owns that claim (it claimed the cell, or the claimer
    /// handed the cell to it); its value is gone.
    #[inline]
    pub unsafe fn release(table: NonNull<CellTable>, index: usize) {
        // SAFETY: the table lives while a cell is in use (see the module's docs).
        let this = unsafe { table.as_ref() };
        // ORDERING: AcqRel: Release publishes the drop of the task to the next claimer
        // (`claim`'s Acquire), and to the thread that frees the table; Acquire reads the
        // orphan's mark.
        let before = this.states[index].fetch_and(!IN_USE, Ordering::AcqRel);
        debug_assert!(before & IN_USE != 0, "a cell is released once per claim");
        if before & ORPHANED != 0 {
            // SAFETY: forwarded: this cell was in use when the table was orphaned.
            unsafe { Self::count_down(table, 1) };
        }
    }

    /// Gives up the owner's hold on the table: marks every cell (none can be claimed any
    /// more), then frees the table now if none is in use, else leaves that to the release of
    /// the last one.
    ///
    /// # Safety
    ///
    /// `table` is a table from [`new`](Self::new), orphaned once, and the caller touches it
    /// no more, except to release the cells it owns. Every other use of the table must
    /// happen before this call, except by a thread that owns a cell in use until it is done
    /// with the table (its cell keeps the table alive): such a thread may race this with a
    /// claim, which then fails or claims a cell that the orphaning counts.
    pub unsafe fn orphan(table: NonNull<CellTable>) {
        // SAFETY: not freed yet: only `count_down` frees it, which needs the bias removed
        // below.
        let this = unsafe { table.as_ref() };
        let mut in_use = 0;
        for state in this.states.iter() {
            // ORDERING: AcqRel: Acquire makes the drop of a value released before the mark
            // happen before the free; Release passes the mark to the release that follows.
            if state.fetch_or(ORPHANED, Ordering::AcqRel) & IN_USE != 0 {
                in_use += 1;
                // The mutant: the count starts at one (the owner's share), and each cell in
                // use is added after it was marked; a release between the two brings the
                // count to zero and frees the table while other cells are in use.
                #[cfg(tokengate_mutant = "cells_no_bias")]
                // ORDERING: AcqRel, as `count_down`.
                this.remaining.fetch_add(1, Ordering::AcqRel);
            }
        }
        #[cfg(not(tokengate_mutant = "cells_no_bias"))]
        let owed = BIAS - in_use;
        #[cfg(tokengate_mutant = "cells_no_bias")]
        let owed = 1;
        // SAFETY: forwarded.
        unsafe { Self::count_down(table, owed) };
    }

    /// Takes `n` from the count; the thread that brings it to zero frees the table.
    ///
    /// # Safety
    ///
    /// As [`release`](Self::release) or [`orphan`](Self::orphan), whose share `n` is.
    #[cold]
    unsafe fn count_down(table: NonNull<CellTable>, n: usize) {
        // SAFETY: not freed yet: it is freed below, by the one thread that takes the count
        // to zero.
        let this = unsafe { table.as_ref() };
        // ORDERING: AcqRel: each count-down releases what its thread did to the table; the
        // last one acquires all of them before the free.
        if this.remaining.fetch_sub(n, Ordering::AcqRel) != n {
            return;
        }
        // Checked in every build (once per table, not per task): freeing a cell in use would
        // free a live value's memory.
        assert!(
            this.states
                .iter()
                // ORDERING: Relaxed: every release happened before (see above).
                .all(|s| s.load(Ordering::Relaxed) & IN_USE == 0),
            "a cell table was freed while a value lived in one of its cells"
        );
        for chunk in this.chunks.iter() {
            // ORDERING: Relaxed: every allocation happened before (see above).
            let bytes = chunk.load(Ordering::Relaxed);
            if !bytes.is_null() {
                // SAFETY: allocated in `allocate_chunk` with this layout; no cell is in use,
                // and no token of the table will be taken again, so nothing reaches it.
                unsafe { alloc::dealloc(bytes.cast(), this.chunk_layout()) };
            }
        }
        // SAFETY: made by `Box::leak` in `new`; nothing reaches it after this (see above).
        drop(unsafe { Box::from_raw(table.as_ptr()) });
    }
}

impl std::fmt::Debug for CellTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // ORDERING: Relaxed: a report.
        let in_use = self
            .states
            .iter()
            .filter(|s| s.load(Ordering::Relaxed) & IN_USE != 0)
            .count();
        f.debug_struct("CellTable")
            .field("capacity", &self.capacity())
            .field("in_use", &in_use)
            .finish()
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_cell_is_claimed_once_until_released() {
        let table = CellTable::new(2);
        // SAFETY: this test owns every claim, releases each once, and orphans the table once,
        // at the end.
        unsafe {
            let t = table.as_ref();
            assert_eq!(t.capacity(), 2);
            let a = t.claim(0).expect("free");
            assert!(t.claim(0).is_none(), "in use");
            let b = t.claim(1).expect("another cell");
            assert_ne!(a, b);
            assert_eq!(a.as_ptr() as usize % CELL_ALIGN, 0);
            CellTable::release(table, 0);
            assert_eq!(t.claim(0), Some(a), "free again");
            CellTable::release(table, 0);
            CellTable::release(table, 1);
            CellTable::orphan(table);
        }
    }

    #[test]
    fn an_orphaned_table_lives_until_its_last_cell_is_released() {
        let table = CellTable::new(3);
        // SAFETY: as above; the cells released after `orphan` were in use when it ran.
        unsafe {
            let place = table.as_ref().claim(1).expect("free");
            place.as_ptr().write_bytes(7, CELL_BYTES);
            CellTable::orphan(table);
            // Still alive: miri reports a use after free here if it were not.
            assert_eq!(*place.as_ptr().add(CELL_BYTES - 1), 7);
            assert!(
                table.as_ref().claim(0).is_none(),
                "orphaned: no more claims"
            );
            CellTable::release(table, 1);
        }
    }

    #[test]
    fn cells_of_two_chunks_are_distinct_and_aligned() {
        let table = CellTable::new(CHUNK_CELLS + 1);
        // SAFETY: as above.
        unsafe {
            let t = table.as_ref();
            let first = t.claim(0).unwrap();
            let last = t.claim(CHUNK_CELLS).unwrap();
            assert_ne!(first, last);
            assert_eq!(last.as_ptr() as usize % CELL_ALIGN, 0);
            last.as_ptr().write_bytes(1, CELL_BYTES);
            first.as_ptr().write_bytes(2, CELL_BYTES);
            CellTable::release(table, CHUNK_CELLS);
            CellTable::release(table, 0);
            CellTable::orphan(table);
        }
    }

    #[test]
    fn a_claim_past_the_capacity_panics() {
        let table = CellTable::new(1);
        // SAFETY: a reference to a live table, orphaned once after.
        let claimed = std::panic::catch_unwind(|| unsafe { table.as_ref() }.claim(1));
        assert!(claimed.is_err(), "index 1 of a one-cell table");
        // SAFETY: no cell in use; orphaned once (miri reports a leak otherwise).
        unsafe { CellTable::orphan(table) };
    }

    #[test]
    fn an_empty_table_is_fine() {
        let table = CellTable::new(0);
        // SAFETY: orphaned once.
        unsafe { CellTable::orphan(table) };
    }
}
