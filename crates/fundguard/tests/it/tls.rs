//! Sources over TLS against real servers with certificates made for the test: a private
//! MariaDB and PostgreSQL that refuse clear-text logins, NATS with `--tls`, and Tansu (no
//! TLS of its own) behind a socat TLS terminator. Each run holds a source that must work
//! and sources that must be refused — a CA that did not sign the server's certificate, a
//! host name the certificate does not list — with errors that say which and what to check.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::servers::{MariaDb, Postgres, PostgresTls, Tansu};
use crate::service::{Service, free_port, now_ms, wait, write_config};
use crate::{path, read_jsonl, repo_root};

/// A test CA, a server certificate it signed for the address 127.0.0.1 only (so `localhost`
/// is a host-name mismatch), and a second CA that signed nothing here.
pub struct Certs {
    pub dir: tempfile::TempDir,
}

impl Certs {
    pub fn generate() -> Certs {
        let dir = tempfile::tempdir().unwrap();
        let openssl = |args: &[&str]| {
            let out = Command::new("openssl").args(args).current_dir(dir.path()).output().unwrap();
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        for ca in ["ca", "other-ca"] {
            openssl(&[
                "req",
                "-x509",
                "-newkey",
                "rsa:2048",
                "-nodes",
                "-days",
                "2",
                "-subj",
                &format!("/CN=fundguard test {ca}"),
                "-keyout",
                &format!("{ca}.key"),
                "-out",
                &format!("{ca}.pem"),
            ]);
        }
        openssl(&[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
        ]);
        std::fs::write(dir.path().join("san.ext"), "subjectAltName = IP:127.0.0.1\n").unwrap();
        openssl(&[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "2",
            "-extfile",
            "san.ext",
            "-out",
            "server.pem",
        ]);
        Certs { dir }
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Waits for a stderr line naming `source` and containing every one of `words`.
fn refusal(service: &Service, source: &str, words: &[&str]) -> String {
    let tag = format!("source `{source}`");
    let found = wait(Duration::from_secs(40), || {
        service.stderr.lock().unwrap().iter().find(|l| l.contains(&tag) && words.iter().all(|w| l.contains(w))).cloned()
    });
    found.unwrap_or_else(|| panic!("no refusal of `{source}` with {words:?}: {:#?}", service.stderr.lock().unwrap()))
}

fn refund_rule() -> PathBuf {
    repo_root().join("examples/rules/refund-amount-positive.yaml")
}

/// Waits for the refund rule's finding on `id`.
fn wait_for_refund(findings: &Path, service: &Service, id: i64) {
    let found = wait(Duration::from_secs(40), || {
        read_jsonl(findings)
            .into_iter()
            .find(|f| f["rule"] == "refund-amount-positive" && f["key"]["id"].as_i64() == Some(id))
    });
    assert!(found.is_some(), "the refund arrives over TLS: {:#?}", service.stderr.lock().unwrap());
}

#[test]
fn mysql_over_tls_streams_changes_and_refuses_a_wrong_ca_or_host_name() {
    let certs = Certs::generate();
    let db = MariaDb::start(&[
        &format!("--ssl-cert={}", path(&certs.file("server.pem"))),
        &format!("--ssl-key={}", path(&certs.file("server.key"))),
        &format!("--ssl-ca={}", path(&certs.file("ca.pem"))),
    ]);
    // The replication user may log in only over TLS; its password comes from a file.
    db.sql(
        "CREATE DATABASE shop; CREATE TABLE shop.refunds (id BIGINT PRIMARY KEY, order_id BIGINT, amount BIGINT, currency VARCHAR(8), status VARCHAR(16));
         CREATE USER 'fg'@'%' IDENTIFIED BY 'tls-pass-Q8' REQUIRE SSL;
         GRANT REPLICATION SLAVE, REPLICATION CLIENT, SELECT ON *.* TO 'fg'@'%';",
    );
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("db-password"), "tls-pass-Q8\n").unwrap();
    let (ca, other) = (path(&certs.file("ca.pem")).to_string(), path(&certs.file("other-ca.pem")).to_string());
    let port = db.port;
    let config = write_config(
        work.path(),
        &format!(
            "rules: [{rule}]\ndata_dir: data\nlisten: 127.0.0.1:0\nsources:\n\
             \x20 - {{ name: good, type: mysql, url: \"mysql://fg@127.0.0.1:{port}\", password_file: db-password, server_id: 801, include: [\"shop.*\"], tls: {{ ca_file: \"{ca}\" }} }}\n\
             \x20 - {{ name: wrong_ca, type: mysql, url: \"mysql://fg@127.0.0.1:{port}\", password_file: db-password, server_id: 802, tls: {{ mode: verify-full, ca_file: \"{other}\" }} }}\n\
             \x20 - {{ name: wrong_host, type: mysql, url: \"mysql://fg@localhost:{port}\", password_file: db-password, server_id: 803, tls: {{ ca_file: \"{ca}\" }} }}\n\
             \x20 - {{ name: clear, type: mysql, url: \"mysql://fg@127.0.0.1:{port}\", password_file: db-password, server_id: 804 }}\n\
             sinks:\n  - {{ type: jsonl, path: findings.jsonl }}\n",
            rule = path(&refund_rule()),
        ),
    );
    let service = Service::start(&config, &[]);
    service.wait_for("source `good`: reading the binlog from");
    db.sql("INSERT INTO shop.refunds VALUES (1, 10, -5, 'CNY', 'SUCCESS');");
    wait_for_refund(&work.path().join("findings.jsonl"), &service, 1);

    let line = refusal(&service, "wrong_ca", &["was not trusted by `ca_file`", "other-ca.pem", "openssl verify"]);
    assert!(!line.contains("tls-pass-Q8"), "{line}");
    refusal(&service, "wrong_host", &["does not name the host `localhost`", "subjectAltName"]);
    // Without TLS the server refuses the user: the good source really used TLS.
    refusal(&service, "clear", &["Access denied"]);
}

#[test]
fn postgres_over_tls_streams_changes_and_refuses_a_wrong_ca_or_host_name() {
    let certs = Certs::generate();
    let db =
        Postgres::start_tls("logical", PostgresTls { cert: &certs.file("server.pem"), key: &certs.file("server.key") });
    db.sql(
        "CREATE SCHEMA shop; CREATE TABLE shop.refunds (id BIGINT PRIMARY KEY, order_id BIGINT, amount BIGINT, currency TEXT, status TEXT);
         ALTER TABLE shop.refunds REPLICA IDENTITY FULL;",
    );
    let work = tempfile::tempdir().unwrap();
    let (ca, other) = (path(&certs.file("ca.pem")).to_string(), path(&certs.file("other-ca.pem")).to_string());
    let port = db.port;
    let config = write_config(
        work.path(),
        &format!(
            "rules: [{rule}]\ndata_dir: data\nlisten: 127.0.0.1:0\nsources:\n\
             \x20 - {{ name: good, type: postgres, url: \"postgres://postgres@127.0.0.1:{port}/postgres\", slot: fg_good, create_slot: true, include: [\"shop.*\"], tls: {{ ca_file: \"{ca}\" }} }}\n\
             \x20 - {{ name: by_ca_only, type: postgres, url: \"postgres://postgres@localhost:{port}/postgres\", slot: fg_ca, create_slot: true, include: [\"shop.*\"], tls: {{ mode: verify-ca, ca_file: \"{ca}\" }} }}\n\
             \x20 - {{ name: wrong_ca, type: postgres, url: \"postgres://postgres@127.0.0.1:{port}/postgres\", slot: fg_x, create_slot: true, tls: {{ ca_file: \"{other}\" }} }}\n\
             \x20 - {{ name: wrong_host, type: postgres, url: \"postgres://postgres@localhost:{port}/postgres\", slot: fg_y, create_slot: true, tls: {{ ca_file: \"{ca}\" }} }}\n\
             \x20 - {{ name: clear, type: postgres, url: \"postgres://postgres@127.0.0.1:{port}/postgres?sslmode=disable\", slot: fg_z, create_slot: true }}\n\
             sinks:\n  - {{ type: jsonl, path: findings.jsonl }}\n",
            rule = path(&refund_rule()),
        ),
    );
    let service = Service::start(&config, &[]);
    let both = wait(Duration::from_secs(40), || {
        let s = service.sources();
        (s[0]["state"] == "connected" && s[1]["state"] == "connected").then_some(())
    });
    assert!(both.is_some(), "verify-full and verify-ca connect: {}", service.sources());
    db.sql("INSERT INTO shop.refunds VALUES (7, 10, -5, 'CNY', 'SUCCESS');");
    wait_for_refund(&work.path().join("findings.jsonl"), &service, 7);

    refusal(&service, "wrong_ca", &["was not trusted by `ca_file`", "other-ca.pem"]);
    refusal(&service, "wrong_host", &["does not name the host `localhost`", "verify-full"]);
    // pg_hba.conf has only `hostssl` lines: clear text is refused, so `good` used TLS.
    refusal(&service, "clear", &["no pg_hba.conf entry"]);
}

/// A nats-server with JetStream and TLS on a free port.
struct NatsTls {
    child: Child,
    _store: tempfile::TempDir,
    port: u16,
}

impl NatsTls {
    fn start(certs: &Certs) -> NatsTls {
        let store = tempfile::tempdir().unwrap();
        let port = free_port();
        let child = Command::new(crate::servers::tool("nats-server", "apt-get install nats-server"))
            .args(["-a", "127.0.0.1", "-p", &port.to_string(), "-js", "-sd", path(store.path()), "--tls"])
            .args(["--tlscert", path(&certs.file("server.pem")), "--tlskey", path(&certs.file("server.key"))])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let up = wait(Duration::from_secs(20), || std::net::TcpStream::connect(("127.0.0.1", port)).ok());
        assert!(up.is_some(), "nats-server did not start");
        NatsTls { child, _store: store, port }
    }
}

impl Drop for NatsTls {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn nats_over_tls_delivers_and_refuses_a_wrong_ca() {
    let certs = Certs::generate();
    let nats = NatsTls::start(&certs);
    let work = tempfile::tempdir().unwrap();
    let (ca, other) = (path(&certs.file("ca.pem")).to_string(), path(&certs.file("other-ca.pem")).to_string());
    let url = format!("127.0.0.1:{}", nats.port);
    let config = write_config(
        work.path(),
        &format!(
            "rules: [{rule}]\ndata_dir: data\nlisten: 127.0.0.1:0\nsources:\n\
             \x20 - {{ name: good, type: nats, url: \"{url}\", stream: REFUNDS, subjects: [refunds], consumer: fg, create: true, format: json, table: shop.refunds, tls: {{ ca_file: \"{ca}\" }} }}\n\
             \x20 - {{ name: wrong_ca, type: nats, url: \"{url}\", stream: REFUNDS, subjects: [refunds], consumer: fg2, create: true, format: json, table: shop.refunds, tls: {{ ca_file: \"{other}\" }} }}\n\
             sinks:\n  - {{ type: jsonl, path: findings.jsonl }}\n",
            rule = path(&refund_rule()),
        ),
    );
    let service = Service::start(&config, &[]);
    let connected = wait(Duration::from_secs(30), || (service.sources()[0]["state"] == "connected").then_some(()));
    assert!(connected.is_some(), "{}", service.sources());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let client = async_nats::ConnectOptions::new()
            .require_tls(true)
            .add_root_certificates(certs.file("ca.pem"))
            .connect(&url)
            .await
            .unwrap();
        let js = async_nats::jetstream::new(client);
        let body = format!("{{\"id\":3,\"amount\":-3,\"currency\":\"CNY\",\"ts\":{}}}", now_ms());
        js.publish("refunds", body.into()).await.unwrap().await.unwrap();
    });
    wait_for_refund(&work.path().join("findings.jsonl"), &service, 3);
    refusal(&service, "wrong_ca", &["was not trusted by `ca_file`", "other-ca.pem"]);
}

/// socat terminating TLS (the test server certificate) in front of a plain TCP port.
struct TlsTerminator {
    child: Child,
    port: u16,
}

impl TlsTerminator {
    fn start(certs: &Certs, port: u16, to: u16) -> TlsTerminator {
        let listen = format!(
            "OPENSSL-LISTEN:{port},bind=127.0.0.1,reuseaddr,fork,cert={},key={},verify=0",
            path(&certs.file("server.pem")),
            path(&certs.file("server.key"))
        );
        let child = Command::new(crate::servers::tool("socat", "apt-get install socat"))
            .args([&listen, &format!("TCP:127.0.0.1:{to}")])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let up = wait(Duration::from_secs(10), || std::net::TcpStream::connect(("127.0.0.1", port)).ok());
        assert!(up.is_some(), "socat did not start");
        TlsTerminator { child, port }
    }
}

impl Drop for TlsTerminator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn kafka_over_tls_consumes_and_refuses_a_wrong_ca() {
    use rdkafka::ClientConfig;
    use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let certs = Certs::generate();
    let tls_port = free_port();
    let broker = Tansu::start_advertising(Some(tls_port));
    let plain: u16 = broker.brokers.rsplit_once(':').unwrap().1.parse().unwrap();
    let terminator = TlsTerminator::start(&certs, tls_port, plain);
    let brokers = format!("127.0.0.1:{}", terminator.port);
    // The broker advertises the TLS port, so the test's clients speak TLS too.
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &brokers)
        .set("security.protocol", "ssl")
        .set("ssl.ca.location", path(&certs.file("ca.pem")));
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let admin: AdminClient<DefaultClientContext> = client.create().unwrap();
    let topic = NewTopic::new("refunds-tls", 1, TopicReplication::Fixed(1));
    for created in runtime.block_on(admin.create_topics([&topic], &AdminOptions::new())).unwrap() {
        created.unwrap();
    }
    let producer: FutureProducer = client.create().unwrap();
    let body = format!("{{\"id\":5,\"amount\":-5,\"currency\":\"CNY\",\"ts\":{}}}", now_ms());
    runtime
        .block_on(producer.send(FutureRecord::<(), str>::to("refunds-tls").payload(&body), Duration::from_secs(20)))
        .map_err(|(e, _)| e)
        .unwrap();

    let work = tempfile::tempdir().unwrap();
    let (ca, other) = (path(&certs.file("ca.pem")).to_string(), path(&certs.file("other-ca.pem")).to_string());
    let config = write_config(
        work.path(),
        &format!(
            "rules: [{rule}]\ndata_dir: data\nlisten: 127.0.0.1:0\nsources:\n\
             \x20 - {{ name: good, type: kafka, brokers: \"{brokers}\", group: fg-tls, topics: [refunds-tls], format: json, table: shop.refunds, tls: {{ ca_file: \"{ca}\" }} }}\n\
             \x20 - {{ name: wrong_ca, type: kafka, brokers: \"{brokers}\", group: fg-tls2, topics: [refunds-tls], format: json, table: shop.refunds, tls: {{ ca_file: \"{other}\" }} }}\n\
             sinks:\n  - {{ type: jsonl, path: findings.jsonl }}\n",
            rule = path(&refund_rule()),
        ),
    );
    let service = Service::start(&config, &[]);
    wait_for_refund(&work.path().join("findings.jsonl"), &service, 5);
    refusal(&service, "wrong_ca", &["was not trusted by `ca_file`", "other-ca.pem"]);
}

#[test]
fn tls_and_secret_settings_are_checked_at_load_with_their_place() {
    let work = tempfile::tempdir().unwrap();
    std::fs::write(work.path().join("pw"), "x\n").unwrap();
    let config = write_config(
        work.path(),
        "rules: [examples/rules]\nsources:\n\
         \x20 - { name: a, type: mysql, url: \"mysql://fg@db\", tls: { ca_file: missing-ca.pem } }\n\
         \x20 - { name: b, type: postgres, url: \"postgres://fg@db/x\", slot: s, password_env: FG_TLS_UNSET, password_file: pw }\n\
         \x20 - { name: c, type: kafka, brokers: \"k:9093\", group: g, topics: [t], format: json, tls: {}, sasl: { mechanism: GSSAPI, username: fg, password_file: pw } }\n\
         \x20 - { name: d, type: kafka, brokers: \"k:9093\", group: g, topics: [t], format: json, tls: {}, sasl: { mechanism: SCRAM-SHA-512, username: fg } }\n\
         \x20 - { name: e, type: nats, url: \"nats://n:4222\", stream: S, consumer: c, format: json, tls: { mode: require } }\n\
         \x20 - { name: f, type: mysql, url: \"mysql://fg@db\", password_file: empty-or-missing, tls: { cert_file: pw } }\n\
         \x20 - { name: g, type: kafka, brokers: \"k:9092\", group: g, topics: [t], format: json, sasl: { mechanism: PLAIN, username: fg, password_file: pw } }\n\
         console:\n\
         \x20 users:\n\
         \x20   - { name: ada, role: admin, password_file: no-such-file }\n",
    );
    let o = crate::fundguard(&["run", "--config", path(&config)]);
    assert_eq!(o.status.code(), Some(1));
    let err = crate::stderr(&o);
    for expected in [
        "fundguard.yaml:3:5: error: source `a`: tls: ca_file ",
        "missing-ca.pem: No such file",
        "fundguard.yaml:4:5: error: source `b`: give password_env or password_file, not both",
        "fundguard.yaml:5:5: error: source `c`: sasl.mechanism `GSSAPI`: expected SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN",
        "fundguard.yaml:6:5: error: source `d`: sasl needs sasl.password_env or sasl.password_file",
        "fundguard.yaml:7:5: error: source `e`: tls: mode `require`: expected verify-full (the default) or verify-ca",
        "fundguard.yaml:8:5: error: source `f`: password_file ",
        "empty-or-missing: cannot read it: entity not found",
        "fundguard.yaml:8:5: error: source `f`: tls: give cert_file and key_file together",
        "fundguard.yaml:9:5: error: source `g`: sasl PLAIN sends the password as it is: add a `tls` block",
        "fundguard.yaml:12:7: error: `ada`: password_file ",
        "no-such-file: cannot read it: entity not found",
    ] {
        assert!(err.contains(expected), "{expected} in:\n{err}");
    }
}
