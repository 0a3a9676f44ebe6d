//! The lock-free building blocks of the runtime, public for study and reuse. Each documents
//! its memory-ordering contract; each is model-checked with loom in `loom-tests/`.
//!
//! | type | what it is | loom model (`loom-tests/tests/`) |
//! | --- | --- | --- |
//! | [`ArrayQueue`] | a bounded MPMC queue (Vyukov's, with stamps) | `queue.rs` |
//! | [`TokenRing`], [`Token`] | the bounded pool of recycled tokens that admits tasks | `ring.rs` |
//! | [`LocalDeque`], [`Steal`] | a worker's own tokens: LIFO for it, stolen oldest first (bounded Chase–Lev) | `deque.rs` |
//! | [`JobDeque`], [`JobSteal`] | a worker's forked stack jobs (`join`), as pointers: LIFO for it, stolen oldest first (bounded Chase–Lev) | `join.rs` |
//! | [`StackLatch`] | a stack job's latch: the thief sets it, the owner waits for it, parking only if the setter will wake it | `join.rs` |
//! | [`Mailbox`], [`LanePicker`] | a worker's three weight lanes, taken without starvation | `mailbox.rs` |
//! | [`TaskSlot`], [`Registration`], [`TokenState`] | one task's closure, state word and outcome; the waiter and waker hand-over | `slot.rs`, `slot_future.rs` |
//! | [`Sleeper`] | a worker's activity word and its park/wake protocol (`sleep.md`) | `sleep.rs` |
//! | [`Limiter`] | a concurrency limiter whose waiters wait in it, not on a thread | `limiter.rs` |
//!
//! Nothing here knows about tasks, workers or runtimes: the rest of the crate is built on
//! these, never the other way round.

mod deque;
mod job_deque;
mod latch;
mod limiter;
mod mailbox;
mod queue;
mod ring;
mod sleep;
mod slot;
mod state;
mod wait_list;

pub use deque::{LocalDeque, Steal};
pub use job_deque::{JobDeque, JobSteal};
pub use latch::StackLatch;
pub use limiter::Limiter;
pub use mailbox::{LanePicker, Mailbox, STARVATION_LIMIT};
pub use queue::ArrayQueue;
pub use ring::{Token, TokenRing};
pub use sleep::Sleeper;
pub use slot::{Registration, TaskSlot};
pub use state::TokenState;
