//! fundguard's HTTP server: the ingest endpoint for business messages, health and
//! readiness, and the status of every source.
//!
//! The server does not decode or evaluate anything: an ingest request becomes an
//! [`IngestBatch`] sent to the pipeline, and the response waits for the pipeline's
//! verdict, so a 2xx means the batch was accepted into it.

mod ingest;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use fundguard_sources::SourceHealth;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

pub use ingest::{IngestBatch, IngestVerdict, Rejected};

/// An HTTP ingest source as the server needs it.
#[derive(Clone)]
pub struct IngestSource {
    /// The bearer token clients must send.
    pub token: String,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Most messages accepted in one request.
    pub max_messages: usize,
}

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub ingest: Arc<HashMap<String, IngestSource>>,
    pub pipeline: mpsc::Sender<IngestBatch>,
    pub health: Arc<Mutex<Vec<SourceHealth>>>,
    /// The largest body any source accepts: requests above it are refused (413) unread.
    pub max_body_bytes: usize,
}

/// The routes: `POST /v1/ingest/{source}`, `GET /v1/sources`, `GET /healthz`, `GET /readyz`.
pub fn router(state: AppState) -> Router {
    let limit = state.max_body_bytes;
    Router::new()
        .route("/v1/ingest/{source}", post(ingest::ingest))
        .route("/v1/sources", get(sources))
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ready" }))
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .with_state(state)
}

async fn sources(State(state): State<AppState>) -> Json<Vec<SourceHealth>> {
    let health = state.health.lock().map(|h| h.clone()).unwrap_or_default();
    Json(health)
}

/// Serves until `shutdown` resolves. Bind the listener yourself (port 0 in tests).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state)).with_graceful_shutdown(shutdown).await
}
