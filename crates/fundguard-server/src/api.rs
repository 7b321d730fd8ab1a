//! The console's HTTP API under `/api/v1`: alerts and their lifecycle, rules, figures,
//! the audit log.
//!
//! Every answer is JSON; every refusal is a 4xx with `{"error": "<what to do>"}` and
//! changes nothing — an unknown filter, bad paging, a state change the alert's status
//! does not allow (resolving without a root cause), a change to another team's alert or
//! rule, a body over 64 KiB. The alert store is synchronous, so its calls run on tokio's
//! blocking pool, one at a time.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use fundguard_alerts::{ActiveFigures, Alert, AlertError, AlertStore, Change, Filter, Slo, SloReport, Status};
use fundguard_core::{EventTime, Severity, SourceHealth};
use serde::{Deserialize, Serialize};

use crate::audit::{Audit, AuditEntry, AuditFilter};
use crate::auth::{Auth, ClientAddr, LoginRefused, Principal, Role};
use crate::error::ApiError;
use crate::metrics::Telemetry;

/// One rule as the catalogue shows it.
#[derive(Debug, Clone, Serialize)]
pub struct RuleInfo {
    pub id: String,
    pub description: String,
    pub owner: String,
    pub severity: Severity,
    pub kind: String,
    pub tags: Vec<String>,
    pub enabled: bool,
    /// `live`, or `shadow` (evaluated and recorded, never notified).
    pub mode: String,
}

/// The running rules, and switching one on or off (the binary implements it: it owns
/// the engine). The API checks who may switch a rule, and records it, before asking.
pub trait RuleCatalog: Send + Sync {
    fn rules(&self) -> Vec<RuleInfo>;
    /// Enables or disables a rule; `Err` says why not (an unknown rule).
    fn set_enabled(&self, id: &str, enabled: bool) -> Result<(), String>;
    /// Makes a shadow rule live; `Err` says why not (unknown, already live).
    fn promote(&self, id: &str) -> Result<(), String>;
}

/// Every rule's health as last judged, and when: written by the service's health task.
pub type SharedRuleHealth = Arc<Mutex<Option<(EventTime, Vec<fundguard_health::RuleHealth>)>>>;

/// A store shared by request handlers.
pub type SharedStore = Arc<Mutex<Box<dyn AlertStore + Send>>>;

/// What the figures views show: aggregates over many alerts.
pub struct Figures {
    pub active: ActiveFigures,
    pub slo: SloReport,
}

/// How long computed figures are reused: the views refresh every 3 s, and a store of a
/// million alerts must not be aggregated on every one of them.
const FIGURES_FRESH: std::time::Duration = std::time::Duration::from_secs(5);

/// What the console and its API work on.
pub struct Console {
    /// Alerts and their changes.
    pub store: SharedStore,
    /// A second connection for the figures (rules, SLO, dashboard), so an aggregate over a
    /// large store never holds up the alert queue.
    pub figures_store: SharedStore,
    /// The latest figures and when they were computed; one computation at a time.
    pub figures: tokio::sync::Mutex<Option<(std::time::Instant, Arc<Figures>)>>,
    pub slo: Slo,
    pub auth: Auth,
    /// Where configuration and rule changes are recorded (`DATA_DIR/audit.jsonl`).
    pub audit: Audit,
    pub rules: Arc<dyn RuleCatalog>,
    pub telemetry: Arc<Telemetry>,
    pub health: Arc<Mutex<Vec<SourceHealth>>>,
    /// The JSON report `fundguard coverage --format json` writes (`console.coverage_report`),
    /// read on every request so a CI job that rewrites it is seen at once.
    pub coverage_report: Option<std::path::PathBuf>,
    /// Every rule's health as last judged, and when (`None` until the first judgement).
    pub rule_health: SharedRuleHealth,
    /// What `fundguard suggest` proposed, for review (`console.suggestions`).
    pub suggestions: Option<Arc<dyn crate::suggestions::SuggestionReview>>,
    /// The secret GitHub signs deployment events with (`incidents.github_secret_env`).
    pub github_secret: Option<String>,
}

type Shared = State<Arc<Console>>;

pub(crate) fn wall_clock() -> EventTime {
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    EventTime::from_micros(now.as_micros() as i64)
}

/// Runs `f` on `store`, off the async threads.
async fn blocking<T: Send + 'static>(
    store: &SharedStore,
    f: impl FnOnce(&mut dyn AlertStore) -> Result<T, AlertError> + Send + 'static,
) -> Result<T, ApiError> {
    let store = store.clone();
    tokio::task::spawn_blocking(move || {
        let mut guard = store.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        f(guard.as_mut())
    })
    .await
    .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("the store task failed: {e}")))?
    .map_err(ApiError::from)
}

impl Console {
    /// Runs `f` on the alert store (for the other API modules).
    pub(crate) async fn store_call<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut dyn AlertStore) -> Result<T, AlertError> + Send + 'static,
    ) -> Result<T, ApiError> {
        blocking(&self.store, f).await
    }

    /// Runs `f` on the alert store.
    async fn store<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&mut dyn AlertStore) -> Result<T, AlertError> + Send + 'static,
    ) -> Result<T, ApiError> {
        blocking(&self.store, f).await
    }

    /// The figures, recomputed when older than [`FIGURES_FRESH`]: active alerts per rule,
    /// status and money, and SLO figures over the alerts seen in the last 7 days.
    async fn figures(self: &Arc<Self>) -> Result<Arc<Figures>, ApiError> {
        let mut cached = self.figures.lock().await;
        if let Some((at, figures)) = cached.as_ref()
            && at.elapsed() < FIGURES_FRESH
        {
            return Ok(figures.clone());
        }
        let now = wall_clock();
        let since = EventTime::from_micros(now.as_micros() - 7 * 24 * 3600 * 1_000_000);
        let slo = self.slo.clone();
        let figures = blocking(&self.figures_store, move |s| {
            let recent = s.list(&Filter { since: Some(since), limit: 100_000, ..Filter::default() })?;
            Ok(Figures { active: s.active_figures()?, slo: SloReport::compute(&recent, &slo, now) })
        })
        .await?;
        let figures = Arc::new(figures);
        *cached = Some((std::time::Instant::now(), figures.clone()));
        Ok(figures)
    }

    /// The running rule `id`, or 404.
    fn rule(&self, id: &str) -> Result<RuleInfo, ApiError> {
        self.rules.rules().into_iter().find(|r| r.id == id).ok_or_else(|| {
            ApiError::new(StatusCode::NOT_FOUND, format!("no rule `{id}`: GET /api/v1/rules lists them"))
        })
    }

    /// Appends an entry to the audit log, off the async threads.
    pub(crate) async fn record(self: &Arc<Self>, entry: AuditEntry) -> std::io::Result<()> {
        let console = self.clone();
        tokio::task::spawn_blocking(move || console.audit.record(&entry)).await.map_err(std::io::Error::other)?
    }
}

/// An audit entry for what `who` did from `from`.
pub(crate) fn audit_entry(
    who: &Principal,
    from: &ClientAddr,
    action: &str,
    target: &str,
    detail: String,
) -> AuditEntry {
    AuditEntry {
        at: wall_clock(),
        actor: who.name.clone(),
        role: Some(who.role),
        from: from.0.clone(),
        action: action.into(),
        target: target.into(),
        detail,
    }
}

/// Parses a JSON body, refusing unreadable ones with the parser's reason.
pub(crate) fn body<T: for<'de> Deserialize<'de>>(bytes: &Bytes) -> Result<T, ApiError> {
    let bytes: &[u8] = if bytes.is_empty() { b"{}" } else { bytes };
    serde_json::from_slice(bytes).map_err(|e| ApiError::bad(format!("the JSON body: {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginBody {
    user: String,
    password: String,
}

/// `POST /api/v1/login` `{"user", "password"}` → the session cookie and `{"user", "role",
/// "teams", "csrf"}`; 429 with `Retry-After` while the user or the client's address is
/// locked out after too many failed logins.
pub(crate) async fn login(
    State(c): Shared,
    from: ClientAddr,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let LoginBody { user, password } = body(&bytes)?;
    let login = match c.auth.login(&user, &password, &from.0) {
        Ok(login) => login,
        Err(LoginRefused::Locked { retry_after }) => {
            let seconds = retry_after.as_secs_f64().ceil().max(1.0) as u64;
            return Err(ApiError {
                retry_after: Some(seconds),
                ..ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    format!("too many failed logins for this user or from this address: try again in {seconds} s"),
                )
            });
        }
        Err(LoginRefused::Wrong { locked }) => {
            for what in locked {
                let tried: String = user.chars().take(100).collect();
                let locked_out = AuditEntry {
                    at: wall_clock(),
                    actor: tried,
                    role: None,
                    from: from.0.clone(),
                    action: "login_locked".into(),
                    target: what,
                    detail: "too many failed logins".into(),
                };
                if let Err(e) = c.record(locked_out).await {
                    tracing::error!("the audit log: {e}");
                }
            }
            return Err(ApiError::new(StatusCode::UNAUTHORIZED, "wrong user name or password"));
        }
    };
    if let Err(e) = c.record(audit_entry(&login.principal, &from, "login", &login.principal.name, String::new())).await
    {
        tracing::error!("the audit log: {e}");
    }
    let mut response = Json(serde_json::json!({
        "user": login.principal.name,
        "role": login.principal.role,
        "teams": login.principal.teams,
        "csrf": login.csrf,
    }))
    .into_response();
    if let Ok(value) = HeaderValue::from_str(&c.auth.session_cookie(&login.session, &headers)) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

/// `POST /api/v1/logout`: ends the session.
pub(crate) async fn logout(State(c): Shared, headers: HeaderMap) -> Response {
    c.auth.logout(&headers);
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(&c.auth.expired_cookie(&headers)) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

/// `GET /api/v1/session`: who is logged in, its teams (`null`: every team), and the CSRF
/// token to send with changes.
pub(crate) async fn session(State(c): Shared, headers: HeaderMap) -> Result<Json<serde_json::Value>, ApiError> {
    let who = c.auth.authorize(&headers, &Method::GET, Role::Viewer)?;
    let csrf = c.auth.csrf_of(&headers);
    Ok(Json(serde_json::json!({ "user": who.name, "role": who.role, "teams": who.teams, "csrf": csrf })))
}

/// The filters `GET /api/v1/alerts` understands.
const ALERT_FILTERS: [&str; 7] = ["status", "severity", "team", "rule", "since", "limit", "offset"];

/// The largest page.
const MAX_PAGE: usize = 500;

fn parse_filter(query: &HashMap<String, String>) -> Result<Filter, ApiError> {
    if let Some(unknown) = query.keys().find(|k| !ALERT_FILTERS.contains(&k.as_str())) {
        return Err(ApiError::bad(format!("unknown filter `{unknown}`: expected one of {}", ALERT_FILTERS.join(", "))));
    }
    let status = query
        .get("status")
        .map(|s| {
            Status::parse(s).ok_or_else(|| {
                ApiError::bad(format!(
                    "status `{s}`: expected open, acknowledged, resolved, false_positive or expected"
                ))
            })
        })
        .transpose()?;
    let severity = query
        .get("severity")
        .map(|s| {
            serde_json::from_value::<Severity>(serde_json::Value::String(s.clone()))
                .map_err(|_| ApiError::bad(format!("severity `{s}`: expected critical, high, medium or low")))
        })
        .transpose()?;
    let since = query
        .get("since")
        .map(|s| EventTime::parse(s).map_err(|e| ApiError::bad(format!("since `{s}`: {e}"))))
        .transpose()?;
    let (limit, offset) = paging(query)?;
    Ok(Filter {
        status,
        severity,
        owner: query.get("team").cloned(),
        rule: query.get("rule").cloned(),
        since,
        limit,
        offset,
    })
}

/// `limit` (1 to [`MAX_PAGE`], default 50) and `offset` (default 0).
fn paging(query: &HashMap<String, String>) -> Result<(usize, usize), ApiError> {
    let number = |name: &str, default: usize| -> Result<usize, ApiError> {
        match query.get(name) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| ApiError::bad(format!("{name} `{v}`: expected a whole number"))),
        }
    };
    let limit = number("limit", 50)?;
    if limit == 0 || limit > MAX_PAGE {
        return Err(ApiError::bad(format!("limit {limit}: expected 1 to {MAX_PAGE}")));
    }
    Ok((limit, number("offset", 0)?))
}

/// A page of alerts; `next_offset` is where the next page starts, if there is one.
#[derive(Serialize)]
pub(crate) struct AlertPage {
    alerts: Vec<Alert>,
    limit: usize,
    offset: usize,
    next_offset: Option<usize>,
}

/// `GET /api/v1/alerts?status=&severity=&team=&rule=&since=&limit=&offset=`, most recently seen first.
pub(crate) async fn list_alerts(
    State(c): Shared,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<AlertPage>, ApiError> {
    c.auth.authorize(&headers, &Method::GET, Role::Viewer)?;
    let filter = parse_filter(&query)?;
    let (limit, offset) = (filter.limit, filter.offset);
    // One more than asked tells whether another page follows, without counting them all.
    let mut alerts = c.store(move |s| s.list(&Filter { limit: limit + 1, ..filter })).await?;
    let more = alerts.len() > limit;
    alerts.truncate(limit);
    Ok(Json(AlertPage { alerts, limit, offset, next_offset: more.then_some(offset + limit) }))
}

/// `GET /api/v1/alerts/{id}`: the alert with its evidence, SLO clocks and timeline.
pub(crate) async fn show_alert(
    State(c): Shared,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Json<serde_json::Value>, ApiError> {
    c.auth.authorize(&headers, &Method::GET, Role::Viewer)?;
    let (alert, timeline) = c.store(move |s| s.get(id)).await?;
    let overdue = c.slo.overdue(&alert, wall_clock());
    Ok(Json(serde_json::json!({ "alert": alert, "overdue": overdue, "timeline": timeline })))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub(crate) struct ChangeBody {
    #[serde(default)]
    root_cause: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    text: String,
}

/// The changes `POST /api/v1/alerts/{id}/{change}` knows, with the role each needs.
pub const CHANGES: [&str; 8] =
    ["ack", "resolve", "false-positive", "expected", "assign", "note", "approve-action", "reject-action"];

/// `POST /api/v1/alerts/{id}/{change}` with `{"root_cause"}`, `{"reason"}`, `{"to"}` or
/// `{"text"}` as the change needs; answers the changed alert. The actor in the timeline
/// is the logged-in user or the token's name; an operator changes only alerts of its
/// teams (403 otherwise).
pub(crate) async fn change_alert(
    State(c): Shared,
    method: Method,
    headers: HeaderMap,
    Path((id, change)): Path<(i64, String)>,
    bytes: Bytes,
) -> Result<Json<Alert>, ApiError> {
    let b: ChangeBody = body(&bytes)?;
    let (change, needed) = match change.as_str() {
        "ack" => (Change::Acknowledge, Role::Operator),
        "resolve" => (Change::Resolve { root_cause: b.root_cause }, Role::Operator),
        "false-positive" => (Change::FalsePositive { reason: b.reason }, Role::Operator),
        "expected" => (Change::Expected { reason: b.reason }, Role::Operator),
        "assign" => (Change::Assign { to: b.to }, Role::Operator),
        "note" => (Change::Note { text: b.text }, Role::Operator),
        "approve-action" => (Change::ApproveAction, Role::Admin),
        "reject-action" => (Change::RejectAction { reason: b.reason }, Role::Admin),
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no change `{other}`: expected one of {}", CHANGES.join(", ")),
            ));
        }
    };
    let who = c.auth.authorize(&headers, &method, needed)?;
    // An alert's owner is set when it opens and never changes, so it can be checked first.
    let (alert, _) = c.store(move |s| s.get(id)).await?;
    who.may_change_alert(id, &alert.owner)?;
    let alert = c.store(move |s| s.change(id, &change, &who.name, wall_clock())).await?;
    Ok(Json(alert))
}

/// One rule with its figures and how many of its alerts are open.
#[derive(Serialize)]
pub(crate) struct RuleRow {
    #[serde(flatten)]
    info: RuleInfo,
    events: u64,
    findings: u64,
    errors: u64,
    last_error: Option<String>,
    state_bytes: u64,
    open_alerts: u64,
}

/// `GET /api/v1/rules`: the catalogue with each rule's health.
pub(crate) async fn list_rules(State(c): Shared, headers: HeaderMap) -> Result<Json<Vec<RuleRow>>, ApiError> {
    c.auth.authorize(&headers, &Method::GET, Role::Viewer)?;
    let open = c.figures().await?.active.by_rule.clone();
    let figures: HashMap<String, crate::metrics::RuleFigures> =
        c.telemetry.rule_figures().into_iter().map(|f| (f.rule.clone(), f)).collect();
    let rows = c
        .rules
        .rules()
        .into_iter()
        .map(|info| {
            let f = figures.get(&info.id).cloned().unwrap_or_default();
            RuleRow {
                open_alerts: open.get(&info.id).copied().unwrap_or(0),
                events: f.events,
                findings: f.findings,
                errors: f.errors,
                last_error: f.last_error,
                state_bytes: f.state_bytes,
                info,
            }
        })
        .collect();
    Ok(Json(rows))
}

/// `POST /api/v1/rules/{id}/enable` and `/disable`: admins switch every rule, operators
/// the rules of the teams they list; `/promote` (admins): a shadow rule goes live. Recorded
/// in the audit log before it is done: a switch that cannot be recorded is not made.
pub(crate) async fn toggle_rule(
    State(c): Shared,
    method: Method,
    headers: HeaderMap,
    from: ClientAddr,
    Path((id, toggle)): Path<(String, String)>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let enabled = match toggle.as_str() {
        "enable" => true,
        "disable" => false,
        "promote" => return promote_rule(c, method, headers, from, id).await,
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                format!("no `{other}`: expected enable, disable or promote"),
            ));
        }
    };
    let who = c.auth.authorize(&headers, &method, Role::Operator)?;
    let rule = c.rule(&id)?;
    who.may_switch_rule(&id, &rule.owner)?;
    let action = if enabled { "rule_enabled" } else { "rule_disabled" };
    let detail = format!("team {}; was {}", rule.owner, if rule.enabled { "on" } else { "off" });
    c.record(audit_entry(&who, &from, action, &id, detail)).await.map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the audit log cannot be written ({e}), so the rule was not switched: check the data directory"),
        )
    })?;
    if let Err(e) = c.rules.set_enabled(&id, enabled) {
        if let Err(audit) = c.record(audit_entry(&who, &from, "rule_switch_failed", &id, e.clone())).await {
            tracing::error!(rule = %id, "the audit log: {audit}");
        }
        return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e));
    }
    Ok(Json(serde_json::json!({ "id": id, "enabled": enabled })))
}

/// `POST /api/v1/rules/{id}/promote` (admins): a shadow rule goes live — its findings
/// become alerts from now on. Audited first, like a switch.
async fn promote_rule(
    c: Arc<Console>,
    method: Method,
    headers: HeaderMap,
    from: ClientAddr,
    id: String,
) -> Result<Json<serde_json::Value>, ApiError> {
    let who = c.auth.authorize(&headers, &method, Role::Admin)?;
    let rule = c.rule(&id)?;
    if rule.mode != "shadow" {
        return Err(ApiError::new(StatusCode::CONFLICT, format!("rule `{id}` is already live")));
    }
    c.record(audit_entry(&who, &from, "rule_promoted", &id, format!("team {}; was shadow", rule.owner)))
        .await
        .map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "the audit log cannot be written ({e}), so the rule was not promoted: check the data directory"
                ),
            )
        })?;
    if let Err(e) = c.rules.promote(&id) {
        if let Err(audit) = c.record(audit_entry(&who, &from, "rule_promote_failed", &id, e.clone())).await {
            tracing::error!(rule = %id, "the audit log: {audit}");
        }
        return Err(ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, e));
    }
    Ok(Json(serde_json::json!({ "id": id, "mode": "live" })))
}

/// `GET /api/v1/rules/health?owner=&state=`: every rule's health as last judged — its
/// state, reasons with their evidence, and statistics — most urgent first.
pub(crate) async fn rule_health(
    State(c): Shared,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    c.auth.authorize(&headers, &Method::GET, Role::Viewer)?;
    if let Some(unknown) = query.keys().find(|k| !["owner", "state"].contains(&k.as_str())) {
        return Err(ApiError::bad(format!("unknown filter `{unknown}`: expected owner or state")));
    }
    let (at, mut rules) = c.rule_health.lock().ok().and_then(|h| h.clone()).ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "rule health has not been judged yet: it is, every `health.every` (30s by default), once the service runs with an alerts sink",
        )
    })?;
    rules.retain(|h| {
        query.get("owner").is_none_or(|o| &h.owner == o) && query.get("state").is_none_or(|s| h.state.as_str() == s)
    });
    Ok(Json(serde_json::json!({ "judged_at": at, "rules": rules })))
}

/// The filters `GET /api/v1/audit` understands.
const AUDIT_FILTERS: [&str; 6] = ["actor", "action", "target", "since", "limit", "offset"];

/// A page of the audit log, newest first.
#[derive(Serialize)]
pub(crate) struct AuditPage {
    entries: Vec<AuditEntry>,
    limit: usize,
    offset: usize,
    next_offset: Option<usize>,
}

/// `GET /api/v1/audit?actor=&action=&target=&since=&limit=&offset=` (admin): who changed
/// configuration or rules, logged in or was locked out; newest first.
pub(crate) async fn audit(
    State(c): Shared,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<AuditPage>, ApiError> {
    c.auth.authorize(&headers, &Method::GET, Role::Admin)?;
    if let Some(unknown) = query.keys().find(|k| !AUDIT_FILTERS.contains(&k.as_str())) {
        return Err(ApiError::bad(format!("unknown filter `{unknown}`: expected one of {}", AUDIT_FILTERS.join(", "))));
    }
    let (limit, offset) = paging(&query)?;
    let since = query
        .get("since")
        .map(|s| EventTime::parse(s).map_err(|e| ApiError::bad(format!("since `{s}`: {e}"))))
        .transpose()?;
    let filter = AuditFilter {
        actor: query.get("actor").cloned(),
        action: query.get("action").cloned(),
        target: query.get("target").cloned(),
        since,
        limit,
        offset,
    };
    let console = c.clone();
    let (entries, more) = tokio::task::spawn_blocking(move || console.audit.list(&filter))
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("the audit task failed: {e}")))?
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, format!("reading the audit log: {e}")))?;
    Ok(Json(AuditPage { entries, limit, offset, next_offset: more.then_some(offset + limit) }))
}

/// `GET /api/v1/slo`: MTTD/MTTA/MTTR and overdue per team and rule, over the alerts
/// seen in the last 7 days (at most the 100,000 most recent).
pub(crate) async fn slo(State(c): Shared, headers: HeaderMap) -> Result<Json<SloReport>, ApiError> {
    c.auth.authorize(&headers, &Method::GET, Role::Viewer)?;
    Ok(Json(c.figures().await?.slo.clone()))
}

/// SLO compliance of one team: the share of its alerts that met every deadline.
#[derive(Serialize)]
pub(crate) struct Compliance {
    team: String,
    alerts: u64,
    overdue: u64,
    percent: f64,
}

/// `GET /api/v1/dashboard?minutes=60`: findings per minute per severity, the detection
/// latency distribution, SLO compliance per team, open money at risk per team, alert
/// counts per status.
pub(crate) async fn dashboard(
    State(c): Shared,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    c.auth.authorize(&headers, &Method::GET, Role::Viewer)?;
    if let Some(unknown) = query.keys().find(|k| k.as_str() != "minutes") {
        return Err(ApiError::bad(format!("unknown parameter `{unknown}`: expected minutes")));
    }
    let minutes = match query.get("minutes") {
        None => 60,
        Some(m) => match m.parse::<usize>() {
            Ok(m) if (1..=1440).contains(&m) => m,
            _ => return Err(ApiError::bad(format!("minutes `{m}`: expected 1 to 1440"))),
        },
    };
    let figures = c.figures().await?;
    let compliance: Vec<Compliance> = figures
        .slo
        .by_team
        .iter()
        .map(|(team, f)| Compliance {
            team: team.clone(),
            alerts: f.alerts,
            overdue: f.overdue,
            percent: if f.alerts == 0 { 100.0 } else { 100.0 * (f.alerts - f.overdue) as f64 / f.alerts as f64 },
        })
        .collect();
    // Per team and currency: exact minor units and the text people read (`4,198.45 CNY`).
    let money: BTreeMap<&String, BTreeMap<String, fundguard_core::Money>> = figures
        .active
        .money
        .iter()
        .map(|(team, totals)| {
            (team, totals.iter().map(|m| (m.currency.clone().unwrap_or_else(|| "?".into()), m)).collect())
        })
        .collect();
    let mut by_status: BTreeMap<&str, u64> =
        [Status::Open, Status::Acknowledged].iter().map(|s| (s.as_str(), 0)).collect();
    for (status, n) in &figures.active.by_status {
        by_status.insert(status.as_str(), *n);
    }
    Ok(Json(serde_json::json!({
        "findings_per_minute": c.telemetry.findings_per_minute(minutes),
        "detection_latency": c.telemetry.latency(),
        "slo_compliance": compliance,
        "money_at_risk": money,
        "active_alerts": by_status,
    })))
}

/// `GET /api/v1/health`: every source's state, for the console and for people.
pub(crate) async fn health(State(c): Shared, headers: HeaderMap) -> Result<Json<Vec<SourceHealth>>, ApiError> {
    c.auth.authorize(&headers, &Method::GET, Role::Viewer)?;
    Ok(Json(c.health.lock().map(|h| h.clone()).unwrap_or_default()))
}

/// The latest coverage report, as written; 404 says how to have one.
pub(crate) async fn coverage(State(c): Shared, headers: HeaderMap) -> Result<Json<serde_json::Value>, ApiError> {
    c.auth.authorize(&headers, &Method::GET, Role::Viewer)?;
    let Some(path) = c.coverage_report.clone() else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "no coverage report: set console.coverage_report in fundguard.yaml to the file `fundguard coverage --format json` writes",
        ));
    };
    let text = tokio::fs::read_to_string(&path).await.map_err(|e| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            format!(
                "no coverage report at {}: {e}; write it with `fundguard coverage --format json > {}`",
                path.display(),
                path.display()
            ),
        )
    })?;
    let report = serde_json::from_str(&text).map_err(|e| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!(
                "the coverage report {} is not JSON ({e}): write it again with `fundguard coverage --format json`",
                path.display()
            ),
        )
    })?;
    Ok(Json(report))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn filters_are_checked_before_the_store_is_asked() {
        let f =
            parse_filter(&q(&[("status", "open"), ("team", "refunds"), ("limit", "20"), ("offset", "40")])).unwrap();
        assert_eq!((f.status, f.owner.as_deref(), f.limit, f.offset), (Some(Status::Open), Some("refunds"), 20, 40));
        let refuse = |pairs: &[(&str, &str)]| parse_filter(&q(pairs)).unwrap_err().message;
        assert!(refuse(&[("colour", "red")]).starts_with("unknown filter `colour`"));
        assert!(refuse(&[("status", "sleeping")]).contains("expected open, acknowledged"));
        assert!(refuse(&[("limit", "0")]).contains("expected 1 to 500"));
        assert!(refuse(&[("limit", "501")]).contains("expected 1 to 500"));
        assert!(refuse(&[("offset", "-1")]).contains("expected a whole number"));
        assert!(refuse(&[("since", "yesterday")]).starts_with("since `yesterday`"));
    }
}
