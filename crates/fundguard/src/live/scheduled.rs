//! Scheduled `sql` rules (D+1 checks over warehouse tables): a task that runs each rule
//! when its schedule falls due and hands the findings to the pipeline thread, which owns
//! the sinks. The rules come from the catalogue, so reloads and console switches reach
//! the schedule without a restart.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::catalog::Catalog;
use super::input::Input;
use crate::config::Config;

/// Runs the scheduled `sql` rules when they are due (see `fundguard_warehouse::Scheduler`).
/// Findings go to the pipeline thread like any other, and a run is recorded as done only
/// after they were written; a run cut off by a stop is repeated at the next start.
pub async fn run(
    config: Config,
    catalog: Arc<Catalog>,
    inputs: mpsc::Sender<Input>,
    telemetry: Arc<fundguard_server::Telemetry>,
    health: Option<super::health::HealthSender>,
) {
    use fundguard_warehouse::{History, Scheduler, Warehouse};
    let mut scheduler = match History::open(&config.data_dir) {
        Ok(history) => Scheduler::new(&catalog.scheduled_rules(), history),
        Err(e) => {
            tracing::error!(error = %e, "scheduled SQL rules are not run: {e}");
            return;
        }
    };
    let clock = chrono::Utc::now;
    loop {
        // Rule edits and console switches reach the scheduler through the catalogue.
        scheduler.set_rules(&catalog.scheduled_rules());
        let due = match scheduler.due(clock()) {
            Ok(due) => due,
            Err(e) => {
                tracing::error!(error = %e, "scheduled SQL: storing the schedule failed: {e}");
                Vec::new()
            }
        };
        if !due.is_empty() {
            // Connections are opened per round: a database that was down at the last one is tried again.
            let warehouse = Warehouse::open(&config.warehouse, &config.base_dir, |name| std::env::var(name).ok())
                .await
                .map_err(|e| e.to_string());
            for run in &due {
                let Some(outcome) = scheduler.run(warehouse.as_ref().map_err(String::as_str), run, &clock).await else {
                    continue;
                };
                let r = &outcome.record;
                tracing::info!(rule = %r.rule, status = r.status.as_str(), duration_ms = r.duration_ms, "sql rule {r}");
                let ended = r.started + chrono::Duration::milliseconds(r.duration_ms as i64);
                telemetry.sql_run(&r.rule, r.status.as_str(), r.duration_ms as f64 / 1000.0, ended.timestamp() as f64);
                if let Some(health) = &health {
                    let failed = r.status != fundguard_warehouse::RunStatus::Ok;
                    let at = fundguard_core::EventTime::from_micros(ended.timestamp_micros());
                    let _ = health.send(super::health::HealthInput::Run {
                        rule: r.rule.clone(),
                        failed,
                        error: r.error.clone(),
                        at,
                    });
                }
                let (reply, written) = tokio::sync::oneshot::channel();
                let findings = outcome.findings.clone();
                if inputs.send(Input::Findings { findings, reply }).await.is_err() || written.await.is_err() {
                    return;
                }
                if let Err(e) = scheduler.done(&outcome) {
                    tracing::error!(error = %e, "scheduled SQL: recording the run failed: {e}");
                }
            }
        }
        let now = clock();
        let wake = scheduler
            .next_fire(now)
            .and_then(|next| (next - now).to_std().ok())
            .unwrap_or(Duration::from_secs(30))
            .min(Duration::from_secs(30));
        tokio::time::sleep(wake + Duration::from_millis(5)).await;
    }
}
