//! `POST /v1/ingest/{source}`: a JSON array of business messages, all or nothing.
//!
//! - 401 without the source's bearer token, 404 for an unknown source;
//! - 413 when the body or the number of messages is over the source's limits;
//! - 400 when the body is not a JSON array;
//! - 422 with a reason per bad message when any message cannot be decoded: nothing of
//!   the batch is accepted, so the client can fix and resend the whole batch;
//! - 200 `{"accepted": N}` once the pipeline has taken the batch.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::oneshot;

use crate::AppState;

/// A batch on its way to the pipeline, with the channel for its verdict.
pub struct IngestBatch {
    pub source: String,
    pub messages: Vec<Vec<u8>>,
    pub reply: oneshot::Sender<IngestVerdict>,
}

/// The pipeline's answer: how many events it accepted, or why messages were refused.
pub type IngestVerdict = Result<usize, Vec<Rejected>>;

/// One refused message of a batch.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Rejected {
    pub index: usize,
    pub reason: String,
}

#[derive(Serialize)]
struct Refusal {
    error: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    rejected: Vec<Rejected>,
}

type Reply = (StatusCode, Json<serde_json::Value>);

fn refuse(status: StatusCode, error: impl Into<String>, rejected: Vec<Rejected>) -> Reply {
    let body = Refusal { error: error.into(), rejected };
    (status, Json(serde_json::to_value(body).unwrap_or_default()))
}

pub(crate) async fn ingest(
    State(state): State<AppState>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Reply {
    let Some(config) = state.ingest.get(&source) else {
        return refuse(StatusCode::NOT_FOUND, format!("no HTTP source named `{source}`"), Vec::new());
    };
    let presented =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if presented != Some(config.token.as_str()) {
        return refuse(StatusCode::UNAUTHORIZED, "missing or wrong bearer token", Vec::new());
    }
    if body.len() > config.max_body_bytes {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!(
                "body of {} bytes is over the limit of {} bytes: send smaller batches",
                body.len(),
                config.max_body_bytes
            ),
            Vec::new(),
        );
    }
    let messages: Vec<&RawValue> = match serde_json::from_slice(&body) {
        Ok(m) => m,
        Err(e) => {
            return refuse(StatusCode::BAD_REQUEST, format!("expected a JSON array of messages: {e}"), Vec::new());
        }
    };
    if messages.len() > config.max_messages {
        return refuse(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{} messages is over the limit of {} per request", messages.len(), config.max_messages),
            Vec::new(),
        );
    }
    let (reply, verdict) = oneshot::channel();
    let batch = IngestBatch { source, messages: messages.iter().map(|m| m.get().as_bytes().to_vec()).collect(), reply };
    if state.pipeline.send(batch).await.is_err() {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "the pipeline is shutting down: retry later", Vec::new());
    }
    match verdict.await {
        Ok(Ok(accepted)) => (StatusCode::OK, Json(serde_json::json!({ "accepted": accepted }))),
        Ok(Err(rejected)) => refuse(
            StatusCode::UNPROCESSABLE_ENTITY,
            format!("{} message(s) could not be read; nothing of this batch was accepted", rejected.len()),
            rejected,
        ),
        Err(_) => refuse(
            StatusCode::SERVICE_UNAVAILABLE,
            "the pipeline stopped before accepting the batch: retry",
            Vec::new(),
        ),
    }
}
