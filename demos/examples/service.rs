//! An HTTP service on 127.0.0.1 whose handlers offload CPU work to a backend and await it.
//!
//! ```text
//! cargo run --release -p tokengate-demos --example service -- --backend tokengate --port 8080
//! curl 'http://127.0.0.1:8080/light?msg=hello'
//! curl -d '{"from": 1000000000, "count": 10000}' http://127.0.0.1:8080/heavy
//! ```
//!
//! Ctrl-C (or SIGTERM) stops it gracefully: no new connections, the requests in flight are
//! answered, the backend's threads are joined.

use std::net::Ipv4Addr;
use std::process::ExitCode;

use tokengate_demos::service::{self, work, Backend, BackendConfig, BackendKind, Service};

const USAGE: &str = "\
usage: service [--backend NAME] [--port N] [--tokio-threads N] [--cores N] [--capacity N]
               [--max-heavy N] [--heavy-nice N] [--pin]
  --backend        tokengate (default), tokengate-spread, spawn_blocking, rayon, inline
  --port           port on 127.0.0.1 (default 8080; 0 picks a free one)
  --tokio-threads  threads of the async runtime (default: one per core)
  --cores          cores for the CPU work: tokengate workers, rayon threads (default: all)
  --capacity       tokengate's tokens, a power of two (default 1024)
  --max-heavy      heavy requests in flight before a 503 (default 256)
  --heavy-nice     OS niceness of tokengate's heavy workers, 0 to 19 (default 19; 0: unchanged)
  --pin            pin tokengate-spread's workers to cores";

struct Args {
    backend: BackendConfig,
    port: u16,
    tokio_threads: usize,
    max_heavy: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut backend = BackendConfig::new(BackendKind::Tokengate);
    let mut port = 8080;
    let mut tokio_threads = backend.cores;
    let mut max_heavy = service::DEFAULT_MAX_HEAVY;
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        if flag == "--help" || flag == "-h" {
            return Err(String::new());
        }
        if flag == "--pin" {
            backend.pin = true;
            continue;
        }
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<usize>()
                .map_err(|_| format!("{flag} {value:?}: expected a whole number"))
        };
        match flag.as_str() {
            "--backend" => backend.kind = value.parse()?,
            "--port" => {
                port = value
                    .parse()
                    .map_err(|_| format!("--port {value:?}: expected 0 to 65535"))?
            }
            "--tokio-threads" => tokio_threads = number()?.max(1),
            "--cores" => backend.cores = number()?.max(1),
            "--capacity" => backend.capacity = number()?,
            "--max-heavy" => max_heavy = number()?,
            "--heavy-nice" => {
                backend.heavy_nice = value
                    .parse()
                    .map_err(|_| format!("--heavy-nice {value:?}: expected 0 to 19"))?
            }
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    Ok(Args {
        backend,
        port,
        tokio_threads,
        max_heavy,
    })
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(args) => args,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("error: {e}");
            }
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    // Measured before the server starts, on an otherwise idle process: what one request of
    // each kind costs in CPU time here. The bench reads this line.
    let cal = work::calibrate();
    println!(
        "calibration: light_us={:.1} heavy_ms={:.2} ({})",
        cal.light.as_secs_f64() * 1e6,
        cal.heavy.as_secs_f64() * 1e3,
        if cal.cpu_time {
            "thread CPU time"
        } else {
            "wall-clock time"
        }
    );
    let backend = match Backend::new(&args.backend) {
        Ok(b) => b,
        Err(e) => {
            eprintln!("error: cannot start the {} backend: {e}", args.backend.kind);
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(args.tokio_threads)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start tokio: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, args.port)).await?;
        println!(
            "listening on http://{} (backend {}, {} tokio threads)",
            listener.local_addr()?,
            args.backend.kind,
            args.tokio_threads
        );
        service::serve(
            listener,
            Service::new(backend, args.max_heavy),
            shutdown_signal(),
        )
        .await
    });
    match result {
        Ok(()) => {
            println!("shut down cleanly");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Resolves on Ctrl-C, or on SIGTERM where there is one.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
    println!("shutting down: finishing the requests in flight");
}
