//! Private database servers for the tests, each in a temporary directory on a free port:
//! the machine's shared servers have no binlog and no logical decoding, and are left alone.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::service::{free_port, wait};

/// Runs a command that starts a daemon: the daemon keeps inherited pipes open, so
/// only the exit status is awaited.
fn start_daemon(command: &mut Command) {
    let status = command.stdin(Stdio::null()).stdout(Stdio::null()).stderr(Stdio::null()).status().unwrap();
    assert!(status.success(), "{command:?} failed");
}

fn run(command: &mut Command) {
    let out = command.output().unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        out.status.success(),
        "{command:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A MariaDB server writing a ROW binlog with FULL images and metadata.
pub struct MariaDb {
    dir: tempfile::TempDir,
    pub port: u16,
    child: Option<Child>,
    extra: Vec<String>,
}

impl MariaDb {
    pub fn start(extra: &[&str]) -> MariaDb {
        let dir = tempfile::tempdir().unwrap();
        run(Command::new("mariadb-install-db").args([
            "--no-defaults",
            &format!("--datadir={}", dir.path().join("data").display()),
            "--user=root",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
        ]));
        let mut db =
            MariaDb { dir, port: free_port(), child: None, extra: extra.iter().map(|s| s.to_string()).collect() };
        db.spawn();
        db
    }

    fn spawn(&mut self) {
        let data = self.dir.path().join("data");
        let log = std::fs::File::create(self.dir.path().join("server.log")).unwrap();
        let child = Command::new("mariadbd")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", self.dir.path().join("sock").display()))
            .arg(format!("--pid-file={}", self.dir.path().join("pid").display()))
            .arg(format!("--port={}", self.port))
            .args([
                "--user=root",
                "--bind-address=127.0.0.1",
                "--log-bin=mysql-bin",
                "--binlog-format=ROW",
                "--server-id=1",
                "--binlog-row-image=FULL",
                "--binlog-row-metadata=FULL",
                "--innodb-buffer-pool-size=64M",
                "--skip-name-resolve",
            ])
            .args(&self.extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        self.child = Some(child);
        let ready = wait(Duration::from_secs(30), || {
            let ok = Command::new("mariadb")
                .args(["-h127.0.0.1", &format!("-P{}", self.port), "-uroot", "-e", "SELECT 1"])
                .output()
                .is_ok_and(|o| o.status.success());
            ok.then_some(())
        });
        assert!(
            ready.is_some(),
            "mariadbd did not start: {}",
            std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
        );
    }

    /// Stops the server cleanly and starts it again on the same port and data.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
            let _ = child.wait();
        }
    }

    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:{}", self.port)
    }

    /// The first column of the first row of a query, as text.
    pub fn query(&self, sql: &str) -> String {
        let out = Command::new("mariadb")
            .args(["-h127.0.0.1", &format!("-P{}", self.port), "-uroot", "-N", "-B", "-e", sql])
            .output()
            .unwrap();
        assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .split('\t')
            .next()
            .unwrap_or_default()
            .to_string()
    }

    /// Runs SQL through the `mariadb` client; panics on any error.
    pub fn sql(&self, sql: &str) {
        mariadb_sql(self.port, sql);
    }
}

/// Runs SQL on the MariaDB at `port` (from another thread than the one owning the server).
pub fn mariadb_sql(port: u16, sql: &str) {
    use std::io::Write;
    let mut child = Command::new("mariadb")
        .args(["-h127.0.0.1", &format!("-P{port}"), "-uroot"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(sql.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "SQL failed: {}", String::from_utf8_lossy(&out.stderr));
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A PostgreSQL 15 cluster with `wal_level=logical`, run as the `postgres` user
/// (PostgreSQL refuses root).
pub struct Postgres {
    dir: tempfile::TempDir,
    pub port: u16,
}

/// What a PostgreSQL started with TLS serves: its certificate and key (PEM), and whether
/// clear-text connections over TCP are refused (`hostssl` only in pg_hba.conf).
pub struct PostgresTls<'a> {
    pub cert: &'a std::path::Path,
    pub key: &'a std::path::Path,
}

impl Postgres {
    pub fn start(wal_level: &str) -> Postgres {
        Postgres::start_with(wal_level, None)
    }

    /// A cluster that takes TCP connections only over TLS, with this certificate.
    pub fn start_tls(wal_level: &str, tls: PostgresTls<'_>) -> Postgres {
        Postgres::start_with(wal_level, Some(tls))
    }

    fn start_with(wal_level: &str, tls: Option<PostgresTls<'_>>) -> Postgres {
        let dir = tempfile::Builder::new().prefix("fg-pg").tempdir().unwrap();
        let as_postgres = |args: &[&str]| {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).args(args);
            c
        };
        run(Command::new("chown").args(["postgres", dir.path().to_str().unwrap()]));
        let data = dir.path().join("data");
        run(&mut as_postgres(&["initdb", "-D", data.to_str().unwrap(), "-A", "trust", "-U", "postgres"]));
        let port = free_port();
        let mut options = format!(
            "-p {port} -k {} -c listen_addresses=127.0.0.1 -c wal_level={wal_level} -c max_replication_slots=10 \
             -c max_wal_senders=10 -c output_plugin_libraries=pgoutput,test_decoding,wal2json -c fsync=off",
            dir.path().display()
        );
        if let Some(tls) = tls {
            // The server reads its key only if the postgres user owns it, mode 0600.
            for (from, to) in [(tls.cert, "server.crt"), (tls.key, "server.key")] {
                let to = data.join(to);
                std::fs::copy(from, &to).unwrap();
                run(Command::new("chown").args(["postgres", to.to_str().unwrap()]));
                run(Command::new("chmod").args(["600", to.to_str().unwrap()]));
            }
            std::fs::write(
                data.join("pg_hba.conf"),
                "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n",
            )
            .unwrap();
            options.push_str(" -c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key");
        }
        let log = dir.path().join("server.log");
        start_daemon(&mut as_postgres(&[
            "pg_ctl",
            "-D",
            data.to_str().unwrap(),
            "-l",
            log.to_str().unwrap(),
            "-o",
            &options,
            "-w",
            "start",
        ]));
        Postgres { dir, port }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs SQL through `psql`; panics on any error.
    pub fn sql(&self, sql: &str) {
        self.sql_in("postgres", sql);
    }

    /// Runs SQL in another database of the cluster.
    pub fn sql_in(&self, database: &str, sql: &str) {
        run(Command::new("psql").args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
            "-d",
            database,
            "-c",
            sql,
        ]));
    }

    /// The first column of the first row of a query, as text.
    pub fn query(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .args(["-X", "-A", "-t", "-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", "-c", sql])
            .output()
            .unwrap();
        assert!(out.status.success(), "{sql}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()
            .unwrap_or_default()
            .split('|')
            .next()
            .unwrap_or_default()
            .to_string()
    }

    /// Puts `lines` first in pg_hba.conf (so they win over the trust lines) and reloads.
    pub fn authenticate_first(&self, lines: &str) {
        let hba = self.data().join("pg_hba.conf");
        let rest = std::fs::read_to_string(&hba).unwrap();
        std::fs::write(&hba, format!("{lines}{rest}")).unwrap();
        self.sql("SELECT pg_reload_conf();");
    }

    /// Stops the cluster (fast mode) and starts it again.
    pub fn restart(&self) {
        let log = self.dir.path().join("server.log");
        start_daemon(Command::new("runuser").args([
            "-u",
            "postgres",
            "--",
            "pg_ctl",
            "-D",
            self.data().to_str().unwrap(),
            "-l",
            log.to_str().unwrap(),
            "-m",
            "fast",
            "-w",
            "restart",
        ]));
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let _ = Command::new("runuser")
            .args(["-u", "postgres", "--", "pg_ctl", "-D", self.data().to_str().unwrap(), "-m", "immediate", "stop"])
            .output();
    }
}

/// Where a binary the harness needs is, or a clear reason to install it.
pub fn tool(name: &str, install: &str) -> PathBuf {
    let found = std::env::var_os("PATH")
        .and_then(|paths| std::env::split_paths(&paths).map(|p| p.join(name)).find(|p| p.is_file()));
    found.unwrap_or_else(|| panic!("`{name}` is not installed: {install} (.ci/run does this)"))
}

/// A Tansu Kafka-protocol broker with in-memory storage.
pub struct Tansu {
    child: Child,
    pub brokers: String,
}

impl Tansu {
    pub fn start() -> Tansu {
        Tansu::start_advertising(None)
    }

    /// A broker that tells clients to reach it at `advertised` (a TLS terminator in
    /// front of it, say) rather than at its own port; `brokers` is still its own.
    pub fn start_advertising(advertised: Option<u16>) -> Tansu {
        let local = crate::repo_root().join("target/test-tools/tansu");
        let binary = if local.is_file() { local } else { tool("tansu", "run scripts/install-test-deps.sh") };
        let port = free_port();
        let url = format!("tcp://127.0.0.1:{port}");
        let advertised = format!("tcp://127.0.0.1:{}", advertised.unwrap_or(port));
        let child = Command::new(binary)
            .args([
                "broker",
                "--listener-url",
                &url,
                "--advertised-listener-url",
                &advertised,
                "--storage-engine",
                "memory://tansu/",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let brokers = format!("127.0.0.1:{port}");
        let up = wait(Duration::from_secs(20), || std::net::TcpStream::connect(&brokers).ok());
        assert!(up.is_some(), "tansu did not start on {brokers}");
        Tansu { child, brokers }
    }
}

impl Drop for Tansu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A Prometheus Alertmanager (Debian's package) with a do-nothing receiver.
pub struct Alertmanager {
    child: Child,
    _dir: tempfile::TempDir,
    pub url: String,
}

impl Alertmanager {
    pub fn start() -> Alertmanager {
        let binary = tool("prometheus-alertmanager", "apt-get install prometheus-alertmanager");
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("alertmanager.yml");
        std::fs::write(&config, "route:\n  receiver: none\n  group_by: [alertname]\nreceivers:\n  - name: none\n")
            .unwrap();
        let port = free_port();
        let child = Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--cluster.listen-address=")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let ready = wait(Duration::from_secs(20), || std::net::TcpStream::connect(("127.0.0.1", port)).ok());
        assert!(ready.is_some(), "alertmanager did not start");
        Alertmanager { child, _dir: dir, url }
    }

    /// `GET /api/v2/alerts`: the active alerts.
    pub fn alerts(&self) -> Vec<serde_json::Value> {
        self.get("alerts")
    }

    /// `GET /api/v2/alerts/groups`: the active alerts as Alertmanager grouped them.
    pub fn groups(&self) -> Vec<serde_json::Value> {
        self.get("alerts/groups")
    }

    fn get(&self, what: &str) -> Vec<serde_json::Value> {
        let agent: ureq::Agent = ureq::Agent::config_builder().http_status_as_error(false).build().into();
        match agent.get(&format!("{}/api/v2/{what}", self.url)).call() {
            Ok(mut r) => serde_json::from_str(&r.body_mut().read_to_string().unwrap_or_default()).unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }
}

impl Drop for Alertmanager {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh database on the machine's shared PostgreSQL (127.0.0.1:5432, trust), named
/// after `prefix` and this test process, dropped when this goes out of scope.
pub struct SharedPostgresDatabase {
    name: String,
}

impl SharedPostgresDatabase {
    pub fn create(prefix: &str) -> SharedPostgresDatabase {
        let name = format!("{prefix}_{}", std::process::id());
        shared_psql(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
        shared_psql(&format!("CREATE DATABASE {name}"));
        SharedPostgresDatabase { name }
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }
}

impl Drop for SharedPostgresDatabase {
    fn drop(&mut self) {
        shared_psql(&format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

fn shared_psql(sql: &str) {
    run(Command::new("psql").args(["-X", "-q", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c", sql]));
}
