//! Which workers may run which weight, and which of them gets a task.

use std::cell::Cell;

use crate::error::BuildError;
use crate::operation::Weight;

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

    /// Picks the least loaded of the workers allowed to run `weight`; `load(w)` estimates how
    /// much work runs on `w` before a new task of this weight would. Ties go round-robin
    /// (per submitting thread), so an idle runtime spreads a burst over all its workers.
    #[inline]
    pub(crate) fn least_loaded(&self, weight: Weight, load: impl Fn(usize) -> usize) -> usize {
        let eligible = self.eligible(weight);
        if eligible.len() == 1 {
            return eligible[0];
        }
        thread_local!(static NEXT: Cell<usize> = const { Cell::new(0) });
        let start = NEXT.with(|n| {
            let start = n.get();
            n.set(start.wrapping_add(1));
            start
        });
        let mut best = (usize::MAX, eligible[0]);
        for k in 0..eligible.len() {
            let worker = eligible[(start + k) % eligible.len()];
            let l = load(worker);
            if l == 0 {
                return worker;
            }
            if l < best.0 {
                best = (l, worker);
            }
        }
        best.1
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
