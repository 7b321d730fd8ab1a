//! Compiling rule expressions: SQL text → column references → DataFusion physical expressions.
//!
//! Column references are read from the SQL syntax tree first, so a batch carries
//! only the columns rules use, and an unknown name is reported at its place in
//! the rule file before anything runs.
//!
//! An expression sees one row and nothing else: a subquery (`EXISTS (SELECT …)`,
//! `x IN (SELECT …)`, `(SELECT …)`) — the only way an expression could name a table, a
//! table function or a file — is refused on the syntax tree and again on the planned
//! expression, and so is anything after the expression (`…; DROP TABLE t`).
//!
//! An expression nested deeper than [`MAX_DEPTH`] (a chain of 100 `OR`s is 100 deep: the
//! parser builds operator chains without limit) is refused before DataFusion plans it:
//! its planner recurses per level and overflowed a 2 MiB thread stack near 300 levels —
//! a crash of the process on a rule reload (found by fuzzing).

use std::ops::ControlFlow;

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::DFSchema;
use datafusion::common::tree_node::TreeNode;
use datafusion::logical_expr::Expr as LogicalExpr;
use datafusion::logical_expr::simplify::SimplifyContext;
use datafusion::optimizer::simplify_expressions::ExprSimplifier;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::ast::{Expr as SqlExpr, Ident, Visit, Visitor, visit_expressions};
use datafusion::sql::sqlparser::dialect::GenericDialect;
use datafusion::sql::sqlparser::parser::{Parser, ParserError};
use datafusion::sql::sqlparser::tokenizer::Token;
use fundguard_rules::{Diagnostic, Expr};

use crate::columns::{COMMIT_TIME, ColumnRef, Image, OP, TABLE};

/// Which names an expression may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// A change event: `op`, `table`, `commit_time`, `before.<column>`, `after.<column>`.
    Event,
    /// A reconciliation: `left.<column>`, `right.<column>`, `agg.<name>`.
    Pair,
}

impl Scope {
    pub(crate) fn image(self, qualifier: &str) -> Option<Image> {
        match (self, qualifier) {
            (Scope::Event, "before") => Some(Image::Before),
            (Scope::Event, "after") => Some(Image::After),
            (Scope::Pair, "left") => Some(Image::Left),
            (Scope::Pair, "right") => Some(Image::Right),
            (Scope::Pair, "agg") => Some(Image::Agg),
            _ => None,
        }
    }

    fn expected(self) -> &'static str {
        match self {
            Scope::Event => "op, table, commit_time, before.<column>, after.<column> or lookup.<name>.<column>",
            Scope::Pair => "left.<column>, right.<column> or agg.<name>",
        }
    }
}

/// Reads the columns an event expression references, or says what is wrong with it.
pub(crate) fn column_refs(expr: &Expr) -> Result<Vec<ColumnRef>, Diagnostic> {
    column_refs_in(expr, Scope::Event)
}

/// The columns an expression reads, each as (row, column): the row is `before` or `after`
/// in [`Scope::Event`], `left`, `right` or `agg` in [`Scope::Pair`]. The same reading the
/// engine compiles with, so what a rule is said to read (`fundguard coverage`) is what it
/// evaluates; a column may appear more than once.
pub fn columns_read(expr: &Expr, scope: Scope) -> Result<Vec<(&'static str, String)>, Diagnostic> {
    Ok(column_refs_in(expr, scope)?.into_iter().map(|r| (r.image.qualifier(), r.name)).collect())
}

/// How deep an expression may nest: operators chained, calls within calls.
pub(crate) const MAX_DEPTH: usize = 100;

/// How deep an expression nests, counted up to [`MAX_DEPTH`] + 1: the walk stops there,
/// so it never goes deep itself.
fn depth(expr: &SqlExpr) -> usize {
    struct Depth {
        now: usize,
        deepest: usize,
    }
    impl Visitor for Depth {
        type Break = ();
        fn pre_visit_expr(&mut self, _: &SqlExpr) -> ControlFlow<()> {
            self.now += 1;
            self.deepest = self.deepest.max(self.now);
            if self.now > MAX_DEPTH { ControlFlow::Break(()) } else { ControlFlow::Continue(()) }
        }
        fn post_visit_expr(&mut self, _: &SqlExpr) -> ControlFlow<()> {
            self.now -= 1;
            ControlFlow::Continue(())
        }
    }
    let mut walk = Depth { now: 0, deepest: 0 };
    let _ = expr.visit(&mut walk);
    walk.deepest
}

/// The refusal of an expression nested too deep.
fn depth_error(expr: &Expr) -> Diagnostic {
    sql_error(
        expr,
        &format!(
            "the expression nests more than {MAX_DEPTH} deep (a chain of that many operators, or calls within calls): split it into several rules, or write `x IN (a, b, …)` instead of `x = a OR x = b OR …`"
        ),
    )
}

/// Parses one rule expression: refused when anything follows it, or it nests too deep.
/// Returns it with its depth.
pub(crate) fn parse(expr: &Expr) -> Result<(SqlExpr, usize), Diagnostic> {
    let parsed = Parser::new(&GenericDialect {})
        .try_with_sql(&expr.sql)
        .and_then(|mut p| {
            let parsed = p.parse_expr()?;
            let next = p.peek_token();
            if next.token != Token::EOF {
                return Err(ParserError::ParserError(format!(
                    "expected the end of the expression, found `{}` at Line: {}, Column: {}: a rule expression is one SQL expression, not a statement",
                    next.token, next.span.start.line, next.span.start.column
                )));
            }
            Ok(parsed)
        })
        .map_err(|e| sql_error(expr, &e.to_string()))?;
    let depth = depth(&parsed);
    if depth > MAX_DEPTH {
        return Err(depth_error(expr));
    }
    Ok((parsed, depth))
}

/// Reads the columns an expression references in a scope, or says what is wrong with it.
pub(crate) fn column_refs_in(expr: &Expr, scope: Scope) -> Result<Vec<ColumnRef>, Diagnostic> {
    let (parsed, _) = parse(expr)?;
    let mut refs = Vec::new();
    let mut problem = None;
    let _ = visit_expressions(&parsed, |e| {
        match e {
            SqlExpr::Subquery(_) | SqlExpr::Exists { .. } | SqlExpr::InSubquery { .. } => {
                problem.get_or_insert_with(|| SUBQUERY.to_string());
            }
            SqlExpr::CompoundIdentifier(parts) => {
                let text = parts.iter().map(|p| p.value.as_str()).collect::<Vec<_>>().join(".");
                match parts.as_slice() {
                    [q, column] => match scope.image(&normalise(q)) {
                        Some(image) => refs.push(ColumnRef { image, name: normalise(column) }),
                        None => {
                            problem.get_or_insert(format!(
                                "unknown row `{}` in `{text}`: expected {}",
                                normalise(q),
                                scope.expected()
                            ));
                        }
                    },
                    // Read by `lookup_refs`: the lookup's columns are not the table's.
                    [q, _, _] if scope == Scope::Event && normalise(q) == LOOKUP => {}
                    _ => {
                        problem.get_or_insert(format!("`{text}`: expected {}", scope.expected()));
                    }
                }
            }
            SqlExpr::Identifier(ident) => {
                let name = normalise(ident);
                if scope != Scope::Event || ![OP, TABLE, COMMIT_TIME].contains(&name.as_str()) {
                    problem.get_or_insert(format!("unknown column `{name}`: expected {}", scope.expected()));
                }
            }
            _ => {}
        }
        std::ops::ControlFlow::<()>::Continue(())
    });
    if let Some(message) = problem {
        return Err(Diagnostic::new(expr.at.clone(), message));
    }
    Ok(refs)
}

/// The qualifier of reference data in event expressions: `lookup.<name>.<column>`.
pub(crate) const LOOKUP: &str = "lookup";

/// The lookup columns an event expression reads, as (lookup, column). An expression that
/// does not parse reads none (`column_refs` reports it).
pub(crate) fn lookup_refs(expr: &Expr) -> Vec<(String, String)> {
    let Ok((parsed, _)) = parse(expr) else { return Vec::new() };
    let mut refs = Vec::new();
    let _ = visit_expressions(&parsed, |e| {
        if let SqlExpr::CompoundIdentifier(parts) = e
            && let [q, lookup, column] = parts.as_slice()
            && normalise(q) == LOOKUP
        {
            refs.push((normalise(lookup), normalise(column)));
        }
        ControlFlow::<()>::Continue(())
    });
    refs
}

/// The text values an expression compares `after.<column>`s with (`after.status = 'PAID'`,
/// `after.status IN ('A', 'B')`, `<>` too), per column: what a `when` names. An expression
/// that does not parse names nothing.
pub(crate) fn compared_values(expr: &Expr) -> Vec<(String, Vec<String>)> {
    use datafusion::sql::sqlparser::ast::{BinaryOperator, Value};
    let Ok((parsed, _)) = parse(expr) else { return Vec::new() };
    let after_column = |e: &SqlExpr| match e {
        SqlExpr::CompoundIdentifier(parts) => match parts.as_slice() {
            [q, column] if normalise(q) == "after" => Some(normalise(column)),
            _ => None,
        },
        _ => None,
    };
    let text = |e: &SqlExpr| match e {
        SqlExpr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) => Some(s.clone()),
            _ => None,
        },
        _ => None,
    };
    let mut found: Vec<(String, Vec<String>)> = Vec::new();
    let mut add = |column: String, value: String| match found.iter_mut().find(|(c, _)| *c == column) {
        Some((_, values)) => values.push(value),
        None => found.push((column, vec![value])),
    };
    let _ = visit_expressions(&parsed, |e| {
        match e {
            SqlExpr::BinaryOp { left, op: BinaryOperator::Eq | BinaryOperator::NotEq, right } => {
                match (after_column(left), text(right), after_column(right), text(left)) {
                    (Some(column), Some(value), _, _) | (_, _, Some(column), Some(value)) => add(column, value),
                    _ => {}
                }
            }
            SqlExpr::InList { expr, list, .. } => {
                if let Some(column) = after_column(expr) {
                    for value in list.iter().filter_map(text) {
                        add(column.clone(), value);
                    }
                }
            }
            _ => {}
        }
        ControlFlow::<()>::Continue(())
    });
    found
}

/// Why an expression may not contain a subquery.
const SUBQUERY: &str = "a subquery is not allowed in a rule expression: an expression reads only the event's row (or the pair's); to query tables, write a `sql` rule over warehouse tables";

/// SQL folds unquoted names to lower case; quoted names keep theirs.
pub(crate) fn normalise(ident: &Ident) -> String {
    if ident.quote_style.is_some() { ident.value.clone() } else { ident.value.to_lowercase() }
}

/// The stack a deep expression is planned on. DataFusion's planner recurses per level of
/// nesting with frames of tens of KiB in debug builds: a 36-deep `a:b:…` JSON path
/// overflowed the 2 MiB a tokio worker or the pipeline thread has (found by fuzzing). A
/// [`MAX_DEPTH`]-deep expression needs a few MiB; the memory is only reserved, not used.
const PLANNING_STACK: usize = 64 << 20;

/// Expressions up to this deep (nearly all) are planned on the caller's stack.
const SHALLOW: usize = 8;

/// Compiles an expression against a batch schema, checking its result type. A deep one is
/// planned on a thread of its own with a [`PLANNING_STACK`]; one too deep is refused.
pub(crate) fn compile(
    ctx: &SessionContext,
    expr: &Expr,
    schema: &DFSchema,
    want: Option<DataType>,
) -> Result<Arc<dyn PhysicalExpr>, Diagnostic> {
    // The planner recurses per level of nesting: what nests too deep never reaches it.
    let (_, depth) = parse(expr)?;
    if depth <= SHALLOW {
        return plan(ctx, expr, schema, want);
    }
    std::thread::scope(|scope| {
        let planning = std::thread::Builder::new()
            .name("fundguard-plan".into())
            .stack_size(PLANNING_STACK)
            .spawn_scoped(scope, || plan(ctx, expr, schema, want))
            .map_err(|e| sql_error(expr, &format!("no thread to plan the expression on: {e}")))?;
        planning.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

fn plan(
    ctx: &SessionContext,
    expr: &Expr,
    schema: &DFSchema,
    want: Option<DataType>,
) -> Result<Arc<dyn PhysicalExpr>, Diagnostic> {
    let logical = ctx.parse_sql_expr(&expr.sql, schema).map_err(|e| sql_error(expr, &e.to_string()))?;
    // A second guard behind `column_refs_in`: whatever the parser let through, a planned
    // expression that reaches beyond the row is refused.
    let reaches_out = logical.exists(|e| {
        Ok(matches!(
            e,
            LogicalExpr::ScalarSubquery(_)
                | LogicalExpr::Exists(_)
                | LogicalExpr::InSubquery(_)
                | LogicalExpr::SetComparison(_)
                | LogicalExpr::OuterReferenceColumn(..)
        ))
    });
    if reaches_out.unwrap_or(true) {
        return Err(Diagnostic::new(expr.at.clone(), format!("in `{}`: {SUBQUERY}", expr.sql)));
    }
    // Type coercion, then simplification: some functions (coalesce, nvl) only have a
    // physical form after the simplifier rewrites them.
    let simplifier = ExprSimplifier::new(SimplifyContext::builder().with_schema(Arc::new(schema.clone())).build());
    let logical = simplifier
        .coerce(logical, schema)
        .and_then(|e| simplifier.simplify(e))
        .map_err(|e| sql_error(expr, &e.to_string()))?;
    let physical = ctx.create_physical_expr(logical, schema).map_err(|e| sql_error(expr, &e.to_string()))?;
    if let Some(want) = want {
        let got = physical.data_type(schema.as_arrow()).map_err(|e| sql_error(expr, &e.to_string()))?;
        if got != want && got != DataType::Null {
            return Err(Diagnostic::new(
                expr.at.clone(),
                format!("`{}` is of type {got}: expected a {want} expression", expr.sql),
            ));
        }
    }
    Ok(physical)
}

/// Turns a DataFusion or parser message into a diagnostic at the expression,
/// moved to the reported column when the parser gives one.
fn sql_error(expr: &Expr, message: &str) -> Diagnostic {
    let message = message
        .trim_start_matches("SQL error: ")
        .trim_start_matches("ParserError(\"")
        .trim_start_matches("sql parser error: ")
        .trim_start_matches("Error during planning: ")
        .trim_start_matches("Schema error: ")
        .trim_end_matches("\")")
        .to_string();
    let mut at = expr.at.clone();
    if let Some((line, column)) = fundguard_rules::sql_parser_position(&message) {
        // Columns inside single-line YAML scalars map one to one (quoted ones start one later).
        let index = |n: u64| usize::try_from(n.saturating_sub(1)).unwrap_or(usize::MAX);
        at = at.shifted(index(line), index(column));
    }
    Diagnostic::new(at, format!("in `{}`: {message}", expr.sql))
}
