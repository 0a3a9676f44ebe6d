//! The execution history: the last N records of tasks that finished on the workers, kept in
//! one ring per worker (each written only by its worker, so recording takes no locked
//! instruction) and merged by finishing time when read.
//!
//! Each record is a seqlock: the writer makes the sequence odd, writes the fields, makes it
//! even again; a reader that sees the same even sequence before and after its reads has a
//! consistent record, else skips it (it is being overwritten, so it is not among the last N
//! anyway). All fields are atomics, so a torn read is never undefined behaviour. These are
//! statistics, so std atomics (see `sync::StatCounter`).

use std::fmt;
use std::sync::atomic::fence;

use crate::primitives::TokenState;
use crate::sync::{bump_exclusive, Ordering, StatCounter};

/// What a worker records about a task (the operation as its table index).
#[derive(Clone, Copy, Debug)]
pub(crate) struct RawRecord {
    pub(crate) id: u64,
    /// Filled in when read (each worker's ring is its own).
    pub(crate) worker: usize,
    pub(crate) op: u32,
    pub(crate) outcome: TokenState,
    pub(crate) wait_ns: u64,
    pub(crate) run_ns: u64,
    pub(crate) finished_ns: u64,
}

#[derive(Default)]
struct Cell {
    seq: StatCounter,
    id: StatCounter,
    /// op index << 8 | outcome.
    op_outcome: StatCounter,
    wait_ns: StatCounter,
    run_ns: StatCounter,
    finished_ns: StatCounter,
}

/// One worker's ring.
pub(crate) struct WorkerHistory {
    cells: Box<[Cell]>,
    written: StatCounter,
}

impl WorkerHistory {
    pub(crate) fn new(len: usize) -> Self {
        Self {
            cells: (0..len).map(|_| Cell::default()).collect(),
            written: StatCounter::new(0),
        }
    }

    /// Records `r`. Only the owning worker calls this.
    #[inline]
    pub(crate) fn record(&self, r: RawRecord) {
        if self.cells.is_empty() {
            return;
        }
        // ORDERING: Relaxed: single writer.
        let n = self.written.load(Ordering::Relaxed);
        let cell = &self.cells[(n % self.cells.len() as u64) as usize];
        // ORDERING: Relaxed: single writer; the odd sequence is ordered before the field
        // writes by the Release fence below.
        let seq = cell.seq.load(Ordering::Relaxed);
        // ORDERING: Relaxed, then the fence: readers that see a field write also see the odd
        // sequence (fence-to-fence with their Acquire fence).
        cell.seq.store(seq + 1, Ordering::Relaxed);
        fence(Ordering::Release);
        // ORDERING: Relaxed, published by the Release store of the even sequence below.
        cell.id.store(r.id, Ordering::Relaxed);
        // ORDERING: Relaxed, as above.
        cell.op_outcome
            .store((r.op as u64) << 8 | r.outcome as u64, Ordering::Relaxed);
        // ORDERING: Relaxed, as above.
        cell.wait_ns.store(r.wait_ns, Ordering::Relaxed);
        // ORDERING: Relaxed, as above.
        cell.run_ns.store(r.run_ns, Ordering::Relaxed);
        // ORDERING: Relaxed, as above.
        cell.finished_ns.store(r.finished_ns, Ordering::Relaxed);
        // ORDERING: Release: a reader that Acquires this even sequence sees the fields.
        cell.seq.store(seq + 2, Ordering::Release);
        bump_exclusive(&self.written, 1);
    }

    /// The consistent records of this ring, in no particular order.
    pub(crate) fn read(&self, out: &mut Vec<RawRecord>) {
        for cell in self.cells.iter() {
            // ORDERING: Acquire pairs with the writer's final Release store.
            let before = cell.seq.load(Ordering::Acquire);
            if before == 0 || before % 2 == 1 {
                continue;
            }
            // ORDERING: Relaxed loads, validated by the sequence re-read after the fence.
            let id = cell.id.load(Ordering::Relaxed);
            // ORDERING: Relaxed, as above.
            let op_outcome = cell.op_outcome.load(Ordering::Relaxed);
            // ORDERING: Relaxed, as above.
            let wait_ns = cell.wait_ns.load(Ordering::Relaxed);
            // ORDERING: Relaxed, as above.
            let run_ns = cell.run_ns.load(Ordering::Relaxed);
            // ORDERING: Relaxed, as above.
            let finished_ns = cell.finished_ns.load(Ordering::Relaxed);
            // ORDERING: Acquire fence: if any load above saw a newer write, the re-read below
            // sees at least that write's odd sequence (paired with the writer's Release fence).
            fence(Ordering::Acquire);
            // ORDERING: Relaxed, ordered by the fence.
            if cell.seq.load(Ordering::Relaxed) != before {
                continue;
            }
            out.push(RawRecord {
                id,
                worker: 0,
                op: (op_outcome >> 8) as u32,
                outcome: TokenState::from_word((op_outcome & 0xff) as u32),
                wait_ns,
                run_ns,
                finished_ns,
            });
        }
    }
}

impl RawRecord {
    pub(crate) fn op_worker(&mut self, worker: usize) {
        self.worker = worker;
    }
}

impl fmt::Debug for WorkerHistory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WorkerHistory")
            .field("len", &self.cells.len())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: u64) -> RawRecord {
        RawRecord {
            id,
            worker: 0,
            op: 3,
            outcome: TokenState::Completed,
            wait_ns: id * 10,
            run_ns: id * 100,
            finished_ns: id,
        }
    }

    #[test]
    fn keeps_the_last_len_records() {
        let h = WorkerHistory::new(4);
        for id in 1..=10 {
            h.record(rec(id));
        }
        let mut out = Vec::new();
        h.read(&mut out);
        let mut ids: Vec<u64> = out.iter().map(|r| r.id).collect();
        ids.sort();
        assert_eq!(ids, [7, 8, 9, 10]);
        assert!(out.iter().all(|r| r.op == 3 && r.run_ns == r.id * 100));
    }

    #[test]
    fn a_reader_never_sees_a_torn_record() {
        let h = std::sync::Arc::new(WorkerHistory::new(2));
        let w = h.clone();
        let (writes, reads) = if cfg!(miri) {
            (200, 20)
        } else {
            (20_000, 2_000)
        };
        let writer = std::thread::spawn(move || {
            for id in 1..writes {
                w.record(rec(id));
            }
        });
        let mut out = Vec::new();
        for _ in 0..reads {
            out.clear();
            h.read(&mut out);
            for r in &out {
                assert_eq!(
                    (r.wait_ns, r.run_ns, r.finished_ns),
                    (r.id * 10, r.id * 100, r.id)
                );
            }
        }
        writer.join().unwrap();
    }
}
