//! fundguard's HTTP server: the ingest endpoint for business messages, the console and
//! its API, Prometheus metrics, health and readiness.
//!
//! - `ingest.rs`: `POST /v1/ingest/{source}`. The server does not decode or evaluate
//!   anything: an ingest request becomes an [`IngestBatch`] sent to the pipeline, and the
//!   response waits for the pipeline's verdict, so a 2xx means the batch was accepted.
//! - `api.rs`: `/api/v1/…` — alerts and their lifecycle, rules, SLO figures, dashboard;
//! - `suggestions.rs`: `/api/v1/suggestions` — reviewing what `fundguard suggest` proposed;
//! - `auth.rs`: tokens, logins (throttled), roles, teams and CSRF for the API;
//! - `audit.rs`: the audit log of configuration and rule changes;
//! - `console.rs`: the web console's assets, built in;
//! - `metrics.rs`: [`Telemetry`], what `/metrics` and the dashboard show;
//! - `openapi.json`: the API's description, served at `/api/openapi.json`.

pub mod api;
pub mod audit;
pub mod auth;
mod console;
mod error;
mod incidents;
mod ingest;
pub mod metrics;
pub mod suggestions;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::routing::{get, post};
use fundguard_core::SourceHealth;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

pub use api::{Console, RuleCatalog, RuleInfo, SharedRuleHealth};
pub use audit::{Audit, AuditEntry};
pub use auth::{Auth, Credential, LoginPolicy, Role};
pub use ingest::{IngestBatch, IngestRate, IngestSource, IngestVerdict, Rejected};
pub use metrics::Telemetry;
pub use suggestions::{ReviewError, SuggestionReview};

/// What the handlers share.
#[derive(Clone)]
pub struct AppState {
    pub ingest: Arc<HashMap<String, IngestSource>>,
    pub pipeline: mpsc::Sender<IngestBatch>,
    pub health: Arc<Mutex<Vec<SourceHealth>>>,
    /// The largest body any source accepts (each source reads its body itself, up to its
    /// own limit); the limit of the other routes' bodies.
    pub max_body_bytes: usize,
    /// What `/metrics` reports.
    pub telemetry: Arc<Telemetry>,
    /// The console and its API, when there is an alert store to show.
    pub console: Option<Arc<Console>>,
}

/// The largest request body the console API accepts.
pub const API_BODY_LIMIT: usize = 64 * 1024;

/// The API's OpenAPI description (checked against the routes by the tests).
pub const OPENAPI: &str = include_str!("openapi.json");

/// The routes: `POST /v1/ingest/{source}`, `GET /v1/sources`, `GET /healthz`, `GET /readyz`,
/// `GET /metrics`, `GET /api/openapi.json`, and — with a console — `/`, `/assets/…` and `/api/v1/…`.
pub fn router(state: AppState) -> Router {
    let limit = state.max_body_bytes;
    let registry = Arc::new(state.telemetry.registry());
    let mut app = Router::new()
        .route("/v1/ingest/{source}", post(ingest::ingest))
        .route("/v1/sources", get(sources))
        .route("/readyz", get(readyz))
        .layer(axum::extract::DefaultBodyLimit::max(limit))
        .with_state(state.clone())
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/metrics",
            get(move || {
                let registry = registry.clone();
                async move {
                    (
                        [(
                            axum::http::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )],
                        metrics::render(&registry),
                    )
                }
            }),
        )
        .route(
            "/api/openapi.json",
            get(|| async { ([(axum::http::header::CONTENT_TYPE, "application/json")], OPENAPI) }),
        );
    if let Some(console) = state.console {
        let api = Router::new()
            .route("/api/v1/login", post(api::login))
            .route("/api/v1/logout", post(api::logout))
            .route("/api/v1/session", get(api::session))
            .route("/api/v1/alerts", get(api::list_alerts))
            .route("/api/v1/alerts/{id}", get(api::show_alert))
            .route("/api/v1/alerts/{id}/{change}", post(api::change_alert))
            .route("/api/v1/rules", get(api::list_rules))
            .route("/api/v1/rules/health", get(api::rule_health))
            .route("/api/v1/rules/{id}/{toggle}", post(api::toggle_rule))
            .route("/api/v1/slo", get(api::slo))
            .route("/api/v1/dashboard", get(api::dashboard))
            .route("/api/v1/health", get(api::health))
            .route("/api/v1/coverage", get(api::coverage))
            .route("/api/v1/suggestions", get(suggestions::list))
            .route("/api/v1/suggestions/{id}/{decision}", post(suggestions::decide))
            .route("/api/v1/audit", get(api::audit))
            .route("/api/v1/incidents", get(incidents::list))
            .route("/api/v1/incidents/{id}", get(incidents::show))
            .route("/api/v1/incidents/{id}/{action}", post(incidents::act))
            .route("/api/v1/changes", get(incidents::list_changes).post(incidents::add_change))
            .route("/api/v1/changes/github", post(incidents::github))
            .layer(axum::extract::DefaultBodyLimit::max(API_BODY_LIMIT))
            .with_state(console)
            .route("/", get(console::index))
            .route("/assets/app.js", get(console::script))
            .route("/assets/style.css", get(console::style));
        app = app.merge(api);
    }
    app
}

/// Ready once every source has started and is connected — none waiting to reconnect, none
/// failing (a source retrying a problem that needs a person stays `failed: …` until a retry
/// connects), none `blocked: …` behind a sink that cannot take findings: 503 naming the
/// sources holding it back otherwise, so a load balancer or orchestrator waits.
async fn readyz(State(state): State<AppState>) -> (axum::http::StatusCode, String) {
    let health = state.health.lock().map(|h| h.clone()).unwrap_or_default();
    let waiting: Vec<String> = health
        .iter()
        .filter(|h| {
            matches!(h.state.as_str(), "starting" | "disconnected")
                || h.state.starts_with("failed")
                || h.state.starts_with("blocked")
        })
        .map(|h| format!("{}: {}", h.name, h.state))
        .collect();
    if waiting.is_empty() {
        (axum::http::StatusCode::OK, "ready".into())
    } else {
        (axum::http::StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {}", waiting.join("; ")))
    }
}

async fn sources(State(state): State<AppState>) -> Json<Vec<SourceHealth>> {
    let health = state.health.lock().map(|h| h.clone()).unwrap_or_default();
    Json(health)
}

/// Serves until `shutdown` resolves. Bind the listener yourself (port 0 in tests). Handlers
/// see the peer's address (login throttling and the audit log use it).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state).into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(shutdown)
        .await
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// `(method, path)` of every route `router` declares, read from this file's source.
    fn declared_routes() -> BTreeSet<(String, String)> {
        let source = include_str!("lib.rs");
        let code = &source[..source.find("#[cfg(test)]").unwrap_or(source.len())];
        let mut out = BTreeSet::new();
        for piece in code.split(".route(").skip(1) {
            let Some(path) = piece.trim_start().strip_prefix('"').and_then(|p| p.split('"').next()) else { continue };
            // One route may chain methods: `get(list).post(add)`.
            for method in ["get", "post"] {
                if piece.contains(&format!("{method}(")) {
                    out.insert((method.to_string(), path.to_string()));
                }
            }
        }
        out
    }

    #[test]
    fn the_openapi_document_and_the_router_list_the_same_operations() {
        let doc: serde_json::Value = serde_json::from_str(super::OPENAPI).expect("openapi.json is JSON");
        let documented: BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, ops)| ops.as_object().unwrap().keys().map(move |m| (m.clone(), path.clone())))
            .collect();
        let served: BTreeSet<(String, String)> =
            declared_routes().into_iter().filter(|(_, p)| p != "/" && !p.starts_with("/assets/")).collect();
        assert_eq!(documented, served, "openapi.json and router() have drifted apart");
    }

    /// The security each operation declares is what its handler asks for: nothing on the
    /// public routes, the source's token on ingest, a session or an API token on the API —
    /// and with the session, the CSRF header on every change.
    #[test]
    fn every_operation_declares_the_security_the_server_enforces() {
        let doc: serde_json::Value = serde_json::from_str(super::OPENAPI).unwrap();
        let schemes = doc["components"]["securitySchemes"].as_object().unwrap();
        assert_eq!(schemes["csrf"]["in"], "header");
        assert_eq!(schemes["csrf"]["name"], "X-CSRF-Token");
        assert_eq!(schemes["session"]["name"], crate::auth::SESSION_COOKIE);
        let public =
            ["/api/v1/login", "/api/v1/logout", "/v1/sources", "/healthz", "/readyz", "/metrics", "/api/openapi.json"];
        for (path, operations) in doc["paths"].as_object().unwrap() {
            for (method, operation) in operations.as_object().unwrap() {
                let security =
                    operation["security"].as_array().unwrap_or_else(|| panic!("{method} {path}: no security"));
                let alternatives: Vec<Vec<&str>> = security
                    .iter()
                    .map(|s| {
                        let names: Vec<&str> = s.as_object().unwrap().keys().map(String::as_str).collect();
                        assert!(names.iter().all(|n| schemes.contains_key(*n)), "{method} {path}: {names:?}");
                        names
                    })
                    .collect();
                let expected: Vec<Vec<&str>> = if public.contains(&path.as_str()) {
                    vec![]
                } else if path.starts_with("/v1/ingest/") {
                    vec![vec!["ingest"]]
                } else if path == "/api/v1/changes/github" {
                    vec![vec!["github"]]
                } else if method == "post" {
                    vec![vec!["csrf", "session"], vec!["token"]]
                } else {
                    vec![vec!["session"], vec!["token"]]
                };
                let mut sorted = alternatives.clone();
                sorted.iter_mut().for_each(|a| a.sort());
                assert_eq!(sorted, expected, "{method} {path}");
            }
        }
    }
}
