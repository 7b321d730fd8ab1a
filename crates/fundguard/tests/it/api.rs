//! The console API against the running binary: logins and roles, CSRF, filters and
//! paging, refusals that change nothing, rules switched off and on, metrics.

use std::time::Duration;

use crate::service::{Service, agent, now_ms, post, wait, write_config};
use crate::{path, repo_root};

/// A `fundguard run` with an HTTP source, an alert store and a user of every role.
fn service(dir: &std::path::Path) -> (Service, String) {
    let config = write_config(
        dir,
        &format!(
            "rules: [{rules}]\ndata_dir: data\nlisten: 127.0.0.1:0\nsources:\n  - {{ name: msgs, type: http, format: json, table: shop.refunds, token_env: FG_TOKEN }}\nsinks:\n  - {{ type: alerts }}\nconsole:\n  users:\n    - {{ name: vera, role: viewer, password_env: FG_VIEWER }}\n    - {{ name: otto, role: operator, password_env: FG_OPERATOR }}\n    - {{ name: ada, role: admin, password_env: FG_ADMIN }}\n  tokens:\n    - {{ name: ci-bot, role: operator, token_env: FG_API_TOKEN }}\n",
            rules = path(&repo_root().join("examples/rules"))
        ),
    );
    let envs = [
        ("FG_TOKEN", "ingest"),
        ("FG_VIEWER", "pw-v"),
        ("FG_OPERATOR", "pw-o"),
        ("FG_ADMIN", "pw-a"),
        ("FG_API_TOKEN", "api-secret"),
    ];
    let service = Service::start(&config, &envs);
    let url = service.url();
    (service, url)
}

/// A logged-in session: its cookie and CSRF token.
pub(crate) struct Session {
    pub cookie: String,
    pub csrf: String,
}

pub(crate) fn login(url: &str, user: &str, password: &str) -> Result<Session, u16> {
    let body = serde_json::json!({ "user": user, "password": password }).to_string();
    let mut response =
        agent().post(&format!("{url}/api/v1/login")).header("Content-Type", "application/json").send(&body).unwrap();
    if response.status() != 200 {
        return Err(response.status().as_u16());
    }
    let cookie = response.headers().get("set-cookie").unwrap().to_str().unwrap().split(';').next().unwrap().to_string();
    assert!(response.headers()["set-cookie"].to_str().unwrap().contains("Path=/; HttpOnly; SameSite=Strict"));
    let json: serde_json::Value = serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap();
    Ok(Session { cookie, csrf: json["csrf"].as_str().unwrap().to_string() })
}

/// A request with the session's cookie (and CSRF token, unless `csrf` is false).
pub(crate) fn call(
    url: &str,
    session: &Session,
    method: &str,
    route: &str,
    body: Option<&str>,
    csrf: bool,
) -> (u16, serde_json::Value) {
    let target = format!("{url}{route}");
    let mut response = match method {
        "GET" => agent().get(&target).header("Cookie", &session.cookie).call().unwrap(),
        _ => {
            let mut request =
                agent().post(&target).header("Cookie", &session.cookie).header("Content-Type", "application/json");
            if csrf {
                request = request.header("X-CSRF-Token", &session.csrf);
            }
            request.send(body.unwrap_or("{}")).unwrap()
        }
    };
    let status = response.status().as_u16();
    let text = response.body_mut().read_to_string().unwrap_or_default();
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
}

pub(crate) fn refunds(url: &str, ids: std::ops::RangeInclusive<i64>) {
    let ts = now_ms();
    let batch: Vec<String> = ids
        .map(|id| format!("{{\"id\":{id},\"order_id\":{id},\"amount\":-{id},\"currency\":\"CNY\",\"ts\":{ts}}}"))
        .collect();
    let (status, body) = post(&format!("{url}/v1/ingest/msgs"), Some("ingest"), &format!("[{}]", batch.join(",")));
    assert_eq!(status, 200, "{body}");
}

#[test]
fn the_api_checks_who_asks_refuses_bad_requests_and_changes_nothing_half_way() {
    let dir = tempfile::tempdir().unwrap();
    let (_service, url) = service(dir.path());
    refunds(&url, 1..=5);
    let (anonymous, _) = {
        let mut r = agent().get(&format!("{url}/api/v1/alerts")).call().unwrap();
        (r.status().as_u16(), r.body_mut().read_to_string().unwrap())
    };
    assert_eq!(anonymous, 401, "no session, no alerts");
    assert_eq!(login(&url, "otto", "wrong").err(), Some(401));

    let viewer = login(&url, "vera", "pw-v").unwrap();
    let operator = login(&url, "otto", "pw-o").unwrap();
    let page = wait(Duration::from_secs(10), || {
        let (_, page) = call(&url, &viewer, "GET", "/api/v1/alerts?rule=refund-amount-positive&limit=2", None, false);
        (page["alerts"].as_array().map_or(0, Vec::len) == 2).then_some(page)
    })
    .expect("alerts arrive");
    assert_eq!(page["next_offset"], 2, "more pages follow: {page}");
    let (_, last) =
        call(&url, &viewer, "GET", "/api/v1/alerts?rule=refund-amount-positive&limit=2&offset=4", None, false);
    assert_eq!((last["alerts"].as_array().unwrap().len(), &last["next_offset"]), (1, &serde_json::Value::Null));

    for (query, expected) in [
        ("colour=red", "unknown filter `colour`"),
        ("limit=0", "expected 1 to 500"),
        ("offset=-3", "expected a whole number"),
        ("status=sleeping", "status `sleeping`"),
    ] {
        let (status, body) = call(&url, &viewer, "GET", &format!("/api/v1/alerts?{query}"), None, false);
        assert_eq!(status, 400, "{query}");
        assert!(body["error"].as_str().unwrap().contains(expected), "{query}: {body}");
    }
    assert_eq!(call(&url, &viewer, "GET", "/api/v1/alerts/999", None, false).0, 404);

    // Refusals change nothing: the timeline stays as it was.
    let id = page["alerts"][0]["id"].as_i64().unwrap();
    let timeline_len = || {
        call(&url, &viewer, "GET", &format!("/api/v1/alerts/{id}"), None, false).1["timeline"].as_array().unwrap().len()
    };
    let before = timeline_len();
    let (status, body) = call(&url, &viewer, "POST", &format!("/api/v1/alerts/{id}/ack"), None, true);
    assert_eq!(status, 403, "a viewer cannot act: {body}");
    let (status, _) = call(&url, &operator, "POST", &format!("/api/v1/alerts/{id}/ack"), None, false);
    assert_eq!(status, 403, "no CSRF token, no change");
    let (status, body) = call(&url, &operator, "POST", &format!("/api/v1/alerts/{id}/resolve"), Some("{}"), true);
    assert_eq!(status, 422, "resolving needs a root cause: {body}");
    assert!(body["error"].as_str().unwrap().contains("root cause"), "{body}");
    let (status, body) =
        call(&url, &operator, "POST", &format!("/api/v1/alerts/{id}/resolve"), Some("{\"cause\": 1}"), true);
    assert_eq!(status, 400, "unknown body fields are refused: {body}");
    let big = format!("{{\"text\": \"{}\"}}", "x".repeat(70 * 1024));
    assert_eq!(call(&url, &operator, "POST", &format!("/api/v1/alerts/{id}/note"), Some(&big), true).0, 413);
    assert_eq!(timeline_len(), before, "nothing half-applied");

    let (status, alert) = call(&url, &operator, "POST", &format!("/api/v1/alerts/{id}/ack"), None, true);
    assert_eq!((status, alert["status"].as_str()), (200, Some("acknowledged")));
    let (status, alert) = call(
        &url,
        &operator,
        "POST",
        &format!("/api/v1/alerts/{id}/resolve"),
        Some("{\"root_cause\": \"sign flipped in the refund job\"}"),
        true,
    );
    assert_eq!((status, alert["status"].as_str()), (200, Some("resolved")));
    let (_, shown) = call(&url, &viewer, "GET", &format!("/api/v1/alerts/{id}"), None, false);
    let actors: Vec<(&str, &str)> = shown["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["action"].as_str().unwrap(), t["actor"].as_str().unwrap()))
        .collect();
    assert_eq!(actors, [("opened", "fundguard"), ("acknowledged", "otto"), ("resolved", "otto")]);

    // An API token acts without CSRF, and its name is the actor.
    let other = page["alerts"][1]["id"].as_i64().unwrap();
    let mut response = agent()
        .post(&format!("{url}/api/v1/alerts/{other}/note"))
        .header("Authorization", "Bearer api-secret")
        .header("Content-Type", "application/json")
        .send("{\"text\": \"looking into it\"}")
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.body_mut().read_to_string().unwrap());
    let (_, shown) = call(&url, &viewer, "GET", &format!("/api/v1/alerts/{other}"), None, false);
    assert_eq!(shown["timeline"].as_array().unwrap().last().unwrap()["actor"], "ci-bot");
    let bad_token = agent().get(&format!("{url}/api/v1/alerts")).header("Authorization", "Bearer nope").call().unwrap();
    assert_eq!(bad_token.status(), 401);

    let (status, _) = call(&url, &operator, "POST", "/api/v1/logout", None, true);
    assert_eq!(status, 204);
    assert_eq!(call(&url, &operator, "GET", "/api/v1/alerts", None, false).0, 401, "the session ended");
}

#[test]
fn an_admin_switches_a_rule_off_and_on_and_metrics_show_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let (_service, url) = service(dir.path());
    let admin = login(&url, "ada", "pw-a").unwrap();
    let operator = login(&url, "otto", "pw-o").unwrap();
    let rule = "refund-amount-positive";
    let (status, rules) = call(&url, &admin, "GET", "/api/v1/rules", None, false);
    assert_eq!(status, 200);
    let row = rules.as_array().unwrap().iter().find(|r| r["id"] == rule).expect("the rule is listed").clone();
    assert_eq!(
        (row["owner"].as_str(), row["severity"].as_str(), row["enabled"].as_bool()),
        (Some("refunds"), Some("critical"), Some(true))
    );
    assert_eq!(row["kind"], "check");

    assert_eq!(
        call(&url, &operator, "POST", &format!("/api/v1/rules/{rule}/disable"), None, true).0,
        403,
        "an operator without `teams` switches no rules"
    );
    assert_eq!(call(&url, &admin, "POST", "/api/v1/rules/no-such-rule/disable", None, true).0, 404);
    assert_eq!(call(&url, &admin, "POST", &format!("/api/v1/rules/{rule}/disable"), None, true).0, 200);
    let off = wait(Duration::from_secs(10), || {
        let (_, rules) = call(&url, &admin, "GET", "/api/v1/rules", None, false);
        rules.as_array().unwrap().iter().any(|r| r["id"] == rule && r["enabled"] == false).then_some(())
    });
    assert!(off.is_some(), "the rule is reloaded switched off");
    refunds(&url, 1..=2);
    std::thread::sleep(Duration::from_millis(500));
    let (_, page) = call(&url, &admin, "GET", &format!("/api/v1/alerts?rule={rule}"), None, false);
    assert!(page["alerts"].as_array().unwrap().is_empty(), "a switched-off rule finds nothing: {page}");
    assert!(std::fs::read_to_string(dir.path().join("data/disabled-rules.json")).unwrap().contains(rule), "remembered");

    assert_eq!(call(&url, &admin, "POST", &format!("/api/v1/rules/{rule}/enable"), None, true).0, 200);
    let found = wait(Duration::from_secs(10), || {
        refunds(&url, 3..=3);
        let (_, page) = call(&url, &admin, "GET", &format!("/api/v1/alerts?rule={rule}"), None, false);
        (!page["alerts"].as_array().unwrap().is_empty()).then_some(())
    });
    assert!(found.is_some(), "switched on again, it finds");

    let (status, _) = post(&format!("{url}/v1/ingest/msgs"), Some("ingest"), "[{\"id\": 1}]");
    assert_eq!(status, 422, "a message without its event time is refused");
    let metrics = wait(Duration::from_secs(10), || {
        let text = agent().get(&format!("{url}/metrics")).call().unwrap().body_mut().read_to_string().unwrap();
        text.contains("fundguard_alerts{status=\"open\"}").then_some(text)
    })
    .expect("alert counts reach /metrics");
    for family in [
        "fundguard_events_in_total{source=\"msgs\",table=\"shop.refunds\"}",
        &format!("fundguard_findings_total{{rule=\"{rule}\",severity=\"critical\"}}"),
        "fundguard_detection_latency_seconds_bucket{le=\"+Inf\"}",
        &format!("fundguard_rule_evaluations_total{{rule=\"{rule}\",kind=\"check\"}}"),
        "fundguard_watermark_lag_seconds{source=\"msgs\"}",
        "fundguard_decode_errors_total{source=\"msgs\"} 1",
    ] {
        assert!(metrics.contains(family), "{family} in:\n{metrics}");
    }
    assert!(!metrics.contains("pw-a") && !metrics.contains("api-secret"), "secrets never show");

    // Figures over the store are reused for up to 5 s: the money shows within that.
    let dashboard = wait(Duration::from_secs(15), || {
        let (status, dashboard) = call(&url, &admin, "GET", "/api/v1/dashboard?minutes=5", None, false);
        assert_eq!(status, 200);
        dashboard["money_at_risk"]["refunds"]["CNY"]["display"].as_str().is_some().then_some(dashboard)
    })
    .expect("the open money at risk reaches the dashboard");
    let money = &dashboard["money_at_risk"]["refunds"]["CNY"];
    let display = money["display"].as_str().unwrap();
    let exact = fundguard_core::parse_display(display).expect("major units with the currency code");
    assert_eq!(
        exact.amount.to_string(),
        money["amount_minor"].as_str().unwrap(),
        "the display is the exact minor units: {money}"
    );
    let (_, page) = call(&url, &admin, "GET", &format!("/api/v1/alerts?rule={rule}"), None, false);
    let alert_money = &page["alerts"][0]["money_at_risk"];
    assert!(
        alert_money["amount_minor"].is_string() && alert_money["display"].as_str().unwrap().ends_with(" CNY"),
        "{alert_money}"
    );
    assert!(dashboard["detection_latency"]["count"].as_u64().unwrap() >= 1, "{dashboard}");
    assert_eq!(call(&url, &admin, "GET", "/api/v1/dashboard?hours=5", None, false).0, 400);
}

#[test]
fn the_openapi_document_describes_the_served_routes() {
    let dir = tempfile::tempdir().unwrap();
    let (_service, url) = service(dir.path());
    let doc: serde_json::Value = serde_json::from_str(
        &agent().get(&format!("{url}/api/openapi.json")).call().unwrap().body_mut().read_to_string().unwrap(),
    )
    .unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    // Every documented operation is served (a placeholder id answers 4xx, never "no such route"),
    // and asks for credentials exactly when it declares security.
    for (route, operations) in doc["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            let target = format!(
                "{url}{}",
                route
                    .replace("{id}", "1")
                    .replace("{change}", "ack")
                    .replace("{toggle}", "enable")
                    .replace("{decision}", "accept")
                    .replace("{source}", "msgs")
            );
            let response = match method.as_str() {
                "get" => agent().get(&target).call().unwrap(),
                "post" => agent().post(&target).header("Content-Type", "application/json").send("{}").unwrap(),
                other => panic!("{other} {route}: the API only uses GET and POST"),
            };
            let status = response.status().as_u16();
            assert!(![404, 405].contains(&status), "{method} {route}: {status}");
            let secured = !operation["security"].as_array().unwrap().is_empty();
            assert_eq!(status == 401, secured, "{method} {route} answers {status} without credentials");
        }
    }
}

#[test]
fn readiness_waits_for_every_source() {
    let dir = tempfile::tempdir().unwrap();
    let (_service, url) = service(dir.path());
    let ready = agent().get(&format!("{url}/readyz")).call().unwrap().body_mut().read_to_string().unwrap();
    assert_eq!(ready, "ready", "an HTTP source is ready once it listens");

    // A database source that cannot connect holds readiness back, and says so.
    let closed = crate::service::free_port();
    let config = write_config(
        dir.path(),
        &format!(
            "rules: [{rules}]\ndata_dir: data2\nlisten: 127.0.0.1:0\nsources:\n  - {{ name: ledger-db, type: postgres, url: \"postgres://postgres@127.0.0.1:{closed}/x\", slot: s }}\n",
            rules = path(&repo_root().join("examples/rules"))
        ),
    );
    let down = Service::start(&config, &[]);
    let url = down.url();
    let answer = wait(Duration::from_secs(10), || {
        let mut r = agent().get(&format!("{url}/readyz")).call().unwrap();
        let body = r.body_mut().read_to_string().unwrap();
        (r.status() == 503 && body.contains("ledger-db")).then_some(body)
    });
    assert!(answer.is_some(), "503 naming the source");
}
