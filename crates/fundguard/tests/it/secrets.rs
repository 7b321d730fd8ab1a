//! Secrets stay secret: a database password, a console password and two tokens are planted
//! in the environment (and the password also in a `password_file`) of a running `fundguard
//! run` that uses them all — a binlog read with the password from the file (its trailing
//! newline dropped), a source that keeps failing, an ingest token, a console login — and none
//! of them appears in its logs, its HTTP answers or the files it writes. A password written
//! into a connection URL is refused before anything starts, without being echoed.

use std::path::Path;
use std::time::Duration;

use crate::servers::MariaDb;
use crate::service::{Service, agent, free_port, post, wait, write_config};
use crate::{fundguard, path, read_jsonl, repo_root, stderr, stdout};

const DB_PASSWORD: &str = "planted-db-Sx81q";
const ADMIN_PASSWORD: &str = "planted-admin-Kq20z";
const INGEST_TOKEN: &str = "planted-ingest-Wv55m";
const API_TOKEN: &str = "planted-api-Zr73p";

/// Every file below `dir`, as bytes, with its path.
fn files(dir: &Path) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = entry.path();
        if p.is_dir() {
            out.extend(files(&p));
        } else if let Ok(bytes) = std::fs::read(&p) {
            out.push((p, bytes));
        }
    }
    out
}

fn assert_no_secret(what: &str, text: &[u8]) {
    let text = String::from_utf8_lossy(text);
    for secret in [DB_PASSWORD, ADMIN_PASSWORD, INGEST_TOKEN, API_TOKEN] {
        assert!(!text.contains(secret), "{what} shows a planted secret: {text}");
    }
}

#[test]
fn planted_secrets_appear_in_no_log_answer_or_file() {
    let db = MariaDb::start(&[]);
    db.sql(&format!(
        "CREATE DATABASE shop; CREATE TABLE shop.refunds (id BIGINT PRIMARY KEY, order_id BIGINT, amount BIGINT, currency VARCHAR(8), status VARCHAR(16));
         CREATE USER 'fg'@'%' IDENTIFIED BY '{DB_PASSWORD}';
         GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO 'fg'@'%';"
    ));
    let work = tempfile::tempdir().unwrap();
    // The password file lives apart from the data, whose every file is searched below.
    let secrets = tempfile::tempdir().unwrap();
    let password_file = secrets.path().join("db-password");
    std::fs::write(&password_file, format!("{DB_PASSWORD}\n")).unwrap();
    let admin_file = secrets.path().join("admin-password");
    std::fs::write(&admin_file, format!("{ADMIN_PASSWORD}\r\n")).unwrap();
    let nowhere = free_port();
    let config = write_config(
        work.path(),
        &format!(
            "rules: [{rules}]\ndata_dir: data\nlisten: 127.0.0.1:0\nsources:\n  - {{ name: shopdb, type: mysql, url: \"mysql://fg@127.0.0.1:{port}\", password_file: \"{password_file}\", include: [\"shop.*\"] }}\n  - {{ name: gone, type: mysql, url: \"mysql://fg@127.0.0.1:{nowhere}\", password_env: FG_DB_PASSWORD }}\n  - {{ name: msgs, type: http, format: json, table: shop.refunds, token_env: FG_INGEST_TOKEN }}\nsinks:\n  - {{ type: jsonl, path: findings.jsonl }}\n  - {{ type: alerts }}\nconsole:\n  users:\n    - {{ name: ada, role: admin, password_file: \"{admin_file}\" }}\n  tokens:\n    - {{ name: ci-bot, role: operator, token_env: FG_API_TOKEN }}\n",
            rules = path(&repo_root().join("examples/rules")),
            port = db.port,
            password_file = path(&password_file),
            admin_file = path(&admin_file),
        ),
    );
    let envs = [
        ("FG_DB_PASSWORD", DB_PASSWORD),
        ("FG_ADMIN_PASSWORD", ADMIN_PASSWORD),
        ("FG_INGEST_TOKEN", INGEST_TOKEN),
        ("FG_API_TOKEN", API_TOKEN),
    ];
    let service = Service::start(&config, &envs);
    service.wait_for("reading the binlog from");
    // The binlog, read with the password, and HTTP ingest, with its token, both find.
    db.sql("INSERT INTO shop.refunds VALUES (1, 10, -5, 'CNY', 'SUCCESS');");
    let url = service.url();
    let (status, _) = post(
        &format!("{url}/v1/ingest/msgs"),
        Some(INGEST_TOKEN),
        r#"[{"ts": 1700000000000, "id": 2, "order_id": 20, "amount": -7, "currency": "CNY", "status": "SUCCESS"}]"#,
    );
    assert_eq!(status, 200);
    let findings = work.path().join("findings.jsonl");
    let both = wait(Duration::from_secs(30), || (read_jsonl(&findings).len() >= 2).then_some(()));
    assert!(both.is_some(), "{:?}", read_jsonl(&findings));
    // The source that cannot connect has failed at least once, with its error logged.
    let failed = wait(Duration::from_secs(30), || {
        let sources = service.sources();
        (sources.as_array().unwrap().iter().any(|s| s["name"] == "gone" && s["reconnects"].as_u64() >= Some(1)))
            .then_some(sources)
    });
    assert!(failed.is_some(), "{}", service.sources());

    // A console login and the API with the token.
    let login = serde_json::json!({ "user": "ada", "password": ADMIN_PASSWORD }).to_string();
    let mut answer =
        agent().post(&format!("{url}/api/v1/login")).header("Content-Type", "application/json").send(&login).unwrap();
    assert_eq!(answer.status(), 200);
    let cookie = answer.headers()["set-cookie"].to_str().unwrap().split(';').next().unwrap().to_string();
    assert_no_secret("the login answer", answer.body_mut().read_to_string().unwrap().as_bytes());
    for route in [
        "/healthz",
        "/readyz",
        "/v1/sources",
        "/metrics",
        "/api/openapi.json",
        "/api/v1/health",
        "/api/v1/rules",
        "/api/v1/alerts",
        "/api/v1/stats",
    ] {
        for auth in [("Authorization", format!("Bearer {API_TOKEN}")), ("Cookie", cookie.clone())] {
            let response = agent().get(&format!("{url}{route}")).header(auth.0, &auth.1).call();
            if let Ok(mut response) = response {
                assert_no_secret(route, response.body_mut().read_to_string().unwrap_or_default().as_bytes());
            }
        }
    }
    // A wrong token is refused without the right one being named.
    let (status, body) = post(&format!("{url}/v1/ingest/msgs"), Some("not-the-token"), "{}");
    assert_eq!(status, 401);
    assert_no_secret("a refused ingest", body.to_string().as_bytes());
    let logs = service.stderr.clone();
    service.terminate();

    let logs = logs.lock().unwrap().join("\n");
    assert!(logs.contains("source `gone`"), "the failing source's errors are logged: {logs}");
    assert_no_secret("the log", logs.as_bytes());
    for (file, bytes) in files(work.path()) {
        if file.ends_with("fundguard.yaml") {
            continue; // names the variables, holds no secret
        }
        assert_no_secret(&file.display().to_string(), &bytes);
    }
}

#[test]
fn a_password_in_a_connection_url_is_refused_without_being_echoed() {
    let work = tempfile::tempdir().unwrap();
    let config = write_config(
        work.path(),
        &format!(
            "rules: [{}]\nsources:\n  - {{ name: shopdb, type: mysql, url: \"mysql://root:{DB_PASSWORD}@127.0.0.1:3306\" }}\n  - {{ name: pg, type: postgres, url: \"postgres://fg@127.0.0.1/shop?password={DB_PASSWORD}\", slot: fg }}\n",
            path(&repo_root().join("examples/rules"))
        ),
    );
    let rules = repo_root().join("examples/rules");
    for args in [vec!["validate", "--config", path(&config), path(&rules)], vec!["run", "--config", path(&config)]] {
        let o = fundguard(&args);
        assert!(!o.status.success(), "{args:?} refuses the config");
        let said = format!("{}{}", stdout(&o), stderr(&o));
        assert!(said.contains("source `shopdb`: `url` carries a password"), "{said}");
        assert!(said.contains("source `pg`: `url` carries a password") && said.contains("password_env"), "{said}");
        assert_no_secret("the refusal", said.as_bytes());
    }
}

#[test]
fn a_password_file_that_cannot_be_used_is_named_and_its_content_never_shown() {
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("both"), DB_PASSWORD).unwrap();
    std::fs::write(work.path().join("empty"), "\n").unwrap();
    let mut not_text = DB_PASSWORD.as_bytes().to_vec();
    not_text.push(0xff);
    std::fs::write(work.path().join("not-text"), not_text).unwrap();
    let config = write_config(
        work.path(),
        &format!(
            "rules: [{}]\nsources:\n  - {{ name: both, type: mysql, url: \"mysql://fg@127.0.0.1:3306\", password_env: FG_DB_PASSWORD, password_file: both }}\n  - {{ name: empty, type: postgres, url: \"postgres://fg@127.0.0.1/shop\", slot: fg, password_file: empty }}\n  - {{ name: bytes, type: mysql, url: \"mysql://fg@127.0.0.1:3306\", password_file: not-text }}\n",
            path(&repo_root().join("examples/rules"))
        ),
    );
    let o = std::process::Command::new(env!("CARGO_BIN_EXE_fundguard"))
        .args(["run", "--config", path(&config)])
        .env("FG_DB_PASSWORD", DB_PASSWORD)
        .output()
        .unwrap();
    assert!(!o.status.success());
    let said = format!("{}{}", stdout(&o), stderr(&o));
    assert!(said.contains("source `both`: give password_env or password_file, not both"), "{said}");
    assert!(said.contains("source `empty`: password_file ") && said.contains("empty is empty"), "{said}");
    assert!(said.contains("source `bytes`: password_file ") && said.contains("not-text: not UTF-8 text"), "{said}");
    assert_no_secret("the refusal", said.as_bytes());
}
