//! Operations: the name and weight a task is tagged with.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::time::Duration;

/// How heavy an operation's tasks are. Decides the mailbox lane a task waits in (Light is taken
/// before Medium before Heavy) and, with [`Routing::Isolated`](crate::Routing::Isolated), which
/// workers may run it.
///
/// # Examples
///
/// ```
/// use tokengate::Weight;
/// assert_eq!(Weight::default(), Weight::Medium);
/// assert_eq!("heavy".parse::<Weight>(), Ok(Weight::Heavy));
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Weight {
    /// Short, latency-sensitive work: taken first.
    Light = 0,
    /// The default.
    #[default]
    Medium = 1,
    /// Long CPU-bound work: taken last, but never starved.
    Heavy = 2,
}

impl Weight {
    /// All weights, in lane priority order.
    pub const ALL: [Weight; 3] = [Weight::Light, Weight::Medium, Weight::Heavy];

    /// The lane number, 0 (Light) to 2 (Heavy).
    #[inline]
    pub const fn lane(self) -> usize {
        self as usize
    }

    /// The lowercase name, as the Python original's `weight` tag spells it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Weight::Light => "light",
            Weight::Medium => "medium",
            Weight::Heavy => "heavy",
        }
    }
}

impl fmt::Display for Weight {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of parsing a [`Weight`] from a string other than light, medium or heavy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseWeightError(String);

impl fmt::Display for ParseWeightError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown weight {:?}: expected light, medium or heavy",
            self.0
        )
    }
}

impl std::error::Error for ParseWeightError {}

impl std::str::FromStr for Weight {
    type Err = ParseWeightError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "light" => Ok(Weight::Light),
            "medium" => Ok(Weight::Medium),
            "heavy" => Ok(Weight::Heavy),
            _ => Err(ParseWeightError(s.to_owned())),
        }
    }
}

/// The I/O concurrency presets of the Python original's storage tiers: how many tasks of an
/// operation may run at once ([`Operation::concurrency_limit`]).
///
/// # Examples
///
/// ```
/// use tokengate::{Operation, StorageTier};
///
/// const SAVE: Operation = Operation::new("save").storage_tier(StorageTier::Fast);
/// assert_eq!(SAVE.get_concurrency_limit(), Some(50));
/// assert_eq!("insane".parse::<StorageTier>().unwrap().limit(), 70);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum StorageTier {
    /// 10 at once.
    Slow,
    /// 25 at once.
    Moderate,
    /// 50 at once.
    Fast,
    /// 70 at once.
    Insane,
}

impl StorageTier {
    /// How many tasks of the tier may run at once.
    pub const fn limit(self) -> u32 {
        match self {
            StorageTier::Slow => 10,
            StorageTier::Moderate => 25,
            StorageTier::Fast => 50,
            StorageTier::Insane => 70,
        }
    }
}

/// The error of parsing a [`StorageTier`] from a string other than slow, moderate, fast or
/// insane.
///
/// # Examples
///
/// ```
/// use tokengate::StorageTier;
///
/// let err = "warp".parse::<StorageTier>().unwrap_err();
/// assert_eq!(
///     err.to_string(),
///     "unknown storage tier \"warp\": expected slow, moderate, fast or insane"
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParseStorageTierError(String);

impl fmt::Display for ParseStorageTierError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown storage tier {:?}: expected slow, moderate, fast or insane",
            self.0
        )
    }
}

impl std::error::Error for ParseStorageTierError {}

impl std::str::FromStr for StorageTier {
    type Err = ParseStorageTierError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "slow" => Ok(StorageTier::Slow),
            "moderate" => Ok(StorageTier::Moderate),
            "fast" => Ok(StorageTier::Fast),
            "insane" => Ok(StorageTier::Insane),
            _ => Err(ParseStorageTierError(s.to_owned())),
        }
    }
}

/// The sticky key of a value: what [`Operation::sticky`] takes, for keys that are not numbers.
/// Equal values give equal keys (within one build of the program).
///
/// # Examples
///
/// ```
/// use tokengate::{sticky_key, Operation};
///
/// const SAVE: Operation = Operation::new("save_user");
/// let op = SAVE.sticky(sticky_key("alice"));
/// assert_eq!(op.get_sticky(), Some(sticky_key("alice")));
/// ```
pub fn sticky_key<K: Hash + ?Sized>(key: &K) -> u64 {
    // `DefaultHasher::new()` uses fixed keys: the same value maps to the same worker in every
    // runtime of this process, which is what "sticky" promises.
    #[allow(deprecated)]
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

/// A kind of task: a name, a [`Weight`] and options. Const-constructible, so operations are
/// usually declared once as constants; tasks of one name share their statistics (reputation,
/// concurrency limit, pause state) in a runtime.
///
/// Options:
/// - [`weight`](Self::weight): lane and routing.
/// - [`sticky`](Self::sticky): all tasks with one key run on one worker, in submission order,
///   never concurrently, never stolen.
/// - [`concurrency_limit`](Self::concurrency_limit) / [`storage_tier`](Self::storage_tier):
///   at most n tasks of the operation run at once; the others wait without holding a worker.
/// - [`retries`](Self::retries): a panicking task submitted with
///   [`Runtime::submit_retrying`](crate::Runtime::submit_retrying) (or by a function with the
///   `retries` key of `#[task_token_guard]`) is run again, up to n times. The other submit
///   methods run their closure once.
/// - [`deadline`](Self::deadline): a task not started within the duration resolves
///   [`TaskError::TimedOut`](crate::TaskError::TimedOut) and never runs.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use tokengate::{Operation, StorageTier, Weight};
///
/// const PRIME: Operation = Operation::new("prime_check").weight(Weight::Heavy);
/// assert_eq!(PRIME.name(), "prime_check");
/// assert_eq!(PRIME.get_weight(), Weight::Heavy);
///
/// const UPLOAD: Operation = Operation::new("upload")
///     .weight(Weight::Light)
///     .storage_tier(StorageTier::Slow)
///     .retries(2)
///     .deadline(Duration::from_secs(5));
/// assert_eq!(UPLOAD.get_concurrency_limit(), Some(10));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Operation {
    name: &'static str,
    weight: Weight,
    sticky: Option<u64>,
    concurrency_limit: Option<u32>,
    retries: u32,
    deadline: Option<Duration>,
    fifo: bool,
}

impl Operation {
    /// The operation of [`Runtime::spawn`](crate::Runtime::spawn): `"default"`, Medium.
    pub const DEFAULT: Operation = Operation::new("default");

    /// An operation named `name`, of weight Medium, with no other option.
    pub const fn new(name: &'static str) -> Self {
        Self {
            name,
            weight: Weight::Medium,
            sticky: None,
            concurrency_limit: None,
            retries: 0,
            deadline: None,
            fifo: false,
        }
    }

    /// The same operation with weight `weight`.
    #[must_use]
    pub const fn weight(mut self, weight: Weight) -> Self {
        self.weight = weight;
        self
    }

    /// The same operation with sticky key `key`: every task of this name and key runs on one
    /// worker (chosen by the key among the workers allowed for the weight), in submission
    /// order, never two at once, never stolen. For keys that are not numbers use
    /// [`sticky_key`]. Usually set per call: `rt.submit(&OP.sticky(user_id), f)`.
    ///
    /// Its home worker runs the tasks of all its keys from one queue, oldest first, so the
    /// tasks of one key start in submission order (also when joined: a join of a sticky task
    /// on its home worker helps until the queue reaches it, never runs it ahead of the
    /// earlier tasks of its key) and never run on two threads at once.
    ///
    /// **A task that waits lets its worker help** (a join, a scope, a broadcast,
    /// `wait_timeout`), and helping may start the next tasks of any key queued there, its
    /// own key's included: they run nested on the waiting task's thread, to completion,
    /// while it is suspended. This is the choice of progress over strict exclusion: the task
    /// waited for may need them, directly or through tasks on other workers, and no rule
    /// that skipped a key suspended beneath could tell that apart from a wait that would
    /// end anyway, so it would hang such programs. Tasks of different keys are never held up
    /// by each other. So do not hold a key's exclusive state (a lock guard, a `RefCell`
    /// borrow) across a wait inside a task of that key; outside waits, a key's tasks do run
    /// one at a time.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use tokengate::{Operation, Runtime};
    ///
    /// const SAVE: Operation = Operation::new("save");
    /// let rt = Runtime::builder().workers(2).pin(false).build()?;
    /// let log = Arc::new(Mutex::new(Vec::new()));
    /// let handles: Vec<_> = (0..10)
    ///     .map(|i| {
    ///         let log = log.clone();
    ///         rt.submit(&SAVE.sticky(7), move || log.lock().unwrap().push(i))
    ///     })
    ///     .collect();
    /// for h in handles.into_iter().rev() {
    ///     h.join().unwrap(); // joined last to first: they still ran first to last
    /// }
    /// assert_eq!(*log.lock().unwrap(), (0..10).collect::<Vec<_>>());
    /// # Ok::<(), tokengate::BuildError>(())
    /// ```
    #[must_use]
    pub const fn sticky(mut self, key: u64) -> Self {
        self.sticky = Some(key);
        self
    }

    /// The same operation with at most `limit` of its tasks running at once in a runtime.
    /// Tasks over the limit wait in the operation's queue, not on a worker.
    ///
    /// # Panics
    ///
    /// If `limit` is 0 (at compile time when used in a `const`).
    #[must_use]
    pub const fn concurrency_limit(mut self, limit: u32) -> Self {
        assert!(limit > 0, "concurrency_limit must be at least 1");
        self.concurrency_limit = Some(limit);
        self
    }

    /// [`concurrency_limit`](Self::concurrency_limit) with a storage tier's preset.
    #[must_use]
    pub const fn storage_tier(self, tier: StorageTier) -> Self {
        self.concurrency_limit(tier.limit())
    }

    /// The same operation with up to `retries` extra runs of a task that panics. The handle
    /// gets the last attempt's outcome.
    ///
    /// Only [`Runtime::submit_retrying`](crate::Runtime::submit_retrying) retries (its
    /// closure is `FnMut`, so it can be called again), and the `#[task_token_guard]`
    /// attribute's `retries` key, which calls it. `submit`, `try_submit`, `submit_batch` and
    /// a scope's `submit` take an `FnOnce` closure and run it once: a debug build panics when
    /// they are given an operation with retries, rather than ignore them silently.
    #[must_use]
    pub const fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }

    /// The same operation with a start deadline: a task not started within `deadline` of its
    /// submission resolves [`TaskError::TimedOut`](crate::TaskError::TimedOut) and never runs.
    ///
    /// Built with `--cfg loom` (a model, see `docs/loom.md`), submitting a task with a deadline
    /// panics in words: a model has no clock.
    #[must_use]
    pub const fn deadline(mut self, deadline: Duration) -> Self {
        self.deadline = Some(deadline);
        self
    }

    /// The same operation in first-in, first-out order: its tasks submitted by a worker run
    /// oldest first, as rayon's `spawn_fifo`.
    ///
    /// A task a worker submits normally goes to that worker's local deque, which it runs
    /// newest first (the order that suits nested fork-join: a join finds its task on top;
    /// the deque is bounded, and when it is full its older half moves to the worker's mailbox,
    /// to run oldest first before the rest). A FIFO task goes to the worker's mailbox instead,
    /// whose lanes are first-in, first-out, so a worker runs its own FIFO tasks of one weight
    /// in submission order (idle workers may still take some, oldest first). Tasks submitted
    /// from outside the workers are FIFO per lane either way. [`Runtime::spawn_fifo`](crate::Runtime::spawn_fifo) and
    /// [`Scope::spawn_fifo`](crate::Scope::spawn_fifo) use it.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// use tokengate::{Operation, Runtime};
    ///
    /// const IN_ORDER: Operation = Operation::new("in_order").fifo();
    ///
    /// let rt = Arc::new(Runtime::builder().workers(1).pin(false).build()?);
    /// let order = Arc::new(Mutex::new(Vec::new()));
    /// let (r, o) = (rt.clone(), order.clone());
    /// rt.spawn(move || {
    ///     let handles: Vec<_> = (0..4)
    ///         .map(|i| {
    ///             let o = o.clone();
    ///             r.submit(&IN_ORDER, move || o.lock().unwrap().push(i))
    ///         })
    ///         .collect();
    ///     handles
    /// })
    /// .join()
    /// .unwrap()
    /// .into_iter()
    /// .for_each(|h| h.join().unwrap());
    /// assert_eq!(*order.lock().unwrap(), [0, 1, 2, 3]);
    /// # Ok::<(), tokengate::BuildError>(())
    /// ```
    #[must_use]
    pub const fn fifo(mut self) -> Self {
        self.fifo = true;
        self
    }

    /// The operation's name.
    pub const fn name(&self) -> &'static str {
        self.name
    }

    /// The operation's weight.
    pub const fn get_weight(&self) -> Weight {
        self.weight
    }

    /// The sticky key, if any.
    pub const fn get_sticky(&self) -> Option<u64> {
        self.sticky
    }

    /// The concurrency limit, if any.
    pub const fn get_concurrency_limit(&self) -> Option<u32> {
        self.concurrency_limit
    }

    /// How many times a panicking retrying task is run again.
    pub const fn get_retries(&self) -> u32 {
        self.retries
    }

    /// The start deadline, if any.
    pub const fn get_deadline(&self) -> Option<Duration> {
        self.deadline
    }

    /// Whether its tasks submitted by a worker run in submission order ([`fifo`](Self::fifo)).
    pub const fn is_fifo(&self) -> bool {
        self.fifo
    }
}

impl Default for Operation {
    fn default() -> Self {
        Self::DEFAULT
    }
}
