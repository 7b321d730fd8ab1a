//! Integration tests of scheduled SQL: real PostgreSQL and MariaDB (the machine's shared
//! servers, a fresh database per test), Parquet/CSV/JSON files and SQLite written by the
//! tests, and the scheduler driven by an injected clock.

mod confinement;
mod cross_source;
mod files;
mod scheduler;
mod semantics;
mod support;
