//! The crash harness: `fundguard run` killed with SIGKILL at random points and restarted
//! each time must end exactly where an uninterrupted run ends — the same findings (none
//! lost, none twice), the same alerts, and each alert notified once at a local webhook.
//!
//! Two workloads: a recorded Debezium log of over a million simulator events (a file
//! source), and a live MariaDB binlog written while fundguard is being killed. Every
//! example rule runs, stateful ones included: their state comes back from checkpoints.
//! The seed of the kill schedule is printed; `FG_CRASH_SEED` replays one.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::databases::{Changes, Dialect};
use crate::notify::{Received, receiver};
use crate::servers::MariaDb;
use crate::service::{Service, free_port, wait, write_config};
use crate::simulated::Simulated;
use crate::{fundguard, path, read_jsonl, repo_root, stdout};

/// A small deterministic generator for the kill schedule.
struct Schedule(u64);

impl Schedule {
    fn new() -> Schedule {
        let seed = std::env::var("FG_CRASH_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
            std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64 | 1
        });
        eprintln!("crash schedule seed: FG_CRASH_SEED={seed}");
        Schedule(seed)
    }

    /// A pause between `min` and `max` milliseconds.
    fn pause(&mut self, min: u64, max: u64) -> Duration {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        Duration::from_millis(min + self.0 % (max - min))
    }
}

/// One fundguard deployment: its directory, config and webhook receiver.
struct Deployment {
    dir: tempfile::TempDir,
    config: PathBuf,
    hook: Arc<Mutex<Vec<Received>>>,
    idle_after: Duration,
}

impl Deployment {
    /// `idle_after` must be longer than any pause in reading: a quiet source lets the wall
    /// clock stand in for its commit times, which fires deadlines early when the commit
    /// times are historical (a recorded log).
    fn new(source: &str, schema: &Path, idle_after: Duration, checkpoint_interval: Duration) -> Deployment {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let hook = receiver(port);
        let config = write_config(
            dir.path(),
            &format!(
                "rules: [{rules}]\nschema: {schema}\ndata_dir: data\nlisten: 127.0.0.1:0\ncheckpoint_interval: {interval}s\nidle_after: {idle}s\nsources:\n  - {source}\nsinks:\n  - {{ type: jsonl, path: findings.jsonl }}\n  - {{ type: alerts }}\nnotify:\n  channels:\n    - {{ name: hook, type: webhook, url: \"http://127.0.0.1:{port}/hook\" }}\n  routes:\n    - {{ owner: [refunds, settlement], channels: [hook] }}\n",
                rules = path(&repo_root().join("examples/rules")),
                schema = path(schema),
                idle = idle_after.as_secs(),
                interval = checkpoint_interval.as_secs(),
            ),
        );
        Deployment { dir, config, hook, idle_after }
    }

    fn start(&self) -> Service {
        Service::start(&self.config, &[])
    }

    /// What the last checkpoint says of source `name`.
    fn progress(&self, name: &str) -> serde_json::Value {
        let o = fundguard(&["checkpoint", path(&self.dir.path().join("data"))]);
        serde_json::from_slice::<serde_json::Value>(&o.stdout).map(|c| c["sources"][name].clone()).unwrap_or_default()
    }

    /// Waits until the input is read (`read_all`), then until the findings file and the
    /// outbox stop changing and the wall clock is past `windows_closed`: idle clocks have
    /// fired the last deadlines, closed the last time windows, and every notification went
    /// out. Findings are sparse, so a quiet findings file alone does not mean the input is
    /// done.
    fn settle(&self, read_all: impl Fn() -> bool, windows_closed: SystemTime) {
        let read = wait(Duration::from_secs(900), || {
            std::thread::sleep(Duration::from_millis(500));
            read_all().then_some(())
        });
        assert!(read.is_some(), "the whole input is read within 15 minutes");
        let findings = self.dir.path().join("findings.jsonl");
        let mut last = (u64::MAX, String::new());
        let mut stable = 0;
        let to_close = windows_closed.duration_since(SystemTime::now()).unwrap_or_default();
        let settled = wait(Duration::from_secs(300) + to_close, || {
            std::thread::sleep(Duration::from_millis(400));
            let now = (std::fs::metadata(&findings).map(|m| m.len()).unwrap_or(0), self.outbox());
            stable = if now == last && now.1.starts_with("pending 0,") { stable + 1 } else { 0 };
            last = now;
            // Longer than idle_after plus the allowed lateness, so the last deadlines have fired.
            let quiet = Duration::from_millis(400) * stable > self.idle_after + Duration::from_secs(9);
            // The last windows close on the idle clock after `windows_closed`: give that the same margin.
            let closed = SystemTime::now() > windows_closed + self.idle_after + Duration::from_secs(9);
            (quiet && closed).then_some(())
        });
        assert!(settled.is_some(), "the run settles: {last:?}");
    }

    fn outbox(&self) -> String {
        let store = self.dir.path().join("data/alerts.db");
        stdout(&fundguard(&["alerts", "--store", path(&store), "outbox"])).trim().to_string()
    }

    /// Findings without the wall-clock `detected_at`, sorted; duplicates kept.
    fn findings(&self) -> Vec<String> {
        let mut shown: Vec<String> = read_jsonl(&self.dir.path().join("findings.jsonl"))
            .into_iter()
            .map(|mut f| {
                f.as_object_mut().unwrap().remove("detected_at");
                f.to_string()
            })
            .collect();
        shown.sort();
        shown
    }

    /// Alerts by fingerprint: rule, occurrences, status (first and last seen are detection
    /// times, which differ between any two runs).
    fn alerts(&self) -> BTreeMap<String, String> {
        let store = self.dir.path().join("data/alerts.db");
        let o = fundguard(&["alerts", "--store", path(&store), "list", "--json", "--limit", "10000000"]);
        stdout(&o)
            .lines()
            .map(|l| {
                let a: serde_json::Value = serde_json::from_str(l).unwrap();
                let shown = format!("{} {} {}", a["rule"], a["count"], a["status"]);
                (a["fingerprint"].as_str().unwrap().to_string(), shown)
            })
            .collect()
    }

    /// Notifications received, by alert fingerprint and event: the delivery ids of each. A
    /// grouped message (a storm: several alerts of one rule due in the same round, which
    /// depends on timing) names every alert of the group in `alerts` with its delivery in
    /// `deliveries`. An incident's updates (about its first alert) are told apart by the
    /// alert count they report; how many an incident sends depends on the wall clock, so
    /// they are returned apart, not compared between runs.
    fn notified(&self) -> (BTreeMap<String, Vec<String>>, BTreeMap<String, Vec<String>>) {
        let (mut by_alert, mut updates): (BTreeMap<String, Vec<String>>, BTreeMap<String, Vec<String>>) =
            Default::default();
        for (headers, body) in self.hook.lock().unwrap().iter() {
            let json: serde_json::Value = serde_json::from_str(body).unwrap();
            let event = json["event"].as_str().unwrap_or_default().to_string();
            if event == "incident_updated" {
                let key = format!("{} {}", json["alert"]["fingerprint"], json["incident"]["alerts"]);
                updates.entry(key).or_default().push(headers["x-fundguard-delivery"].clone());
                continue;
            }
            let delivered: Vec<(serde_json::Value, String)> = match json["alerts"].as_array() {
                Some(group) => {
                    let ids = json["deliveries"].as_array().expect("a group lists its deliveries");
                    group.iter().cloned().zip(ids.iter().map(|id| id.to_string())).collect()
                }
                None => vec![(json["alert"].clone(), headers["x-fundguard-delivery"].clone())],
            };
            for (alert, id) in delivered {
                let fingerprint = alert["fingerprint"].as_str().expect("the payload names its alerts");
                by_alert.entry(format!("{fingerprint} {event}")).or_default().push(id);
            }
        }
        (by_alert, updates)
    }
}

/// Asserts the crashed deployment ended exactly like the uninterrupted one.
fn assert_same_end(crashed: &Deployment, whole: &Deployment) {
    let (got, want) = (crashed.findings(), whole.findings());
    assert!(!want.is_empty());
    let mut distinct = got.clone();
    distinct.dedup();
    assert_eq!(distinct.len(), got.len(), "no finding written twice");
    if got != want {
        let missing: Vec<_> = want.iter().filter(|f| !got.contains(f)).take(3).collect();
        let extra: Vec<_> = got.iter().filter(|f| !want.contains(f)).take(3).collect();
        panic!("{} findings vs {} uninterrupted; missing {missing:?}; extra {extra:?}", got.len(), want.len());
    }
    let (got, want) = (crashed.alerts(), whole.alerts());
    let differ: Vec<_> =
        want.iter().filter(|(k, v)| got.get(*k) != Some(v)).map(|(k, v)| (k, v, got.get(k))).take(5).collect();
    let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).take(5).collect();
    assert!(
        differ.is_empty() && extra.is_empty(),
        "the same alerts with the same counts ({} vs {} uninterrupted): (alert, uninterrupted, crashed) {differ:?}; only after crashes: {extra:?}",
        got.len(),
        want.len()
    );
    let ((notified, updates), (expected, _)) = (crashed.notified(), whole.notified());
    assert!(!expected.is_empty());
    assert_eq!(notified.keys().collect::<Vec<_>>(), expected.keys().collect::<Vec<_>>(), "the same alerts notified");
    for (alert, ids) in notified.iter().chain(&updates) {
        let mut distinct = ids.clone();
        distinct.sort();
        distinct.dedup();
        assert_eq!(distinct.len(), 1, "alert {alert} notified once, not {ids:?}");
    }
    let redelivered: usize = notified.values().map(|ids| ids.len() - 1).sum();
    eprintln!(
        "{} findings, {} alerts, {} notified; same-id redeliveries after a kill: {redelivered}",
        got.len(),
        expected.len(),
        notified.len()
    );
}

#[test]
fn a_recorded_log_killed_twenty_times_ends_exactly_like_an_uninterrupted_run() {
    let orders: u32 = std::env::var("FG_CRASH_ORDERS").ok().and_then(|o| o.parse().ok()).unwrap_or(102_000);
    // 1 % of orders with an incident: thousands of findings, without making the alert
    // store (not crash safety) what the test spends its time on.
    let sim = Simulated::with_incidents("debezium", orders, "0.01");
    let log = sim.file("debezium.jsonl");
    let lines = std::fs::read_to_string(&log).unwrap().lines().count() as u64;
    eprintln!("{lines} change events");
    let source = format!("{{ name: log, type: file, path: {}, format: debezium }}", path(&log));

    let read_all = |d: &Deployment| d.progress("log")["line"].as_u64() == Some(lines);
    // Historical commit times: idleness only at the end, when the idle clock jumps past
    // every window; the default checkpoint interval.
    let deployment = || Deployment::new(&source, &sim.schema(), Duration::from_secs(15), Duration::from_secs(5));
    let whole = deployment();
    {
        let _run = whole.start();
        whole.settle(|| read_all(&whole), SystemTime::UNIX_EPOCH);
    }

    let crashed = deployment();
    let mut schedule = Schedule::new();
    let mut kills = 0;
    while kills < 20 {
        let run = crashed.start();
        // At the default 5 s checkpoint interval, 2–12 s kills some runs before their first
        // checkpoint, some while one is written and some between two.
        std::thread::sleep(schedule.pause(2000, 12000));
        drop(run); // SIGKILL
        kills += 1;
    }
    let line = crashed.progress("log")["line"].as_u64().unwrap_or(0);
    eprintln!("after {kills} kills the checkpoint is at line {line} of {lines}");
    let _run = crashed.start();
    crashed.settle(|| read_all(&crashed), SystemTime::UNIX_EPOCH);
    assert_same_end(&crashed, &whole);
}

#[test]
fn a_live_binlog_killed_twenty_times_ends_exactly_like_an_uninterrupted_replay() {
    let changes = Changes::simulate(400);
    let db = MariaDb::start(&[]);
    db.sql(&changes.tables(Dialect::MariaDb));
    let source = |id: u32| {
        format!(
            "{{ name: shopdb, type: mysql, url: \"{}\", server_id: {id}, include: [\"shop.*\"], start: beginning }}",
            db.url()
        )
    };
    // Real commit times: a second of quiet is idle, and the rate rule's window closes on the clock.
    let deployment =
        |id: u32| Deployment::new(&source(id), &changes.sim.schema(), Duration::from_secs(1), Duration::from_secs(1));
    let crashed = deployment(911);
    let n = changes.events.len();
    let slices = 60;
    let workload = {
        let sql: Vec<String> = (0..slices).map(|i| changes.sql(i * n / slices..(i + 1) * n / slices)).collect();
        let port = db.port;
        std::thread::spawn(move || {
            for slice in sql {
                crate::servers::mariadb_sql(port, &slice);
                std::thread::sleep(Duration::from_millis(500));
            }
        })
    };
    let mut schedule = Schedule::new();
    for _ in 0..20 {
        let run = crashed.start();
        std::thread::sleep(schedule.pause(500, 2500));
        drop(run); // SIGKILL, while the workload goes on
    }
    workload.join().unwrap();
    // The rate rule's windows are aligned to its width (examples/rules/payment-failure-rate.yaml,
    // 10 minutes): the one holding the last commit closes at the next multiple of it, plus
    // the default allowed lateness. Both deployments run until then, side by side, so they
    // end having seen the same clock.
    let width = 600;
    let last_commit = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs();
    let windows_closed = SystemTime::UNIX_EPOCH + Duration::from_secs((last_commit / width + 1) * width + 5);
    let whole = deployment(912);
    let (_crashed_run, _whole_run) = (crashed.start(), whole.start());
    let head = db.query("SELECT @@gtid_binlog_pos");
    let at_head = |d: &Deployment| {
        d.progress("shopdb")["resume"].as_str().is_some_and(|r| r.contains(&format!("\"{}\"", head.trim())))
    };
    crashed.settle(|| at_head(&crashed), windows_closed);
    whole.settle(|| at_head(&whole), windows_closed);
    assert_same_end(&crashed, &whole);
}
