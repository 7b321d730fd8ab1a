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
    // Of the flow's two rules, the stuck orders are what sets this incident apart.
    let rules: Vec<&str> = outage["dimensions"].as_array().unwrap().iter().filter_map(|d| d["name"].as_str()).collect();
    assert!(rules.contains(&"(findings).rule=order-stuck-in-paying"), "{rules:?}");
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

/// `sha256=<hex>` HMAC of `body`, as GitHub signs a webhook delivery.
fn github_signature(secret: &str, body: &str) -> String {
    use hmac::{Hmac, KeyInit, Mac};
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

/// The change intake of a running service — fundguard's JSON with an API token, GitHub's
/// signed `deployment_status` events — and a storm ingested over HTTP becoming one incident
/// in the API, with the posted deploy ranked first among its changes.
#[test]
fn changes_come_in_over_the_api_and_github_and_rank_against_a_live_incident() {
    use crate::service::{Service, agent, now_ms, post, wait};
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "rules: [{rules}]\ndata_dir: data\nlisten: 127.0.0.1:0\nsources:\n  - {{ name: msgs, type: http, format: json, table: shop.refunds, token_env: FG_TOKEN }}\nsinks:\n  - {{ type: alerts }}\nconsole:\n  tokens:\n    - {{ name: deployer, role: operator, token_env: FG_OPS }}\nincidents:\n  services:\n    refund-service: {{ tables: [shop.refunds], team: refunds }}\n  github_secret_env: FG_GITHUB\n",
            rules = path(&repo_root().join("examples/rules"))
        ),
    );
    let envs = [("FG_TOKEN", "t"), ("FG_OPS", "ops"), ("FG_GITHUB", "gh-secret")];
    let service = Service::start(&config, &envs);
    let url = service.url();
    let minutes_ago = |m: i64| chrono::DateTime::from_timestamp_millis(now_ms() - m * 60_000).unwrap().to_rfc3339();

    // fundguard's own JSON: refused without a token or with an unknown kind, then recorded.
    let deploy = format!(
        "{{\"service\":\"refund-service\",\"kind\":\"deploy\",\"version\":\"r42\",\"at\":\"{}\"}}",
        minutes_ago(3)
    );
    assert_eq!(post(&format!("{url}/api/v1/changes"), None, &deploy).0, 401);
    let (status, body) = post(&format!("{url}/api/v1/changes"), Some("ops"), &deploy.replace("deploy", "rollout"));
    assert_eq!(status, 400, "{body}");
    let (status, body) = post(&format!("{url}/api/v1/changes"), Some("ops"), &deploy);
    assert_eq!(status, 201, "{body}");
    let posted = body["id"].as_i64().unwrap();

    // GitHub: a successful deployment of the `search` repository, signed; a bad signature
    // and a pending deployment change nothing.
    let github = |state: &str| {
        format!(
            "{{\"deployment_status\":{{\"state\":\"{state}\",\"created_at\":\"{}\",\"target_url\":\"https://ci.example/run/7\"}},\"deployment\":{{\"sha\":\"abc123\",\"environment\":\"production\",\"creator\":{{\"login\":\"octocat\"}}}},\"repository\":{{\"name\":\"search\"}}}}",
            minutes_ago(90)
        )
    };
    let send = |body: &str, signature: &str| {
        let mut r = agent()
            .post(&format!("{url}/api/v1/changes/github"))
            .header("Content-Type", "application/json")
            .header("X-GitHub-Event", "deployment_status")
            .header("X-Hub-Signature-256", signature)
            .send(body)
            .unwrap();
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
    };
    let success = github("success");
    assert_eq!(send(&success, &github_signature("wrong", &success)).0, 401);
    let pending = github("pending");
    assert_eq!(send(&pending, &github_signature("gh-secret", &pending)).0, 202);
    let (status, body) = send(&success, &github_signature("gh-secret", &success));
    assert_eq!(status, 201, "{body}");
    let changes = crate::service::get_json(&format!("{url}/api/v1/changes"), "ops");
    let listed: Vec<(String, String)> = changes
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["service"].as_str().unwrap().to_string(), c["version"].as_str().unwrap().to_string()))
        .collect();
    assert_eq!(
        listed,
        [("search".to_string(), "abc123".to_string()), ("refund-service".to_string(), "r42".to_string())]
    );
    let search = changes.as_array().unwrap().iter().find(|c| c["service"] == "search").unwrap();
    assert_eq!(
        (&search["author"], &search["link"]),
        (&Value::from("octocat"), &Value::from("https://ci.example/run/7"))
    );

    // A storm of negative refunds: one incident, the refund service's deploy ranked first.
    let ts = now_ms();
    let storm: Vec<String> = (1..=20)
        .map(|id| format!("{{\"id\":{id},\"order_id\":{id},\"amount\":-1,\"currency\":\"CNY\",\"ts\":{ts}}}"))
        .collect();
    assert_eq!(post(&format!("{url}/v1/ingest/msgs"), Some("t"), &format!("[{}]", storm.join(","))).0, 200);
    let incidents = wait(std::time::Duration::from_secs(15), || {
        let list = crate::service::get_json(&format!("{url}/api/v1/incidents"), "ops");
        list.as_array().filter(|l| l.first().is_some_and(|i| i["alerts"] == 20)).cloned()
    })
    .expect("one incident of the twenty alerts");
    assert_eq!(incidents.len(), 1, "{incidents:?}");
    let detail = crate::service::get_json(&format!("{url}/api/v1/incidents/{}", incidents[0]["id"]), "ops");
    assert_eq!(detail["changes"][0]["change"]["id"], posted, "{detail:#}");
    assert!(detail["changes"][0]["reason"].as_str().unwrap().contains("shop.refunds"), "{detail:#}");
    let (status, body) = post(
        &format!("{url}/api/v1/incidents/{}/causes", incidents[0]["id"]),
        Some("ops"),
        &format!("{{\"cause\":\"change:{posted}\",\"verdict\":\"confirmed\"}}"),
    );
    assert_eq!(status, 200, "{body}");
    let detail = crate::service::get_json(&format!("{url}/api/v1/incidents/{}", incidents[0]["id"]), "ops");
    assert_eq!(detail["changes"][0]["feedback"]["actor"], "deployer", "{detail:#}");
}
