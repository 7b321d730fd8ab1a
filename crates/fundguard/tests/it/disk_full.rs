//! A findings file on a full disk: `fundguard run` stops reading (the source's position
//! stays where it was, health and metrics say why), retries, and once there is space again
//! every finding is in the file exactly once; `fundguard backtest` fails, naming the file.
//!
//! The disk is a small tmpfs mounted for the test, which needs root (CAP_SYS_ADMIN); where
//! mounting is not permitted the tests say so on stderr and pass without running.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::service::{Service, agent, wait, write_config};
use crate::{fundguard, path, repo_root, stderr};

/// A tmpfs mounted on a fresh directory for the length of a test.
struct SmallDisk {
    _dir: tempfile::TempDir,
    root: PathBuf,
}

impl SmallDisk {
    /// `None` (said on stderr) where mounting is not permitted.
    fn mount(size: &str) -> Option<SmallDisk> {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("disk");
        std::fs::create_dir(&root).unwrap();
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs", path(&root)])
            .output()
            .is_ok_and(|o| o.status.success());
        if !mounted {
            eprintln!("SKIPPED: cannot mount a tmpfs here (needs root): the full-disk test did not run");
            return None;
        }
        Some(SmallDisk { _dir: dir, root })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Takes every free byte with a filler file.
    fn fill(&self) {
        let mut filler = std::fs::File::create(self.path("filler")).unwrap();
        while filler.write_all(&[0u8; 4096]).is_ok() {}
        while filler.write_all(&[0u8; 1]).is_ok() {}
    }

    fn free(&self) {
        std::fs::remove_file(self.path("filler")).unwrap();
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = Command::new("umount").args(["-l", path(&self.root)]).status();
    }
}

fn refund(id: u64) -> String {
    format!(
        "{{\"database\":\"shop\",\"table\":\"refunds\",\"type\":\"insert\",\"ts\":1714550401,\"data\":{{\"id\":{id},\"order_id\":3,\"amount\":-5,\"currency\":\"CNY\"}}}}\n"
    )
}

fn append(log: &Path, ids: std::ops::RangeInclusive<u64>) {
    let mut f = std::fs::OpenOptions::new().append(true).create(true).open(log).unwrap();
    f.write_all(ids.map(refund).collect::<String>().as_bytes()).unwrap();
}

/// Refund id → how often it was found, from the findings file's complete lines (a full
/// disk may have cut the last one short).
fn found(findings: &Path) -> BTreeMap<u64, u32> {
    let text = std::fs::read_to_string(findings).unwrap_or_default();
    let mut ids = BTreeMap::new();
    for line in text.split_inclusive('\n').filter_map(|l| l.strip_suffix('\n')) {
        let finding: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
        *ids.entry(finding["key"]["id"].as_u64().unwrap()).or_default() += 1;
    }
    ids
}

fn metric(service: &Service, name: &str) -> Option<f64> {
    let text = agent().get(&format!("{}/metrics", service.url())).call().unwrap().body_mut().read_to_string().unwrap();
    let line = text.lines().find(|l| l.starts_with(name))?;
    line.rsplit(' ').next()?.parse().ok()
}

#[test]
fn a_full_disk_under_the_findings_file_stops_reading_and_loses_no_finding() {
    let Some(disk) = SmallDisk::mount("1m") else { return };
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::copy(repo_root().join("examples/rules/refund-amount-positive.yaml"), rules.join("r.yaml")).unwrap();
    let log = dir.path().join("maxwell.jsonl");
    append(&log, 1..=5);
    let findings = disk.path("findings.jsonl");
    let config = write_config(
        dir.path(),
        &format!(
            "rules: [{}]\ndata_dir: data\nlisten: 127.0.0.1:0\ncheckpoint_interval: 1s\nsources:\n  - {{ name: log, type: file, path: {}, format: maxwell, follow: true }}\nsinks:\n  - {{ type: jsonl, path: {} }}\n",
            path(&rules),
            path(&log),
            path(&findings)
        ),
    );
    let service = Service::start(&config, &[]);
    let all_found = |n: usize| wait(Duration::from_secs(20), || (found(&findings).len() >= n).then_some(()));
    all_found(5).unwrap_or_else(|| panic!("the first findings; stderr: {:?}", service.stderr.lock().unwrap()));
    let before = service.sources()[0].clone();

    disk.fill();
    append(&log, 6..=400);
    let complaint = service.wait_for("cannot write findings to jsonl");
    assert!(complaint.contains("No space left on device") && complaint.contains("reading nothing"), "{complaint}");
    let blocked = service.sources()[0].clone();
    let state = blocked["state"].as_str().unwrap();
    assert!(state.starts_with("blocked: cannot write findings to jsonl"), "{blocked}");
    let sink = format!("fundguard_sink_blocked{{sink=\"jsonl {}\"}}", path(&findings));
    assert_eq!(metric(&service, &sink), Some(1.0), "the metric says so");
    assert!(metric(&service, "fundguard_sink_write_errors_total").is_some_and(|n| n >= 1.0));
    let ready = agent().get(&format!("{}/readyz", service.url())).call().unwrap();
    assert_eq!(ready.status().as_u16(), 503, "not ready while findings cannot be written");

    // Nothing more is read: the source's position and counts stay where the held batch began.
    append(&log, 401..=500);
    std::thread::sleep(Duration::from_millis(2500));
    let still = service.sources()[0].clone();
    assert_eq!(still["last_position"], before["last_position"], "{still}");
    assert_eq!(still["events"], before["events"], "{still}");
    assert!(found(&findings).len() < 500, "the disk is full");

    disk.free();
    service.wait_for("findings written to jsonl");
    all_found(500).unwrap_or_else(|| {
        panic!("every finding after the disk got space; stderr: {:?}", service.stderr.lock().unwrap())
    });
    std::thread::sleep(Duration::from_millis(1500));
    let ids = found(&findings);
    assert_eq!(ids.keys().copied().collect::<Vec<_>>(), (1..=500).collect::<Vec<_>>(), "no finding lost");
    assert!(ids.values().all(|n| *n == 1), "no finding written twice: {ids:?}");
    let text = std::fs::read_to_string(&findings).unwrap();
    assert!(text.ends_with('\n') && text.lines().count() == 500, "no torn line");
    let after = service.sources()[0].clone();
    assert_eq!(after["state"], "reading", "{after}");
    assert_eq!(after["events"], 500, "{after}");
    assert_eq!(metric(&service, &sink), Some(0.0));
}

#[test]
fn a_backtest_whose_findings_file_cannot_be_written_fails_naming_it() {
    let Some(disk) = SmallDisk::mount("64k") else { return };
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("log.jsonl");
    append(&input, 1..=300);
    disk.fill();
    let findings = disk.path("out.jsonl");
    let o = fundguard(&[
        "backtest",
        "--rules",
        "examples/rules",
        "--input",
        path(&input),
        "--format",
        "maxwell",
        "--findings",
        path(&findings),
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains(&format!("error: writing findings to {}: No space left on device", path(&findings))), "{err}");
}
