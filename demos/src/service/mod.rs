//! An HTTP service on tokio and axum whose handlers offload their CPU work and `.await` it.
//!
//! | endpoint | work | answer |
//! | --- | --- | --- |
//! | `GET /light?msg=<text>` | a stretched digest of a short message, ~50 µs ([`work::light`]) | `200 {"digest": "..", "rounds": n}` |
//! | `POST /heavy` with `{"from": n, "count": k}` | a prime search over `[n, n + k)`, ~10 ms for the bench's body ([`work::heavy`]) | `200 {"from", "count", "primes", "largest"}` |
//! | `GET /healthz` | none | `200 ok` |
//!
//! Errors are JSON `{"error": ".."}`: a bad query or body is a 400 saying what is wrong; work
//! the backend refuses (tokengate's ring is full, too many heavy requests are in flight, the
//! service is shutting down) is a 503 at once, never a wait; a panic in the work is a 500.
//!
//! The [`Backend`] decides where the work runs: tokengate (awaiting `TaskHandle`s as
//! futures), tokio's `spawn_blocking`, a rayon pool, or inline on the async threads.
//! [`serve`] runs the server until a shutdown future resolves, then lets the requests in
//! flight finish and shuts the backend down.

pub mod backend;
pub mod report;
pub mod work;

use std::future::Future;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use tokio::net::TcpListener;

pub use backend::{Backend, BackendConfig, BackendKind, OffloadError, Work};
use work::{HeavyInput, HeavyOutput, LightInput, LightOutput};

/// The default bound on heavy requests in flight; one more is answered 503.
pub const DEFAULT_MAX_HEAVY: usize = 256;

/// The state the handlers share: the backend and the count of heavy requests in flight.
#[derive(Debug)]
pub struct Service {
    backend: Backend,
    max_heavy: usize,
    heavy_in_flight: AtomicUsize,
}

impl Service {
    /// A service over `backend` that answers 503 to a heavy request while `max_heavy` are in
    /// flight.
    pub fn new(backend: Backend, max_heavy: usize) -> Arc<Self> {
        Arc::new(Self {
            backend,
            max_heavy,
            heavy_in_flight: AtomicUsize::new(0),
        })
    }

    /// The backend the work runs on.
    pub fn backend(&self) -> &Backend {
        &self.backend
    }
}

/// An error answer: a status and a message, sent as `{"error": message}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn bad_request(message: String) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            message,
        }
    }

    fn unavailable(message: String) -> Self {
        Self {
            status: StatusCode::SERVICE_UNAVAILABLE,
            message,
        }
    }
}

impl From<OffloadError> for ApiError {
    fn from(e: OffloadError) -> Self {
        match e {
            OffloadError::Refused(why) => ApiError::unavailable(format!("busy, try again: {why}")),
            OffloadError::Panicked(msg) => Self {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: format!("the work failed: {msg}"),
            },
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({ "error": self.message }));
        (self.status, body).into_response()
    }
}

/// The routes of the service over `service`.
pub fn router(service: Arc<Service>) -> Router {
    Router::new()
        .route("/light", get(light))
        .route("/heavy", post(heavy))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(service)
}

async fn light(
    State(service): State<Arc<Service>>,
    query: Result<Query<LightInput>, QueryRejection>,
) -> Result<Json<LightOutput>, ApiError> {
    let Query(input) = query
        .map_err(|e| ApiError::bad_request(format!("{}; send /light?msg=<text>", e.body_text())))?;
    input.validate().map_err(ApiError::bad_request)?;
    let output = service
        .backend
        .run(Work::Light, move || work::light(&input))
        .await?;
    Ok(Json(output))
}

async fn heavy(
    State(service): State<Arc<Service>>,
    body: Bytes,
) -> Result<Json<HeavyOutput>, ApiError> {
    let input = HeavyInput::from_json(&body).map_err(ApiError::bad_request)?;
    let _slot = HeavySlot::take(&service)?;
    let output = service
        .backend
        .run(Work::Heavy, move || work::heavy(&input))
        .await?;
    Ok(Json(output))
}

/// One of the `max_heavy` places for a heavy request in flight, given back on drop (also
/// when the client goes away and the handler's future is dropped).
struct HeavySlot<'a>(&'a AtomicUsize);

impl<'a> HeavySlot<'a> {
    fn take(service: &'a Service) -> Result<Self, ApiError> {
        // ORDERING: a counter only; it orders no other memory.
        let before = service.heavy_in_flight.fetch_add(1, Ordering::Relaxed);
        let slot = HeavySlot(&service.heavy_in_flight);
        if before >= service.max_heavy {
            return Err(ApiError::unavailable(format!(
                "busy, try again: {} heavy requests are in flight already",
                service.max_heavy
            )));
        }
        Ok(slot)
    }
}

impl Drop for HeavySlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Serves `service` on `listener` until `shutdown` resolves; then stops accepting, lets the
/// requests in flight finish, and shuts the backend down (its threads are joined).
pub async fn serve(
    listener: TcpListener,
    service: Arc<Service>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    axum::serve(listener, router(service.clone()))
        .with_graceful_shutdown(shutdown)
        .await?;
    tokio::task::spawn_blocking(move || service.backend.shutdown())
        .await
        .map_err(io::Error::other)
}
