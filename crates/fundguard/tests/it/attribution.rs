//! Alarm attribution through the binary: the simulator injects a bad deploy (payments of
//! one channel one fen off from a deploy until its rollback, with an unrelated deploy two
//! hours earlier) and a merchant's outage (its orders stuck in PAYING); a backtest records
//! the findings as alerts, the changes come in with `fundguard changes add`, and each
//! injection must be one incident whose first-ranked dimension is the injected one, with
//! the injected deploy first among the changes.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::service::write_config;
use crate::{fundguard, path, read_jsonl, repo_root, stderr, stdout};

#[test]
fn a_bad_deploy_and_a_merchant_outage_are_one_incident_each_with_their_cause_ranked_first() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let o = fundguard(&[
        "simulate",
        "--out",
        path(d),
        "--orders",
        "20000",
        "--incident-rate",
        "0",
        "--seed",
        "7",
        "--format",
        "maxwell",
        "--bad-deploy",
        "card",
        "--merchant-outage",
        "17",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let config = write_config(
        d,
        &format!(
            "rules: [{rules}]\nsinks:\n  - {{ type: alerts, path: alerts.db }}\nincidents:\n  flows:\n    checkout: [order-stuck-in-paying, payment-matches-order]\n  services:\n    payment-gateway: {{ tables: [shop.payments], team: payments }}\n    search-frontend: {{ team: growth }}\n",
            rules = path(&repo_root().join("examples/rules"))
        ),
    );
    let o = fundguard(&[
        "backtest",
        "--rules",
        path(&repo_root().join("examples/rules")),
        "--input",
        path(&d.join("maxwell.jsonl")),
        "--format",
        "maxwell",
        "--schema",
        path(&d.join("schema.yaml")),
        "--findings",
        path(&d.join("f.jsonl")),
        "--alerts",
        path(&d.join("alerts.db")),
        "--config",
        path(&config),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = fundguard(&["changes", "--config", path(&config), "add", "--file", path(&d.join("changes.jsonl"))]);
    assert!(o.status.success() && stdout(&o).contains("3 change(s) recorded"), "{}{}", stdout(&o), stderr(&o));

    // Every finding the answer key expects, and nothing else, as alerts in two incidents.
    let expected: BTreeSet<(String, String)> = read_jsonl(&d.join("answer-key.jsonl"))
        .iter()
        .flat_map(|i| i["expected"].as_array().unwrap().clone())
        .map(|e| (e["rule"].as_str().unwrap().to_string(), e["key"].to_string()))
        .collect();
    let found: BTreeSet<(String, String)> = read_jsonl(&d.join("f.jsonl"))
        .iter()
        .map(|f| (f["rule"].as_str().unwrap().to_string(), f["key"].to_string()))
        .collect();
    assert_eq!(found, expected);
    let o = fundguard(&["incidents", "--config", path(&config), "list", "--format", "json"]);
    let incidents: Vec<Value> = stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(incidents.len(), 2, "one incident per injection: {incidents:#?}");
    assert_eq!(incidents.iter().map(|i| i["alerts"].as_u64().unwrap()).sum::<u64>(), expected.len() as u64);
    let show = |id: &Value| -> Value {
        let o = fundguard(&["incidents", "--config", path(&config), "show", &id.to_string(), "--format", "json"]);
        assert!(o.status.success(), "{}", stderr(&o));
        serde_json::from_str(&stdout(&o)).unwrap()
    };
    // Listed newest first: the merchant's outage, then the bad deploy.
    let (outage, deploy) = (show(&incidents[0]["id"]), show(&incidents[1]["id"]));

    assert_eq!(deploy["dimensions"][0]["name"], "shop.payments.channel=card", "{:#}", deploy["dimensions"]);
    assert_eq!(deploy["dimensions"][0]["support"], 1.0);
    let change = &deploy["changes"][0]["change"];
    assert_eq!((&change["service"], &change["version"]), (&Value::from("payment-gateway"), &Value::from("v0.1")));
    let unrelated =
        deploy["changes"].as_array().unwrap().iter().position(|c| c["change"]["service"] == "search-frontend");
    assert!(unrelated.is_some_and(|i| i > 0), "the earlier unrelated deploy is a candidate, ranked below");
    assert!(
        deploy["changes"].as_array().unwrap().iter().all(|c| c["change"]["version"] != "v0.0"),
        "the rollback came after"
    );

    assert_eq!(outage["dimensions"][0]["name"], "shop.orders.merchant_id=17", "{:#}", outage["dimensions"]);
    let flows: BTreeSet<&str> = [&outage, &deploy].iter().map(|i| i["flow"].as_str().unwrap()).collect();
    assert_eq!(flows, BTreeSet::from(["checkout"]));

    // A verdict on the cause is kept and shown; resolving the incident closes its alerts.
    let id = deploy["id"].to_string();
    let o = fundguard(&[
        "incidents",
        "--config",
        path(&config),
        "confirm",
        &id,
        "shop.payments.channel=card",
        "--by",
        "ana",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = fundguard(&[
        "incidents",
        "--config",
        path(&config),
        "resolve",
        &id,
        "--root-cause",
        "gateway v0.1",
        "--by",
        "ana",
    ]);
    assert!(
        o.status.success() && stdout(&o).contains(&format!("{} alert(s) resolved", deploy["alerts"])),
        "{}",
        stdout(&o)
    );
    let o = fundguard(&["incidents", "--config", path(&config), "show", &id]);
    let text = stdout(&o);
    assert!(text.contains("resolved") && text.contains("confirmed by ana"), "{text}");
    let o = fundguard(&["incidents", "--config", path(&config), "show", "999"]);
    assert_eq!(o.status.code(), Some(1), "an unknown incident is refused: {}", stderr(&o));
}
