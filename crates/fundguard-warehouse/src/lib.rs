//! Scheduled SQL checks (D+1 reconciliation) over warehouse tables.
//!
//! Not every check belongs on the stream: daily totals between systems are checked the
//! next day with SQL. A `sql` rule is a query whose every result row is a finding; this
//! crate runs it:
//!
//! - [`tables`]: the tables declared under `warehouse:` in `fundguard.yaml` (Parquet, CSV
//!   and JSON-lines files, local or on S3; PostgreSQL, MySQL/MariaDB and SQLite
//!   databases), registered in one DataFusion session so a query can join them;
//! - `rows.rs`: a table's rows as change events, for profiling tables like change logs
//!   (`Warehouse::table_names`, `Warehouse::rows`);
//! - [`read_only`]: rule SQL is one read-only query — checked on its syntax (at load,
//!   without the tables) and on its plan (before anything runs);
//! - [`run`]: one run of a rule for a business date — the query rendered with `{{ ds }}`,
//!   bounded by the rule's timeout, memory limit and findings cap, each row a `Finding`, a
//!   failed run a finding for the rule's owner;
//! - [`schedule`]: cron fire times in the rule's time zone, business dates, catch-up;
//! - [`scheduler`] and [`history`]: what `fundguard run` drives with the clock, and the
//!   run records and schedule cursors it keeps in the data directory.
//!
//! The findings go through the same sinks, alert store and notifiers as streaming ones.

pub mod history;
pub mod read_only;
mod rows;
pub mod run;
pub mod schedule;
pub mod scheduler;
pub mod tables;

pub use history::History;
pub use run::{
    FAILED_RUN_TAG, QueryError, RunOutcome, RunRecord, RunStatus, check_rules, failed, plan, render_query, run,
};
pub use scheduler::{DueRun, Scheduler};
pub use tables::{FileTable, S3Options, TableSource, Warehouse, WarehouseError};
