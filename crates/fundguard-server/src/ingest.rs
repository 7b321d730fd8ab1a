//! `POST /v1/ingest/{source}`: a JSON array of business messages, all or nothing.
//!
//! - 404 for an unknown source, 401 without the source's bearer token (checked before
//!   the body is read, so a client without the token cannot make the server read a body);
//! - 413 when the body or the number of messages is over the source's limits;
//! - 429 with `Retry-After` when the source is over its rate (requests or messages per
//!   second): each HTTP source has its own token buckets, holding one second's worth;
//! - 400 when the body is not a JSON array;
//! - 422 with a reason per bad message when any message cannot be decoded: nothing of
//!   the batch is accepted, so the client can fix and resend the whole batch;
//! - 200 `{"accepted": N}` once the pipeline has taken the batch.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::value::RawValue;
use tokio::sync::oneshot;

use crate::AppState;

/// An HTTP ingest source as the server needs it.
#[derive(Clone)]
pub struct IngestSource {
    /// The bearer token clients must send.
    pub token: String,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// Most messages accepted in one request.
    pub max_messages: usize,
    pub rate: IngestRate,
    buckets: Arc<Mutex<Buckets>>,
}

/// How fast one HTTP source may send; `None` for no limit.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct IngestRate {
    pub requests_per_second: Option<f64>,
    pub messages_per_second: Option<f64>,
}

impl IngestSource {
    pub fn new(token: String, max_body_bytes: usize, max_messages: usize, rate: IngestRate) -> IngestSource {
        let buckets = Buckets {
            requests: rate.requests_per_second.map(Bucket::new),
            messages: rate.messages_per_second.map(Bucket::new),
        };
        IngestSource { token, max_body_bytes, max_messages, rate, buckets: Arc::new(Mutex::new(buckets)) }
    }

    fn buckets(&self) -> std::sync::MutexGuard<'_, Buckets> {
        self.buckets.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

struct Buckets {
    requests: Option<Bucket>,
    messages: Option<Bucket>,
}

/// A token bucket: `rate` tokens a second, holding at most one second's worth (at least
/// one token). A take larger than the bucket is allowed once the bucket is full and
/// leaves it in debt, so a batch bigger than a second's worth still goes through — and
/// the source then waits it off.
#[derive(Debug)]
struct Bucket {
    rate: f64,
    capacity: f64,
    tokens: f64,
    at: Option<Instant>,
}

impl Bucket {
    fn new(rate: f64) -> Bucket {
        let capacity = rate.max(1.0);
        Bucket { rate, capacity, tokens: capacity, at: None }
    }

    /// Takes `n` tokens at `now`, or says how long to wait before asking again.
    fn take(&mut self, n: f64, now: Instant) -> Result<(), Duration> {
        if let Some(at) = self.at {
            self.tokens =
                (self.tokens + now.saturating_duration_since(at).as_secs_f64() * self.rate).min(self.capacity);
        }
        self.at = Some(now);
        let needed = n.min(self.capacity);
        if self.tokens >= needed {
            self.tokens -= n;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((needed - self.tokens) / self.rate))
        }
    }
}

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

fn refuse(status: StatusCode, error: impl Into<String>, rejected: Vec<Rejected>) -> Response {
    let body = Refusal { error: error.into(), rejected };
    (status, Json(serde_json::to_value(body).unwrap_or_default())).into_response()
}

/// 429 with `Retry-After` in whole seconds (at least 1).
fn too_fast(what: String, wait: Duration) -> Response {
    let seconds = wait.as_secs_f64().ceil().max(1.0) as u64;
    let mut response = refuse(
        StatusCode::TOO_MANY_REQUESTS,
        format!("{what}: retry in {seconds} s (see Retry-After) or send fewer, larger batches"),
        Vec::new(),
    );
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    response
}

fn too_large(length: usize, limit: usize) -> Response {
    refuse(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("body of {length} bytes is over the limit of {limit} bytes: send smaller batches"),
        Vec::new(),
    )
}

pub(crate) async fn ingest(
    State(state): State<AppState>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let Some(config) = state.ingest.get(&source) else {
        return refuse(StatusCode::NOT_FOUND, format!("no HTTP source named `{source}`"), Vec::new());
    };
    let presented =
        headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
    if !presented.is_some_and(|token| crate::auth::same(token, &config.token)) {
        return refuse(StatusCode::UNAUTHORIZED, "missing or wrong bearer token", Vec::new());
    }
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if let Some(length) = declared.filter(|l| *l > config.max_body_bytes) {
        return too_large(length, config.max_body_bytes);
    }
    if let Some(bucket) = config.buckets().requests.as_mut()
        && let Err(wait) = bucket.take(1.0, Instant::now())
    {
        let limit = config.rate.requests_per_second.unwrap_or_default();
        return too_fast(format!("source `{source}` is over its {limit} requests per second"), wait);
    }
    let body = match axum::body::to_bytes(body, config.max_body_bytes).await {
        Ok(body) => body,
        // The only limit on the body is ours: a chunked body that outgrew it.
        Err(e) if e.to_string().contains("length limit") => {
            return too_large(config.max_body_bytes + 1, config.max_body_bytes);
        }
        Err(e) => return refuse(StatusCode::BAD_REQUEST, format!("the body could not be read: {e}"), Vec::new()),
    };
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
    if let Some(bucket) = config.buckets().messages.as_mut()
        && let Err(wait) = bucket.take(messages.len() as f64, Instant::now())
    {
        let limit = config.rate.messages_per_second.unwrap_or_default();
        return too_fast(format!("source `{source}` is over its {limit} messages per second"), wait);
    }
    let (reply, verdict) = oneshot::channel();
    let batch = IngestBatch { source, messages: messages.iter().map(|m| m.get().as_bytes().to_vec()).collect(), reply };
    if state.pipeline.send(batch).await.is_err() {
        return refuse(StatusCode::SERVICE_UNAVAILABLE, "the pipeline is shutting down: retry later", Vec::new());
    }
    match verdict.await {
        Ok(Ok(accepted)) => (StatusCode::OK, Json(serde_json::json!({ "accepted": accepted }))).into_response(),
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_holds_a_second_and_lets_a_big_batch_through_into_debt() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut requests = Bucket::new(2.0);
        assert!(requests.take(1.0, at(0)).is_ok() && requests.take(1.0, at(0)).is_ok());
        assert_eq!(requests.take(1.0, at(0)), Err(Duration::from_millis(500)));
        assert!(requests.take(1.0, at(500)).is_ok(), "refilled at 2 a second");
        assert!(requests.take(1.0, at(10_000)).is_ok() && requests.take(1.0, at(10_000)).is_ok());
        assert!(requests.take(1.0, at(10_000)).is_err(), "a long pause fills one second's worth, no more");

        let mut messages = Bucket::new(100.0);
        assert!(messages.take(250.0, at(0)).is_ok(), "a full bucket lets a bigger batch through");
        let wait = messages.take(1.0, at(1_000)).unwrap_err();
        assert_eq!((wait.as_secs_f64() * 1000.0).round(), 510.0, "then the debt is waited off");
        assert!(messages.take(1.0, at(1_520)).is_ok());

        let mut slow = Bucket::new(0.5);
        assert!(slow.take(1.0, at(0)).is_ok());
        assert_eq!(slow.take(1.0, at(0)), Err(Duration::from_secs(2)), "below one a second the bucket holds one");
    }
}
