//! `fundguard run --config fundguard.yaml`: the long-running service.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::live;

#[derive(clap::Args)]
pub struct Args {
    /// The service configuration (sources, rules, sinks, listener); see docs/sources.md.
    #[arg(long, default_value = "fundguard.yaml")]
    config: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let config = match crate::config::load(&args.config, |name| std::env::var(name).ok()) {
        Ok(c) => c,
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            eprintln!("{} problem(s) in the configuration", problems.len());
            return Ok(ExitCode::from(1));
        }
    };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let result = runtime.block_on(live::run(config));
    // Tasks still running after the drain (or its timeout) must not hold the exit up.
    runtime.shutdown_background();
    result?;
    Ok(ExitCode::SUCCESS)
}
