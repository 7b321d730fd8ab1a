//! The notifier thread: delivers due notifications and containment actions from the
//! alert store's outbox, four times a second, and repeats firing alerts to Alertmanager,
//! until told to stop. It is a plain thread because the stores are blocking clients.
//!
//! Assembly builds it ([`open`]: stores and channels, so a bad channel stops the start);
//! running starts it ([`spawn`]) and the shutdown drain stops it last, after the pipeline
//! has written its final findings.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use fundguard_alerts::{AlertStore, Routes};
use fundguard_notify::{Notifier, Retry};
use fundguard_server::Telemetry;

use super::clock::now;
use crate::alerting::{channels, open_store};
use crate::config::Config;

type Store = Box<dyn AlertStore + Send>;

/// The notifier with what it works on, ready to run.
pub struct NotifierParts {
    notifier: Notifier<Store>,
    /// A second connection, for the alert counts of `/metrics`.
    counts: Store,
    telemetry: Arc<Telemetry>,
}

/// The running notifier thread and the flag that stops it.
pub struct RunningNotifier {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<()>,
}

/// Opens the notifier's stores and channels, when the config has an alert store.
pub fn open(config: &Config, telemetry: Arc<Telemetry>) -> anyhow::Result<Option<NotifierParts>> {
    let Some(location) = config.alert_store() else { return Ok(None) };
    // The config's routes and incidents: the notifier queues the incident updates that
    // come due without a new alert.
    let store = open_store(&location, config.store_policy())?;
    let counts = open_store(&location, Routes::default())?;
    let observed = telemetry.clone();
    let mut notifier = Notifier::new(store, channels(config)?, Retry::default(), config.notify.link.clone())
        .repeating(config.notify.routes.clone(), config.notify.resend_every)
        .observed(Box::new(move |channel, outcome| observed.notification(channel, outcome)));
    for c in &config.notify.channels {
        if let Some(per_minute) = c.max_per_minute {
            notifier = notifier.limit(&c.name, per_minute);
        }
    }
    Ok(Some(NotifierParts { notifier, counts, telemetry }))
}

/// Starts the notifier thread.
pub fn spawn(parts: NotifierParts) -> anyhow::Result<RunningNotifier> {
    let stop = Arc::new(AtomicBool::new(false));
    let stopping = stop.clone();
    let thread = std::thread::Builder::new().name("fundguard-notifier".into()).spawn(move || {
        let NotifierParts { mut notifier, counts, telemetry } = parts;
        let mut counted = Instant::now() - Duration::from_secs(60);
        while !stopping.load(Ordering::Relaxed) {
            const ROUND: usize = 100;
            let delivered = match notifier.deliver_due(now(), ROUND) {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(error = %e, "notifications: {e}");
                    0
                }
            };
            if let Err(e) = notifier.repeat_firing(now()) {
                tracing::error!(error = %e, "notifications: {e}");
            }
            // Alert counts for /metrics: a GROUP BY every five seconds, not per scrape.
            if counted.elapsed() >= Duration::from_secs(5) {
                counted = Instant::now();
                if let Ok(by_status) = counts.status_counts() {
                    telemetry
                        .alerts_by_status(by_status.into_iter().map(|(s, n)| (s.as_str().to_string(), n)).collect());
                }
            }
            // A full round means more is due: go on at once, so a burst of alerts drains at
            // the receivers' pace rather than at ROUND per pause.
            if delivered < ROUND {
                std::thread::sleep(Duration::from_millis(250));
            }
        }
    })?;
    Ok(RunningNotifier { stop, thread })
}

impl RunningNotifier {
    /// Tells the thread to stop and waits for its current round to end.
    pub async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = tokio::task::spawn_blocking(move || self.thread.join()).await;
    }
}
