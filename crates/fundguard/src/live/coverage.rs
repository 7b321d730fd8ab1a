//! Coverage gauges on `/metrics`: the report `console.coverage_report` names (written by
//! `fundguard coverage --format json`, e.g. by a CI job) is read every minute and its figures
//! per dimension and owner handed to telemetry. The service does not measure coverage
//! itself: the report is what people review, so the gauges show the same numbers.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use fundguard_server::Telemetry;

/// How often the report file is looked at (it is read again only when it changed).
const EVERY: Duration = Duration::from_secs(60);

pub async fn watch(path: PathBuf, telemetry: Arc<Telemetry>) {
    let mut seen: Option<SystemTime> = None;
    loop {
        let modified = tokio::fs::metadata(&path).await.and_then(|m| m.modified()).ok();
        if modified.is_some() && modified != seen {
            seen = modified;
            match tokio::fs::read_to_string(&path)
                .await
                .ok()
                .and_then(|t| fundguard_coverage::report::figures_of_json(&t))
            {
                Some(figures) => telemetry.coverage(figures),
                None => tracing::warn!(
                    report = %path.display(),
                    "console.coverage_report is not a coverage report: write it with `fundguard coverage --format json`"
                ),
            }
        }
        tokio::time::sleep(EVERY).await;
    }
}
