//! `notify:` — notification channels (webhooks, chat bots, Alertmanager, email) and the
//! routing table that sends each alert to some of them. Needs an `alerts` sink.

use std::time::Duration;

use fundguard_core::Severity;
use serde::Deserialize;
use serde_saphyr::Spanned;

use super::loader::Loader;

/// The section as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct NotifyFile {
    #[serde(default)]
    channels: Vec<Spanned<ChannelFile>>,
    #[serde(default)]
    routes: Vec<Spanned<RouteFile>>,
    /// Base URL of alert pages, for links in messages.
    #[serde(default)]
    link: Option<String>,
    /// How often firing alerts are posted again to Alertmanager (default 5m).
    #[serde(default)]
    resend_every: Option<Spanned<String>>,
}

/// A notification channel as written: `type` says which kind; bot URLs carry access
/// tokens, so every URL may come from an environment variable instead (`url_env`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ChannelFile {
    name: String,
    #[serde(rename = "type")]
    kind: ChannelKind,
    #[serde(default)]
    url: Option<String>,
    #[serde(default)]
    url_env: Option<String>,
    /// The signing secret (webhook HMAC, Feishu/Lark and DingTalk signatures).
    #[serde(default)]
    secret_env: Option<String>,
    /// Email: the sender and the recipients.
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Vec<String>,
    /// At most this many messages a minute; the rest wait (and group up), never dropped.
    #[serde(default)]
    max_per_minute: Option<usize>,
}

/// The kinds of notification channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelKind {
    Webhook,
    Alertmanager,
    Slack,
    Feishu,
    Dingtalk,
    Wecom,
    Email,
}

impl ChannelKind {
    /// Whether messages of this kind carry a signature made with `secret_env`.
    fn is_signed(self) -> bool {
        matches!(self, ChannelKind::Webhook | ChannelKind::Feishu | ChannelKind::Dingtalk)
    }
}

/// A route as written: alerts matching every given list go to `channels`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RouteFile {
    #[serde(default)]
    severity: Vec<Severity>,
    #[serde(default)]
    owner: Vec<String>,
    #[serde(default)]
    rule: Vec<String>,
    /// Any of the rule's tags.
    #[serde(default)]
    tags: Vec<String>,
    channels: Vec<String>,
}

/// A validated notification channel.
#[derive(Debug, Clone)]
pub struct ChannelConfig {
    pub name: String,
    pub kind: ChannelKind,
    pub url: String,
    pub secret: Option<String>,
    /// Email only.
    pub from: String,
    pub to: Vec<String>,
    pub max_per_minute: Option<usize>,
}

/// Validated notification settings.
#[derive(Debug, Clone)]
pub struct NotifyConfig {
    pub channels: Vec<ChannelConfig>,
    pub routes: fundguard_alerts::Routes,
    pub link: Option<String>,
    /// How often firing alerts are posted again to Alertmanager, so it never times them out.
    pub resend_every: Duration,
}

impl Default for NotifyConfig {
    fn default() -> Self {
        NotifyConfig {
            channels: Vec::new(),
            routes: fundguard_alerts::Routes::default(),
            link: None,
            resend_every: Duration::from_secs(300),
        }
    }
}

impl NotifyFile {
    /// `has_alerts_sink`: whether `sinks` records alerts, which notifications are made from.
    pub fn validate(self, has_alerts_sink: bool, here: fundguard_rules::Location, loader: &mut Loader) -> NotifyConfig {
        let mut notify = NotifyConfig { link: self.link, ..NotifyConfig::default() };
        if let Some(d) = self.resend_every.as_ref().and_then(|d| loader.spanned_duration(d)) {
            notify.resend_every = d;
        }
        if !has_alerts_sink {
            loader.problem(here, "`notify` needs an alerts sink: add `- { type: alerts }` to `sinks`");
        }
        for spanned in self.channels {
            let here = loader.at_value(&spanned);
            let name = spanned.value.name.clone();
            let channel = spanned.value.validate(here.clone(), loader);
            if notify.channels.iter().any(|c| c.name == name) {
                loader.problem(here, format!("channel `{name}` is declared twice"));
                continue;
            }
            notify.channels.extend(channel);
        }
        for spanned in self.routes {
            let here = loader.at_value(&spanned);
            let route = spanned.value;
            for c in &route.channels {
                if !notify.channels.iter().any(|k| &k.name == c) {
                    loader.problem(
                        here.clone(),
                        format!("route names channel `{c}`, which `notify.channels` does not declare"),
                    );
                }
            }
            notify.routes.0.push(fundguard_alerts::Route {
                severities: route.severity,
                owners: route.owner,
                rules: route.rule,
                tags: route.tags,
                channels: route.channels,
            });
        }
        notify
    }
}

impl ChannelFile {
    /// The channel, or `None` when its URL is missing (problems are reported either way).
    fn validate(self, here: fundguard_rules::Location, loader: &mut Loader) -> Option<ChannelConfig> {
        let ChannelFile { name, kind, url, url_env, secret_env, from, to, max_per_minute } = self;
        if (kind == ChannelKind::Email) != (from.is_some() && !to.is_empty()) {
            let why = if kind == ChannelKind::Email {
                "needs `from` and `to`"
            } else {
                "takes `from` and `to` only for email"
            };
            loader.problem(here.clone(), format!("channel `{name}`: {kind:?} {why}"));
        }
        let from_env = |loader: &mut Loader, var: &str, what: &str| {
            let value = loader.env(var);
            if value.is_none() {
                loader.problem(
                    here.clone(),
                    format!("channel `{name}`: environment variable {var} is not set: export the {what} there (never in this file)"),
                );
            }
            value
        };
        let url = match (url, url_env) {
            (Some(url), None) => Some(url),
            (None, Some(var)) => from_env(loader, &var, "URL"),
            _ => {
                loader.problem(here.clone(), format!("channel `{name}`: give `url` or `url_env` (one of them)"));
                None
            }
        };
        let secret = secret_env.as_deref().and_then(|var| from_env(loader, var, "signing secret"));
        if secret_env.is_some() && !kind.is_signed() {
            loader.problem(
                here.clone(),
                format!("channel `{name}`: {kind:?} messages are not signed: drop `secret_env`"),
            );
        }
        Some(ChannelConfig { name, kind, url: url?, secret, from: from.unwrap_or_default(), to, max_per_minute })
    }
}
