//! Who may do what: API tokens for machines, password logins for people, three roles,
//! and the teams an account works for.
//!
//! - **viewer** reads alerts, rules and figures (every team's);
//! - **operator** also works alerts (acknowledge, resolve, close, assign, note) of its
//!   teams, and switches its teams' rules on and off;
//! - **admin** works every team's alerts and rules, and approves or rejects containment
//!   actions.
//!
//! An account's `teams` scope what an operator changes: an alert or a rule belongs to its
//! rule's `owner`. An account without `teams` works every team's alerts but switches no
//! rules — what operators could do before teams existed; admins work every team.
//!
//! Tokens come as `Authorization: Bearer …`. A console login gets a session cookie
//! (`HttpOnly`, `SameSite=Strict`, `Path=/`, and `Secure` unless turned off) and a CSRF
//! token; every state-changing request made with the cookie must echo that token in
//! `X-CSRF-Token` (a cross-site form cannot read it). Failed logins are counted per user
//! name and per client address: too many within a window lock both out for a while, even
//! for the right password. Secrets are compared in constant time and never logged or
//! returned.

use std::collections::{HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, Method, StatusCode, header};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::error::ApiError;

/// What a principal may do; each role can do everything the one before it can.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Operator,
    Admin,
}

impl Role {
    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "viewer" => Some(Role::Viewer),
            "operator" => Some(Role::Operator),
            "admin" => Some(Role::Admin),
            _ => None,
        }
    }
}

/// A person or a machine, as the audit timeline names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Principal {
    pub name: String,
    pub role: Role,
    /// The teams it works for; `None` for every team.
    pub teams: Option<Vec<String>>,
}

impl Principal {
    /// Whether it may change alerts owned by `team`: admins and accounts without `teams`
    /// may change every team's, others only their teams'.
    pub fn works_for(&self, team: &str) -> bool {
        self.role == Role::Admin || self.teams.as_ref().is_none_or(|teams| teams.iter().any(|t| t == team))
    }

    /// Refuses (403) a change to alert `id` of `team` unless it works for that team.
    pub fn may_change_alert(&self, id: i64, team: &str) -> Result<(), ApiError> {
        if self.works_for(team) {
            return Ok(());
        }
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!(
                "alert {id} belongs to team `{team}` and {} works for {}: ask someone of `{team}` or an admin",
                self.name,
                self.team_list()
            ),
        ))
    }

    /// Refuses (403) switching a rule of `team` unless it is an admin, or an operator
    /// whose `teams` list that team.
    pub fn may_switch_rule(&self, rule: &str, team: &str) -> Result<(), ApiError> {
        let listed = self.teams.as_ref().is_some_and(|teams| teams.iter().any(|t| t == team));
        if self.role == Role::Admin || (self.role >= Role::Operator && listed) {
            return Ok(());
        }
        let why = if self.teams.is_none() {
            format!("{} has no `teams` in the config, so it switches no rules", self.name)
        } else {
            format!("{} works for {}", self.name, self.team_list())
        };
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            format!("rule `{rule}` belongs to team `{team}` and {why}: ask an operator of `{team}` or an admin"),
        ))
    }

    fn team_list(&self) -> String {
        match &self.teams {
            None => "every team".into(),
            Some(teams) => teams.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", "),
        }
    }
}

/// A named secret with its role and teams: a user's password or an API token.
#[derive(Clone)]
pub struct Credential {
    pub name: String,
    pub secret: String,
    pub role: Role,
    /// The teams whose alerts (and rules) it works; `None` for every team's alerts.
    pub teams: Option<Vec<String>>,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Credential {{ name: {:?}, role: {:?}, teams: {:?}, secret: <hidden> }}",
            self.name, self.role, self.teams
        )
    }
}

impl Credential {
    fn principal(&self) -> Principal {
        Principal { name: self.name.clone(), role: self.role, teams: self.teams.clone() }
    }
}

/// How logins are guarded and how the session cookie is set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginPolicy {
    /// Failed logins of one user name, or from one client address, within `within` that
    /// lock it out.
    pub max_failures: usize,
    pub within: Duration,
    /// How long a lock-out lasts: every login of that user or from that address is
    /// refused (429), the right password included.
    pub lockout: Duration,
    /// Whether the session cookie carries `Secure` (sent over HTTPS only). It does anyway
    /// when a proxy in front says the request came over HTTPS (`X-Forwarded-Proto: https`).
    pub secure_cookies: bool,
}

impl Default for LoginPolicy {
    fn default() -> LoginPolicy {
        LoginPolicy {
            max_failures: 5,
            within: Duration::from_secs(15 * 60),
            lockout: Duration::from_secs(15 * 60),
            secure_cookies: true,
        }
    }
}

/// The name of the session cookie.
pub const SESSION_COOKIE: &str = "fg_session";

/// How long a console session lasts without use.
const SESSION_IDLE: Duration = Duration::from_secs(12 * 3600);

/// Above this many user names and addresses with failures, the stale ones are forgotten.
const TRACKED: usize = 10_000;

struct Session {
    principal: Principal,
    csrf: String,
    last_used: Instant,
}

/// Recent failed logins of one user name or one client address, and its lock-out.
#[derive(Default)]
struct Strikes {
    recent: VecDeque<Instant>,
    locked_until: Option<Instant>,
}

/// Users, tokens, live sessions and failed logins.
pub struct Auth {
    users: Vec<Credential>,
    tokens: Vec<Credential>,
    policy: LoginPolicy,
    sessions: Mutex<HashMap<String, Session>>,
    strikes: Mutex<HashMap<String, Strikes>>,
}

/// A fresh random secret: 32 bytes, hex.
pub fn random_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Equal, in constant time for strings of the same length.
pub(crate) fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// What a successful login returns: the session id (for the cookie) and the CSRF token.
pub struct Login {
    pub session: String,
    pub csrf: String,
    pub principal: Principal,
}

/// Why a login was refused.
#[derive(Debug, PartialEq, Eq)]
pub enum LoginRefused {
    /// Wrong user name or password; `locked` names what this failure locked out (the
    /// user, the address), if it was one too many.
    Wrong { locked: Vec<String> },
    /// Locked out: try again after this long.
    Locked { retry_after: Duration },
}

impl Auth {
    pub fn new(users: Vec<Credential>, tokens: Vec<Credential>) -> Auth {
        Auth {
            users,
            tokens,
            policy: LoginPolicy::default(),
            sessions: Mutex::new(HashMap::new()),
            strikes: Mutex::new(HashMap::new()),
        }
    }

    /// The same, guarding logins and setting cookies as `policy` says.
    pub fn with_policy(self, policy: LoginPolicy) -> Auth {
        Auth { policy, ..self }
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Checks a user's password, asked from client address `from`; a new session on success.
    pub fn login(&self, user: &str, password: &str, from: &str) -> Result<Login, LoginRefused> {
        self.login_at(user, password, from, Instant::now())
    }

    fn login_at(&self, user: &str, password: &str, from: &str, now: Instant) -> Result<Login, LoginRefused> {
        let keys = [format!("user {user}"), format!("address {from}")];
        let mut strikes = self.strikes.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let locked = keys
            .iter()
            .filter_map(|k| strikes.get(k)?.locked_until)
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max();
        if let Some(retry_after) = locked {
            return Err(LoginRefused::Locked { retry_after });
        }
        let Some(found) = self.users.iter().find(|u| same(&u.name, user) && same(&u.secret, password)) else {
            let mut locked = Vec::new();
            for key in keys {
                let entry = strikes.entry(key.clone()).or_default();
                entry.recent.retain(|t| now.duration_since(*t) < self.policy.within);
                entry.recent.push_back(now);
                if entry.recent.len() >= self.policy.max_failures {
                    entry.recent.clear();
                    entry.locked_until = Some(now + self.policy.lockout);
                    locked.push(key);
                }
            }
            if strikes.len() > TRACKED {
                let within = self.policy.within;
                strikes.retain(|_, s| {
                    s.locked_until.is_some_and(|u| u > now)
                        || s.recent.back().is_some_and(|t| now.duration_since(*t) < within)
                });
            }
            return Err(LoginRefused::Wrong { locked });
        };
        for key in &keys {
            strikes.remove(key);
        }
        drop(strikes);
        let principal = found.principal();
        let (session, csrf) = (random_secret(), random_secret());
        let mut sessions = self.sessions();
        sessions.retain(|_, s| s.last_used.elapsed() < SESSION_IDLE);
        sessions.insert(
            session.clone(),
            Session { principal: principal.clone(), csrf: csrf.clone(), last_used: Instant::now() },
        );
        Ok(Login { session, csrf, principal })
    }

    /// The `Set-Cookie` value for session `id`: `HttpOnly; SameSite=Strict; Path=/`, and
    /// `Secure` as the policy says or when a proxy says the request came over HTTPS.
    pub fn session_cookie(&self, id: &str, headers: &HeaderMap) -> String {
        format!("{SESSION_COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict{}", self.secure(headers))
    }

    /// The `Set-Cookie` value that removes the session cookie.
    pub fn expired_cookie(&self, headers: &HeaderMap) -> String {
        format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{}", self.secure(headers))
    }

    fn secure(&self, headers: &HeaderMap) -> &'static str {
        let https = headers
            .get("x-forwarded-proto")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"));
        if self.policy.secure_cookies || https { "; Secure" } else { "" }
    }

    /// Ends the session the request's cookie names, if any.
    pub fn logout(&self, headers: &HeaderMap) {
        if let Some(id) = session_cookie(headers) {
            self.sessions().remove(&id);
        }
    }

    /// The CSRF token of the request's session.
    pub fn csrf_of(&self, headers: &HeaderMap) -> Option<String> {
        let id = session_cookie(headers)?;
        self.sessions().get(&id).map(|s| s.csrf.clone())
    }

    /// Who is asking, if allowed at `needed` or above. A bearer token needs no CSRF
    /// token; a session cookie does on anything but GET/HEAD.
    pub fn authorize(&self, headers: &HeaderMap, method: &Method, needed: Role) -> Result<Principal, ApiError> {
        let principal = if let Some(token) = bearer(headers) {
            let found = self.tokens.iter().find(|t| same(&t.secret, token)).ok_or_else(|| {
                ApiError::new(StatusCode::UNAUTHORIZED, "the API token is not valid: check the token you send")
            })?;
            found.principal()
        } else if let Some(id) = session_cookie(headers) {
            let mut sessions = self.sessions();
            let session = sessions
                .get_mut(&id)
                .filter(|s| s.last_used.elapsed() < SESSION_IDLE)
                .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "the session has ended: log in again"))?;
            if method != Method::GET && method != Method::HEAD {
                let sent = headers.get("x-csrf-token").and_then(|v| v.to_str().ok()).unwrap_or_default();
                if !same(sent, &session.csrf) {
                    return Err(ApiError::new(
                        StatusCode::FORBIDDEN,
                        "missing or wrong X-CSRF-Token: send the token from /api/v1/session",
                    ));
                }
            }
            session.last_used = Instant::now();
            session.principal.clone()
        } else {
            return Err(ApiError::new(
                StatusCode::UNAUTHORIZED,
                "not logged in: log in at /api/v1/login or send `Authorization: Bearer <token>`",
            ));
        };
        if principal.role < needed {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("{} is a {:?}; this needs the {:?} role", principal.name, principal.role, needed)
                    .to_lowercase(),
            ));
        }
        Ok(principal)
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

fn session_cookie(headers: &HeaderMap) -> Option<String> {
    headers.get_all(header::COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|c| {
        let (name, value) = c.trim().split_once('=')?;
        (name == SESSION_COOKIE).then(|| value.to_string())
    })
}

/// The client's address, for login throttling and the audit log: the peer's IP, or —
/// when the peer is a proxy on this host (a loopback address) — the last address of its
/// `X-Forwarded-For`. A remote peer's `X-Forwarded-For` is not believed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddr(pub String);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<ClientAddr, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        Ok(ClientAddr(client_address(peer, &parts.headers)))
    }
}

fn client_address(peer: Option<IpAddr>, headers: &HeaderMap) -> String {
    let Some(peer) = peer else { return "unknown".into() };
    let forwarded = || {
        // The proxy appends its peer to the last header line.
        let list = headers.get_all("x-forwarded-for").iter().next_back()?.to_str().ok()?;
        list.rsplit(',').next()?.trim().parse::<IpAddr>().ok()
    };
    match peer.is_loopback().then(forwarded).flatten() {
        Some(client) => client.to_string(),
        None => peer.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn c(name: &str, secret: &str, role: Role, teams: Option<&[&str]>) -> Credential {
        let teams = teams.map(|t| t.iter().map(|s| s.to_string()).collect());
        Credential { name: name.into(), secret: secret.into(), role, teams }
    }

    fn auth() -> Auth {
        Auth::new(vec![c("ana", "pw-ana", Role::Operator, None)], vec![c("ci", "tok", Role::Viewer, None)])
    }

    #[test]
    fn roles_tokens_sessions_and_csrf() {
        let auth = auth();
        assert!(matches!(auth.login("ana", "wrong", "10.0.0.1"), Err(LoginRefused::Wrong { .. })));
        let login = auth.login("ana", "pw-ana", "10.0.0.1").unwrap();
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_str(&format!("x=1; fg_session={}", login.session)).unwrap());
        assert_eq!(auth.authorize(&headers, &Method::GET, Role::Viewer).unwrap().name, "ana");
        let no_csrf = auth.authorize(&headers, &Method::POST, Role::Operator).unwrap_err();
        assert_eq!(no_csrf.status, StatusCode::FORBIDDEN);
        headers.insert("x-csrf-token", HeaderValue::from_str(&login.csrf).unwrap());
        assert!(auth.authorize(&headers, &Method::POST, Role::Operator).is_ok());
        let too_low = auth.authorize(&headers, &Method::POST, Role::Admin).unwrap_err();
        assert!(too_low.message.contains("needs the admin role"), "{}", too_low.message);
        auth.logout(&headers);
        assert_eq!(auth.authorize(&headers, &Method::GET, Role::Viewer).unwrap_err().status, StatusCode::UNAUTHORIZED);

        let mut token = HeaderMap::new();
        token.insert(header::AUTHORIZATION, HeaderValue::from_static("Bearer tok"));
        assert_eq!(auth.authorize(&token, &Method::POST, Role::Viewer).unwrap().name, "ci", "tokens need no CSRF");
        assert_eq!(auth.authorize(&token, &Method::POST, Role::Operator).unwrap_err().status, StatusCode::FORBIDDEN);
        assert!(!format!("{:?}", auth.tokens).contains("tok\""), "secrets stay out of Debug output");
    }

    #[test]
    fn teams_scope_what_an_operator_changes() {
        let scoped = c("pat", "", Role::Operator, Some(&["payments", "orders"])).principal();
        assert!(scoped.may_change_alert(1, "payments").is_ok());
        let refused = scoped.may_change_alert(2, "refunds").unwrap_err();
        assert_eq!(refused.status, StatusCode::FORBIDDEN);
        assert!(refused.message.contains("alert 2 belongs to team `refunds`"), "{}", refused.message);
        assert!(refused.message.contains("`payments`, `orders`"), "{}", refused.message);
        assert!(scoped.may_switch_rule("r", "orders").is_ok());
        assert!(scoped.may_switch_rule("r", "refunds").is_err());

        let unscoped = c("otto", "", Role::Operator, None).principal();
        assert!(unscoped.may_change_alert(2, "refunds").is_ok(), "no `teams`: every team's alerts");
        let no_rules = unscoped.may_switch_rule("r", "refunds").unwrap_err().message;
        assert!(no_rules.contains("no `teams`"), "{no_rules}");

        let admin = c("ada", "", Role::Admin, Some(&["payments"])).principal();
        assert!(admin.may_change_alert(2, "refunds").is_ok() && admin.may_switch_rule("r", "refunds").is_ok());
        let viewer = c("vera", "", Role::Viewer, Some(&["refunds"])).principal();
        assert!(viewer.may_switch_rule("r", "refunds").is_err(), "a viewer switches nothing");
    }

    #[test]
    fn failed_logins_lock_the_user_and_the_address_out_for_a_while() {
        let policy = LoginPolicy {
            max_failures: 3,
            within: Duration::from_secs(60),
            lockout: Duration::from_secs(300),
            secure_cookies: true,
        };
        let auth = Auth::new(
            vec![c("ana", "pw-ana", Role::Operator, None), c("bob", "pw-bob", Role::Viewer, None)],
            Vec::new(),
        )
        .with_policy(policy);
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let wrong = |user: &str, from: &str, s: u64| auth.login_at(user, "nope", from, at(s)).err().unwrap();

        // Failures older than the window do not count; a success starts again.
        assert_eq!(wrong("ana", "10.0.0.1", 0), LoginRefused::Wrong { locked: vec![] });
        assert_eq!(wrong("ana", "10.0.0.1", 1), LoginRefused::Wrong { locked: vec![] });
        assert_eq!(wrong("ana", "10.0.0.2", 100), LoginRefused::Wrong { locked: vec![] });
        assert!(auth.login_at("ana", "pw-ana", "10.0.0.2", at(101)).is_ok());
        assert_eq!(wrong("ana", "10.0.0.2", 102), LoginRefused::Wrong { locked: vec![] });
        assert_eq!(wrong("ana", "10.0.0.2", 103), LoginRefused::Wrong { locked: vec![] });
        assert_eq!(
            wrong("ana", "10.0.0.2", 104),
            LoginRefused::Wrong { locked: vec!["user ana".into(), "address 10.0.0.2".into()] }
        );
        // Locked: the right password too, from anywhere for ana, and anyone from that address.
        assert_eq!(
            auth.login_at("ana", "pw-ana", "10.0.0.9", at(110)).err().unwrap(),
            LoginRefused::Locked { retry_after: Duration::from_secs(294) }
        );
        assert!(matches!(auth.login_at("bob", "pw-bob", "10.0.0.2", at(110)), Err(LoginRefused::Locked { .. })));
        assert!(auth.login_at("bob", "pw-bob", "10.0.0.3", at(110)).is_ok(), "bob elsewhere is fine");
        assert!(auth.login_at("ana", "pw-ana", "10.0.0.9", at(404)).is_ok(), "the lock-out ends");
    }

    #[test]
    fn session_cookies_are_secure_unless_turned_off_and_served_over_http() {
        let plain = HeaderMap::new();
        let mut proxied = HeaderMap::new();
        proxied.insert("x-forwarded-proto", HeaderValue::from_static("https"));
        let secure = auth();
        assert_eq!(secure.session_cookie("s1", &plain), "fg_session=s1; Path=/; HttpOnly; SameSite=Strict; Secure");
        let local = auth().with_policy(LoginPolicy { secure_cookies: false, ..LoginPolicy::default() });
        assert_eq!(local.session_cookie("s1", &plain), "fg_session=s1; Path=/; HttpOnly; SameSite=Strict");
        assert!(local.session_cookie("s1", &proxied).ends_with("; Secure"), "HTTPS at the proxy");
        assert!(local.expired_cookie(&plain).contains("Max-Age=0"));
    }

    #[test]
    fn the_client_address_is_the_peer_unless_a_local_proxy_forwards_it() {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", HeaderValue::from_static("203.0.113.9, 198.51.100.4"));
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let remote: IpAddr = "192.0.2.1".parse().unwrap();
        assert_eq!(client_address(Some(local), &headers), "198.51.100.4");
        assert_eq!(client_address(Some(remote), &headers), "192.0.2.1", "a remote peer's header is not believed");
        assert_eq!(client_address(Some(local), &HeaderMap::new()), "127.0.0.1");
        assert_eq!(client_address(None, &headers), "unknown");
    }
}
