//! `sql` rules → columns, through DataFusion's logical plan rather than the query text.
//!
//! Every known table is registered as an empty table with its columns' types, the rule's
//! query is rendered (for a fixed business date), planned and optimised; projection
//! pushdown then leaves on each table scan exactly the columns the query needs — in its
//! projections, filters, joins, groupings and `HAVING` — whatever aliases, CTEs or unions
//! it goes through. Every result row of a `sql` rule is a finding, so its filters decide
//! findings and count as checks. A query that cannot be planned (an unknown table, a
//! column the schema lacks) is "unknown coverage": it covers nothing.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, Field, Schema, TimeUnit};
use datafusion::catalog::MemorySchemaProvider;
use datafusion::common::TableReference;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::empty::EmptyTable;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;
use fundguard_rules::{Rule, RuleBody};

use crate::classify::TypeFamily;
use crate::rules::{Reconciled, RuleCoverage};
use crate::schema::{Catalog, short_name};

/// A session holding every known table, empty, to plan `sql` rules in.
pub struct SqlAnalyser {
    ctx: SessionContext,
    runtime: tokio::runtime::Runtime,
    /// The name a query uses (`pay.payments`, `settlements`) → the catalog's table name.
    names: HashMap<String, String>,
}

impl SqlAnalyser {
    pub fn new(catalog: &Catalog) -> Result<SqlAnalyser, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .map_err(|e| format!("no runtime to plan sql rules on: {e}"))?;
        let ctx = SessionContext::new();
        let mut names = HashMap::new();
        let mut short_count: HashMap<String, usize> = HashMap::new();
        for table in catalog.tables() {
            *short_count.entry(short_name(&table.name).to_lowercase()).or_default() += 1;
        }
        let default_catalog = ctx.catalog("datafusion").ok_or("DataFusion's default catalog is missing")?;
        for table in catalog.tables() {
            let fields: Vec<Field> =
                table.columns.iter().map(|c| Field::new(c.name.clone(), arrow_type(&c.data_type), true)).collect();
            let provider = Arc::new(EmptyTable::new(Arc::new(Schema::new(fields))));
            let lower = table.name.to_lowercase();
            let mut refs = Vec::new();
            if let Some((schema, name)) = lower.rsplit_once('.') {
                if default_catalog.schema(schema).is_none() {
                    let _ = default_catalog.register_schema(schema, Arc::new(MemorySchemaProvider::new()));
                }
                refs.push(TableReference::partial(schema.to_string(), name.to_string()));
            }
            let short = short_name(&lower).to_string();
            if short_count.get(&short) == Some(&1) {
                refs.push(TableReference::bare(short));
            }
            for reference in refs {
                if ctx.register_table(reference.clone(), provider.clone()).is_ok() {
                    names.insert(reference.to_string(), table.name.clone());
                }
            }
        }
        Ok(SqlAnalyser { ctx, runtime, names })
    }

    /// What a `sql` rule checks: the columns it reads, and the pairs of tables it compares.
    pub fn analyse(&self, rule: &Rule) -> RuleCoverage {
        let mut coverage = crate::rules::analyse_nothing(rule);
        match self.columns(rule) {
            Ok(columns) => {
                let mut tables: Vec<String> = columns.iter().map(|(t, _)| t.clone()).collect();
                tables.sort();
                tables.dedup();
                for (i, left) in tables.iter().enumerate() {
                    for right in &tables[i + 1..] {
                        coverage.reconciles.push(Reconciled {
                            left: left.clone(),
                            right: right.clone(),
                            left_to_right: true,
                            right_to_left: true,
                        });
                    }
                }
                coverage.checks = columns;
            }
            Err(problem) => coverage.unknown = Some(problem),
        }
        coverage
    }

    fn columns(&self, rule: &Rule) -> Result<Vec<(String, String)>, String> {
        let RuleBody::Sql(sql) = &rule.body else { return Err("not a sql rule".into()) };
        let text = fundguard_warehouse::render_query(sql, chrono::NaiveDate::default()).map_err(|e| e.to_string())?;
        let state = self.ctx.state();
        let plan = self
            .runtime
            .block_on(state.create_logical_plan(&text))
            .map_err(|e| format!("the query cannot be planned against the known schema: {}", first_line(&e)))?;
        fundguard_warehouse::read_only::verify_plan(&plan)?;
        let plan =
            state.optimize(&plan).map_err(|e| format!("the query's plan cannot be optimised: {}", first_line(&e)))?;
        let mut columns = Vec::new();
        let _ = plan.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node {
                let table =
                    self.names.get(&scan.table_name.to_string()).cloned().unwrap_or(scan.table_name.to_string());
                let schema = scan.source.schema();
                let read: Vec<usize> = match &scan.projection {
                    Some(projection) => projection.clone(),
                    None => (0..schema.fields().len()).collect(),
                };
                for i in read {
                    columns.push((table.clone(), schema.field(i).name().clone()));
                }
            }
            Ok(TreeNodeRecursion::Continue)
        });
        columns.sort();
        columns.dedup();
        Ok(columns)
    }
}

fn first_line(e: &impl std::fmt::Display) -> String {
    e.to_string().lines().next().unwrap_or_default().to_string()
}

/// The Arrow type a declared column is planned with: exact decimals for money, as the
/// warehouse reads them.
fn arrow_type(data_type: &str) -> DataType {
    match TypeFamily::of(data_type) {
        TypeFamily::Integer => DataType::Int64,
        TypeFamily::Decimal | TypeFamily::Money => fundguard_warehouse::tables::TEXT_DECIMAL,
        TypeFamily::Float => DataType::Float64,
        TypeFamily::Bool => DataType::Boolean,
        TypeFamily::Time => DataType::Timestamp(TimeUnit::Microsecond, None),
        TypeFamily::Text | TypeFamily::Json | TypeFamily::Other => DataType::Utf8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ddl::parse_ddl;

    fn catalog(ddl: &str) -> Catalog {
        let mut catalog = Catalog::default();
        for change in parse_ddl("t.sql", ddl).changes {
            catalog.apply(change);
        }
        catalog
    }

    fn rule(file: &str) -> Rule {
        let path = format!("{}/../../examples/sql-rules/{file}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).unwrap();
        let (rule, problems) = fundguard_rules::parse_rule(Arc::from(path.as_str()), &text);
        assert!(problems.is_empty(), "{problems:?}");
        rule.unwrap()
    }

    #[test]
    fn a_planned_query_covers_exactly_the_columns_it_reads() {
        let catalog = catalog(
            "CREATE TABLE pay.payments (id BIGINT, order_id BIGINT, status VARCHAR(16), amount BIGINT, currency CHAR(3), paid_at DATETIME);
             CREATE TABLE pay.refunds (id BIGINT, order_id BIGINT, status VARCHAR(16), amount BIGINT, refunded_at DATETIME);
             CREATE TABLE shop.orders (id BIGINT, merchant_id BIGINT, pay_amount BIGINT);
             CREATE TABLE settlements (merchant_id BIGINT, net_amount BIGINT, gross_amount BIGINT, ds VARCHAR(10));",
        );
        let analyser = SqlAnalyser::new(&catalog).unwrap();
        let coverage = analyser.analyse(&rule("settlement-daily-totals.yaml"));
        assert_eq!(coverage.unknown, None);
        let read: Vec<String> = coverage.checks.iter().map(|(t, c)| format!("{t}.{c}")).collect();
        assert_eq!(
            read,
            [
                "pay.payments.amount",
                "pay.payments.order_id",
                "pay.payments.paid_at",
                "pay.payments.status",
                "pay.refunds.amount",
                "pay.refunds.order_id",
                "pay.refunds.refunded_at",
                "pay.refunds.status",
                "settlements.ds",
                "settlements.merchant_id",
                "settlements.net_amount",
                "shop.orders.id",
                "shop.orders.merchant_id",
            ]
        );
        assert!(coverage.reconciles.iter().any(|r| r.left == "pay.payments" && r.right == "settlements"));
    }

    #[test]
    fn a_query_over_an_unknown_table_covers_nothing() {
        let analyser = SqlAnalyser::new(&catalog("CREATE TABLE shop.orders (id BIGINT);")).unwrap();
        let coverage = analyser.analyse(&rule("settlement-daily-totals.yaml"));
        assert!(coverage.unknown.as_deref().is_some_and(|u| u.contains("cannot be planned")), "{coverage:?}");
        assert!(coverage.checks.is_empty() && coverage.reconciles.is_empty());
    }
}
