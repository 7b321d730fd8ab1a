//! Every suggestion is held to what a person's rule is held to: its file is read by the real
//! rule loader, compiled by the engine and its tests are run ([`check`]); then the caller
//! replays the sample through the engine with the checked rules and hands each finding to
//! a [`Backtest`], which counts them per rule and day, keeps example keys and ranks noisy
//! suggestions down. Suggested `sql` rules are run by the warehouse crate's own runner over
//! the sample's latest rows ([`sql`]), once per business date of the sample.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use fundguard_core::{Finding, TableSchemas, Value};
use fundguard_engine::{Engine, rows_batch, run_rule_tests};
use fundguard_rules::{Rule, RuleBody, parse_rule};
use fundguard_warehouse::Warehouse;
use serde::Serialize;

use crate::profile::Profile;
use crate::render::rule_file;
use crate::suggest::Suggestion;

/// A suggestion whose file loads, compiles and passes its tests.
#[derive(Debug, Clone)]
pub struct Checked {
    pub suggestion: Suggestion,
    /// The rule file's text.
    pub file: String,
    pub rule: Rule,
}

/// A suggestion that failed one of those, and why (a bug of the suggester, reported
/// rather than written).
#[derive(Debug, Clone, Serialize)]
pub struct Rejected {
    pub id: String,
    pub kind: &'static str,
    pub reason: String,
}

/// Renders, loads, compiles and tests every suggestion.
pub fn check(suggestions: Vec<Suggestion>, schemas: &TableSchemas) -> (Vec<Checked>, Vec<Rejected>) {
    let mut checked = Vec::new();
    let mut rejected = Vec::new();
    for s in suggestions {
        let file = rule_file(&s);
        let reject = |reason: String| Rejected { id: s.id.clone(), kind: s.kind, reason };
        let (rule, problems) = parse_rule(Arc::from(format!("{}.yaml", s.id)), &file);
        let Some(rule) = rule.filter(|_| problems.is_empty()) else {
            let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
            rejected.push(reject(format!("the rule file does not load: {}", list.join("; "))));
            continue;
        };
        let sql_problems = fundguard_warehouse::check_rules(std::slice::from_ref(&rule));
        if !sql_problems.is_empty() {
            let list: Vec<String> = sql_problems.iter().map(ToString::to_string).collect();
            rejected.push(reject(format!("the query does not check: {}", list.join("; "))));
            continue;
        }
        if let Err(problems) = Engine::new(std::slice::from_ref(&rule), schemas) {
            let list: Vec<String> = problems.iter().map(ToString::to_string).collect();
            rejected.push(reject(format!("the rule does not compile: {}", list.join("; "))));
            continue;
        }
        let failed: Vec<String> = run_rule_tests(std::slice::from_ref(&rule), schemas)
            .into_iter()
            .filter(|o| !o.passed())
            .map(|o| {
                format!(
                    "test {:?}: {} missing, {} unexpected{}",
                    o.test,
                    o.missing.len(),
                    o.unexpected.len(),
                    o.error.map(|e| format!(", {e}")).unwrap_or_default()
                )
            })
            .collect();
        if !failed.is_empty() {
            rejected.push(reject(format!("its tests fail: {}", failed.join("; "))));
            continue;
        }
        checked.push(Checked { suggestion: s, file, rule });
    }
    (checked, rejected)
}

/// Runs every suggested `sql` rule over the sample as a warehouse would hold it after the
/// sample — the latest image of every row, one in-memory table per change-log table, named
/// as the change log names it — for every UTC business date the sample covers, with the
/// warehouse crate's runner (read-only checks, timeout, findings cap). A failed run counts
/// as an evaluation error: the suggestion is ranked noisy.
pub fn sql(checked: &[Checked], profile: &Profile, schemas: &TableSchemas, backtest: &mut Backtest) {
    let rules: Vec<&Rule> = checked.iter().map(|c| &c.rule).filter(|r| matches!(r.body, RuleBody::Sql(_))).collect();
    let (Some(first), Some(last)) = (profile.first, profile.last) else { return };
    if rules.is_empty() {
        return;
    }
    let fail = |backtest: &mut Backtest, error: String| {
        for rule in &rules {
            backtest.errors(&rule.id, 1, Some(error.clone()));
        }
    };
    let mut tables = Vec::new();
    for (name, rows) in &profile.latest {
        match rows_batch(rows, schemas.tables.get(name)) {
            Ok(batch) => tables.push((name.clone(), batch)),
            Err(e) => return fail(backtest, format!("{name}: {e}")),
        }
    }
    let warehouse = match Warehouse::in_memory(tables) {
        Ok(w) => w,
        Err(e) => return fail(backtest, e.to_string()),
    };
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_time().build() {
        Ok(r) => r,
        Err(e) => return fail(backtest, format!("no runtime for the queries: {e}")),
    };
    let day = |t: fundguard_core::EventTime| {
        chrono::DateTime::from_timestamp_micros(t.as_micros()).map(|t| t.date_naive()).unwrap_or_default()
    };
    // The sample's end stamps the runs: no wall clock.
    let end = chrono::DateTime::from_timestamp_micros(last.as_micros()).unwrap_or_default();
    let now = move || end;
    for rule in rules {
        for ds in day(first).iter_days().take_while(|d| *d <= day(last)) {
            let outcome = runtime.block_on(fundguard_warehouse::run(&warehouse, rule, ds, None, &now));
            if outcome.record.status != fundguard_warehouse::RunStatus::Ok {
                backtest.errors(&rule.id, 1, outcome.record.error.clone());
                continue;
            }
            for finding in &outcome.findings {
                backtest.record_on(finding, ds.to_string());
            }
        }
    }
}

/// What one suggested rule raised over the sample.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RuleResult {
    pub findings: u64,
    /// UTC day → findings dated that day.
    pub per_day: BTreeMap<String, u64>,
    /// The keys of the first findings.
    pub examples: Vec<BTreeMap<String, Value>>,
    /// Evaluation errors the engine counted.
    pub errors: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

impl RuleResult {
    pub fn worst_day(&self) -> u64 {
        self.per_day.values().copied().max().unwrap_or(0)
    }
}

/// Findings of the replay, per rule.
#[derive(Debug, Clone, Default)]
pub struct Backtest {
    results: HashMap<String, RuleResult>,
}

/// Example keys kept per rule.
const EXAMPLES: usize = 5;
/// Findings a day at which a suggestion counts as noisy.
pub const NOISY_PER_DAY: u64 = 10;

impl Backtest {
    pub fn new() -> Self {
        Backtest::default()
    }

    pub fn record(&mut self, finding: &Finding) {
        let day = chrono::DateTime::from_timestamp_micros(finding.event_time.as_micros())
            .map_or_else(|| "unknown".to_string(), |t| t.date_naive().to_string());
        self.record_on(finding, day);
    }

    /// A finding counted on a given day (a sql rule's business date: its findings are dated
    /// at the end of that day).
    pub fn record_on(&mut self, finding: &Finding, day: String) {
        let r = self.results.entry(finding.rule.clone()).or_default();
        r.findings += 1;
        *r.per_day.entry(day).or_default() += 1;
        if r.examples.len() < EXAMPLES {
            r.examples.push(finding.key.clone());
        }
    }

    /// Evaluation errors of a rule (from the engine's statistics).
    pub fn errors(&mut self, rule: &str, errors: u64, last: Option<String>) {
        if errors > 0 {
            let r = self.results.entry(rule.to_string()).or_default();
            r.errors += errors;
            r.last_error = last;
        }
    }

    pub fn result(&self, rule: &str) -> RuleResult {
        self.results.get(rule).cloned().unwrap_or_default()
    }
}

/// How a suggestion fared: quiet ones are recommended, ones that raised findings on the
/// sample are for review (the findings may be real), noisy ones rank last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Recommended,
    Review,
    Noisy,
}

/// The verdict and the confidence after the backtest.
pub fn rank(confidence: u8, result: &RuleResult) -> (Verdict, u8) {
    if result.errors > 0 {
        return (Verdict::Noisy, confidence / 4);
    }
    match result.worst_day() {
        0 => (Verdict::Recommended, confidence),
        n if n < NOISY_PER_DAY => (Verdict::Review, confidence.saturating_sub(20)),
        _ => (Verdict::Noisy, confidence / 4),
    }
}
