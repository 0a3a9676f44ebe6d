//! The runtime's clock: nanoseconds since the runtime was built, as one `u64` that fits in an
//! atomic (queue waits, run times and history records are stored in these units).
//!
//! Reading it is on a task's path when timings are on (once at admission, twice more for a
//! sampled run, see `Builder::sample_timings`), so on x86-64
//! Linux machines whose time-stamp counter is constant-rate, never stops and runs in step on
//! every core (the kernel's `constant_tsc` and `nonstop_tsc` flags) it reads the counter
//! (`rdtsc`, a few nanoseconds) and scales it by a ratio measured once per process against
//! `Instant` over 2 ms. Elsewhere it reads `Instant` (a clock call of tens of nanoseconds).
//! Both are monotonic enough for statistics; a reading that looks earlier than another taken
//! on another core counts as zero elapsed time.

use std::time::Instant;

#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    epoch: Instant,
    tsc: Option<Tsc>,
}

/// Time-stamp counter scaling: ns = (ticks − origin) × mult / 2³².
#[derive(Debug, Clone, Copy)]
struct Tsc {
    origin: u64,
    mult: u64,
}

impl Clock {
    pub(crate) fn new() -> Self {
        let epoch = Instant::now();
        let tsc = tsc::ns_per_tick_fixed().map(|mult| Tsc {
            origin: tsc::read(),
            mult,
        });
        Self { epoch, tsc }
    }

    /// Nanoseconds since the epoch (saturating after 584 years).
    #[inline]
    pub(crate) fn now_ns(&self) -> u64 {
        match self.tsc {
            Some(Tsc { origin, mult }) => {
                let ticks = tsc::read().saturating_sub(origin);
                ((ticks as u128 * mult as u128) >> 32) as u64
            }
            None => self.ns_at(Instant::now()),
        }
    }

    #[inline]
    fn ns_at(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }
}

#[cfg(all(target_arch = "x86_64", target_os = "linux", not(loom), not(miri)))]
mod tsc {
    use std::sync::OnceLock;
    use std::time::{Duration, Instant};

    #[inline]
    pub(super) fn read() -> u64 {
        // SAFETY: `rdtsc` exists on every x86-64 processor and has no preconditions.
        unsafe { std::arch::x86_64::_rdtsc() }
    }

    /// Nanoseconds per tick as a 32.32 fixed-point number, if the counter can be trusted;
    /// measured once per process.
    pub(super) fn ns_per_tick_fixed() -> Option<u64> {
        static RATIO: OnceLock<Option<u64>> = OnceLock::new();
        *RATIO.get_or_init(|| {
            let flags = std::fs::read_to_string("/proc/cpuinfo").ok()?;
            let has = |flag: &str| flags.split_whitespace().any(|f| f == flag);
            if !(has("constant_tsc") && has("nonstop_tsc")) {
                return None;
            }
            let (t0, c0) = (Instant::now(), read());
            let mut t1 = Instant::now();
            while t1 - t0 < Duration::from_millis(2) {
                std::hint::spin_loop();
                t1 = Instant::now();
            }
            let ticks = read().checked_sub(c0).filter(|&t| t > 0)?;
            let ns = (t1 - t0).as_nanos();
            u64::try_from((ns << 32) / ticks as u128).ok()
        })
    }
}

#[cfg(not(all(target_arch = "x86_64", target_os = "linux", not(loom), not(miri))))]
mod tsc {
    pub(super) fn read() -> u64 {
        0
    }

    pub(super) fn ns_per_tick_fixed() -> Option<u64> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    #[cfg_attr(miri, ignore = "miri's clock is virtual")]
    fn agrees_with_instant() {
        let clock = Clock::new();
        let t0 = Instant::now();
        let c0 = clock.now_ns();
        std::thread::sleep(Duration::from_millis(20));
        let c1 = clock.now_ns();
        let real = t0.elapsed().as_nanos() as f64;
        let measured = (c1 - c0) as f64;
        assert!(
            (measured / real - 1.0).abs() < 0.05,
            "clock says {measured} ns where Instant says {real} ns"
        );
    }
}
