//! The HTTP endpoint on a live agent: a real Prometheus scrapes `/metrics` (with the bearer
//! token), and every PromQL query of every panel of every dashboard under `deploy/grafana`
//! must return data; the JSON API answers with the fields `docs/api.md` promises.
//!
//! Needs the Debian package `prometheus` (`scripts/install-deps.sh --test`).

mod common;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{Agent, Container, BUSYBOX, TEST_CONFIG};
use serde_json::Value;

const TOKEN: &str = "kanary-test-token";
const WAIT: Duration = Duration::from_secs(90);

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// `GET url` with an optional bearer token: (status, body).
fn get(url: &str, token: Option<&str>) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .into();
    let mut request = agent.get(url);
    if let Some(token) = token {
        request = request.header("Authorization", &format!("Bearer {token}"));
    }
    match request.call() {
        Ok(mut response) => {
            let status = response.status().as_u16();
            let body = response.body_mut().read_to_string().unwrap_or_default();
            (status, body)
        }
        Err(error) => (0, error.to_string()),
    }
}

fn get_json(url: &str) -> Value {
    let (status, body) = get(url, Some(TOKEN));
    assert_eq!(status, 200, "{url}: {body}");
    serde_json::from_str(&body).unwrap_or_else(|e| panic!("{url}: not JSON ({e}): {body}"))
}

/// A Prometheus server, killed on drop.
struct Prometheus {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    fn start(target: &str) -> Prometheus {
        let dir = tempfile::tempdir().expect("temporary directory");
        let token_file = dir.path().join("token");
        std::fs::write(&token_file, TOKEN).unwrap();
        let config = dir.path().join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: kanary\n    authorization:\n      type: Bearer\n\
                 \x20     credentials_file: {}\n    static_configs:\n      - targets: [\"{target}\"]\n",
                token_file.display()
            ),
        )
        .unwrap();
        let port = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("log")).unwrap())
            .spawn()
            .expect("starting prometheus (scripts/install-deps.sh --test installs it)");
        Prometheus {
            child,
            url: format!("http://127.0.0.1:{port}"),
            _dir: dir,
        }
    }

    /// The result vector of an instant query (empty on any error).
    fn query(&self, promql: &str) -> Vec<Value> {
        let mut url = format!("{}/api/v1/query?query=", self.url);
        for byte in promql.bytes() {
            if byte.is_ascii_alphanumeric() || b"-_.~".contains(&byte) {
                url.push(byte as char);
            } else {
                url.push_str(&format!("%{byte:02X}"));
            }
        }
        let (status, body) = get(&url, None);
        if status != 200 {
            return Vec::new();
        }
        let value: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        value["data"]["result"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every dashboard under deploy/grafana/dashboards: (file, panel title, expr).
fn dashboard_queries() -> Vec<(String, String, String)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/grafana/dashboards");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("deploy/grafana/dashboards")
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    assert_eq!(files.len(), 4, "four dashboards: {files:?}");
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let dashboard: Value = serde_json::from_str(&text)
            .unwrap_or_else(|e| panic!("{}: not JSON: {e}", file.display()));
        let name = file.file_name().unwrap().to_string_lossy().to_string();
        let panels = dashboard["panels"].as_array().expect("panels");
        assert!(!panels.is_empty(), "{name}: no panels");
        for panel in panels {
            let targets = panel["targets"].as_array().expect("targets");
            assert!(!targets.is_empty(), "{name}: a panel without queries");
            for target in targets {
                let expr = target["expr"].as_str().expect("expr").to_string();
                out.push((name.clone(), panel["title"].to_string(), expr));
            }
        }
    }
    out
}

#[test]
fn prometheus_answers_every_dashboard_query_and_the_api_its_contract() {
    require_docker!();
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let mut agent = Agent::start_with_args(TEST_CONFIG, &["--listen", &addr, "--token", TOKEN]);
    // The container connects, refused, to a port nothing listens on in another test container
    // (both on this host's docker bridge): a failed connect, an edge between two nodes.
    let peer = Container::run("promdb", &[], BUSYBOX, &["sleep", "3600"]);
    let script = format!(
        "while true; do cat /etc/hostname > /dev/null; \
         nc -w 1 {} 9 < /dev/null 2>/dev/null; sleep 0.3; done",
        peer.ip()
    );
    let container = Container::run("prom", &[], BUSYBOX, &["sh", "-c", &script]);
    let id = container.id();
    agent.wait_for_container("stats", &container.name, WAIT, |r| {
        r["syscalls"]["total"].as_u64().unwrap_or(0) > 0
    });
    agent.wait_for("learning", WAIT, |r| {
        r["type"] == "learning" && r["image"] == BUSYBOX
    });

    // Read-only and token-checked.
    let base = format!("http://{addr}");
    let (status, body) = get(&format!("{base}/api/overview"), None);
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("\"error\""), "{body}");
    let (status, _) = get(&format!("{base}/metrics"), Some("wrong"));
    assert_eq!(status, 401);

    let prometheus = Prometheus::start(&addr);
    let queries = dashboard_queries();
    let deadline = Instant::now() + WAIT;
    let mut failing;
    loop {
        failing = Vec::new();
        for (file, title, expr) in &queries {
            let promql = expr
                .replace("$container", &container.name)
                .replace("$__rate_interval", "10s");
            if prometheus.query(&promql).is_empty() {
                failing.push(format!("{file} {title}: {promql}"));
            }
        }
        if failing.is_empty() || Instant::now() > deadline {
            break;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    assert!(
        failing.is_empty(),
        "{} of {} dashboard queries returned nothing:\n{}",
        failing.len(),
        queries.len(),
        failing.join("\n")
    );
    // The container variable's query lists the test container.
    let names = get_json(&format!(
        "{}/api/v1/label/container/values?match[]=kanary_container_info",
        prometheus.url
    ));
    assert!(
        names["data"]
            .as_array()
            .is_some_and(|n| n.iter().any(|n| n == container.name.as_str())),
        "{names}"
    );
    // Per-container series carry the labels, and the top syscalls are bounded.
    let info = prometheus.query(&format!("kanary_container_info{{id=\"{id}\"}}"));
    assert_eq!(info.len(), 1, "{info:?}");
    assert_eq!(info[0]["metric"]["container"], container.name.as_str());
    assert_eq!(info[0]["metric"]["image"], BUSYBOX);
    assert_eq!(info[0]["metric"]["state"], "learning");
    let per_syscall = prometheus.query(&format!(
        "kanary_container_syscall_calls_total{{id=\"{id}\"}}"
    ));
    assert!(
        !per_syscall.is_empty() && per_syscall.len() <= 10,
        "{per_syscall:?}"
    );

    // The JSON API on the live agent.
    let overview = get_json(&format!("{base}/api/overview"));
    assert_eq!(overview["agent"]["version"], env!("CARGO_PKG_VERSION"));
    assert!(overview["agent"]["rss_bytes"].as_u64().unwrap_or(0) > 1_000_000);
    assert!(overview["agent"]["records_per_s"].as_f64().unwrap_or(0.0) > 0.0);
    assert!(overview["agent"]["drops"].is_object());
    let c = overview["containers"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["id"] == id.as_str()))
        .unwrap_or_else(|| panic!("{id} not in {overview}"))
        .clone();
    assert_eq!(c["name"], container.name.as_str());
    assert_eq!(c["image"], BUSYBOX);
    assert!(
        c["image_id"]
            .as_str()
            .is_some_and(|i| i.starts_with("sha256:")),
        "{c}"
    );
    assert_eq!(c["state"], "learning");
    assert!(
        c["learning"]["progress"]
            .as_f64()
            .is_some_and(|p| (0.0..=1.0).contains(&p)),
        "{c}"
    );
    assert!(
        c["learning"]["eta_s"].as_f64().is_some_and(|s| s > 0.0),
        "{c}"
    );
    assert!(
        c["sparkline"].as_array().is_some_and(|s| !s.is_empty()),
        "{c}"
    );
    assert!(c["score"]["threshold"].as_f64().is_some(), "{c}");
    assert_eq!(c["running"], true);
    assert!(overview["alerts"].is_array());

    let detail = get_json(&format!("{base}/api/containers/{id}"));
    assert_eq!(detail["container"]["id"], id.as_str());
    let ts = detail["series"]["ts"].as_array().expect("series.ts");
    assert!(!ts.is_empty());
    for figure in ["cpu_percent", "memory_bytes", "syscalls"] {
        let values = detail["series"]["metrics"][figure]
            .as_array()
            .unwrap_or_else(|| panic!("series.metrics.{figure}: {detail}"));
        assert_eq!(values.len(), ts.len(), "{figure} aligned with ts");
    }
    assert!(detail["series"]["scores"].is_object());
    assert!(detail["series"]["thresholds"].is_object());
    assert_eq!(detail["baseline"], Value::Null, "still learning");
    assert!(detail["alerts"].is_array());

    agent.wait_for_container("connect", &container.name, WAIT, |_| true);
    let network = get_json(&format!("{base}/api/network"));
    assert!(
        network["nodes"].as_array().is_some_and(|n| n
            .iter()
            .any(|n| n["id"] == id.as_str() && n["running"] == true)),
        "{network}"
    );
    let edge = network["edges"]
        .as_array()
        .and_then(|e| {
            e.iter()
                .find(|e| e["from"] == id.as_str() && e["port"] == 9)
        })
        .unwrap_or_else(|| panic!("no edge from the container to port 9: {network}"))
        .clone();
    assert_eq!(edge["to"], peer.id().as_str(), "the peer container: {edge}");
    assert_eq!(edge["protocol"], "tcp");
    assert!(edge["count"].as_u64().unwrap_or(0) >= 1);
    assert!(edge["failed"].as_u64().unwrap_or(0) >= 1, "refused: {edge}");
    assert_eq!(edge["authorized"], true);

    let alerts = get_json(&format!(
        "{base}/api/alerts?container={}&limit=5",
        container.name
    ));
    assert!(alerts.is_array(), "{alerts}");
    let (status, body) = get(&format!("{base}/api/alerts?limit=x"), Some(TOKEN));
    assert_eq!(status, 400, "{body}");
    let (status, _) = get(&format!("{base}/api/alerts/no-such-incident"), Some(TOKEN));
    assert_eq!(status, 404);
    let (status, _) = get(
        &format!("{base}/api/containers/{}", "f".repeat(64)),
        Some(TOKEN),
    );
    assert_eq!(status, 404);

    // A stopped container's series leave /metrics.
    drop(container);
    agent.wait_for("container_stop", WAIT, |r| {
        r["type"] == "container_stop" && r["container"]["id"] == id.as_str()
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (_, text) = get(&format!("{base}/metrics"), Some(TOKEN));
        if !text.contains(&id) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "series of a stopped container stayed"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let status = agent.stop();
    assert!(status.success() || status.code().is_none(), "{status:?}");
}
