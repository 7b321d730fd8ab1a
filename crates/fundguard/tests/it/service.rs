//! A `fundguard run` child process and small HTTP helpers the service tests share.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::{path, repo_root};

/// A running `fundguard run`, killed when dropped; its stderr is collected line by line.
pub struct Service {
    pub child: Child,
    pub stderr: Arc<Mutex<Vec<String>>>,
}

impl Service {
    pub fn start(config: &Path, envs: &[(&str, &str)]) -> Service {
        Service::spawn(&["run", "--config", path(config)], envs)
    }

    /// Any long-running fundguard command (`demo`, say).
    pub fn spawn(args: &[&str], envs: &[(&str, &str)]) -> Service {
        let mut child = Command::new(env!("CARGO_BIN_EXE_fundguard"))
            .args(args)
            .envs(envs.iter().copied())
            .current_dir(repo_root())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let lines = stderr.clone();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                lines.lock().unwrap().push(line);
            }
        });
        Service { child, stderr }
    }

    /// Waits for a stderr line containing `text` and returns it.
    pub fn wait_for(&self, text: &str) -> String {
        wait(Duration::from_secs(20), || self.stderr.lock().unwrap().iter().find(|l| l.contains(text)).cloned())
            .unwrap_or_else(|| panic!("no `{text}` on stderr: {:?}", self.stderr.lock().unwrap()))
    }

    pub fn url(&self) -> String {
        let line = self.wait_for("listening on http://");
        line[line.find("http://").unwrap()..].trim().to_string()
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn wait<T>(limit: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Some(v) = f() {
            return Some(v);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    None
}

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_millis() as i64
}

pub fn agent() -> ureq::Agent {
    ureq::Agent::config_builder().http_status_as_error(false).build().into()
}

pub fn post(url: &str, token: Option<&str>, body: &str) -> (u16, serde_json::Value) {
    let mut req = agent().post(url).header("Content-Type", "application/json");
    if let Some(t) = token {
        req = req.header("Authorization", &format!("Bearer {t}"));
    }
    let mut resp = req.send(body).unwrap();
    let status = resp.status().as_u16();
    let text = resp.body_mut().read_to_string().unwrap();
    (status, serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text)))
}

/// GET `url` with an API token; the answer as JSON.
pub fn get_json(url: &str, token: &str) -> serde_json::Value {
    let mut response = agent().get(url).header("Authorization", &format!("Bearer {token}")).call().unwrap();
    serde_json::from_str(&response.body_mut().read_to_string().unwrap()).unwrap()
}

pub fn write_config(dir: &Path, body: &str) -> std::path::PathBuf {
    let config = dir.join("fundguard.yaml");
    std::fs::write(&config, body).unwrap();
    config
}

impl Service {
    /// The pid, for signals.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `GET /v1/sources`.
    pub fn sources(&self) -> serde_json::Value {
        let url = format!("{}/v1/sources", self.url());
        let mut resp = agent().get(&url).call().unwrap();
        serde_json::from_str(&resp.body_mut().read_to_string().unwrap()).unwrap()
    }

    /// SIGTERM, then waits for the process to exit.
    pub fn terminate(mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.pid().to_string()]).status();
        let _ = self.child.wait();
    }
}

/// A TCP port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}
