//! Incidents on both stores: new alerts of one rule within the burst window join one
//! incident; only the alert that opens it notifies, then updates at growing intervals;
//! a change to the incident reaches every alert; causes are ranked against the saved
//! baseline and people's verdicts on them are kept.

use std::sync::Arc;

use fundguard_alerts::{Change, IncidentStatus, Route, Routes, Status};
use fundguard_attribution::{Baseline, Change as Deploy};
use fundguard_core::{ChangeEvent, EventTime, Evidence, Money, MoneyUnit, Op, Position, Row, Value};

use crate::{finding, stores_with};

fn payment(i: i64) -> Row {
    let mut row = Row::new();
    row.push(Arc::from("id"), Value::Int(i));
    row.push(Arc::from("channel"), Value::from(["alipay", "wechat", "card"][(i % 3) as usize]));
    row.push(Arc::from("currency"), Value::from("CNY"));
    row
}

/// A finding on payment `i` at `at_secs`, with the payment as evidence and a fen at risk.
fn broken(i: i64, at_secs: i64) -> fundguard_core::Finding {
    let mut f = finding("pay-amount", i, at_secs);
    f.evidence = vec![Evidence::of(&ChangeEvent {
        table: Arc::from("shop.payments"),
        op: Op::Insert,
        before: None,
        after: Some(payment(i)),
        commit_time: f.event_time,
        position: Position::Synthetic { seq: i as u64 },
    })];
    f.money_at_risk = Some(Money::new(1.into(), Some("CNY"), MoneyUnit::Minor));
    f
}

fn routes() -> Routes {
    Routes(vec![Route { channels: vec!["hook".into()], ..Route::default() }])
}

#[test]
fn a_storm_of_one_rule_is_one_incident_that_notifies_once_then_updates() {
    for (kind, mut store, _backing) in stores_with(routes()) {
        eprintln!("store: {kind}");
        // The traffic: every channel alike.
        let mut baseline = Baseline::new(1);
        let events: Vec<_> = (0..3000)
            .map(|i| ChangeEvent {
                table: Arc::from("shop.payments"),
                op: Op::Insert,
                before: None,
                after: Some(payment(i)),
                commit_time: EventTime::from_secs(i),
                position: Position::Synthetic { seq: i as u64 },
            })
            .collect();
        baseline.observe(&events);
        store.save_baseline(&baseline.profile, EventTime::from_secs(1)).unwrap();

        // Card payments break, a few seconds apart, in two batches 90 s apart; another
        // rule fires once; the same rule fires again an hour later.
        let card: Vec<i64> = (0..600).filter(|i| i % 3 == 2).collect();
        let first: Vec<_> = card[..100].iter().map(|&i| broken(i, i / 10)).collect();
        let second: Vec<_> = card[100..].iter().map(|&i| broken(i, 90 + i / 10)).collect();
        store.record(&first).unwrap();
        store.record(&[finding("refund-amount", 1, 5)]).unwrap();
        store.record(&second).unwrap();
        store.record(&[broken(9001, 3600 * 2)]).unwrap();

        let incidents = store.incidents(None, 0).unwrap();
        assert_eq!(incidents.len(), 3, "{incidents:#?}");
        let storm = incidents.iter().find(|i| i.flow == "pay-amount" && i.alerts > 1).unwrap();
        assert_eq!(storm.alerts, card.len() as u64);
        assert_eq!(storm.money_display, "2.00 CNY");
        assert_eq!(storm.status, IncidentStatus::Open);
        let later = incidents.iter().find(|i| i.flow == "pay-amount" && i.alerts == 1).unwrap();
        assert!(later.started_at > storm.last_at, "after the burst window: its own incident");

        // One `opened` per incident, and one update of the storm (due a minute after it opened).
        let due = store.due_notifications(EventTime::from_secs(2_000_000_000), 10_000).unwrap();
        let events: Vec<(&str, i64)> = due.iter().map(|n| (n.event.as_str(), n.alert_id)).collect();
        assert_eq!(events.iter().filter(|(e, _)| *e == "opened").count(), 3, "{events:?}");
        let updates: Vec<_> = due.iter().filter(|n| n.event == "incident_updated").collect();
        assert_eq!(updates.len(), 1, "{events:?}");
        assert_eq!(updates[0].alert_id, storm.first_alert);
        let brief = updates[0].incident.as_ref().unwrap();
        assert_eq!((brief.id, brief.alerts), (storm.id, card.len() as u64));
        assert!(brief.causes[0].starts_with("shop.payments.channel=card (100 % of the incident"), "{:?}", brief.causes);

        // Attribution: the card channel, and the deploy just before the storm first.
        let deploy = |service: &str, minutes_before: i64| Deploy {
            id: 0,
            service: service.into(),
            kind: "deploy".into(),
            version: Some("v2".into()),
            at: EventTime::from_micros(storm.started_at.as_micros() - minutes_before * 60_000_000),
            author: None,
            link: None,
            tables: if service == "payment-gateway" { vec!["shop.payments".into()] } else { vec![] },
            description: None,
        };
        store.add_change(&deploy("search", 180), EventTime::from_secs(1)).unwrap();
        let gateway = store.add_change(&deploy("payment-gateway", 2), EventTime::from_secs(1)).unwrap();
        // Sent again (a replay after a crash, a redelivered webhook): stored once.
        assert_eq!(store.add_change(&deploy("payment-gateway", 2), EventTime::from_secs(2)).unwrap(), gateway);
        let detail = store.incident(storm.id).unwrap();
        assert_eq!(detail.keys, card.len() as u64);
        assert_eq!(detail.dimensions[0].cause.name, "shop.payments.channel=card", "{:#?}", detail.dimensions);
        assert_eq!(detail.changes[0].cause.change.id, gateway, "{:#?}", detail.changes);
        assert_eq!(detail.changes.len(), 2);

        // A verdict on a cause is kept and shown with it.
        store
            .cause_feedback(
                storm.id,
                "shop.payments.channel=card",
                true,
                Some("gateway v2"),
                "ana",
                EventTime::from_secs(5),
            )
            .unwrap();
        store
            .cause_feedback(storm.id, &format!("change:{gateway}"), false, None, "ana", EventTime::from_secs(6))
            .unwrap();
        let detail = store.incident(storm.id).unwrap();
        let verdict = detail.dimensions[0].feedback.as_ref().unwrap();
        assert_eq!((verdict.verdict.as_str(), verdict.actor.as_str()), ("confirmed", "ana"));
        assert_eq!(detail.changes[0].feedback.as_ref().unwrap().verdict, "rejected");
        assert!(store.cause_feedback(999, "x", true, None, "ana", EventTime::from_secs(6)).is_err());

        // Resolving the incident resolves every alert, each audited; only the first notifies.
        let before = store.notification_counts().unwrap().0;
        let changed = store
            .change_incident(
                storm.id,
                &Change::Resolve { root_cause: "gateway v2 rounding".into() },
                "ana",
                EventTime::from_secs(7),
            )
            .unwrap();
        assert_eq!(changed, card.len());
        let (alert, timeline) = store.get(detail.alert_ids[5]).unwrap();
        assert_eq!(alert.status, Status::Resolved);
        assert_eq!(alert.incident_id, Some(storm.id));
        assert!(timeline.iter().any(|t| t.action == "resolved" && t.actor == "ana"));
        assert_eq!(store.notification_counts().unwrap().0, before + 1, "one resolution notice");
        let resolved = store.incidents(Some(IncidentStatus::Resolved), 0).unwrap();
        assert_eq!(resolved.len(), 1);
        assert_eq!(resolved[0].root_cause.as_deref(), Some("gateway v2 rounding"));
        // A new alert of the same rule after resolution opens a new incident.
        store.record(&[broken(9002, 3600 * 2 + 5)]).unwrap();
        assert_eq!(store.incidents(None, 0).unwrap().len(), 3, "joins the later open incident");
    }
}

/// An incident whose alerts stopped before its first update still tells its final count:
/// the notifier sends the update once it is due, and only once.
#[test]
fn a_quiet_incident_sends_its_final_count_when_the_update_is_due() {
    for (kind, mut store, _backing) in stores_with(routes()) {
        eprintln!("store: {kind}");
        let storm: Vec<_> = (0..10).map(|i| broken(i, i)).collect();
        store.record(&storm).unwrap();
        let opened = storm[0].detected_at;
        let updates = |store: &dyn fundguard_alerts::AlertStore| {
            let due = store.due_notifications(EventTime::from_secs(2_000_000_000), 1000).unwrap();
            due.into_iter().filter(|n| n.event == "incident_updated").collect::<Vec<_>>()
        };
        assert!(updates(store.as_ref()).is_empty(), "not due within the batch");
        assert_eq!(store.send_due_incident_updates(opened.plus(std::time::Duration::from_secs(30))).unwrap(), 0);
        assert_eq!(store.send_due_incident_updates(opened.plus(std::time::Duration::from_secs(61))).unwrap(), 1);
        let sent = updates(store.as_ref());
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].incident.as_ref().unwrap().alerts, 10, "the final count");
        assert_eq!(
            store.send_due_incident_updates(opened.plus(std::time::Duration::from_secs(3600))).unwrap(),
            0,
            "told once"
        );
    }
}
