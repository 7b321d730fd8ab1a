//! The three dimensions, measured: (a) every money field → the rules that check it, (b)
//! every money table with a status column → transition, timeout per intermediate state,
//! failure-rate rules, (c) every relation between money tables → reconciled or not, and in
//! which direction. Overall and per owner.
//!
//! Everything goes through hash indexes built once (table name → table, (table, column) →
//! rules, table → rules), so the cost grows with the size of the schema plus the size of
//! the rules, never with their product: 5,000 tables × 40 columns and 1,000 rules is a few
//! hundred thousand lookups.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde::Serialize;

use crate::classify::{Class, Classification, classify};
use crate::overrides::Overrides;
use crate::rules::{MetricUse, RuleCoverage};
use crate::schema::Catalog;

/// What is measured.
pub struct Input<'a> {
    pub catalog: &'a Catalog,
    pub rules: &'a [RuleCoverage],
    pub overrides: &'a Overrides,
    /// (table, column) in lower case that a migration adds (`--diff`): reported as new.
    pub new_columns: &'a HashSet<(String, String)>,
}

/// Covered out of total, and the percentage (100 when there is nothing to cover).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Figure {
    pub covered: usize,
    pub total: usize,
}

impl Figure {
    fn add(&mut self, covered: bool) {
        self.total += 1;
        self.covered += usize::from(covered);
    }

    /// Tenths of a percent, rounded down: exact, so a gate at 80 % never passes 79.99 %.
    pub fn permille(&self) -> usize {
        (self.covered * 1000).checked_div(self.total).unwrap_or(1000)
    }

    /// `87.5`.
    pub fn percent_text(&self) -> String {
        let p = self.permille();
        format!("{}.{}", p / 10, p % 10)
    }
}

/// One figure per dimension.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Dimensions {
    pub field: Figure,
    pub metric: Figure,
    pub cross_system: Figure,
}

/// A field that needs no rule, and who said so.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Waived {
    pub reason: String,
    pub owner: String,
}

/// One classified column.
#[derive(Debug, Clone, Serialize)]
pub struct ColumnReport {
    pub table: String,
    pub column: String,
    pub data_type: String,
    pub owner: String,
    #[serde(flatten)]
    pub classification: Classification,
    /// Whether it carries money (amount, currency, unit, rate) and so needs a rule.
    pub money_field: bool,
    pub covered_by: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub waived: Option<Waived>,
    /// Added by the `--diff` migration.
    pub new: bool,
}

impl ColumnReport {
    /// A money field no rule checks and nobody waived.
    pub fn is_gap(&self) -> bool {
        self.money_field && self.covered_by.is_empty() && self.waived.is_none()
    }
}

/// The business metrics of one money table with a status column.
#[derive(Debug, Clone, Serialize)]
pub struct MetricReport {
    pub table: String,
    pub owner: String,
    pub status_column: String,
    pub transition_rules: Vec<String>,
    /// States to leave in time; `None` when no transition rule (or coverage.yaml) names them.
    pub intermediate_states: Option<Vec<String>>,
    /// State → timeout rules; a state with none is a gap.
    pub timeouts: BTreeMap<String, Vec<String>>,
    /// Timeout rules on the table when its states are unknown.
    pub timeout_rules: Vec<String>,
    pub rate_rules: Vec<String>,
    pub figure: Figure,
}

/// One relation between money tables.
#[derive(Debug, Clone, Serialize)]
pub struct RelationReport {
    pub from: String,
    pub to: String,
    /// The referencing column, if the relation comes from one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<String>,
    /// `foreign key`, `naming` or `coverage.yaml`.
    pub found_by: String,
    pub owner: String,
    pub reconciled_by: Vec<String>,
    /// `from → to` (every `from` row checked for its `to` row) and/or `to → from`.
    pub directions: Vec<String>,
    pub new: bool,
}

/// A rule and what could be read of it.
#[derive(Debug, Clone, Serialize)]
pub struct RuleSummary {
    pub id: String,
    pub kind: &'static str,
    pub owner: String,
    pub columns: usize,
    /// Why its coverage is unknown (it then covers nothing).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub unknown: Option<String>,
    /// Tables it reads that no schema source describes: what it checks there is not counted
    /// (a typo in the rule, or a database left out of `--ddl`/`--dsn`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tables_not_in_schema: Vec<String>,
}

/// Everything measured.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub overall: Dimensions,
    pub owners: BTreeMap<String, Dimensions>,
    pub columns: Vec<ColumnReport>,
    pub metrics: Vec<MetricReport>,
    pub relations: Vec<RelationReport>,
    pub rules: Vec<RuleSummary>,
    /// DDL statements that could not be read, and other problems of the input.
    pub problems: Vec<String>,
}

impl Report {
    /// Money fields and relations the `--diff` migration adds that no rule covers.
    pub fn new_gaps(&self) -> (Vec<&ColumnReport>, Vec<&RelationReport>) {
        let fields = self.columns.iter().filter(|c| c.new && c.is_gap()).collect();
        let relations = self.relations.iter().filter(|r| r.new && r.reconciled_by.is_empty()).collect();
        (fields, relations)
    }
}

/// Measures the three dimensions.
pub fn measure(input: &Input<'_>) -> Report {
    let catalog = input.catalog;
    let tables = catalog.tables();

    // Rule table names → catalog positions, each resolved once.
    let mut resolved: HashMap<&str, Option<usize>> = HashMap::new();
    fn resolve<'r>(resolved: &mut HashMap<&'r str, Option<usize>>, catalog: &Catalog, name: &'r str) -> Option<usize> {
        *resolved.entry(name).or_insert_with(|| catalog.resolve(name))
    }
    let mut covering: HashMap<(usize, String), Vec<&str>> = HashMap::new();
    let mut rules_on: HashMap<usize, Vec<usize>> = HashMap::new();
    for (i, rule) in input.rules.iter().enumerate() {
        for (table, column) in &rule.checks {
            if let Some(at) = resolve(&mut resolved, catalog, table) {
                let ids = covering.entry((at, column.to_lowercase())).or_default();
                if ids.last() != Some(&rule.id.as_str()) {
                    ids.push(&rule.id);
                }
                rules_on.entry(at).or_default().push(i);
            }
        }
        if let Some(MetricUse::Transition { table, .. } | MetricUse::Timeout { table, .. } | MetricUse::Rate { table }) =
            &rule.metric
            && let Some(at) = resolve(&mut resolved, catalog, table)
        {
            rules_on.entry(at).or_default().push(i);
        }
    }
    for rules in rules_on.values_mut() {
        rules.sort_unstable();
        rules.dedup();
    }

    let owner_of = |at: usize| -> String { owner(&tables[at].name, input.overrides, rules_on.get(&at), input.rules) };
    let owners: Vec<String> = (0..tables.len()).map(owner_of).collect();

    // (a) fields.
    let mut columns = Vec::new();
    // Per column: its table's position, and whether its reference is a declared foreign key.
    let mut origins: Vec<(usize, bool)> = Vec::new();
    let mut money_tables = HashSet::new();
    let mut status_columns: HashMap<usize, String> = HashMap::new();
    for (at, table) in tables.iter().enumerate() {
        for column in &table.columns {
            let classification = match input.overrides.class_of(&table.name, &column.name) {
                Some(class) => Classification {
                    class,
                    confidence: 100,
                    reason: "set in coverage.yaml".into(),
                    references: column.references.clone(),
                },
                None => classify(&table.name, column, catalog),
            };
            let waived = input
                .overrides
                .waiver_of(&table.name, &column.name)
                .map(|w| Waived { reason: w.reason.clone(), owner: w.owner.clone() });
            if classification.class == Class::MoneyAmount && waived.is_none() {
                money_tables.insert(at);
            }
            if classification.class == Class::Status {
                status_columns.entry(at).or_insert_with(|| column.name.clone());
            }
            let covered_by = covering
                .get(&(at, column.name.to_lowercase()))
                .map(|ids| {
                    let mut ids: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
                    ids.sort();
                    ids.dedup();
                    ids
                })
                .unwrap_or_default();
            origins.push((at, column.references.is_some()));
            columns.push(ColumnReport {
                table: table.name.clone(),
                column: column.name.clone(),
                data_type: column.data_type.clone(),
                owner: owners[at].clone(),
                money_field: classification.class.is_money_field(),
                classification,
                covered_by,
                waived,
                new: input.new_columns.contains(&(table.name.to_lowercase(), column.name.to_lowercase())),
            });
        }
    }

    // (b) metrics.
    let mut metrics = Vec::new();
    let mut money_sorted: Vec<usize> = money_tables.iter().copied().collect();
    money_sorted.sort_unstable();
    for &at in &money_sorted {
        let Some(status_column) = status_columns.get(&at) else { continue };
        metrics.push(metric(at, status_column, &owners[at], tables[at].name.as_str(), &rules_on, input));
    }

    // (c) relations.
    let relations = relations(&columns, &origins, &money_tables, &owners, &rules_on, input);

    let mut overall = Dimensions::default();
    let mut per_owner: BTreeMap<String, Dimensions> = BTreeMap::new();
    for c in columns.iter().filter(|c| c.money_field && c.waived.is_none()) {
        overall.field.add(!c.covered_by.is_empty());
        per_owner.entry(c.owner.clone()).or_default().field.add(!c.covered_by.is_empty());
    }
    for m in &metrics {
        let o = per_owner.entry(m.owner.clone()).or_default();
        for figure in [&mut overall.metric, &mut o.metric] {
            figure.covered += m.figure.covered;
            figure.total += m.figure.total;
        }
    }
    for r in &relations {
        overall.cross_system.add(!r.reconciled_by.is_empty());
        per_owner.entry(r.owner.clone()).or_default().cross_system.add(!r.reconciled_by.is_empty());
    }
    let rules = input
        .rules
        .iter()
        .map(|r| {
            let mut missing: Vec<String> =
                r.checks.iter().map(|(t, _)| t).filter(|t| resolved.get(t.as_str()) == Some(&None)).cloned().collect();
            missing.dedup();
            RuleSummary {
                id: r.id.clone(),
                kind: r.kind,
                owner: r.owner.clone(),
                columns: r.checks.len(),
                unknown: r.unknown.clone(),
                tables_not_in_schema: missing,
            }
        })
        .collect();
    Report { overall, owners: per_owner, columns, metrics, relations, rules, problems: Vec::new() }
}

/// The owner coverage.yaml names, else the team owning most rules on the table (the first
/// by name on a tie), else `unowned`.
fn owner(table: &str, overrides: &Overrides, rules: Option<&Vec<usize>>, all: &[RuleCoverage]) -> String {
    if let Some(owner) = overrides.owners.iter().find(|(t, _)| t.eq_ignore_ascii_case(table)).map(|(_, o)| o) {
        return owner.clone();
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for &i in rules.into_iter().flatten() {
        *counts.entry(all[i].owner.as_str()).or_default() += 1;
    }
    let most = counts.values().copied().max().unwrap_or(0);
    counts.into_iter().find(|(_, n)| *n == most && most > 0).map(|(o, _)| o.to_string()).unwrap_or("unowned".into())
}

fn metric(
    at: usize,
    status_column: &str,
    owner: &str,
    table: &str,
    rules_on: &HashMap<usize, Vec<usize>>,
    input: &Input<'_>,
) -> MetricReport {
    let mut transition_rules = Vec::new();
    let mut states: Option<BTreeSet<String>> = input
        .overrides
        .intermediate_states
        .iter()
        .find(|(t, _)| t.eq_ignore_ascii_case(table))
        .map(|(_, s)| s.iter().cloned().collect());
    let from_file = states.is_some();
    let mut timeout_rules: Vec<(&str, &[String])> = Vec::new();
    let mut rate_rules = Vec::new();
    for &i in rules_on.get(&at).into_iter().flatten() {
        let rule = &input.rules[i];
        match &rule.metric {
            Some(MetricUse::Transition { intermediate, .. }) => {
                transition_rules.push(rule.id.clone());
                if !from_file {
                    states.get_or_insert_with(BTreeSet::new).extend(intermediate.iter().cloned());
                }
            }
            Some(MetricUse::Timeout { states, .. }) => timeout_rules.push((&rule.id, states)),
            Some(MetricUse::Rate { .. }) => rate_rules.push(rule.id.clone()),
            None => {}
        }
    }
    let mut figure = Figure::default();
    figure.add(!transition_rules.is_empty());
    figure.add(!rate_rules.is_empty());
    let mut timeouts = BTreeMap::new();
    match &states {
        Some(states) => {
            for state in states {
                let rules: Vec<String> =
                    timeout_rules.iter().filter(|(_, s)| s.contains(state)).map(|(id, _)| id.to_string()).collect();
                figure.add(!rules.is_empty());
                timeouts.insert(state.clone(), rules);
            }
        }
        None => figure.add(!timeout_rules.is_empty()),
    }
    MetricReport {
        table: table.to_string(),
        owner: owner.to_string(),
        status_column: status_column.to_string(),
        transition_rules,
        intermediate_states: states.map(|s| s.into_iter().collect()),
        timeouts,
        timeout_rules: timeout_rules.iter().map(|(id, _)| id.to_string()).collect(),
        rate_rules,
        figure,
    }
}

/// Relations between money tables: from the classified references (so a class forced in
/// coverage.yaml counts) and from coverage.yaml.
fn relations(
    columns: &[ColumnReport],
    origins: &[(usize, bool)],
    money_tables: &HashSet<usize>,
    owners: &[String],
    rules_on: &HashMap<usize, Vec<usize>>,
    input: &Input<'_>,
) -> Vec<RelationReport> {
    let catalog = input.catalog;
    let tables = catalog.tables();
    // (from, to) → (via, found by, new).
    let mut found: BTreeMap<(usize, usize), (Option<String>, &'static str, bool)> = BTreeMap::new();
    for (column, &(from, declared)) in columns.iter().zip(origins) {
        if column.classification.class != Class::ForeignReference || !money_tables.contains(&from) {
            continue;
        }
        let Some(to) = column.classification.references.as_deref().and_then(|t| catalog.resolve(t)) else { continue };
        if to == from || !money_tables.contains(&to) {
            continue;
        }
        let by = if declared { "foreign key" } else { "naming" };
        found.entry((from, to)).or_insert((Some(column.column.clone()), by, column.new));
    }
    for relation in &input.overrides.relations {
        if let (Some(from), Some(to)) = (catalog.resolve(&relation.from), catalog.resolve(&relation.to)) {
            found.entry((from, to)).or_insert((relation.via.clone(), "coverage.yaml", false));
        }
    }
    let mut reports = Vec::new();
    for ((from, to), (via, by, new)) in found {
        let mut reconciled_by = Vec::new();
        let mut directions = BTreeSet::new();
        let (from_name, to_name) = (&tables[from].name, &tables[to].name);
        for &i in rules_on.get(&from).into_iter().flatten() {
            let rule = &input.rules[i];
            for pair in &rule.reconciles {
                let (left, right) = (catalog.resolve(&pair.left), catalog.resolve(&pair.right));
                let (forward, backward) = if (left, right) == (Some(from), Some(to)) {
                    (pair.left_to_right, pair.right_to_left)
                } else if (left, right) == (Some(to), Some(from)) {
                    (pair.right_to_left, pair.left_to_right)
                } else {
                    continue;
                };
                reconciled_by.push(rule.id.clone());
                if forward {
                    directions.insert(format!("{from_name} → {to_name}"));
                }
                if backward {
                    directions.insert(format!("{to_name} → {from_name}"));
                }
            }
        }
        reconciled_by.sort();
        reconciled_by.dedup();
        reports.push(RelationReport {
            from: from_name.clone(),
            to: to_name.clone(),
            via,
            found_by: by.to_string(),
            owner: owners[from].clone(),
            reconciled_by,
            directions: directions.into_iter().collect(),
            new,
        });
    }
    reports
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::ddl::parse_ddl;

    fn report(ddl: &str, rules: &[&str], overrides: &str) -> Report {
        let mut catalog = Catalog::default();
        for change in parse_ddl("t.sql", ddl).changes {
            catalog.apply(change);
        }
        let rules: Vec<RuleCoverage> = rules
            .iter()
            .map(|yaml| {
                let (rule, problems) = fundguard_rules::parse_rule(Arc::from("r.yaml"), yaml);
                assert!(problems.is_empty(), "{problems:?}");
                crate::rules::analyse(&rule.unwrap())
            })
            .collect();
        let overrides = Overrides::parse("c.yaml", overrides).unwrap();
        measure(&Input { catalog: &catalog, rules: &rules, overrides: &overrides, new_columns: &HashSet::new() })
    }

    const SHOP: &str = "CREATE TABLE s.orders (id BIGINT, status VARCHAR(9), pay_amount BIGINT, memo_amount BIGINT);
        CREATE TABLE s.payments (id BIGINT, order_id BIGINT, status VARCHAR(9), amount BIGINT, fee BIGINT);";
    const CHECK: &str = "id: pay-positive\ndescription: d\nowner: payments\nseverity: high\ncheck:\n  tables: [s.payments]\n  when: \"after.fee > 0\"\n  assert: \"after.amount > 0\"\n  key: { id: after.id }\n";
    const RECONCILE: &str = "id: pay-order\ndescription: d\nowner: payments\nseverity: high\nreconcile:\n  left: { table: s.payments, key: after.order_id }\n  right: { table: s.orders, key: after.id, required: false }\n  within: 1m\n  expect: \"left.amount = right.pay_amount\"\n";
    const MACHINE: &str = "id: order-machine\ndescription: d\nowner: orders\nseverity: high\ntransition:\n  table: s.orders\n  key: after.id\n  status: after.status\n  initial: [NEW]\n  allowed: { NEW: [PAYING], PAYING: [PAID], PAID: [] }\n";

    #[test]
    fn fields_waivers_and_forced_classes() {
        let r = report(
            SHOP,
            &[CHECK, RECONCILE],
            "classes: { s.orders.memo_amount: other }\nwaivers:\n  - { column: s.payments.fee, reason: r, owner: o }\n",
        );
        let gap: Vec<String> =
            r.columns.iter().filter(|c| c.is_gap()).map(|c| format!("{}.{}", c.table, c.column)).collect();
        assert!(gap.is_empty(), "{gap:?}");
        // amount, pay_amount: both covered; fee waived (out of the count), memo_amount forced to other.
        assert_eq!(r.overall.field, Figure { covered: 2, total: 2 });
        // No owners in coverage.yaml: both tables go to the team owning their rules.
        assert_eq!(r.owners["payments"].field, Figure { covered: 2, total: 2 });
        let without = report(SHOP, &[CHECK], "");
        // fee is only in `when`: not covered; pay_amount and memo_amount neither.
        assert_eq!(without.overall.field, Figure { covered: 1, total: 4 });
    }

    #[test]
    fn relations_carry_their_direction_and_metrics_their_states() {
        let r = report(SHOP, &[CHECK, RECONCILE, MACHINE], "");
        let relation = &r.relations[0];
        assert_eq!((relation.from.as_str(), relation.to.as_str()), ("s.payments", "s.orders"));
        assert_eq!(relation.directions, ["s.orders → s.payments"]);
        let orders = r.metrics.iter().find(|m| m.table == "s.orders").unwrap();
        assert_eq!(orders.intermediate_states.as_deref(), Some(&["PAYING".to_string()][..]));
        assert_eq!(orders.figure, Figure { covered: 1, total: 3 });
        let set = report(SHOP, &[MACHINE], "intermediate_states: { s.orders: [PAYING, PAID] }");
        let orders = set.metrics.iter().find(|m| m.table == "s.orders").unwrap();
        assert_eq!(orders.timeouts.keys().collect::<Vec<_>>(), ["PAID", "PAYING"]);
        assert_eq!(orders.owner, "orders");
    }

    #[test]
    fn a_rule_on_a_table_no_schema_describes_says_so() {
        let r = report("CREATE TABLE s.orders (id BIGINT);", &[CHECK], "");
        assert_eq!(r.rules[0].tables_not_in_schema, ["s.payments"]);
        assert_eq!(report(SHOP, &[CHECK], "").rules[0].tables_not_in_schema, Vec::<String>::new());
    }
}
