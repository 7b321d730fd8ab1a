//! The deployable artifacts in `deploy/` and the `Dockerfile`: the systemd unit verifies,
//! the compose example's fundguard config runs as written (paths moved out of the
//! container) against a PostgreSQL alert store, and the compose file, the Dockerfile and
//! that config agree on paths and secrets. (Building the image needs a Docker daemon;
//! scripts/test.sh builds it where there is one.)

use std::process::Command;
use std::time::Duration;

use crate::servers::SharedPostgresDatabase;
use crate::service::{Service, agent, wait, write_config};
use crate::{path, repo_root};

fn read(relative: &str) -> String {
    std::fs::read_to_string(repo_root().join(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

#[test]
fn the_systemd_unit_verifies_without_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    // The unit as installed, run against the binary under test.
    let unit =
        read("deploy/systemd/fundguard.service").replace("/usr/local/bin/fundguard", env!("CARGO_BIN_EXE_fundguard"));
    let file = dir.path().join("fundguard.service");
    std::fs::write(&file, unit).unwrap();
    let out = Command::new("systemd-analyze").arg("verify").arg(&file).output().expect("systemd-analyze");
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success() && said.trim().is_empty(), "{said}");
}

#[test]
fn the_compose_example_agrees_with_the_dockerfile_and_its_config() {
    let compose: serde_json::Value = serde_saphyr::from_str(&read("deploy/compose/docker-compose.yml")).unwrap();
    let config = read("deploy/compose/fundguard.yaml");
    let dockerfile = read("Dockerfile");
    let service = &compose["services"]["fundguard"];

    // Built from the repository's Dockerfile; the config mounted where its CMD reads it.
    assert_eq!(service["build"]["context"], "../..");
    assert!(repo_root().join(service["build"]["dockerfile"].as_str().unwrap()).is_file());
    let mounts: Vec<&str> = service["volumes"].as_array().unwrap().iter().filter_map(|v| v.as_str()).collect();
    assert!(mounts.contains(&"./fundguard.yaml:/etc/fundguard/fundguard.yaml:ro"), "{mounts:?}");
    assert!(dockerfile.contains(r#"CMD ["run", "--config", "/etc/fundguard/fundguard.yaml"]"#));
    // The data directory is the image's volume, owned by its user.
    assert!(config.contains("data_dir: /var/lib/fundguard") && dockerfile.contains("VOLUME /var/lib/fundguard"));
    assert!(mounts.iter().any(|m| m.ends_with(":/var/lib/fundguard")), "{mounts:?}");
    // The rules the config names are in the image.
    assert!(config.contains("rules: [/usr/share/fundguard/rules]"));
    assert!(dockerfile.contains("COPY examples/rules /usr/share/fundguard/rules"));
    // Every secret the config reads from the environment is given to the container.
    let environment = service["environment"].as_object().unwrap();
    for variable in ["FG_ALERTS_URL", "FG_ADMIN_PASSWORD"] {
        assert!(config.contains(&format!("_env: {variable}")), "{variable}");
        assert!(environment.contains_key(variable), "{variable}");
    }
    // The listen port is published, to this host only (plain HTTP, no secure cookies).
    assert!(config.contains("listen: 0.0.0.0:8080") && config.contains("secure_cookies: false"));
    assert_eq!(service["ports"][0], "127.0.0.1:8080:8080");
}

/// The compose example's config, with the container's paths moved to this machine, serves
/// the console, is ready, and records the simulated shop's incidents as alerts in
/// PostgreSQL.
#[test]
fn the_compose_example_config_runs_with_a_postgresql_alert_store() {
    let database = SharedPostgresDatabase::create("fg_compose");
    let url = database.url();

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let config = read("deploy/compose/fundguard.yaml")
        .replace("/usr/share/fundguard/rules", path(&repo_root().join("examples/rules")))
        .replace("/var/lib/fundguard", path(&data))
        .replace("0.0.0.0:8080", "127.0.0.1:0");
    let config = write_config(dir.path(), &config);
    let service = Service::start(&config, &[("FG_ALERTS_URL", &url), ("FG_ADMIN_PASSWORD", "pw")]);

    let get = |route: &str| {
        let mut resp = agent().get(&format!("{}{route}", service.url())).call().unwrap();
        (resp.status().as_u16(), resp.body_mut().read_to_string().unwrap())
    };
    assert_eq!(get("/healthz"), (200, "ok".to_string()));
    let ready = wait(Duration::from_secs(30), || (get("/readyz").0 == 200).then_some(()));
    assert!(ready.is_some(), "{:?}", get("/readyz"));
    let alerts = wait(Duration::from_secs(120), || {
        let o = Command::new(env!("CARGO_BIN_EXE_fundguard"))
            .args(["alerts", "--postgres-env", "FG_ALERTS_URL", "list", "--json"])
            .env("FG_ALERTS_URL", &url)
            .output()
            .unwrap();
        let listed = String::from_utf8_lossy(&o.stdout).into_owned();
        (!listed.trim().is_empty()).then_some(listed)
    });
    assert!(alerts.is_some(), "the simulated shop's incidents become alerts in PostgreSQL");
    assert!(data.read_dir().unwrap().next().is_some(), "the data directory is used");
    drop(service);
}
