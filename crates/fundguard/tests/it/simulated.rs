//! Simulator output for the live-source tests: the logs, the check rules (stateless and
//! time-independent, so a killed fundguard and real commit times change nothing), and the
//! findings a backtest of the Debezium log gives — what every live run must reproduce.

use std::collections::BTreeSet;
use std::path::PathBuf;

use crate::{fundguard, path, read_jsonl, repo_root, stderr};

pub struct Simulated {
    pub dir: tempfile::TempDir,
}

impl Simulated {
    /// `fundguard simulate` in `formats` (comma-separated) for `orders` orders, with 15 %
    /// of them carrying an incident, and the check rules copied beside it.
    pub fn new(formats: &str, orders: u32) -> Simulated {
        Simulated::with_incidents(formats, orders, "0.15")
    }

    /// As [`Simulated::new`], with `rate` of the orders carrying an incident.
    pub fn with_incidents(formats: &str, orders: u32, rate: &str) -> Simulated {
        let dir = tempfile::tempdir().unwrap();
        let orders = orders.to_string();
        let out = path(dir.path());
        let args = ["simulate", "--out", out, "--format", formats, "--orders", &orders, "--incident-rate", rate];
        let o = fundguard(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let rules = dir.path().join("rules");
        std::fs::create_dir(&rules).unwrap();
        for entry in std::fs::read_dir(repo_root().join("examples/rules")).unwrap() {
            let file = entry.unwrap().path();
            if std::fs::read_to_string(&file).unwrap().lines().any(|l| l.starts_with("check:")) {
                std::fs::copy(&file, rules.join(file.file_name().unwrap())).unwrap();
            }
        }
        Simulated { dir }
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub fn rules(&self) -> PathBuf {
        self.file("rules")
    }

    pub fn schema(&self) -> PathBuf {
        self.file("schema.yaml")
    }

    /// The (rule, key) pairs a backtest of the Debezium log finds with the check rules.
    pub fn expected(&self) -> BTreeSet<(String, String)> {
        let findings = self.file("expected.jsonl");
        let o = fundguard(&[
            "backtest",
            "--rules",
            path(&self.rules()),
            "--input",
            path(&self.file("debezium.jsonl")),
            "--format",
            "debezium",
            "--schema",
            path(&self.schema()),
            "--findings",
            path(&findings),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let expected: BTreeSet<(String, String)> = read_jsonl(&findings)
            .iter()
            .map(|f| (f["rule"].as_str().unwrap().to_string(), f["key"].to_string()))
            .collect();
        assert!(expected.len() > 10, "the simulated incidents make findings: {expected:?}");
        expected
    }
}
