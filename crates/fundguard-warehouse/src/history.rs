//! What the scheduler remembers between starts, in the data directory:
//!
//! - `sql-runs.jsonl`: every run's [`RunRecord`], appended — the history people read
//!   (`fundguard sql runs`);
//! - `sql-schedule.json`: per rule, the last fire time handled (or, for a rule seen for
//!   the first time, when it was first seen) — where catch-up starts after downtime.
//!   Replaced whole (write, then rename), so a crash leaves the old or the new file.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use crate::run::RunRecord;

/// The run history and the schedule cursors of one data directory.
pub struct History {
    runs: PathBuf,
    cursors_file: PathBuf,
    cursors: BTreeMap<String, DateTime<Utc>>,
}

impl History {
    /// Opens (or starts) the history in `data_dir`.
    pub fn open(data_dir: &Path) -> std::io::Result<History> {
        std::fs::create_dir_all(data_dir)?;
        let cursors_file = data_dir.join("sql-schedule.json");
        let cursors = match std::fs::read(&cursors_file) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidData,
                    format!("{} is damaged ({e}): delete it to start the schedules afresh", cursors_file.display()),
                )
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        Ok(History { runs: data_dir.join("sql-runs.jsonl"), cursors_file, cursors })
    }

    /// The last fire time handled for `rule`, if it was ever seen.
    pub fn cursor(&self, rule: &str) -> Option<DateTime<Utc>> {
        self.cursors.get(rule).copied()
    }

    /// Moves `rule`'s cursor to `at` and stores it.
    pub fn set_cursor(&mut self, rule: &str, at: DateTime<Utc>) -> std::io::Result<()> {
        self.cursors.insert(rule.to_string(), at);
        let tmp = self.cursors_file.with_extension("json.tmp");
        let mut file = std::fs::File::create(&tmp)?;
        file.write_all(&serde_json::to_vec_pretty(&self.cursors).unwrap_or_default())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &self.cursors_file)
    }

    /// Appends a run to the history.
    pub fn record(&self, run: &RunRecord) -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&self.runs)?;
        let mut line = serde_json::to_vec(run).unwrap_or_default();
        line.push(b'\n');
        file.write_all(&line)?;
        file.sync_data()
    }

    /// Every recorded run, oldest first; lines that cannot be read are skipped.
    pub fn runs(&self) -> std::io::Result<Vec<RunRecord>> {
        match std::fs::read_to_string(&self.runs) {
            Ok(text) => Ok(text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(e),
        }
    }
}
