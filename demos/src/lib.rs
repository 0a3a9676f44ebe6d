//! Examples of tokengate with heavy dependencies, kept out of the library's build.
//!
//! - [`service`]: an HTTP service on tokio and axum that offloads its handlers' CPU work to
//!   tokengate (or, for comparison, to `spawn_blocking`, rayon, or nowhere), with its load
//!   test's report. Run it with `cargo run --release -p tokengate-demos --example service`.

pub mod service;
