//! Rule SQL is one read-only query: nothing it runs may create, change or write anything.
//!
//! Three layers, each enough on its own to stop a write:
//!
//! 1. the syntax tree ([`read_only_query`]): one statement, and a query — no DDL, DML,
//!    `COPY`, `SET`, `EXPLAIN`, `SELECT … INTO` or row locks. Needs no tables, so rule
//!    loading and `fundguard validate` reject such a rule with its location;
//! 2. the logical plan ([`verify_plan`]): no node that writes, defines or configures
//!    anything, anywhere in the plan (inside `EXPLAIN` and subqueries too), checked before
//!    anything runs — DataFusion's own [`SQLOptions`] (no DDL, no DML, no statements), then a
//!    walk that accepts only query nodes;
//! 3. the tables and the session (`tables.rs`): every registered table refuses writes,
//!    and the session resolves no URLs as tables, has no table functions, no table
//!    factories (`CREATE EXTERNAL TABLE`) and no file formats to `COPY` to.

use std::ops::ControlFlow;

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::execution::context::SQLOptions;
use datafusion::logical_expr::LogicalPlan;
use datafusion::sql::parser::{DFParser, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{Query, SetExpr, Statement, Visit, Visitor};

/// What rule SQL is allowed, in DataFusion's terms: no DDL, no DML, no statements.
pub fn sql_options() -> SQLOptions {
    SQLOptions::new().with_allow_ddl(false).with_allow_dml(false).with_allow_statements(false)
}

const EXPECTED: &str = "expected one read-only query (SELECT …): rule SQL cannot create, change or write anything";

/// Why a text is not one read-only query.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// It does not parse (the parser's message).
    #[error("{0}")]
    Syntax(String),
    /// It parses, into something other than one query that reads.
    #[error("{0}")]
    NotAQuery(String),
}

/// Checks that `text` is exactly one query that reads; otherwise says what was found.
pub fn read_only_query(text: &str) -> Result<(), Refusal> {
    let statements = DFParser::parse_sql(text).map_err(|e| Refusal::Syntax(e.to_string()))?;
    let refused = |message: String| Err(Refusal::NotAQuery(message));
    match statements.len() {
        0 => refused("no statement: expected one read-only query (SELECT …)".into()),
        1 => match &statements[0] {
            DfStatement::Statement(statement) => match statement.visit(&mut QueriesOnly) {
                ControlFlow::Break(kind) => refused(format!("{kind} is not allowed: {EXPECTED}")),
                ControlFlow::Continue(()) => Ok(()),
            },
            other => refused(format!("{} is not allowed: {EXPECTED}", describe(other))),
        },
        n => refused(format!(
            "{n} statements ({}): {EXPECTED}; one query per rule, without `;` between statements",
            statements.iter().map(describe).collect::<Vec<_>>().join(", ")
        )),
    }
}

/// A statement's kind, as people write it: `INSERT`, `EXPLAIN ANALYZE COPY`, `a query`.
fn describe(statement: &DfStatement) -> String {
    match statement {
        DfStatement::Statement(s) => statement_kind(s),
        DfStatement::CreateExternalTable(_) => "CREATE EXTERNAL TABLE".into(),
        DfStatement::CopyTo(_) => "COPY".into(),
        DfStatement::Reset(_) => "RESET".into(),
        DfStatement::Explain(e) if e.options.analyze => format!("EXPLAIN ANALYZE {}", describe(&e.statement)),
        DfStatement::Explain(e) => format!("EXPLAIN {}", describe(&e.statement)),
    }
}

fn statement_kind(statement: &Statement) -> String {
    let kind = match statement {
        Statement::Query(_) => "a query",
        Statement::Insert { .. } => "INSERT",
        Statement::Update { .. } => "UPDATE",
        Statement::Delete { .. } => "DELETE",
        Statement::Merge { .. } => "MERGE",
        Statement::Copy { .. } => "COPY",
        Statement::Set { .. } => "SET",
        Statement::Truncate { .. } => "TRUNCATE",
        Statement::CreateTable(t) if t.query.is_some() => "CREATE TABLE … AS",
        Statement::CreateTable(_) => "CREATE TABLE",
        Statement::CreateView { .. } => "CREATE VIEW",
        Statement::Drop { .. } => "DROP",
        Statement::AlterTable { .. } => "ALTER TABLE",
        Statement::Explain { analyze: true, .. } => "EXPLAIN ANALYZE",
        Statement::Explain { .. } => "EXPLAIN",
        Statement::ExplainTable { .. } => "DESCRIBE",
        // Named by its first words; what matters is that it is not a query.
        other => {
            let text = other.to_string();
            return text.split_whitespace().take(2).collect::<Vec<_>>().join(" ").to_uppercase();
        }
    };
    kind.to_string()
}

/// Stops at the first statement that is not a query and at a query that writes (`SELECT …
/// INTO`, a data-modifying `WITH`) or locks rows (`FOR UPDATE`), wherever they are nested.
struct QueriesOnly;

impl Visitor for QueriesOnly {
    type Break = String;

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<String> {
        match statement {
            Statement::Query(_) => ControlFlow::Continue(()),
            other => ControlFlow::Break(statement_kind(other)),
        }
    }

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<String> {
        if !query.locks.is_empty() {
            return ControlFlow::Break("SELECT … FOR UPDATE (a row lock)".into());
        }
        writes(&query.body).map_or(ControlFlow::Continue(()), ControlFlow::Break)
    }
}

/// What a query body writes, if anything (nested queries are visited on their own).
fn writes(body: &SetExpr) -> Option<String> {
    match body {
        SetExpr::Select(select) if select.into.is_some() => Some("SELECT … INTO".into()),
        SetExpr::SetOperation { left, right, .. } => writes(left).or_else(|| writes(right)),
        SetExpr::Insert(s) | SetExpr::Update(s) | SetExpr::Delete(s) | SetExpr::Merge(s) => Some(statement_kind(s)),
        _ => None,
    }
}

/// Checks that a planned rule query only reads: DataFusion's [`SQLOptions`] first, then
/// every node of the plan, subqueries included, must be a query node. Runs before the
/// plan is executed, so a refused plan has done nothing.
pub fn verify_plan(plan: &LogicalPlan) -> Result<(), String> {
    let mut found = None;
    let walked = plan.apply_with_subqueries(|node| {
        found = refused(node);
        Ok(if found.is_some() { TreeNodeRecursion::Stop } else { TreeNodeRecursion::Continue })
    });
    if let Some(kind) = found {
        return Err(format!("{kind} is not allowed: {EXPECTED}"));
    }
    walked.map_err(|e| e.to_string())?;
    sql_options().verify_plan(plan).map_err(|e| format!("{}: {EXPECTED}", e.strip_backtrace()))
}

/// A plan node a rule query may not contain, named; `None` for the nodes of a query.
fn refused(node: &LogicalPlan) -> Option<String> {
    match node {
        LogicalPlan::Dml(dml) => Some(format!("{} ({} `{}`)", "DML", dml.op, dml.table_name)),
        LogicalPlan::Copy(copy) => Some(format!("COPY … TO `{}`", copy.output_url)),
        LogicalPlan::Ddl(ddl) => Some(ddl.name().to_string()),
        LogicalPlan::Statement(statement) => Some(statement.name().to_string()),
        LogicalPlan::Explain(_) | LogicalPlan::Analyze(_) => Some("EXPLAIN".into()),
        LogicalPlan::DescribeTable(_) => Some("DESCRIBE".into()),
        // The SQL planner makes none; an extension node is nothing a rule query needs.
        LogicalPlan::Extension(e) => Some(format!("the plan node {}", e.node.name())),
        LogicalPlan::Projection(_)
        | LogicalPlan::Filter(_)
        | LogicalPlan::Window(_)
        | LogicalPlan::Aggregate(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::Join(_)
        | LogicalPlan::Repartition(_)
        | LogicalPlan::Union(_)
        | LogicalPlan::TableScan(_)
        | LogicalPlan::EmptyRelation(_)
        | LogicalPlan::Subquery(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::Values(_)
        | LogicalPlan::Distinct(_)
        | LogicalPlan::Unnest(_)
        | LogicalPlan::RecursiveQuery(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_one_query_passes() {
        for ok in [
            "SELECT 1",
            "SELECT 1;",
            "WITH t AS (SELECT 1 AS x) SELECT x FROM t UNION ALL SELECT 2",
            "VALUES (1), (2)",
            "SELECT a FROM t WHERE a IN (SELECT b FROM u)",
        ] {
            assert_eq!(read_only_query(ok), Ok(()), "{ok}");
        }
        assert!(matches!(read_only_query("SELEC 1"), Err(Refusal::Syntax(e)) if e.contains("SELEC")));
        for (bad, kind) in [
            ("CREATE TABLE x (a INT)", "CREATE TABLE is not allowed"),
            ("CREATE TABLE x AS SELECT 1", "CREATE TABLE … AS is not allowed"),
            ("CREATE EXTERNAL TABLE x STORED AS CSV LOCATION '/tmp/x.csv'", "CREATE EXTERNAL TABLE is not allowed"),
            ("CREATE VIEW v AS SELECT 1", "CREATE VIEW is not allowed"),
            ("DROP TABLE t", "DROP is not allowed"),
            ("INSERT INTO t VALUES (1)", "INSERT is not allowed"),
            ("UPDATE t SET a = 1", "UPDATE is not allowed"),
            ("DELETE FROM t", "DELETE is not allowed"),
            ("TRUNCATE t", "TRUNCATE is not allowed"),
            ("COPY (SELECT 1 AS x) TO '/tmp/x.csv' STORED AS CSV", "COPY is not allowed"),
            ("SET datafusion.execution.batch_size = 1", "SET is not allowed"),
            ("RESET datafusion.execution.batch_size", "RESET is not allowed"),
            ("EXPLAIN SELECT 1", "EXPLAIN a query is not allowed"),
            ("EXPLAIN ANALYZE INSERT INTO t VALUES (1)", "EXPLAIN ANALYZE INSERT is not allowed"),
            ("EXPLAIN ANALYZE COPY (SELECT 1) TO '/tmp/x.csv'", "EXPLAIN ANALYZE COPY is not allowed"),
            ("SELECT 1 AS x INTO y", "SELECT … INTO is not allowed"),
            ("SELECT 1 UNION SELECT 2 INTO y", "SELECT … INTO is not allowed"),
            ("SELECT * FROM t FOR UPDATE", "SELECT … FOR UPDATE (a row lock) is not allowed"),
            ("WITH d AS (SELECT 1) INSERT INTO t SELECT * FROM d", "INSERT is not allowed"),
            ("SELECT 1; DROP TABLE t", "2 statements (a query, DROP)"),
            ("SELECT 1; SELECT 2", "2 statements (a query, a query)"),
            ("", "no statement"),
        ] {
            let Err(Refusal::NotAQuery(error)) = read_only_query(bad) else { panic!("{bad}") };
            assert!(error.starts_with(kind), "{bad}: {error}");
        }
    }
}
