//! The rule catalogue of a running fundguard: which rules run, which are switched off
//! from the console, and the one place rules are loaded into an engine.
//!
//! Rules switched off are remembered in `DATA_DIR/disabled-rules.json`, so a restart
//! keeps them off; switching one triggers the same validated reload as editing a file.
//! Shadow rules an admin promoted to live are remembered the same way, in
//! `DATA_DIR/promoted-rules.json`.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use fundguard_engine::Engine;
use fundguard_rules::{Rule, load_paths};
use fundguard_server::{RuleCatalog, RuleInfo};

use crate::config::Config;

pub struct Catalog {
    rules: Vec<PathBuf>,
    info: Mutex<Vec<RuleInfo>>,
    disabled: Mutex<BTreeSet<String>>,
    disabled_file: PathBuf,
    promoted: Mutex<BTreeSet<String>>,
    promoted_file: PathBuf,
    /// Every rule of the last rule set that validated, as it runs (switched-off ones marked
    /// disabled, promoted ones live).
    loaded: Mutex<Vec<Rule>>,
    /// Woken when a rule is switched on or off: the reload task rebuilds the engine.
    pub changed: Arc<tokio::sync::Notify>,
    /// Where lookups come from: every engine built keeps its stream lookups current.
    lookups: Vec<crate::config::LookupConfig>,
}

impl Catalog {
    pub fn new(config: &Config) -> Catalog {
        let remembered = |file: &PathBuf| -> BTreeSet<String> {
            std::fs::read_to_string(file).ok().and_then(|text| serde_json::from_str(&text).ok()).unwrap_or_default()
        };
        let disabled_file = config.data_dir.join("disabled-rules.json");
        let promoted_file = config.data_dir.join("promoted-rules.json");
        Catalog {
            rules: config.rules.clone(),
            info: Mutex::new(Vec::new()),
            disabled: Mutex::new(remembered(&disabled_file)),
            disabled_file,
            promoted: Mutex::new(remembered(&promoted_file)),
            promoted_file,
            loaded: Mutex::new(Vec::new()),
            changed: Arc::new(tokio::sync::Notify::new()),
            lookups: config.lookups.clone(),
        }
    }

    /// The `sql` rules (switched-off ones marked disabled), as last loaded.
    pub fn scheduled_rules(&self) -> Vec<Rule> {
        self.loaded_rules().into_iter().filter(|r| !r.body.is_streaming()).collect()
    }

    /// Every rule as last loaded (switched-off ones marked disabled, promoted ones live).
    pub fn loaded_rules(&self) -> Vec<Rule> {
        self.loaded.lock().map(|s| s.clone()).unwrap_or_default()
    }

    fn disabled(&self) -> BTreeSet<String> {
        self.disabled.lock().map(|d| d.clone()).unwrap_or_default()
    }

    /// Loads and validates the rule files (minus the rules switched off) into an engine;
    /// every problem, one per line, when they do not validate.
    pub fn build_engine(&self, schemas: &fundguard_core::TableSchemas) -> Result<Engine, String> {
        let (mut rules, mut problems) = load_paths(&self.rules);
        problems.extend(fundguard_warehouse::check_rules(&rules));
        if problems.is_empty() {
            let disabled = self.disabled();
            let promoted = self.promoted.lock().map(|p| p.clone()).unwrap_or_default();
            for rule in &mut rules {
                if disabled.contains(&rule.id) {
                    rule.enabled = false;
                }
                if promoted.contains(&rule.id) {
                    rule.promote();
                }
            }
            match Engine::new(&rules, schemas) {
                Ok(mut engine) => {
                    if let Err(e) = crate::lookups::check_declared(&engine, &self.lookups, true) {
                        return Err(format!("{e:#}"));
                    }
                    crate::lookups::attach_streams(&mut engine, &self.lookups);
                    let info = rules
                        .iter()
                        .map(|r| RuleInfo {
                            id: r.id.clone(),
                            description: r.description.clone(),
                            owner: r.owner.clone(),
                            severity: r.severity,
                            kind: r.body.kind().to_string(),
                            tags: r.tags.to_vec(),
                            enabled: r.enabled,
                            mode: if r.mode == fundguard_rules::Mode::Shadow { "shadow" } else { "live" }.to_string(),
                        })
                        .collect();
                    if let Ok(mut slot) = self.info.lock() {
                        *slot = info;
                    }
                    if let Ok(mut slot) = self.loaded.lock() {
                        *slot = rules;
                    }
                    return Ok(engine);
                }
                Err(mut more) => problems.append(&mut more),
            }
        }
        Err(problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))
    }
}

impl Catalog {
    /// Checks that `rule` would load, compile and pass its tests beside the rule files as
    /// they are now (ids unique, columns known, SQL valid): what accepting a suggestion
    /// asks before its file is written among them.
    pub fn check_addition(&self, rule: &Rule, schemas: &fundguard_core::TableSchemas) -> Result<(), String> {
        let (mut rules, mut problems) = load_paths(&self.rules);
        if let Some(existing) = rules.iter().find(|r| r.id == rule.id) {
            return Err(format!("a rule `{}` already runs (defined at {})", rule.id, existing.at));
        }
        rules.push(rule.clone());
        problems.extend(fundguard_warehouse::check_rules(&rules));
        if problems.is_empty()
            && let Err(more) = Engine::new(&rules, schemas)
        {
            problems = more;
        }
        if !problems.is_empty() {
            return Err(problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"));
        }
        let failed: Vec<String> = fundguard_engine::run_rule_tests(std::slice::from_ref(rule), schemas)
            .iter()
            .filter_map(fundguard_engine::TestOutcome::failure)
            .collect();
        if failed.is_empty() { Ok(()) } else { Err(failed.join("\n")) }
    }
}

impl RuleCatalog for Catalog {
    fn rules(&self) -> Vec<RuleInfo> {
        self.info.lock().map(|i| i.clone()).unwrap_or_default()
    }

    fn set_enabled(&self, id: &str, enabled: bool) -> Result<(), String> {
        if !self.rules().iter().any(|r| r.id == id) {
            return Err(format!("no rule `{id}`: GET /api/v1/rules lists them"));
        }
        let snapshot = {
            let mut disabled = self.disabled.lock().map_err(|_| "the rule catalogue is unavailable".to_string())?;
            if enabled {
                disabled.remove(id);
            } else {
                disabled.insert(id.to_string());
            }
            disabled.clone()
        };
        let text = serde_json::to_string_pretty(&snapshot).unwrap_or_default();
        std::fs::write(&self.disabled_file, text)
            .map_err(|e| format!("remembering the switch in {}: {e}", self.disabled_file.display()))?;
        self.changed.notify_one();
        Ok(())
    }

    fn promote(&self, id: &str) -> Result<(), String> {
        // Promoting twice is promoting once (the second may come before the reload).
        if !self.rules().iter().any(|r| r.id == id) {
            return Err(format!("no rule `{id}`: GET /api/v1/rules lists them"));
        }
        let snapshot = {
            let mut promoted = self.promoted.lock().map_err(|_| "the rule catalogue is unavailable".to_string())?;
            promoted.insert(id.to_string());
            promoted.clone()
        };
        let text = serde_json::to_string_pretty(&snapshot).unwrap_or_default();
        std::fs::write(&self.promoted_file, text)
            .map_err(|e| format!("remembering the promotion in {}: {e}", self.promoted_file.display()))?;
        self.changed.notify_one();
        Ok(())
    }
}
