//! Loom models of [`CellTable`] (the task cells: one per token, claimed and released from any
//! thread, the table outliving its owner while a cell is in use).
//!
//! Checks:
//! - a value dropped and released by one thread happens before the next claimer's write of
//!   the same cell (the value is a loom `UnsafeCell`, so loom checks the two accesses'
//!   causality), and a cell is claimed by at most one thread;
//! - orphaning the table while cells are released, and while a thread that owns a cell
//!   claims another, frees the table once, after its last cell in use is released: the free
//!   asserts that no cell is in use, in every build. (A claim needs the table alive: in the
//!   runtime, the claimer holds a token, and the table is orphaned only once every token is
//!   gone.)
//!
//! Two mutant builds, each with its own test that expects loom to fail the model (`.ci/run`
//! runs both):
//! - `--cfg tokengate_mutant="cells_no_bias"`: the table's count starts at one and `orphan`
//!   adds each cell in use after marking it; loom finds the release that comes between the
//!   mark and the addition and frees the table early (while another cell is in use, or
//!   before the owner's addition).
//! - `--cfg tokengate_mutant="cells_claim_relaxed"`: a claim's CAS is Relaxed; loom finds the
//!   next claimer's write racing the previous owner's drop.
//!
//! Every model runs its threads in both spawn orders. Preemption bound: 3.
#![cfg(loom)]

use std::ptr::NonNull;

use loom::cell::UnsafeCell;
use loom::sync::Arc;
use tokengate::primitives::CellTable;
use tokengate_loom_tests::{check_each_order, Order};

const PREEMPTION_BOUND: usize = 3;

type Role = Box<dyn FnOnce() -> bool>;

/// A table pointer that roles may carry to their threads, and per cell a shadow of its
/// memory that loom sees: every write of a cell's value (the claimer's) and its drop (the
/// last owner's) goes through the shadow too, so loom checks their causality as it would a
/// field's.
#[derive(Clone)]
struct Shared {
    table: NonNull<CellTable>,
    shadows: Arc<Vec<UnsafeCell<u64>>>,
}
// SAFETY: `CellTable` is `Send + Sync`; the models follow its contracts for the pointer.
unsafe impl Send for Shared {}

impl Shared {
    fn new(capacity: usize) -> Self {
        Self {
            table: CellTable::new(capacity),
            shadows: Arc::new((0..capacity).map(|_| UnsafeCell::new(0)).collect()),
        }
    }

    /// Claims cell `index` and writes `value` into it.
    fn claim_and_write(&self, index: usize, value: u64) -> Option<NonNull<u64>> {
        // SAFETY: the table is alive: each model keeps it so while it claims.
        let place = unsafe { self.table.as_ref() }.claim(index)?.cast::<u64>();
        self.shadows[index].with_mut(|v| {
            // SAFETY: a claimed cell is ours; the shadow is accessed as the cell is.
            unsafe { *v = value };
        });
        // SAFETY: a claimed cell is ours to write, and a `u64` fits it.
        unsafe { place.as_ptr().write(value) };
        Some(place)
    }

    /// Drops the value in cell `index` (after checking it is `expected`) and releases the
    /// cell.
    ///
    /// # Safety
    ///
    /// The caller owns the claim of cell `index`, whose value is at `place`.
    unsafe fn drop_and_release(&self, index: usize, place: NonNull<u64>, expected: u64) {
        // SAFETY: ours (the contract).
        assert_eq!(unsafe { place.as_ptr().read() }, expected);
        self.shadows[index].with_mut(|v| {
            // SAFETY: as above.
            unsafe {
                assert_eq!(*v, expected, "the cell holds another claimer's value");
                *v = 0; // the drop
            }
        });
        // SAFETY: forwarded.
        unsafe { CellTable::release(self.table, index) };
    }
}

/// A cell's place, carried to another thread.
#[derive(Clone, Copy)]
struct Place(NonNull<u64>);
// SAFETY: the models hand a cell's ownership over with its place.
unsafe impl Send for Place {}

/// One thread owns a cell's value (handed to it by the claimer, as a task's last reference
/// is), drops it and releases the cell, while the token's next holder tries to claim the
/// cell for a new value. The claim fails (the old value is there) or comes after the drop.
fn release_then_claim(order: Order) {
    assert!(CellTable::fits::<u64>());
    let shared = Shared::new(1);
    let Some(first) = shared.claim_and_write(0, 1) else {
        unreachable!("a new table's cells are free")
    };
    let first = Place(first);
    let owner: Role = {
        let shared = shared.clone();
        Box::new(move || {
            // SAFETY: the claimer handed the cell over to this thread.
            unsafe { shared.drop_and_release(0, first.0, 1) };
            false
        })
    };
    let next: Role = {
        let shared = shared.clone();
        Box::new(move || match shared.claim_and_write(0, 2) {
            Some(place) => {
                // SAFETY: claimed by this thread.
                unsafe { shared.drop_and_release(0, place, 2) };
                true
            }
            None => false,
        })
    };
    let claimed = order.spawn_all(vec![owner, next]);
    assert!(!claimed[0]);
    // SAFETY: every cell was released; orphaned once.
    unsafe { CellTable::orphan(shared.table) };
}

#[cfg(not(tokengate_mutant = "cells_claim_relaxed"))]
#[test]
fn a_released_cell_is_claimed_after_its_value_is_dropped() {
    check_each_order(PREEMPTION_BOUND, release_then_claim);
}

/// With a Relaxed claim, loom must find the next claimer's write racing the drop.
#[cfg(tokengate_mutant = "cells_claim_relaxed")]
#[test]
#[should_panic(expected = "Causality violation")]
fn mutant_claiming_relaxed_is_caught() {
    check_each_order(PREEMPTION_BOUND, release_then_claim);
}

/// The owner orphans the table while one thread releases a cell it owns and another, which
/// owns a cell too (so the table is alive for it), claims a third, then releases both. The
/// table is freed once, after the last cell in use is released (its free asserts that none
/// is in use); a claim after the orphaning fails.
fn orphan_while_cells_are_released(order: Order) {
    let shared = Shared::new(3);
    let (Some(first), Some(second)) = (shared.claim_and_write(0, 1), shared.claim_and_write(1, 2))
    else {
        unreachable!("a new table's cells are free")
    };
    let (first, second) = (Place(first), Place(second));
    let releaser: Role = {
        let shared = shared.clone();
        Box::new(move || {
            // SAFETY: the claimer handed the cell over to this thread.
            unsafe { shared.drop_and_release(0, first.0, 1) };
            false
        })
    };
    let claimer: Role = {
        let shared = shared.clone();
        Box::new(move || {
            // The table is alive: this thread owns cell 1 until the end.
            let claimed = match shared.claim_and_write(2, 3) {
                Some(place) => {
                    // SAFETY: claimed by this thread, before the orphaning marked the cell.
                    unsafe { shared.drop_and_release(2, place, 3) };
                    true
                }
                None => false,
            };
            // SAFETY: the claimer handed the cell over to this thread.
            unsafe { shared.drop_and_release(1, second.0, 2) };
            claimed
        })
    };
    let owner: Role = {
        let table = shared.table;
        let table = Place(table.cast());
        Box::new(move || {
            // SAFETY: orphaned once; the owner touches the table no more.
            unsafe { CellTable::orphan(table.0.cast()) };
            false
        })
    };
    order.spawn_all(vec![releaser, claimer, owner]);
}

#[cfg(not(tokengate_mutant = "cells_no_bias"))]
#[test]
fn an_orphaned_table_is_freed_after_its_last_cell_in_use() {
    check_each_order(PREEMPTION_BOUND, orphan_while_cells_are_released);
}

/// Without the bias, loom must find the table freed early: the free's assertion (a cell still
/// in use) or, when the early free comes after every release, the owner's use of the freed
/// count (loom's report of an access to a dropped atomic).
#[cfg(tokengate_mutant = "cells_no_bias")]
#[test]
#[should_panic]
fn mutant_counting_without_the_bias_is_caught() {
    check_each_order(PREEMPTION_BOUND, orphan_while_cells_are_released);
}
