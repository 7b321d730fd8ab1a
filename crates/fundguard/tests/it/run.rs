//! `fundguard run` as a service: HTTP ingest, the idle clock, rule reload, file sources, config errors.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::service::{Service, agent, now_ms, post, wait, write_config};
use crate::{path, read_jsonl, repo_root};

fn http_config(dir: &Path, rules: &str, table: &str) -> std::path::PathBuf {
    write_config(
        dir,
        &format!(
            "rules: [{rules}]\nlisten: 127.0.0.1:0\nidle_after: 1s\nsources:\n  - {{ name: msgs, type: http, format: json, table: {table}, token_env: FG_TEST_TOKEN, max_messages: 3 }}\nsinks:\n  - {{ type: jsonl, path: findings.jsonl }}\n"
        ),
    )
}

#[test]
fn http_ingest_answers_per_message_and_only_then_evaluates() {
    let dir = tempfile::tempdir().unwrap();
    let rules = repo_root().join("examples/rules");
    let config = http_config(dir.path(), path(&rules), "shop.refunds");
    let service = Service::start(&config, &[("FG_TEST_TOKEN", "s3cret")]);
    let url = format!("{}/v1/ingest/msgs", service.url());
    let ts = now_ms();

    let (status, _) = post(&url, None, "[]");
    assert_eq!(status, 401, "no token");
    let (status, _) = post(&url, Some("wrong"), "[]");
    assert_eq!(status, 401, "wrong token");
    let (status, _) = post(&format!("{}/v1/ingest/nope", service.url()), Some("s3cret"), "[]");
    assert_eq!(status, 404);
    let (status, body) = post(&url, Some("s3cret"), "{\"not\": \"an array\"}");
    assert_eq!(status, 400, "{body}");
    let (status, body) = post(&url, Some("s3cret"), "[{},{},{},{}]");
    assert_eq!(status, 413, "{body}");
    let good = format!("{{\"id\":1,\"order_id\":3,\"amount\":-5,\"currency\":\"CNY\",\"ts\":{ts}}}");
    let (status, body) = post(&url, Some("s3cret"), &format!("[{good}, {{\"id\":2}}]"));
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["rejected"][0]["index"], 1);
    assert!(body["rejected"][0]["reason"].as_str().unwrap().contains("no `ts` field"), "{body}");
    // Nothing of a refused batch reaches the rules.
    std::thread::sleep(Duration::from_millis(300));
    assert!(read_jsonl(&dir.path().join("findings.jsonl")).is_empty());

    let (status, body) = post(&url, Some("s3cret"), &format!("[{good}]"));
    assert_eq!((status, body["accepted"].as_u64()), (200, Some(1)), "{body}");
    let findings = wait(Duration::from_secs(10), || {
        let f = read_jsonl(&dir.path().join("findings.jsonl"));
        (!f.is_empty()).then_some(f)
    })
    .expect("a finding for the negative refund");
    assert_eq!(findings[0]["rule"], "refund-amount-positive");
    assert_eq!(findings[0]["key"]["id"], 1);

    let mut resp = agent().get(&format!("{}/v1/sources", service.url())).call().unwrap();
    let health: serde_json::Value = serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap();
    assert_eq!(health[0]["name"], "msgs");
    assert_eq!(health[0]["events"], 1);
    assert!(health[0]["lag_ms"].as_i64().is_some());
    let mut resp = agent().get(&format!("{}/healthz", service.url())).call().unwrap();
    assert_eq!(resp.body_mut().read_to_string().unwrap(), "ok");
}

#[test]
fn a_deadline_fires_on_the_clock_when_the_source_goes_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::copy(repo_root().join("examples/rules/order-stuck-in-paying.yaml"), rules.join("stuck.yaml")).unwrap();
    let config = http_config(dir.path(), path(&rules), "shop.orders");
    let service = Service::start(&config, &[("FG_TEST_TOKEN", "t")]);
    let url = format!("{}/v1/ingest/msgs", service.url());
    // Entered PAYING 9 min 58 s ago; the rule allows 10 minutes. No other event ever comes.
    let entered = now_ms() - (10 * 60 - 2) * 1000;
    let (status, body) = post(&url, Some("t"), &format!("[{{\"id\":5,\"status\":\"PAYING\",\"ts\":{entered}}}]"));
    assert_eq!(status, 200, "{body}");
    std::thread::sleep(Duration::from_millis(500));
    assert!(read_jsonl(&dir.path().join("findings.jsonl")).is_empty(), "not yet due");
    let findings = wait(Duration::from_secs(15), || {
        let f = read_jsonl(&dir.path().join("findings.jsonl"));
        (!f.is_empty()).then_some(f)
    })
    .expect("the idle clock fires the deadline");
    assert_eq!(findings[0]["rule"], "order-stuck-in-paying");
    assert_eq!(findings[0]["key"]["id"], 5);
}

/// Regression: `lag_ms` kept the figure of the last batch while the source was quiet.
#[test]
fn lag_keeps_growing_while_a_source_is_quiet() {
    let dir = tempfile::tempdir().unwrap();
    let config = http_config(dir.path(), path(&repo_root().join("examples/rules")), "shop.refunds");
    let service = Service::start(&config, &[("FG_TEST_TOKEN", "t")]);
    let url = format!("{}/v1/ingest/msgs", service.url());
    // Committed 5 s ago; then nothing more.
    let committed = now_ms() - 5_000;
    let refund = format!("[{{\"id\":1,\"order_id\":3,\"amount\":5,\"currency\":\"CNY\",\"ts\":{committed}}}]");
    let (status, body) = post(&url, Some("t"), &refund);
    assert_eq!(status, 200, "{body}");
    let lag = |service: &Service| {
        let health = &service.sources()[0];
        (health["lag_ms"].as_i64().unwrap_or_else(|| panic!("{health}")), now_ms(), health["last_commit_time"].clone())
    };
    let metric = |service: &Service| -> f64 {
        let text =
            agent().get(&format!("{}/metrics", service.url())).call().unwrap().body_mut().read_to_string().unwrap();
        let line = text.lines().find(|l| l.starts_with("fundguard_watermark_lag_seconds{source=\"msgs\"}"));
        line.and_then(|l| l.rsplit(' ').next()?.parse().ok()).unwrap_or_else(|| panic!("no lag metric: {text}"))
    };
    let (first, _, commit_time) = lag(&service);
    let first_metric = metric(&service);
    std::thread::sleep(Duration::from_millis(3_000));
    let (later, measured_at, same_commit_time) = lag(&service);
    assert_eq!(commit_time, same_commit_time, "no new event");
    assert!(later >= first + 2_000, "lag_ms grows while the source is quiet: {first} ms, 3 s later {later} ms");
    // Measured on the pipeline's tick (every second): now minus the commit time, at most a tick behind.
    let definition = measured_at - committed;
    assert!((definition - 1_500..=definition).contains(&later), "lag_ms {later} vs now - commit time {definition}");
    assert!(metric(&service) >= first_metric + 2.0, "the watermark lag metric grows too");
}

#[test]
fn rules_reload_on_change_and_a_bad_edit_keeps_the_old_rules() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    let rule = rules.join("r.yaml");
    let text = |id: &str, threshold: i64| {
        format!("id: {id}\nowner: t\nseverity: low\ncheck:\n  tables: [shop.t]\n  assert: after.amount > {threshold}\n")
    };
    std::fs::write(&rule, text("first", 0)).unwrap();
    let config = http_config(dir.path(), path(&rules), "shop.t");
    let service = Service::start(&config, &[("FG_TEST_TOKEN", "t")]);
    let url = format!("{}/v1/ingest/msgs", service.url());

    std::fs::write(
        &rule,
        "id: broken\nowner: t\nseverity: low\ncheck:\n  tables: [shop.t]\n  assert: after.amount >\n",
    )
    .unwrap();
    service.wait_for("rule reload failed; the previous rules keep running");
    service.wait_for("r.yaml:6:11");
    let (status, _) = post(&url, Some("t"), &format!("[{{\"id\":1,\"amount\":-1,\"ts\":{}}}]", now_ms()));
    assert_eq!(status, 200);
    let first = wait(Duration::from_secs(10), || {
        let f = read_jsonl(&dir.path().join("findings.jsonl"));
        (!f.is_empty()).then_some(f)
    })
    .unwrap();
    assert_eq!(first[0]["rule"], "first", "the old rule still runs");

    std::fs::write(&rule, text("second", 100)).unwrap();
    service.wait_for("rules reloaded: 1 rule(s) running");
    let (status, _) = post(&url, Some("t"), &format!("[{{\"id\":2,\"amount\":50,\"ts\":{}}}]", now_ms()));
    assert_eq!(status, 200);
    let all = wait(Duration::from_secs(10), || {
        let f = read_jsonl(&dir.path().join("findings.jsonl"));
        (f.len() >= 2).then_some(f)
    })
    .unwrap();
    assert_eq!(all[1]["rule"], "second");

    // SIGHUP reloads too, even without a change.
    let lines_before = service.stderr.lock().unwrap().iter().filter(|l| l.contains("rules reloaded")).count();
    Command::new("kill").args(["-HUP", &service.child.id().to_string()]).status().unwrap();
    wait(Duration::from_secs(10), || {
        let n = service.stderr.lock().unwrap().iter().filter(|l| l.contains("rules reloaded")).count();
        (n > lines_before).then_some(())
    })
    .expect("reloaded on SIGHUP");
}

#[test]
fn a_followed_file_is_read_as_it_grows_and_bad_lines_are_dead_lettered() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("maxwell.jsonl");
    let line = |id: i64, amount: i64| {
        format!(
            "{{\"database\":\"shop\",\"table\":\"refunds\",\"type\":\"insert\",\"ts\":1714550401,\"data\":{{\"id\":{id},\"amount\":{amount},\"currency\":\"CNY\"}}}}\n"
        )
    };
    std::fs::write(&log, line(1, -1)).unwrap();
    let rules = repo_root().join("examples/rules");
    let config = write_config(
        dir.path(),
        &format!(
            "rules: [{}]\ndata_dir: data\nsources:\n  - {{ name: log, type: file, path: maxwell.jsonl, format: maxwell, follow: true }}\nsinks:\n  - {{ type: jsonl, path: findings.jsonl }}\n",
            path(&rules)
        ),
    );
    let _service = Service::start(&config, &[]);
    let findings = |n: usize| {
        wait(Duration::from_secs(10), || {
            let f = read_jsonl(&dir.path().join("findings.jsonl"));
            (f.len() >= n).then_some(f)
        })
    };
    assert_eq!(findings(1).expect("the first line")[0]["key"]["id"], 1);
    let mut f = std::fs::OpenOptions::new().append(true).open(&log).unwrap();
    f.write_all(b"{broken\n").unwrap();
    f.write_all(line(2, -2).as_bytes()).unwrap();
    f.flush().unwrap();
    assert_eq!(findings(2).expect("the appended line")[1]["key"]["id"], 2);
    let letters = read_jsonl(&dir.path().join("data/dead-letter-log.jsonl"));
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0]["position"]["line"], 2);
}

#[test]
fn config_problems_are_reported_with_their_place() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), "rules: [examples/rules]\nlisen: 127.0.0.1:0\n");
    let o = crate::fundguard(&["run", "--config", path(&config)]);
    assert_eq!(o.status.code(), Some(1));
    let err = crate::stderr(&o);
    assert!(err.contains("fundguard.yaml:2:1: error: unknown field `lisen`"), "{err}");

    let config = write_config(
        dir.path(),
        "rules: [examples/rules]\nlisten: 127.0.0.1:0\nsources:\n  - { name: a, type: http, format: json, token_env: FG_SURELY_UNSET_TOKEN }\n",
    );
    let o = crate::fundguard(&["run", "--config", path(&config)]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        crate::stderr(&o)
            .contains("fundguard.yaml:4:5: error: source `a`: environment variable FG_SURELY_UNSET_TOKEN is not set"),
        "{}",
        crate::stderr(&o)
    );

    // The `incidents:` section: a zero burst, an unknown notify mode, an unset secret.
    let config = write_config(
        dir.path(),
        "rules: [examples/rules]\nincidents:\n  burst: 0s\n  notify: sometimes\n  github_secret_env: FG_SURELY_UNSET_GH\n",
    );
    let o = crate::fundguard(&["run", "--config", path(&config)]);
    assert_eq!(o.status.code(), Some(1));
    let err = crate::stderr(&o);
    assert!(err.contains("fundguard.yaml:3:10: error: incidents.burst: expected a positive duration"), "{err}");
    assert!(
        err.contains("fundguard.yaml:4:11: error: incidents.notify: expected `per_incident` or `per_alert`"),
        "{err}"
    );
    assert!(err.contains("incidents.github_secret_env: the variable `FG_SURELY_UNSET_GH` is not set"), "{err}");

    let config = write_config(
        dir.path(),
        "rules: [examples/rules]\nsources:\n  - name: k\n    type: kafka\n    format: debezium\n    brokers: b:9092\n    group: g\n    topics: []\n  - name: db\n    type: mysql\n    url: mysql://u@h\n    start: yesterday\n    datetime_offset: \"+25:00\"\n",
    );
    let o = crate::fundguard(&["run", "--config", path(&config)]);
    assert_eq!(o.status.code(), Some(1));
    let err = crate::stderr(&o);
    assert!(err.contains("fundguard.yaml:3:5: error: source `k`: `topics` is empty"), "{err}");
    assert!(
        err.contains("fundguard.yaml:9:5: error: source `db`: start `yesterday`: expected end or beginning"),
        "{err}"
    );

    // PostgreSQL output plugins: pgoutput needs its publication, wal2json takes none, and
    // a plugin fundguard does not read is named with the ones it does.
    let source = |name: &str, extra: &str| {
        format!("  - {{ name: {name}, type: postgres, url: \"postgres://u@h/d\", slot: s, {extra} }}\n")
    };
    let config = write_config(
        dir.path(),
        &format!(
            "rules: [examples/rules]\nsources:\n{}{}",
            source("a", "plugin: pgoutput"),
            source("b", "publication: p")
        ),
    );
    let o = crate::fundguard(&["run", "--config", path(&config)]);
    assert_eq!(o.status.code(), Some(1));
    let err = crate::stderr(&o);
    assert!(err.contains("fundguard.yaml:3:5: error: source `a`: plugin: pgoutput needs `publication:`"), "{err}");
    assert!(err.contains("fundguard.yaml:4:5: error: source `b`: publication: only `plugin: pgoutput`"), "{err}");
    let config =
        write_config(dir.path(), &format!("rules: [examples/rules]\nsources:\n{}", source("c", "plugin: decoderbufs")));
    let o = crate::fundguard(&["run", "--config", path(&config)]);
    let err = crate::stderr(&o);
    assert!(err.contains("unknown variant `decoderbufs`, expected one of wal2json, pgoutput"), "{err}");
}

/// Publishes messages to a JetStream subject and waits for the stream's acks.
fn publish(stream: &str, subject: &str, messages: &[String]) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = async_nats::connect("127.0.0.1:4222").await.expect("the machine's NATS server on 4222");
        let js = async_nats::jetstream::new(client);
        js.get_or_create_stream(async_nats::jetstream::stream::Config {
            name: stream.to_string(),
            subjects: vec![subject.to_string()],
            ..Default::default()
        })
        .await
        .unwrap();
        for m in messages {
            js.publish(subject.to_string(), m.clone().into()).await.unwrap().await.unwrap();
        }
    });
}

fn delete_stream(stream: &str) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        if let Ok(client) = async_nats::connect("127.0.0.1:4222").await {
            let _ = async_nats::jetstream::new(client).delete_stream(stream).await;
        }
    });
}

#[test]
fn nats_jetstream_acknowledges_after_processing_and_resumes_after_a_kill() {
    let unique = format!("{}_{}", std::process::id(), now_ms());
    let stream = format!("FGTEST_{unique}");
    let subject = format!("fgtest.{unique}.refunds");
    let refund = |id: i64| {
        format!(
            "{{\"database\":\"shop\",\"table\":\"refunds\",\"type\":\"insert\",\"ts\":1714550401,\"data\":{{\"id\":{id},\"amount\":-{id},\"currency\":\"CNY\"}}}}"
        )
    };
    publish(&stream, &subject, &[refund(1), refund(2)]);
    let dir = tempfile::tempdir().unwrap();
    let rules = repo_root().join("examples/rules");
    let config = write_config(
        dir.path(),
        &format!(
            "rules: [{}]\nlisten: 127.0.0.1:0\ncheckpoint_interval: 1s\nsources:\n  - {{ name: bus, type: nats, url: 127.0.0.1:4222, stream: {stream}, subjects: [\"{subject}\"], consumer: fundguard, create: true, format: maxwell }}\nsinks:\n  - {{ type: jsonl, path: findings.jsonl }}\n",
            path(&rules)
        ),
    );
    let count = |n: usize| {
        wait(Duration::from_secs(20), || {
            let f = read_jsonl(&dir.path().join("findings.jsonl"));
            (f.len() >= n).then_some(f)
        })
    };
    {
        let service = Service::start(&config, &[]);
        let found = count(2).unwrap_or_else(|| panic!("two findings; stderr: {:?}", service.stderr.lock().unwrap()));
        assert_eq!(found.len(), 2);
        // Acknowledgements follow checkpoints (every second here): let one pass, then
        // kill without a goodbye.
        std::thread::sleep(Duration::from_millis(2500));
    }
    publish(&stream, &subject, &[refund(3)]);
    let service = Service::start(&config, &[]);
    let found =
        count(3).unwrap_or_else(|| panic!("the message sent while down; stderr: {:?}", service.stderr.lock().unwrap()));
    std::thread::sleep(Duration::from_millis(1500));
    let found_later = read_jsonl(&dir.path().join("findings.jsonl"));
    assert_eq!(found_later.len(), 3, "nothing skipped and nothing read twice: {found:?}");
    let ids: Vec<i64> = found_later.iter().map(|f| f["key"]["id"].as_i64().unwrap()).collect();
    assert_eq!(ids, vec![1, 2, 3]);
    assert_eq!(found_later[2]["evidence"][0]["position"]["kind"], "stream");
    assert_eq!(service.sources()[0]["lag_events"], 0, "nothing left pending: {}", service.sources());
    drop(service);
    delete_stream(&stream);
}

#[test]
fn nats_subjects_map_to_tables_for_json_messages() {
    let unique = format!("{}_{}", std::process::id(), now_ms());
    let stream = format!("FGMAP_{unique}");
    let refunds = format!("fgmap.{unique}.refunds");
    let payments = format!("fgmap.{unique}.payments");
    let ts = now_ms();
    let msg = |id: i64| format!("{{\"id\":{id},\"amount\":-{id},\"currency\":\"CNY\",\"ts\":{ts}}}");
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let js = async_nats::jetstream::new(async_nats::connect("127.0.0.1:4222").await.unwrap());
        js.get_or_create_stream(async_nats::jetstream::stream::Config {
            name: stream.clone(),
            subjects: vec![format!("fgmap.{unique}.>")],
            ..Default::default()
        })
        .await
        .unwrap();
        for (subject, id) in [(&refunds, 1), (&payments, 2), (&refunds, 3)] {
            js.publish(subject.clone(), msg(id).into()).await.unwrap().await.unwrap();
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        &format!(
            "rules: [{}]\nsources:\n  - name: bus\n    type: nats\n    url: 127.0.0.1:4222\n    stream: {stream}\n    consumer: fg\n    format: json\n    tables: {{ \"{refunds}\": shop.refunds, \"{payments}\": shop.payments }}\nsinks:\n  - {{ type: jsonl, path: findings.jsonl }}\n",
            path(&repo_root().join("examples/rules"))
        ),
    );
    let service = Service::start(&config, &[]);
    // Only the sign rules: the bare test messages lack columns other payment rules require.
    let sign = |f: &serde_json::Value| f["rule"].as_str().unwrap().ends_with("-amount-positive");
    let found = wait(Duration::from_secs(20), || {
        let f: Vec<_> = read_jsonl(&dir.path().join("findings.jsonl")).into_iter().filter(sign).collect();
        (f.len() >= 3).then_some(f)
    })
    .unwrap_or_else(|| panic!("three findings; stderr: {:?}", service.stderr.lock().unwrap()));
    let mut seen: Vec<(String, i64)> =
        found.iter().map(|f| (f["rule"].as_str().unwrap().to_string(), f["key"]["id"].as_i64().unwrap())).collect();
    seen.sort();
    assert_eq!(
        seen,
        vec![
            ("payment-amount-positive".to_string(), 2),
            ("refund-amount-positive".to_string(), 1),
            ("refund-amount-positive".to_string(), 3)
        ]
    );
    drop(service);
    delete_stream(&stream);
}

#[test]
fn sigterm_drains_flushes_and_exits_within_the_shutdown_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let config = http_config(dir.path(), path(&repo_root().join("examples/rules")), "shop.refunds");
    let text = std::fs::read_to_string(&config).unwrap() + "shutdown_timeout: 10s\n";
    std::fs::write(&config, text).unwrap();
    let mut service = Service::start(&config, &[("FG_TEST_TOKEN", "t")]);
    let body = format!("[{{\"id\":1,\"order_id\":1,\"amount\":-1,\"currency\":\"CNY\",\"ts\":{}}}]", now_ms());
    assert_eq!(post(&format!("{}/v1/ingest/msgs", service.url()), Some("t"), &body).0, 200);
    let started = std::time::Instant::now();
    let _ = std::process::Command::new("kill").args(["-TERM", &service.pid().to_string()]).status();
    let status = service.child.wait().unwrap();
    assert!(status.success(), "a clean stop exits 0: {:?}", service.stderr.lock().unwrap());
    assert!(started.elapsed() < Duration::from_secs(10), "within the timeout");
    service.wait_for("fundguard: stopped cleanly");
    let findings = read_jsonl(&dir.path().join("findings.jsonl"));
    assert_eq!(findings.len(), 1, "the finding was flushed before the exit");
}

#[test]
fn json_logs_carry_the_level_the_message_and_the_fields() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    let rule = rules.join("r.yaml");
    std::fs::write(&rule, "id: r\nowner: t\nseverity: low\ncheck:\n  tables: [shop.t]\n  assert: after.amount > 0\n")
        .unwrap();
    let config = http_config(dir.path(), path(&rules), "shop.t");
    let service =
        Service::spawn(&["--log-format", "json", "run", "--config", path(&config)], &[("FG_TEST_TOKEN", "t")]);
    let parse = |line: String| -> serde_json::Value {
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"))
    };

    let listening = parse(service.wait_for("listening on http://"));
    assert_eq!(listening["level"], "INFO", "{listening}");
    let address = listening["address"].as_str().expect("the address is a field of its own");
    assert!(address.starts_with("127.0.0.1:") && address != "127.0.0.1:0", "{listening}");
    assert_eq!(listening["message"], format!("listening on http://{address}"));
    assert!(listening["timestamp"].is_string(), "{listening}");

    std::fs::write(&rule, "id: r\nowner: t\nseverity: low\ncheck:\n  tables: [shop.t]\n  assert: after.amount >\n")
        .unwrap();
    let failed = parse(service.wait_for("rule reload failed"));
    assert_eq!(failed["level"], "WARN", "{failed}");
    assert!(failed["message"].as_str().unwrap().contains("r.yaml:6:"), "the problem keeps its place: {failed}");
    for line in service.stderr.lock().unwrap().iter() {
        assert!(!line.starts_with("fundguard: "), "every line is JSON: {line}");
    }
}
