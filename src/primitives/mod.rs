//! The lock-free building blocks of the runtime, public for study and reuse. Each documents
//! its memory-ordering contract; each is model-checked with loom in `loom-tests/`.
//!
//! | type | what it is | loom model (`loom-tests/tests/`) |
//! | --- | --- | --- |
//! | [`ArrayQueue`] | a bounded MPMC queue (Vyukov's, with stamps) | `queue.rs` |
//! | [`TokenRing`], [`Token`] | the bounded pool of recycled tokens that admits tasks | `ring.rs` |
//! | [`LocalDeque`], [`Steal`] | a worker's own tokens: LIFO for it, stolen oldest first (bounded Chase–Lev) | `deque.rs` |
//! | [`JobDeque`], [`JobSteal`] | a worker's forked stack jobs (`join`), as pointers: LIFO for it, stolen oldest first (bounded Chase–Lev) | `join.rs` (`job_deque.rs` here) |
//! | [`StackLatch`] | a stack job's latch: the thief sets it, the owner waits for it, parking only if the setter will wake it | `join.rs` (`latch.rs` here) |
//! | [`SpillQueue`] | a lock-free bounded front ([`ArrayQueue`]) with an overflow behind a lock, taken only when the front is full | `spill.rs` |
//! | [`Mailbox`], [`LanePicker`] | a worker's three weight lanes (each a [`SpillQueue`]), taken without starvation | `mailbox.rs` |
//! | [`CellTable`] | fixed-size cells claimed and released by index from any thread, allocated in chunks on first use; the table outlives its owner until its last cell is released | `cells.rs` |
//! | [`TaskSlot`], [`Registration`], [`TokenState`], [`NeverRan`] | one task's closure, state word and outcome; the waiter and waker hand-over | `slot.rs`, `slot_future.rs` |
//! | [`Sleeper`] | a worker's activity word and its park/wake protocol (`sleep.md`) | `sleep.rs` |
//! | [`Limiter`] | a concurrency limiter whose waiters wait in it, not on a thread | `limiter.rs` |
//!
//! ## Misuse from safe code
//!
//! Every safe function here is sound whatever thread calls it and in whatever order; a
//! precondition that would not be is either carried by a type, or in an `unsafe fn` with a
//! `# Safety` section ([`LocalDeque`]'s owner side). A call that breaks a promise without
//! breaking soundness is refused in words, in every build, before it changes anything, or
//! hands its value back:
//!
//! | call | what happens |
//! | --- | --- |
//! | [`Sleeper::register_current_thread`] from a second thread | panics; the first registration stands (registered once, `UNSET → WRITING → SET`) |
//! | [`TaskSlot::resolved`], [`TaskSlot::abandon`] with a state the task could still leave | does not compile: they take a [`NeverRan`] (`Killed` or `TimedOut`) |
//! | [`TokenRing::give_back`] of another ring's [`Token`] | panics (a token carries its ring's serial) |
//! | [`CellTable::claim`] of a cell in use, or of an orphaned table (by a thread whose own cell keeps it alive) | `None`: at most one claimer holds a cell |
//! | [`Limiter::release`] with no permit out | panics; the count is unchanged |
//! | [`ArrayQueue::push_bounded_by_caller`] on a full queue (the caller's bound is broken; [`Limiter::acquire`] with a waiting queue smaller than the ring) | panics instead of spinning |
//! | a condition of [`TokenRing::wait_for`] / [`TokenRing::take_or`] that panics | the panic passes through; the waiter's entry is removed on the way |
//!
//! Nothing here knows about tasks, workers or runtimes: the rest of the crate is built on
//! these, never the other way round.

mod cells;
mod deque;
mod job_deque;
mod latch;
mod limiter;
mod mailbox;
mod queue;
mod ring;
mod sleep;
mod slot;
mod spill;
mod state;
mod wait_list;

pub use cells::{CellTable, CELL_ALIGN, CELL_BYTES, CHUNK_CELLS};
pub use deque::{LocalDeque, Steal};
pub use job_deque::{JobDeque, JobSteal};
pub use latch::StackLatch;
pub use limiter::Limiter;
pub use mailbox::{LanePicker, Mailbox, STARVATION_LIMIT};
pub use queue::ArrayQueue;
pub use ring::{Token, TokenRing};
pub use sleep::Sleeper;
pub use slot::{Registration, TaskSlot};
pub use spill::SpillQueue;
pub use state::{NeverRan, TokenState};
