//! Notifications: the store's outbox delivered to channels, reliably.
//!
//! The alert store queues a notification in the same transaction as the alert change
//! that causes it ([`fundguard_alerts::Notification`]); the [`Notifier`] here sends what
//! is due, records each attempt, and retries failures with exponential backoff and
//! jitter — so a receiver that is down, or a fundguard restart, delays a message but
//! never loses it. Each message carries its outbox id (`X-Fundguard-Delivery`) so a
//! receiver can drop the rare repeat after a crash between sending and recording.
//!
//! A channel is one module implementing [`Channel`]: `webhook.rs` (generic JSON, signed),
//! `alertmanager.rs` (API v2, firing and resolved), `slack.rs`, `feishu.rs` (Feishu/Lark,
//! signed), `dingtalk.rs` (signed), `wecom.rs`, `email.rs` (SMTP).

pub mod action;
pub mod alertmanager;
pub mod dingtalk;
pub mod email;
pub mod feishu;
pub mod slack;
pub mod webhook;
pub mod wecom;

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use fundguard_alerts::{ACTION_CHANNEL, AlertStore, Filter, Notification, Routes, Status};
use fundguard_core::EventTime;

/// Why a send failed; `permanent` failures (a 4xx, a bad address) are not retried.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SendError {
    pub message: String,
    pub permanent: bool,
}

/// A destination for notifications.
pub trait Channel: Send {
    /// Sends one message about `batch` — one notification, or a group of the same
    /// rule, event and channel (a storm) — with its human `text`.
    fn send(&self, batch: &[&Notification], text: &str) -> Result<(), SendError>;

    /// Sends a report for people (the daily clearing report). Channels that carry
    /// alerts only (Alertmanager) refuse.
    fn send_report(&self, report: &Report) -> Result<(), SendError> {
        let _ = report;
        Err(SendError {
            message: "this channel carries alerts, not reports: route reports elsewhere".into(),
            permanent: true,
        })
    }

    /// Whether firing alerts are posted to it again periodically (Alertmanager forgets
    /// an alert that is not repeated).
    fn wants_repeats(&self) -> bool {
        false
    }
}

/// A report for people: a title, its plain text and its HTML (email sends both).
#[derive(Debug, Clone)]
pub struct Report {
    pub title: String,
    pub text: String,
    pub html: String,
}

/// From this many notifications of one rule and event for one channel in a round, they
/// go as one grouped message with a count instead of one message each.
pub const GROUP_FROM: usize = 5;

/// Posts a JSON body and [`judge`]s the answer.
pub(crate) fn post_json(
    agent: &ureq::Agent,
    url: &str,
    body: &str,
    headers: &[(&str, String)],
    accepted: fn(&str) -> Result<(), String>,
) -> Result<(), SendError> {
    let mut request = agent.post(url).header("Content-Type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    judge(url, request.send(body.as_bytes()), accepted).map(|_| ())
}

/// Judges an HTTP answer: a 2xx whose body `accepted` approves is delivered (its status
/// returned); a 4xx other than 408/429 (and a refusal in the body) will not get better by
/// retrying; anything else is retried.
pub(crate) fn judge(
    url: &str,
    answer: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    accepted: fn(&str) -> Result<(), String>,
) -> Result<u16, SendError> {
    // Error messages name the host only: bot URLs carry their access tokens.
    let host = url.split('/').take(3).collect::<Vec<_>>().join("/");
    match answer {
        Ok(mut response) if response.status().is_success() => {
            let text = response.body_mut().read_to_string().unwrap_or_default();
            accepted(&text)
                .map(|()| response.status().as_u16())
                .map_err(|why| SendError { message: format!("{host} refused the message: {why}"), permanent: true })
        }
        Ok(response) => {
            let status = response.status().as_u16();
            let permanent = (400..500).contains(&status) && status != 408 && status != 429;
            Err(SendError { message: format!("{host} answered HTTP {status}"), permanent })
        }
        Err(e) => Err(SendError { message: format!("{host}: {e}"), permanent: false }),
    }
}

/// An HTTP client with a 10 s limit per request that reports every status itself.
pub(crate) fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(10)))
        .http_status_as_error(false)
        .build()
        .into()
}

/// Accepts any 2xx body.
pub(crate) fn any_body(_: &str) -> Result<(), String> {
    Ok(())
}

/// Bots answering `{"errcode": 0}` (DingTalk, WeCom) or `{"code": 0}` (Feishu) on success.
pub(crate) fn zero_code(body: &str) -> Result<(), String> {
    let v: serde_json::Value = serde_json::from_str(body).map_err(|_| format!("unexpected answer `{body}`"))?;
    let code = v.get("errcode").or_else(|| v.get("code")).and_then(serde_json::Value::as_i64).unwrap_or(0);
    if code == 0 { Ok(()) } else { Err(body.to_string()) }
}

/// HMAC-SHA256 of `message` under `key`.
pub(crate) fn hmac_sha256(key: &[u8], message: &[u8]) -> Vec<u8> {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(message);
    mac.finalize().into_bytes().to_vec()
}

/// Milliseconds since the epoch, for the bots' signed timestamps.
pub(crate) fn unix_millis() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis()).unwrap_or_default()
}

/// Retry policy: the wait doubles from `first_retry` up to `max_wait`, each wait jittered
/// by ±20 % so many failed messages do not retry in lockstep; after `max_attempts` a
/// notification is given up and shows as failed.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    pub first_retry: Duration,
    pub max_wait: Duration,
    pub max_attempts: u32,
}

impl Default for Retry {
    fn default() -> Self {
        // 1 s doubling to 5 min, 120 attempts: about 9.5 hours before giving up.
        Retry { first_retry: Duration::from_secs(1), max_wait: Duration::from_secs(300), max_attempts: 120 }
    }
}

impl Retry {
    /// The wait before attempt `attempts + 1`.
    pub fn wait(&self, attempts: u32) -> Duration {
        let base = self.first_retry.saturating_mul(1u32 << attempts.min(20)).min(self.max_wait);
        let jitter = rand::random_range(0.8..1.2);
        base.mul_f64(jitter)
    }
}

/// Sends due notifications from a store to its channels.
pub struct Notifier<S> {
    store: S,
    channels: HashMap<String, Box<dyn Channel>>,
    retry: Retry,
    /// Where a person opens an alert: `{link}/{id}` in messages (the console, later).
    link: Option<String>,
    /// Per channel: at most this many messages a minute, and when the last ones went.
    limits: HashMap<String, (usize, VecDeque<EventTime>)>,
    actions: action::ActionRunner,
    /// Firing alerts are repeated to channels that want it, per this routing table.
    repeats: Option<(Routes, Duration)>,
    next_repeat: EventTime,
    /// Told of every attempt: (channel, `delivered` | `retried` | `failed`), for metrics.
    observer: Option<Observer>,
}

/// Told of every delivery attempt: the channel and `delivered`, `retried` or `failed`.
pub type Observer = Box<dyn Fn(&str, &str) + Send>;

impl<S: AlertStore> Notifier<S> {
    pub fn new(store: S, channels: HashMap<String, Box<dyn Channel>>, retry: Retry, link: Option<String>) -> Self {
        Notifier {
            store,
            channels,
            retry,
            link,
            limits: HashMap::new(),
            actions: action::ActionRunner::default(),
            repeats: None,
            next_repeat: EventTime::from_micros(0),
            observer: None,
        }
    }

    /// Reports every attempt's outcome to `observer`.
    pub fn observed(mut self, observer: Observer) -> Self {
        self.observer = Some(observer);
        self
    }

    /// Posts the active alerts routed (by `routes`) to channels that want repeats — every
    /// `every`, starting with the first call of [`Notifier::repeat_firing`].
    pub fn repeating(mut self, routes: Routes, every: Duration) -> Self {
        self.repeats = Some((routes, every));
        self
    }

    /// Repeats firing alerts when due (see [`Notifier::repeating`]); returns how many were
    /// posted. A failure is reported and tried again next time: repeats are not queued,
    /// they only keep receivers' state fresh.
    pub fn repeat_firing(&mut self, now: EventTime) -> Result<usize, fundguard_alerts::AlertError> {
        let Some((routes, every)) = &self.repeats else { return Ok(0) };
        if now < self.next_repeat {
            return Ok(0);
        }
        self.next_repeat = now.plus(*every);
        let wanting: Vec<&String> = self.channels.iter().filter(|(_, c)| c.wants_repeats()).map(|(n, _)| n).collect();
        if wanting.is_empty() {
            return Ok(0);
        }
        let mut active = Vec::new();
        for status in [Status::Open, Status::Acknowledged] {
            active.extend(self.store.list(&Filter { status: Some(status), limit: 100_000, ..Filter::default() })?);
        }
        let mut posted = 0;
        for name in wanting {
            let firing: Vec<Notification> = active
                .iter()
                .filter(|a| routes.channels_for(a).contains(name))
                .map(|a| Notification {
                    id: 0,
                    alert_id: a.id,
                    channel: name.clone(),
                    event: "firing".into(),
                    alert: a.clone(),
                    attempts: 0,
                    last_error: None,
                    action: None,
                    incident: None,
                })
                .collect();
            for chunk in firing.chunks(100) {
                let batch: Vec<&Notification> = chunk.iter().collect();
                match self.channels[name].send(&batch, "") {
                    Ok(()) => posted += batch.len(),
                    Err(e) => tracing::warn!(channel = %name, "repeating firing alerts to `{name}`: {e}"),
                }
            }
        }
        Ok(posted)
    }

    /// Sends at most `per_minute` messages a minute to `channel`; the rest wait, due, for
    /// a later round (and group up meanwhile) — never dropped.
    pub fn limit(mut self, channel: &str, per_minute: usize) -> Self {
        self.limits.insert(channel.to_string(), (per_minute, VecDeque::new()));
        self
    }

    /// Whether `channel` may send one more message at `now`; counts it when so.
    fn admit(&mut self, channel: &str, now: EventTime) -> bool {
        let Some((per_minute, sent)) = self.limits.get_mut(channel) else { return true };
        let minute_ago = now.as_micros() - 60_000_000;
        while sent.front().is_some_and(|t| t.as_micros() <= minute_ago) {
            sent.pop_front();
        }
        if sent.len() >= *per_minute {
            return false;
        }
        sent.push_back(now);
        true
    }

    /// Sends everything due at `now` (up to `limit`); returns how many were delivered.
    /// Notifications of one channel, rule and event form a group; a group of
    /// [`GROUP_FROM`] or more goes as one message with a count.
    pub fn deliver_due(&mut self, now: EventTime, limit: usize) -> Result<usize, fundguard_alerts::AlertError> {
        // Incidents that went quiet still tell their final count when their update is due.
        self.store.send_due_incident_updates(now)?;
        let due = self.store.due_notifications(now, limit)?;
        let (actions, due): (Vec<Notification>, Vec<Notification>) =
            due.into_iter().partition(|n| n.channel == ACTION_CHANNEL);
        let mut delivered = 0;
        for n in &actions {
            // Actions are never grouped or rate-limited: each contains one incident.
            let outcome = self.actions.run(n);
            delivered += usize::from(outcome.is_ok());
            self.attempted(n, outcome, now)?;
        }
        let mut groups: Vec<Vec<&Notification>> = Vec::new();
        for n in &due {
            let same = |g: &&mut Vec<&Notification>| {
                g[0].channel == n.channel && g[0].alert.rule == n.alert.rule && g[0].event == n.event
            };
            match groups.iter_mut().find(|g| same(g)) {
                Some(g) if g.len() < limit => g.push(n),
                _ => groups.push(vec![n]),
            }
        }
        let mut batches: Vec<Vec<&Notification>> = Vec::new();
        for g in groups {
            if g.len() >= GROUP_FROM {
                batches.push(g);
            } else {
                batches.extend(g.into_iter().map(|n| vec![n]));
            }
        }
        for batch in batches {
            let first = batch[0];
            if !self.admit(&first.channel, now) {
                continue; // over the channel's rate: still due next round
            }
            let text = match batch.len() {
                1 => message_text(first, self.link.as_deref()),
                _ => group_text(&batch, self.link.as_deref()),
            };
            let outcome = match self.channels.get(&first.channel) {
                Some(channel) => channel.send(&batch, &text),
                None => Err(SendError {
                    message: format!("no channel named `{}` in the config", first.channel),
                    permanent: true,
                }),
            };
            for n in &batch {
                delivered += usize::from(outcome.is_ok());
                let outcome = outcome
                    .as_ref()
                    .map(|()| "delivered".to_string())
                    .map_err(|e| SendError { message: e.message.clone(), permanent: e.permanent });
                self.attempted(n, outcome, now)?;
            }
        }
        Ok(delivered)
    }

    /// Records one attempt: delivered, retried after a backoff, or given up (permanent
    /// failures and the last attempt).
    fn attempted(
        &mut self,
        n: &Notification,
        outcome: Result<String, SendError>,
        now: EventTime,
    ) -> Result<(), fundguard_alerts::AlertError> {
        let (result, retry_at) = match outcome {
            Ok(said) => (Ok(said), None),
            Err(e) if e.permanent || n.attempts + 1 >= self.retry.max_attempts => {
                // Given up: say so where operators look, besides `fundguard alerts outbox`.
                tracing::error!(
                    channel = %n.channel,
                    alert = n.alert_id,
                    notification = n.id,
                    "gave up on {} #{} (alert {}) to `{}` after {} attempt(s): {}",
                    n.event,
                    n.id,
                    n.alert_id,
                    n.channel,
                    n.attempts + 1,
                    e.message
                );
                (Err(e.message), None)
            }
            Err(e) => (Err(e.message), Some(now.plus(self.retry.wait(n.attempts)))),
        };
        if let Some(observe) = &self.observer {
            let outcome = match (&result, retry_at) {
                (Ok(_), _) => "delivered",
                (Err(_), Some(_)) => "retried",
                (Err(_), None) => "failed",
            };
            observe(&n.channel, outcome);
        }
        self.store.delivery_attempted(n.id, result, retry_at, now)
    }
}

/// The text of a grouped message: the rule, how many alerts, their keys (the first ten)
/// and where to look.
pub fn group_text(batch: &[&Notification], link: Option<&str>) -> String {
    let a = &batch[0].alert;
    let keys: Vec<String> = batch.iter().take(10).map(|n| format!("#{} {}", n.alert.id, n.alert.key)).collect();
    let more = if batch.len() > 10 { format!(" and {} more", batch.len() - 10) } else { String::new() };
    let open = match link {
        Some(base) => base.trim_end_matches('/').to_string(),
        None => format!("fundguard alerts list --rule {}", a.rule),
    };
    format!(
        "[{}] {}: {} alerts {} (team {}): {}{more}. Open: {open}",
        a.severity.as_str().to_uppercase(),
        a.rule,
        batch.len(),
        batch[0].event,
        a.owner,
        keys.join(", ")
    )
}

/// The human text of a notification: rule, key, money at risk and where to look; for an
/// incident update, the incident's size, money and likely causes.
pub fn message_text(n: &Notification, link: Option<&str>) -> String {
    let a = &n.alert;
    if let Some(incident) = &n.incident {
        let mut money = fundguard_core::MoneyTotals::default();
        incident.money_at_risk.iter().for_each(|m| money.add(m));
        let causes = if incident.causes.is_empty() {
            String::new()
        } else {
            format!(" Likely causes: {}.", incident.causes.join("; "))
        };
        return format!(
            "[{}] {} incident {} (team {}): {} alert(s) so far, money at risk {}; first alert {}: {}.{causes} Open: fundguard incidents show {}",
            a.severity.as_str().to_uppercase(),
            a.rule,
            incident.id,
            a.owner,
            incident.alerts,
            money.display(),
            a.id,
            a.message,
            incident.id
        );
    }
    // In major units with the currency's exponent (`4,198.45 CNY`); the webhook's `alert`
    // keeps the exact minor units beside it.
    let money = a.money_at_risk.as_ref().map(|m| format!(" — money at risk: {}", m.display())).unwrap_or_default();
    let open = match link {
        Some(base) => format!("{}/{}", base.trim_end_matches('/'), a.id),
        None => format!("fundguard alerts show {}", a.id),
    };
    format!(
        "[{}] {} alert {} {}: {} (key {}, team {}, {} finding(s)){money}. Open: {open}",
        a.severity.as_str().to_uppercase(),
        a.rule,
        a.id,
        n.event,
        a.message,
        a.key,
        a.owner,
        a.count
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::{Arc, Mutex};

    use fundguard_alerts::{Route, Routes, SqliteStore};
    use fundguard_core::{Finding, Severity, Value};

    use super::*;

    /// Counts what it is asked to send.
    struct Counting(Arc<Mutex<Vec<usize>>>);

    impl Channel for Counting {
        fn send(&self, batch: &[&Notification], _: &str) -> Result<(), SendError> {
            self.0.lock().unwrap().push(batch.len());
            Ok(())
        }
    }

    /// A store that notifies every alert on its own: these tests are about messages, not
    /// about grouping alerts into incidents.
    fn store_notifying_every_alert(path: &std::path::Path, routes: Routes) -> SqliteStore {
        let incidents = fundguard_alerts::IncidentPolicy { notify_every_alert: true, ..Default::default() };
        SqliteStore::open(path).unwrap().with_policy(fundguard_alerts::Policy { routes, incidents })
    }

    fn finding(rule: &str, id: i64) -> Finding {
        Finding {
            rule: rule.into(),
            owner: "t".into(),
            severity: Severity::High,
            key: BTreeMap::from([("id".to_string(), Value::Int(id))]),
            event_time: EventTime::from_secs(1_700_000_000),
            detected_at: EventTime::from_secs(1_700_000_001),
            message: "m".into(),
            evidence: Vec::new(),
            money_at_risk: None,
            tags: Default::default(),
            action: None,
            fingerprint_by: None,
        }
    }

    #[test]
    fn a_rate_limited_channel_sends_the_rest_later_and_loses_nothing() {
        let dir = std::env::temp_dir().join(format!("fg-notify-{}", std::process::id()));
        let routes = Routes(vec![Route { channels: vec!["c".into()], ..Route::default() }]);
        let mut store = store_notifying_every_alert(&dir.join("a.db"), routes);
        // Three rules with two alerts each: six single messages (below the grouping threshold).
        let findings: Vec<Finding> = ["a", "b", "c"].iter().flat_map(|r| [finding(r, 1), finding(r, 2)]).collect();
        fundguard_alerts::AlertStore::record(&mut store, &findings).unwrap();
        let sent = Arc::new(Mutex::new(Vec::new()));
        let channels: HashMap<String, Box<dyn Channel>> =
            HashMap::from([("c".to_string(), Box::new(Counting(sent.clone())) as Box<dyn Channel>)]);
        let mut notifier =
            Notifier::new(SqliteStore::open(&dir.join("a.db")).unwrap(), channels, Retry::default(), None)
                .limit("c", 4);
        let t0 = EventTime::from_secs(1_800_000_000);
        assert_eq!(notifier.deliver_due(t0, 100).unwrap(), 4, "four a minute");
        assert_eq!(notifier.deliver_due(t0.plus(Duration::from_secs(30)), 100).unwrap(), 0, "still the same minute");
        assert_eq!(notifier.deliver_due(t0.plus(Duration::from_secs(61)), 100).unwrap(), 2, "the rest a minute later");
        assert_eq!(sent.lock().unwrap().len(), 6);
        let _ = std::fs::remove_dir_all(dir);
    }

    #[test]
    fn the_text_shows_money_in_major_units_with_the_currency_exponent() {
        let dir = tempfile_dir("money");
        let routes = Routes(vec![Route { channels: vec!["c".into()], ..Route::default() }]);
        let mut store = store_notifying_every_alert(&dir.join("a.db"), routes);
        let mut cny = finding("pay-amount", 1);
        cny.money_at_risk = fundguard_core::Money::from_value(
            &Value::Decimal("-4198.45".parse().unwrap()),
            Some(&Value::from("CNY")),
            fundguard_core::MoneyUnit::Auto,
        );
        let mut jpy = finding("pay-amount", 2);
        jpy.money_at_risk = fundguard_core::Money::from_value(
            &Value::Int(1500),
            Some(&Value::from("JPY")),
            fundguard_core::MoneyUnit::Minor,
        );
        fundguard_alerts::AlertStore::record(&mut store, &[cny, jpy]).unwrap();
        let due =
            fundguard_alerts::AlertStore::due_notifications(&store, EventTime::from_secs(1_800_000_000), 10).unwrap();
        let texts: Vec<String> = due.iter().map(|n| message_text(n, None)).collect();
        assert!(texts[0].contains("money at risk: \u{2212}4,198.45 CNY."), "{}", texts[0]);
        assert!(texts[1].contains("money at risk: 1,500 JPY."), "{}", texts[1]);
        let json = serde_json::to_value(&due[0].alert).unwrap();
        assert_eq!(json["money_at_risk"]["amount_minor"], "-419845", "exact minor units for machines");
        let _ = std::fs::remove_dir_all(dir);
    }

    fn tempfile_dir(name: &str) -> std::path::PathBuf {
        std::env::temp_dir().join(format!("fg-notify-{name}-{}", std::process::id()))
    }

    #[test]
    fn retries_back_off_exponentially_with_jitter_up_to_the_cap() {
        let retry = Retry::default();
        for (attempts, base) in [(0u32, 1.0f64), (3, 8.0), (20, 300.0)] {
            let wait = retry.wait(attempts).as_secs_f64();
            assert!(wait >= base * 0.8 && wait <= base * 1.2, "attempt {attempts}: {wait}");
        }
    }
}
