//! Who may do what: API tokens for machines, password logins for people, three roles.
//!
//! - **viewer** reads alerts, rules and figures;
//! - **operator** also works alerts (acknowledge, resolve, close, assign, note);
//! - **admin** also enables and disables rules and approves or rejects containment actions.
//!
//! Tokens come as `Authorization: Bearer …`. A console login gets a session cookie
//! (`HttpOnly`, `SameSite=Strict`) and a CSRF token; every state-changing request made
//! with the cookie must echo that token in `X-CSRF-Token` (a cross-site form cannot read
//! it). Secrets are compared in constant time and never logged or returned.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use axum::http::{HeaderMap, Method, StatusCode, header};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use crate::api::ApiError;

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
}

/// A named secret with its role: a user's password or an API token.
#[derive(Clone)]
pub struct Credential {
    pub name: String,
    pub secret: String,
    pub role: Role,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credential {{ name: {:?}, role: {:?}, secret: <hidden> }}", self.name, self.role)
    }
}

/// The name of the session cookie.
pub const SESSION_COOKIE: &str = "fg_session";

/// How long a console session lasts without use.
const SESSION_IDLE: Duration = Duration::from_secs(12 * 3600);

struct Session {
    principal: Principal,
    csrf: String,
    last_used: Instant,
}

/// Users, tokens and live sessions.
pub struct Auth {
    users: Vec<Credential>,
    tokens: Vec<Credential>,
    sessions: Mutex<HashMap<String, Session>>,
}

/// A fresh random secret: 32 bytes, hex.
pub fn random_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn same(a: &str, b: &str) -> bool {
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// What a successful login returns: the session id (for the cookie) and the CSRF token.
pub struct Login {
    pub session: String,
    pub csrf: String,
    pub principal: Principal,
}

impl Auth {
    pub fn new(users: Vec<Credential>, tokens: Vec<Credential>) -> Auth {
        Auth { users, tokens, sessions: Mutex::new(HashMap::new()) }
    }

    fn sessions(&self) -> std::sync::MutexGuard<'_, HashMap<String, Session>> {
        self.sessions.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Checks a user's password; a new session on success.
    pub fn login(&self, user: &str, password: &str) -> Option<Login> {
        let found = self.users.iter().find(|u| same(&u.name, user) && same(&u.secret, password))?;
        let principal = Principal { name: found.name.clone(), role: found.role };
        let (session, csrf) = (random_secret(), random_secret());
        let mut sessions = self.sessions();
        sessions.retain(|_, s| s.last_used.elapsed() < SESSION_IDLE);
        sessions.insert(
            session.clone(),
            Session { principal: principal.clone(), csrf: csrf.clone(), last_used: Instant::now() },
        );
        Some(Login { session, csrf, principal })
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
            Principal { name: found.name.clone(), role: found.role }
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

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn auth() -> Auth {
        let c = |name: &str, secret: &str, role| Credential { name: name.into(), secret: secret.into(), role };
        Auth::new(vec![c("ana", "pw-ana", Role::Operator)], vec![c("ci", "tok", Role::Viewer)])
    }

    #[test]
    fn roles_tokens_sessions_and_csrf() {
        let auth = auth();
        assert!(auth.login("ana", "wrong").is_none());
        let login = auth.login("ana", "pw-ana").unwrap();
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
}
