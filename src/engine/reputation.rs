//! An operation's reputation, after the Python original's GuardHouse: the one place where
//! attempts, failures and tasks in flight are computed from an operation's counters, where
//! the health classes are drawn, and where the auto-block rule is. The live engine (auto-block,
//! `drain_operation`) and the snapshots (`OperationStats`) both go through [`Tally`].

use super::op_table::OpEntry;
use crate::metrics::counters::read;
use crate::sync::Ordering;

/// The health class of an operation, from its success rate (the Python original's
/// GuardHouse classes).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub enum Health {
    /// Fewer than 5 attempts: not enough to judge.
    Unknown,
    /// At least 95 % of attempts succeeded.
    Excellent,
    /// At least 80 %.
    Healthy,
    /// At least 50 %.
    AtRisk,
    /// Below 50 %.
    Problematic,
}

impl Health {
    /// The class of `successes` out of `attempts`.
    ///
    /// # Examples
    ///
    /// ```
    /// use tokengate::Health;
    /// assert_eq!(Health::of(4, 4), Health::Unknown);
    /// assert_eq!(Health::of(19, 20), Health::Excellent);
    /// assert_eq!(Health::of(16, 20), Health::Healthy);
    /// assert_eq!(Health::of(10, 20), Health::AtRisk);
    /// assert_eq!(Health::of(9, 20), Health::Problematic);
    /// ```
    pub fn of(successes: u64, attempts: u64) -> Health {
        if attempts < 5 {
            return Health::Unknown;
        }
        // Integer comparisons: s/a ≥ p/100 ⇔ 100·s ≥ p·a.
        let s = successes as u128 * 100;
        let a = attempts as u128;
        if s >= 95 * a {
            Health::Excellent
        } else if s >= 80 * a {
            Health::Healthy
        } else if s >= 50 * a {
            Health::AtRisk
        } else {
            Health::Problematic
        }
    }
}

/// An operation's counts: what every reputation figure is computed from. Read from the live
/// counters ([`Tally::of`]) or from a snapshot's fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Tally {
    pub(crate) submitted: u64,
    pub(crate) completed: u64,
    pub(crate) failed: u64,
    pub(crate) killed: u64,
    pub(crate) timed_out: u64,
    pub(crate) blocked: u64,
    pub(crate) retried: u64,
}

impl Tally {
    /// The counts of `entry`, summed over its stripes (not atomic across counters).
    pub(crate) fn of(entry: &OpEntry) -> Self {
        let c = &entry.counters;
        Self {
            submitted: c.sum(|s| &s.submitted),
            completed: c.sum(|s| &s.completed),
            failed: c.sum(|s| &s.failed),
            killed: c.sum(|s| &s.killed),
            timed_out: c.sum(|s| &s.timed_out),
            blocked: c.sum(|s| &s.blocked),
            retried: c.sum(|s| &s.retried),
        }
    }

    /// Runs of its tasks: completed + failed + retried attempts.
    pub(crate) fn attempts(&self) -> u64 {
        self.completed + self.failures()
    }

    /// Runs that returned.
    pub(crate) fn successes(&self) -> u64 {
        self.completed
    }

    /// Runs that panicked (retried or not).
    pub(crate) fn failures(&self) -> u64 {
        self.failed + self.retried
    }

    /// Tasks admitted and not yet resolved (waiting or running).
    pub(crate) fn in_flight(&self) -> u64 {
        let resolved = self.completed + self.failed + self.killed + self.timed_out;
        self.submitted.saturating_sub(resolved)
    }

    /// The health class of the success rate.
    pub(crate) fn health(&self) -> Health {
        Health::of(self.successes(), self.attempts())
    }
}

/// Blocks `entry` if it failed more than 90 % of at least 10 attempts since it was last
/// unblocked (the Python original's auto-block rule).
pub(crate) fn check_auto_block(entry: &OpEntry) {
    let tally = Tally::of(entry);
    let attempts = tally.attempts().saturating_sub(read(&entry.block_base[0]));
    let failures = tally.failures().saturating_sub(read(&entry.block_base[1]));
    if attempts >= 10 && failures * 10 > attempts * 9 {
        // ORDERING: Relaxed: a policy flag (see `OpEntry::is_blocked`).
        entry.blocked.store(true, Ordering::Relaxed);
    }
}

/// Lifts a block; auto-block counts attempts from here on.
pub(crate) fn unblock(entry: &OpEntry) {
    let tally = Tally::of(entry);
    // ORDERING: Relaxed: statistics.
    entry.block_base[0].store(tally.attempts(), Ordering::Relaxed);
    // ORDERING: Relaxed: statistics.
    entry.block_base[1].store(tally.failures(), Ordering::Relaxed);
    // ORDERING: Relaxed: a policy flag (see `OpEntry::is_blocked`).
    entry.blocked.store(false, Ordering::Relaxed);
}

/// Tasks of `entry` held back by a pause.
pub(crate) fn held(entry: &OpEntry) -> u64 {
    // ORDERING: Relaxed: a report, maintained under the hold lock.
    entry.held.load(Ordering::Relaxed) as u64
}
