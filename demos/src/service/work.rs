//! The CPU work behind the two endpoints, with the checks of their inputs.
//!
//! Both kinds are plain synchronous functions: the point of the service is where they run,
//! not what they compute. They do real work whose result the answer carries, so that the
//! compiler cannot skip it.

use std::hash::{DefaultHasher, Hasher};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Hash rounds of one light request: about 50 µs of CPU on the 2-core development VM.
pub const LIGHT_ROUNDS: u32 = 3_000;

/// The longest message `GET /light` accepts, in bytes.
pub const MAX_MESSAGE: usize = 256;

/// The largest number `POST /heavy` searches (trial division stays below 10⁶ per number).
pub const MAX_FROM: u64 = 1_000_000_000_000;

/// The widest range `POST /heavy` searches (a few seconds of CPU at worst).
pub const MAX_COUNT: u64 = 20_000;

/// The body the load test posts to `/heavy`: about 10 ms of CPU on the 2-core development VM.
pub const BENCH_HEAVY: HeavyInput = HeavyInput {
    from: 1_000_000_000,
    count: 10_000,
};

/// The query of `GET /light`: a message to validate and digest.
#[derive(Clone, Debug, Deserialize)]
pub struct LightInput {
    /// 1 to [`MAX_MESSAGE`] printable ASCII characters.
    pub msg: String,
}

/// What `GET /light` answers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LightOutput {
    /// The message's stretched digest, 16 hex digits.
    pub digest: String,
    /// How many hash rounds made it.
    pub rounds: u32,
}

/// The body of `POST /heavy`: search `[from, from + count)` for primes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeavyInput {
    /// The first number searched, at most [`MAX_FROM`].
    pub from: u64,
    /// How many numbers are searched, 1 to [`MAX_COUNT`].
    pub count: u64,
}

/// What `POST /heavy` answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeavyOutput {
    /// The first number searched.
    pub from: u64,
    /// How many numbers were searched.
    pub count: u64,
    /// How many of them are prime.
    pub primes: u64,
    /// The largest prime found, if any.
    pub largest: Option<u64>,
}

impl LightInput {
    /// Checks the message; the error says what is wrong with it.
    pub fn validate(&self) -> Result<(), String> {
        if self.msg.is_empty() {
            return Err("msg is empty; send 1 to 256 printable ASCII characters".into());
        }
        if self.msg.len() > MAX_MESSAGE {
            return Err(format!(
                "msg is {} bytes long; send at most {MAX_MESSAGE}",
                self.msg.len()
            ));
        }
        if let Some(c) = self.msg.chars().find(|c| !c.is_ascii_graphic()) {
            return Err(format!(
                "msg contains {c:?}; send printable ASCII characters only"
            ));
        }
        Ok(())
    }
}

impl HeavyInput {
    /// Parses and checks a JSON body; the error says what is wrong with it.
    pub fn from_json(body: &[u8]) -> Result<Self, String> {
        let input: HeavyInput = serde_json::from_slice(body).map_err(|e| {
            format!(r#"body is not a search request ({e}); send {{"from": <u64>, "count": <u64>}}"#)
        })?;
        input.validate()?;
        Ok(input)
    }

    /// Checks the range; the error says what is wrong with it.
    pub fn validate(&self) -> Result<(), String> {
        if self.count == 0 || self.count > MAX_COUNT {
            return Err(format!(
                "count {} is out of range; search 1 to {MAX_COUNT} numbers",
                self.count
            ));
        }
        if self.from > MAX_FROM {
            return Err(format!(
                "from {} is too large; start at most at {MAX_FROM}",
                self.from
            ));
        }
        Ok(())
    }
}

/// The light work: a stretched digest of the message ([`LIGHT_ROUNDS`] rounds of SipHash over
/// it, as a password check would do). About 50 µs.
pub fn light(input: &LightInput) -> LightOutput {
    let mut state = 0u64;
    for round in 0..LIGHT_ROUNDS {
        let mut h = DefaultHasher::new();
        h.write_u64(state);
        h.write_u32(round);
        h.write(input.msg.as_bytes());
        state = h.finish();
    }
    LightOutput {
        digest: format!("{state:016x}"),
        rounds: LIGHT_ROUNDS,
    }
}

/// The heavy work: counts the primes in `[from, from + count)` by trial division. About 10 ms
/// for [`BENCH_HEAVY`].
pub fn heavy(input: &HeavyInput) -> HeavyOutput {
    let mut primes = 0;
    let mut largest = None;
    for n in input.from..input.from + input.count {
        if is_prime(n) {
            primes += 1;
            largest = Some(n);
        }
    }
    HeavyOutput {
        from: input.from,
        count: input.count,
        primes,
        largest,
    }
}

/// Trial division by 2, 3 and the numbers 6k ± 1 up to √n.
pub fn is_prime(n: u64) -> bool {
    if n < 4 {
        return n >= 2;
    }
    if n % 2 == 0 || n % 3 == 0 {
        return false;
    }
    let mut d = 5;
    while d * d <= n {
        if n % d == 0 || n % (d + 2) == 0 {
            return false;
        }
        d += 6;
    }
    true
}

/// The CPU time of one light request and of one [`BENCH_HEAVY`] request, each the median of
/// several runs on the calling thread.
#[derive(Clone, Copy, Debug)]
pub struct Calibration {
    /// One [`light`] call.
    pub light: Duration,
    /// One [`heavy`] call on [`BENCH_HEAVY`].
    pub heavy: Duration,
    /// Whether the times are the thread's CPU time (Linux) rather than wall-clock time, which
    /// other programs on the machine inflate.
    pub cpu_time: bool,
}

/// Times the two kinds of work on the calling thread (about a third of a second).
pub fn calibrate() -> Calibration {
    let msg = LightInput {
        msg: "calibration".into(),
    };
    Calibration {
        light: median(201, || {
            std::hint::black_box(light(&msg));
        }),
        heavy: median(21, || {
            std::hint::black_box(heavy(&BENCH_HEAVY));
        }),
        cpu_time: thread_cpu_time().is_some(),
    }
}

fn median(runs: usize, mut f: impl FnMut()) -> Duration {
    let mut times: Vec<Duration> = (0..runs)
        .map(|_| match thread_cpu_time() {
            Some(before) => {
                f();
                thread_cpu_time().map_or(Duration::ZERO, |after| after.saturating_sub(before))
            }
            None => {
                let start = Instant::now();
                f();
                start.elapsed()
            }
        })
        .collect();
    times.sort_unstable();
    times[runs / 2]
}

/// The CPU time the calling thread has used (`CLOCK_THREAD_CPUTIME_ID`); `None` where that
/// clock is not read.
#[cfg(target_os = "linux")]
fn thread_cpu_time() -> Option<Duration> {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `ts` is a valid, writable timespec for the duration of the call, which is all
    // `clock_gettime` requires.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    (rc == 0).then(|| Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32))
}

#[cfg(not(target_os = "linux"))]
fn thread_cpu_time() -> Option<Duration> {
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn primes_are_found() {
        let first: Vec<u64> = (0..30).filter(|&n| is_prime(n)).collect();
        assert_eq!(first, [2, 3, 5, 7, 11, 13, 17, 19, 23, 29]);
        let out = heavy(&HeavyInput {
            from: 1_000_000,
            count: 100,
        });
        assert_eq!((out.primes, out.largest), (6, Some(1_000_099)));
    }

    #[test]
    fn light_is_deterministic() {
        let a = LightInput { msg: "abc".into() };
        assert_eq!(light(&a), light(&a));
        assert_ne!(light(&a), light(&LightInput { msg: "abd".into() }));
    }

    #[test]
    fn bad_inputs_say_why() {
        assert!(LightInput { msg: "".into() }.validate().is_err());
        assert!(LightInput { msg: "a b".into() }.validate().is_err());
        assert!(LightInput {
            msg: "x".repeat(257)
        }
        .validate()
        .is_err());
        assert!(HeavyInput::from_json(b"{")
            .unwrap_err()
            .contains("not a search request"));
        assert!(HeavyInput::from_json(br#"{"from": 1, "count": 0}"#).is_err());
        assert!(HeavyInput::from_json(br#"{"from": 1e13, "count": 1}"#).is_err());
        assert!(HeavyInput::from_json(br#"{"from": 1, "count": 1, "x": 2}"#).is_err());
        assert_eq!(
            HeavyInput::from_json(br#"{"from": 7, "count": 3}"#),
            Ok(HeavyInput { from: 7, count: 3 })
        );
    }
}
