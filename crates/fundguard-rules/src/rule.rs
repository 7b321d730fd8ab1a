//! Validated rules: what the engine compiles and runs.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use fundguard_core::{Action, ChangeEvent, Decimal, MoneyUnit, Severity, Value};

pub use crate::file::Mode;
use crate::{Location, ScriptRule};

/// A SQL expression with where it was written, so the engine's errors can point at it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expr {
    pub sql: String,
    pub at: Location,
}

/// A validated rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub id: String,
    pub description: String,
    pub owner: String,
    pub severity: Severity,
    /// The detection deadline: the severity's default unless the file sets one.
    pub deadline: Duration,
    /// Labels for people and for notification routes; shared with every finding.
    pub tags: Arc<[String]>,
    pub enabled: bool,
    /// `live`, or `shadow`: its findings carry the [`SHADOW_TAG`] and never become alerts.
    pub mode: Mode,
    pub body: RuleBody,
    /// The containment action, shared with every finding.
    pub action: Option<Arc<Action>>,
    /// The key columns that identify an alert; `None`: the whole key.
    pub fingerprint_by: Option<Arc<[String]>>,
    /// Event-time and state settings (used by stateful kinds).
    pub state: StateOptions,
    /// Reference data the rule's expressions read (`lookup.<name>.<column>`).
    pub lookups: Vec<LookupUse>,
    pub tests: Vec<RuleTest>,
    /// Where the rule's `id` is: the rule's own location.
    pub at: Location,
}

/// The tag every finding of a shadow rule carries: sinks that notify leave them out.
pub const SHADOW_TAG: &str = "shadow";

/// A rule's tags as its findings carry them: a shadow rule's gain [`SHADOW_TAG`].
pub(crate) fn tags_for(mut tags: Vec<String>, mode: Mode) -> Arc<[String]> {
    if mode == Mode::Shadow && !tags.iter().any(|t| t == SHADOW_TAG) {
        tags.push(SHADOW_TAG.to_string());
    }
    tags.into()
}

impl Rule {
    /// Makes a shadow rule live (an admin's promotion from the console): its findings
    /// become alerts from now on.
    pub fn promote(&mut self) {
        if self.mode == Mode::Shadow {
            self.mode = Mode::Live;
            self.tags = self.tags.iter().filter(|t| *t != SHADOW_TAG).cloned().collect::<Vec<_>>().into();
        }
    }
}

/// How a rule reads one lookup: which reference row an event row reads, and what a row
/// without one is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LookupUse {
    /// The lookup's name, as `lookups:` in fundguard.yaml declares it.
    pub name: String,
    /// Lookup column → SQL over the event row: the reference row whose columns equal these
    /// values (keys normalised as reconcile's `key_type: integer`: `"42"` meets `42`).
    pub matches: Vec<(String, Expr)>,
    pub missing: MissingLookup,
    pub at: Location,
}

impl LookupUse {
    /// The lookup columns matched on, in order.
    pub fn match_columns(&self) -> Vec<String> {
        self.matches.iter().map(|(c, _)| c.clone()).collect()
    }
}

/// What a row is whose key finds no reference row (or whose key is NULL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissingLookup {
    /// A finding of its own (`no merchant_rates row for merchant_id=42`); the rule does not
    /// judge the row further.
    Report,
    /// Passed over: the rule does not see the row.
    Skip,
    /// Judged with the lookup's columns NULL (the expressions decide; `lookup.<name>.<match
    /// column> IS NULL` tells a missing row apart). Not `null`, which YAML reads as no value.
    Judge,
}

/// Event-time and state settings of a stateful rule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StateOptions {
    /// Events may arrive this much later than the newest commit time seen and still
    /// be processed in event-time order.
    pub allowed_lateness: Duration,
    /// Per-key state not touched for this long (in event time) is dropped.
    pub ttl: Duration,
    /// Above this estimate of its state size the rule raises an overload finding.
    pub max_state_bytes: u64,
}

impl Default for StateOptions {
    fn default() -> Self {
        StateOptions {
            allowed_lateness: Duration::from_secs(5),
            ttl: Duration::from_secs(7 * 24 * 3600),
            max_state_bytes: 256 * 1024 * 1024,
        }
    }
}

/// What a rule checks. One variant per rule kind.
#[derive(Debug, Clone)]
pub enum RuleBody {
    Check(CheckRule),
    Reconcile(ReconcileRule),
    Transition(TransitionRule),
    Timeout(TimeoutRule),
    Rate(RateRule),
    /// Scheduled SQL over warehouse tables: not part of the stream.
    Sql(SqlRule),
    /// A sandboxed script per row, with keyed state (`crate::script`).
    Script(ScriptRule),
}

impl RuleBody {
    /// Whether the rule lets only some events through (a `when`, on any side).
    pub fn filters(&self) -> bool {
        match self {
            RuleBody::Check(c) => c.when.is_some(),
            RuleBody::Reconcile(r) => r.sides().any(|(_, s)| s.when.is_some()),
            RuleBody::Transition(t) => t.when.is_some(),
            RuleBody::Rate(r) => r.when.is_some(),
            RuleBody::Script(s) => s.when.is_some(),
            RuleBody::Timeout(_) | RuleBody::Sql(_) => false,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            RuleBody::Check(_) => "check",
            RuleBody::Reconcile(_) => "reconcile",
            RuleBody::Transition(_) => "transition",
            RuleBody::Timeout(_) => "timeout",
            RuleBody::Rate(_) => "rate",
            RuleBody::Sql(_) => "sql",
            RuleBody::Script(_) => "script",
        }
    }

    /// Whether the rule runs on the stream (every kind but `sql`).
    pub fn is_streaming(&self) -> bool {
        !matches!(self, RuleBody::Sql(_))
    }

    /// The change-event tables the rule reads, without repeats (none for `sql`).
    pub fn tables(&self) -> Vec<String> {
        let mut tables = match self {
            RuleBody::Check(c) => c.tables.clone(),
            RuleBody::Reconcile(r) => r.sides().map(|(_, s)| s.table.clone()).collect(),
            RuleBody::Transition(t) => vec![t.table.clone()],
            RuleBody::Timeout(t) => vec![t.table.clone()],
            RuleBody::Rate(r) => vec![r.table.clone()],
            RuleBody::Script(s) => s.tables.clone(),
            RuleBody::Sql(_) => Vec::new(),
        };
        let mut seen = std::collections::HashSet::new();
        tables.retain(|t| seen.insert(t.clone()));
        tables
    }
}

/// Which side of a reconciliation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Side {
    Left,
    Right,
    /// One of `sides:`, by its place in [`ReconcileRule::others`]: a further table whose
    /// rows of the key are read through aggregates.
    Other(usize),
}

/// One side of a reconciliation.
#[derive(Debug, Clone)]
pub struct SideSpec {
    pub table: String,
    pub key: Expr,
    pub when: Option<Expr>,
    pub required: bool,
}

/// How keys are normalised before matching, so `"42"` and `42` meet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyType {
    Text,
    Integer,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cardinality {
    OneToOne,
    OneToMany,
    ManyToMany,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AggFunc {
    Sum,
    Count,
    Min,
    Max,
}

/// `func(side.column)`, available in `expect` as `agg.<name>`.
#[derive(Debug, Clone)]
pub struct Aggregate {
    pub name: String,
    pub func: AggFunc,
    pub side: Side,
    /// `None` for `count(side)`.
    pub column: Option<String>,
}

/// When a reconciliation's `expect` is evaluated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evaluate {
    /// Each time a row finds its counterpart (and, with aggregates, each time they change).
    OnMatch,
    /// Once, when the window of the key closes.
    AtDeadline,
}

/// What a row is that arrives for a key whose window has already closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LateCounterpart {
    /// Still paired with the key's rows and judged by `expect` (the window only decides
    /// when a missing counterpart is reported).
    Pair,
    /// Not paired: the key starts anew with this row and its own window, so a counterpart
    /// outside ±`within` of a row counts as missing for both.
    Missing,
}

/// Rows of two streams matched by key within a window.
#[derive(Debug, Clone)]
pub struct ReconcileRule {
    pub left: SideSpec,
    pub right: SideSpec,
    pub within: Duration,
    pub key_type: KeyType,
    pub cardinality: Cardinality,
    pub aggregates: Vec<Aggregate>,
    /// Over `left.<column>`, `right.<column>`, `agg.<name>`; tolerance already folded in.
    pub expect: Option<Expr>,
    pub evaluate: Evaluate,
    pub duplicates: bool,
    pub late_counterpart: LateCounterpart,
    pub message: Option<Expr>,
    pub money: Option<MoneyExprs>,
    /// Further sides (`sides:`), by name: their rows of the key feed aggregates, so
    /// `expect` can combine three or more tables.
    pub others: Vec<(String, SideSpec)>,
}

impl ReconcileRule {
    /// Every side with its spec: left, right, then the others in order.
    pub fn sides(&self) -> impl Iterator<Item = (Side, &SideSpec)> {
        [(Side::Left, &self.left), (Side::Right, &self.right)]
            .into_iter()
            .chain(self.others.iter().enumerate().map(|(i, (_, s))| (Side::Other(i), s)))
    }

    /// A side's spec (an unknown `Other` reads as the right side).
    pub fn side(&self, side: Side) -> &SideSpec {
        match side {
            Side::Left => &self.left,
            Side::Right => &self.right,
            Side::Other(i) => self.others.get(i).map_or(&self.right, |(_, s)| s),
        }
    }

    /// A side's name: `left`, `right` or its name under `sides:`.
    pub fn side_name(&self, side: Side) -> &str {
        match side {
            Side::Left => "left",
            Side::Right => "right",
            Side::Other(i) => self.others.get(i).map_or("right", |(n, _)| n.as_str()),
        }
    }
}

/// A per-entity state machine over a status column.
#[derive(Debug, Clone)]
pub struct TransitionRule {
    pub table: String,
    pub key: Expr,
    pub status: Expr,
    pub when: Option<Expr>,
    pub initial: Option<Vec<String>>,
    pub allowed: Option<BTreeMap<String, Vec<String>>>,
    pub forbidden: Vec<(String, String)>,
    /// (states, fields): once any of the states is reached, the fields never change.
    pub frozen: Vec<(Vec<String>, Vec<String>)>,
    pub money: Option<MoneyExprs>,
}

/// An entity that enters a state must leave it in time.
#[derive(Debug, Clone)]
pub struct TimeoutRule {
    pub table: String,
    pub key: Expr,
    pub enter: Expr,
    pub exit: Expr,
    pub within: Duration,
    pub money: Option<MoneyExprs>,
}

/// Windowed counts and ratios per group.
#[derive(Debug, Clone)]
pub struct RateRule {
    pub table: String,
    pub when: Option<Expr>,
    pub group: Expr,
    pub numerator: Option<Expr>,
    pub window: Duration,
    /// Sliding windows: judged every `slide`, which divides `window` (`None`: tumbling).
    pub slide: Option<Duration>,
    pub min_volume: u64,
    pub max_ratio: Option<Decimal>,
    pub max_count: Option<u64>,
    pub baseline: Option<Baseline>,
}

/// A rate rule's threshold relative to the group's own history.
#[derive(Debug, Clone, PartialEq)]
pub struct Baseline {
    pub history: History,
    /// Above `factor` × the mean.
    pub factor: Option<Decimal>,
    /// Above the mean plus `z_score` standard deviations (population).
    pub z_score: Option<Decimal>,
    /// Windows of history needed before the baseline judges at all.
    pub min_history: u32,
}

/// Which of a group's past windows make its baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum History {
    /// The previous N judged windows (a moving average).
    Windows(u32),
    /// The same window of each of the previous N days (the same hour yesterday, ...).
    Days(u32),
}

impl History {
    /// How many past windows are kept (per slot of the day for `Days`).
    pub fn kept(self) -> u32 {
        match self {
            History::Windows(n) | History::Days(n) => n,
        }
    }
}

/// A row-level invariant on change events.
#[derive(Debug, Clone)]
pub struct CheckRule {
    pub tables: Vec<String>,
    pub when: Option<Expr>,
    pub assert: Expr,
    /// Finding key columns: output name → expression. Never empty.
    pub key: Vec<(String, Expr)>,
    /// A MiniJinja template over `table`, `op`, `commit_time`, `before` and `after`.
    pub message: Option<Expr>,
    pub money: Option<MoneyExprs>,
    pub once: Once,
}

/// Which violating rows of a check are findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Once {
    /// Every violating row (each is a finding; the alert store merges them by key).
    #[default]
    EveryRow,
    /// A key's first violating row; the key is reported again only after it went
    /// `state_ttl` without a violation.
    PerKey,
}

/// A scheduled query whose every result row is a finding.
#[derive(Debug, Clone)]
pub struct SqlRule {
    /// The query text, a MiniJinja template over the run's parameters (`ds`, `ds_nodash`).
    pub query: Expr,
    pub schedule: Option<Schedule>,
    /// Result columns that make the finding's key.
    pub key: Vec<String>,
    /// Result columns shown as evidence; `None`: all of them.
    pub evidence: Option<Vec<String>>,
    /// Result columns with the amount at risk and its currency.
    pub money: Option<(String, Option<String>)>,
    /// The unit of `money`'s amount column.
    pub money_unit: MoneyUnit,
    /// A MiniJinja template over the row's columns and `ds`.
    pub message: Option<Expr>,
    pub timeout: Duration,
    pub max_findings: u64,
    /// Bytes one run may hold in DataFusion's memory pool; a run that needs more fails.
    pub memory_limit: u64,
    pub catch_up: CatchUp,
}

/// When a `sql` rule runs: a cron pattern read in a time zone.
#[derive(Debug, Clone)]
pub struct Schedule {
    pub cron: croner::Cron,
    pub timezone: chrono_tz::Tz,
    /// The pattern as written.
    pub text: String,
}

/// What happens to schedules missed while fundguard was not running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// Every missed run, oldest first.
    All,
    /// Only the most recent missed run.
    Latest,
    /// None: the next run is the next scheduled time.
    Skip,
}

/// Expressions for the money at risk.
#[derive(Debug, Clone)]
pub struct MoneyExprs {
    pub amount: Expr,
    pub currency: Option<Expr>,
    /// The unit `amount` is in; findings carry minor units (docs/rules.md, "Money").
    pub unit: MoneyUnit,
}

/// A test from a rule file.
#[derive(Debug, Clone)]
pub struct RuleTest {
    pub name: String,
    /// Reference rows per lookup during the test.
    pub lookups: Vec<(String, Vec<fundguard_core::Row>)>,
    pub events: Vec<TestEvent>,
    pub expect: Vec<ExpectedFinding>,
    pub at: Location,
}

/// A test event, already turned into a change event.
#[derive(Debug, Clone)]
pub struct TestEvent {
    pub event: ChangeEvent,
    pub at: Location,
}

/// A finding a test expects: its key and, optionally, its exact message.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpectedFinding {
    pub key: Vec<(String, Value)>,
    pub message: Option<String>,
}
