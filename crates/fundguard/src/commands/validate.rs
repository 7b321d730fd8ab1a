//! `fundguard validate`: every problem in the rule files at once, with file, line and column.
//!
//! With `--config`, `sql` rules are also planned against the warehouse tables that
//! config declares: unknown tables and columns, type errors, and result columns the
//! rule names but the query does not return.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use fundguard_engine::{Engine, sort_diagnostics};
use fundguard_rules::{Diagnostic, Location, Rule, RuleBody, load_paths};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    files: super::RuleFiles,
    /// A fundguard.yaml whose `warehouse:` tables sql rules are checked against.
    #[arg(long)]
    config: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let schemas = crate::schemas::load(args.files.schema.as_ref())?;
    let (rules, mut problems) = load_paths(&args.files.rules);
    if let Err(mut more) = Engine::new(&rules, &schemas) {
        problems.append(&mut more);
    }
    let sql_rules = rules.iter().filter(|r| !r.body.is_streaming()).count();
    let mut syntax = fundguard_warehouse::check_rules(&rules);
    let unparsed: Vec<_> = syntax.iter().map(|d| d.location.clone()).collect();
    problems.append(&mut syntax);
    match &args.config {
        Some(config) => problems.append(&mut check_sql_rules(&rules, &unparsed, config)?),
        None if sql_rules > 0 => {
            eprintln!("note: {sql_rules} sql rule(s) not checked against tables: pass --config fundguard.yaml");
        }
        None => {}
    }
    let lookups_read: Vec<&fundguard_rules::LookupUse> = rules.iter().flat_map(|r| &r.lookups).collect();
    match &args.config {
        Some(path) => {
            let config = super::load_config(path)?;
            for u in lookups_read.iter().filter(|u| !config.lookups.iter().any(|l| l.name == u.name)) {
                problems.push(Diagnostic::new(
                    u.at.clone(),
                    format!(
                        "lookup `{}` is not declared under `lookups:` in {}: expected an entry with `table:` or `stream:`",
                        u.name,
                        path.display()
                    ),
                ));
            }
        }
        None if !lookups_read.is_empty() => {
            eprintln!("note: the lookups rules read are not checked against a config: pass --config fundguard.yaml");
        }
        None => {}
    }
    sort_diagnostics(&mut problems);
    for p in &problems {
        println!("{p}");
    }
    if problems.is_empty() {
        println!("{} rule(s) valid", rules.len());
        Ok(ExitCode::SUCCESS)
    } else {
        println!("{} problem(s) found", problems.len());
        Ok(ExitCode::from(1))
    }
}

/// Plans every sql rule's query (for yesterday's business date) in the config's warehouse,
/// except those whose query did not parse (`unparsed`: already reported).
fn check_sql_rules(rules: &[Rule], unparsed: &[Location], config: &Path) -> anyhow::Result<Vec<Diagnostic>> {
    let config = super::load_config(config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let warehouse = super::open_warehouse(&runtime, &config)?;
    let yesterday = chrono::Utc::now().date_naive().pred_opt().unwrap_or_default();
    let mut problems = Vec::new();
    for rule in rules {
        let RuleBody::Sql(sql) = &rule.body else { continue };
        if unparsed.contains(&sql.query.at) {
            continue;
        }
        if let Err(e) = runtime.block_on(fundguard_warehouse::plan(&warehouse, rule, yesterday)) {
            problems.push(Diagnostic::new(sql.query.at.clone(), format!("query: {e}")));
        }
    }
    Ok(problems)
}
