//! The deployment artefacts, checked by their ecosystems' own tools (no container engine runs
//! here): hadolint and checkov on the Dockerfile; every Kubernetes overlay rendered by kustomize
//! and checked by kubernetes-validate and checkov; promtool on the Prometheus configuration and
//! rules; docker-compose on the Compose stack. Then the metric names the alerts and the dashboard
//! use, against a live herd; and herd run the way the image runs it: as uid 1001, from a
//! read-only copy of the image's layout where only the data directory is writable.
//!
//! `./scripts/test` installs the tools (PyPI into its virtualenv, Debian's packages); a missing
//! tool fails its test, naming it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use common::{Herd, PATIENCE};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A tool from the test virtualenv (`HERD_TEST_PYTHON`'s directory) or the PATH.
fn tool(name: &str) -> PathBuf {
    if let Ok(python) = std::env::var("HERD_TEST_PYTHON") {
        let beside = Path::new(&python).with_file_name(name);
        if beside.exists() {
            return beside;
        }
    }
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|dir| dir.join(name))
        .find(|p| p.exists());
    found.unwrap_or_else(|| panic!("{name} is not installed; ./scripts/test installs it"))
}

/// Runs `program args` in the repository; panics with its output unless it exits 0.
fn passes(program: &Path, args: &[&str]) -> String {
    let out = Command::new(program)
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", program.display()));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{} {args:?} failed:\n{text}",
        program.display()
    );
    text
}

/// checkov, offline (it would otherwise fetch guideline links from the network).
fn checkov(args: &[&str]) -> String {
    let mut all = vec!["--quiet", "--compact", "--skip-download"];
    all.extend_from_slice(args);
    passes(&tool("checkov"), &all)
}

#[test]
fn the_dockerfile_passes_hadolint_and_checkov() {
    passes(&tool("hadolint"), &["Dockerfile"]);
    let report = checkov(&["-f", "Dockerfile", "--framework", "dockerfile"]);
    assert!(report.contains("Failed checks: 0"), "{report}");
    let dockerfile = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    for needed in [
        "USER 1001:1001",
        "STOPSIGNAL SIGTERM",
        "HEALTHCHECK",
        "\"healthcheck\"",
        "--locked",
        "ENTRYPOINT [\"/usr/local/bin/herd\"]",
    ] {
        assert!(dockerfile.contains(needed), "the Dockerfile lacks {needed}");
    }
    let ignored = std::fs::read_to_string(repo().join(".dockerignore")).unwrap();
    assert!(ignored.lines().any(|l| l.trim() == "target/"), "{ignored}");
}

/// `kubectl kustomize` of one overlay, written to a file for the validators.
fn render(overlay: &str, dir: &Path) -> (PathBuf, String) {
    let text = passes(
        &tool("kubectl"),
        &["kustomize", &format!("deploy/k8s/overlays/{overlay}")],
    );
    // kubectl prints deprecation warnings on stderr, which `passes` appended: keep the YAML.
    let yaml: String = text
        .lines()
        .filter(|l| !l.starts_with("# Warning:"))
        .map(|l| format!("{l}\n"))
        .collect();
    let path = dir.join(format!("{overlay}.yaml"));
    std::fs::write(&path, &yaml).unwrap();
    (path, yaml)
}

#[test]
fn every_kubernetes_overlay_renders_validates_and_passes_checkov() {
    let dir = tempfile::tempdir().unwrap();
    let mut rendered = Vec::new();
    for overlay in ["paper", "live"] {
        let (path, yaml) = render(overlay, dir.path());
        let path = path.to_str().unwrap().to_owned();
        passes(&tool("kubernetes-validate"), &[&path]);
        let report = checkov(&["-f", &path, "--framework", "kubernetes"]);
        assert!(report.contains("Failed checks: 0"), "{overlay}: {report}");
        for needed in [
            "type: Recreate",
            "replicas: 1",
            "readOnlyRootFilesystem: true",
            "runAsNonRoot: true",
            "allowPrivilegeEscalation: false",
            "path: /livez",
            "path: /readyz",
            "startupProbe:",
            "kind: PersistentVolumeClaim",
            "kind: NetworkPolicy",
            "kind: PodDisruptionBudget",
            "kind: ConfigMap",
            &format!("namespace: herd-{overlay}"),
        ] {
            assert!(yaml.contains(needed), "{overlay} lacks {needed}:\n{yaml}");
        }
        rendered.push(yaml);
    }
    // The grace period outlasts herd's own drain deadline.
    let grace: u64 = rendered[0]
        .lines()
        .find_map(|l| l.trim().strip_prefix("terminationGracePeriodSeconds: "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        grace > 20,
        "terminationGracePeriodSeconds {grace} <= shutdown.grace 20 s"
    );
    // Live differs from paper only in namespace, venue URL and the live-trading switch.
    let paper: BTreeSet<&str> = rendered[0].lines().collect();
    let live: BTreeSet<&str> = rendered[1].lines().collect();
    let only_live: Vec<&str> = live.difference(&paper).copied().collect();
    for line in &only_live {
        assert!(
            line.contains("herd-live")
                || line.contains("https://api.alpaca.markets")
                || line.contains("ENABLE_LIVE_TRADING")
                || line.trim() == "value: \"true\"",
            "live differs from paper in {line:?}"
        );
    }
    passes(
        &tool("kubernetes-validate"),
        &["deploy/k8s/secret.template.yaml"],
    );
}

#[test]
fn the_replicated_overlay_runs_leased_replicas_that_reach_redis_and_postgresql() {
    let dir = tempfile::tempdir().unwrap();
    let (path, yaml) = render("replicated", dir.path());
    let path = path.to_str().unwrap().to_owned();
    passes(&tool("kubernetes-validate"), &[&path]);
    let report = checkov(&["-f", &path, "--framework", "kubernetes"]);
    assert!(report.contains("Failed checks: 0"), "{report}");
    for needed in [
        "kind: StatefulSet",
        "replicas: 3",
        "serviceName: herd-replicas",
        "clusterIP: None",
        "kind: PodDisruptionBudget",
        "maxUnavailable: 1",
        "name: HERD__LEASE__ENABLED",
        "fieldPath: metadata.name",
        "port: 6379",
        "port: 5432",
        "volumeClaimTemplates:",
        "readOnlyRootFilesystem: true",
        "namespace: herd-replicated",
    ] {
        assert!(yaml.contains(needed), "replicated lacks {needed}:\n{yaml}");
    }
    for absent in ["kind: Deployment", "kind: PersistentVolumeClaim"] {
        assert!(!yaml.contains(absent), "replicated keeps {absent}:\n{yaml}");
    }
}

#[test]
fn prometheus_configuration_and_alert_rules_pass_promtool() {
    passes(
        &tool("promtool"),
        &["check", "config", "deploy/prometheus/prometheus.yml"],
    );
    let rules = passes(
        &tool("promtool"),
        &["check", "rules", "deploy/prometheus/rules/herd-alerts.yml"],
    );
    assert!(rules.contains("SUCCESS"), "{rules}");
    let text =
        std::fs::read_to_string(repo().join("deploy/prometheus/rules/herd-alerts.yml")).unwrap();
    let alerts = text.matches("- alert:").count();
    let runbooks = text.matches("runbook:").count();
    assert_eq!(alerts, runbooks, "every alert has a runbook line");
}

#[test]
fn the_compose_stack_is_accepted_by_docker_compose() {
    let config = passes(
        &tool("docker-compose"),
        &["-f", "deploy/compose/docker-compose.yml", "config"],
    );
    for service in [
        "herd:",
        "postgres:",
        "redis:",
        "prometheus:",
        "grafana:",
        "jaeger:",
    ] {
        assert!(config.contains(service), "{service} missing:\n{config}");
    }
}

/// Every `herd_…` and `process_…` metric name in `text`, histogram suffixes removed.
fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let bytes = text.as_bytes();
    for prefix in ["herd_", "process_"] {
        let mut at = 0;
        while let Some(found) = text[at..].find(prefix) {
            let start = at + found;
            let boundary = start == 0
                || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
            let end = text[start..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .map_or(text.len(), |n| start + n);
            if boundary {
                let name = &text[start..end];
                let base = ["_bucket", "_sum", "_count"]
                    .iter()
                    .find_map(|s| name.strip_suffix(s))
                    .unwrap_or(name);
                names.insert(base.to_owned());
            }
            at = end;
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread")]
async fn every_metric_the_alerts_and_the_dashboard_use_is_served_live() {
    let rules =
        std::fs::read_to_string(repo().join("deploy/prometheus/rules/herd-alerts.yml")).unwrap();
    let dashboard =
        std::fs::read_to_string(repo().join("deploy/grafana/dashboards/herd.json")).unwrap();
    let wanted: BTreeSet<String> = metric_names(&rules)
        .into_iter()
        .chain(metric_names(&dashboard))
        .collect();
    assert!(wanted.len() >= 15, "{wanted:?}");
    // Orders, a breaker's state and ticks all appear once herd has traded a little; the
    // lease series once it drives its account by lease (against the test Redis).
    let redis =
        std::env::var("HERD_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let prefix = format!("herd-test-deploy-{}", std::process::id());
    let mut herd = Herd::start(
        &common::fast_eager_momentum("m"),
        &[
            ("HERD__SIM__START", common::BUYING_MINUTE),
            ("HERD__REDIS__URL", redis.as_str()),
            ("HERD__REDIS__PREFIX", prefix.as_str()),
            ("HERD__LEASE__ENABLED", "true"),
        ],
    );
    herd.wait_log(|v| v["event"] == "order_fill");
    let deadline = Instant::now() + PATIENCE;
    loop {
        let text = reqwest::get(format!("{}/metrics", herd.http))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let live = metric_names(&text);
        let missing: Vec<&String> = wanted.iter().filter(|w| !live.contains(*w)).collect();
        if missing.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not served within {PATIENCE:?}: {missing:?}\n{text}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

/// herd the way its image runs it: the image's file layout in a temporary root, every file
/// owned by root and read-only, `/var/lib/herd/data` the one directory uid 1001 may write.
struct ImageLayout {
    root: tempfile::TempDir,
}

impl ImageLayout {
    fn build() -> ImageLayout {
        let root = tempfile::tempdir().unwrap();
        let r = root.path();
        for dir in ["usr/local/bin", "etc/herd/config", "var/lib/herd/data"] {
            std::fs::create_dir_all(r.join(dir)).unwrap();
        }
        std::fs::copy(env!("CARGO_BIN_EXE_herd"), r.join("usr/local/bin/herd")).unwrap();
        for file in ["default.toml", "production.toml"] {
            std::fs::copy(
                repo().join("config").join(file),
                r.join("etc/herd/config").join(file),
            )
            .unwrap();
        }
        // Read-only for everyone but root; the data directory belongs to uid 1001.
        passes(Path::new("chmod"), &["-R", "a-w,a+rX", r.to_str().unwrap()]);
        passes(Path::new("chmod"), &["0755", r.to_str().unwrap()]);
        let data = r.join("var/lib/herd/data");
        passes(Path::new("chown"), &["1001:1001", data.to_str().unwrap()]);
        passes(Path::new("chmod"), &["0700", data.to_str().unwrap()]);
        ImageLayout { root }
    }

    fn path(&self, inside: &str) -> PathBuf {
        self.root.path().join(inside)
    }

    /// `herd ARGS` as uid 1001, in the image's working directory with the image's environment.
    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("setpriv");
        cmd.args(["--reuid=1001", "--regid=1001", "--clear-groups", "--"])
            .arg(self.path("usr/local/bin/herd"))
            .args(args)
            .current_dir(self.path("etc/herd"))
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("HERD_ENV", "production")
            .env("HERD__DATA__DIR", self.path("var/lib/herd/data"))
            .env("HERD__HTTP__BIND", "127.0.0.1")
            .env("HERD__HTTP__PORT", "0")
            .env("HERD__SIM__START", common::BUYING_MINUTE);
        cmd
    }
}

#[test]
fn herd_runs_as_uid_1001_from_a_read_only_image_layout_trades_and_drains() {
    assert_eq!(
        Command::new("id").arg("-u").output().unwrap().stdout,
        b"0\n",
        "this test switches to uid 1001 and needs to run as root (CI and the dev machines do)"
    );
    let image = ImageLayout::build();
    let mut child = image
        .command(&["run"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = std::sync::mpsc::channel::<serde_json::Value>();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(v) = serde_json::from_str(&line) {
                let _ = tx.send(v);
            }
        }
    });
    let stderr = child.stderr.take().unwrap();
    let errors = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .collect::<Vec<_>>()
    });
    let deadline = Instant::now() + PATIENCE;
    let wait = |what: &str, pred: &dyn Fn(&serde_json::Value) -> bool| loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(v) if pred(&v) => return v,
            Ok(_) => {}
            Err(_) => panic!("no {what} within {PATIENCE:?}"),
        }
    };
    let listening = wait("http listening", &|v| v["message"] == "http listening");
    let addr = listening["addr"].as_str().unwrap().to_owned();
    // The image's HEALTHCHECK, run the same way.
    let health = image
        .command(&["healthcheck", "--url", &format!("http://{addr}/livez")])
        .output()
        .unwrap();
    assert!(
        health.status.success(),
        "{}",
        String::from_utf8_lossy(&health.stderr)
    );
    let order = wait("an order", &|v| v["event"] == "order");
    assert!(order["client_order_id"].is_string(), "{order}");
    passes(Path::new("kill"), &["-TERM", &child.id().to_string()]);
    let summary = wait("the drain's summary", &|v| v["event"] == "shutdown_summary");
    let status = child.wait().unwrap();
    assert_eq!(
        status.code(),
        Some(0),
        "{summary}\n{:?}",
        errors.join().unwrap()
    );
    // Only the data directory was written: the journal is there.
    assert!(image.path("var/lib/herd/data/journal.sqlite").exists());
    // A healthcheck with nothing listening fails, as the image's HEALTHCHECK must.
    let down = image
        .command(&[
            "healthcheck",
            "--url",
            &format!("http://{addr}/livez"),
            "--timeout",
            "1s",
        ])
        .output()
        .unwrap();
    assert_eq!(down.status.code(), Some(1));
}
