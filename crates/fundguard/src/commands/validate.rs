//! `fundguard validate`: every problem in the rule files at once, with file, line and column.

use std::path::PathBuf;
use std::process::ExitCode;

use fundguard_engine::{Engine, sort_diagnostics};
use fundguard_rules::load_paths;

#[derive(clap::Args)]
pub struct Args {
    /// Rule files or directories of them.
    #[arg(required = true)]
    rules: Vec<PathBuf>,
    /// Declared column types (`tables: {db.table: {column: type}}`): enables unknown-column and type checks.
    #[arg(long)]
    schema: Option<PathBuf>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let schemas = super::schemas(args.schema.as_ref())?;
    let (rules, mut problems) = load_paths(&args.rules);
    if let Err(mut more) = Engine::new(&rules, &schemas) {
        problems.append(&mut more);
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
