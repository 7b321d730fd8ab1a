//! `console:` — who may use the console and the API (users with passwords, API tokens,
//! each with a role and the teams it works for), and how logins are guarded. Secrets come
//! from the environment or from files, never from the config file itself.

use std::path::PathBuf;

use fundguard_server::{Credential, LoginPolicy, Role};
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::loader::{Loader, secret_file};

/// The section as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ConsoleFile {
    #[serde(default)]
    users: Vec<Spanned<PrincipalFile>>,
    #[serde(default)]
    tokens: Vec<Spanned<PrincipalFile>>,
    /// `Secure` on the session cookie; default: yes, unless `listen` is a loopback address.
    #[serde(default)]
    secure_cookies: Option<bool>,
    /// Lock-out after failed logins.
    #[serde(default)]
    login: Option<LoginFile>,
    /// The JSON `fundguard coverage --format json` writes: shown on the Coverage page.
    #[serde(default)]
    coverage_report: Option<PathBuf>,
    /// What `fundguard suggest --out DIR` wrote, reviewed on the Suggestions page.
    #[serde(default)]
    suggestions: Option<Spanned<SuggestionsFile>>,
}

/// `console.suggestions:` — the directory `fundguard suggest --out` wrote, and the rules
/// directory accepted suggestions are written to (one of `rules:`, so they start running).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SuggestionsFile {
    dir: PathBuf,
    accept_into: PathBuf,
}

/// `console.login:` — failed logins of one user, or from one address, within `within`
/// that lock it out for `lockout`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginFile {
    #[serde(default)]
    max_failures: Option<usize>,
    #[serde(default)]
    within: Option<String>,
    #[serde(default)]
    lockout: Option<String>,
}

/// A console user (`password_env`) or an API token (`token_env`) with its role and the
/// teams whose alerts it works (every team's when left out).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PrincipalFile {
    name: String,
    role: String,
    #[serde(default)]
    teams: Option<Vec<String>>,
    #[serde(default)]
    password_env: Option<String>,
    /// A user's password from a file instead (read at load, trailing newline dropped).
    #[serde(default)]
    password_file: Option<PathBuf>,
    #[serde(default)]
    token_env: Option<String>,
}

/// Validated console access: users (name, password) and API tokens (name, token), and
/// how logins are guarded.
#[derive(Debug, Clone, Default)]
pub struct ConsoleConfig {
    pub users: Vec<Credential>,
    pub tokens: Vec<Credential>,
    pub login: LoginPolicy,
    /// The coverage report the Coverage page shows (relative to the config file).
    pub coverage_report: Option<PathBuf>,
    /// The suggestions the Suggestions page reviews.
    pub suggestions: Option<SuggestionsConfig>,
}

/// Where suggestions are read, and where accepting one writes its rule file.
#[derive(Debug, Clone)]
pub struct SuggestionsConfig {
    /// `fundguard suggest --out DIR`'s directory: report.json, the rule files, and
    /// rejected.yaml (the reviewers' rejections, which the next `suggest --out DIR` reads).
    pub dir: PathBuf,
    /// A directory inside one of the config's `rules:` paths.
    pub accept_into: PathBuf,
}

impl ConsoleFile {
    /// `listen`: the service's address; cookies are `Secure` by default unless it is loopback.
    /// `rules`: the config's rule paths (as written), which `suggestions.accept_into` must be inside.
    pub fn validate(&self, listen: Option<&str>, rules: &[PathBuf], loader: &mut Loader) -> ConsoleConfig {
        let mut console = ConsoleConfig::default();
        let principals = self.users.iter().map(|u| (u, true)).chain(self.tokens.iter().map(|t| (t, false)));
        for (spanned, is_user) in principals {
            let here = loader.at_value(spanned);
            match spanned.value.validate(is_user, loader) {
                Ok(credential) if is_user => console.users.push(credential),
                Ok(credential) => console.tokens.push(credential),
                Err(problem) => loader.problem(here, problem),
            }
        }
        let defaults = LoginPolicy::default();
        let login = self.login.as_ref();
        let key = "console.login.";
        console.login = LoginPolicy {
            max_failures: login.and_then(|l| l.max_failures).unwrap_or(defaults.max_failures),
            within: loader.duration_or(&format!("{key}within"), login.and_then(|l| l.within.as_ref()), defaults.within),
            lockout: loader.duration_or(
                &format!("{key}lockout"),
                login.and_then(|l| l.lockout.as_ref()),
                defaults.lockout,
            ),
            secure_cookies: self.secure_cookies.unwrap_or_else(|| !listen.is_some_and(is_loopback)),
        };
        console.coverage_report = self.coverage_report.as_ref().map(|p| loader.rel(p));
        if let Some(spanned) = &self.suggestions {
            let here = loader.at_value(spanned);
            let suggestions = SuggestionsConfig {
                dir: loader.rel(&spanned.value.dir),
                accept_into: loader.rel(&spanned.value.accept_into),
            };
            // Lexically: the directory may not exist yet (the first acceptance creates it).
            let inside = rules.iter().map(|r| loader.rel(r)).any(|r| suggestions.accept_into.starts_with(&r));
            if !inside {
                loader.problem(
                    here,
                    format!(
                        "console.suggestions.accept_into {}: expected a directory inside one of `rules:` ({}), so accepted rules run",
                        spanned.value.accept_into.display(),
                        rules.iter().map(|r| r.display().to_string()).collect::<Vec<_>>().join(", ")
                    ),
                );
            }
            console.suggestions = Some(suggestions);
        }
        if console.login.max_failures == 0 {
            loader.problem(loader.at(0, 0), "console.login.max_failures: expected 1 or more");
        }
        console
    }
}

impl PrincipalFile {
    /// The credential, or what is wrong with it.
    fn validate(&self, is_user: bool, loader: &Loader) -> Result<Credential, String> {
        let name = &self.name;
        let role = Role::parse(&self.role)
            .ok_or_else(|| format!("`{name}`: role `{}`: expected viewer, operator or admin", self.role))?;
        match &self.teams {
            Some(_) if role == Role::Admin => {
                return Err(format!("`{name}`: an admin works for every team: drop `teams` (or make it an operator)"));
            }
            Some(teams) if teams.is_empty() || teams.iter().any(|t| t.trim().is_empty()) => {
                return Err(format!(
                    "`{name}`: `teams` lists no team: name the rule owners it works for, or leave `teams` out for every team"
                ));
            }
            _ => {}
        }
        let secret = match (is_user, &self.password_env, &self.password_file, &self.token_env) {
            (true, Some(var), None, None) => from_env(loader, name, var, "password")?,
            (false, None, None, Some(var)) => from_env(loader, name, var, "API token")?,
            (true, None, Some(file), None) => {
                secret_file(&loader.rel(file)).map_err(|e| format!("`{name}`: password_file {e}"))?
            }
            _ => {
                let expected = if is_user {
                    "a user needs `password_env` or `password_file`"
                } else {
                    "a token needs `token_env`"
                };
                return Err(format!("`{name}`: {expected} (and nothing else)"));
            }
        };
        Ok(Credential { name: name.clone(), secret, role, teams: self.teams.clone() })
    }
}

fn from_env(loader: &Loader, name: &str, var: &str, what: &str) -> Result<String, String> {
    loader.env(var).ok_or_else(|| {
        format!("`{name}`: environment variable {var} is not set: export the {what} there (never in this file)")
    })
}

/// Whether a `listen` address is on this host only (`127.0.0.1:8080`, `[::1]:80`, `localhost:8080`).
fn is_loopback(listen: &str) -> bool {
    let host = listen.rsplit_once(':').map_or(listen, |(host, _)| host);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback())
}
