//! What a configuration's alerting opens: the alert store and the notification
//! channels. The live service uses them (the alerts sink, the console, the notifier) and
//! so does `fundguard report daily --send`; keeping them here lets neither reach into the
//! other.

use std::collections::HashMap;

use fundguard_alerts::{AlertStore, Policy, StoreLocation};
use fundguard_notify::Channel;

use crate::config::{ChannelKind, Config};

/// Opens an alert store from a plain thread: the PostgreSQL client runs its own small
/// runtime, which may not start inside a Tokio one. The store is then used only from a
/// plain thread (the pipeline or notifier thread, a console lock), never from async code.
pub fn open_store(
    location: &StoreLocation,
    policy: impl Into<Policy> + Send,
) -> anyhow::Result<Box<dyn AlertStore + Send>> {
    std::thread::scope(|s| s.spawn(|| location.open(policy)).join())
        .map_err(|_| anyhow::anyhow!("opening the alert store panicked"))?
        .map_err(Into::into)
}

/// The configured notification channels, by name.
pub fn channels(config: &Config) -> anyhow::Result<HashMap<String, Box<dyn Channel>>> {
    use fundguard_notify::{alertmanager, dingtalk, email, feishu, slack, webhook, wecom};
    config
        .notify
        .channels
        .iter()
        .map(|c| -> anyhow::Result<(String, Box<dyn Channel>)> {
            let (url, secret) = (c.url.clone(), c.secret.clone());
            let channel: Box<dyn Channel> = match c.kind {
                ChannelKind::Webhook => Box::new(webhook::Webhook::new(url, secret)),
                ChannelKind::Alertmanager => Box::new(alertmanager::Alertmanager::new(url)),
                ChannelKind::Slack => Box::new(slack::Slack::new(url)),
                ChannelKind::Feishu => Box::new(feishu::Feishu::new(url, secret)),
                ChannelKind::Dingtalk => Box::new(dingtalk::DingTalk::new(url, secret)),
                ChannelKind::Wecom => Box::new(wecom::WeCom::new(url)),
                ChannelKind::Email => Box::new(
                    email::Email::new(&url, &c.from, &c.to)
                        .map_err(|e| anyhow::anyhow!("channel `{}`: {e}", c.name))?,
                ),
            };
            Ok((c.name.clone(), channel))
        })
        .collect()
}
