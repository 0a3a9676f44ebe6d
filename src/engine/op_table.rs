//! The operation table: per operation name, the state a runtime keeps (counters, pause and
//! block flags, the kill epoch, the concurrency limiter). Looked up on every submission, so
//! lookup is lock-free: an open-addressing table of atomic pointers, filled by CAS the first
//! time a name is seen, never shrunk until the runtime is dropped.

use std::cell::Cell;
use std::fmt;
use std::ptr;

use crate::metrics::counters::StripedOpCounters;
use crate::operation::{Operation, Weight};
use crate::primitives::Limiter;
use crate::sync::{
    thread_local, AtomicBool, AtomicPtr, AtomicU32, AtomicUsize, Mutex, Ordering, StatCounter,
};
use crate::task::TaskMeta;

/// Distinct operation names a runtime tracks separately; later names share the entry
/// [`OVERFLOW_NAME`]: its counters, its pause, its kill epoch and its concurrency limiter (the
/// first limited operation among them sets the limit, which then applies to every *limited*
/// operation of the overflow; unlimited ones stay unlimited). A user operation named
/// `OVERFLOW_NAME` is that entry too, so the name is never reported twice.
#[cfg(not(loom))]
pub(crate) const MAX_OPERATIONS: usize = 1024;
/// Small under loom: every slot is a modelled atomic.
#[cfg(loom)]
pub(crate) const MAX_OPERATIONS: usize = 4;
/// Slots of the table: twice the entries, so probes stay short.
const SLOTS: usize = 2 * MAX_OPERATIONS;
/// The entry shared by operations beyond [`MAX_OPERATIONS`].
pub(crate) const OVERFLOW_NAME: &str = "(other operations)";

/// What a runtime keeps per operation name.
pub(crate) struct OpEntry {
    pub(crate) name: &'static str,
    pub(crate) index: u32,
    /// The weight of the first submission of this name (for reports).
    pub(crate) weight: Weight,
    /// Admission of this operation is paused (`pause_operation`).
    pub(crate) paused: AtomicBool,
    /// Auto-blocked (or blocked by hand): submissions are refused.
    pub(crate) blocked: AtomicBool,
    /// Tasks of this operation held back by a pause.
    pub(crate) held: AtomicUsize,
    /// Bumped by `drain_operation`/`kill_operation`: tasks admitted under an older epoch are
    /// killed instead of run.
    pub(crate) epoch: AtomicU32,
    /// Attempts and failures at the last `unblock_operation` (auto-block counts from there).
    pub(crate) block_base: [StatCounter; 2],
    /// Set by the first submission whose operation has a concurrency limit.
    pub(crate) limiter: std::sync::OnceLock<Limiter>,
    capacity: usize,
    pub(crate) counters: StripedOpCounters,
}

impl OpEntry {
    fn new(op: &Operation, index: u32, workers: usize, capacity: usize) -> Self {
        Self {
            name: op.name(),
            index,
            weight: op.get_weight(),
            paused: AtomicBool::new(false),
            blocked: AtomicBool::new(false),
            held: AtomicUsize::new(0),
            epoch: AtomicU32::new(0),
            block_base: Default::default(),
            limiter: std::sync::OnceLock::new(),
            capacity,
            counters: StripedOpCounters::new(workers),
        }
    }

    #[inline]
    pub(crate) fn is_paused(&self) -> bool {
        // ORDERING: Acquire pairs with the Release store of `set_operation_paused` (see
        // `Shared::is_paused`); admission re-checks under the admin lock before holding.
        self.paused.load(Ordering::Acquire)
    }

    /// The operation's limiter, created by the first submission that asks for a limit.
    #[inline]
    pub(crate) fn limiter_for(&self, op: &Operation) -> Option<&Limiter> {
        match op.get_concurrency_limit() {
            Some(limit) => Some(
                self.limiter
                    .get_or_init(|| Limiter::new(limit as usize, self.capacity)),
            ),
            None => self.limiter.get(),
        }
    }

    #[inline]
    pub(crate) fn is_blocked(&self) -> bool {
        // ORDERING: Relaxed: a policy flag; a submission racing the block may be admitted.
        self.blocked.load(Ordering::Relaxed)
    }

    #[inline]
    pub(crate) fn epoch(&self) -> u32 {
        // ORDERING: Relaxed: a task admitted while a drain happens may be killed or run; the
        // drain promises only tasks admitted before it began.
        self.epoch.load(Ordering::Relaxed)
    }

    /// What a task admitted now records of its operation (see `TaskMeta::new`): the entry's
    /// index and its current kill epoch.
    #[inline]
    pub(crate) fn tag(&self) -> (u32, u32) {
        (self.index, self.epoch())
    }
}

impl fmt::Debug for OpEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OpEntry")
            .field("name", &self.name)
            .field("index", &self.index)
            .finish()
    }
}

/// The table. Entries are boxed and never move or go away before the table does, so
/// `&OpEntry` borrows of the table are stable.
pub(crate) struct OpTable {
    slots: Box<[AtomicPtr<OpEntry>]>,
    /// Slot of each entry by index, for lookups by index (history, task metadata).
    by_index: Box<[AtomicPtr<OpEntry>]>,
    count: AtomicUsize,
    insert_lock: Mutex<()>,
    workers: usize,
    capacity: usize,
    /// Unique in the process (never reused, unlike an address): the key of [`LAST_LOOKUP`].
    serial: u64,
}

/// The last entry the calling thread found by name: (table serial, name address, name
/// length, entry). A submitter submits the same operation again and again; this skips the
/// hash and the name comparison then. Names are `&'static str`, so one address and length is
/// one name; an entry lives as long as its table, and a table's serial is never reused, so
/// the pointer is used only while its table is alive (`entry` takes `&self` of that table).
type LastLookup = Cell<Option<(u64, usize, usize, *const OpEntry)>>;

#[cfg(not(loom))]
thread_local! {
    static LAST_LOOKUP: LastLookup = const { Cell::new(None) };
}

// loom's `thread_local!` does not accept the `const { .. }` form.
#[cfg(loom)]
thread_local! {
    static LAST_LOOKUP: LastLookup = Cell::new(None);
}

// SAFETY: entries are only shared as `&OpEntry` (all their fields are Sync) and freed in Drop,
// when nobody borrows the table.
unsafe impl Sync for OpTable {}
// SAFETY: as above; the table owns its entries.
unsafe impl Send for OpTable {}

fn hash(name: &str) -> usize {
    // FNV-1a: short names, no need for DoS resistance (names are `&'static str` of the program).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h as usize
}

impl OpTable {
    pub(crate) fn new(workers: usize, capacity: usize) -> Self {
        // 64 bits: never wraps, so a serial is never reused (a reused one could match a stale
        // `LAST_LOOKUP` of a dropped table).
        static NEXT_SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        // ORDERING: Relaxed: only uniqueness matters.
        let serial = NEXT_SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let null = || AtomicPtr::new(ptr::null_mut());
        Self {
            slots: (0..SLOTS).map(|_| null()).collect(),
            by_index: (0..=MAX_OPERATIONS).map(|_| null()).collect(),
            count: AtomicUsize::new(0),
            insert_lock: Mutex::new(()),
            workers,
            capacity,
            serial,
        }
    }

    /// The entry of `op`'s name, created on first sight. The common case, the name this thread
    /// looked up last, is inlined into the caller; the rest is [`find`](Self::find)'s.
    #[inline(always)]
    pub(crate) fn entry(&self, op: &Operation) -> &OpEntry {
        let name = op.name();
        let key = (self.serial, name.as_ptr() as usize, name.len());
        if let Some((serial, at, len, entry)) = LAST_LOOKUP.with(Cell::get) {
            if (serial, at, len) == key {
                // SAFETY: an entry of this very table (same serial), which lives as long as
                // `self` (see `LastLookup`).
                return unsafe { &*entry };
            }
        }
        self.find(op)
    }

    /// [`entry`](Self::entry) for a name this thread did not look up last: probes the table
    /// (creating the entry on first sight) and remembers the answer.
    #[inline(never)]
    fn find(&self, op: &Operation) -> &OpEntry {
        let name = op.name();
        let entry = if name == OVERFLOW_NAME {
            self.overflow()
        } else {
            match self.probe(name) {
                Ok(e) => e,
                // Once the table is full it stays full: names beyond it go to the overflow
                // entry without taking the insert lock.
                Err(_) if self.is_full() => self.overflow(),
                Err(_) => self.insert(op),
            }
        };
        let record = (
            self.serial,
            name.as_ptr() as usize,
            name.len(),
            entry as *const OpEntry,
        );
        LAST_LOOKUP.with(|l| l.set(Some(record)));
        entry
    }

    /// Looks `name` up along its probe path: its entry, or the first empty slot of the path
    /// (where it would be inserted). The table never fills its slots, so one is found.
    #[inline]
    fn probe(&self, name: &str) -> Result<&OpEntry, usize> {
        let mut i = hash(name) % SLOTS;
        loop {
            // ORDERING: Acquire pairs with the Release store in `insert` that published the
            // entry.
            let p = self.slots[i].load(Ordering::Acquire);
            if p.is_null() {
                return Err(i);
            }
            // SAFETY: published entries live as long as the table.
            let e = unsafe { &*p };
            if e.name == name {
                return Ok(e);
            }
            i = (i + 1) % SLOTS;
        }
    }

    /// The entry of the name `name` as a submission of it would find it: its own, or, once
    /// the table is full, the overflow entry; `None` if that entry does not exist yet.
    pub(crate) fn lookup(&self, name: &str) -> Option<&OpEntry> {
        if name != OVERFLOW_NAME {
            match self.probe(name) {
                Ok(e) => return Some(e),
                Err(_) if !self.is_full() => return None,
                Err(_) => {}
            }
        }
        self.by_index(MAX_OPERATIONS as u32)
    }

    /// Whether every entry of the table is taken (new names go to the overflow entry).
    fn is_full(&self) -> bool {
        // ORDERING: Relaxed: the count only grows. A stale "not full" sends `entry` to the
        // insert lock (where `insert` reads the count again) and makes `lookup` answer as if it
        // came a moment earlier.
        self.count.load(Ordering::Relaxed) >= MAX_OPERATIONS
    }

    /// The entry of the name `name`, as [`entry`](Self::entry) for a submission of it:
    /// created if it was never seen and the table has room (its name is then interned: kept
    /// once per process, see [`intern`]); else the overflow entry. An admin call on a name
    /// never submitted (to pause it before its first task) so interns at most
    /// `MAX_OPERATIONS` names per runtime.
    pub(crate) fn entry_by_name(&self, name: &str) -> &OpEntry {
        match self.lookup(name) {
            Some(e) => e,
            None if self.is_full() => self.overflow(),
            None => self.entry(&Operation::new(intern(name))),
        }
    }

    /// The entry with index `index`.
    pub(crate) fn by_index(&self, index: u32) -> Option<&OpEntry> {
        let p = self
            .by_index
            .get(index as usize)?
            // ORDERING: Acquire pairs with the Release store in `insert`.
            .load(Ordering::Acquire);
        // SAFETY: published entries live as long as the table.
        (!p.is_null()).then(|| unsafe { &*p })
    }

    /// The entry of an admitted task's operation.
    #[inline]
    pub(crate) fn of_task(&self, meta: &TaskMeta) -> &OpEntry {
        match self.by_index(meta.op) {
            Some(entry) => entry,
            None => unreachable!("an admitted task's operation is in the table"),
        }
    }

    /// Every entry, in creation order.
    pub(crate) fn iter(&self) -> impl Iterator<Item = &OpEntry> {
        (0..=MAX_OPERATIONS as u32).map_while(|i| self.by_index(i))
    }

    /// Creates the entry of `op` (the slow path of a name's first submission: it takes the
    /// table's insert lock, so that indices are handed out densely; lookups never lock).
    #[cold]
    fn insert(&self, op: &Operation) -> &OpEntry {
        let _guard = self.insert_lock.lock().unwrap_or_else(|e| e.into_inner());
        // Inserts are serialised by the lock: the empty slot found stays empty until we fill it.
        let i = match self.probe(op.name()) {
            Ok(e) => return e,
            Err(i) => i,
        };
        // ORDERING: Relaxed: written under the lock only.
        let index = self.count.load(Ordering::Relaxed);
        if index >= MAX_OPERATIONS {
            return self.overflow();
        }
        // ORDERING: Relaxed, as above.
        self.count.store(index + 1, Ordering::Relaxed);
        let entry = Box::into_raw(Box::new(OpEntry::new(
            op,
            index as u32,
            self.workers,
            self.capacity,
        )));
        // ORDERING: Release publishes the entry to `by_index` readers, then to lookups.
        self.by_index[index].store(entry, Ordering::Release);
        // ORDERING: Release, as above.
        self.slots[i].store(entry, Ordering::Release);
        // SAFETY: just published; lives as long as the table.
        unsafe { &*entry }
    }

    #[cold]
    fn overflow(&self) -> &OpEntry {
        // The overflow entry lives at index MAX_OPERATIONS, created once.
        let slot = &self.by_index[MAX_OPERATIONS];
        // ORDERING: Acquire pairs with the Release of the CAS below.
        let p = slot.load(Ordering::Acquire);
        if !p.is_null() {
            // SAFETY: published entries live as long as the table.
            return unsafe { &*p };
        }
        let entry = Box::into_raw(Box::new(OpEntry::new(
            &Operation::new(OVERFLOW_NAME),
            MAX_OPERATIONS as u32,
            self.workers,
            self.capacity,
        )));
        // ORDERING: AcqRel: publish ours, or read the winner's.
        match slot.compare_exchange(ptr::null_mut(), entry, Ordering::AcqRel, Ordering::Acquire) {
            // SAFETY: published; lives as long as the table.
            Ok(_) => unsafe { &*entry },
            Err(winner) => {
                // SAFETY: never published; we own it.
                drop(unsafe { Box::from_raw(entry) });
                // SAFETY: published by the winner; lives as long as the table.
                unsafe { &*winner }
            }
        }
    }
}

impl Drop for OpTable {
    fn drop(&mut self) {
        for p in self.by_index.iter() {
            // ORDERING: Relaxed: `&mut self`, no concurrent access.
            let p = p.load(Ordering::Relaxed);
            if !p.is_null() {
                // SAFETY: `&mut self`: nobody borrows an entry; each was boxed once and is
                // listed once in `by_index`.
                drop(unsafe { Box::from_raw(p) });
            }
        }
    }
}

impl fmt::Debug for OpTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter().map(|e| e.name)).finish()
    }
}

/// `name` as a `&'static str`: operation names are `&'static str` everywhere (stats and
/// history records hand them out), so a name first met at run time (`pause_operation` of an
/// operation not yet submitted) is copied once per process into this table and kept. Only
/// admin calls get here, never the submit path, hence a plain std lock (not a protocol the
/// loom models need to see).
fn intern(name: &str) -> &'static str {
    static NAMES: std::sync::Mutex<Option<std::collections::HashSet<&'static str>>> =
        std::sync::Mutex::new(None);
    let mut names = NAMES.lock().unwrap_or_else(|e| e.into_inner());
    let names = names.get_or_insert_with(Default::default);
    if let Some(&known) = names.get(name) {
        return known;
    }
    let owned: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(owned);
    owned
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_one_entry_each_from_many_threads() {
        let table = std::sync::Arc::new(OpTable::new(2, 8));
        const NAMES: [&str; 6] = ["a", "b", "c", "d", "e", "f"];
        let threads: Vec<_> = (0..3)
            .map(|t| {
                let table = table.clone();
                std::thread::spawn(move || {
                    NAMES
                        .iter()
                        .cycle()
                        .skip(t)
                        .take(12)
                        .map(|n| (n.to_string(), table.entry(&Operation::new(n)).index))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let mut seen = std::collections::HashMap::new();
        for t in threads {
            for (name, index) in t.join().unwrap() {
                assert_eq!(*seen.entry(name).or_insert(index), index);
            }
        }
        let mut indices: Vec<u32> = table.iter().map(|e| e.index).collect();
        indices.sort();
        assert_eq!(
            indices,
            (0..6).collect::<Vec<_>>(),
            "indices are dense and unique"
        );
        assert_eq!(table.lookup("c").unwrap().name, "c");
        assert!(table.lookup("z").is_none());
        assert_eq!(table.entry_by_name("z").name, "z");
        assert_eq!(table.lookup("z").unwrap().index, 6);
    }

    #[test]
    fn names_beyond_the_limit_share_the_overflow_entry() {
        if cfg!(miri) {
            return; // a thousand entries is slow under miri and adds nothing
        }
        let table = OpTable::new(1, 2);
        for i in 0..MAX_OPERATIONS + 5 {
            let name: &'static str = Box::leak(format!("op{i}").into_boxed_str());
            let e = table.entry(&Operation::new(name));
            if i < MAX_OPERATIONS {
                assert_eq!(e.name, name);
            } else {
                assert_eq!(e.name, OVERFLOW_NAME);
            }
        }
        assert_eq!(table.iter().count(), MAX_OPERATIONS + 1);
    }
}
