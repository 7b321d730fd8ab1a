//! `fundguard test`: runs the tests inside rule files and reports like a test runner.

use std::process::ExitCode;

use fundguard_engine::run_rule_tests;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    files: super::RuleFiles,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let schemas = crate::schemas::load(args.files.schema.as_ref())?;
    let rules = super::rules(&args.files.rules)?;
    let outcomes = run_rule_tests(&rules, &schemas);
    let mut failed = 0;
    for o in &outcomes {
        if o.passed() {
            println!("test {} :: {} ... ok", o.rule, o.test);
            continue;
        }
        failed += 1;
        println!("test {} :: {} ... FAILED", o.rule, o.test);
        if let Some(e) = &o.error {
            println!("    error: {e}");
        }
        for m in &o.missing {
            let key: Vec<String> = m.key.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            let message = m.message.as_ref().map(|m| format!(", message: {m:?}")).unwrap_or_default();
            println!("    - expected, not found: {{ key: {{ {} }}{message} }}", key.join(", "));
        }
        for f in &o.unexpected {
            let key: Vec<String> = f.key.iter().map(|(k, v)| format!("{k}: {v}")).collect();
            println!("    + found, not expected: {{ key: {{ {} }}, message: {:?} }}", key.join(", "), f.message);
        }
    }
    let passed = outcomes.len() - failed;
    println!();
    println!("test result: {}. {passed} passed; {failed} failed", if failed == 0 { "ok" } else { "FAILED" });
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
