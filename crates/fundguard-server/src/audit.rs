//! The audit log: who changed fundguard's configuration or rules, when, and from where.
//!
//! One JSON object per line in `DATA_DIR/audit.jsonl`, appended and flushed to disk before
//! the change it records is made (a change that cannot be recorded is not made), so the
//! log survives restarts and can be read with `jq`. Alert changes are not repeated here:
//! each is recorded in its alert's timeline, in the same transaction as the change.
//!
//! Recorded: rules switched on and off (`rule_enabled`, `rule_disabled`, and
//! `rule_switch_failed` when the switch could not be remembered), console logins
//! (`login`) and lock-outs after failed logins (`login_locked`).

use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use fundguard_core::EventTime;
use serde::{Deserialize, Serialize};

use crate::auth::Role;

/// One recorded action.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: EventTime,
    /// The user or token that acted (for `login_locked`, the user name that was tried).
    pub actor: String,
    /// Its role, when it was logged in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
    /// The client's address.
    pub from: String,
    /// What happened: `rule_disabled`, `rule_enabled`, `rule_switch_failed`, `login`, `login_locked`.
    pub action: String,
    /// What it happened to: a rule id, a user, an address.
    pub target: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub detail: String,
}

/// Which entries to list, newest first.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub actor: Option<String>,
    pub action: Option<String>,
    pub target: Option<String>,
    pub since: Option<EventTime>,
    pub limit: usize,
    pub offset: usize,
}

/// The audit log file.
pub struct Audit {
    path: PathBuf,
    /// One writer at a time, so lines never interleave.
    writing: Mutex<()>,
}

impl Audit {
    /// The log at `path` (created, with its directory, at the first entry).
    pub fn new(path: PathBuf) -> Audit {
        Audit { path, writing: Mutex::new(()) }
    }

    /// Appends `entry` and flushes it to disk.
    pub fn record(&self, entry: &AuditEntry) -> std::io::Result<()> {
        let mut line = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
        line.push(b'\n');
        let _one = self.writing.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)?;
        }
        let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&self.path)?;
        file.write_all(&line)?;
        file.sync_data()
    }

    /// Entries matching `filter`, newest first, and whether more follow the page.
    pub fn list(&self, filter: &AuditFilter) -> std::io::Result<(Vec<AuditEntry>, bool)> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
            Err(e) => return Err(e),
        };
        let same = |wanted: &Option<String>, value: &str| wanted.as_deref().is_none_or(|w| w == value);
        let mut matching = text
            .lines()
            .rev()
            .filter_map(|line| serde_json::from_str::<AuditEntry>(line).ok())
            .filter(|e| {
                same(&filter.actor, &e.actor)
                    && same(&filter.action, &e.action)
                    && same(&filter.target, &e.target)
                    && filter.since.is_none_or(|since| e.at >= since)
            })
            .skip(filter.offset);
        let page: Vec<AuditEntry> = matching.by_ref().take(filter.limit).collect();
        Ok((page, matching.next().is_some()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_appended_and_listed_newest_first() {
        let dir = std::env::temp_dir().join(format!("fundguard-audit-{}", crate::auth::random_secret()));
        let audit = Audit::new(dir.join("audit.jsonl"));
        let page = |f: AuditFilter| audit.list(&AuditFilter { limit: 10, ..f }).unwrap();
        assert_eq!(page(AuditFilter::default()), (vec![], false), "no file yet: nothing recorded");
        for (i, (actor, action)) in
            [("ada", "rule_disabled"), ("otto", "login"), ("ada", "rule_enabled")].iter().enumerate()
        {
            let entry = AuditEntry {
                at: EventTime::from_secs(1_700_000_000 + i as i64),
                actor: actor.to_string(),
                role: Some(Role::Admin),
                from: "127.0.0.1".into(),
                action: action.to_string(),
                target: "refund-amount-positive".into(),
                detail: String::new(),
            };
            audit.record(&entry).unwrap();
        }
        let (all, more) = page(AuditFilter::default());
        let actions: Vec<&str> = all.iter().map(|e| e.action.as_str()).collect();
        assert_eq!((actions, more), (vec!["rule_enabled", "login", "rule_disabled"], false));
        let (ada, _) = page(AuditFilter { actor: Some("ada".into()), ..AuditFilter::default() });
        assert_eq!(ada.len(), 2);
        let (first, more) = audit.list(&AuditFilter { limit: 1, offset: 1, ..AuditFilter::default() }).unwrap();
        assert_eq!((first[0].action.as_str(), more), ("login", true));
        let (recent, _) =
            page(AuditFilter { since: Some(EventTime::from_secs(1_700_000_001)), ..AuditFilter::default() });
        assert_eq!(recent.len(), 2);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
