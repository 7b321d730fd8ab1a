//! The Suggestions page's API: the rules `fundguard suggest --out DIR` proposed, with their
//! evidence and backtest, reviewed by people. Accepting one makes it a running rule;
//! rejecting one records why, so the next `fundguard suggest --out DIR` does not propose it
//! again.
//!
//! The server checks who may review and records every decision in the audit log before it
//! is carried out; the binary implements [`SuggestionReview`] (it owns the rule files and
//! the engine that must accept them).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode};
use serde::Deserialize;

use crate::api::{Console, audit_entry, body};
use crate::auth::{ClientAddr, Role};
use crate::error::ApiError;

/// Why a review could not be carried out.
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// No such suggestion, or no report to find it in.
    #[error("{0}")]
    NotFound(String),
    /// Already accepted or rejected.
    #[error("{0}")]
    Conflict(String),
    /// The rule file does not load, compile or pass its tests next to the running rules.
    #[error("{0}")]
    Invalid(String),
    /// Reading or writing files failed.
    #[error("{0}")]
    Failed(String),
}

impl From<ReviewError> for ApiError {
    fn from(e: ReviewError) -> ApiError {
        let status = match e {
            ReviewError::NotFound(_) => StatusCode::NOT_FOUND,
            ReviewError::Conflict(_) => StatusCode::CONFLICT,
            ReviewError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ReviewError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.to_string())
    }
}

/// The suggestions under review, and the two decisions about one.
pub trait SuggestionReview: Send + Sync {
    /// The report (`sample`, `suggestions`, `skipped`), each suggestion with its `review`
    /// (`state`: pending, accepted or rejected; `reason` of a rejection) and `rule_file`.
    fn list(&self) -> Result<serde_json::Value, ReviewError>;
    /// The team a suggestion's rule would belong to (who may decide it), while it is
    /// still to be decided ([`ReviewError::Conflict`] once it has been).
    fn pending_owner(&self, id: &str) -> Result<String, ReviewError>;
    /// Writes the suggestion's rule file among the running rules once it loads, compiles
    /// and passes its tests beside them; answers where it was written.
    fn accept(&self, id: &str) -> Result<String, ReviewError>;
    /// Records that the suggestion is not wanted, and why.
    fn reject(&self, id: &str, reason: &str) -> Result<(), ReviewError>;
}

type Shared = State<Arc<Console>>;

fn review(c: &Console) -> Result<Arc<dyn SuggestionReview>, ApiError> {
    c.suggestions.clone().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "no suggestions to review: set console.suggestions (dir: what `fundguard suggest --out DIR` wrote; accept_into: a rules directory) in fundguard.yaml",
        )
    })
}

/// Runs a review call off the async threads (it reads and writes files).
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ReviewError> + Send + 'static,
) -> Result<T, ApiError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("the review task failed: {e}")))?
        .map_err(ApiError::from)
}

/// `GET /api/v1/suggestions`: the suggestions with their evidence, backtest, rule file
/// and review state.
pub(crate) async fn list(State(c): Shared, headers: HeaderMap) -> Result<Json<serde_json::Value>, ApiError> {
    c.auth.authorize(&headers, &Method::GET, Role::Viewer)?;
    let review = review(&c)?;
    Ok(Json(blocking(move || review.list()).await?))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecisionBody {
    #[serde(default)]
    reason: String,
}

/// `POST /api/v1/suggestions/{id}/accept` and `/reject` (with `{"reason"}`): operators of
/// the suggestion's team and admins. A decision on a suggestion still pending is recorded
/// in the audit log first: one that cannot be recorded is not made; one that then fails is
/// recorded as failed. Refusals (who asks, already decided) are answered, not recorded.
pub(crate) async fn decide(
    State(c): Shared,
    method: Method,
    headers: HeaderMap,
    from: ClientAddr,
    Path((id, decision)): Path<(String, String)>,
    bytes: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let accept = match decision.as_str() {
        "accept" => true,
        "reject" => false,
        other => return Err(ApiError::new(StatusCode::NOT_FOUND, format!("no `{other}`: expected accept or reject"))),
    };
    let DecisionBody { reason } = body(&bytes)?;
    let reason = reason.trim().to_string();
    if !accept && reason.is_empty() {
        return Err(ApiError::bad(
            "a rejection needs a `reason`: it is shown to whoever runs `fundguard suggest` next, instead of the rule",
        ));
    }
    let who = c.auth.authorize(&headers, &method, Role::Operator)?;
    let review = review(&c)?;
    let owner = {
        let (review, id) = (review.clone(), id.clone());
        blocking(move || review.pending_owner(&id)).await?
    };
    who.may_switch_rule(&id, &owner)?;
    let action = if accept { "suggestion_accepted" } else { "suggestion_rejected" };
    let detail = if accept { format!("team {owner}") } else { format!("team {owner}; {reason}") };
    c.record(audit_entry(&who, &from, action, &id, detail)).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the audit log cannot be written ({e}), so nothing was decided: check the data directory"),
        )
    })?;
    let outcome = {
        let (id, reason) = (id.clone(), reason.clone());
        blocking(move || if accept { review.accept(&id).map(Some) } else { review.reject(&id, &reason).map(|()| None) })
            .await
    };
    match outcome {
        Ok(Some(file)) => Ok(Json(serde_json::json!({ "id": id, "state": "accepted", "file": file }))),
        Ok(None) => Ok(Json(serde_json::json!({ "id": id, "state": "rejected", "reason": reason }))),
        Err(e) => {
            if let Err(audit) =
                c.record(audit_entry(&who, &from, "suggestion_review_failed", &id, e.message.clone())).await
            {
                tracing::error!(suggestion = %id, "the audit log: {audit}");
            }
            Err(e)
        }
    }
}
