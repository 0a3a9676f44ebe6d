//! The runtime's clock: nanoseconds since the runtime was built, as one `u64` that fits in an
//! atomic (queue waits, run times and history records are stored in these units).

use std::time::Instant;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    epoch: Instant,
}

impl Clock {
    pub(crate) fn new() -> Self {
        Self {
            epoch: Instant::now(),
        }
    }

    /// Nanoseconds since the epoch (saturating after 584 years).
    #[inline]
    pub(crate) fn now_ns(&self) -> u64 {
        self.ns_at(Instant::now())
    }

    #[inline]
    pub(crate) fn ns_at(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }
}
