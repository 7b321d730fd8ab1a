//! What guards the console, the API and HTTP ingest, against the running binary: teams
//! scope what operators change, failed logins lock out, the session cookie's flags, the
//! audit log of rule switches, and each HTTP source's limits (413 and 429).

use std::time::Duration;

use crate::api::{Session, call, login};
use crate::service::{Service, agent, now_ms, post, wait, write_config};
use crate::{path, repo_root};

const PASSWORD: &str = "pw-guards";

/// A `fundguard run` with refunds and payments arriving over HTTP, operators of either
/// team, an admin, a payments bot, quick lock-outs and secure cookies turned on.
fn service(dir: &std::path::Path) -> (Service, String) {
    let config = write_config(
        dir,
        &format!(
            "rules: [{rules}]\ndata_dir: data\nlisten: 127.0.0.1:0\n\
             sources:\n\
             \x20 - {{ name: refunds, type: http, format: json, table: shop.refunds, token_env: FG_TOKEN }}\n\
             \x20 - {{ name: payments, type: http, format: json, table: shop.payments, token_env: FG_TOKEN }}\n\
             sinks:\n  - {{ type: alerts }}\n\
             console:\n\
             \x20 secure_cookies: true\n\
             \x20 login: {{ max_failures: 3, within: 1m, lockout: 2s }}\n\
             \x20 users:\n\
             \x20   - {{ name: pia, role: operator, teams: [payments], password_env: FG_PW }}\n\
             \x20   - {{ name: rafa, role: operator, teams: [refunds, orders], password_env: FG_PW }}\n\
             \x20   - {{ name: ada, role: admin, password_env: FG_PW }}\n\
             \x20 tokens:\n\
             \x20   - {{ name: pay-bot, role: operator, teams: [payments], token_env: FG_PAY_BOT }}\n",
            rules = path(&repo_root().join("examples/rules"))
        ),
    );
    let service = Service::start(&config, &[("FG_TOKEN", "ingest"), ("FG_PW", PASSWORD), ("FG_PAY_BOT", "pay-secret")]);
    let url = service.url();
    (service, url)
}

/// The id of the newest alert of `rule`, once there is one.
fn alert_of(url: &str, session: &Session, rule: &str) -> i64 {
    wait(Duration::from_secs(10), || {
        let (_, page) = call(url, session, "GET", &format!("/api/v1/alerts?rule={rule}"), None, false);
        page["alerts"][0]["id"].as_i64()
    })
    .unwrap_or_else(|| panic!("an alert of {rule}"))
}

/// A change made with the payments bot's token.
fn as_bot(url: &str, route: &str, body: &str) -> (u16, serde_json::Value) {
    let mut response = agent()
        .post(&format!("{url}{route}"))
        .header("Authorization", "Bearer pay-secret")
        .header("Content-Type", "application/json")
        .send(body)
        .unwrap();
    let status = response.status().as_u16();
    (status, serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap_or_default())
}

#[test]
fn an_operator_of_team_a_gets_403_on_team_b_s_alert_and_rule_and_an_admin_works_both() {
    let dir = tempfile::tempdir().unwrap();
    let (_service, url) = service(dir.path());
    let ts = now_ms();
    let refund = format!("[{{\"id\":1,\"order_id\":1,\"amount\":-5,\"currency\":\"CNY\",\"ts\":{ts}}}]");
    assert_eq!(post(&format!("{url}/v1/ingest/refunds"), Some("ingest"), &refund).0, 200);
    let payment =
        format!("[{{\"id\":1,\"order_id\":1,\"amount\":0,\"currency\":\"CNY\",\"status\":\"SUCCESS\",\"ts\":{ts}}}]");
    assert_eq!(post(&format!("{url}/v1/ingest/payments"), Some("ingest"), &payment).0, 200);

    let pia = login(&url, "pia", PASSWORD).unwrap();
    let ada = login(&url, "ada", PASSWORD).unwrap();
    let (_, me) = call(&url, &pia, "GET", "/api/v1/session", None, false);
    assert_eq!((me["role"].as_str(), &me["teams"]), (Some("operator"), &serde_json::json!(["payments"])));
    let (_, me) = call(&url, &ada, "GET", "/api/v1/session", None, false);
    assert!(me["teams"].is_null(), "an admin works every team: {me}");

    // Every operator reads every team's alerts…
    let refund_alert = alert_of(&url, &pia, "refund-amount-positive");
    let payment_alert = alert_of(&url, &pia, "payment-amount-positive");
    let timeline =
        |id: i64| call(&url, &ada, "GET", &format!("/api/v1/alerts/{id}"), None, false).1["timeline"].clone();
    let before = timeline(refund_alert);

    // …but changes only its own teams'.
    let (status, body) = call(&url, &pia, "POST", &format!("/api/v1/alerts/{refund_alert}/ack"), None, true);
    assert_eq!(status, 403, "{body}");
    let error = body["error"].as_str().unwrap();
    assert!(error.contains("belongs to team `refunds`") && error.contains("`payments`"), "{error}");
    let (status, _) = as_bot(&url, &format!("/api/v1/alerts/{refund_alert}/note"), "{\"text\": \"mine?\"}");
    assert_eq!(status, 403, "a token's teams scope it too");
    assert_eq!(timeline(refund_alert), before, "a refused change leaves no trace");
    let (status, alert) = call(&url, &pia, "POST", &format!("/api/v1/alerts/{payment_alert}/ack"), None, true);
    assert_eq!((status, alert["status"].as_str()), (200, Some("acknowledged")));
    let (status, _) = as_bot(&url, &format!("/api/v1/alerts/{payment_alert}/note"), "{\"text\": \"retrying\"}");
    assert_eq!(status, 200);

    // An admin works both teams' alerts.
    let (status, alert) = call(&url, &ada, "POST", &format!("/api/v1/alerts/{refund_alert}/ack"), None, true);
    assert_eq!((status, alert["status"].as_str()), (200, Some("acknowledged")));
    let (status, _) =
        call(&url, &ada, "POST", &format!("/api/v1/alerts/{payment_alert}/note"), Some("{\"text\": \"seen\"}"), true);
    assert_eq!(status, 200);

    // Rules likewise: an operator switches its teams' rules only.
    let (status, body) = call(&url, &pia, "POST", "/api/v1/rules/refund-amount-positive/disable", None, true);
    assert_eq!(status, 403, "{body}");
    assert!(body["error"].as_str().unwrap().contains("belongs to team `refunds`"), "{body}");
    assert_eq!(call(&url, &pia, "POST", "/api/v1/rules/payment-amount-positive/disable", None, true).0, 200);
    assert_eq!(call(&url, &ada, "POST", "/api/v1/rules/refund-amount-positive/disable", None, true).0, 200);
    assert_eq!(call(&url, &ada, "POST", "/api/v1/rules/refund-amount-positive/enable", None, true).0, 200);
    let off = wait(Duration::from_secs(10), || {
        let (_, rules) = call(&url, &pia, "GET", "/api/v1/rules", None, false);
        rules.as_array()?.iter().any(|r| r["id"] == "payment-amount-positive" && r["enabled"] == false).then_some(())
    });
    assert!(off.is_some(), "the operator's switch took effect");

    // The audit log says who switched what, from where; only admins read it.
    assert_eq!(call(&url, &pia, "GET", "/api/v1/audit", None, false).0, 403);
    let (status, page) = call(&url, &ada, "GET", "/api/v1/audit?action=rule_disabled", None, false);
    assert_eq!(status, 200, "{page}");
    let switched: Vec<(&str, &str, &str, &str)> = page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            let field = |k: &str| e[k].as_str().unwrap();
            (field("actor"), field("role"), field("target"), field("from"))
        })
        .collect();
    assert_eq!(
        switched,
        [
            ("ada", "admin", "refund-amount-positive", "127.0.0.1"),
            ("pia", "operator", "payment-amount-positive", "127.0.0.1")
        ],
        "newest first; the refused switch is not there"
    );
    let (_, page) = call(&url, &ada, "GET", "/api/v1/audit?actor=ada&limit=1", None, false);
    assert_eq!((page["entries"][0]["action"].as_str(), page["next_offset"].as_u64()), (Some("rule_enabled"), Some(1)));
    let written = std::fs::read_to_string(dir.path().join("data/audit.jsonl")).unwrap();
    assert!(
        written.lines().any(|l| l.contains("\"action\":\"login\"") && l.contains("\"actor\":\"pia\"")),
        "{written}"
    );
    assert!(!written.contains(PASSWORD) && !written.contains("pay-secret"), "no secret in the audit log");
    assert_eq!(call(&url, &ada, "GET", "/api/v1/audit?who=ada", None, false).0, 400);
}

/// A login's status, `Retry-After` and `Set-Cookie`.
fn try_login(url: &str, user: &str, password: &str, headers: &[(&str, &str)]) -> (u16, Option<u64>, Option<String>) {
    let body = serde_json::json!({ "user": user, "password": password }).to_string();
    let mut request = agent().post(&format!("{url}/api/v1/login")).header("Content-Type", "application/json");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send(&body).unwrap();
    let header = |name: &str| response.headers().get(name).map(|v| v.to_str().unwrap().to_string());
    (response.status().as_u16(), header("retry-after").map(|s| s.parse().unwrap()), header("set-cookie"))
}

#[test]
fn failed_logins_lock_the_user_and_the_address_out_even_for_the_right_password_until_the_lockout_ends() {
    let dir = tempfile::tempdir().unwrap();
    let (_service, url) = service(dir.path());
    // A success clears the count: two failures, a success, two more failures stay below three.
    for _ in 0..2 {
        assert_eq!(try_login(&url, "rafa", "wrong", &[]).0, 401);
    }
    assert_eq!(try_login(&url, "rafa", PASSWORD, &[]).0, 200);
    for _ in 0..2 {
        assert_eq!(try_login(&url, "rafa", "wrong", &[]).0, 401);
    }
    assert_eq!(try_login(&url, "rafa", PASSWORD, &[]).0, 200, "the count started again after the success");

    // The third failure in a row locks rafa — and this address — out.
    for _ in 0..3 {
        assert_eq!(try_login(&url, "rafa", "wrong", &[]).0, 401);
    }
    let (status, retry_after, cookie) = try_login(&url, "rafa", PASSWORD, &[]);
    assert_eq!((status, cookie), (429, None), "locked: the right password is refused too");
    assert!(matches!(retry_after, Some(1 | 2)), "the 2 s lock-out's rest: {retry_after:?}");
    assert_eq!(try_login(&url, "ada", PASSWORD, &[]).0, 429, "every login from the locked address");
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(try_login(&url, "rafa", PASSWORD, &[]).0, 200, "the lock-out is over");

    let admin = login(&url, "ada", PASSWORD).unwrap();
    let (_, page) = call(&url, &admin, "GET", "/api/v1/audit?action=login_locked", None, false);
    let locked: Vec<&str> = page["entries"].as_array().unwrap().iter().map(|e| e["target"].as_str().unwrap()).collect();
    assert_eq!(locked, ["address 127.0.0.1", "user rafa"], "{page}");
}

#[test]
fn the_session_cookie_is_http_only_same_site_strict_for_the_whole_site_and_secure_unless_served_locally() {
    let dir = tempfile::tempdir().unwrap();
    let (_service, url) = service(dir.path());
    let (status, _, cookie) = try_login(&url, "ada", PASSWORD, &[]);
    assert_eq!(status, 200);
    let cookie = cookie.unwrap();
    let attributes: Vec<&str> = cookie.split("; ").skip(1).collect();
    assert_eq!(attributes, ["Path=/", "HttpOnly", "SameSite=Strict", "Secure"], "secure_cookies: true: {cookie}");

    // Without the setting, a loopback listener sets no `Secure` (a browser would drop the
    // cookie over plain HTTP) — unless the proxy in front says the request came over HTTPS.
    std::fs::create_dir_all(dir.path().join("local")).unwrap();
    let config = write_config(
        &dir.path().join("local"),
        &format!(
            "rules: [{rules}]\ndata_dir: data\nlisten: 127.0.0.1:0\nsinks:\n  - {{ type: alerts }}\n\
             console:\n  users:\n    - {{ name: ada, role: admin, password_env: FG_PW }}\n",
            rules = path(&repo_root().join("examples/rules"))
        ),
    );
    let local = Service::start(&config, &[("FG_PW", PASSWORD)]);
    let local_url = local.url();
    let (_, _, plain) = try_login(&local_url, "ada", PASSWORD, &[]);
    assert!(plain.as_deref().unwrap().ends_with("; Path=/; HttpOnly; SameSite=Strict"), "{plain:?}");
    let (_, _, proxied) = try_login(&local_url, "ada", PASSWORD, &[("X-Forwarded-Proto", "https")]);
    assert!(proxied.as_deref().unwrap().ends_with("; SameSite=Strict; Secure"), "{proxied:?}");
}

#[test]
fn each_http_source_answers_413_over_its_body_and_message_limits_and_429_over_its_rates() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "rules: [{rules}]\ndata_dir: data\nlisten: 127.0.0.1:0\n\
             sources:\n\
             \x20 - {{ name: small, type: http, format: json, table: shop.refunds, token_env: FG_TOKEN, max_body_bytes: 400, max_messages: 3, max_requests_per_second: 1 }}\n\
             \x20 - {{ name: metered, type: http, format: json, table: shop.refunds, token_env: FG_TOKEN, max_body_bytes: 400, max_messages_per_second: 5 }}\n\
             \x20 - {{ name: open, type: http, format: json, table: shop.refunds, token_env: FG_TOKEN }}\n",
            rules = path(&repo_root().join("examples/rules"))
        ),
    );
    let service = Service::start(&config, &[("FG_TOKEN", "ingest")]);
    let url = service.url();
    let ts = now_ms();
    let batch = |n: usize| {
        let messages: Vec<String> = (1..=n)
            .map(|id| format!("{{\"id\":{id},\"order_id\":{id},\"amount\":1,\"currency\":\"CNY\",\"ts\":{ts}}}"))
            .collect();
        format!("[{}]", messages.join(","))
    };
    let send = |source: &str, body: &str| post(&format!("{url}/v1/ingest/{source}"), Some("ingest"), body);
    let retry_after = |source: &str, body: &str| {
        let response = agent()
            .post(&format!("{url}/v1/ingest/{source}"))
            .header("Authorization", "Bearer ingest")
            .header("Content-Type", "application/json")
            .send(body)
            .unwrap();
        (response.status().as_u16(), response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_string()))
    };

    // Body and message limits: 413, before the rate is asked.
    let big = format!("[{{\"pad\":\"{}\"}}]", "x".repeat(500));
    let (status, body) = send("small", &big);
    assert_eq!(status, 413, "{body}");
    assert!(body["error"].as_str().unwrap().contains("over the limit of 400 bytes"), "{body}");
    assert_eq!(post(&format!("{url}/v1/ingest/small"), None, &big).0, 401, "no token, no answer about the body");
    let (status, body) = send("small", &batch(4));
    assert_eq!(status, 413, "{body}");
    assert!(body["error"].as_str().unwrap().contains("4 messages is over the limit of 3"), "{body}");

    // One request a second: the one just refused for its messages used this second's.
    let (status, retry) = retry_after("small", &batch(1));
    assert_eq!((status, retry.as_deref()), (429, Some("1")));
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(send("small", &batch(1)).0, 200, "a second later");

    // Five messages a second (and a body without a length is cut off at the limit too).
    let chunked = agent()
        .post(&format!("{url}/v1/ingest/metered"))
        .header("Authorization", "Bearer ingest")
        .send(ureq::SendBody::from_owned_reader(std::io::Cursor::new(big.into_bytes())))
        .unwrap();
    assert_eq!(chunked.status(), 413, "a body without a length is cut off at the limit too");
    assert_eq!(send("metered", &batch(5)).0, 200);
    let (status, retry) = retry_after("metered", &batch(2));
    assert_eq!((status, retry.as_deref()), (429, Some("1")));
    let (_, body) = send("metered", &batch(2));
    assert!(body["error"].as_str().unwrap().contains("over its 5 messages per second"), "{body}");
    std::thread::sleep(Duration::from_millis(1100));
    assert_eq!(send("metered", &batch(2)).0, 200);

    // Limits are per source: the others are untouched.
    for _ in 0..5 {
        assert_eq!(send("open", &batch(5)).0, 200);
    }
}

#[test]
fn the_config_refuses_teams_on_an_admin_an_empty_team_list_and_limits_that_limit_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "rules: [examples/rules]\nlisten: 127.0.0.1:0\n\
         sources:\n\
         \x20 - { name: a, type: http, format: json, token_env: FG_GUARDS_UNSET, max_requests_per_second: 0 }\n\
         console:\n\
         \x20 login: { max_failures: 0, lockout: soon }\n\
         \x20 users:\n\
         \x20   - { name: ada, role: admin, teams: [payments], password_env: FG_GUARDS_UNSET }\n\
         \x20   - { name: pia, role: operator, teams: [], password_env: FG_GUARDS_UNSET }\n",
    );
    let o = crate::fundguard(&["run", "--config", path(&config)]);
    assert_eq!(o.status.code(), Some(1));
    let err = crate::stderr(&o);
    for expected in [
        "fundguard.yaml:4:5: error: source `a`: max_requests_per_second must be a number above 0",
        "fundguard.yaml:8:7: error: `ada`: an admin works for every team: drop `teams`",
        "fundguard.yaml:9:7: error: `pia`: `teams` lists no team",
        "console.login.max_failures: expected 1 or more",
        "console.login.lockout:",
    ] {
        assert!(err.contains(expected), "{expected} in:\n{err}");
    }
}
