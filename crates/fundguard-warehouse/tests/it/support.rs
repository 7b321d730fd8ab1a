//! Fresh databases on the shared servers, files, rules and warehouses for the tests.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use fundguard_rules::{Rule, parse_rule};
use fundguard_warehouse::{TableSource, Warehouse};

/// A name no other test (or test run) uses.
fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    format!("fg_{tag}_{}_{nanos}", std::process::id())
}

fn run(command: &mut Command, input: &str) {
    use std::io::Write;
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the database client runs");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{command:?} failed: {}", String::from_utf8_lossy(&out.stderr));
}

/// A fresh database on the shared PostgreSQL (127.0.0.1:5432), dropped afterwards.
pub struct PgDb {
    pub name: String,
}

impl PgDb {
    pub fn create(tag: &str) -> PgDb {
        let name = unique(tag);
        psql("postgres", &format!("CREATE DATABASE {name}"));
        PgDb { name }
    }

    pub fn sql(&self, sql: &str) {
        psql(&self.name, sql);
    }

    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:5432/{}", self.name)
    }

    /// The rows of a query, one line each, columns separated by `|` (`psql -At`).
    pub fn query(&self, sql: &str) -> String {
        let out = Command::new("psql")
            .args(["-h", "127.0.0.1", "-U", "postgres", "-At", "-v", "ON_ERROR_STOP=1", "-d", &self.name, "-c", sql])
            .output()
            .expect("psql runs");
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    }
}

impl Drop for PgDb {
    fn drop(&mut self) {
        psql("postgres", &format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name));
    }
}

fn psql(db: &str, sql: &str) {
    run(Command::new("psql").args(["-h", "127.0.0.1", "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-q", "-d", db]), sql);
}

/// A fresh database on the shared MariaDB (127.0.0.1:3306), dropped afterwards.
pub struct MariaDb {
    pub name: String,
}

impl MariaDb {
    pub fn create(tag: &str) -> MariaDb {
        let name = unique(tag);
        mariadb("", &format!("CREATE DATABASE {name}"));
        MariaDb { name }
    }

    pub fn sql(&self, sql: &str) {
        mariadb(&self.name, sql);
    }

    pub fn url(&self) -> String {
        format!("mysql://root@127.0.0.1:3306/{}", self.name)
    }
}

impl Drop for MariaDb {
    fn drop(&mut self) {
        mariadb("", &format!("DROP DATABASE IF EXISTS {}", self.name));
    }
}

fn mariadb(db: &str, sql: &str) {
    let mut command = Command::new("mariadb");
    command.args(["-h", "127.0.0.1", "-P", "3306", "-u", "root"]);
    if !db.is_empty() {
        command.arg(db);
    }
    run(&mut command, sql);
}

/// Writes the result of `select` (DataFusion SQL) as a Parquet file at `path`.
pub async fn write_parquet(path: &Path, select: &str) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let ctx = datafusion::prelude::SessionContext::new();
    let copy = format!("COPY ({select}) TO '{}' STORED AS PARQUET", path.display());
    ctx.sql(&copy).await.unwrap().collect().await.unwrap();
}

/// A rule from YAML text; panics on any problem.
pub fn rule(yaml: &str) -> Rule {
    let (rule, problems) = parse_rule(Arc::from("test.yaml"), yaml);
    assert!(problems.is_empty(), "{problems:?}");
    rule.unwrap()
}

/// An example rule from `examples/sql-rules/`.
pub fn example(file: &str) -> Rule {
    let path = repo_root().join("examples/sql-rules").join(file);
    let (rule, problems) = parse_rule(Arc::from(path.display().to_string()), &std::fs::read_to_string(&path).unwrap());
    assert!(problems.is_empty(), "{problems:?}");
    rule.unwrap()
}

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).ancestors().nth(2).unwrap().to_path_buf()
}

/// A warehouse from the YAML of a `warehouse:` list.
pub async fn warehouse(yaml: &str, base: &Path) -> Warehouse {
    let sources: Vec<TableSource> = serde_saphyr::from_str(yaml).unwrap();
    Warehouse::open(&sources, base, |_| None).await.unwrap()
}

/// An S3-compatible server (moto's) on a free port, for the object-storage tables.
pub struct S3Server {
    child: std::process::Child,
    pub port: u16,
}

impl S3Server {
    pub fn start() -> S3Server {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let child = Command::new("python3")
            .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("moto's S3 server starts (scripts/install-test-deps.sh installs it)");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(std::time::Instant::now() < deadline, "the S3 server listens within 30 s");
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        S3Server { child, port }
    }

    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Creates a bucket and uploads `files` (key, local file) into it.
    pub fn upload(&self, bucket: &str, files: &[(&str, &Path)]) {
        let puts: Vec<String> = files
            .iter()
            .map(|(key, file)| format!("s3.upload_file({:?}, {bucket:?}, {key:?})", file.display().to_string()))
            .collect();
        let script = format!(
            "import boto3\ns3 = boto3.client('s3', endpoint_url={:?}, aws_access_key_id='test', aws_secret_access_key='test', region_name='us-east-1')\ns3.create_bucket(Bucket={bucket:?})\n{}\n",
            self.endpoint(),
            puts.join("\n")
        );
        let out = Command::new("python3").args(["-c", &script]).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
