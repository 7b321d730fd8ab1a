//! `fundguard coverage`: which money fields, business metrics and cross-system flows the
//! rules protect, measured over schemas read from DDL files, live servers, the schema file
//! and a config's warehouse tables; with `--diff`, the design-review gate for a migration.
//!
//! Exit codes: 0 measured; 1 a gate failed (`--fail-under`, `--fail-on-new`); 2 the
//! coverage could not be measured (an unreachable server, an unreadable file).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use fundguard_core::Decimal;
use fundguard_coverage::ddl::{DdlProblem, parse_ddl};
use fundguard_coverage::report::{Format, render};
use fundguard_coverage::schema::{Column, SchemaChange, Table, from_schema_file};
use fundguard_coverage::{Catalog, Input, Overrides, measure, rule_coverage};
use fundguard_rules::load_paths;

#[derive(clap::Args)]
pub struct Args {
    /// Rule files or directories of them.
    #[arg(long, required = true, num_args = 1..)]
    rules: Vec<PathBuf>,
    /// DDL files (MySQL/MariaDB or PostgreSQL; the dialect is found per file).
    #[arg(long, num_args = 1..)]
    ddl: Vec<PathBuf>,
    /// Live servers to read the schema of: mysql://user@host:3306/db, postgres://user@host/db.
    #[arg(long, num_args = 1..)]
    dsn: Vec<String>,
    /// The schema file rules use (`tables: {db.table: {column: type}}`).
    #[arg(long)]
    schema: Option<PathBuf>,
    /// A fundguard.yaml whose `warehouse:` tables are measured too (its databases are connected to).
    #[arg(long)]
    config: Option<PathBuf>,
    #[arg(long, value_enum, default_value_t = FormatArg::Text)]
    format: FormatArg,
    /// A migration (DDL): the money fields and relations it adds are marked new.
    #[arg(long)]
    diff: Option<PathBuf>,
    /// Exit 1 when field coverage is below this percentage (`80`, `92.5`).
    #[arg(long)]
    fail_under: Option<Decimal>,
    /// Exit 1 when the `--diff` migration adds a money field or relation no rule covers.
    #[arg(long, requires = "diff")]
    fail_on_new: bool,
    /// coverage.yaml: include/exclude tables, force classes, declare relations, waive fields, owners.
    #[arg(long)]
    coverage: Option<PathBuf>,
    /// Recorded change logs (plain or gzip) whose events add the tables and columns they show
    /// and a data profile (a short text column holding only currency codes is a currency).
    #[arg(long, num_args = 1.., requires = "sample_format")]
    sample: Vec<PathBuf>,
    /// The format of the --sample logs.
    #[arg(long, value_enum)]
    sample_format: Option<super::backtest::FormatArg>,
    /// Events read from the --sample logs, at most.
    #[arg(long, default_value_t = 100_000)]
    sample_limit: u64,
    /// Where undecodable --sample messages go.
    #[arg(long, default_value = "coverage-sample.dead-letter.jsonl")]
    dead_letter: PathBuf,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum FormatArg {
    Text,
    Json,
    Markdown,
    Html,
    Prometheus,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let overrides = match &args.coverage {
        Some(path) => Overrides::load(path)?,
        None => Overrides::default(),
    };
    let mut catalog = Catalog::default();
    let mut problems: Vec<String> = Vec::new();
    if let Some(path) = &args.schema {
        let schemas = fundguard_rules::load_schemas(path).map_err(|d| anyhow::anyhow!("{d}"))?;
        apply(&mut catalog, from_schema_file(&schemas, &path.display().to_string()));
    }
    for path in &args.ddl {
        let (changes, mut found) = read_ddl(path)?;
        apply(&mut catalog, changes);
        problems.append(&mut found);
    }
    if !args.dsn.is_empty() || args.config.is_some() {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        for url in &args.dsn {
            apply(&mut catalog, runtime.block_on(fundguard_coverage::live::read_server(url))?);
        }
        if let Some(config) = &args.config {
            apply(&mut catalog, warehouse_tables(&runtime, config)?);
        }
    }
    if let Some(format) = args.sample_format {
        let (changes, undecodable) = read_sample(&args.sample, format, args.sample_limit, &args.dead_letter)?;
        apply(&mut catalog, changes);
        if undecodable > 0 {
            problems.push(format!(
                "{undecodable} undecodable --sample message(s) written to {} (check --sample-format)",
                args.dead_letter.display()
            ));
        }
    }
    let mut new_columns = HashSet::new();
    let mut migration_problems = 0;
    if let Some(path) = &args.diff {
        let (changes, mut found) = read_ddl(path)?;
        migration_problems = found.len();
        problems.append(&mut found);
        for change in changes {
            for (table, column) in catalog.apply(change) {
                new_columns.insert((table.to_lowercase(), column.to_lowercase()));
            }
        }
    }
    catalog.retain(|table| overrides.keeps(table));
    if catalog.tables().is_empty() {
        anyhow::bail!(
            "no tables to measure: pass --ddl FILE, --dsn URL, --schema FILE, --sample LOG or --config fundguard.yaml (and check coverage.yaml's include/exclude)"
        );
    }
    let (rules, rule_problems) = load_paths(&args.rules);
    for problem in &rule_problems {
        problems.push(format!("{problem} (this rule is left out of the coverage)"));
    }
    let rule_coverage = rule_coverage(&rules, &catalog);
    let mut report =
        measure(&Input { catalog: &catalog, rules: &rule_coverage, overrides: &overrides, new_columns: &new_columns });
    for problem in &problems {
        eprintln!("{problem}");
    }
    report.problems = problems;
    let format = match args.format {
        FormatArg::Text => Format::Text,
        FormatArg::Json => Format::Json,
        FormatArg::Markdown => Format::Markdown,
        FormatArg::Html => Format::Html,
        FormatArg::Prometheus => Format::Prometheus,
    };
    print!("{}", render(&report, format));

    let mut failed = false;
    if args.fail_on_new {
        let (fields, relations) = report.new_gaps();
        for c in &fields {
            eprintln!("new money field without a rule: {}.{} ({})", c.table, c.column, c.classification.reason);
        }
        for r in &relations {
            eprintln!("new relation without a reconciliation: {} → {}", r.from, r.to);
        }
        if migration_problems > 0 {
            eprintln!("{migration_problems} statement(s) of the migration could not be read: what they add is unknown");
        }
        if !fields.is_empty() || !relations.is_empty() || migration_problems > 0 {
            eprintln!(
                "coverage gate failed: add rules that check these (or waive them in coverage.yaml with a reason)"
            );
            failed = true;
        }
    }
    if let Some(minimum) = args.fail_under {
        let field = report.overall.field;
        if Decimal::from(field.covered) * Decimal::from(100) < minimum * Decimal::from(field.total) {
            eprintln!(
                "coverage gate failed: field coverage {}% ({}/{}) is below {minimum}%",
                field.percent_text(),
                field.covered,
                field.total
            );
            failed = true;
        }
    }
    Ok(if failed { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// The JSON report of `rules` over a schema, with no overrides: what `fundguard demo` shows
/// on its console's Coverage page for the simulator's schema.
pub(crate) fn report_json(changes: Vec<SchemaChange>, rules: &[PathBuf]) -> String {
    let mut catalog = Catalog::default();
    apply(&mut catalog, changes);
    let (rules, _) = load_paths(rules);
    let coverage = rule_coverage(&rules, &catalog);
    let overrides = Overrides::default();
    let report =
        measure(&Input { catalog: &catalog, rules: &coverage, overrides: &overrides, new_columns: &HashSet::new() });
    render(&report, Format::Json)
}

pub(crate) fn apply(catalog: &mut Catalog, changes: Vec<SchemaChange>) {
    for change in changes {
        catalog.apply(change);
    }
}

/// The tables, columns and short text values of up to `limit` events of recorded logs;
/// undecodable messages go to `dead_letter` (their count is returned).
fn read_sample(
    inputs: &[PathBuf],
    format: super::backtest::FormatArg,
    limit: u64,
    dead_letter: &Path,
) -> anyhow::Result<(Vec<SchemaChange>, u64)> {
    use fundguard_formats::Decoded;
    let decoder = format.format(None, None, "ts").decoder(std::sync::Arc::new(Default::default()));
    let mut decoder = decoder.with_max_message_bytes(fundguard_formats::MAX_MESSAGE_BYTES);
    let mut dead_letters = crate::pipeline::DeadLetters::new(dead_letter.to_path_buf());
    let mut sample = fundguard_coverage::sample::SampleSchema::default();
    let (mut events, mut undecodable) = (0u64, 0u64);
    let mut scratch = Vec::new();
    for input in inputs {
        let mut lines = fundguard_sources::open_lines(input)
            .with_context(|| format!("opening the sample {}", input.display()))?
            .with_max_line(fundguard_formats::MAX_MESSAGE_BYTES);
        while events < limit {
            let Some((line, position)) = lines.next_line()? else { break };
            scratch.clear();
            match decoder.decode(line, &position, &mut scratch) {
                Ok(Decoded::Events(_) | Decoded::Skipped(_)) => {}
                Err(e) => {
                    undecodable += 1;
                    dead_letters.write(line, &position, &e.to_string())?;
                }
            }
            for event in &scratch {
                sample.observe(event);
                events += 1;
            }
        }
    }
    dead_letters.flush()?;
    let source = inputs.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ");
    Ok((sample.changes(&format!("sample {source}")), undecodable))
}

/// A DDL file's changes and its problems, each as `file:line:column: …`.
pub(crate) fn read_ddl(path: &Path) -> anyhow::Result<(Vec<SchemaChange>, Vec<String>)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading the DDL file {}", path.display()))?;
    let parsed = parse_ddl(&path.display().to_string(), &text);
    Ok((parsed.changes, parsed.problems.iter().map(DdlProblem::to_string).collect()))
}

/// The tables of the config's `warehouse:`, as their files and databases describe them.
fn warehouse_tables(runtime: &tokio::runtime::Runtime, path: &Path) -> anyhow::Result<Vec<SchemaChange>> {
    let config = super::load_config(path)?;
    let warehouse = super::open_warehouse(runtime, &config)?;
    let ctx = warehouse.context();
    let mut changes = Vec::new();
    for catalog_name in ctx.catalog_names() {
        let Some(catalog) = ctx.catalog(&catalog_name) else { continue };
        for schema_name in catalog.schema_names() {
            if schema_name == "information_schema" {
                continue;
            }
            let Some(schema) = catalog.schema(&schema_name) else { continue };
            for table_name in schema.table_names() {
                let Some(table) = runtime.block_on(schema.table(&table_name)).ok().flatten() else { continue };
                let name =
                    if schema_name == "public" { table_name.clone() } else { format!("{schema_name}.{table_name}") };
                let columns = table
                    .schema()
                    .fields()
                    .iter()
                    .map(|f| Column {
                        name: f.name().clone(),
                        data_type: f.data_type().to_string(),
                        comment: None,
                        references: None,
                        samples: Vec::new(),
                    })
                    .collect();
                changes.push(SchemaChange::CreateTable(Table {
                    name,
                    columns,
                    source: format!("warehouse of {}", path.display()),
                }));
            }
        }
    }
    Ok(changes)
}
