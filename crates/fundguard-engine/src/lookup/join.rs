//! A rule's table batch joined with the lookup rows it reads: the batch every expression
//! of the rule is then evaluated on, with `lookup.<name>.<column>` beside `after.<column>`.
//!
//! Each row finds its reference row through the rule's `match:` expressions; a row that
//! finds none is handled as the rule's `missing:` says — reported (and not judged further),
//! skipped, or judged with the lookup's columns NULL.

use std::collections::HashMap;
use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, BooleanArray};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{Field, Schema};
use datafusion::arrow::record_batch::{RecordBatch, RecordBatchOptions};
use datafusion::common::{DFSchema, TableReference};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::prelude::SessionContext;
use fundguard_core::{Row, Value};
use fundguard_rules::{Diagnostic, Expr, LookupUse, MissingLookup};

use super::LookupStore;
use super::table::key_of;
use crate::columns::{ColumnKind, build_array};
use crate::compile::{LOOKUP, compile, lookup_refs};
use crate::scalar::value_at;
use crate::table_batch::TableBatch;

/// The lookups one rule reads, with the columns of each its expressions name.
pub(crate) struct RuleLookups {
    uses: Vec<(LookupUse, Vec<String>)>,
    /// Per table: what was compiled for it.
    compiled: HashMap<Arc<str>, Compiled>,
}

/// The joined schema and the `match` expressions (per lookup) compiled for a table's batch
/// layout version and the lookups' versions.
struct Compiled {
    version: u64,
    lookups: u64,
    schema: Arc<DFSchema>,
    matches: Arc<Vec<Vec<Arc<dyn PhysicalExpr>>>>,
}

/// A batch joined with lookup columns (and without the rows `missing` took out).
pub(crate) struct Joined {
    pub schema: Arc<DFSchema>,
    pub batch: RecordBatch,
    pub indices: Vec<usize>,
    pub version: u64,
}

/// A row whose lookup found nothing under `missing: report`.
pub(crate) struct MissingRow {
    pub event: usize,
    pub lookup: String,
    /// The match columns and the values the row looked for.
    pub key: Vec<(String, Value)>,
}

impl RuleLookups {
    /// Reads which lookup columns `exprs` name (and `named`, the ones a script names, with
    /// their places); a lookup the rule does not declare is a problem where it is named.
    pub(crate) fn new(
        uses: &[LookupUse],
        exprs: &[&Expr],
        named: &[(String, String, fundguard_rules::Location)],
        problems: &mut Vec<Diagnostic>,
    ) -> RuleLookups {
        let mut columns: Vec<(LookupUse, Vec<String>)> = uses.iter().map(|u| (u.clone(), Vec::new())).collect();
        let in_sql = exprs.iter().flat_map(|e| lookup_refs(e).into_iter().map(|(l, c)| (l, c, e.at.clone())));
        let in_scripts = named.iter().cloned();
        for (lookup, column, at) in in_sql.chain(in_scripts) {
            {
                match columns.iter_mut().find(|(u, _)| u.name == lookup) {
                    Some((_, read)) => {
                        if !read.contains(&column) {
                            read.push(column);
                        }
                    }
                    None => {
                        let declared: Vec<&str> = uses.iter().map(|u| u.name.as_str()).collect();
                        let expected = if declared.is_empty() {
                            "declare it under `lookups:` with the columns it matches on".to_string()
                        } else {
                            format!("expected one of the rule's lookups: {}", declared.join(", "))
                        };
                        problems.push(Diagnostic::new(
                            at.clone(),
                            format!("unknown lookup `{lookup}` in `lookup.{lookup}.{column}`: {expected}"),
                        ));
                    }
                }
            }
        }
        for (_, read) in &mut columns {
            read.sort();
        }
        RuleLookups { uses: columns, compiled: HashMap::new() }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.uses.is_empty()
    }

    /// The `match` expressions: they read the event row, like the rule's own.
    pub(crate) fn match_exprs(&self) -> impl Iterator<Item = &Expr> {
        self.uses.iter().flat_map(|(u, _)| u.matches.iter().map(|(_, e)| e))
    }

    /// Tells the store which columns are read and matched on.
    pub(crate) fn register(&self, store: &mut LookupStore, schemas: &fundguard_core::TableSchemas) {
        for (u, read) in &self.uses {
            let table = store.declare(&u.name, schemas);
            for c in read {
                table.reference(c);
            }
            table.index(&u.match_columns());
        }
    }

    /// Columns the rule reads that a declared lookup does not have.
    pub(crate) fn unknown_columns(&self, store: &LookupStore) -> Vec<Diagnostic> {
        let mut problems = Vec::new();
        for (u, read) in &self.uses {
            let Some(declared) = store.tables.get(&u.name).and_then(|t| t.declared()) else { continue };
            for c in read.iter().chain(u.matches.iter().map(|(c, _)| c)) {
                if !declared.contains_key(c) {
                    problems.push(Diagnostic::new(
                        u.at.clone(),
                        format!("unknown column `{c}` of lookup `{}`: the schema file declares no such column", u.name),
                    ));
                }
            }
        }
        problems
    }

    /// `base` with the lookup columns the rule reads, typed as the store holds them.
    pub(crate) fn schema(&self, base: &DFSchema, store: &LookupStore) -> Arc<DFSchema> {
        let mut fields: Vec<(Option<TableReference>, Arc<Field>)> =
            base.iter().map(|(q, f)| (q.cloned(), f.clone())).collect();
        for (u, read) in &self.uses {
            let table = store.tables.get(&u.name);
            for c in read {
                let kind = table.and_then(|t| t.kinds.get(c)).copied().unwrap_or(ColumnKind::Unknown);
                fields.push((
                    Some(TableReference::partial(LOOKUP, u.name.as_str())),
                    Arc::new(Field::new(c, kind.data_type(), true)),
                ));
            }
        }
        Arc::new(DFSchema::new_with_metadata(fields, Default::default()).unwrap_or_else(|_| DFSchema::empty()))
    }

    /// Compiles the `match` expressions against the event batch's schema.
    pub(crate) fn check_compiles(&self, ctx: &SessionContext, base: &DFSchema) -> Vec<Diagnostic> {
        self.match_exprs().filter_map(|e| compile(ctx, e, base, None).err()).collect()
    }

    /// The sum of the read lookups' versions: it grows whenever a column's type changes.
    fn versions(&self, store: &LookupStore) -> u64 {
        self.uses.iter().filter_map(|(u, _)| store.tables.get(&u.name)).map(|t| t.version).sum()
    }

    /// Joins `input` with the lookup rows each row finds. Rows without one are reported
    /// into `missing` (`missing: report`) and taken out (`report`, `skip`).
    pub(crate) fn join(
        &mut self,
        ctx: &SessionContext,
        input: &TableBatch,
        store: &LookupStore,
        missing: &mut Vec<MissingRow>,
    ) -> Result<Joined, String> {
        let versions = self.versions(store);
        let (schema, exprs) = match self.compiled.get(input.table) {
            Some(c) if c.version == input.version && c.lookups == versions => (c.schema.clone(), c.matches.clone()),
            _ => {
                let schema = self.schema(input.schema, store);
                let exprs = self
                    .uses
                    .iter()
                    .map(|(u, _)| {
                        u.matches
                            .iter()
                            .map(|(_, e)| compile(ctx, e, input.schema, None).map_err(|d| d.message))
                            .collect::<Result<Vec<_>, _>>()
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                let exprs = Arc::new(exprs);
                let compiled = Compiled {
                    version: input.version,
                    lookups: versions,
                    schema: schema.clone(),
                    matches: exprs.clone(),
                };
                self.compiled.insert(input.table.clone(), compiled);
                (schema, exprs)
            }
        };
        let batch = input.batch;
        let n = batch.num_rows();
        let mut arrays: Vec<ArrayRef> = batch.columns().to_vec();
        let mut keep = vec![true; n];
        for ((u, read), exprs) in self.uses.iter().zip(exprs.iter()) {
            let keys: Vec<ArrayRef> = exprs
                .iter()
                .map(|e| e.evaluate(batch).and_then(|v| v.into_array(n)).map_err(|e| e.to_string()))
                .collect::<Result<_, _>>()?;
            let table = store.tables.get(&u.name);
            let columns = u.match_columns();
            let mut found: Vec<Option<&Arc<Row>>> = Vec::with_capacity(n);
            for (row, kept) in keep.iter_mut().enumerate() {
                let values: Vec<Value> = keys.iter().map(|a| value_at(a, row)).collect();
                let event = input.indices[row];
                let hit = key_of(values.iter().map(Some))
                    .and_then(|key| table.and_then(|t| t.get(&columns, &key, input.events[event].commit_time, event)));
                if hit.is_none() && u.missing != MissingLookup::Judge {
                    if *kept && u.missing == MissingLookup::Report {
                        missing.push(MissingRow {
                            event,
                            lookup: u.name.clone(),
                            key: columns.iter().cloned().zip(values).collect(),
                        });
                    }
                    *kept = false;
                }
                found.push(hit);
            }
            for c in read {
                let kind = table.and_then(|t| t.kinds.get(c)).copied().unwrap_or(ColumnKind::Unknown);
                arrays.push(build_array(kind, n, found.iter().map(|r| r.and_then(|r| r.get(c)))));
            }
        }
        let options = RecordBatchOptions::new().with_row_count(Some(n));
        let arrow_schema: Arc<Schema> = Arc::new(schema.as_arrow().clone());
        let joined = RecordBatch::try_new_with_options(arrow_schema, arrays, &options).map_err(|e| e.to_string())?;
        let (joined, indices) = if keep.iter().all(|k| *k) {
            (joined, input.indices.to_vec())
        } else {
            let mask = BooleanArray::from(keep.clone());
            let kept = filter_record_batch(&joined, &mask).map_err(|e| e.to_string())?;
            let indices = input.indices.iter().zip(&keep).filter(|(_, k)| **k).map(|(i, _)| *i).collect();
            (kept, indices)
        };
        Ok(Joined { schema, batch: joined, indices, version: (input.version << 32) ^ versions })
    }
}
