//! Reviewing suggestions from the console (`console.suggestions`): the directory
//! `fundguard suggest --out DIR` wrote holds report.json and one rule file per suggestion.
//!
//! - Accepted: the rule file is copied into `accept_into` (inside `rules:`) once it loads,
//!   compiles and passes its tests beside the running rules; the reload starts it at once.
//!   A suggestion counts as accepted while a rule with its id runs or its file is there.
//! - Rejected: `DIR/rejected.yaml` (`rule-id: why`) gains it; `fundguard suggest --out DIR`
//!   reads that file and lists the rule as rejected instead of proposing it again.
//!
//! Decisions are made one at a time (a lock), so two reviewers cannot both accept a rule.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use fundguard_core::TableSchemas;
use fundguard_server::{ReviewError, RuleCatalog, SuggestionReview};
use serde_json::Value;

use super::catalog::Catalog;
use crate::commands::suggest::{REJECTED_FILE, rejected};
use crate::config::SuggestionsConfig;

/// Rule files larger than this are not shown or accepted (suggest writes a few KiB).
const MAX_RULE_FILE: u64 = 256 * 1024;

pub struct Review {
    dir: PathBuf,
    accept_into: PathBuf,
    catalog: Arc<Catalog>,
    schemas: Arc<TableSchemas>,
    deciding: Mutex<()>,
}

impl Review {
    pub fn new(config: &SuggestionsConfig, catalog: Arc<Catalog>, schemas: Arc<TableSchemas>) -> Review {
        Review {
            dir: config.dir.clone(),
            accept_into: config.accept_into.clone(),
            catalog,
            schemas,
            deciding: Mutex::new(()),
        }
    }

    fn report(&self) -> Result<Value, ReviewError> {
        let path = self.dir.join("report.json");
        let text = std::fs::read_to_string(&path).map_err(|e| {
            ReviewError::NotFound(format!(
                "no suggestions at {}: {e}; write them with `fundguard suggest … --out {}`",
                path.display(),
                self.dir.display()
            ))
        })?;
        serde_json::from_str(&text).map_err(|e| {
            ReviewError::Failed(format!(
                "{} is not JSON ({e}): write it again with `fundguard suggest … --out {}`",
                path.display(),
                self.dir.display()
            ))
        })
    }

    /// The suggestion `id` of the report, and its rule file's name (a plain file name: the
    /// report is only trusted to name files inside its own directory).
    fn find(&self, report: &Value, id: &str) -> Result<(Value, String), ReviewError> {
        let suggestion = report["suggestions"]
            .as_array()
            .and_then(|all| all.iter().find(|s| s["id"].as_str() == Some(id)))
            .cloned()
            .ok_or_else(|| {
                ReviewError::NotFound(format!("no suggestion `{id}`: GET /api/v1/suggestions lists them"))
            })?;
        let file = suggestion["file"].as_str().unwrap_or_default().to_string();
        let plain = Path::new(&file).file_name().is_some_and(|name| name == file.as_str())
            && matches!(Path::new(&file).extension().and_then(|e| e.to_str()), Some("yaml" | "yml"));
        if !plain {
            return Err(ReviewError::Failed(format!(
                "suggestion `{id}` names the file {file:?}: expected a rule file name in {}",
                self.dir.display()
            )));
        }
        Ok((suggestion, file))
    }

    fn rejected(&self) -> Result<BTreeMap<String, String>, ReviewError> {
        let path = self.dir.join(REJECTED_FILE);
        if !path.exists() {
            return Ok(BTreeMap::new());
        }
        rejected(&path).map_err(|e| ReviewError::Failed(format!("{e:#}")))
    }

    fn rule_file(&self, file: &str) -> Result<String, ReviewError> {
        let path = self.dir.join(file);
        let too_big = std::fs::metadata(&path).map(|m| m.len() > MAX_RULE_FILE).unwrap_or(false);
        if too_big {
            return Err(ReviewError::Failed(format!("{} is over {MAX_RULE_FILE} bytes", path.display())));
        }
        std::fs::read_to_string(&path).map_err(|e| ReviewError::NotFound(format!("reading {}: {e}", path.display())))
    }

    /// Why `id` cannot be decided again, if it has been.
    fn decided(&self, id: &str, file: &str, running: &BTreeSet<String>) -> Result<Option<String>, ReviewError> {
        if running.contains(id) {
            return Ok(Some(format!("suggestion `{id}` is accepted: a rule `{id}` runs")));
        }
        let target = self.accept_into.join(file);
        if target.exists() {
            return Ok(Some(format!("suggestion `{id}` is accepted: {} exists", target.display())));
        }
        if let Some(why) = self.rejected()?.get(id) {
            return Ok(Some(format!(
                "suggestion `{id}` was rejected ({why}); to reconsider it, remove it from {}",
                self.dir.join(REJECTED_FILE).display()
            )));
        }
        Ok(None)
    }

    fn running(&self) -> BTreeSet<String> {
        self.catalog.rules().into_iter().map(|r| r.id).collect()
    }
}

/// Writes `text` to `path` whole: a temporary file beside it (not a rule file: no `.yaml`
/// ending, so a reload in between does not read it), then a rename.
fn write_whole(path: &Path, text: &str) -> std::io::Result<()> {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let partial = path.with_file_name(format!(".{name}.partial"));
    std::fs::write(&partial, text)?;
    std::fs::rename(&partial, path)
}

impl SuggestionReview for Review {
    fn list(&self) -> Result<Value, ReviewError> {
        let report = self.report()?;
        let rejected = self.rejected()?;
        let running = self.running();
        let mut suggestions = Vec::new();
        for s in report["suggestions"].as_array().cloned().unwrap_or_default() {
            let id = s["id"].as_str().unwrap_or_default().to_string();
            let mut s = s;
            let file = s["file"].as_str().unwrap_or_default().to_string();
            let accepted = running.contains(&id)
                || (!file.is_empty() && !file.contains('/') && self.accept_into.join(&file).exists());
            s["decision"] = match rejected.get(&id) {
                _ if accepted => serde_json::json!({ "state": "accepted" }),
                Some(reason) => serde_json::json!({ "state": "rejected", "reason": reason }),
                None => serde_json::json!({ "state": "pending" }),
            };
            s["rule_file"] = match self.find(&report, &id).and_then(|(_, file)| self.rule_file(&file)) {
                Ok(text) => Value::String(text),
                Err(e) => Value::String(format!("# {e}")),
            };
            suggestions.push(s);
        }
        Ok(serde_json::json!({
            "dir": self.dir.display().to_string(),
            "accept_into": self.accept_into.display().to_string(),
            "sample": report["sample"],
            "suggestions": suggestions,
            "skipped": report["skipped"],
        }))
    }

    fn pending_owner(&self, id: &str) -> Result<String, ReviewError> {
        let (suggestion, file) = self.find(&self.report()?, id)?;
        if let Some(why) = self.decided(id, &file, &self.running())? {
            return Err(ReviewError::Conflict(why));
        }
        Ok(suggestion["owner"].as_str().unwrap_or_default().to_string())
    }

    fn accept(&self, id: &str) -> Result<String, ReviewError> {
        let _one_at_a_time = self.deciding.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (_, file) = self.find(&self.report()?, id)?;
        if let Some(why) = self.decided(id, &file, &self.running())? {
            return Err(ReviewError::Conflict(why));
        }
        let text = self.rule_file(&file)?;
        let target = self.accept_into.join(&file);
        let (rule, problems) = fundguard_rules::parse_rule(Arc::from(target.display().to_string()), &text);
        let rule = match rule {
            Some(rule) if problems.is_empty() => rule,
            _ => {
                let problems: Vec<String> = problems.iter().map(ToString::to_string).collect();
                return Err(ReviewError::Invalid(format!("{file} does not load: {}", problems.join("; "))));
            }
        };
        if rule.id != id {
            return Err(ReviewError::Invalid(format!("{file} defines rule `{}`, not `{id}`", rule.id)));
        }
        self.catalog
            .check_addition(&rule, &self.schemas)
            .map_err(|why| ReviewError::Invalid(format!("{file} cannot run beside the current rules: {why}")))?;
        std::fs::create_dir_all(&self.accept_into)
            .and_then(|()| write_whole(&target, &text))
            .map_err(|e| ReviewError::Failed(format!("writing {}: {e}", target.display())))?;
        self.catalog.changed.notify_one();
        Ok(target.display().to_string())
    }

    fn reject(&self, id: &str, reason: &str) -> Result<(), ReviewError> {
        let _one_at_a_time = self.deciding.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let (_, file) = self.find(&self.report()?, id)?;
        if let Some(why) = self.decided(id, &file, &self.running())? {
            return Err(ReviewError::Conflict(why));
        }
        let mut rejected = self.rejected()?;
        rejected.insert(id.to_string(), reason.to_string());
        let path = self.dir.join(REJECTED_FILE);
        // A JSON string is a YAML double-quoted scalar: any id or reason stays one line.
        let quote = |s: &str| serde_json::to_string(s).unwrap_or_default();
        let text: String = rejected.iter().map(|(id, why)| format!("{}: {}\n", quote(id), quote(why))).collect();
        write_whole(&path, &text).map_err(|e| ReviewError::Failed(format!("writing {}: {e}", path.display())))
    }
}
