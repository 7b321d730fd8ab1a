//! The scheduler under an injected clock: first fire, runs recorded, downtime caught up
//! (or not, as configured), a failed run recorded and raised, and nothing lost when a
//! run's findings were not delivered before a stop.

use chrono::{DateTime, Utc};
use fundguard_core::Value;
use fundguard_warehouse::{History, RunStatus, Scheduler};

use crate::support::{rule, warehouse};

fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).unwrap().with_timezone(&Utc)
}

fn daily(id: &str, catch_up: &str) -> fundguard_rules::Rule {
    rule(&format!(
        "id: {id}\nowner: finance\nseverity: high\nsql:\n  schedule: \"0 2 * * *\"\n  timezone: Asia/Shanghai\n  catch_up: {catch_up}\n  query: \"SELECT day AS ds, amount FROM totals WHERE day = '{{{{ ds }}}}' AND amount <> 0\"\n  key: [ds]\n  money: {{ amount: amount }}\n"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scheduled_runs_follow_the_clock_and_catch_up_after_downtime() {
    let dir = tempfile::tempdir().unwrap();
    let days: Vec<String> = (20..=26).map(|d| format!("2026-11-{d},{}", d % 3)).collect();
    std::fs::write(dir.path().join("totals.csv"), format!("day,amount\n{}\n", days.join("\n"))).unwrap();
    let warehouse = warehouse("- { name: totals, type: csv, path: totals.csv }", dir.path()).await;
    let data = dir.path().join("data");
    let rules = [daily("all-missed", "all"), daily("latest-only", "latest"), daily("no-catch-up", "none")];
    let clock = || at("2026-11-30T00:00:00Z"); // stamps only

    // First start, 18:00 UTC on the 20th = 02:00 on the 21st in Shanghai is still ahead.
    let mut scheduler = Scheduler::new(&rules, History::open(&data).unwrap());
    assert!(scheduler.due(at("2026-11-20T10:00:00Z")).unwrap().is_empty(), "a new rule starts from now");
    assert_eq!(scheduler.next_fire(at("2026-11-20T10:00:00Z")), Some(at("2026-11-20T18:00:00Z")));
    let due = scheduler.due(at("2026-11-20T18:00:01Z")).unwrap();
    assert_eq!(due.len(), 3, "every rule fires once: {due:?}");
    for d in &due {
        let outcome = scheduler.run(Ok(&warehouse), d, &clock).await.unwrap();
        assert_eq!(outcome.record.status, RunStatus::Ok, "{:?}", outcome.record.error);
        // 02:00 on the 21st in Shanghai checks the 20th: amount 20 % 3 = 2.
        assert_eq!(outcome.record.ds.to_string(), "2026-11-20");
        assert_eq!(outcome.findings.len(), 1);
        assert_eq!(outcome.findings[0].key["ds"], Value::String("2026-11-20".into()));
        scheduler.done(&outcome).unwrap();
    }
    assert!(scheduler.due(at("2026-11-20T18:30:00Z")).unwrap().is_empty(), "a done run does not run again");

    // fundguard is down from then until the 24th, 19:00 UTC: four fire times were missed
    // (02:00 in Shanghai on the 22nd to the 25th).
    let mut scheduler = Scheduler::new(&rules, History::open(&data).unwrap());
    let due = scheduler.due(at("2026-11-24T19:00:00Z")).unwrap();
    let of = |id: &str| due.iter().filter(|d| d.rule == id).map(|d| d.fire).collect::<Vec<_>>();
    let missed = ["21", "22", "23", "24"].map(|d| at(&format!("2026-11-{d}T18:00:00Z")));
    assert_eq!(of("all-missed"), missed);
    assert_eq!(of("latest-only"), [missed[3]]);
    assert!(of("no-catch-up").is_empty());

    // The first caught-up run's findings never reach the sinks (a stop): it is due again.
    let first = scheduler.run(Ok(&warehouse), &due[0], &clock).await.unwrap();
    drop(first);
    let mut scheduler = Scheduler::new(&rules, History::open(&data).unwrap());
    let again = scheduler.due(at("2026-11-24T19:00:00Z")).unwrap();
    assert_eq!(again.iter().filter(|d| d.rule == "all-missed").count(), 4, "an undelivered run is repeated");
    let mut dates = Vec::new();
    for d in &again {
        let outcome = scheduler.run(Ok(&warehouse), d, &clock).await.unwrap();
        dates.push(format!("{} {} {}", d.rule, outcome.record.ds, outcome.findings.len()));
        scheduler.done(&outcome).unwrap();
    }
    // A day's amount is its number mod 3: days 21 and 24 have none, so no finding.
    assert_eq!(
        dates,
        [
            "all-missed 2026-11-21 0",
            "all-missed 2026-11-22 1",
            "all-missed 2026-11-23 1",
            "all-missed 2026-11-24 0",
            "latest-only 2026-11-24 0"
        ]
    );
    assert!(scheduler.due(at("2026-11-24T19:00:00Z")).unwrap().is_empty());
    // `none` skipped its missed runs but keeps its schedule: on time, it runs.
    let next = scheduler.due(at("2026-11-25T18:00:30Z")).unwrap();
    let rules_due: Vec<&str> = next.iter().map(|d| d.rule.as_str()).collect();
    assert_eq!(rules_due, ["all-missed", "latest-only", "no-catch-up"], "{next:?}");

    // A warehouse that cannot be opened fails the run, recorded and raised to the owner.
    let failed = scheduler.run(Err("connection refused"), &next[0], &clock).await.unwrap();
    assert_eq!(failed.record.status, RunStatus::Failed);
    assert_eq!(failed.findings[0].owner, "finance");
    scheduler.done(&failed).unwrap();
    let history = scheduler.history().runs().unwrap();
    assert_eq!(history.len(), 3 + 5 + 1, "every finished run is recorded");
    let last = history.last().unwrap();
    assert_eq!((last.status, last.error.as_deref()), (RunStatus::Failed, Some("connection refused")));
}
