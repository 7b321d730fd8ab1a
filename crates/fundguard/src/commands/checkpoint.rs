//! `fundguard checkpoint`: what a data directory's checkpoint holds — where each source
//! resumes, the findings-file marks and the size of the rule state — as JSON. Reading it
//! also checks it (version, checksum), so this is the way to vet a checkpoint before a restart.

use std::path::PathBuf;
use std::process::ExitCode;

use crate::live::checkpoint::Checkpoint;

#[derive(clap::Args)]
pub struct Args {
    /// The `data_dir` of a `fundguard run` configuration.
    #[arg(default_value = "fundguard-data")]
    data_dir: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let Some(checkpoint) = Checkpoint::load(&args.data_dir)? else {
        anyhow::bail!(
            "{} holds no checkpoint yet: `fundguard run` writes one every checkpoint_interval",
            args.data_dir.display()
        );
    };
    let shown = serde_json::json!({
        "epoch": checkpoint.epoch,
        "written_at": checkpoint.written_at,
        "sources": checkpoint.sources,
        "rule_state_bytes": checkpoint.engine.len(),
        "findings_files": checkpoint.findings_files,
    });
    println!("{}", serde_json::to_string_pretty(&shown)?);
    Ok(ExitCode::SUCCESS)
}
