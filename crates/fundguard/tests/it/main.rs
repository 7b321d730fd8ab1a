//! End-to-end tests: the `fundguard` binary run as a user runs it.

mod alerts;
mod api;
mod attribution;
mod backtest;
mod cli;
mod console;
mod coverage;
mod crash;
mod databases;
mod dead_letters;
mod deploy;
mod disk_full;
mod guards;
mod health;
mod kafka;
mod live_order;
mod lookups;
mod notify;
mod run;
mod schema;
mod script;
mod secrets;
mod servers;
mod service;
mod simulated;
mod sql;
mod suggest;
mod tls;
mod untrusted;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Runs the binary with arguments, from the repository root.
pub fn fundguard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_fundguard")).args(args).current_dir(repo_root()).output().unwrap()
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

pub fn path(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Reads a JSON-lines file.
pub fn read_jsonl(p: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}
