//! The rule file as written: serde types that mirror the YAML one to one.
//!
//! Every struct denies unknown keys, and every value a later check may complain
//! about is [`Spanned`], so the complaint can point at its line and column.
//! These types are only the input to validation ([`crate::Rule`] is what runs).

use std::collections::BTreeMap;

use fundguard_core::Severity;
use serde::Deserialize;
use serde_saphyr::Spanned;

/// One rule file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleFile {
    pub id: Spanned<String>,
    #[serde(default)]
    pub description: String,
    pub owner: Spanned<String>,
    pub severity: Spanned<Severity>,
    /// Overrides the severity's default detection deadline.
    #[serde(default)]
    pub deadline: Option<Spanned<String>>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default = "yes")]
    pub enabled: bool,
    /// `live` (the default) or `shadow`: evaluated and recorded, never notified.
    #[serde(default)]
    pub mode: Mode,
    /// The body: exactly one rule kind must be present.
    #[serde(default)]
    pub check: Option<Spanned<CheckBody>>,
    #[serde(default)]
    pub reconcile: Option<Spanned<ReconcileBody>>,
    #[serde(default)]
    pub transition: Option<Spanned<TransitionBody>>,
    #[serde(default)]
    pub timeout: Option<Spanned<TimeoutBody>>,
    #[serde(default)]
    pub rate: Option<Spanned<RateBody>>,
    #[serde(default)]
    pub sql: Option<Spanned<SqlBody>>,
    #[serde(default)]
    pub script: Option<Spanned<ScriptBody>>,
    /// Stateful rules: how late an event may arrive and still be ordered by event time.
    #[serde(default)]
    pub allowed_lateness: Option<Spanned<String>>,
    /// Stateful rules: how long idle per-key state is kept.
    #[serde(default)]
    pub state_ttl: Option<Spanned<String>>,
    /// Stateful rules: the state budget in bytes; above it the rule raises an overload finding.
    #[serde(default)]
    pub max_state_bytes: Option<u64>,
    /// The key columns that identify an alert (default: the whole key), e.g. one alert per
    /// merchant for a rule keyed by merchant and order.
    #[serde(default)]
    pub fingerprint: Option<Spanned<Vec<String>>>,
    /// A containment action run when the rule's first finding opens an alert.
    #[serde(default)]
    pub action: Option<Spanned<ActionBody>>,
    /// Reference data the rule's expressions read as `lookup.<name>.<column>`: per lookup,
    /// how a row finds its reference row (the data comes from `lookups:` in fundguard.yaml).
    #[serde(default)]
    pub lookups: BTreeMap<String, Spanned<LookupBody>>,
    #[serde(default)]
    pub tests: Vec<TestCase>,
}

/// One lookup a rule reads.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LookupBody {
    /// The reference row to read: lookup column → SQL over the event row giving its value,
    /// e.g. `{ merchant_id: after.merchant_id }` (several columns for a composite key).
    #[serde(rename = "match")]
    pub matches: Spanned<BTreeMap<String, Spanned<String>>>,
    /// `report` (default), `skip` or `judge`: what a row whose key has no reference row is.
    #[serde(default)]
    pub missing: Option<Spanned<String>>,
}

/// `action:` — an HTTP call that contains the loss (see `fundguard_core::Action`).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActionBody {
    pub name: Spanned<String>,
    pub url: Spanned<String>,
    #[serde(default)]
    pub method: Option<Spanned<String>>,
    /// `run` (default), `dry_run` or `approval`.
    #[serde(default)]
    pub mode: Option<Spanned<String>>,
    #[serde(default)]
    pub secret_env: Option<String>,
}

fn yes() -> bool {
    true
}

/// A `check` rule: every change event of the watched tables that passes `when` must satisfy `assert`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckBody {
    pub tables: Vec<Spanned<String>>,
    #[serde(default)]
    pub when: Option<Spanned<String>>,
    pub assert: Spanned<String>,
    /// Finding key: output name → SQL expression.
    #[serde(default)]
    pub key: Option<BTreeMap<String, Spanned<String>>>,
    #[serde(default)]
    pub message: Option<Spanned<String>>,
    #[serde(default)]
    pub money: Option<MoneyBody>,
    /// `every_row` (default) or `per_key`: report each violating row, or only a key's first.
    #[serde(default)]
    pub once: Option<Spanned<String>>,
}

/// Money at risk: SQL expressions for the amount and (optionally) the currency.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoneyBody {
    pub amount: Spanned<String>,
    #[serde(default)]
    pub currency: Option<Spanned<String>>,
    /// `auto` (default), `minor` or `major`: the unit `amount` is in.
    #[serde(default)]
    pub unit: Option<Spanned<String>>,
}

/// One side of a reconciliation.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SideBody {
    pub table: Spanned<String>,
    pub key: Spanned<String>,
    #[serde(default)]
    pub when: Option<Spanned<String>>,
    /// When true, a row of the other side without a row of this side is a finding.
    #[serde(default = "yes")]
    pub required: bool,
}

/// A `reconcile` rule: rows of two streams matched by key within a window.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReconcileBody {
    pub left: Spanned<SideBody>,
    pub right: Spanned<SideBody>,
    /// Further sides by name, read through aggregates (`sum(refunds.amount)`): an expected
    /// amount that combines three or more tables.
    #[serde(default)]
    pub sides: BTreeMap<String, Spanned<SideBody>>,
    pub within: Spanned<String>,
    /// `text` (default) or `integer`: how keys of both sides are normalised before matching.
    #[serde(default)]
    pub key_type: Option<Spanned<String>>,
    /// `one_to_one` (default), `one_to_many` (many rows on the right) or `many_to_many`.
    #[serde(default)]
    pub cardinality: Option<Spanned<String>>,
    /// Name → `sum|count|min|max(left|right.column)`, usable in `expect` as `agg.<name>`.
    #[serde(default)]
    pub aggregates: BTreeMap<String, Spanned<String>>,
    #[serde(default)]
    pub expect: Option<Spanned<String>>,
    #[serde(default)]
    pub tolerance: Option<Spanned<ToleranceBody>>,
    /// `on_match` (default for one_to_one and one_to_many) or `at_deadline` (default for many_to_many).
    #[serde(default)]
    pub evaluate: Option<Spanned<String>>,
    /// Report a second row on a side that matches one row only (default true).
    #[serde(default = "yes")]
    pub duplicates: bool,
    /// `pair` (default) or `missing`: what a row arriving after its key's window closed is.
    #[serde(default)]
    pub late_counterpart: Option<Spanned<String>>,
    #[serde(default)]
    pub message: Option<Spanned<String>>,
    /// Money at risk: an expression over `left.`, `right.` and `agg.`.
    #[serde(default)]
    pub money: Option<MoneyBody>,
}

/// Amounts that must agree within a tolerance: |left − right| ≤ max(absolute, relative × |right|).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ToleranceBody {
    pub left: Spanned<String>,
    pub right: Spanned<String>,
    #[serde(default)]
    pub absolute: Option<Spanned<String>>,
    #[serde(default)]
    pub relative: Option<Spanned<String>>,
}

/// A `transition` rule: a per-entity state machine over a status column.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransitionBody {
    pub table: Spanned<String>,
    #[serde(default)]
    pub key: Option<Spanned<String>>,
    pub status: Spanned<String>,
    #[serde(default)]
    pub when: Option<Spanned<String>>,
    /// Allowed first states (a new entity in another state is a finding).
    #[serde(default)]
    pub initial: Option<Vec<String>>,
    /// State → the states it may move to; when given, every other move is a finding.
    #[serde(default)]
    pub allowed: Option<BTreeMap<String, Vec<String>>>,
    /// Moves that are always findings, written `FROM -> TO`.
    #[serde(default)]
    pub forbidden: Vec<Spanned<String>>,
    /// Fields that must not change once a state is reached.
    #[serde(default)]
    pub frozen: Vec<FrozenBody>,
    #[serde(default)]
    pub money: Option<MoneyBody>,
}

/// `once: STATE` → `fields` never change again.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FrozenBody {
    pub once: Vec<String>,
    pub fields: Vec<String>,
}

/// A `timeout` rule: an entity entering a state must leave it within a duration.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutBody {
    pub table: Spanned<String>,
    #[serde(default)]
    pub key: Option<Spanned<String>>,
    pub enter: Spanned<String>,
    pub exit: Spanned<String>,
    pub within: Spanned<String>,
    #[serde(default)]
    pub money: Option<MoneyBody>,
}

/// A `rate` rule: windowed counts and ratios per group.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateBody {
    pub table: Spanned<String>,
    #[serde(default)]
    pub when: Option<Spanned<String>>,
    pub group: Spanned<String>,
    /// Rows counted in the numerator of the ratio; without it the rule watches counts.
    #[serde(default)]
    pub numerator: Option<Spanned<String>>,
    pub window: Spanned<String>,
    /// Sliding windows: a window of `window` judged every `slide` (default: tumbling).
    #[serde(default)]
    pub slide: Option<Spanned<String>>,
    #[serde(default)]
    pub min_volume: u64,
    #[serde(default)]
    pub max_ratio: Option<Spanned<String>>,
    #[serde(default)]
    pub max_count: Option<u64>,
    #[serde(default)]
    pub baseline: Option<BaselineBody>,
}

/// Relative threshold against a group's own history: the previous `windows` judged windows
/// (a moving baseline) or the same window of each of the previous `days` (a seasonal one);
/// a window is above it when its metric exceeds `factor` × the mean or the mean plus
/// `z_score` standard deviations.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BaselineBody {
    #[serde(default)]
    pub windows: Option<Spanned<u32>>,
    #[serde(default)]
    pub days: Option<Spanned<u32>>,
    #[serde(default)]
    pub factor: Option<Spanned<String>>,
    #[serde(default)]
    pub z_score: Option<Spanned<String>>,
    /// Windows of history needed before the baseline judges (default 1).
    #[serde(default)]
    pub min_history: Option<u32>,
}

/// A `script` rule: a Rhai script run for every row of its tables that passes `when`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptBody {
    /// One table (`table:`) or several (`tables:`).
    #[serde(default)]
    pub table: Option<Spanned<String>>,
    #[serde(default)]
    pub tables: Option<Spanned<Vec<Spanned<String>>>>,
    /// An SQL prefilter, as a check's `when`: the script runs only where it is TRUE.
    #[serde(default)]
    pub when: Option<Spanned<String>>,
    /// Finding key, and the key of the script's `state`: output name → SQL expression.
    #[serde(default)]
    pub key: Option<BTreeMap<String, Spanned<String>>>,
    /// The script (Rhai).
    pub source: Spanned<String>,
    #[serde(default)]
    pub limits: Option<Spanned<LimitsBody>>,
}

/// Per-call limits of a script; each one left out takes its default.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LimitsBody {
    #[serde(default)]
    pub operations: Option<Spanned<u64>>,
    #[serde(default)]
    pub string_size: Option<Spanned<u64>>,
    #[serde(default)]
    pub array_size: Option<Spanned<u64>>,
    #[serde(default)]
    pub map_size: Option<Spanned<u64>>,
    #[serde(default)]
    pub call_levels: Option<Spanned<u64>>,
    #[serde(default)]
    pub expr_depth: Option<Spanned<u64>>,
    #[serde(default)]
    pub reports: Option<Spanned<u64>>,
}

/// A test inside a rule file: events in, findings expected.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    pub name: Spanned<String>,
    /// The reference rows each lookup holds during the test: lookup name → rows.
    #[serde(default)]
    pub lookups: BTreeMap<String, Spanned<Vec<BTreeMap<String, serde_json::Value>>>>,
    pub events: Vec<Spanned<TestEventBody>>,
    #[serde(default)]
    pub expect: Vec<ExpectBody>,
}

/// One event of a test timeline.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TestEventBody {
    /// Offset from the test's start (`0s`, `2m`) or an RFC 3339 timestamp.
    pub at: Spanned<String>,
    pub table: String,
    pub op: Spanned<String>,
    #[serde(default)]
    pub before: Option<BTreeMap<String, serde_json::Value>>,
    #[serde(default)]
    pub after: Option<BTreeMap<String, serde_json::Value>>,
}

/// A finding a test expects.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExpectBody {
    pub key: BTreeMap<String, serde_json::Value>,
    /// When given, the finding's message must equal it.
    #[serde(default)]
    pub message: Option<String>,
}

/// A `sql` rule: a scheduled query over warehouse tables; every row it returns is a finding.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlBody {
    /// DataFusion SQL; `{{ ds }}` (and `{{ ds_nodash }}`) is the business date of the run.
    pub query: Spanned<String>,
    /// A cron pattern (5 fields, or 6 with seconds); without one the rule runs only on demand.
    #[serde(default)]
    pub schedule: Option<Spanned<String>>,
    /// The IANA time zone of the schedule and of the business date (default UTC).
    #[serde(default)]
    pub timezone: Option<Spanned<String>>,
    /// Result columns that identify the finding (and its alert).
    pub key: Spanned<Vec<String>>,
    /// Result columns shown as evidence (default: every column).
    #[serde(default)]
    pub evidence: Option<Spanned<Vec<String>>>,
    #[serde(default)]
    pub money: Option<SqlMoneyBody>,
    /// A MiniJinja template over the row's columns and `ds`.
    #[serde(default)]
    pub message: Option<Spanned<String>>,
    /// How long one run may take (default 10m).
    #[serde(default)]
    pub timeout: Option<Spanned<String>>,
    /// At most this many findings per run (default 1000); the run reports how many it left out.
    #[serde(default)]
    pub max_findings: Option<Spanned<u64>>,
    /// The memory one run may hold in DataFusion's memory pool (default 1GiB), e.g. `512MiB`.
    #[serde(default)]
    pub memory_limit: Option<Spanned<String>>,
    /// Schedules missed while fundguard was down: `all` (default), `latest` or `none`.
    #[serde(default)]
    pub catch_up: Option<Spanned<String>>,
}

/// Money at risk of a `sql` rule: result column names.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SqlMoneyBody {
    pub amount: Spanned<String>,
    #[serde(default)]
    pub currency: Option<Spanned<String>>,
    /// `auto` (default), `minor` or `major`: the unit `amount` is in.
    #[serde(default)]
    pub unit: Option<Spanned<String>>,
}

/// How a rule's findings are used.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Findings become alerts and are notified.
    #[default]
    Live,
    /// Evaluated live, findings written to findings files and counted in the rule's health,
    /// but never made alerts or notified: the step between a backtest and paging people.
    Shadow,
}
