//! The API of incidents and changes under `/api/v1`: incidents with their ranked likely
//! causes, working an incident as a whole, verdicts on causes, and the change intake —
//! fundguard's own JSON (what a deploy pipeline, Argo CD's notifications or `fundguard
//! changes add` send) and GitHub's `deployment_status` events, checked against their
//! `X-Hub-Signature-256`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use fundguard_alerts::{Change, Incident, IncidentDetail, IncidentStatus};
use fundguard_attribution::Change as Deploy;
use fundguard_core::EventTime;
use hmac::{Hmac, KeyInit, Mac};
use serde::Deserialize;

use crate::api::{Console, body, wall_clock};
use crate::auth::Role;
use crate::error::ApiError;

type Shared = State<Arc<Console>>;

/// `GET /api/v1/incidents?status=&limit=`: incidents, most recent first.
pub(crate) async fn list(
    State(c): Shared,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Vec<Incident>>, ApiError> {
    c.auth.authorize(&headers, &Method::GET, Role::Viewer)?;
    let status = match query.get("status") {
        Some(s) => Some(IncidentStatus::parse(s).ok_or_else(|| {
            ApiError::new(StatusCode::BAD_REQUEST, format!("status={s}: expected open, acknowledged or resolved"))
        })?),
        None => None,
    };
    let limit = match query.get("limit") {
        Some(l) => l.parse::<usize>().ok().filter(|l| (1..=1000).contains(l)).ok_or_else(|| {
            ApiError::new(StatusCode::BAD_REQUEST, format!("limit={l}: expected a number from 1 to 1000"))
        })?,
        None => 100,
    };
    Ok(Json(c.store_call(move |s| s.incidents(status, limit)).await?))
}

/// `GET /api/v1/incidents/{id}`: the incident with its alerts, money and ranked causes.
pub(crate) async fn show(
    State(c): Shared,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Json<IncidentDetail>, ApiError> {
    c.auth.authorize(&headers, &Method::GET, Role::Viewer)?;
    Ok(Json(c.store_call(move |s| s.incident(id)).await?))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct IncidentBody {
    #[serde(default)]
    root_cause: String,
    /// For `causes`: the cause's name, `confirmed` or `rejected`, and a note.
    #[serde(default)]
    cause: String,
    #[serde(default)]
    verdict: String,
    #[serde(default)]
    note: Option<String>,
}

/// `POST /api/v1/incidents/{id}/{action}`: `ack`, `resolve` (`{"root_cause"}`) every alert
/// of it — each audited in its timeline — or `causes` (`{"cause", "verdict": "confirmed" |
/// "rejected", "note"}`) to record a verdict on a ranked cause. An operator works only
/// incidents of its teams.
pub(crate) async fn act(
    State(c): Shared,
    method: Method,
    headers: HeaderMap,
    Path((id, action)): Path<(i64, String)>,
    bytes: Bytes,
) -> Result<Json<serde_json::Value>, ApiError> {
    let b: IncidentBody = body(&bytes)?;
    let who = c.auth.authorize(&headers, &method, Role::Operator)?;
    let detail = c.store_call(move |s| s.incident(id)).await?;
    who.may_change_alert(detail.incident.first_alert, &detail.incident.owner)?;
    let (actor, now) = (who.name.clone(), wall_clock());
    match action.as_str() {
        "ack" | "resolve" => {
            let change =
                if action == "ack" { Change::Acknowledge } else { Change::Resolve { root_cause: b.root_cause } };
            let changed = c.store_call(move |s| s.change_incident(id, &change, &actor, now)).await?;
            Ok(Json(serde_json::json!({ "incident": id, "changed_alerts": changed })))
        }
        "causes" => {
            let confirmed = match b.verdict.as_str() {
                "confirmed" => true,
                "rejected" => false,
                other => {
                    return Err(ApiError::new(
                        StatusCode::BAD_REQUEST,
                        format!("verdict `{other}`: expected `confirmed` or `rejected`"),
                    ));
                }
            };
            if b.cause.is_empty() {
                return Err(ApiError::new(StatusCode::BAD_REQUEST, "`cause`: the name of a ranked cause, as listed"));
            }
            let (cause, note) = (b.cause.clone(), b.note.clone());
            c.store_call(move |s| s.cause_feedback(id, &cause, confirmed, note.as_deref(), &actor, now)).await?;
            Ok(Json(serde_json::json!({ "incident": id, "cause": b.cause, "verdict": b.verdict })))
        }
        other => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no action `{other}` on incidents: expected ack, resolve or causes"),
        )),
    }
}

/// `POST /api/v1/changes` with `{"service", "kind", "at", "version", "author", "link",
/// "tables", "description"}` (`at` defaults to now): records a change; answers its id.
pub(crate) async fn add_change(
    State(c): Shared,
    method: Method,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    c.auth.authorize(&headers, &method, Role::Operator)?;
    let mut json: serde_json::Value = body(&bytes)?;
    if let Some(fields) = json.as_object_mut() {
        fields.entry("at").or_insert_with(|| serde_json::Value::String(wall_clock().to_string()));
    }
    let change: Deploy =
        serde_json::from_value(json).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("the change: {e}")))?;
    store_change(&c, change).await
}

async fn store_change(c: &Arc<Console>, change: Deploy) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    change.validate().map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, e))?;
    let now = wall_clock();
    let id = c.store_call(move |s| s.add_change(&change, now)).await?;
    Ok((StatusCode::CREATED, Json(serde_json::json!({ "id": id }))))
}

/// `GET /api/v1/changes?hours=24`: recent changes, oldest first.
pub(crate) async fn list_changes(
    State(c): Shared,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Vec<Deploy>>, ApiError> {
    c.auth.authorize(&headers, &Method::GET, Role::Viewer)?;
    let hours: i64 = match query.get("hours") {
        Some(h) => h.parse().ok().filter(|h| (1..=24 * 366).contains(h)).ok_or_else(|| {
            ApiError::new(StatusCode::BAD_REQUEST, format!("hours={h}: expected a number from 1 to 8784"))
        })?,
        None => 24,
    };
    let now = wall_clock();
    let from = EventTime::from_micros(now.as_micros() - hours * 3_600_000_000);
    Ok(Json(c.store_call(move |s| s.changes(from, now)).await?))
}

/// What fundguard reads of GitHub's `deployment_status` webhook event.
#[derive(Deserialize)]
struct GithubEvent {
    deployment_status: GithubStatus,
    deployment: GithubDeployment,
    repository: GithubRepository,
}

#[derive(Deserialize)]
struct GithubStatus {
    state: String,
    created_at: String,
    #[serde(default)]
    target_url: Option<String>,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
struct GithubDeployment {
    sha: String,
    #[serde(default)]
    environment: Option<String>,
    #[serde(default)]
    creator: Option<GithubUser>,
    #[serde(default)]
    url: Option<String>,
}

#[derive(Deserialize)]
struct GithubUser {
    login: String,
}

#[derive(Deserialize)]
struct GithubRepository {
    name: String,
}

/// `POST /api/v1/changes/github`: a GitHub `deployment_status` webhook. Signed with the
/// secret of `incidents.github_secret_env` (`X-Hub-Signature-256`, checked before the body
/// is read); a successful deployment of repository R is a `deploy` of service R at the
/// status's time, version the commit. Other states and events are acknowledged and ignored.
pub(crate) async fn github(
    State(c): Shared,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    // Unconfigured, no signature can be right: refused like a wrong one, saying what to set.
    let Some(secret) = &c.github_secret else {
        return Err(ApiError::new(
            StatusCode::UNAUTHORIZED,
            "GitHub deployment events are off: set `incidents.github_secret_env` in the config",
        ));
    };
    let signature = headers.get("x-hub-signature-256").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !crate::auth::same(signature, &github_signature(secret, &bytes)) {
        return Err(ApiError::new(StatusCode::UNAUTHORIZED, "X-Hub-Signature-256 does not match the webhook's secret"));
    }
    let event = headers.get("x-github-event").and_then(|v| v.to_str().ok()).unwrap_or("");
    if event == "ping" || event != "deployment_status" {
        return Ok((StatusCode::ACCEPTED, Json(serde_json::json!({ "ignored": format!("event `{event}`") }))));
    }
    let e: GithubEvent = serde_json::from_slice(&bytes)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, format!("a deployment_status event: {e}")))?;
    if e.deployment_status.state != "success" {
        let ignored = format!("deployment state `{}`", e.deployment_status.state);
        return Ok((StatusCode::ACCEPTED, Json(serde_json::json!({ "ignored": ignored }))));
    }
    let at = EventTime::parse(&e.deployment_status.created_at)
        .map_err(|err| ApiError::new(StatusCode::BAD_REQUEST, format!("deployment_status.created_at: {err}")))?;
    let environment = e.deployment.environment.map(|env| format!(" to {env}")).unwrap_or_default();
    let change = Deploy {
        id: 0,
        service: e.repository.name,
        kind: "deploy".into(),
        version: Some(e.deployment.sha),
        at,
        author: e.deployment.creator.map(|u| u.login),
        link: e.deployment_status.target_url.or(e.deployment.url),
        tables: Vec::new(),
        description: Some(format!(
            "GitHub deployment{environment}{}",
            e.deployment_status.description.map(|d| format!(": {d}")).unwrap_or_default()
        )),
    };
    store_change(&c, change).await
}

/// `sha256=<hex>` of `body` under `secret`, as GitHub signs webhook deliveries.
pub fn github_signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any length");
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}
