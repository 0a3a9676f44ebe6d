//! The load test's report: reads the load generator's (oha's) JSON results, prints one
//! table and draws the same figures as an SVG chart.

use std::fmt::Write as _;
use std::path::Path;

use serde_json::Value;

use super::backend::BackendKind;

/// One backend's figures from one run.
#[derive(Clone, Debug, PartialEq)]
pub struct Row {
    /// The backend's name.
    pub backend: String,
    /// Light requests answered 2xx.
    pub light_ok: u64,
    /// Light latency percentiles in milliseconds: p50, p99, p99.9.
    pub light_ms: [f64; 3],
    /// Heavy requests answered 2xx per second.
    pub heavy_per_s: f64,
    /// Requests of either kind that failed: a status other than 2xx, or a connection or
    /// timeout error (requests cut by the end of the run are not counted).
    pub errors: u64,
    /// The share of the machine's CPU that other programs took during the run, in %, if
    /// the bench measured it.
    pub others_cpu: Option<u32>,
}

/// What one oha JSON result says.
#[derive(Clone, Debug, PartialEq)]
pub struct OhaResult {
    /// Seconds the run lasted.
    pub seconds: f64,
    /// Responses with a 2xx status.
    pub ok: u64,
    /// Other statuses and errors, less the requests cut by the end of the run.
    pub errors: u64,
    /// Latency percentiles in seconds: p50, p99, p99.9 (of all responses).
    pub latency: [f64; 3],
}

/// Parses oha's `--output-format json`.
pub fn parse_oha(json: &str) -> Result<OhaResult, String> {
    let v: Value = serde_json::from_str(json).map_err(|e| format!("not oha's JSON: {e}"))?;
    let seconds = v["summary"]["total"]
        .as_f64()
        .ok_or("no summary.total in oha's JSON")?;
    let mut ok = 0;
    let mut errors = 0;
    if let Some(codes) = v["statusCodeDistribution"].as_object() {
        for (code, n) in codes {
            let n = n.as_u64().unwrap_or(0);
            if code.starts_with('2') {
                ok += n;
            } else {
                errors += n;
            }
        }
    }
    if let Some(errs) = v["errorDistribution"].as_object() {
        for (what, n) in errs {
            if !what.contains("deadline") {
                errors += n.as_u64().unwrap_or(0);
            }
        }
    }
    let p = &v["latencyPercentiles"];
    let pick = |key: &str| p[key].as_f64().unwrap_or(f64::NAN);
    Ok(OhaResult {
        seconds,
        ok,
        errors,
        latency: [pick("p50"), pick("p99"), pick("p99.9")],
    })
}

impl Row {
    /// A row from the light and the heavy load generator's results.
    pub fn new(backend: &str, light: &OhaResult, heavy: &OhaResult) -> Self {
        Self {
            backend: backend.to_string(),
            light_ok: light.ok,
            light_ms: light.latency.map(|s| s * 1e3),
            heavy_per_s: heavy.ok as f64 / heavy.seconds,
            errors: light.errors + heavy.errors,
            others_cpu: None,
        }
    }
}

/// Reads `<dir>/<backend>.light.json` and `<dir>/<backend>.heavy.json` for every backend
/// that has both, in the bench's order.
pub fn read_dir(dir: &Path) -> Result<Vec<Row>, String> {
    let mut rows = Vec::new();
    for kind in BackendKind::ALL {
        let name = kind.name();
        let light = dir.join(format!("{name}.light.json"));
        let heavy = dir.join(format!("{name}.heavy.json"));
        if !light.exists() || !heavy.exists() {
            continue;
        }
        let read = |p: &Path| {
            std::fs::read_to_string(p)
                .map_err(|e| format!("{}: {e}", p.display()))
                .and_then(|s| parse_oha(&s).map_err(|e| format!("{}: {e}", p.display())))
        };
        let mut row = Row::new(name, &read(&light)?, &read(&heavy)?);
        row.others_cpu = std::fs::read_to_string(dir.join(format!("{name}.others")))
            .ok()
            .and_then(|s| s.trim().parse().ok());
        rows.push(row);
    }
    if rows.is_empty() {
        return Err(format!("no results in {}", dir.display()));
    }
    Ok(rows)
}

/// The table, in Markdown.
pub fn table(rows: &[Row]) -> String {
    let mut s = String::from(
        "| backend | light p50 | light p99 | light p99.9 | heavy req/s | errors | CPU taken by other programs |\n\
         | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {:.1} | {} | {} |",
            r.backend,
            ms(r.light_ms[0]),
            ms(r.light_ms[1]),
            ms(r.light_ms[2]),
            r.heavy_per_s,
            r.errors,
            r.others_cpu.map_or("-".into(), |p| format!("{p} %"))
        );
    }
    s
}

fn ms(v: f64) -> String {
    if v < 1.0 {
        format!("{:.0} µs", v * 1e3)
    } else if v < 100.0 {
        format!("{v:.2} ms")
    } else {
        format!("{v:.0} ms")
    }
}

/// The issue's targets checked against `rows`: tokengate's light p99 at most one heavy
/// request's CPU time (`heavy_cpu_ms`) and 5× below spawn_blocking's, its heavy throughput
/// within 5 % of the best backend's. One line each, or an empty list without those rows.
pub fn verdicts(rows: &[Row], heavy_cpu_ms: f64) -> Vec<String> {
    let find = |name: &str| rows.iter().find(|r| r.backend == name);
    let (Some(tg), Some(sb)) = (find("tokengate"), find("spawn_blocking")) else {
        return Vec::new();
    };
    let best = rows.iter().map(|r| r.heavy_per_s).fold(0.0, f64::max);
    let mark = |ok: bool| if ok { "met" } else { "MISSED" };
    let p99 = tg.light_ms[1];
    vec![
        format!(
            "tokengate light p99 {} <= one heavy request's CPU time {}: {}",
            ms(p99),
            ms(heavy_cpu_ms),
            mark(p99 <= heavy_cpu_ms)
        ),
        format!(
            "tokengate light p99 {:.1}x lower than spawn_blocking's ({}), target >= 5x: {}",
            sb.light_ms[1] / p99,
            ms(sb.light_ms[1]),
            mark(sb.light_ms[1] >= 5.0 * p99)
        ),
        format!(
            "tokengate heavy {:.1} req/s = {:.1} % of the best backend's {:.1}, target >= 95 %: {}",
            tg.heavy_per_s,
            100.0 * tg.heavy_per_s / best,
            best,
            mark(tg.heavy_per_s >= 0.95 * best)
        ),
    ]
}

/// The chart: light latency per backend (p50, p99, p99.9 on a log scale, with one heavy
/// request's CPU time marked) beside heavy requests per second. Plain SVG text; the caption
/// is split into lines at its semicolons.
pub fn svg(rows: &[Row], heavy_cpu_ms: f64, caption: &str) -> String {
    const W: f64 = 980.0;
    const COLORS: [&str; 3] = ["#9ecae1", "#4292c6", "#08306b"];
    const NAMES: [&str; 3] = ["p50", "p99", "p99.9"];
    let lines: Vec<&str> = caption
        .split(';')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let top = 80.0 + 15.0 * lines.len() as f64;
    let bottom = top + 280.0;
    let height = bottom + 90.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{height}" viewBox="0 0 {W} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="{W}" height="{height}" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="24" text-anchor="middle" font-size="16" font-weight="bold">GET /light latency under saturating POST /heavy load, and /heavy throughput</text>"#,
        W / 2.0
    );
    for (i, line) in lines.iter().enumerate() {
        let _ = writeln!(
            s,
            r##"<text x="{}" y="{}" text-anchor="middle" fill="#555">{}</text>"##,
            W / 2.0,
            44.0 + 15.0 * i as f64,
            escape(line)
        );
    }

    // Left panel: latency, log scale from 0.1 ms to the next power of ten above the worst.
    let (lx0, lx1) = (70.0, 680.0);
    let worst = rows
        .iter()
        .flat_map(|r| r.light_ms)
        .chain([heavy_cpu_ms])
        .filter(|v| v.is_finite())
        .fold(1.0, f64::max);
    let (lo, hi) = (-1.0f64, worst.log10().ceil().max(1.0));
    let y_of = |ms: f64| bottom - (ms.max(0.1).log10() - lo) / (hi - lo) * (bottom - top);
    let mut decade = lo;
    while decade <= hi {
        let y = y_of(10f64.powf(decade));
        let label = if decade < 0.0 {
            format!("{}", 10f64.powf(decade))
        } else {
            format!("{:.0}", 10f64.powf(decade))
        };
        let _ = writeln!(
            s,
            r##"<line x1="{lx0}" y1="{y:.1}" x2="{lx1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{label}</text>"##,
            lx0 - 6.0,
            y + 4.0
        );
        decade += 1.0;
    }
    let mid = (top + bottom) / 2.0;
    let _ = writeln!(
        s,
        r#"<text x="20" y="{mid}" transform="rotate(-90 20 {mid})" text-anchor="middle">light latency, ms (log scale)</text>"#
    );
    let group = (lx1 - lx0) / rows.len().max(1) as f64;
    let bar = group * 0.8 / 3.0;
    for (i, r) in rows.iter().enumerate() {
        let gx = lx0 + group * i as f64 + group * 0.1;
        for (k, v) in r.light_ms.iter().enumerate() {
            if !v.is_finite() {
                continue;
            }
            let y = y_of(*v);
            let x = gx + bar * k as f64;
            let _ = writeln!(
                s,
                r#"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{} {}: {}</title></rect>"#,
                bar - 1.0,
                bottom - y,
                COLORS[k],
                r.backend,
                NAMES[k],
                ms(*v)
            );
        }
        // The p99 figure above its bar.
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="middle" font-size="10">p99 {}</text>"#,
            gx + bar * 1.5,
            y_of(r.light_ms[2].max(r.light_ms[1])) - 4.0,
            ms(r.light_ms[1])
        );
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
            gx + bar * 1.5,
            bottom + 16.0,
            escape(&r.backend)
        );
    }
    let y = y_of(heavy_cpu_ms);
    let _ = writeln!(
        s,
        r##"<line x1="{lx0}" y1="{y:.1}" x2="{lx1}" y2="{y:.1}" stroke="#d62728" stroke-width="1.5" stroke-dasharray="6 4"/>"##
    );
    // Legend, above the panel: the three percentiles, then the dashed line.
    let ly = top - 14.0;
    for (k, name) in NAMES.iter().enumerate() {
        let x = lx0 + 70.0 * k as f64;
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="{}" width="12" height="12" fill="{}"/><text x="{}" y="{}">{name}</text>"#,
            ly - 10.0,
            COLORS[k],
            x + 16.0,
            ly
        );
    }
    let x = lx0 + 220.0;
    let _ = writeln!(
        s,
        r##"<line x1="{x}" y1="{:.1}" x2="{}" y2="{:.1}" stroke="#d62728" stroke-width="1.5" stroke-dasharray="6 4"/><text x="{}" y="{ly}">one heavy request's CPU time ({}): the target for tokengate's p99</text>"##,
        ly - 4.0,
        x + 30.0,
        ly - 4.0,
        x + 36.0,
        ms(heavy_cpu_ms)
    );

    // Right panel: heavy throughput, linear from 0.
    let (rx0, rx1) = (750.0, 960.0);
    let most = rows.iter().map(|r| r.heavy_per_s).fold(1.0, f64::max) * 1.15;
    let step = nice_step(most / 4.0);
    let y_of = |v: f64| bottom - v / most * (bottom - top);
    let mut tick = 0.0;
    while tick <= most {
        let y = y_of(tick);
        let _ = writeln!(
            s,
            r##"<line x1="{rx0}" y1="{y:.1}" x2="{rx1}" y2="{y:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{tick:.0}</text>"##,
            rx0 - 6.0,
            y + 4.0
        );
        tick += step;
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">heavy requests/s</text>"#,
        (rx0 + rx1) / 2.0,
        top - 14.0
    );
    let group = (rx1 - rx0) / rows.len().max(1) as f64;
    for (i, r) in rows.iter().enumerate() {
        let x = rx0 + group * i as f64 + group * 0.15;
        let y = y_of(r.heavy_per_s);
        let cx = x + group * 0.35;
        let _ = writeln!(
            s,
            r##"<rect x="{x:.1}" y="{y:.1}" width="{:.1}" height="{:.1}" fill="#fd8d3c"><title>{}: {:.1} heavy requests/s</title></rect><text x="{cx:.1}" y="{:.1}" text-anchor="middle" font-size="10">{:.0}</text><text x="{cx:.1}" y="{:.1}" text-anchor="end" transform="rotate(-40 {cx:.1} {:.1})">{}</text>"##,
            group * 0.7,
            bottom - y,
            r.backend,
            r.heavy_per_s,
            y - 4.0,
            r.heavy_per_s,
            bottom + 14.0,
            bottom + 14.0,
            escape(&r.backend)
        );
    }
    s.push_str("</svg>\n");
    s
}

fn nice_step(raw: f64) -> f64 {
    let p = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|&v| v >= raw)
        .unwrap_or(10.0 * p)
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    const OHA: &str = r#"{"summary": {"total": 10.0},
        "latencyPercentiles": {"p50": 0.001, "p99": 0.004, "p99.9": 0.02},
        "statusCodeDistribution": {"200": 990, "503": 3},
        "errorDistribution": {"aborted due to deadline": 5, "connection closed": 2}}"#;

    #[test]
    fn oha_json_is_read() {
        let r = parse_oha(OHA).unwrap();
        assert_eq!((r.ok, r.errors, r.seconds), (990, 5, 10.0));
        assert_eq!(r.latency, [0.001, 0.004, 0.02]);
        let row = Row::new("tokengate", &r, &r);
        assert_eq!(row.heavy_per_s, 99.0);
        assert_eq!(row.errors, 10);
        assert!(table(std::slice::from_ref(&row))
            .contains("| tokengate | 1.00 ms | 4.00 ms | 20.00 ms | 99.0 | 10 | - |"));
        let chart = svg(&[row], 10.0, "a <test>; second line");
        assert!(chart.starts_with("<svg") && chart.trim_end().ends_with("</svg>"));
        assert!(chart.contains(">a &lt;test&gt;<") && chart.contains(">second line<"));
    }

    #[test]
    fn verdicts_compare_the_rows() {
        let row = |name: &str, p99: f64, rps: f64| Row {
            backend: name.into(),
            light_ok: 1,
            light_ms: [1.0, p99, p99],
            heavy_per_s: rps,
            errors: 0,
            others_cpu: None,
        };
        let v = verdicts(
            &[
                row("tokengate", 2.0, 190.0),
                row("spawn_blocking", 20.0, 195.0),
            ],
            10.0,
        );
        assert_eq!(v.len(), 3);
        assert!(v.iter().all(|l| l.ends_with(": met")), "{v:?}");
        let v = verdicts(
            &[
                row("tokengate", 12.0, 150.0),
                row("spawn_blocking", 20.0, 195.0),
            ],
            10.0,
        );
        assert!(v.iter().all(|l| l.ends_with(": MISSED")), "{v:?}");
    }
}
