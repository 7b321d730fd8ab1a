//! Evaluating `expect` and money over reconciliation pairs, vectorised.
//!
//! Pairs queued during a micro-batch become one Arrow batch with `left.<column>`,
//! `right.<column>` and `agg.<name>` columns, typed from their values, and
//! DataFusion evaluates the rule's expressions over it in one pass.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, RecordBatchOptions};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use datafusion::common::{DFSchema, TableReference};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;
use fundguard_core::Value;
use fundguard_rules::{Diagnostic, Expr, MoneyExprs};

use crate::columns::{ColumnKind, Image, build_array};
use crate::compile::compile;
use crate::scalar::value_at;

/// The columns of a pair batch.
#[derive(Debug, Clone, Default)]
pub(crate) struct PairColumns {
    pub left: Vec<String>,
    pub right: Vec<String>,
    pub agg: Vec<String>,
}

/// One row to evaluate.
#[derive(Debug, Clone)]
pub(crate) struct PairRow {
    pub left: Vec<Value>,
    pub right: Vec<Value>,
    pub agg: Vec<Value>,
}

/// What the expressions said about one pair.
#[derive(Debug, Clone, Default)]
pub(crate) struct PairResult {
    pub holds: bool,
    pub amount: Option<Value>,
    pub currency: Option<Value>,
}

type PhysExpr = Arc<dyn PhysicalExpr>;

struct Compiled {
    expect: Option<PhysExpr>,
    amount: Option<PhysExpr>,
    currency: Option<PhysExpr>,
}

/// The `expect` and money expressions of a reconciliation, compiled per column typing.
pub(crate) struct PairEval {
    pub columns: PairColumns,
    expect: Option<Expr>,
    money: Option<MoneyExprs>,
    cache: HashMap<Vec<ColumnKind>, Arc<Compiled>>,
}

impl PairEval {
    pub(crate) fn new(columns: PairColumns, expect: Option<Expr>, money: Option<MoneyExprs>) -> Self {
        PairEval { columns, expect, money, cache: HashMap::new() }
    }

    fn layout(&self) -> Vec<(Image, &String)> {
        let c = &self.columns;
        c.left
            .iter()
            .map(|n| (Image::Left, n))
            .chain(c.right.iter().map(|n| (Image::Right, n)))
            .chain(c.agg.iter().map(|n| (Image::Agg, n)))
            .collect()
    }

    fn schema(&self, kinds: &[ColumnKind]) -> DFSchema {
        let fields: Vec<(Option<TableReference>, Arc<Field>)> = self
            .layout()
            .iter()
            .zip(kinds)
            .map(|((image, name), kind)| {
                (
                    Some(TableReference::bare(image.qualifier())),
                    Arc::new(Field::new(name.as_str(), kind.data_type(), true)),
                )
            })
            .collect();
        DFSchema::new_with_metadata(fields, Default::default()).unwrap_or_else(|_| DFSchema::empty())
    }

    fn compile(&self, ctx: &SessionContext, kinds: &[ColumnKind]) -> Result<Compiled, Vec<Diagnostic>> {
        let schema = self.schema(kinds);
        let mut problems = Vec::new();
        let mut one = |e: &Expr, want: Option<DataType>| match compile(ctx, e, &schema, want) {
            Ok(p) => Some(p),
            Err(d) => {
                problems.push(d);
                None
            }
        };
        let expect = self.expect.as_ref().and_then(|e| one(e, Some(DataType::Boolean)));
        let amount = self.money.as_ref().and_then(|m| one(&m.amount, None));
        let currency = self.money.as_ref().and_then(|m| m.currency.as_ref()).and_then(|c| one(c, None));
        if problems.is_empty() { Ok(Compiled { expect, amount, currency }) } else { Err(problems) }
    }

    /// Load-time check with the given column kinds (declared, or unknown).
    pub(crate) fn check(&self, ctx: &SessionContext, kinds: &[ColumnKind]) -> Vec<Diagnostic> {
        self.compile(ctx, kinds).err().unwrap_or_default()
    }

    /// Evaluates every pair; a pair holds when `expect` is TRUE (no `expect`: always).
    pub(crate) fn evaluate(&mut self, ctx: &SessionContext, rows: &[PairRow]) -> Result<Vec<PairResult>, String> {
        if rows.is_empty() {
            return Ok(Vec::new());
        }
        let layout_len = self.layout().len();
        let cell = |row: &PairRow, i: usize| -> Option<Value> {
            let (l, r) = (self.columns.left.len(), self.columns.right.len());
            if i < l {
                row.left.get(i).cloned()
            } else if i < l + r {
                row.right.get(i - l).cloned()
            } else {
                row.agg.get(i - l - r).cloned()
            }
        };
        let mut kinds = vec![ColumnKind::Unknown; layout_len];
        for (i, kind) in kinds.iter_mut().enumerate() {
            for row in rows {
                if let Some(v) = cell(row, i) {
                    *kind = kind.widen(ColumnKind::of_value(&v));
                }
            }
        }
        let compiled = match self.cache.get(&kinds) {
            Some(c) => c.clone(),
            None => {
                let c = Arc::new(
                    self.compile(ctx, &kinds)
                        .map_err(|d| d.iter().map(|d| d.message.clone()).collect::<Vec<_>>().join("; "))?,
                );
                self.cache.insert(kinds.clone(), c.clone());
                c
            }
        };
        let n = rows.len();
        let arrays: Vec<ArrayRef> = (0..layout_len)
            .map(|i| {
                let values: Vec<Option<Value>> = rows.iter().map(|r| cell(r, i)).collect();
                build_array(kinds[i], n, values.iter().map(|v| v.as_ref()))
            })
            .collect();
        let schema = self.schema(&kinds);
        let arrow: Arc<Schema> = Arc::new(schema.as_arrow().clone());
        let batch =
            RecordBatch::try_new_with_options(arrow, arrays, &RecordBatchOptions::new().with_row_count(Some(n)))
                .map_err(|e| e.to_string())?;
        let eval = |e: &PhysExpr| e.evaluate(&batch).and_then(|v| v.into_array(n)).map_err(|e| e.to_string());
        let expect = compiled.expect.as_ref().map(eval).transpose()?;
        let amount = compiled.amount.as_ref().map(eval).transpose()?;
        let currency = compiled.currency.as_ref().map(eval).transpose()?;
        Ok((0..n)
            .map(|i| PairResult {
                holds: match &expect {
                    Some(a) => a.as_boolean_opt().is_some_and(|b| b.is_valid(i) && b.value(i)),
                    None => true,
                },
                amount: amount.as_ref().map(|a| value_at(a, i)),
                currency: currency.as_ref().map(|a| value_at(a, i)),
            })
            .collect())
    }
}
