//! A live terminal dashboard of a tokengate runtime under the Python original's mixed
//! workload, in the spirit of the original's web dashboard (which pushed its stats every
//! second): here a terminal UI refreshed five times a second from `Runtime::stats`.
//!
//! A producer thread submits waves of three operations, light, medium and heavy CPU loops,
//! to a runtime with one worker per core (pinned when the machine allows it). Every 20 s
//! the load goes through three phases: NORMAL (about half the workers' time on an otherwise
//! idle machine), SURGE (three times that, more than they can do: the queues and tokens fill,
//! and the producer is held back by the token ring) and IDLE (a trickle of light tasks). The
//! tasks run for a wall-clock time, so on a machine busy with other work they are preempted
//! within it, look longer in "run mean", and the workers look busier.
//!
//! The screen shows each worker's busy time over the last refresh, the queue depth of each
//! lane of each mailbox, the throughput, per-operation counts, queue-wait quantiles and mean
//! run time, the tokens in use and whether admission is paused.
//!
//! Keys: `p` pauses or resumes admission, `q`, Esc or Ctrl-C quits.
//!
//! Run:
//!
//! ```text
//! cargo run --release -p tokengate-demos --example dashboard   # until q
//! cargo run --release -p tokengate-demos --example dashboard -- --frames 50
//! cargo run --release -p tokengate-demos --example dashboard -- --plain --seconds 5
//! ```
//!
//! Options: `--seconds S` stops after S seconds, `--frames N` after N frames (five a second),
//! `--workers N` sets the worker count (default: one per core), `--plain` renders the last
//! frame as text on stdout instead of driving the terminal (for logs and for machines without
//! one).

use std::collections::VecDeque;
use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use ratatui::backend::TestBackend;
use ratatui::crossterm::event::{self, Event, KeyCode, KeyEventKind, KeyModifiers};
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Sparkline, Table};
use ratatui::{Frame, Terminal};
use tokengate::{Health, Histogram, Operation, Runtime, Stats, Weight};

// ---- the workload ---------------------------------------------------------------------------

const HASH_LIGHT: Operation = Operation::new("hash_light").weight(Weight::Light);
const RESIZE_MEDIUM: Operation = Operation::new("resize_medium").weight(Weight::Medium);
const PRIME_HEAVY: Operation = Operation::new("prime_heavy").weight(Weight::Heavy);

const LIGHT_COST: Duration = Duration::from_micros(50);
const MEDIUM_COST: Duration = Duration::from_millis(1);
const HEAVY_COST: Duration = Duration::from_millis(10);

/// One `resize_medium` in this many panics ("corrupt input"), so the failure counts move.
const MEDIUM_FAILS_ONE_IN: u64 = 400;

/// Tokens in the ring: small enough that a surge fills it and holds the producer back.
const CAPACITY: usize = 256;

/// The producer submits one wave per tick.
const WAVE_EVERY: Duration = Duration::from_millis(100);

/// Refresh period of the screen (and of the snapshots).
const REFRESH: Duration = Duration::from_millis(200);

/// Snapshots kept: the queue-wait quantiles cover this many refreshes (~2 s).
const WINDOW: usize = 10;

/// Throughput samples kept for the sparkline.
const HISTORY: usize = 120;

/// Hashes a 1 KiB buffer (FNV-1a) over and over for `LIGHT_COST`.
fn hash_light(seed: u64) -> u64 {
    let data: Vec<u8> = (0..1024u64).map(|i| (i ^ seed) as u8).collect();
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for_at_least(LIGHT_COST, || {
        for &b in &data {
            hash = (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
    });
    hash
}

/// Downsamples a 64×64 "image" by 2×2 box filtering over and over for `MEDIUM_COST`.
fn resize_medium(seed: u64) -> u64 {
    if seed % MEDIUM_FAILS_ONE_IN == 0 {
        panic!("planned: corrupt input {seed}");
    }
    let image: Vec<u32> = (0..64 * 64)
        .map(|i| (i as u32).wrapping_mul(seed as u32))
        .collect();
    let mut checksum = 0u64;
    for_at_least(MEDIUM_COST, || {
        for y in (0..64).step_by(2) {
            for x in (0..64).step_by(2) {
                let p = |dx: usize, dy: usize| u64::from(image[(y + dy) * 64 + x + dx] & 0xff);
                let average = (p(0, 0) + p(1, 0) + p(0, 1) + p(1, 1)) / 4;
                // Chained through the checksum, so no pass can be skipped or hoisted.
                checksum = checksum.wrapping_mul(31).wrapping_add(average);
            }
        }
    });
    checksum
}

/// Counts primes by trial division, from two seed-dependent starts, for `HEAVY_COST` in all:
/// the two halves are forked with `tokengate::join`, so an idle worker may take one (the
/// dashboard's `forks` and `fsteal` columns: stack jobs forked, and stolen from others).
fn prime_heavy(seed: u64) -> u64 {
    let (a, b) = tokengate::join(
        || count_primes(1_000_000_007 + seed * 2, HEAVY_COST / 2),
        || count_primes(2_000_000_011 + seed * 2, HEAVY_COST / 2),
    );
    a + b
}

/// Counts primes by trial division from `n` for `cost`.
fn count_primes(mut n: u64, cost: Duration) -> u64 {
    let mut primes = 0;
    for_at_least(cost, || {
        let is_prime = (3..)
            .step_by(2)
            .take_while(|d| d * d <= n)
            .all(|d| n % d != 0);
        primes += u64::from(is_prime);
        n += 2;
    });
    primes
}

/// Runs `step` until `at_least` has passed (checking the clock between steps).
fn for_at_least(at_least: Duration, mut step: impl FnMut()) {
    let start = Instant::now();
    while start.elapsed() < at_least {
        step();
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Normal,
    Surge,
    Idle,
}

impl Phase {
    /// The phase at `elapsed` into the run, and when it ends: 20 s cycles of NORMAL (12 s),
    /// SURGE (5 s) and IDLE (3 s).
    fn at(elapsed: Duration) -> (Phase, Duration) {
        let t = elapsed.as_secs_f64() % 20.0;
        let (phase, end) = match t {
            t if t < 12.0 => (Phase::Normal, 12.0),
            t if t < 17.0 => (Phase::Surge, 17.0),
            _ => (Phase::Idle, 20.0),
        };
        (phase, Duration::from_secs_f64(end - t))
    }

    /// Tasks of one wave per worker: (light, medium, heavy). NORMAL is 5 + 20 + 20 = 45 ms
    /// of CPU per worker per 100 ms wave; SURGE three times that.
    fn wave(self) -> (u64, u64, u64) {
        match self {
            Phase::Normal => (100, 20, 2),
            Phase::Surge => (300, 60, 6),
            Phase::Idle => (10, 0, 0),
        }
    }

    fn name(self) -> &'static str {
        match self {
            Phase::Normal => "NORMAL",
            Phase::Surge => "SURGE",
            Phase::Idle => "IDLE",
        }
    }
}

/// The producer thread: submits a wave every `WAVE_EVERY` with `try_submit`, backing off
/// while the ring is full, until told to stop. It never blocks in `submit`, so it stops
/// promptly even while admission is paused (held tasks keep their tokens, the ring fills up,
/// and `try_submit` says so).
struct Producer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Producer {
    fn start(rt: Arc<Runtime>, start: Instant) -> Producer {
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = thread::Builder::new()
            .name("producer".into())
            .spawn(move || produce(&rt, &flag, start))
            .expect("spawn the producer thread");
        Producer {
            stop,
            thread: Some(thread),
        }
    }

    fn stop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Producer {
    fn drop(&mut self) {
        self.stop();
    }
}

fn produce(rt: &Runtime, stop: &AtomicBool, start: Instant) {
    let workers = rt.workers() as u64;
    // Tasks submitted so far per operation (light, medium, heavy): each task's seed.
    let mut seeds = [0u64; 3];
    let mut next_wave = Instant::now();
    while !stop.load(Ordering::Relaxed) {
        let (phase, _) = Phase::at(start.elapsed());
        let (light, medium, heavy) = phase.wave();
        let (light, medium, heavy) = (light * workers, medium * workers, heavy * workers);
        debug_assert!(heavy <= medium && medium <= light);
        // Interleaved, as requests would arrive: the medium and heavy tasks spread evenly
        // among the light ones.
        for i in 0..light {
            if evenly(i, heavy, light) {
                seeds[2] += 1;
                let s = seeds[2];
                if !offer(rt, stop, &PRIME_HEAVY, move || prime_heavy(s)) {
                    return;
                }
            }
            if evenly(i, medium, light) {
                seeds[1] += 1;
                let s = seeds[1];
                if !offer(rt, stop, &RESIZE_MEDIUM, move || resize_medium(s)) {
                    return;
                }
            }
            seeds[0] += 1;
            let s = seeds[0];
            if !offer(rt, stop, &HASH_LIGHT, move || hash_light(s)) {
                return;
            }
        }
        next_wave += WAVE_EVERY;
        let now = Instant::now();
        if next_wave <= now {
            next_wave = now; // behind (back-pressure): the next wave goes at once
        }
        while !stop.load(Ordering::Relaxed) {
            match next_wave.checked_duration_since(Instant::now()) {
                Some(left) => thread::sleep(left.min(Duration::from_millis(10))),
                None => break,
            }
        }
    }
}

/// Whether slot `i` of `n` is one of `k` slots spread evenly over them (`k <= n`).
fn evenly(i: u64, k: u64, n: u64) -> bool {
    (i * k) % n < k
}

/// Submits `f` without blocking, retrying while the ring is full. Returns false if the
/// producer must stop (told to, or the runtime shut down).
fn offer<F, T>(rt: &Runtime, stop: &AtomicBool, op: &Operation, mut f: F) -> bool
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let mut nap = Duration::from_micros(50);
    loop {
        match rt.try_submit(op, f) {
            Ok(handle) => {
                drop(handle); // fire and forget: the stats count the outcome
                return true;
            }
            Err(refused) if refused.is_full() => {
                if stop.load(Ordering::Relaxed) {
                    return false;
                }
                f = refused.into_inner();
                thread::sleep(nap);
                nap = (nap * 2).min(Duration::from_millis(2));
            }
            Err(_) => return false,
        }
    }
}

// ---- what the screen shows ------------------------------------------------------------------

/// Snapshots taken every refresh, newest last.
struct Samples {
    snapshots: VecDeque<(Instant, Stats)>,
    throughput: VecDeque<u64>,
}

impl Samples {
    fn new() -> Samples {
        Samples {
            snapshots: VecDeque::with_capacity(WINDOW + 1),
            throughput: VecDeque::with_capacity(HISTORY),
        }
    }

    fn take(&mut self, rt: &Runtime) {
        let now = Instant::now();
        let stats = rt.stats();
        if let Some((then, before)) = self.snapshots.back() {
            let dt = now.duration_since(*then).as_secs_f64();
            let ran = stats.tasks_run().saturating_sub(before.tasks_run());
            if self.throughput.len() == HISTORY {
                self.throughput.pop_front();
            }
            self.throughput
                .push_back((ran as f64 / dt.max(1e-9)).round() as u64);
        }
        if self.snapshots.len() == WINDOW + 1 {
            self.snapshots.pop_front();
        }
        self.snapshots.push_back((now, stats));
    }

    fn latest(&self) -> &Stats {
        &self.snapshots.back().expect("a snapshot was taken").1
    }

    /// The snapshot before the latest one (or the latest itself, at the start).
    fn previous(&self) -> (Instant, &Stats) {
        let (t, s) = &self.snapshots[self.snapshots.len().saturating_sub(2)];
        (*t, s)
    }

    /// The oldest snapshot of the window.
    fn oldest(&self) -> &Stats {
        &self.snapshots.front().expect("a snapshot was taken").1
    }
}

/// Everything one frame shows.
struct View<'a> {
    samples: &'a Samples,
    elapsed: Duration,
    pinned: bool,
}

/// The histogram of what was recorded between two snapshots of it.
fn since(now: &Histogram, before: Option<&Histogram>) -> Histogram {
    let Some(before) = before else {
        return now.clone();
    };
    let mut since = Histogram::default();
    since.counts = now
        .counts
        .iter()
        .zip(before.counts.iter().chain(std::iter::repeat(&0)))
        .map(|(n, b)| n.saturating_sub(*b))
        .collect();
    since.sum = now.sum.saturating_sub(before.sum);
    since
}

/// A quantile of a histogram, as the bucket bound it is at most: "≤ 1.0 ms".
fn quantile_text(h: &Histogram, q: f64) -> String {
    if h.count() == 0 {
        return "–".into();
    }
    match h.quantile(q) {
        Some(d) => format!("≤ {}", duration_text(d)),
        None => format!(
            "> {}",
            duration_text(Duration::from_nanos(
                *Histogram::bounds_ns().last().expect("bounds"),
            ))
        ),
    }
}

fn duration_text(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else if us < 1e6 {
        format!("{:.1} ms", us / 1e3)
    } else {
        format!("{:.1} s", us / 1e6)
    }
}

/// `▕███████░░░░░▏` of `fraction` (0..=1) in `width` cells.
fn bar(fraction: f64, width: usize) -> String {
    let filled = (fraction.clamp(0.0, 1.0) * width as f64).round() as usize;
    format!("▕{}{}▏", "█".repeat(filled), "░".repeat(width - filled))
}

fn load_color(fraction: f64) -> Color {
    match fraction {
        f if f >= 0.9 => Color::Red,
        f if f >= 0.6 => Color::Yellow,
        _ => Color::Green,
    }
}

fn health_text(h: Health) -> (&'static str, Color) {
    match h {
        Health::Unknown => ("unknown", Color::Gray),
        Health::Excellent => ("excellent", Color::Green),
        Health::Healthy => ("healthy", Color::Green),
        Health::AtRisk => ("at risk", Color::Yellow),
        Health::Problematic => ("problematic", Color::Red),
    }
}

fn render(frame: &mut Frame, view: &View) {
    let stats = view.samples.latest();
    let workers = stats.workers.len() as u16;
    let ops = stats.operations.len().max(1) as u16;
    let [header, middle, operations, spark, footer] = Layout::vertical([
        Constraint::Length(4),
        Constraint::Length(workers + 3),
        Constraint::Length(ops + 3),
        Constraint::Min(4),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    render_header(frame, header, view);
    let [busy, lanes] =
        Layout::horizontal([Constraint::Percentage(58), Constraint::Percentage(42)]).areas(middle);
    render_workers(frame, busy, view);
    render_lanes(frame, lanes, stats);
    render_operations(frame, operations, view);
    render_throughput(frame, spark, view);
    frame.render_widget(
        Paragraph::new(Line::from(vec![
            Span::styled(" p", Style::new().add_modifier(Modifier::BOLD)),
            Span::raw(" pause/resume admission   "),
            Span::styled("q", Style::new().add_modifier(Modifier::BOLD)),
            Span::raw(" quit   quantiles are bucket bounds: the true value is at most that"),
        ])),
        footer,
    );
}

fn render_header(frame: &mut Frame, area: Rect, view: &View) {
    let stats = view.samples.latest();
    let (phase, left) = Phase::at(view.elapsed);
    let rate = view.samples.throughput.back().copied().unwrap_or(0);
    let tokens = stats.tokens_in_use as f64 / stats.capacity as f64;
    let admission = if stats.paused {
        Span::styled(
            " PAUSED ",
            Style::new()
                .fg(Color::White)
                .bg(Color::Red)
                .add_modifier(Modifier::BOLD),
        )
    } else {
        Span::styled("running", Style::new().fg(Color::Green))
    };
    let lines = vec![
        Line::from(vec![
            Span::raw(format!(
                "{} workers ({})   uptime {:.1} s   phase ",
                stats.workers.len(),
                if view.pinned { "pinned" } else { "not pinned" },
                view.elapsed.as_secs_f64(),
            )),
            Span::styled(phase.name(), Style::new().add_modifier(Modifier::BOLD)),
            Span::raw(format!(" (next in {:.0} s)", left.as_secs_f64().ceil())),
        ]),
        Line::from(vec![
            Span::raw(format!("throughput {rate:>6} tasks/s   tokens ")),
            Span::styled(bar(tokens, 16), Style::new().fg(load_color(tokens))),
            Span::raw(format!(
                " {:>4}/{}   held {:>4}   admission ",
                stats.tokens_in_use, stats.capacity, stats.held
            )),
            admission,
        ]),
    ];
    let block = Block::bordered().title(" tokengate dashboard ");
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn render_workers(frame: &mut Frame, area: Rect, view: &View) {
    let (then, before) = view.samples.previous();
    let (now, stats) = view.samples.snapshots.back().expect("a snapshot");
    let dt = now.duration_since(then).as_secs_f64();
    let mut lines = vec![Line::from(Span::styled(
        format!(
            "{:<22}{:>5} {:>8} {:>6} {:>5} {:>6} {:>6}",
            "", "busy", "ran", "stole", "parks", "forks", "fsteal"
        ),
        Style::new().add_modifier(Modifier::BOLD),
    ))];
    for (w, b) in stats.workers.iter().zip(&before.workers) {
        let busy = if dt > 0.0 {
            (w.busy.saturating_sub(b.busy).as_secs_f64() / dt).min(1.0)
        } else {
            0.0
        };
        lines.push(Line::from(vec![
            Span::raw(format!("w{:<2}", w.index)),
            Span::styled(bar(busy, 16), Style::new().fg(load_color(busy))),
            Span::raw(format!(
                " {:>4.0}% {:>8} {:>6} {:>5} {:>6} {:>6}",
                busy * 100.0,
                w.tasks_run,
                w.tasks_stolen,
                w.parks,
                w.forks,
                w.forks_stolen
            )),
        ]));
    }
    let block = Block::bordered().title(format!(" workers: busy over the last {dt:.1} s "));
    frame.render_widget(Paragraph::new(lines).block(block), area);
}

fn render_lanes(frame: &mut Frame, area: Rect, stats: &Stats) {
    let header = Row::new(["worker", "light", "medium", "heavy", "home", "now"])
        .style(Style::new().add_modifier(Modifier::BOLD));
    let rows = stats.workers.iter().map(|w| {
        Row::new([
            format!("w{}", w.index),
            w.lane_depth[0].to_string(),
            w.lane_depth[1].to_string(),
            w.lane_depth[2].to_string(),
            w.home_depth.to_string(),
            if w.busy_now { "busy" } else { "idle" }.to_string(),
        ])
    });
    let widths = [
        Constraint::Length(6),
        Constraint::Length(6),
        Constraint::Length(6),
    ]
    .into_iter()
    .chain([Constraint::Length(6); 3]);
    let table = Table::new(rows, widths)
        .header(header)
        .block(Block::bordered().title(" queued, per lane "));
    frame.render_widget(table, area);
}

fn render_operations(frame: &mut Frame, area: Rect, view: &View) {
    let stats = view.samples.latest();
    let oldest = view.samples.oldest();
    let header = Row::new([
        "operation",
        "weight",
        "submitted",
        "completed",
        "failed",
        "in flight",
        "wait p50",
        "wait p95",
        "run mean",
        "health",
    ])
    .style(Style::new().add_modifier(Modifier::BOLD));
    let rows = stats.operations.iter().map(|o| {
        let wait = since(
            &o.queue_wait,
            oldest.operation(o.name).map(|b| &b.queue_wait),
        );
        let run = since(&o.run_time, oldest.operation(o.name).map(|b| &b.run_time));
        let run_mean = run.mean().map_or_else(|| "–".into(), duration_text);
        let (health, color) = health_text(o.health());
        Row::new::<Vec<Cell>>(vec![
            o.name.to_string().into(),
            o.weight.to_string().into(),
            o.submitted.to_string().into(),
            o.completed.to_string().into(),
            Span::styled(
                o.failed.to_string(),
                Style::new().fg(if o.failed > 0 {
                    Color::Yellow
                } else {
                    Color::Reset
                }),
            )
            .into(),
            o.in_flight().to_string().into(),
            quantile_text(&wait, 0.5).into(),
            quantile_text(&wait, 0.95).into(),
            run_mean.into(),
            Span::styled(health, Style::new().fg(color)).into(),
        ])
    });
    let widths = [
        Constraint::Length(14),
        Constraint::Length(7),
        Constraint::Length(10),
        Constraint::Length(10),
        Constraint::Length(7),
        Constraint::Length(9),
        Constraint::Length(10),
        Constraint::Length(10),
        Constraint::Length(9),
        Constraint::Length(11),
    ];
    let title = format!(
        " operations (wait and run time over the last {:.0} s) ",
        (WINDOW as f64 * REFRESH.as_secs_f64())
    );
    let table = Table::new(rows, widths)
        .header(header)
        .block(Block::bordered().title(title));
    frame.render_widget(table, area);
}

fn render_throughput(frame: &mut Frame, area: Rect, view: &View) {
    let data: Vec<u64> = view.samples.throughput.iter().copied().collect();
    let width = area.width.saturating_sub(2) as usize;
    let shown = &data[data.len().saturating_sub(width)..];
    let peak = shown.iter().copied().max().unwrap_or(0);
    let spark = Sparkline::default()
        .data(shown.iter().copied())
        .style(Style::new().fg(Color::Cyan))
        .block(Block::bordered().title(format!(" throughput, tasks/s (peak {peak}) ")));
    frame.render_widget(spark, area);
}

// ---- running it -----------------------------------------------------------------------------

struct Options {
    plain: bool,
    seconds: Option<f64>,
    frames: Option<u64>,
    workers: Option<usize>,
}

impl Options {
    fn parse() -> Result<Options, String> {
        let mut o = Options {
            plain: false,
            seconds: None,
            frames: None,
            workers: None,
        };
        let mut args = std::env::args().skip(1);
        while let Some(arg) = args.next() {
            let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
            match arg.as_str() {
                "--plain" => o.plain = true,
                "--seconds" => {
                    let v = value("--seconds")?;
                    o.seconds = Some(
                        v.parse()
                            .map_err(|_| format!("--seconds {v}: not a number"))?,
                    );
                }
                "--frames" => {
                    let v = value("--frames")?;
                    o.frames = Some(
                        v.parse()
                            .map_err(|_| format!("--frames {v}: not a count"))?,
                    );
                }
                "--workers" => {
                    let v = value("--workers")?;
                    o.workers = Some(
                        v.parse()
                            .map_err(|_| format!("--workers {v}: not a count"))?,
                    );
                }
                "-h" | "--help" => {
                    return Err(
                        "usage: dashboard [--plain] [--seconds S] [--frames N] [--workers N]"
                            .into(),
                    )
                }
                other => return Err(format!("unknown argument {other:?}; try --help")),
            }
        }
        if o.plain && o.seconds.is_none() && o.frames.is_none() {
            o.seconds = Some(5.0);
        }
        Ok(o)
    }

    fn done(&self, elapsed: Duration, frames: u64) -> bool {
        self.seconds.is_some_and(|s| elapsed.as_secs_f64() >= s)
            || self.frames.is_some_and(|n| frames >= n)
    }
}

/// One worker per core, pinned; unpinned if this machine does not allow pinning.
fn build_runtime(workers: Option<usize>) -> (Runtime, bool) {
    let workers = workers.unwrap_or_else(|| thread::available_parallelism().map_or(2, |n| n.get()));
    let builder = || Runtime::builder().workers(workers).capacity(CAPACITY);
    match builder().build() {
        Ok(rt) => (rt, true),
        Err(e) => {
            eprintln!("cannot pin the workers ({e}); running them unpinned");
            let rt = builder().pin(false).build().expect("build the runtime");
            (rt, false)
        }
    }
}

/// Silences the report of the workload's planned panics (a report would also scribble over
/// the screen); any other panic goes to `next`.
fn quiet_planned_panics() {
    let next = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str));
        if !message.is_some_and(|m| m.starts_with("planned")) {
            next(info);
        }
    }));
}

/// Puts the terminal back (raw mode off, main screen) when dropped, on return or unwinding.
/// A panic hook does the same before the panic is reported, so the report is readable.
struct TerminalGuard;

impl TerminalGuard {
    fn enter() -> io::Result<(TerminalGuard, ratatui::DefaultTerminal)> {
        // `try_init` installs a hook that restores the terminal before any panic report.
        let terminal = ratatui::try_init()?;
        Ok((TerminalGuard, terminal))
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        ratatui::restore();
    }
}

/// Waits until `deadline`, handling keys. Returns false if the user asked to quit.
fn handle_keys(rt: &Runtime, deadline: Instant) -> io::Result<bool> {
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        if !event::poll(left)? {
            break;
        }
        match event::read()? {
            Event::Key(key) if key.kind == KeyEventKind::Press => match key.code {
                KeyCode::Char('q') | KeyCode::Esc => return Ok(false),
                KeyCode::Char('c') if key.modifiers.contains(KeyModifiers::CONTROL) => {
                    return Ok(false)
                }
                KeyCode::Char('p') => {
                    if rt.is_paused() {
                        rt.resume();
                    } else {
                        rt.pause();
                    }
                    break; // redraw now
                }
                _ => {}
            },
            Event::Resize(..) => break,
            _ => {}
        }
    }
    Ok(true)
}

fn run_terminal(
    terminal: &mut ratatui::DefaultTerminal,
    rt: &Runtime,
    options: &Options,
    start: Instant,
    pinned: bool,
) -> io::Result<()> {
    let mut samples = Samples::new();
    let mut frames = 0;
    loop {
        let tick = Instant::now();
        samples.take(rt);
        let view = View {
            samples: &samples,
            elapsed: start.elapsed(),
            pinned,
        };
        terminal.draw(|f| render(f, &view))?;
        frames += 1;
        if options.done(start.elapsed(), frames) || !handle_keys(rt, tick + REFRESH)? {
            return Ok(());
        }
    }
}

fn run_plain(rt: &Runtime, options: &Options, start: Instant, pinned: bool) -> io::Result<()> {
    let mut samples = Samples::new();
    let mut frames = 0;
    loop {
        let tick = Instant::now();
        samples.take(rt);
        frames += 1;
        if options.done(start.elapsed(), frames) {
            break;
        }
        thread::sleep((tick + REFRESH).saturating_duration_since(Instant::now()));
    }
    let view = View {
        samples: &samples,
        elapsed: start.elapsed(),
        pinned,
    };
    let stats = samples.latest();
    let height = 4 + (stats.workers.len() as u16 + 3) + (stats.operations.len() as u16 + 3) + 6 + 1;
    let mut terminal = Terminal::new(TestBackend::new(112, height))?;
    terminal.draw(|f| render(f, &view))?;
    print!("{}", buffer_text(terminal.backend()));
    Ok(())
}

/// The cells of a test backend's buffer as lines of text (styles dropped).
fn buffer_text(backend: &TestBackend) -> String {
    let buffer = backend.buffer();
    let mut text = String::new();
    for y in 0..buffer.area.height {
        let line: String = (0..buffer.area.width)
            .map(|x| buffer[(x, y)].symbol())
            .collect();
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

fn main() -> io::Result<()> {
    let options = match Options::parse() {
        Ok(o) => o,
        Err(message) => {
            eprintln!("{message}");
            std::process::exit(2);
        }
    };
    let (rt, pinned) = build_runtime(options.workers);
    let rt = Arc::new(rt);
    let screen = match options.plain {
        true => None,
        false => Some(TerminalGuard::enter()?),
    };
    // After `try_init` (whose hook restores the terminal, which a planned panic must not do)
    // and before the first task.
    quiet_planned_panics();
    let start = Instant::now();
    let mut producer = Producer::start(rt.clone(), start);
    let shown = match screen {
        // The guard lives to the end of this arm, then restores the terminal.
        Some((_guard, mut terminal)) => run_terminal(&mut terminal, &rt, &options, start, pinned),
        None => run_plain(&rt, &options, start, pinned),
    };
    // Stop submitting first (the producer never blocks, paused or not), then shut down:
    // queued and held tasks are killed, running ones finish, the workers are joined.
    producer.stop();
    rt.resume();
    rt.shutdown_now();
    shown
}
