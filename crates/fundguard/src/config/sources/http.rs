//! `type: http` — messages POSTed to the service's `listen` address, with a bearer token
//! and per-source limits on size and rate.

use serde::Deserialize;

use super::{Reported, Scope, SourceKind, SourceSpec};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(in crate::config) struct HttpSource {
    name: String,
    format: String,
    #[serde(default)]
    table: Option<String>,
    #[serde(default)]
    table_field: Option<String>,
    #[serde(default)]
    time_field: Option<String>,
    token_env: String,
    #[serde(default)]
    max_body_bytes: Option<usize>,
    #[serde(default)]
    max_messages: Option<usize>,
    /// Requests a second this source accepts (a token bucket holding one second's worth).
    #[serde(default)]
    max_requests_per_second: Option<f64>,
    /// Messages a second this source accepts.
    #[serde(default)]
    max_messages_per_second: Option<f64>,
}

impl SourceSpec for HttpSource {
    message_source_spec!();

    fn validate(self: Box<Self>, scope: &mut Scope) -> Result<SourceKind, Reported> {
        for (key, rate) in [
            ("max_requests_per_second", self.max_requests_per_second),
            ("max_messages_per_second", self.max_messages_per_second),
        ] {
            if rate.is_some_and(|r| !(r.is_finite() && r > 0.0)) {
                scope.problem(format_args!("{key} must be a number above 0 (leave it out for no limit)"));
            }
        }
        if !scope.has_listen {
            let name = scope.name().to_string();
            scope.problem_as_is(format!(
                "source `{name}` is an HTTP source but `listen` is not set: add `listen: 127.0.0.1:8080`"
            ));
        }
        Ok(SourceKind::Http {
            token: scope.secret_env(&self.token_env)?,
            max_body_bytes: self.max_body_bytes.unwrap_or(1 << 20),
            max_messages: self.max_messages.unwrap_or(10_000),
            rate: fundguard_server::IngestRate {
                requests_per_second: self.max_requests_per_second,
                messages_per_second: self.max_messages_per_second,
            },
        })
    }
}
