//! Which workers may run which weight, and which of them gets a task.

use std::cell::Cell;

use crate::error::BuildError;
use crate::operation::Weight;
use crate::sync::thread_local;

/// How weights map to workers.
///
/// # Examples
///
/// ```
/// use tokengate::{Routing, Runtime};
///
/// let rt = Runtime::builder().workers(2).pin(false).routing(Routing::Isolated).build()?;
/// # Ok::<(), tokengate::BuildError>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Routing {
    /// Every weight may run on every worker; the mailbox lanes give Light work priority.
    #[default]
    Spread,
    /// The Python original's policy: Heavy work on worker 0 only, Medium on workers 1.., Light
    /// on workers 2.., so heavy work never occupies the cores of lighter work. With fewer
    /// workers: 2 workers put Heavy on 0 and Medium and Light on 1; 1 worker runs everything.
    Isolated,
}

impl Routing {
    /// The workers allowed to run `weight` among `workers` workers.
    pub(crate) fn workers_for(self, weight: Weight, workers: usize) -> Vec<usize> {
        match (self, workers) {
            (Routing::Spread, n) | (Routing::Isolated, n @ 1) => (0..n).collect(),
            (Routing::Isolated, 2) => match weight {
                Weight::Heavy => vec![0],
                Weight::Medium | Weight::Light => vec![1],
            },
            (Routing::Isolated, n) => match weight {
                Weight::Heavy => vec![0],
                Weight::Medium => (1..n).collect(),
                Weight::Light => (2..n).collect(),
            },
        }
    }
}

// The submitting thread's round-robin cursor of `Routes::least_loaded`. Through the shim:
// under loom, a plain thread-local would carry its value from one explored execution to the
// next, and loom requires every execution to be deterministic.
#[cfg(not(loom))]
thread_local! {
    static NEXT: Cell<usize> = const { Cell::new(0) };
}

// loom's `thread_local!` does not accept the `const { .. }` form.
#[cfg(loom)]
thread_local! {
    static NEXT: Cell<usize> = Cell::new(0);
}

/// The resolved routing table of a runtime.
#[derive(Debug)]
pub(crate) struct Routes {
    /// Per weight, the workers allowed to run it (non-empty, ascending).
    eligible: [Vec<usize>; 3],
    /// Per worker, per weight: whether it may run (and so steal) that weight.
    may_run: Vec<[bool; 3]>,
    /// Per weight: every worker may run it.
    everyone: [bool; 3],
}

impl Routes {
    pub(crate) fn new(
        routing: Routing,
        overrides: &[Option<Vec<usize>>; 3],
        workers: usize,
    ) -> Result<Self, BuildError> {
        let mut eligible: [Vec<usize>; 3] = Default::default();
        for weight in Weight::ALL {
            let set = match &overrides[weight.lane()] {
                Some(set) => {
                    let mut set = set.clone();
                    set.sort_unstable();
                    set.dedup();
                    if set.is_empty() {
                        return Err(BuildError::new(format!(
                            "lane_workers({weight:?}, []) leaves {weight} tasks no worker to \
                             run on; name at least one worker in 0..{workers}"
                        )));
                    }
                    if let Some(bad) = set.iter().find(|&&w| w >= workers) {
                        return Err(BuildError::new(format!(
                            "lane_workers({weight:?}, ..) names worker {bad}, but there are \
                             only {workers} workers (0..{workers}); use indices below {workers} \
                             or raise .workers()"
                        )));
                    }
                    set
                }
                None => routing.workers_for(weight, workers),
            };
            eligible[weight.lane()] = set;
        }
        let may_run = (0..workers)
            .map(|w| Weight::ALL.map(|weight| eligible[weight.lane()].contains(&w)))
            .collect();
        let everyone = Weight::ALL.map(|weight| eligible[weight.lane()].len() == workers);
        Ok(Self {
            eligible,
            may_run,
            everyone,
        })
    }

    #[inline]
    pub(crate) fn eligible(&self, weight: Weight) -> &[usize] {
        &self.eligible[weight.lane()]
    }

    /// Whether every worker may run `weight`: then any worker may steal such a task.
    #[inline]
    pub(crate) fn everyone(&self, weight: Weight) -> bool {
        self.everyone[weight.lane()]
    }

    #[inline]
    pub(crate) fn may_run(&self, worker: usize, weight: Weight) -> bool {
        self.may_run[worker][weight.lane()]
    }

    /// Picks a lightly loaded worker among those allowed to run `weight`; `load(w)` estimates
    /// how much work runs on `w` before a new task of this weight would.
    ///
    /// Power of two choices (Mitzenmacher): the submitting thread's round-robin cursor names
    /// one candidate, taken if it has nothing to do; else a second candidate, a pseudo-random
    /// other worker, and the less loaded of the two wins. So a submission reads the load of at
    /// most two workers however many there are, an idle runtime spreads a burst over all its
    /// workers (the cursor), and a busy one still avoids long queues (the sample).
    #[inline]
    pub(crate) fn least_loaded(&self, weight: Weight, load: impl Fn(usize) -> usize) -> usize {
        let eligible = self.eligible(weight);
        let n = eligible.len();
        if n == 1 {
            return eligible[0];
        }
        let cursor = NEXT.with(|c| {
            let cursor = c.get();
            c.set(cursor.wrapping_add(1));
            cursor
        });
        let first = eligible[cursor % n];
        let first_load = load(first);
        if first_load == 0 {
            return first;
        }
        // Another worker than `first`: an offset in 1..n from a cheap mix of the cursor.
        let offset = 1 + (cursor.wrapping_mul(0x9E37_79B9_7F4A_7C15_u64 as usize) >> 7) % (n - 1);
        let second = eligible[(cursor + offset) % n];
        if load(second) < first_load {
            second
        } else {
            first
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn least_loaded_reads_at_most_two_workers_and_prefers_an_idle_one() {
        let r = Routes::new(Routing::Spread, &Default::default(), 8).unwrap();
        let mut found_the_idle_one = 0;
        for _ in 0..64 {
            let read = std::cell::RefCell::new(Vec::new());
            let picked = r.least_loaded(Weight::Medium, |w| {
                read.borrow_mut().push(w);
                usize::from(w != 5) // only worker 5 is idle
            });
            let read = read.into_inner();
            assert!(read.len() <= 2, "loads read: {read:?}");
            assert!(read.contains(&picked), "picked {picked}, read {read:?}");
            if read.contains(&5) {
                assert_eq!(picked, 5, "read the idle worker but picked another");
                found_the_idle_one += 1;
            }
        }
        assert!(found_the_idle_one > 0, "the idle worker was never sampled");
        // An idle runtime: the cursor alone spreads submissions over every worker.
        let picks: std::collections::HashSet<usize> = (0..8)
            .map(|_| r.least_loaded(Weight::Medium, |_| 0))
            .collect();
        assert_eq!(picks.len(), 8);
    }

    #[test]
    fn isolated_matches_the_original() {
        let r = Routes::new(Routing::Isolated, &Default::default(), 4).unwrap();
        assert_eq!(r.eligible(Weight::Heavy), &[0]);
        assert_eq!(r.eligible(Weight::Medium), &[1, 2, 3]);
        assert_eq!(r.eligible(Weight::Light), &[2, 3]);
        let two = Routes::new(Routing::Isolated, &Default::default(), 2).unwrap();
        assert_eq!(two.eligible(Weight::Heavy), &[0]);
        assert_eq!(two.eligible(Weight::Light), &[1]);
        let one = Routes::new(Routing::Isolated, &Default::default(), 1).unwrap();
        assert_eq!(one.eligible(Weight::Light), &[0]);
    }
}
