//! Notifications: the store's outbox delivered to channels, reliably.
//!
//! The alert store queues a notification in the same transaction as the alert change
//! that causes it ([`fundguard_alerts::Notification`]); the [`Notifier`] here sends what
//! is due, records each attempt, and retries failures with exponential backoff and
//! jitter — so a receiver that is down, or a fundguard restart, delays a message but
//! never loses it. Each message carries its outbox id (`X-Fundguard-Delivery`) so a
//! receiver can drop the rare repeat after a crash between sending and recording.
//!
//! A channel is one module implementing [`Channel`]: `webhook.rs` so far.

pub mod webhook;

use std::collections::HashMap;
use std::time::Duration;

use fundguard_alerts::{AlertStore, Notification};
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
    fn send(&self, notification: &Notification, text: &str) -> Result<(), SendError>;
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
}

impl<S: AlertStore> Notifier<S> {
    pub fn new(store: S, channels: HashMap<String, Box<dyn Channel>>, retry: Retry, link: Option<String>) -> Self {
        Notifier { store, channels, retry, link }
    }

    /// Sends everything due at `now` (up to `limit`); returns how many were delivered.
    pub fn deliver_due(&mut self, now: EventTime, limit: usize) -> Result<usize, fundguard_alerts::AlertError> {
        let mut delivered = 0;
        for n in self.store.due_notifications(now, limit)? {
            let text = message_text(&n, self.link.as_deref());
            let outcome = match self.channels.get(&n.channel) {
                Some(channel) => channel.send(&n, &text),
                None => Err(SendError {
                    message: format!("no channel named `{}` in the config", n.channel),
                    permanent: true,
                }),
            };
            let (outcome, retry_at) = match outcome {
                Ok(()) => {
                    delivered += 1;
                    (Ok(()), None)
                }
                Err(e) if e.permanent || n.attempts + 1 >= self.retry.max_attempts => (Err(e.message), None),
                Err(e) => (Err(e.message), Some(now.plus(self.retry.wait(n.attempts)))),
            };
            self.store.delivery_attempted(n.id, outcome, retry_at, now)?;
        }
        Ok(delivered)
    }
}

/// The human text of a notification: rule, key, money at risk and where to look.
pub fn message_text(n: &Notification, link: Option<&str>) -> String {
    let a = &n.alert;
    let money = a
        .money_at_risk
        .as_ref()
        .map(|m| {
            format!(
                " — money at risk: {} {}",
                m["amount"].as_str().map_or(m["amount"].to_string(), str::to_string),
                m["currency"].as_str().unwrap_or("")
            )
        })
        .unwrap_or_default();
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
