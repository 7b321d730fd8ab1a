//! Every alert store against the same suite — SQLite (a real file) and PostgreSQL (the
//! machine's shared server, a fresh database per test): dedup, lifecycle, audit, filters,
//! outbox, schema versions.

use std::collections::BTreeMap;

use fundguard_alerts::{
    ACTION_CHANNEL, AlertError, AlertStore, Change, Filter, PostgresStore, Recorded, Routes, SqliteStore, Status,
};
use fundguard_core::{Action, ActionMode, EventTime, Finding, Severity, Value};
use proptest::prelude::*;

mod incidents;

fn finding(rule: &str, id: i64, at_secs: i64) -> Finding {
    Finding {
        rule: rule.into(),
        owner: if rule.starts_with("pay") { "payments".into() } else { "refunds".into() },
        severity: Severity::Critical,
        key: BTreeMap::from([("id".to_string(), Value::Int(id))]),
        event_time: EventTime::from_secs(1_700_000_000 + at_secs),
        detected_at: EventTime::from_secs(1_700_000_001 + at_secs),
        message: format!("{rule} broken for {id}"),
        evidence: Vec::new(),
        money_at_risk: None,
        tags: Default::default(),
        action: None,
        fingerprint_by: None,
    }
}

/// Keeps a store's backing alive: the SQLite directory, or the PostgreSQL database
/// (dropped at the end of the test).
enum Backing {
    File(#[allow(dead_code)] tempfile::TempDir),
    Database(String),
}

impl Drop for Backing {
    fn drop(&mut self) {
        if let Backing::Database(name) = self
            && let Ok(mut admin) = postgres::Client::connect(ADMIN_URL, postgres::NoTls)
        {
            let _ = admin.batch_execute(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        }
    }
}

const ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A fresh, empty database on the shared PostgreSQL server.
fn fresh_database() -> (String, Backing) {
    static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let name = format!("fg_alerts_{}_{}", std::process::id(), NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed));
    let mut admin = postgres::Client::connect(ADMIN_URL, postgres::NoTls).expect("the machine's PostgreSQL on 5432");
    admin.batch_execute(&format!("CREATE DATABASE {name}")).unwrap();
    (format!("postgres://postgres@127.0.0.1:5432/{name}"), Backing::Database(name))
}

/// One store of each kind, empty, with `routes`.
fn stores_with(routes: Routes) -> Vec<(&'static str, Box<dyn AlertStore>, Backing)> {
    let dir = tempfile::tempdir().unwrap();
    let sqlite = SqliteStore::open(&dir.path().join("data/alerts.db")).unwrap().with_routes(routes.clone());
    let (url, database) = fresh_database();
    let postgres = PostgresStore::open(&url).unwrap().with_routes(routes);
    vec![("sqlite", Box::new(sqlite), Backing::File(dir)), ("postgres", Box::new(postgres), database)]
}

fn stores() -> Vec<(&'static str, Box<dyn AlertStore>, Backing)> {
    stores_with(Routes::default())
}

#[test]
fn the_same_fingerprint_updates_one_alert() {
    for (kind, mut store, _backing) in stores() {
        eprintln!("store: {kind}");
        let recorded = store
            .record(&[finding("pay-amount", 1, 0), finding("pay-amount", 1, 5), finding("pay-amount", 2, 6)])
            .unwrap();
        assert_eq!(recorded, vec![Recorded::Opened(1), Recorded::Updated(1), Recorded::Opened(2)]);
        let (alert, timeline) = store.get(1).unwrap();
        assert_eq!((alert.count, alert.status, alert.owner.as_str()), (2, Status::Open, "payments"));
        assert_eq!(alert.first_seen, EventTime::from_secs(1_700_000_001));
        assert_eq!(alert.last_seen, EventTime::from_secs(1_700_000_006));
        assert_eq!(alert.detection_micros(), 1_000_000);
        assert_eq!(timeline.len(), 1, "updates do not spam the timeline");
    }
}

#[test]
fn replayed_findings_are_recorded_once_until_their_receipts_are_forgotten() {
    for (kind, mut store, _backing) in stores() {
        eprintln!("store: {kind}");
        let batch = [finding("pay-amount", 1, 0), finding("pay-amount", 1, 5), finding("pay-amount", 2, 6)];
        let first = store.record_once(&batch, 0).unwrap();
        assert_eq!(first, vec![Recorded::Opened(1), Recorded::Updated(1), Recorded::Opened(2)]);
        // A replay after a crash: the same findings again, and one new one.
        let mut replay = batch.to_vec();
        replay.push(finding("pay-amount", 3, 7));
        assert_eq!(store.record_once(&replay, 0).unwrap(), vec![Recorded::Opened(3)]);
        assert_eq!(store.get(1).unwrap().0.count, 2, "counted once");
        let (pending, _, _) = store.notification_counts().unwrap();
        // Checkpoint 1 covers them: their receipts go; a later identical finding is new.
        store.forget_receipts(1).unwrap();
        assert_eq!(store.record_once(&batch[..1], 1).unwrap(), vec![Recorded::Updated(1)]);
        assert_eq!(store.record_once(&batch[..1], 1).unwrap(), vec![]);
        assert_eq!(store.notification_counts().unwrap().0, pending, "no notification from a replay or an update");
    }
}

#[test]
fn a_restarted_run_keeps_the_crashed_runs_receipts_until_its_replay_meets_them() {
    for (kind, mut store, _backing) in stores() {
        eprintln!("store: {kind}");
        let (early, late) = (finding("pay-amount", 1, 0), finding("pay-amount", 1, 9));
        // The crashed run recorded both after checkpoint 4, then died.
        store.record_once(&[early.clone(), late.clone()], 4).unwrap();
        // The restarted run replays from checkpoint 4 and writes checkpoint 5 before it
        // reaches `late` again: that receipt must survive the checkpoint.
        store.hold_receipts(4).unwrap();
        assert_eq!(store.record_once(std::slice::from_ref(&early), 4).unwrap(), vec![]);
        store.forget_receipts(5).unwrap();
        assert_eq!(store.record_once(std::slice::from_ref(&late), 5).unwrap(), vec![], "held, so not counted twice");
        assert_eq!(store.get(1).unwrap().0.count, 2);
        // Met again in epoch 5, it goes with the next checkpoint like any other.
        store.forget_receipts(6).unwrap();
        assert_eq!(store.record_once(&[late], 6).unwrap(), vec![Recorded::Updated(1)]);
    }
}

#[test]
fn the_lifecycle_is_audited_and_a_resolved_alert_reopens() {
    for (kind, mut store, _backing) in stores() {
        eprintln!("store: {kind}");
        store.record(&[finding("refund-sign", 9, 0)]).unwrap();
        let now = EventTime::from_secs(1_700_000_100);
        store.change(1, &Change::Acknowledge, "ana", now).unwrap();
        let refused = store.change(1, &Change::Resolve { root_cause: " ".into() }, "ana", now).unwrap_err();
        assert!(matches!(refused, AlertError::InvalidChange(_)), "{refused}");
        assert_eq!(store.get(1).unwrap().0.status, Status::Acknowledged, "nothing half-applied");
        let resolved = store
            .change(1, &Change::Resolve { root_cause: "refund job wrote yuan as fen".into() }, "ana", now)
            .unwrap();
        assert_eq!(resolved.status, Status::Resolved);
        assert_eq!(resolved.root_cause.as_deref(), Some("refund job wrote yuan as fen"));
        assert_eq!(resolved.resolved_at, Some(now));
        let again = store.change(1, &Change::Acknowledge, "bo", now).unwrap_err().to_string();
        assert_eq!(again, "alert 1 is resolved: only open alerts can be acknowledged");

        assert_eq!(store.record(&[finding("refund-sign", 9, 300)]).unwrap(), vec![Recorded::Reopened(1)]);
        let (alert, timeline) = store.get(1).unwrap();
        assert_eq!((alert.status, alert.count, alert.resolved_at), (Status::Open, 2, None));
        let actions: Vec<(&str, &str)> = timeline.iter().map(|t| (t.actor.as_str(), t.action.as_str())).collect();
        assert_eq!(
            actions,
            [("fundguard", "opened"), ("ana", "acknowledged"), ("ana", "resolved"), ("fundguard", "reopened")]
        );
        assert!(matches!(store.get(42), Err(AlertError::NotFound(42))));
    }
}

#[test]
fn false_positives_stay_closed_and_only_count() {
    for (kind, mut store, _backing) in stores() {
        eprintln!("store: {kind}");
        store.record(&[finding("pay-amount", 3, 0)]).unwrap();
        store
            .change(1, &Change::FalsePositive { reason: "test merchant".into() }, "ana", EventTime::from_secs(1))
            .unwrap();
        assert_eq!(store.record(&[finding("pay-amount", 3, 10)]).unwrap(), vec![Recorded::Updated(1)]);
        let alert = store.get(1).unwrap().0;
        assert_eq!((alert.status, alert.count), (Status::FalsePositive, 2));
    }
}

#[test]
fn lists_filter_and_page() {
    for (kind, mut store, _backing) in stores() {
        eprintln!("store: {kind}");
        let findings: Vec<Finding> =
            (0..30).map(|i| finding(if i % 3 == 0 { "refund-sign" } else { "pay-amount" }, i, i)).collect();
        store.record(&findings).unwrap();
        store.change(2, &Change::Acknowledge, "ana", EventTime::from_secs(1)).unwrap();
        let all = store.list(&Filter::default()).unwrap();
        assert_eq!(all.len(), 30);
        assert_eq!(all[0].key["id"], 29, "most recently seen first");
        let refunds = store.list(&Filter { owner: Some("refunds".into()), ..Filter::default() }).unwrap();
        assert_eq!(refunds.len(), 10);
        assert!(refunds.iter().all(|a| a.rule == "refund-sign"));
        let acked = store.list(&Filter { status: Some(Status::Acknowledged), ..Filter::default() }).unwrap();
        assert_eq!(acked.iter().map(|a| a.id).collect::<Vec<_>>(), [2]);
        let page = store.list(&Filter { limit: 5, offset: 5, ..Filter::default() }).unwrap();
        assert_eq!(page.iter().map(|a| a.key["id"].as_i64().unwrap()).collect::<Vec<_>>(), [24, 23, 22, 21, 20]);
        let recent =
            store.list(&Filter { since: Some(EventTime::from_secs(1_700_000_026)), ..Filter::default() }).unwrap();
        assert_eq!(recent.len(), 5);
    }
}

#[test]
fn the_schema_is_versioned() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("alerts.db");
    {
        let mut store = SqliteStore::open(&path).unwrap();
        store.record(&[finding("pay-amount", 1, 0)]).unwrap();
    }
    // Reopening migrates nothing and keeps the data.
    assert_eq!(SqliteStore::open(&path).unwrap().list(&Filter::default()).unwrap().len(), 1);
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.pragma_update(None, "user_version", 99).unwrap();
    drop(conn);
    let error = SqliteStore::open(&path).err().unwrap().to_string();
    assert!(error.contains("newer fundguard") && error.contains("schema 99"), "{error}");

    let (url, _database) = fresh_database();
    PostgresStore::open(&url).unwrap().record(&[finding("pay-amount", 1, 0)]).unwrap();
    assert_eq!(PostgresStore::open(&url).unwrap().list(&Filter::default()).unwrap().len(), 1, "reopened, data kept");
    let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
    client.batch_execute("UPDATE fundguard_schema SET version = 99").unwrap();
    let error = PostgresStore::open(&url).err().unwrap().to_string();
    assert!(error.contains("newer fundguard") && error.contains("schema 99"), "{error}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]
    #[test]
    fn one_alert_per_fingerprint_and_every_finding_counted(
        picks in proptest::collection::vec((0usize..3, 0i64..6), 1..60),
    ) {
        for (kind, mut store, _backing) in stores() {
            eprintln!("store: {kind}");
        let rules = ["pay-amount", "refund-sign", "pay-currency"];
        let findings: Vec<Finding> = picks.iter().enumerate().map(|(i, (r, id))| finding(rules[*r], *id, i as i64)).collect();
        // Record in uneven batches.
        for chunk in findings.chunks(7) {
            store.record(chunk).unwrap();
        }
        let distinct: std::collections::BTreeSet<_> = picks.iter().collect();
        let alerts = store.list(&Filter { limit: 1000, ..Filter::default() }).unwrap();
        prop_assert_eq!(alerts.len(), distinct.len());
        prop_assert_eq!(alerts.iter().map(|a| a.count).sum::<u64>(), findings.len() as u64);
        }
    }
}

#[test]
fn alert_events_queue_notifications_for_routed_channels_until_delivered() {
    use fundguard_alerts::Route;
    let routes = Routes(vec![
        Route { severities: vec![Severity::Critical], channels: vec!["oncall".into()], ..Route::default() },
        Route {
            owners: vec!["refunds".into()],
            channels: vec!["refunds-hook".into(), "oncall".into()],
            ..Route::default()
        },
    ]);
    for (kind, mut store, _backing) in stores_with(routes) {
        eprintln!("store: {kind}");
        store
            .record(&[finding("refund-sign", 1, 0), finding("refund-sign", 1, 1), finding("pay-amount", 2, 2)])
            .unwrap();
        let now = EventTime::from_secs(1_800_000_000);
        let due = store.due_notifications(now, 100).unwrap();
        let sent: Vec<(i64, &str, &str)> =
            due.iter().map(|n| (n.alert_id, n.channel.as_str(), n.event.as_str())).collect();
        assert_eq!(
            sent,
            [(1, "oncall", "opened"), (1, "refunds-hook", "opened"), (2, "oncall", "opened")],
            "a repeat finding notifies nobody"
        );

        store.delivery_attempted(due[0].id, Ok("delivered".into()), None, now).unwrap();
        let retry_at = EventTime::from_secs(1_800_000_060);
        store.delivery_attempted(due[1].id, Err("503".into()), Some(retry_at), now).unwrap();
        store.delivery_attempted(due[2].id, Err("404 Not Found".into()), None, now).unwrap();
        assert!(store.due_notifications(now, 100).unwrap().is_empty());
        let later = store.due_notifications(retry_at, 100).unwrap();
        assert_eq!((later.len(), later[0].attempts, later[0].last_error.as_deref()), (1, 1, Some("503")));
        assert_eq!(store.notification_counts().unwrap(), (1, 1, 1));
        let failed = store.failed_notifications(10).unwrap();
        assert_eq!(failed.len(), 1, "the permanent failure is listed");
        assert_eq!((failed[0].alert_id, failed[0].last_error.as_deref()), (2, Some("404 Not Found")));

        store.change(1, &Change::Resolve { root_cause: "fixed".into() }, "ana", now).unwrap();
        let resolved: Vec<String> = store
            .due_notifications(retry_at, 100)
            .unwrap()
            .iter()
            .map(|n| format!("{}:{}", n.channel, n.event))
            .collect();
        // Due order: the resolution (due now) before the retry (due a minute later).
        assert_eq!(resolved, ["oncall:resolved", "refunds-hook:resolved", "refunds-hook:opened"]);
        assert_eq!(store.due_notifications(retry_at, 100).unwrap()[0].alert.status, Status::Resolved);
    }
}

fn with_action(mut f: Finding, mode: ActionMode) -> Finding {
    f.action = Some(std::sync::Arc::new(Action {
        name: "pause-payouts".into(),
        method: "POST".into(),
        url: "http://payouts.internal/merchants/{key.id}/pause".into(),
        mode,
        secret_env: None,
    }));
    f
}

fn timeline_actions(store: &dyn AlertStore, id: i64) -> Vec<String> {
    store.get(id).unwrap().1.into_iter().map(|t| t.action).collect()
}

#[test]
fn a_rules_action_is_queued_once_when_its_alert_opens_and_its_outcome_is_audited() {
    for (kind, mut store, _backing) in stores() {
        eprintln!("store: {kind}");
        let f = with_action(finding("pay-amount", 1, 0), ActionMode::Run);
        store.record(&[f.clone(), f.clone()]).unwrap();
        let now = EventTime::from_secs(1_800_000_000);
        let due = store.due_notifications(now, 100).unwrap();
        assert_eq!(due.len(), 1, "one action per alert, however many findings");
        assert_eq!((due[0].channel.as_str(), due[0].event.as_str()), (ACTION_CHANNEL, "action"));
        assert_eq!(due[0].action.as_ref().unwrap().name, "pause-payouts");
        assert_eq!(timeline_actions(&*store, 1), ["opened", "action_queued"]);

        // A failure is recorded once, its retries are not, the success is.
        let retry = EventTime::from_secs(1_800_000_010);
        store.delivery_attempted(due[0].id, Err("HTTP 503".into()), Some(retry), now).unwrap();
        let again = store.due_notifications(retry, 100).unwrap();
        store.delivery_attempted(again[0].id, Err("HTTP 503".into()), Some(retry), retry).unwrap();
        store.delivery_attempted(again[0].id, Ok("HTTP 200".into()), None, retry).unwrap();
        let (_, timeline) = store.get(1).unwrap();
        let tail: Vec<(&str, Option<&str>)> =
            timeline[2..].iter().map(|t| (t.action.as_str(), t.detail.as_deref())).collect();
        assert_eq!(tail.len(), 2, "{tail:?}");
        assert_eq!(tail[0].0, "action_failed");
        assert!(tail[0].1.unwrap().starts_with("HTTP 503; retrying"), "{tail:?}");
        assert_eq!(tail[1], ("action_succeeded", Some("HTTP 200")));

        // Resolving tells the alert channels, never re-runs the action.
        store.change(1, &Change::Resolve { root_cause: "fixed".into() }, "ana", retry).unwrap();
        store.record(&[f]).unwrap();
        assert!(store.due_notifications(retry, 100).unwrap().is_empty(), "no action on reopen, no channels routed");
    }
}

#[test]
fn an_action_needing_approval_waits_for_a_person() {
    for (kind, mut store, _backing) in stores() {
        eprintln!("store: {kind}");
        store
            .record(&[
                with_action(finding("pay-amount", 1, 0), ActionMode::Approval),
                with_action(finding("pay-amount", 2, 0), ActionMode::Approval),
                finding("pay-amount", 3, 0),
            ])
            .unwrap();
        let now = EventTime::from_secs(1_800_000_000);
        assert!(store.due_notifications(now, 100).unwrap().is_empty(), "nothing runs unapproved");
        assert_eq!(timeline_actions(&*store, 1), ["opened", "action_awaiting_approval"]);

        let refused = store.change(3, &Change::ApproveAction, "ana", now).unwrap_err().to_string();
        assert_eq!(refused, "alert 3 has no action waiting for approval");
        assert_eq!(timeline_actions(&*store, 3), ["opened"], "a refused change writes nothing");

        store.change(1, &Change::ApproveAction, "ana", now).unwrap();
        let due = store.due_notifications(now, 100).unwrap();
        assert_eq!((due.len(), due[0].alert_id), (1, 1));
        assert!(store.change(1, &Change::ApproveAction, "ana", now).is_err(), "approved once");

        store.change(2, &Change::RejectAction { reason: "payday, keep paying".into() }, "bo", now).unwrap();
        let failed = store.failed_notifications(10).unwrap();
        assert_eq!(failed[0].last_error.as_deref(), Some("rejected by bo: payday, keep paying"));
        assert_eq!(timeline_actions(&*store, 2), ["opened", "action_awaiting_approval", "action_rejected"]);
        assert_eq!(store.get(2).unwrap().0.status, Status::Open, "rejecting the action leaves the alert open");
    }
}

#[test]
fn routes_match_the_rules_tags() {
    use fundguard_alerts::Route;
    let routes =
        Routes(vec![Route { tags: vec!["payouts".into()], channels: vec!["treasury".into()], ..Route::default() }]);
    for (kind, mut store, _backing) in stores_with(routes.clone()) {
        eprintln!("store: {kind}");
        let mut tagged = finding("pay-amount", 1, 0);
        tagged.tags = vec!["money".to_string(), "payouts".to_string()].into();
        store.record(&[tagged, finding("pay-amount", 2, 0)]).unwrap();
        let due = store.due_notifications(EventTime::from_secs(1_800_000_000), 100).unwrap();
        let to: Vec<(i64, &str)> = due.iter().map(|n| (n.alert_id, n.channel.as_str())).collect();
        assert_eq!(to, [(1, "treasury")]);
        assert_eq!(store.get(1).unwrap().0.tags, ["money", "payouts"]);
    }
}

#[test]
fn a_rules_fingerprint_can_group_findings_by_part_of_their_key() {
    for (kind, mut store, _backing) in stores() {
        eprintln!("store: {kind}");
        let per_merchant = |order: i64| {
            let mut f = finding("pay-amount", order, order);
            f.key = BTreeMap::from([("merchant".to_string(), Value::Int(9)), ("order".to_string(), Value::Int(order))]);
            f.fingerprint_by = Some(vec!["merchant".to_string()].into());
            f
        };
        let recorded = store.record(&[per_merchant(1), per_merchant(2), finding("pay-amount", 1, 3)]).unwrap();
        assert_eq!(recorded, vec![Recorded::Opened(1), Recorded::Updated(1), Recorded::Opened(2)]);
        let (alert, _) = store.get(1).unwrap();
        assert_eq!((alert.count, alert.key.to_string()), (2, r#"{"merchant":9}"#.to_string()));
        assert_eq!(alert.fingerprint, r#"pay-amount|{"merchant":9}"#);
    }
}

#[test]
fn active_figures_count_open_alerts_and_add_their_money_exactly() {
    use fundguard_core::{Money, MoneyUnit};
    for (kind, mut store, _backing) in stores() {
        eprintln!("store: {kind}");
        let with_money = |rule: &str, id: i64, amount: &str| {
            let mut f = finding(rule, id, id);
            f.money_at_risk = Some(Money::new(amount.parse().unwrap(), Some("CNY"), MoneyUnit::Auto));
            f
        };
        store
            .record(&[
                with_money("pay-amount", 1, "0.10"),
                with_money("pay-amount", 2, "0.20"),
                with_money("refund-sign", 3, "1000000000000.01"),
                finding("refund-sign", 4, 4),
            ])
            .unwrap();
        let now = EventTime::from_secs(1_800_000_000);
        store.change(2, &Change::Acknowledge, "ana", now).unwrap();
        store.change(4, &Change::Resolve { root_cause: "fixed".into() }, "ana", now).unwrap();
        let figures = store.active_figures().unwrap();
        assert_eq!(figures.by_rule.get("pay-amount"), Some(&2));
        assert_eq!(figures.by_rule.get("refund-sign"), Some(&1), "the resolved alert is not active");
        assert_eq!((figures.by_status["open"], figures.by_status["acknowledged"]), (2, 1));
        assert_eq!(figures.money["payments"].display(), "0.30 CNY", "0.1 + 0.2 is exactly 0.3");
        assert_eq!(figures.money["refunds"].display(), "1,000,000,000,000.01 CNY");
        let minor: Vec<String> = figures.money["payments"].iter().map(|m| m.amount.to_string()).collect();
        assert_eq!(minor, ["30"], "kept in minor units (fen)");
    }
}

/// Money stored before amounts were converted to minor units — the rule's value as given,
/// `"4198.45"` (yuan) or `1250` (fen) — still reads, by the `auto` rule, in both stores.
#[test]
fn money_stored_as_given_by_older_versions_reads_in_minor_units() {
    for (kind, mut store, backing) in stores() {
        eprintln!("store: {kind}");
        store.record(&[finding("pay-amount", 1, 1), finding("pay-amount", 2, 2)]).unwrap();
        let old = [(1, r#"{"amount":"4198.45","currency":"CNY"}"#), (2, r#"{"amount":1250,"currency":"CNY"}"#)];
        match &backing {
            Backing::File(dir) => {
                let conn = rusqlite::Connection::open(dir.path().join("data/alerts.db")).unwrap();
                for (id, json) in old {
                    conn.execute("UPDATE alerts SET money_json = ?1 WHERE id = ?2", rusqlite::params![json, id])
                        .unwrap();
                }
            }
            Backing::Database(name) => {
                let url = format!("postgres://postgres@127.0.0.1:5432/{name}");
                let mut client = postgres::Client::connect(&url, postgres::NoTls).unwrap();
                for (id, json) in old {
                    client
                        .execute("UPDATE alerts SET money_json = $1 WHERE id = $2", &[&json, &i64::from(id)])
                        .unwrap();
                }
            }
        }
        let money = |id| store.get(id).unwrap().0.money_at_risk.unwrap();
        assert_eq!(money(1).display(), "4,198.45 CNY");
        assert_eq!(money(1).amount.to_string(), "419845");
        assert_eq!(money(2).display(), "12.50 CNY");
        let json = serde_json::to_value(store.get(1).unwrap().0).unwrap();
        assert_eq!(json["money_at_risk"]["amount_minor"], "419845");
        assert_eq!(store.active_figures().unwrap().money["payments"].display(), "4,210.95 CNY");
    }
}

/// Runs one busy lifecycle — dedup, receipts, every kind of change (and refusals),
/// actions, deliveries, a reopening — on `store`, writing down everything it answers.
fn lifecycle_trace(store: &mut dyn AlertStore) -> Vec<String> {
    use fundguard_core::{Money, MoneyUnit};
    let mut trace = Vec::new();
    let mut note = |what: &str, answer: String| trace.push(format!("{what}: {answer}"));
    let mut costly = with_action(finding("pay-amount", 3, 3), ActionMode::Approval);
    costly.money_at_risk = Some(Money::new("1.10".parse().unwrap(), Some("CNY"), MoneyUnit::Auto));
    let mut tagged = finding("refund-sign", 4, 4);
    tagged.tags = vec!["payouts".to_string()].into();
    let batch = [
        with_action(finding("pay-amount", 1, 0), ActionMode::Run),
        with_action(finding("pay-amount", 1, 1), ActionMode::Run),
        finding("refund-sign", 2, 2),
        costly,
        tagged,
    ];
    note("record_once", format!("{:?}", store.record_once(&batch, 1)));
    note("replay", format!("{:?}", store.record_once(&batch, 1)));
    note("record", format!("{:?}", store.record(&batch[2..])));
    let now = EventTime::from_secs(1_800_000_000);
    let changes = [
        (1, Change::Acknowledge),
        (1, Change::Resolve { root_cause: " ".into() }),
        (1, Change::RejectAction { reason: "no".into() }),
        (2, Change::Assign { to: "bo".into() }),
        (2, Change::Note { text: "looking".into() }),
        (3, Change::ApproveAction),
        (4, Change::FalsePositive { reason: "test merchant".into() }),
        (2, Change::Resolve { root_cause: "refund job fixed".into() }),
        (2, Change::Acknowledge),
        (99, Change::Acknowledge),
    ];
    for (id, change) in &changes {
        note(
            &format!("change {id} {change:?}"),
            format!("{:?}", store.change(*id, change, "ana", now).map_err(|e| e.to_string())),
        );
    }
    let due = store.due_notifications(now, 100).unwrap();
    note("due", format!("{due:?}"));
    let retry = EventTime::from_secs(1_800_000_060);
    for (n, outcome) in due.iter().zip([Ok("200".to_string()), Err("503".to_string()), Err("404".to_string())]) {
        let retry_at = (outcome.as_ref().err().map(String::as_str) == Some("503")).then_some(retry);
        note("attempt", format!("{:?}", store.delivery_attempted(n.id, outcome, retry_at, now)));
    }
    note("reopen", format!("{:?}", store.record(&[finding("refund-sign", 2, 9), batch[4].clone()])));
    store.forget_receipts(2).unwrap();
    store.hold_receipts(1).unwrap();
    note("after forgetting", format!("{:?}", store.record_once(&batch[..1], 2)));
    for id in 1..=5 {
        note(&format!("get {id}"), format!("{:?}", store.get(id).map_err(|e| e.to_string())));
    }
    let filters = [
        Filter::default(),
        Filter { status: Some(Status::Open), ..Filter::default() },
        Filter { owner: Some("refunds".into()), limit: 1, offset: 1, ..Filter::default() },
        Filter { rule: Some("pay-amount".into()), severity: Some(Severity::Critical), ..Filter::default() },
        Filter { since: Some(EventTime::from_secs(1_700_000_004)), ..Filter::default() },
    ];
    for filter in &filters {
        note(&format!("list {filter:?}"), format!("{:?}", store.list(filter)));
    }
    note("due later", format!("{:?}", store.due_notifications(retry, 100)));
    note("failed", format!("{:?}", store.failed_notifications(10)));
    note("counts", format!("{:?}", store.notification_counts()));
    // No order is promised (PostgreSQL's GROUP BY hashes, SQLite's sorts): compare sorted.
    let mut statuses = store.status_counts().unwrap();
    statuses.sort_by_key(|(s, _)| s.as_str());
    note("statuses", format!("{statuses:?}"));
    note("figures", format!("{:?}", store.active_figures()));
    trace
}

#[test]
fn both_stores_answer_one_lifecycle_alike() {
    let routes = Routes(vec![
        fundguard_alerts::Route {
            severities: vec![Severity::Critical],
            channels: vec!["oncall".into()],
            ..Default::default()
        },
        fundguard_alerts::Route {
            tags: vec!["payouts".into()],
            channels: vec!["treasury".into()],
            ..Default::default()
        },
    ]);
    let traces: Vec<(&str, Vec<String>)> = stores_with(routes)
        .into_iter()
        .map(|(kind, mut store, _backing)| (kind, lifecycle_trace(&mut *store)))
        .collect();
    let (sqlite, postgres) = (&traces[0].1, &traces[1].1);
    assert!(sqlite.len() > 30 && sqlite.iter().any(|l| l.contains("Reopened(2)")), "the scenario ran: {sqlite:#?}");
    for (s, p) in sqlite.iter().zip(postgres) {
        assert_eq!(s, p, "SQLite and PostgreSQL differ");
    }
    assert_eq!(sqlite.len(), postgres.len());
}

/// Rule statistics are increments added up per rule and day (a restart's engine counts
/// from zero), with the newest and oldest times kept; drifts once per rule, kind and
/// subject; a rule's alerts counted with false positives, reopenings and top keys; old
/// days pruned. The same on both stores.
#[test]
fn rule_statistics_add_up_per_day_and_read_back_alike_on_both_stores() {
    use fundguard_alerts::{RuleDay, RuleDrift, TableDay};
    let t = |secs: i64| EventTime::from_secs(1_700_000_000 + secs);
    let day = |day: &str, events: u64, findings: u64, at: i64| RuleDay {
        rule: "pay-check".into(),
        day: day.into(),
        events,
        passed: events / 2,
        findings,
        errors: u64::from(findings > 0),
        last_error: (findings > 0).then(|| format!("error at {at}")),
        first_event: Some(t(at)),
        last_event: Some(t(at)),
        last_passed: Some(t(at)),
        last_finding: (findings > 0).then(|| t(at)),
        state_bytes: 10 * events,
        tables: vec![TableDay { table: "shop.payments".into(), events, last_event: Some(t(at)) }],
        ..RuleDay::default()
    };
    let drift = |seen: i64, detail: &str| RuleDrift {
        rule: "pay-check".into(),
        kind: "column_missing".into(),
        subject: "note".into(),
        table: "shop.payments".into(),
        detail: detail.into(),
        first_seen: t(seen),
        last_seen: t(seen),
    };
    let mut answers = Vec::new();
    for (kind, mut store, _backing) in stores() {
        store
            .record_rule_stats(&[day("2023-11-13", 100, 1, 10), day("2023-11-14", 5, 0, 90_000)], &[drift(10, "a")])
            .unwrap();
        // A second increment the same day (after a restart): added; times newer and older kept.
        store.record_rule_stats(&[day("2023-11-14", 7, 2, 80_000)], &[drift(20, "b")]).unwrap();
        store.record(&[finding("pay-check", 1, 0), finding("pay-check", 2, 0), finding("pay-check", 1, 5)]).unwrap();
        let first = store.list(&Filter::default()).unwrap().into_iter().find(|a| a.key["id"] == 2).unwrap();
        store.change(first.id, &Change::FalsePositive { reason: "test".into() }, "ana", t(100)).unwrap();
        let history = store.rule_history("2023-11-13", "2023-11-01").unwrap();
        let d14 = history.days.iter().find(|d| d.day == "2023-11-14").unwrap();
        assert_eq!((d14.events, d14.passed, d14.findings, d14.errors), (12, 5, 2, 1), "{kind}");
        assert_eq!((d14.first_event, d14.last_event), (Some(t(80_000)), Some(t(90_000))), "{kind}");
        assert_eq!(
            d14.tables,
            vec![TableDay { table: "shop.payments".into(), events: 12, last_event: Some(t(90_000)) }]
        );
        assert_eq!(d14.last_error.as_deref(), Some("error at 80000"), "{kind}");
        assert_eq!(history.drifts.len(), 1, "{kind}: one drift per rule, kind and subject");
        assert_eq!((history.drifts[0].first_seen, history.drifts[0].last_seen), (t(10), t(20)));
        let alerts = &history.alerts[0];
        assert_eq!((alerts.opened, alerts.false_positives), (2, 1), "{kind}");
        assert_eq!(alerts.top_keys[0], ("{\"id\":1}".to_string(), 2), "{kind}");
        store.prune_rule_stats("2023-11-14").unwrap();
        let pruned = store.rule_history("2023-11-01", "2023-11-01").unwrap();
        assert_eq!(pruned.days.iter().map(|d| d.day.as_str()).collect::<Vec<_>>(), ["2023-11-14"], "{kind}");
        answers.push(format!("{history:?}"));
    }
    assert_eq!(answers[0], answers[1], "SQLite and PostgreSQL differ");
}

/// What a store holds after a run, with nothing that depends on write order between alerts:
/// every alert, its timeline, and the notifications queued (sorted, without outbox ids).
fn holdings(store: &dyn AlertStore) -> (Vec<String>, Vec<String>) {
    let alerts = store.list(&Filter { limit: 10_000, ..Filter::default() }).unwrap();
    let mut held: Vec<String> =
        alerts.iter().map(|a| format!("{a:?} timeline {:?}", store.get(a.id).unwrap().1)).collect();
    held.sort();
    let mut queued: Vec<String> = store
        .due_notifications(EventTime::from_secs(2_000_000_000), 10_000)
        .unwrap()
        .into_iter()
        .map(|n| format!("{} {} {} {:?} {:?}", n.alert_id, n.channel, n.event, n.alert, n.incident))
        .collect();
    queued.sort();
    (held, queued)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    /// Recording a batch in a few multi-row statements has exactly the effect of recording
    /// its findings one at a time — opened, counted, reopened after a resolution, with the
    /// same timelines and notifications — on both stores, with and without receipts.
    #[test]
    fn a_batch_records_as_its_findings_would_one_by_one(
        steps in proptest::collection::vec((0usize..3, 0i64..5, 0u8..10), 1..80),
        batch in 1usize..12,
        once in any::<bool>(),
    ) {
        let routes = Routes(vec![fundguard_alerts::Route {
            severities: vec![Severity::Critical],
            channels: vec!["oncall".into()],
            ..Default::default()
        }]);
        let rules = ["pay-amount", "refund-sign", "pay-currency"];
        // Findings, and after some of them a resolution of an alert (9 of 10 are findings).
        let findings: Vec<Option<Finding>> = steps
            .iter()
            .enumerate()
            .map(|(i, (r, id, kind))| (*kind < 9).then(|| {
                // Within the minute before an incident's first update is due, which depends on
                // where batches end (an update carries the counts of the batch that sends it).
                let mut f = finding(rules[*r], *id, i as i64 / 2);
                f.message = format!("{} #{i}", f.message);
                f
            }))
            .collect();
        let resolve = |store: &mut dyn AlertStore, at: usize| {
            for alert in store.list(&Filter { status: Some(Status::Open), ..Filter::default() }).unwrap() {
                if (alert.id as usize + at).is_multiple_of(2) {
                    let change = Change::Resolve { root_cause: format!("fixed at {at}") };
                    store.change(alert.id, &change, "ana", EventTime::from_secs(1_800_000_000 + at as i64)).unwrap();
                }
            }
        };
        let run = |store: &mut dyn AlertStore, batch: usize| {
            let mut pending = Vec::new();
            let mut recorded = Vec::new();
            let mut flush = |store: &mut dyn AlertStore, pending: &mut Vec<Finding>| {
                let r = if once { store.record_once(pending, 1) } else { store.record(pending) };
                recorded.extend(r.unwrap());
                pending.clear();
            };
            for (at, step) in findings.iter().enumerate() {
                match step {
                    Some(f) => {
                        // Replays of earlier findings meet their receipts (in the same batch, or not).
                        let replay = (once && at % 5 == 4).then(|| findings[at / 2].clone().unwrap_or_else(|| f.clone()));
                        for f in std::iter::once(f.clone()).chain(replay) {
                            pending.push(f);
                            if pending.len() >= batch {
                                flush(store, &mut pending);
                            }
                        }
                    }
                    None => {
                        flush(store, &mut pending);
                        resolve(store, at);
                    }
                }
            }
            flush(store, &mut pending);
            recorded
        };
        let reference = stores_with(routes.clone()).into_iter().next().unwrap();
        let (_, mut one_by_one, _backing) = reference;
        let expected_recorded = run(&mut *one_by_one, 1);
        let expected = holdings(&*one_by_one);
        for (kind, mut store, _backing) in stores_with(routes.clone()) {
            let recorded = run(&mut *store, batch);
            prop_assert_eq!(&recorded, &expected_recorded, "{} in batches of {}", kind, batch);
            let held = holdings(&*store);
            prop_assert_eq!(&held.0, &expected.0, "{} alerts in batches of {}", kind, batch);
            prop_assert_eq!(&held.1, &expected.1, "{} notifications in batches of {}", kind, batch);
        }
    }
}
