//! A warehouse table's rows as change events: what profiling a table reads (`fundguard
//! suggest --warehouse`), so a table is studied by the same profiler as a change log.
//!
//! Each row becomes an insert of the row as it stands, all stamped with the moment they
//! were read and positioned as line N of `table:NAME`. A table is a snapshot, not a
//! history: it shows columns and how tables relate, not transitions or delays.

use std::sync::Arc;

use datafusion::common::TableReference;
use fundguard_core::{ChangeEvent, EventTime, Op, Position, Row};
use fundguard_engine::value_at;
use futures::StreamExt;

use crate::tables::{Warehouse, WarehouseError};

impl Warehouse {
    /// Every table as `schema.table`, a name both SQL and rule files take: `public.fees`
    /// for a file table (files are in the default schema), `orders_db.orders` for a table
    /// of a database entry; sorted.
    pub fn table_names(&self) -> Vec<String> {
        let ctx = self.context();
        let mut names = Vec::new();
        for catalog_name in ctx.catalog_names() {
            let Some(catalog) = ctx.catalog(&catalog_name) else { continue };
            for schema_name in catalog.schema_names() {
                if schema_name == "information_schema" {
                    continue;
                }
                let Some(schema) = catalog.schema(&schema_name) else { continue };
                for table in schema.table_names() {
                    names.push(format!("{schema_name}.{table}"));
                }
            }
        }
        names.sort();
        names
    }

    /// Reads up to `limit` rows of `table` (a name [`Warehouse::table_names`] gave), handing
    /// them to `each` batch by batch as inserts read at `read_at`; answers how many.
    pub async fn rows(
        &self,
        table: &str,
        limit: usize,
        read_at: EventTime,
        mut each: impl FnMut(Vec<ChangeEvent>),
    ) -> Result<u64, WarehouseError> {
        let failed = |e: datafusion::error::DataFusionError| WarehouseError::Source {
            name: table.to_string(),
            message: format!("reading its rows: {e}"),
        };
        let frame = self.context().table(TableReference::from(table)).await.map_err(failed)?;
        let mut stream = frame.limit(0, Some(limit)).map_err(failed)?.execute_stream().await.map_err(failed)?;
        let name: Arc<str> = Arc::from(table);
        let input: Arc<str> = Arc::from(format!("table:{table}"));
        let mut read = 0u64;
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(failed)?;
            let columns: Vec<Arc<str>> = batch.schema().fields().iter().map(|f| Arc::from(f.name().as_str())).collect();
            let mut events = Vec::with_capacity(batch.num_rows());
            for i in 0..batch.num_rows() {
                read += 1;
                let mut row = Row::with_capacity(columns.len());
                for (column, array) in columns.iter().zip(batch.columns()) {
                    row.push(column.clone(), value_at(array, i));
                }
                events.push(ChangeEvent {
                    table: name.clone(),
                    op: Op::Insert,
                    before: None,
                    after: Some(row),
                    commit_time: read_at,
                    position: Position::Line { input: input.clone(), line: read, index: 0 },
                });
            }
            each(events);
        }
        Ok(read)
    }
}
