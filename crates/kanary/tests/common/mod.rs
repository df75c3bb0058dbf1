//! Shared harness of the integration tests: the real `kanary` binary, real Docker containers,
//! and the NDJSON it writes.
//!
//! Tests that need root, eBPF and Docker run when `KANARY_TEST_DOCKER=1` (scripts/test.sh sets
//! it after starting dockerd and building the test images) and say they were skipped otherwise.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Seek, SeekFrom};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The busybox image built by scripts/build-test-images.sh.
pub const BUSYBOX: &str = "kanary-test/busybox:1";
/// The Debian image (nginx, redis, curl, python3) built by scripts/build-test-images.sh.
pub const DEBIAN: &str = "kanary-test/debian:1";

/// Whether the privileged Docker tests are switched on.
pub fn docker_tests_enabled() -> bool {
    std::env::var("KANARY_TEST_DOCKER").is_ok_and(|v| v == "1")
}

/// Returns early from a test that needs root, eBPF and Docker when they are not switched on.
#[macro_export]
macro_rules! require_docker {
    () => {
        if !common::docker_tests_enabled() {
            eprintln!("skipped: needs root, eBPF and Docker; run with KANARY_TEST_DOCKER=1 (scripts/test.sh does)");
            return;
        }
    };
}

/// A name no other test (or concurrent test run) uses.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    format!(
        "kt-{prefix}-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// A running `kanary run`, writing records to a file in its own temporary directory.
pub struct Agent {
    child: Child,
    dir: tempfile::TempDir,
    events: PathBuf,
    read_to: u64,
    records: Vec<Value>,
}

/// A steady workload for tests that let a baseline learn: read a file, sleep, forever.
pub const STEADY_LOOP: &str = "while true; do cat /etc/hostname >/dev/null; sleep 0.1; done";

/// A throw-away image of the busybox content with a label of its own, so its id (the baseline
/// key) is this test's alone: busybox containers of concurrent test runs, which do other things,
/// cannot feed this baseline. Removed on drop, after the containers (declared before them).
pub struct TestImage {
    /// Its reference, `kanary-test/busybox-<test>:<pid>`.
    pub name: String,
}

impl TestImage {
    /// Builds the image for the test named `test`.
    pub fn build(test: &str) -> TestImage {
        let name = format!("kanary-test/busybox-{test}:{}", std::process::id());
        let dockerfile = format!(
            "FROM {BUSYBOX}\nLABEL kanary.test.{test}=\"{}\"\n",
            unique_name("image")
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

    /// Its id (`sha256:…`), the baseline key.
    pub fn id(&self) -> String {
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

/// The configuration tests use unless they pass their own: a short interval.
pub const TEST_CONFIG: &str = "[agent]\ninterval = \"1s\"\n";

impl Agent {
    /// Starts the agent with [`TEST_CONFIG`].
    pub fn start() -> Agent {
        Agent::start_with(TEST_CONFIG)
    }

    /// Starts the agent with `config` (TOML) and waits for its `agent_start` record.
    pub fn start_with(config: &str) -> Agent {
        Agent::start_with_args(config, &[])
    }

    /// Starts the agent with `config` and extra `kanary run` arguments (e.g. `--listen ADDR`),
    /// and waits for its `agent_start` record.
    pub fn start_with_args(config: &str, args: &[&str]) -> Agent {
        let dir = tempfile::tempdir().expect("temporary directory");
        let config_path = dir.path().join("kanary.toml");
        std::fs::write(&config_path, config).expect("writing the test config");
        let events = dir.path().join("events.ndjson");
        let child = Command::new(env!("CARGO_BIN_EXE_kanary"))
            .arg("run")
            .arg("--config")
            .arg(&config_path)
            .arg("--events")
            .arg(&events)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(args)
            .env(
                "KANARY_LOG",
                std::env::var("KANARY_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("starting kanary");
        let mut agent = Agent {
            child,
            dir,
            events,
            read_to: 0,
            records: Vec::new(),
        };
        agent.wait_for("agent_start", Duration::from_secs(60), |r| {
            r["type"] == "agent_start"
        });
        agent
    }

    /// Reads records written since the last call.
    fn read_new(&mut self) {
        let Ok(mut file) = std::fs::File::open(&self.events) else {
            return;
        };
        if file.seek(SeekFrom::Start(self.read_to)).is_err() {
            return;
        }
        let mut reader = BufReader::new(file);
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 0 {
            if !line.ends_with('\n') {
                break; // a partly written line: read it whole next time
            }
            self.read_to += line.len() as u64;
            let record: Value = serde_json::from_str(&line).unwrap_or_else(|error| {
                panic!("kanary wrote a line that is not JSON ({error}): {line}")
            });
            assert!(
                record["type"].is_string() && record["ts"].is_string(),
                "record without type/ts: {line}"
            );
            self.records.push(record);
            line.clear();
        }
    }

    /// Every record read so far.
    pub fn records(&mut self) -> &[Value] {
        self.read_new();
        &self.records
    }

    /// Waits until a record matches `predicate` and returns it; fails the test naming `what`
    /// (with the last records seen) after `timeout`.
    pub fn wait_for(
        &mut self,
        what: &str,
        timeout: Duration,
        predicate: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            self.read_new();
            if let Some(found) = self.records.iter().find(|r| predicate(r)) {
                return found.clone();
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("kanary exited ({status}) before {what}");
            }
            if Instant::now() > deadline {
                let tail: Vec<String> = self.records.iter().rev().take(15).map(short).collect();
                panic!("timed out after {timeout:?} waiting for {what}; last records (newest first):\n{}", tail.join("\n"));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Records of `kind` about the container called `name`.
    pub fn records_of(&mut self, kind: &str, name: &str) -> Vec<Value> {
        self.read_new();
        self.records
            .iter()
            .filter(|r| r["type"] == kind && r["container"]["name"] == name)
            .cloned()
            .collect()
    }

    /// Waits for a record of `kind` about container `name` that matches `predicate`.
    pub fn wait_for_container(
        &mut self,
        kind: &str,
        name: &str,
        timeout: Duration,
        predicate: impl Fn(&Value) -> bool,
    ) -> Value {
        let what = format!("a {kind} record of container {name}");
        self.wait_for(&what, timeout, |r| {
            r["type"] == kind && r["container"]["name"] == name && predicate(r)
        })
    }

    /// Stops the agent with SIGTERM and returns its exit status.
    pub fn stop(&mut self) -> std::process::ExitStatus {
        // SAFETY: kill(2) with a pid we spawned; no memory is involved.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let status = self.child.wait().expect("waiting for kanary");
        self.read_new();
        status
    }

    /// The agent's process id (to read its /proc figures).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The agent's temporary directory.
    pub fn dir(&self) -> &std::path::Path {
        self.dir.path()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

fn short(record: &Value) -> String {
    let text = record.to_string();
    text.chars().take(300).collect()
}

/// A Docker container removed (with `docker rm -f`) when the test ends, pass or fail.
pub struct Container {
    /// Its name.
    pub name: String,
}

impl Container {
    /// `docker run -d --name <unique> <docker_args...> <image> <command...>`.
    pub fn run(prefix: &str, docker_args: &[&str], image: &str, command: &[&str]) -> Container {
        let name = unique_name(prefix);
        let output = Command::new("docker")
            .args(["run", "-d", "--name", &name])
            .args(docker_args)
            .arg(image)
            .args(command)
            .output()
            .expect("running docker");
        assert!(
            output.status.success(),
            "docker run {name} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Container { name }
    }

    /// `docker exec <name> <command...>`, asserting success; returns stdout.
    pub fn exec(&self, command: &[&str]) -> String {
        let output = Command::new("docker")
            .arg("exec")
            .arg(&self.name)
            .args(command)
            .output()
            .expect("docker exec");
        assert!(
            output.status.success(),
            "docker exec {:?} in {} failed: {}",
            command,
            self.name,
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// The container's IP address on the default bridge.
    pub fn ip(&self) -> String {
        let output = Command::new("docker")
            .args([
                "inspect",
                "-f",
                "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}",
                &self.name,
            ])
            .output()
            .expect("docker inspect");
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// The full container id.
    pub fn id(&self) -> String {
        let output = Command::new("docker")
            .args(["inspect", "-f", "{{.Id}}", &self.name])
            .output()
            .expect("docker inspect");
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["rm", "-f", &self.name])
            .output();
    }
}
