//! `fundguard validate`: every problem in the rule files at once, with file, line and column.

use std::process::ExitCode;

use fundguard_engine::{Engine, sort_diagnostics};
use fundguard_rules::load_paths;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    files: super::RuleFiles,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let schemas = super::schemas(args.files.schema.as_ref())?;
    let (rules, mut problems) = load_paths(&args.files.rules);
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
