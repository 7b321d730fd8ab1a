//! Rule reloads while the service runs: new rules are loaded and validated off the
//! pipeline thread, and only an engine that built is sent to it, so a bad edit never
//! stops the running rules.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use tokio::sync::mpsc;

use super::catalog::Catalog;
use super::input::Input;
use crate::config::Config;

/// Reloads rules when a rule file changes (checked every two seconds), on SIGHUP, or
/// when a rule is switched on or off from the console.
/// New rules are validated first; a bad edit keeps the running rules and says why.
pub async fn watch(
    config: Config,
    catalog: Arc<Catalog>,
    schemas: Arc<fundguard_core::TableSchemas>,
    inputs: mpsc::Sender<Input>,
) {
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut seen = rules_fingerprint(&config);
    let mut poll = tokio::time::interval(Duration::from_secs(2));
    loop {
        let forced = tokio::select! {
            _ = poll.tick() => false,
            _ = catalog.changed.notified() => true,
            Some(_) = async { match &mut hangup { Some(h) => h.recv().await, None => std::future::pending().await } } => true,
        };
        let current = rules_fingerprint(&config);
        if !forced && current == seen {
            continue;
        }
        seen = current;
        match catalog.build_engine(&schemas) {
            Ok(engine) => {
                let n = engine.rule_ids().count();
                if inputs.send(Input::Reload(Box::new(engine))).await.is_err() {
                    return;
                }
                tracing::info!(rules = n, "rules reloaded: {n} rule(s) running");
            }
            Err(problems) => {
                tracing::warn!("rule reload failed; the previous rules keep running:\n{problems}");
            }
        }
    }
}

/// Names, sizes and modification times of every rule file: a change of any is a reload.
fn rules_fingerprint(config: &Config) -> Vec<(std::path::PathBuf, u64, Option<SystemTime>)> {
    fn walk(p: &std::path::Path, out: &mut Vec<(std::path::PathBuf, u64, Option<SystemTime>)>) {
        if p.is_dir() {
            if let Ok(dir) = std::fs::read_dir(p) {
                for e in dir.flatten() {
                    walk(&e.path(), out);
                }
            }
        } else if let Ok(m) = std::fs::metadata(p) {
            out.push((p.to_path_buf(), m.len(), m.modified().ok()));
        }
    }
    let mut out = Vec::new();
    for p in &config.rules {
        walk(p, &mut out);
    }
    out.sort();
    out
}
