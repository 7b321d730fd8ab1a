//! The web console in a real browser: headless Chromium driven over WebDriver
//! (ChromeDriver, both from Debian, installed by scripts/install-test-deps.sh) against
//! `fundguard demo` (and a `fundguard run` whose sources fail). Screenshots of every page go
//! to target/test-artifacts/console/.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};

use crate::servers::{MariaDb, tool};
use crate::service::{Service, free_port, now_ms, post, wait, write_config};
use crate::{path, repo_root};

/// A ChromeDriver on a free port, stopped when dropped.
pub(crate) struct ChromeDriver {
    child: Child,
    url: String,
}

impl ChromeDriver {
    pub(crate) fn start() -> ChromeDriver {
        let port = free_port();
        let driver = tool("chromedriver", "apt-get install chromium chromium-driver");
        let child = Command::new(driver)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let up = wait(Duration::from_secs(20), || std::net::TcpStream::connect(("127.0.0.1", port)).ok());
        assert!(up.is_some(), "chromedriver listens on {port}");
        ChromeDriver { child, url }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) async fn browser(driver: &ChromeDriver) -> Client {
    let mut capabilities = serde_json::Map::new();
    capabilities.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": tool("chromium", "apt-get install chromium").to_str().unwrap(),
            "args": ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu", "--window-size=1366,900"],
        }),
    );
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a Chromium session")
}

fn artifacts() -> PathBuf {
    let dir = repo_root().join("target/test-artifacts/console");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub(crate) async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.unwrap();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    std::fs::write(artifacts().join(format!("{name}.png")), png).unwrap();
}

/// Polls `f` every 200 ms for up to `secs` seconds.
pub(crate) async fn eventually<T, F, Fut>(secs: u64, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = std::time::Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(std::time::Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The text of the element `css` selects; `None` when it is missing — or went stale
/// between finding and reading, as the views re-render every 3 s (callers poll).
pub(crate) async fn text(client: &Client, css: &str) -> Option<String> {
    client.find(Locator::Css(css)).await.ok()?.text().await.ok()
}

/// Polls until the text of `css` satisfies `ok`, and returns it.
pub(crate) async fn text_where(client: &Client, css: &str, ok: impl Fn(&str) -> bool) -> String {
    eventually(20, css, || async { text(client, css).await.filter(|t| ok(t)) }).await
}

pub(crate) async fn log_in(client: &Client, url: &str, user: &str) {
    client.goto(url).await.unwrap();
    // The form shows once the page has asked for a session and found none.
    let field = eventually(20, "the login form", || async {
        let field = client.find(Locator::Css("#login-user")).await.ok()?;
        field.is_displayed().await.ok()?.then_some(field)
    })
    .await;
    field.send_keys(user).await.unwrap();
    client.find(Locator::Css("#login-password")).await.unwrap().send_keys("demo-pw").await.unwrap();
    client.find(Locator::Css("#login-submit")).await.unwrap().click().await.unwrap();
    let who =
        eventually(20, "the logged-in user", || async { text(client, "#who").await.filter(|t| !t.is_empty()) }).await;
    assert!(who.starts_with(user), "{who}");
}

/// Clicks `css`, finding it again if a re-render made it stale.
pub(crate) async fn click(client: &Client, css: &str) {
    eventually(20, css, || async { client.find(Locator::Css(css)).await.ok()?.click().await.ok() }).await;
}

/// Types into `css` (a focused input is never re-rendered), finding it again if stale.
async fn type_into(client: &Client, css: &str, value: &str) {
    eventually(20, css, || async { client.find(Locator::Css(css)).await.ok()?.send_keys(value).await.ok() }).await;
}

#[test]
fn an_operator_works_an_alert_from_the_demo_and_a_viewer_only_reads() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let demo = Service::spawn(
        &["demo", "--listen", "127.0.0.1:0", "--data-dir", path(&data), "--speed", "600", "--orders", "4000"],
        &[("FG_DEMO_PASSWORD", "demo-pw")],
    );
    let url = demo.url();
    let driver = ChromeDriver::start();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = browser(&driver).await;
        log_in(&client, &url, "operator").await;

        // Alerts arrive from the live simulator without a reload.
        eventually(60, "alerts in the queue", || async {
            client.find(Locator::Css("#alerts-table tbody tr[data-id]")).await.ok()
        })
        .await;
        screenshot(&client, "alerts").await;

        // Filter to open alerts, then open the first.
        client.find(Locator::Css("#f-status")).await.unwrap().select_by_value("open").await.unwrap();
        // The queue refreshes every 3 s: a row found just before a refresh goes stale, so retry.
        let id = eventually(20, "an open alert to open", || async {
            let row = client.find(Locator::Css("#alerts-table tbody tr[data-id]")).await.ok()?;
            let status = row.find(Locator::Css("td.status")).await.ok()?.text().await.ok()?;
            let id = row.attr("data-id").await.ok()??;
            (status == "open" && row.click().await.is_ok()).then_some(id)
        })
        .await;
        eventually(20, "the alert page", || async { text(&client, "#alert-status").await.filter(|s| s == "open") })
            .await;
        // Money in major units with the currency's exponent (`1,234.56 CNY`), or none.
        let money = text_where(&client, "#alert-money", |m| !m.is_empty()).await;
        assert!(
            money == "—" || fundguard_core::parse_display(&money).is_some_and(|m| m.minor),
            "money at risk in major units: {money}"
        );
        assert!(client.find(Locator::Css("#evidence tbody tr")).await.is_ok(), "evidence rows shown");
        screenshot(&client, "alert-open").await;

        click(&client, "#ack").await;
        eventually(20, "acknowledged", || async {
            text(&client, "#alert-status").await.filter(|s| s == "acknowledged")
        })
        .await;
        // Resolving without a root cause is refused, with the reason shown.
        click(&client, "#resolve").await;
        let refused =
            eventually(20, "the refusal", || async { text(&client, "#error").await.filter(|t| !t.is_empty()) }).await;
        assert!(refused.contains("root cause"), "{refused}");
        type_into(&client, "#root-cause", "demo incident: amount written in yuan, read as fen").await;
        click(&client, "#resolve").await;
        eventually(20, "resolved", || async { text(&client, "#alert-status").await.filter(|s| s == "resolved") }).await;
        text_where(&client, "#timeline", |t| {
            t.contains("acknowledged by operator") && t.contains("resolved by operator")
        })
        .await;
        text_where(&client, "#alert-root-cause", |t| t.contains("yuan")).await;
        screenshot(&client, "alert-resolved").await;

        // The dashboard shows the run and keeps updating.
        client.goto(&format!("{url}#/dashboard")).await.unwrap();
        let first: u64 = eventually(20, "dashboard figures", || async {
            text(&client, "[data-testid=findings-total]").await?.parse().ok().filter(|n| *n > 0)
        })
        .await;
        for chart in ["#chart-findings", "#chart-latency", "#chart-slo", "#money-table"] {
            assert!(client.find(Locator::Css(chart)).await.is_ok(), "{chart} on the dashboard");
        }
        screenshot(&client, "dashboard").await;
        eventually(30, "the dashboard to update", || async {
            let now: u64 = text(&client, "[data-testid=findings-total]").await?.parse().ok()?;
            (now > first).then_some(())
        })
        .await;

        client.goto(&format!("{url}#/rules")).await.unwrap();
        let rules = eventually(20, "the rule catalogue", || async {
            let rows = client.find_all(Locator::Css("#rules-table tbody tr")).await.ok()?;
            (!rows.is_empty()).then_some(rows.len())
        })
        .await;
        assert_eq!(rules, 29, "every example rule listed");
        screenshot(&client, "rules").await;

        // A viewer sees the alert but gets no buttons to change it.
        click(&client, "#logout").await;
        eventually(20, "the login form", || async {
            client.find(Locator::Css("#login")).await.ok()?.is_displayed().await.ok()?.then_some(())
        })
        .await;
        log_in(&client, &url, "viewer").await;
        client.goto(&format!("{url}#/alerts/{id}")).await.unwrap();
        // By its timeline, not its status: the live demo may have reopened the alert since
        // (a later finding of the same key), which is not what this step is about.
        eventually(20, "the alert as a viewer", || async {
            text(&client, "#timeline").await.filter(|t| t.contains("resolved by operator"))
        })
        .await;
        assert!(client.find(Locator::Css("#resolve")).await.is_err(), "no resolve button for a viewer");
        assert!(client.find(Locator::Css("#ack")).await.is_err());
        screenshot(&client, "alert-viewer").await;
        client.close().await.unwrap();
    });
}

/// The cells of the Sources view's row for `source`, by class.
fn cell(source: &str, class: &str) -> String {
    format!("#sources-table tr[data-source={source}] td.{class}")
}

#[test]
fn the_sources_view_shows_why_a_database_source_fails_until_it_is_fixed() {
    // A binlog fundguard cannot read (needs a person), a database that is not there (reconnects),
    // and a healthy HTTP source.
    let db = MariaDb::start(&["--binlog-format=STATEMENT"]);
    let nobody = free_port();
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "rules: [{rules}]\ndata_dir: data\nlisten: 127.0.0.1:0\nsources:\n  - {{ name: shopdb, type: mysql, url: \"{db}\" }}\n  - {{ name: ledgerdb, type: mysql, url: \"mysql://root@127.0.0.1:{nobody}\" }}\n  - {{ name: msgs, type: http, format: json, table: shop.refunds, token_env: FG_TOKEN }}\nsinks:\n  - {{ type: alerts }}\nconsole:\n  users:\n    - {{ name: viewer, role: viewer, password_env: FG_VIEWER }}\n",
            rules = path(&repo_root().join("examples/rules")),
            db = db.url(),
        ),
    );
    let service = Service::start(&config, &[("FG_TOKEN", "ingest"), ("FG_VIEWER", "demo-pw")]);
    let url = service.url();
    let ts = now_ms() - 2000;
    let batch: Vec<String> = (1..=3)
        .map(|id| format!("{{\"id\":{id},\"order_id\":{id},\"amount\":{id}00,\"currency\":\"CNY\",\"ts\":{ts}}}"))
        .collect();
    let (status, body) = post(&format!("{url}/v1/ingest/msgs"), Some("ingest"), &format!("[{}]", batch.join(",")));
    assert_eq!(status, 200, "{body}");

    let driver = ChromeDriver::start();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = browser(&driver).await;
        // A viewer may see source health: what the view reads needs no more than a login.
        log_in(&client, &url, "viewer").await;
        client.goto(&format!("{url}#/sources")).await.unwrap();

        // The failed source stands out with the server's reason and the retry.
        let state = text_where(&client, &cell("shopdb", "source-state"), |t| t.contains("binlog_format")).await;
        assert!(
            state.starts_with("failed")
                && state.contains("binlog_format is STATEMENT")
                && state.contains("set binlog_format=ROW")
                && state.contains("retrying in 5s"),
            "{state}"
        );
        let class = client
            .find(Locator::Css("#sources-table tr[data-source=shopdb]"))
            .await
            .unwrap()
            .attr("class")
            .await
            .unwrap();
        assert_eq!(class.as_deref(), Some("source-failed"));
        // The missing database: disconnected with the reason the connection was refused.
        text_where(&client, &cell("ledgerdb", "source-state"), |t| {
            t.starts_with("disconnected") && t.contains("onnection refused")
        })
        .await;
        text_where(&client, &cell("ledgerdb", "reconnects"), |t| t.parse::<u64>().is_ok_and(|n| n >= 1)).await;
        // The healthy source: its events, newest commit, position and a readable lag.
        text_where(&client, &cell("msgs", "events"), |t| t == "3").await;
        let healthy = text(&client, &cell("msgs", "source-state")).await.unwrap();
        assert!(matches!(healthy.as_str(), "reading" | "listening"), "{healthy}");
        text_where(&client, &cell("msgs", "lag"), |t| t.ends_with(" s")).await;
        let commit = text(&client, &cell("msgs", "commit")).await.unwrap();
        assert_ne!(commit, "—", "the newest commit time is shown");
        assert_eq!(text(&client, &cell("msgs", "dead-letters")).await.unwrap(), "0");
        let summary = text_where(&client, "#sources-summary", |t| t.contains("failed")).await;
        assert!(summary.starts_with("1 of 3 sources healthy") && summary.contains("1 failed"), "{summary}");
        // The Sources link counts the sources in trouble, in every view.
        assert_eq!(text(&client, "#sources-badge").await.unwrap(), "2");
        screenshot(&client, "sources").await;
        client.goto(&format!("{url}#/alerts")).await.unwrap();
        text_where(&client, "#sources-badge", |t| t == "2").await;
        client.goto(&format!("{url}#/sources")).await.unwrap();

        // Fixed while fundguard runs: a retry connects and the view follows without a reload.
        db.sql("SET GLOBAL binlog_format = ROW;");
        eventually(60, "shopdb to connect", || async {
            let state = text(&client, &cell("shopdb", "source-state")).await?;
            matches!(state.as_str(), "connected" | "reading").then_some(())
        })
        .await;
        db.sql("CREATE DATABASE ops; CREATE TABLE ops.pings (id INT PRIMARY KEY, note VARCHAR(20)); INSERT INTO ops.pings VALUES (1, 'a'), (2, 'b');");
        text_where(&client, &cell("shopdb", "events"), |t| t == "2").await;
        let position = text(&client, &cell("shopdb", "position")).await.unwrap();
        assert_ne!(position, "—", "the binlog position is shown");
        text_where(&client, "#sources-badge", |t| t == "1").await;
        screenshot(&client, "sources-recovered").await;
        client.close().await.unwrap();
    });
}

#[test]
fn the_coverage_page_drills_down_from_owner_to_the_rules_of_a_column() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo");
    let demo = Service::spawn(
        &["demo", "--listen", "127.0.0.1:0", "--data-dir", path(&data), "--speed", "60", "--orders", "200"],
        &[("FG_DEMO_PASSWORD", "demo-pw")],
    );
    let url = demo.url();
    let driver = ChromeDriver::start();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = browser(&driver).await;
        log_in(&client, &url, "viewer").await;
        client.goto(&format!("{url}#/coverage")).await.unwrap();
        // The demo measured the example rules over the simulator's schema.
        let owners = text_where(&client, "#coverage-owners", |t| t.contains("payments")).await;
        assert!(owners.contains("(all)") && owners.contains("settlement"), "{owners}");
        text_where(&client, "#coverage-relations", |t| t.contains("payment-matches-order")).await;
        screenshot(&client, "coverage").await;
        click(&client, "#coverage-owners tr[data-owner=payments] a").await;
        // Tables with gaps are open; this one has none: open it.
        click(&client, "details[data-table='shop.payments'] summary").await;
        let rules =
            text_where(&client, "details[data-table='shop.payments'] tr[data-column=amount_yuan] td.rules", |t| {
                !t.is_empty()
            })
            .await;
        assert_eq!(rules, "payment-minor-units-consistent");
        screenshot(&client, "coverage-owner").await;
        client.close().await.unwrap();
    });
    // The same figures as gauges on /metrics.
    let metrics = wait(Duration::from_secs(20), || {
        let text =
            crate::service::agent().get(&format!("{url}/metrics")).call().ok()?.body_mut().read_to_string().ok()?;
        text.contains("fundguard_coverage_total{dimension=\"field\",owner=\"payments\"} 3").then_some(text)
    });
    assert!(metrics.is_some(), "coverage gauges on /metrics");
}

/// `GET` with a bearer token: (status, JSON).
fn get_with(url: &str, token: &str) -> (u16, serde_json::Value) {
    let mut response =
        crate::service::agent().get(url).header("Authorization", &format!("Bearer {token}")).call().unwrap();
    let status = response.status().as_u16();
    (status, serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap())
}

#[test]
fn a_reviewer_accepts_one_suggestion_into_the_running_rules_and_rejects_another_for_good() {
    use crate::{fundguard, stderr};
    let dir = tempfile::tempdir().unwrap();
    let shop = dir.path().join("shop");
    let o = fundguard(&[
        "simulate",
        "--out",
        path(&shop),
        "--format",
        "debezium",
        "--orders",
        "600",
        "--incident-rate",
        "0",
        "--seed",
        "5",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let suggested = dir.path().join("suggested");
    let suggest = || {
        let o = fundguard(&[
            "suggest",
            "--input",
            path(&shop.join("debezium.jsonl")),
            "--format",
            "debezium",
            "--schema",
            path(&shop.join("schema.yaml")),
            "--owner",
            "shop",
            "--out",
            path(&suggested),
        ]);
        assert!(o.status.success(), "{}", stderr(&o));
        let text = std::fs::read_to_string(suggested.join("report.json")).unwrap();
        serde_json::from_str::<serde_json::Value>(&text).unwrap()
    };
    let report = suggest();
    let ids: Vec<String> =
        report["suggestions"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap().to_string()).collect();
    assert!(ids.len() >= 4, "{ids:?}");
    let (accepted, rejected, refused, broken) = (&ids[0], &ids[1], &ids[2], &ids[3]);

    let rules = dir.path().join("rules");
    std::fs::create_dir_all(&rules).unwrap();
    std::fs::copy(repo_root().join("examples/rules/payment-amount-positive.yaml"), rules.join("base.yaml")).unwrap();
    let config = write_config(
        dir.path(),
        "rules: [rules]\ndata_dir: data\nlisten: 127.0.0.1:0\nsources:\n  - { name: msgs, type: http, format: json, table: shop.refunds, token_env: FG_TOKEN }\nsinks:\n  - { type: alerts }\nconsole:\n  suggestions: { dir: suggested, accept_into: rules/accepted }\n  users:\n    - { name: rita, role: operator, teams: [shop], password_env: FG_PW }\n    - { name: vera, role: viewer, password_env: FG_PW }\n  tokens:\n    - { name: elsewhere, role: operator, teams: [refunds], token_env: FG_OTHER }\n    - { name: shop-bot, role: operator, teams: [shop], token_env: FG_SHOP }\n    - { name: auditor, role: admin, token_env: FG_ADMIN }\n",
    );
    let service = Service::start(
        &config,
        &[
            ("FG_TOKEN", "ingest"),
            ("FG_PW", "demo-pw"),
            ("FG_OTHER", "other"),
            ("FG_SHOP", "shop"),
            ("FG_ADMIN", "adm"),
        ],
    );
    let url = service.url();

    let driver = ChromeDriver::start();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = browser(&driver).await;
        log_in(&client, &url, "rita").await;
        client.goto(&format!("{url}#/suggestions")).await.unwrap();
        let table = text_where(&client, "#suggestions-table", |t| t.contains(accepted.as_str())).await;
        assert!(table.contains("pending") && !table.contains("accepted"), "{table}");
        screenshot(&client, "suggestions").await;

        // The evidence, the backtest and the file are shown before anyone decides.
        click(&client, &format!("#suggestions-table tr[data-suggestion='{accepted}'] a")).await;
        text_where(&client, "#suggestion-evidence", |t| !t.is_empty()).await;
        text_where(&client, "#suggestion-backtest", |t| t.contains("finding(s)")).await;
        let file = text_where(&client, "#suggestion-file", |t| t.contains("id:")).await;
        assert!(file.contains(accepted.as_str()), "{file}");
        screenshot(&client, "suggestion").await;
        click(&client, "#suggestion-accept").await;
        text_where(&client, "h2 .decision", |t| t == "accepted").await;

        // A rejection needs a reason; then it is shown with it.
        client.goto(&format!("{url}#/suggestions/{rejected}")).await.unwrap();
        click(&client, "#suggestion-reject").await;
        text_where(&client, "#error", |t| t.contains("say why")).await;
        type_into(&client, "#suggestion-reject-reason", "duplicates our hand-written amount rule").await;
        click(&client, "#suggestion-reject").await;
        let reason = text_where(&client, "#suggestion-reason", |t| !t.is_empty()).await;
        assert_eq!(reason, "duplicates our hand-written amount rule");

        // A viewer reads, and has nothing to decide with.
        client.find(Locator::Css("#logout")).await.unwrap().click().await.unwrap();
        log_in(&client, &url, "vera").await;
        client.goto(&format!("{url}#/suggestions/{refused}")).await.unwrap();
        text_where(&client, "#suggestion-file", |t| t.contains("id:")).await;
        assert!(client.find(Locator::Css("#suggestion-accept")).await.is_err(), "a viewer gets no Accept button");
        client.close().await.unwrap();
    });

    // The accepted rule runs (the reload picked its file up); the rejected one does not.
    let running = wait(Duration::from_secs(20), || {
        let (_, rules) = get_with(&format!("{url}/api/v1/rules"), "shop");
        let ids: Vec<String> = rules.as_array()?.iter().map(|r| r["id"].as_str().unwrap().to_string()).collect();
        ids.contains(accepted).then_some(ids)
    })
    .expect("the accepted rule runs");
    assert!(!running.contains(rejected) && running.contains(&"payment-amount-positive".to_string()), "{running:?}");
    let written = rules.join("accepted").join(format!("{accepted}.yaml"));
    assert_eq!(std::fs::read(&written).unwrap(), std::fs::read(suggested.join(format!("{accepted}.yaml"))).unwrap());

    // Who may decide, and what cannot be decided twice.
    let decide = |id: &str, what: &str, token: &str, body: &str| {
        post(&format!("{url}/api/v1/suggestions/{id}/{what}"), Some(token), body)
    };
    let (status, body) = decide(refused, "accept", "other", "{}");
    assert_eq!(status, 403, "an operator of another team: {body}");
    assert_eq!(decide(accepted, "accept", "shop", "{}").0, 409);
    assert_eq!(decide(accepted, "reject", "shop", r#"{"reason":"x"}"#).0, 409);
    assert_eq!(decide(rejected, "accept", "shop", "{}").0, 409);
    assert_eq!(decide(refused, "reject", "shop", "{}").0, 400, "a rejection without a reason");
    assert_eq!(decide("no-such-rule", "accept", "shop", "{}").0, 404);
    // A rule file edited into something that does not load is refused, and nothing is written.
    let broken_file = suggested.join(format!("{broken}.yaml"));
    let text = std::fs::read_to_string(&broken_file).unwrap();
    std::fs::write(&broken_file, text.replacen("owner:", "owner: [", 1)).unwrap();
    let (status, body) = decide(broken, "accept", "shop", "{}");
    assert_eq!(status, 422, "{body}");
    assert!(!rules.join("accepted").join(format!("{broken}.yaml")).exists());

    // Every decision is in the audit log, the failed one too.
    let (_, audit) = get_with(&format!("{url}/api/v1/audit?target={accepted}"), "adm");
    assert_eq!(audit["entries"][0]["action"], "suggestion_accepted", "{audit}");
    assert_eq!(audit["entries"][0]["actor"], "rita");
    let (_, audit) = get_with(&format!("{url}/api/v1/audit?action=suggestion_rejected"), "adm");
    assert!(audit["entries"][0]["detail"].as_str().unwrap().contains("hand-written"), "{audit}");
    let (_, audit) = get_with(&format!("{url}/api/v1/audit?action=suggestion_review_failed"), "adm");
    assert_eq!(audit["entries"][0]["target"].as_str(), Some(broken.as_str()), "{audit}");

    // The next `suggest` into the same directory does not propose the rejected rule again.
    std::fs::write(&broken_file, text).unwrap();
    let again = suggest();
    let proposed: Vec<&str> =
        again["suggestions"].as_array().unwrap().iter().map(|s| s["id"].as_str().unwrap()).collect();
    assert!(!proposed.contains(&rejected.as_str()) && proposed.contains(&refused.as_str()), "{proposed:?}");
    let skipped = again["skipped"].as_array().unwrap().iter().find(|s| s["subject"] == rejected.as_str()).unwrap();
    assert_eq!(skipped["reason"], "rejected in review: duplicates our hand-written amount rule");
}

/// The Incidents page: a storm of broken refunds in one currency, after a deploy of the
/// service that writes them, is one incident whose likely causes — the currency first, the
/// deploy first among changes — an operator confirms, then resolves the incident from the
/// browser; the alert page links to the incident and shows its causes.
#[test]
fn an_operator_confirms_the_likely_cause_of_an_incident_and_resolves_it() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "rules: [{rules}]\ndata_dir: data\nlisten: 127.0.0.1:0\nsources:\n  - {{ name: msgs, type: http, format: json, table: shop.refunds, token_env: FG_TOKEN }}\nsinks:\n  - {{ type: alerts }}\nconsole:\n  users:\n    - {{ name: ana, role: operator, password_env: FG_PW }}\n  tokens:\n    - {{ name: deployer, role: operator, token_env: FG_OPS }}\nincidents:\n  services:\n    refund-service: {{ tables: [shop.refunds], team: refunds }}\n",
            rules = path(&repo_root().join("examples/rules"))
        ),
    );
    let service = Service::start(&config, &[("FG_TOKEN", "t"), ("FG_PW", "demo-pw"), ("FG_OPS", "ops")]);
    let url = service.url();
    let ingest = |refunds: Vec<String>| {
        let (status, body) = post(&format!("{url}/v1/ingest/msgs"), Some("t"), &format!("[{}]", refunds.join(",")));
        assert_eq!(status, 200, "{body}");
    };
    let ts = now_ms();
    let refund = |id: i64, amount: i64, currency: &str| {
        format!("{{\"id\":{id},\"order_id\":{id},\"amount\":{amount},\"currency\":\"{currency}\",\"ts\":{}}}", ts + id)
    };
    // The traffic: good refunds in three currencies.
    for chunk in (1..=900).collect::<Vec<i64>>().chunks(300) {
        ingest(chunk.iter().map(|&id| refund(id, 100 + id, ["CNY", "USD", "JPY"][(id % 3) as usize])).collect());
    }
    let deploy = format!(
        "{{\"service\":\"refund-service\",\"kind\":\"deploy\",\"version\":\"r7\",\"at\":\"{}\"}}",
        chrono::DateTime::from_timestamp_millis(ts - 120_000).unwrap().to_rfc3339()
    );
    assert_eq!(post(&format!("{url}/api/v1/changes"), Some("ops"), &deploy).0, 201);
    // Then USD refunds go negative.
    ingest((1001..=1040).map(|id| refund(id, -id, "USD")).collect());
    let incident = wait(Duration::from_secs(20), || {
        let list = crate::service::get_json(&format!("{url}/api/v1/incidents"), "ops");
        list.as_array()?.iter().find(|i| i["alerts"] == 40).map(|i| i["id"].as_i64().unwrap())
    })
    .expect("one incident of the forty alerts");
    // The traffic's baseline is saved at the next checkpoint (every 5 s by default).
    let dimensions = wait(Duration::from_secs(20), || {
        let detail = crate::service::get_json(&format!("{url}/api/v1/incidents/{incident}"), "ops");
        detail["dimensions"].as_array().filter(|d| !d.is_empty()).cloned()
    })
    .expect("the incident's causes ranked once the baseline is saved");
    assert_eq!(dimensions[0]["name"], "shop.refunds.currency=USD", "{dimensions:#?}");

    let driver = ChromeDriver::start();
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = browser(&driver).await;
        log_in(&client, &url, "ana").await;
        client.goto(&format!("{url}#/incidents")).await.unwrap();
        text_where(&client, "#incidents-table", |t| t.contains("refund-amount-positive") && t.contains("40")).await;
        click(&client, &format!("#incidents-table tr[data-incident='{incident}']")).await;
        let dims = text_where(&client, "#dimension-causes tbody tr:first-child", |t| t.contains("currency")).await;
        assert!(dims.starts_with("shop.refunds.currency=USD") && dims.contains("100.0 %"), "{dims}");
        let changes =
            text_where(&client, "#change-causes tbody tr:first-child", |t| t.contains("refund-service")).await;
        assert!(changes.contains("r7") && changes.contains("shop.refunds"), "{changes}");
        screenshot(&client, "incident").await;
        click(&client, "#dimension-causes tr[data-cause='shop.refunds.currency=USD'] button[data-verdict=confirmed]")
            .await;
        text_where(&client, "#dimension-causes tbody tr:first-child", |t| t.contains("confirmed by ana")).await;
        // The alert page names its incident and shows the causes.
        let first = text_where(&client, "#incident-alerts", |t| t.starts_with('#')).await;
        let alert = first.split_whitespace().next().unwrap().trim_start_matches('#').to_string();
        client.goto(&format!("{url}#/alerts/{alert}")).await.unwrap();
        let causes = text_where(&client, "#alert-causes", |t| t.contains("currency=USD")).await;
        assert!(causes.contains(&format!("incident {incident}")) && causes.contains("confirmed by ana"), "{causes}");
        screenshot(&client, "alert-causes").await;
        // Resolving the incident resolves its alerts.
        client.goto(&format!("{url}#/incidents/{incident}")).await.unwrap();
        type_into(&client, "#incident-root-cause", "refund-service r7 negated amounts").await;
        click(&client, "#incident-resolve").await;
        text_where(&client, "#incident-status", |t| t == "resolved").await;
        client.close().await.unwrap();
    });
    let (_, alert) = get_with(&format!("{url}/api/v1/alerts?status=open&rule=refund-amount-positive"), "ops");
    assert_eq!(alert["alerts"].as_array().unwrap().len(), 0, "every alert of the incident resolved: {alert}");
}
