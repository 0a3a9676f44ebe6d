//! The engine: the state a runtime shares with its workers, and everything that moves a task
//! from its submitter to a worker and back. The public [`Runtime`](crate::Runtime) is a thin
//! face over it.
//!
//! | file | concept |
//! | --- | --- |
//! | `mod.rs` | [`Engine`] and [`WorkerShared`]: the shared state; closing, stopping |
//! | `tokens.rs` | the token table: the task under each token, touched by its holder only |
//! | `token_cache.rs` | free tokens each worker keeps at hand, so the ring is not a hot spot |
//! | `admit.rs` | admission: take a token, write the task under it, hand it on |
//! | `dispatch.rs` | which worker gets a token, and waking it |
//! | `route.rs` | which workers may run which weight |
//! | `hold.rs` | pause: tokens held back, released, or killed where they wait |
//! | `op_table.rs` | the per-operation state, looked up by name without a lock |
//! | `reputation.rs` | attempts, failures, health and the auto-block rule |
//! | `worker.rs` | the worker loop: find work, run it, record it, sleep |
//! | `current.rs` | which worker of which runtime the calling thread is |
//! | `stack_job.rs` | a job on the stack: `join`'s second closure, and how a thief runs it |
//! | `join.rs` | fork-join on the stack: the fork, the pop back, the wait for a thief |
//! | `retry.rs` | a closure run again while it panics |
//! | `topology.rs` | the cores the process may run on |

pub(crate) mod admit;
pub(crate) mod current;
pub(crate) mod dispatch;
pub(crate) mod hold;
pub(crate) mod join;
pub(crate) mod op_table;
pub(crate) mod reputation;
pub(crate) mod retry;
pub(crate) mod route;
pub(crate) mod stack_job;
pub(crate) mod token_cache;
pub(crate) mod tokens;
pub(crate) mod topology;
pub(crate) mod worker;

use crossbeam_utils::CachePadded;
use std::fmt;

use crate::metrics::clock::Clock;
use crate::metrics::counters::{self, Stripe, WorkerCounters};
use crate::metrics::history::WorkerHistory;
use crate::primitives::{
    JobDeque, LocalDeque, Mailbox, Sleeper, SpillQueue, Token, TokenRing, TokenState,
};
use crate::sync::{fence, AtomicBool, AtomicU32, AtomicUsize, Ordering};
use crate::task::{next_runtime_serial, Job};

use dispatch::Handoffs;
use hold::Holds;
use op_table::{OpEntry, OpTable};
use route::Routes;
use stack_job::JobHeader;
use token_cache::TokenCaches;
use tokens::TokenTable;

/// What one worker shares with everybody: its mailbox, its local deque, its queues of tasks
/// only it may run (sticky and broadcast), its activity word, its counters and its history.
///
/// Its queues of tokens are bounded by [`queue_front`], not by the ring: the mailbox lanes and
/// the sticky and broadcast queues spill beyond it into an overflow behind a lock
/// ([`SpillQueue`]), the local deque into the mailbox (see `dispatch.rs`). So a runtime's
/// memory grows with its capacity plus a constant per worker, not with their product.
#[derive(Debug)]
pub(crate) struct WorkerShared {
    pub(crate) mailbox: Mailbox,
    /// Tasks this worker submitted itself (see `dispatch`): it pops the newest (a join finds
    /// its task there), idle workers steal the oldest. Only this worker's thread pushes and
    /// pops it. When it is full, its older half moves to the mailbox.
    pub(crate) deque: LocalDeque,
    /// The sticky queue: sticky tasks whose home is this worker, in submission order; never
    /// stolen.
    pub(crate) sticky: SpillQueue<Token>,
    /// Broadcast runs for this worker; never stolen, taken even while a sticky task runs.
    pub(crate) broadcasts: SpillQueue<Token>,
    pub(crate) sleeper: Sleeper,
    /// Tasks handed to this worker without a token (see [`Handoffs`]).
    pub(crate) handoffs: Handoffs,
    pub(crate) counters: CachePadded<WorkerCounters>,
    pub(crate) history: WorkerHistory,
    /// Stack jobs this worker forked with `join` (see `join.rs`): it pops the newest back,
    /// idle workers of the runtime steal the oldest. Only this worker's thread pushes and
    /// pops it.
    pub(crate) jobs: JobDeque<JobHeader>,
}

/// The smallest lock-free front of a worker's queue of tokens (tokio's and Go's local run
/// queues hold 256 as well): what a worker usually has queued fits, so the overflow's lock is
/// for bursts. Under loom 2, so that a model of a few tasks can reach the overflow
/// (`loom-tests/tests/runtime_spill.rs`), as tokio shrinks its local queue to 4 there.
pub(crate) const MIN_QUEUE_FRONT: usize = if cfg!(loom) { 2 } else { 256 };

/// How many tokens each of a worker's queues holds without a lock: the worker's share of the
/// ring (rounded up to a power of two), at least [`MIN_QUEUE_FRONT`], at most the whole ring
/// (a queue as large as the ring never spills: no worker holds more tokens than there are).
pub(crate) fn queue_front(capacity: usize, workers: usize) -> usize {
    (capacity / workers.max(1))
        .next_power_of_two()
        .max(MIN_QUEUE_FRONT)
        .min(capacity)
}

/// Options fixed at build time.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Settings {
    pub(crate) capacity: usize,
    pub(crate) workers: usize,
    /// Record timings: queue wait, run time, busy time, history.
    pub(crate) timings: bool,
    /// Each worker times one run in `sample_mask + 1` (a power of two): see
    /// `Builder::sample_timings`.
    pub(crate) sample_mask: u32,
    pub(crate) history_len: usize,
    pub(crate) auto_block: bool,
    /// The most tokens pauses may hold at once (see `hold.rs`).
    pub(crate) max_held: usize,
}

/// The state a runtime shares with its workers.
pub(crate) struct Engine {
    pub(crate) ring: TokenRing,
    pub(crate) ops: OpTable,
    pub(crate) clock: Clock,
    pub(crate) settings: Settings,
    /// Global pause and the tokens a pause holds back.
    holds: Holds,
    tokens: TokenTable,
    /// Free tokens the workers keep at hand (see `token_cache.rs`).
    caches: TokenCaches,
    pub(crate) workers: Box<[CachePadded<WorkerShared>]>,
    pub(crate) routes: Routes,
    /// No new admissions (set by `shutdown` and `shutdown_now`).
    closed: AtomicBool,
    /// Queued tasks are killed instead of run (set by `shutdown_now`).
    kill_queued: AtomicBool,
    /// Workers exit (set once every token is home after `closed`).
    stop: AtomicBool,
    /// How many workers are parked or about to park.
    pub(crate) sleepers: AtomicUsize,
    /// Ids of tasks run in place without a token.
    inline_ids: AtomicU32,
    /// This runtime's serial number in the process, part of its task ids.
    pub(crate) serial: u32,
}

impl Engine {
    pub(crate) fn new(settings: Settings, routes: Routes) -> Self {
        let Settings {
            capacity, workers, ..
        } = settings;
        let front = queue_front(capacity, workers);
        let history_len = if settings.timings {
            settings.history_len
        } else {
            0
        };
        Self {
            ring: TokenRing::new(capacity),
            ops: OpTable::new(workers, capacity),
            clock: Clock::new(),
            settings,
            holds: Holds::new(settings.max_held),
            tokens: TokenTable::new(capacity),
            caches: TokenCaches::new(workers, capacity),
            workers: (0..workers)
                .map(|_| {
                    CachePadded::new(WorkerShared {
                        mailbox: Mailbox::new(front),
                        deque: LocalDeque::new(front),
                        sticky: SpillQueue::new(front),
                        broadcasts: SpillQueue::new(front),
                        sleeper: Sleeper::new(),
                        handoffs: Handoffs::default(),
                        counters: CachePadded::default(),
                        history: WorkerHistory::new(history_len),
                        jobs: JobDeque::new(stack_job::JOB_DEQUE_CAPACITY),
                    })
                })
                .collect(),
            routes,
            closed: AtomicBool::new(false),
            kill_queued: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            sleepers: AtomicUsize::new(0),
            inline_ids: AtomicU32::new(0),
            serial: next_runtime_serial(),
        }
    }

    /// This runtime's identity, as recorded in its tasks.
    #[inline]
    pub(crate) fn id(&self) -> usize {
        self as *const Self as usize
    }

    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        // ORDERING: Relaxed: the authoritative check in `admit` is fenced; this one is a hint
        // (and `shutdown` wakes waiters after setting the flag).
        self.closed.load(Ordering::Relaxed)
    }

    #[inline]
    pub(crate) fn kill_queued(&self) -> bool {
        // ORDERING: Relaxed: set before `closed`'s fence in `close`; a worker that misses it
        // runs a task that `shutdown_now` would have killed, which the docs allow for tasks
        // already being picked up.
        self.kill_queued.load(Ordering::Relaxed)
    }

    #[inline]
    pub(crate) fn should_stop(&self) -> bool {
        // ORDERING: Acquire pairs with the Release store in `stop_workers`.
        self.stop.load(Ordering::Acquire)
    }

    /// Where the calling thread records its counters.
    #[inline]
    pub(crate) fn stripe(&self) -> Stripe {
        self.stripe_as(current::current_index(self.id()))
    }

    /// [`stripe`](Self::stripe) on worker `me` (the calling thread's index, if it is a worker
    /// of this runtime).
    #[inline]
    pub(crate) fn stripe_as(&self, me: Option<usize>) -> Stripe {
        match me {
            Some(index) => Stripe {
                index,
                exclusive: true,
            },
            None => counters::external_stripe(self.workers.len()),
        }
    }

    /// Counts a task of `entry` that ends without running here: killed, timed out, or run
    /// elsewhere (inline by a join, counted there).
    pub(crate) fn count_unrun(&self, entry: &OpEntry, job: &dyn Job, stripe: Stripe) {
        let c = entry.counters.stripe(stripe);
        match job.state() {
            TokenState::Killed => stripe.add(&c.killed, 1),
            TokenState::TimedOut => stripe.add(&c.timed_out, 1),
            _ => {}
        }
    }

    /// Closes admission: graceful (`kill == false`) or killing queued tasks.
    pub(crate) fn close(&self, kill: bool) {
        if kill {
            // ORDERING: Relaxed, see `kill_queued`.
            self.kill_queued.store(true, Ordering::Relaxed);
        }
        // ORDERING: Relaxed, ordered by the fence below.
        self.closed.store(true, Ordering::Relaxed);
        // ORDERING: SeqCst fence between setting `closed` and the caller's count of tokens
        // home, paired with the fence in `admit_unchecked` (`admit.rs`).
        fence(Ordering::SeqCst);
        // Submitters blocked on a dry ring must see `closed` and give up.
        self.ring.wake_all_waiters();
        // Held tasks must run (or be killed) for their tokens to come home.
        self.release_all_held();
    }

    /// Tells the workers to exit and wakes them. Call once every token is home.
    pub(crate) fn stop_workers(&self) {
        // ORDERING: Release pairs with the Acquire in `should_stop`.
        self.stop.store(true, Ordering::Release);
        for w in self.workers.iter() {
            w.sleeper.wake();
        }
    }
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("ring", &self.ring)
            .field("workers", &self.workers.len())
            .field("closed", &self.is_closed())
            .finish()
    }
}
