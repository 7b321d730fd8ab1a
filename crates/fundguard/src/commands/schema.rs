//! `fundguard schema import`: the schema file rules need (`tables: {db.table: {column:
//! type}}`), written from DDL files or a live server instead of by hand.
//!
//! The tables come through the same intake as `fundguard coverage` (one DDL parser for
//! MySQL and PostgreSQL, one reader of `information_schema` and `pg_catalog`), and each
//! column's declared type maps to the type rules see
//! ([`fundguard_coverage::schema::declared_type`]). Every line keeps the type as the
//! source spelled it in a comment, so precision and scale stay visible to whoever reviews
//! the file.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use fundguard_coverage::Catalog;
use fundguard_coverage::schema::declared_type;

use super::coverage::apply;

#[derive(clap::Args)]
pub struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Subcommand)]
enum Command {
    /// Write a schema file from DDL files (MySQL, PostgreSQL) or live servers.
    Import(ImportArgs),
}

#[derive(clap::Args)]
struct ImportArgs {
    /// DDL files (`CREATE TABLE …`, a dump, migrations in order).
    #[arg(long, num_args = 1.., required_unless_present = "dsn")]
    ddl: Vec<PathBuf>,
    /// Servers to read: `mysql://user:pass@host/db`, `postgres://user@host/db`.
    #[arg(long, num_args = 1..)]
    dsn: Vec<String>,
    /// Where to write the schema file (default: stdout).
    #[arg(long)]
    out: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Command::Import(args) = args.command;
    let mut catalog = Catalog::default();
    let mut sources = Vec::new();
    let mut problems = Vec::new();
    for path in &args.ddl {
        let (changes, mut found) = super::coverage::read_ddl(path)?;
        apply(&mut catalog, changes);
        problems.append(&mut found);
        sources.push(path.display().to_string());
    }
    if !args.dsn.is_empty() {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
        for url in &args.dsn {
            apply(&mut catalog, runtime.block_on(fundguard_coverage::live::read_server(url))?);
            sources.push(fundguard_coverage::live::redact(url));
        }
    }
    for p in &problems {
        eprintln!("{p}");
    }
    if catalog.tables().is_empty() {
        anyhow::bail!("no CREATE TABLE found in {}: nothing to write", sources.join(", "));
    }
    let text = render(&catalog, &sources);
    // The file must read back as a schema file: a type this writer maps is one rules know.
    let parsed =
        fundguard_rules::parse_schemas("the schema written".into(), &text).map_err(|d| anyhow::anyhow!("{d}"))?;
    let columns: usize = parsed.tables.values().map(|c| c.len()).sum();
    match &args.out {
        Some(path) => {
            std::fs::write(path, &text).with_context(|| format!("writing {}", path.display()))?;
            eprintln!("{} table(s), {columns} column(s) written to {}", parsed.tables.len(), path.display());
        }
        None => print!("{text}"),
    }
    Ok(if problems.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// The schema file's text: tables and columns in name order, each column's source type
/// in a comment.
fn render(catalog: &Catalog, sources: &[String]) -> String {
    let mut tables: Vec<_> = catalog.tables().iter().collect();
    tables.sort_by(|a, b| a.name.cmp(&b.name));
    let mut out = format!("# Written by `fundguard schema import` from {}.\ntables:\n", sources.join(", "));
    for table in tables {
        let _ = writeln!(out, "  {}:", quoted(&table.name));
        let mut columns: Vec<_> = table.columns.iter().collect();
        columns.sort_by(|a, b| a.name.cmp(&b.name));
        for c in columns {
            let comment = c.data_type.replace(['\n', '\r'], " ");
            let _ = writeln!(out, "    {}: {}   # {comment}", quoted(&c.name), declared_type(&c.data_type));
        }
    }
    out
}

/// A YAML key: JSON-quoted, so any table or column name reads back unchanged.
fn quoted(name: &str) -> String {
    serde_json::to_string(name).unwrap_or_default()
}
