//! Notifications through a real local webhook receiver: signed, and delivered exactly
//! once although the receiver is down at first and fundguard is killed meanwhile.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hmac::{Hmac, KeyInit, Mac};

use crate::service::{Service, free_port, now_ms, post, wait, write_config};
use crate::{path, repo_root};

/// One received request: its headers (lower-case names) and body.
pub(crate) type Received = (HashMap<String, String>, String);

/// A minimal HTTP/1.1 receiver answering 200 to every POST, recording each request.
pub(crate) fn receiver(port: u16) -> Arc<Mutex<Vec<Received>>> {
    slow_receiver(port, Duration::ZERO)
}

/// A receiver that takes `delay` before answering each request.
pub(crate) fn slow_receiver(port: u16, delay: Duration) -> Arc<Mutex<Vec<Received>>> {
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let record = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut headers = HashMap::new();
            let mut line = String::new();
            // A sender killed mid-request leaves it incomplete: not received, not answered.
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                continue;
            }
            headers.insert(":target".to_string(), line.split_whitespace().nth(1).unwrap_or_default().to_string());
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line.trim().is_empty() {
                    break;
                }
                if let Some((k, v)) = line.trim().split_once(':') {
                    headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
                }
            }
            let length: usize = headers.get("content-length").and_then(|l| l.parse().ok()).unwrap_or(0);
            let mut body = vec![0; length];
            if length == 0 || reader.read_exact(&mut body).is_err() {
                continue;
            }
            record.lock().unwrap().push((headers, String::from_utf8(body).unwrap()));
            std::thread::sleep(delay);
            let mut stream = stream;
            let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    got
}

#[test]
fn a_webhook_down_during_a_kill_still_gets_every_notification_once_and_signed() {
    let dir = tempfile::tempdir().unwrap();
    let hook = free_port();
    let config = write_config(
        dir.path(),
        &format!(
            "rules: [{rules}]\ndata_dir: data\nlisten: 127.0.0.1:0\nsources:\n  - {{ name: msgs, type: http, format: json, table: shop.refunds, token_env: FG_TOKEN }}\nsinks:\n  - {{ type: alerts }}\nincidents:\n  notify: per_alert\nnotify:\n  link: https://fundguard.example/alerts\n  channels:\n    - {{ name: refunds-hook, type: webhook, url: \"http://127.0.0.1:{hook}/hook\", secret_env: FG_HOOK_SECRET }}\n  routes:\n    - {{ owner: [refunds], channels: [refunds-hook] }}\n",
            rules = path(&repo_root().join("examples/rules"))
        ),
    );
    let envs = [("FG_TOKEN", "t"), ("FG_HOOK_SECRET", "hook-secret")];
    {
        let service = Service::start(&config, &envs);
        let url = format!("{}/v1/ingest/msgs", service.url());
        let ts = now_ms();
        let batch: Vec<String> = (1..=3)
            .map(|id| format!("{{\"id\":{id},\"order_id\":{id},\"amount\":-{id}00,\"currency\":\"CNY\",\"ts\":{ts}}}"))
            .collect();
        let (status, body) = post(&url, Some("t"), &format!("[{}]", batch.join(",")));
        assert_eq!(status, 200, "{body}");
        // The receiver is down: attempts fail and are retried; then fundguard dies.
        std::thread::sleep(Duration::from_millis(1500));
    }
    let got = receiver(hook);
    let _service = Service::start(&config, &envs);
    let all = wait(Duration::from_secs(30), || (got.lock().unwrap().len() >= 3).then_some(()));
    assert!(all.is_some(), "three notifications arrive once the receiver is up");
    std::thread::sleep(Duration::from_secs(2));
    let got = got.lock().unwrap();
    assert_eq!(got.len(), 3, "each exactly once: {got:?}");
    let mut deliveries: Vec<&str> = got.iter().map(|(h, _)| h["x-fundguard-delivery"].as_str()).collect();
    deliveries.sort();
    deliveries.dedup();
    assert_eq!(deliveries.len(), 3);
    let store = dir.path().join("data/alerts.db");
    let o = crate::fundguard(&["alerts", "--store", path(&store), "outbox"]);
    assert_eq!(crate::stdout(&o).trim(), "pending 0, delivered 3, failed 0", "{}", crate::stderr(&o));
    for (headers, body) in got.iter() {
        let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(b"hook-secret").unwrap();
        mac.update(body.as_bytes());
        let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
        assert_eq!(headers["x-fundguard-signature"], expected, "signed with the secret");
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["event"], "opened");
        assert_eq!(json["alert"]["rule"], "refund-amount-positive");
        let text = json["text"].as_str().unwrap();
        // Major units with the currency's exponent; the alert keeps the exact minor units.
        assert!(
            text.contains("money at risk: \u{2212}")
                && text.contains(".00 CNY. Open: https://fundguard.example/alerts/"),
            "{text}"
        );
        let money = &json["alert"]["money_at_risk"];
        assert!(money["amount_minor"].as_str().unwrap().starts_with('-') && money["exponent"] == 2, "{money}");
    }
}

#[test]
fn chat_bots_get_their_own_payloads_and_signatures() {
    use base64::Engine;
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let got = receiver(port);
    let base = format!("http://127.0.0.1:{port}");
    let config = write_config(
        dir.path(),
        &format!(
            "rules: [{rules}]\ndata_dir: data\nlisten: 127.0.0.1:0\nsources:\n  - {{ name: msgs, type: http, format: json, table: shop.refunds, token_env: FG_TOKEN }}\nsinks:\n  - {{ type: alerts }}\nnotify:\n  channels:\n    - {{ name: s, type: slack, url_env: FG_SLACK_URL }}\n    - {{ name: f, type: feishu, url: \"{base}/feishu\", secret_env: FG_BOT_SECRET }}\n    - {{ name: d, type: dingtalk, url: \"{base}/ding?access_token=x\", secret_env: FG_BOT_SECRET }}\n    - {{ name: w, type: wecom, url: \"{base}/wecom?key=k\" }}\n  routes:\n    - {{ severity: [critical], channels: [s, f, d, w] }}\n",
            rules = path(&repo_root().join("examples/rules"))
        ),
    );
    let slack_url = format!("{base}/slack");
    let envs = [("FG_TOKEN", "t"), ("FG_BOT_SECRET", "bot-secret"), ("FG_SLACK_URL", slack_url.as_str())];
    let service = Service::start(&config, &envs);
    let body = format!("[{{\"id\":7,\"order_id\":7,\"amount\":-1,\"currency\":\"CNY\",\"ts\":{}}}]", now_ms());
    assert_eq!(post(&format!("{}/v1/ingest/msgs", service.url()), Some("t"), &body).0, 200);
    assert!(wait(Duration::from_secs(15), || (got.lock().unwrap().len() >= 4).then_some(())).is_some());
    let got = got.lock().unwrap();
    let by_path =
        |p: &str| got.iter().find(|(h, _)| h[":target"].starts_with(p)).unwrap_or_else(|| panic!("{p}: {got:?}"));
    let json = |b: &str| serde_json::from_str::<serde_json::Value>(b).unwrap();

    let slack = json(&by_path("/slack").1);
    assert!(slack["text"].as_str().unwrap().contains("refund-amount-positive"), "{slack}");
    let wecom = json(&by_path("/wecom?key=k").1);
    assert_eq!(wecom["msgtype"], "text");
    assert!(wecom["text"]["content"].as_str().unwrap().contains("[CRITICAL]"), "{wecom}");

    let feishu = json(&by_path("/feishu").1);
    assert_eq!(feishu["msg_type"], "text");
    let timestamp = feishu["timestamp"].as_str().unwrap();
    let mut mac =
        <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(format!("{timestamp}\nbot-secret").as_bytes()).unwrap();
    mac.update(b"");
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    assert_eq!(feishu["sign"], expected.as_str(), "Feishu signature");

    let (ding_headers, ding_body) = by_path("/ding?access_token=x");
    assert_eq!(json(ding_body)["msgtype"], "text");
    let query: HashMap<&str, &str> =
        ding_headers[":target"].split('?').nth(1).unwrap().split('&').filter_map(|kv| kv.split_once('=')).collect();
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(b"bot-secret").unwrap();
    mac.update(format!("{}\nbot-secret", query["timestamp"]).as_bytes());
    let expected = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    let expected = expected.replace('+', "%2B").replace('/', "%2F").replace('=', "%3D");
    assert_eq!(query["sign"], expected, "DingTalk signature");
}

#[test]
fn alertmanager_receives_firing_alerts_and_their_resolution() {
    let am = crate::servers::Alertmanager::start();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "rules: [{rules}]\ndata_dir: data\nlisten: 127.0.0.1:0\nsources:\n  - {{ name: msgs, type: http, format: json, table: shop.refunds, token_env: FG_TOKEN }}\nsinks:\n  - {{ type: alerts }}\nnotify:\n  resend_every: 1s\n  channels:\n    - {{ name: am, type: alertmanager, url: \"{}\" }}\n  routes:\n    - {{ channels: [am] }}\n",
            am.url,
            rules = path(&repo_root().join("examples/rules"))
        ),
    );
    let service = Service::start(&config, &[("FG_TOKEN", "t")]);
    let ts = now_ms();
    let body = format!(
        "[{{\"id\":1,\"order_id\":1,\"amount\":-1,\"currency\":\"CNY\",\"ts\":{ts}}},{{\"id\":2,\"order_id\":2,\"amount\":-2,\"currency\":\"CNY\",\"ts\":{ts}}}]"
    );
    assert_eq!(post(&format!("{}/v1/ingest/msgs", service.url()), Some("t"), &body).0, 200);
    let firing = wait(Duration::from_secs(15), || {
        let alerts = am.alerts();
        (alerts.iter().filter(|a| a["labels"]["alertname"] == "refund-amount-positive").count() == 2).then_some(alerts)
    })
    .expect("both alerts fire in Alertmanager");
    let first = firing.iter().find(|a| a["labels"]["fundguard_alert"] == "1").unwrap();
    assert_eq!(first["labels"]["team"], "refunds");
    assert_eq!(first["labels"]["severity"], "critical");
    assert_eq!(first["status"]["state"], "active");
    // Alertmanager groups them (its route groups by alertname): one group of two.
    let groups = am.groups();
    let group = groups.iter().find(|g| g["labels"]["alertname"] == "refund-amount-positive").expect("a group per rule");
    assert_eq!(group["alerts"].as_array().unwrap().len(), 2, "{groups:?}");
    // Firing alerts are repeated, so Alertmanager keeps them active for as long as they are open.
    let ends = |alerts: &[serde_json::Value]| {
        let a = alerts.iter().find(|a| a["labels"]["fundguard_alert"] == "2").unwrap();
        chrono::DateTime::parse_from_rfc3339(a["endsAt"].as_str().unwrap()).unwrap()
    };
    let before = ends(&firing);
    let repeated = wait(Duration::from_secs(10), || (ends(&am.alerts()) > before).then_some(()));
    assert!(repeated.is_some(), "the firing alert was posted again with a later end");

    let store = dir.path().join("data/alerts.db");
    let o = crate::fundguard(&["alerts", "--store", path(&store), "resolve", "1", "--root-cause", "test data"]);
    assert!(o.status.success(), "{}", crate::stderr(&o));
    let resolved = wait(Duration::from_secs(15), || {
        let alerts = am.alerts();
        let ids: Vec<String> =
            alerts.iter().map(|a| a["labels"]["fundguard_alert"].as_str().unwrap_or_default().to_string()).collect();
        (ids == ["2"]).then_some(())
    });
    assert!(resolved.is_some(), "the resolved alert leaves Alertmanager's active list: {:?}", am.alerts());
}

/// A minimal SMTP receiver: accepts every message and keeps its DATA.
fn smtp_receiver(port: u16) -> Arc<Mutex<Vec<String>>> {
    let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
    let got = Arc::new(Mutex::new(Vec::new()));
    let record = got.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut out = stream.try_clone().unwrap();
            let mut reader = BufReader::new(stream);
            let _ = out.write_all(b"220 localhost ESMTP test\r\n");
            let mut line = String::new();
            while reader.read_line(&mut line).unwrap_or(0) > 0 {
                let command = line.trim_end().to_ascii_uppercase();
                let reply: &[u8] = if command.starts_with("DATA") {
                    let _ = out.write_all(b"354 end with .\r\n");
                    let mut data = String::new();
                    let mut l = String::new();
                    while reader.read_line(&mut l).unwrap_or(0) > 0 && l.trim_end() != "." {
                        data.push_str(&l);
                        l.clear();
                    }
                    record.lock().unwrap().push(data);
                    b"250 queued\r\n"
                } else if command.starts_with("QUIT") {
                    let _ = out.write_all(b"221 bye\r\n");
                    break;
                } else if command.starts_with("EHLO") || command.starts_with("HELO") {
                    b"250 localhost\r\n"
                } else {
                    b"250 OK\r\n"
                };
                let _ = out.write_all(reply);
                line.clear();
            }
        }
    });
    got
}

#[test]
fn email_goes_out_over_smtp() {
    let port = free_port();
    let got = smtp_receiver(port);
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "rules: [{rules}]\ndata_dir: data\nlisten: 127.0.0.1:0\nsources:\n  - {{ name: msgs, type: http, format: json, table: shop.refunds, token_env: FG_TOKEN }}\nsinks:\n  - {{ type: alerts }}\nnotify:\n  channels:\n    - {{ name: mail, type: email, url: \"smtp://127.0.0.1:{port}\", from: \"fundguard <fg@example.com>\", to: [\"refunds@example.com\"] }}\n  routes:\n    - {{ owner: [refunds], channels: [mail] }}\n",
            rules = path(&repo_root().join("examples/rules"))
        ),
    );
    let service = Service::start(&config, &[("FG_TOKEN", "t")]);
    let body = format!("[{{\"id\":5,\"order_id\":5,\"amount\":-5,\"currency\":\"CNY\",\"ts\":{}}}]", now_ms());
    assert_eq!(post(&format!("{}/v1/ingest/msgs", service.url()), Some("t"), &body).0, 200);
    assert!(
        wait(Duration::from_secs(15), || (!got.lock().unwrap().is_empty()).then_some(())).is_some(),
        "an email arrives"
    );
    // Undo quoted-printable soft line breaks (the body is QP-encoded) and header folding.
    let mail = got.lock().unwrap()[0].replace("=\r\n", "").replace("=\n", "").replace("\r\n ", " ").replace("\n ", " ");
    let mail = unquote(&mail);
    assert!(mail.contains("Subject: [fundguard critical] refund-amount-positive opened"), "{mail}");
    // -5 fen, shown in yuan with a real minus sign.
    assert!(mail.contains("To: refunds@example.com") && mail.contains("money at risk: \u{2212}0.05 CNY"), "{mail}");
}

/// Decodes quoted-printable `=XX` escapes (the minus sign `−` travels as `=E2=88=92`).
fn unquote(qp: &str) -> String {
    let bytes = qp.as_bytes();
    let (mut out, mut i) = (Vec::with_capacity(bytes.len()), 0);
    while i < bytes.len() {
        let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok());
        match hex.filter(|_| bytes[i] == b'=').and_then(|h| u8::from_str_radix(h, 16).ok()) {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// A storm of thirty alerts of one rule: by default one incident, told once (its first
/// alert, carrying the incident's id); notifying every alert (`incidents.notify:
/// per_alert`), the notifier still sends them as one grouped message.
#[test]
fn a_storm_of_findings_from_one_rule_is_one_message() {
    for per_alert in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let hook = free_port();
        let got = receiver(hook);
        let incidents = if per_alert { "incidents:\n  notify: per_alert\n" } else { "" };
        let config = write_config(
            dir.path(),
            &format!(
                "rules: [{rules}]\ndata_dir: data\nlisten: 127.0.0.1:0\nsources:\n  - {{ name: msgs, type: http, format: json, table: shop.refunds, token_env: FG_TOKEN }}\nsinks:\n  - {{ type: alerts }}\n{incidents}notify:\n  channels:\n    - {{ name: hook, type: webhook, url: \"http://127.0.0.1:{hook}/\" }}\n  routes:\n    - {{ channels: [hook] }}\n",
                rules = path(&repo_root().join("examples/rules"))
            ),
        );
        let service = Service::start(&config, &[("FG_TOKEN", "t")]);
        let ts = now_ms();
        let storm: Vec<String> = (1..=30)
            .map(|id| format!("{{\"id\":{id},\"order_id\":{id},\"amount\":-1,\"currency\":\"CNY\",\"ts\":{ts}}}"))
            .collect();
        let url = format!("{}/v1/ingest/msgs", service.url());
        assert_eq!(post(&url, Some("t"), &format!("[{}]", storm.join(","))).0, 200);
        assert!(wait(Duration::from_secs(15), || (!got.lock().unwrap().is_empty()).then_some(())).is_some());
        std::thread::sleep(Duration::from_secs(1));
        let got = got.lock().unwrap();
        assert_eq!(got.len(), 1, "one message for the storm");
        let body: serde_json::Value = serde_json::from_str(&got[0].1).unwrap();
        if per_alert {
            assert_eq!(body["alerts"].as_array().unwrap().len(), 30);
            assert!(body["text"].as_str().unwrap().contains("refund-amount-positive: 30 alerts opened"), "{body}");
        } else {
            assert!(body["alerts"].is_null(), "{body}");
            let incident = body["alert"]["incident_id"].as_i64().expect("the alert names its incident");
            let store = dir.path().join("data/alerts.db");
            let o = crate::fundguard(&["incidents", "--store", path(&store), "list", "--format", "json"]);
            let listed: Vec<serde_json::Value> =
                crate::stdout(&o).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
            assert_eq!(listed.len(), 1, "{listed:?}");
            assert_eq!((listed[0]["id"].as_i64(), listed[0]["alerts"].as_u64()), (Some(incident), Some(30)));
        }
    }
}

/// `fundguard` with environment variables (the config names secrets by variable).
fn fundguard_with(envs: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_fundguard"));
    command.args(args).current_dir(repo_root());
    for (k, v) in envs {
        command.env(k, v);
    }
    command.output().unwrap()
}

/// A refund rule whose violation calls `url` in `mode`.
fn rule_with_action(id: &str, mode: &str, url: &str) -> String {
    format!(
        "id: {id}\nowner: refunds\nseverity: critical\ncheck:\n  tables: [shop.refunds]\n  assert: after.amount > 0\n  key: {{ order_id: after.order_id }}\naction:\n  name: freeze-{mode}\n  url: '{url}'\n  mode: {mode}\n  secret_env: FG_ACTION_SECRET\n"
    )
}

#[test]
fn containment_actions_run_dry_run_or_wait_for_approval_and_land_in_the_timeline() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let got = receiver(port);
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    for mode in ["run", "dry_run", "approval"] {
        let url = format!("http://127.0.0.1:{port}/{mode}/orders/{{key.order_id}}/freeze");
        std::fs::write(rules.join(format!("{mode}.yaml")), rule_with_action(&format!("refund-{mode}"), mode, &url))
            .unwrap();
    }
    let config = write_config(
        dir.path(),
        "rules: [rules]\ndata_dir: data\nlisten: 127.0.0.1:0\nsources:\n  - { name: msgs, type: http, format: json, table: shop.refunds, token_env: FG_TOKEN }\nsinks:\n  - { type: alerts }\n",
    );
    let envs = [("FG_TOKEN", "t"), ("FG_ACTION_SECRET", "action-secret")];
    let service = Service::start(&config, &envs);
    let body = format!("[{{\"id\":1,\"order_id\":77,\"amount\":-5,\"currency\":\"CNY\",\"ts\":{}}}]", now_ms());
    assert_eq!(post(&format!("{}/v1/ingest/msgs", service.url()), Some("t"), &body).0, 200);
    // A second finding of the same alerts runs nothing again.
    assert_eq!(post(&format!("{}/v1/ingest/msgs", service.url()), Some("t"), &body).0, 200);

    let ran =
        wait(Duration::from_secs(15), || got.lock().unwrap().first().cloned()).expect("the `run` action is called");
    assert_eq!(ran.0[":target"], "/run/orders/77/freeze", "the key fills the URL");
    let mut mac = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(b"action-secret").unwrap();
    mac.update(ran.1.as_bytes());
    assert_eq!(ran.0["x-fundguard-signature"], format!("sha256={}", hex::encode(mac.finalize().into_bytes())));
    let json: serde_json::Value = serde_json::from_str(&ran.1).unwrap();
    assert_eq!((json["action"].as_str(), json["alert"]["key"]["order_id"].as_i64()), (Some("freeze-run"), Some(77)));

    let cli = |args: &[&str]| fundguard_with(&envs, &[&["alerts", "--config", path(&config)], args].concat());
    let timeline = |rule: &str| -> Vec<(String, String)> {
        let list = crate::stdout(&cli(&["list", "--rule", rule, "--json"]));
        let alert: serde_json::Value = serde_json::from_str(list.lines().next().expect("the rule's alert")).unwrap();
        let id = alert["id"].to_string();
        let shown: serde_json::Value = serde_json::from_str(&crate::stdout(&cli(&["show", &id, "--json"]))).unwrap();
        shown["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| (t["action"].as_str().unwrap().to_string(), t["detail"].as_str().unwrap_or("").to_string()))
            .collect()
    };
    let id_of = |rule: &str| {
        let list = crate::stdout(&cli(&["list", "--rule", rule, "--json"]));
        serde_json::from_str::<serde_json::Value>(list.lines().next().unwrap()).unwrap()["id"].to_string()
    };
    let done = wait(Duration::from_secs(10), || {
        let t = timeline("refund-run");
        t.iter().any(|(a, _)| a == "action_succeeded").then_some(t)
    })
    .expect("the outcome is recorded");
    assert!(
        done.iter().any(|(a, d)| a == "action_succeeded" && d.ends_with("/run/orders/77/freeze: HTTP 200")),
        "{done:?}"
    );

    let dry = wait(Duration::from_secs(10), || {
        let t = timeline("refund-dry_run");
        t.iter().any(|(a, _)| a == "action_succeeded").then_some(t)
    })
    .expect("the dry run is recorded");
    assert!(
        dry.iter().any(|(_, d)| d.starts_with("dry run: would have called freeze-dry_run POST http://")),
        "{dry:?}"
    );

    assert!(timeline("refund-approval").iter().any(|(a, _)| a == "action_awaiting_approval"));
    std::thread::sleep(Duration::from_secs(1));
    let targets: Vec<String> = got.lock().unwrap().iter().map(|(h, _)| h[":target"].clone()).collect();
    assert_eq!(targets, ["/run/orders/77/freeze"], "dry run and unapproved actions call nothing");

    let approval = id_of("refund-approval");
    let o = cli(&["approve", &approval, "--by", "ana"]);
    assert!(o.status.success(), "{}", crate::stderr(&o));
    assert!(
        wait(Duration::from_secs(10), || (got.lock().unwrap().len() == 2).then_some(())).is_some(),
        "the approved action is called"
    );
    assert_eq!(got.lock().unwrap()[1].0[":target"], "/approval/orders/77/freeze");
    let approved = wait(Duration::from_secs(10), || {
        let t = timeline("refund-approval");
        t.iter().any(|(a, _)| a == "action_succeeded").then_some(t)
    })
    .expect("its outcome is recorded");
    let actions: Vec<&str> = approved.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(actions, ["opened", "action_awaiting_approval", "action_approved", "action_succeeded"]);
    let again = cli(&["approve", &approval]);
    assert_eq!(again.status.code(), Some(1), "approved once only");
    assert!(crate::stderr(&again).contains("no action waiting for approval"));
}

#[test]
fn the_daily_report_goes_out_through_channels_and_slo_deadlines_come_from_the_config() {
    let dir = tempfile::tempdir().unwrap();
    let hook = free_port();
    let got = receiver(hook);
    let smtp = free_port();
    let mails = smtp_receiver(smtp);
    let config = write_config(
        dir.path(),
        &format!(
            "rules: [{rules}]\ndata_dir: data\nlisten: 127.0.0.1:0\nsources:\n  - {{ name: msgs, type: http, format: json, table: shop.refunds, token_env: FG_TOKEN }}\nsinks:\n  - {{ type: alerts }}\nslo:\n  critical: {{ respond: 1s }}\nnotify:\n  channels:\n    - {{ name: hook, type: webhook, url: \"http://127.0.0.1:{hook}/\" }}\n    - {{ name: mail, type: email, url: \"smtp://127.0.0.1:{smtp}\", from: \"fundguard <fg@example.com>\", to: [\"finance@example.com\"] }}\n",
            rules = path(&repo_root().join("examples/rules"))
        ),
    );
    let envs = [("FG_TOKEN", "t")];
    let service = Service::start(&config, &envs);
    let body = format!("[{{\"id\":3,\"order_id\":3,\"amount\":-250,\"currency\":\"CNY\",\"ts\":{}}}]", now_ms());
    assert_eq!(post(&format!("{}/v1/ingest/msgs", service.url()), Some("t"), &body).0, 200);
    let store = dir.path().join("data/alerts.db");
    assert!(
        wait(Duration::from_secs(10), || {
            crate::stdout(&crate::fundguard(&["alerts", "--store", path(&store), "list", "--json"]))
                .lines()
                .next()
                .map(|_| ())
        })
        .is_some()
    );
    std::thread::sleep(Duration::from_millis(1500));
    // A critical alert unanswered after 1.5 s: overdue under the config's 1 s, not the default 5 min.
    let overdue = |args: &[&str]| -> bool {
        let o = fundguard_with(&envs, &[&["alerts"], args, &["show", "1", "--json"]].concat());
        serde_json::from_str::<serde_json::Value>(&crate::stdout(&o)).unwrap()["overdue"]["respond"] == true
    };
    assert!(overdue(&["--config", path(&config)]));
    assert!(!overdue(&["--store", path(&store)]));

    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let args = ["report", "daily", "--date", &today, "--config", path(&config), "--send", "hook", "--send", "mail"];
    let o = fundguard_with(&envs, &args);
    assert!(o.status.success(), "{}", crate::stderr(&o));
    let reports: Vec<serde_json::Value> = got
        .lock()
        .unwrap()
        .iter()
        .filter(|(h, _)| h.get("x-fundguard-event").is_some_and(|e| e == "report"))
        .map(|(_, b)| serde_json::from_str(b).unwrap())
        .collect();
    assert_eq!(reports.len(), 1);
    assert!(reports[0]["title"].as_str().unwrap().contains(&today));
    let text = reports[0]["text"].as_str().unwrap();
    assert!(text.contains("refunds") && text.contains("2.50 CNY"), "minor units shown in CNY: {text}");
    assert!(
        text.contains("incidents\nincident") && text.contains("refund-amount-positive"),
        "grouped by incident: {text}"
    );
    assert!(reports[0]["html"].as_str().unwrap().contains("<table"), "{}", reports[0]["html"]);
    let mail = mails.lock().unwrap().join("\n");
    assert!(mail.contains("Subject: [fundguard] fundguard daily clearing report"), "{mail}");
    assert!(mail.contains("text/plain") && mail.contains("text/html"), "text and HTML parts: {mail}");

    let o = fundguard_with(&envs, &["report", "daily", "--config", path(&config), "--send", "nope"]);
    assert!(!o.status.success() && crate::stderr(&o).contains("--send nope: the config declares no such channel"));
}

/// A webhook that takes a second per request cannot keep up with thousands of alerts: the
/// backlog waits in the store's outbox on disk, detection goes on at full speed, and
/// fundguard's memory stays where it is with a receiver that keeps up and drains it all.
#[test]
fn a_slow_webhook_backs_up_on_disk_and_memory_stays_flat() {
    const REFUNDS: usize = 20_000;
    // Peak RSS until every refund has its notification queued (`drained`: and delivered).
    let peak = |delay: Duration, drained: bool| -> (u64, String) {
        let dir = tempfile::tempdir().unwrap();
        let rules = dir.path().join("rules");
        std::fs::create_dir(&rules).unwrap();
        std::fs::copy(repo_root().join("examples/rules/refund-amount-positive.yaml"), rules.join("r.yaml")).unwrap();
        let refunds: String = (0..REFUNDS)
            .map(|i| {
                let (amount, ts) = (100 + i, "2026-11-26T06:00:00Z");
                format!("{{\"id\":{i},\"order_id\":{i},\"amount\":-{amount},\"currency\":\"CNY\",\"ts\":\"{ts}\"}}\n")
            })
            .collect();
        std::fs::write(dir.path().join("refunds.jsonl"), refunds).unwrap();
        let port = free_port();
        let _hook = slow_receiver(port, delay);
        let config = write_config(
            dir.path(),
            &format!(
                "rules: [{rules}]\ndata_dir: data\nlisten: 127.0.0.1:0\nsources:\n  - {{ name: refunds, type: file, path: refunds.jsonl, format: json, table: shop.refunds }}\nsinks:\n  - {{ type: alerts }}\nincidents:\n  notify: per_alert\nnotify:\n  channels:\n    - {{ name: hook, type: webhook, url: \"http://127.0.0.1:{port}/hook\" }}\n  routes:\n    - {{ owner: [refunds], channels: [hook] }}\n",
                rules = path(&rules)
            ),
        );
        let run = Service::start(&config, &[]);
        let store = dir.path().join("data/alerts.db");
        let mut peak_kib = 0;
        let outbox = wait(Duration::from_secs(300), || {
            std::thread::sleep(Duration::from_millis(200));
            let status = std::fs::read_to_string(format!("/proc/{}/status", run.pid())).unwrap_or_default();
            let rss = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).unwrap_or_default();
            peak_kib = peak_kib.max(rss.trim().trim_end_matches("kB").trim().parse().unwrap_or(0));
            let o = crate::fundguard(&["alerts", "--store", path(&store), "outbox"]);
            let counts: Vec<usize> =
                crate::stdout(&o).split(|c: char| !c.is_ascii_digit()).filter_map(|n| n.parse().ok()).collect();
            let done = if drained { counts.get(1) == Some(&REFUNDS) } else { counts.iter().sum::<usize>() == REFUNDS };
            done.then(|| crate::stdout(&o).trim().to_string())
        });
        let outbox = outbox.expect("every refund becomes an alert with a notification queued");
        (peak_kib, outbox)
    };
    let (fast_kib, fast) = peak(Duration::ZERO, true);
    let (slow_kib, slow) = peak(Duration::from_secs(1), false);
    eprintln!(
        "peak RSS: {fast_kib} KiB with a receiver that keeps up ({fast}), {slow_kib} KiB with a slow one ({slow})"
    );
    let pending: usize = slow.split(',').next().and_then(|p| p.trim_start_matches("pending ").parse().ok()).unwrap();
    assert!(pending >= REFUNDS / 2, "the slow receiver let a backlog form: {slow}");
    assert!(
        slow_kib < fast_kib + 16 * 1024,
        "a backlog of {pending} notifications costs no memory: {slow_kib} KiB vs {fast_kib} KiB"
    );
}
