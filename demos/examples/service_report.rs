//! Reads the results of `scripts/service_bench.sh` (oha's JSON, one light and one heavy file
//! per backend), prints the table and the targets' verdicts, and writes the SVG chart.
//!
//! ```text
//! cargo run --release -p tokengate-demos --example service_report -- \
//!     RESULTS_DIR HEAVY_CPU_MS SVG_PATH "caption"
//! ```

use std::path::Path;
use std::process::ExitCode;

use tokengate_demos::service::report;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [dir, heavy_ms, svg_path, caption] = args.as_slice() else {
        eprintln!("usage: service_report RESULTS_DIR HEAVY_CPU_MS SVG_PATH CAPTION");
        return ExitCode::from(2);
    };
    let Ok(heavy_ms) = heavy_ms.parse::<f64>() else {
        eprintln!("error: HEAVY_CPU_MS {heavy_ms:?} is not a number");
        return ExitCode::from(2);
    };
    let rows = match report::read_dir(Path::new(dir)) {
        Ok(rows) => rows,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    print!("{}", report::table(&rows));
    println!();
    for line in report::verdicts(&rows, heavy_ms) {
        println!("{line}");
    }
    if let Err(e) = std::fs::write(svg_path, report::svg(&rows, heavy_ms, caption)) {
        eprintln!("error: {svg_path}: {e}");
        return ExitCode::FAILURE;
    }
    println!("chart: {svg_path}");
    ExitCode::SUCCESS
}
