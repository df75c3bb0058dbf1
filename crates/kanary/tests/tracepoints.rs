//! Tracepoint counters declared in the config, with no code: counted per container, and an
//! unknown tracepoint stops the agent with a message naming it.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Agent, Container, BUSYBOX};

const WAIT: Duration = Duration::from_secs(60);

const COUNTERS: &str = "[agent]\ninterval = \"1s\"\n\
[[collectors.tracepoint]]\nname = \"tcp_retransmits\"\ntracepoint = \"tcp:tcp_retransmit_skb\"\n\
[[collectors.tracepoint]]\nname = \"sched_forks\"\ntracepoint = \"sched:sched_process_fork\"\n";

#[test]
fn forks_are_counted_in_the_forking_container_only() {
    require_docker!();
    let mut agent = Agent::start_with(COUNTERS);
    let start = agent.wait_for("agent_start", WAIT, |r| r["type"] == "agent_start");
    assert!(
        start["collectors"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c == "tracepoint"),
        "{start}"
    );
    // Every iteration forks a `sleep`.
    let forker = Container::run(
        "forker",
        &[],
        BUSYBOX,
        &["sh", "-c", "while :; do sleep 0.1; done"],
    );
    let idle = Container::run("idle", &[], BUSYBOX, &["sleep", "600"]);
    let stats = agent.wait_for_container("stats", &forker.name, WAIT, |r| {
        r["tracepoints"]["sched_forks"].as_u64().unwrap_or(0) >= 3
    });
    // Every declared counter is reported, zero or not.
    assert!(stats["tracepoints"]["tcp_retransmits"].is_u64(), "{stats}");

    // The idle container forks only while runc starts it (its first records); after that its
    // count stays at 0 while the forker keeps counting.
    let deadline = Instant::now() + WAIT;
    let idle_records = loop {
        let records = agent.records_of("stats", &idle.name);
        if records.len() >= 5 {
            break records;
        }
        assert!(
            Instant::now() < deadline,
            "only {} stats records of the idle container",
            records.len()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    for record in &idle_records[2..] {
        assert_eq!(
            record["tracepoints"]["sched_forks"], 0,
            "a container that does not fork: {record}"
        );
    }
}

#[test]
fn an_unknown_tracepoint_stops_the_agent_naming_it() {
    require_docker!();
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("kanary.toml");
    std::fs::write(
        &config,
        "[[collectors.tracepoint]]\nname = \"sched_forks\"\ntracepoint = \"sched:sched_process_fork\"\n\
         [[collectors.tracepoint]]\nname = \"bogus\"\ntracepoint = \"nosuch:event\"\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_kanary"))
        .arg("run")
        .arg("--config")
        .arg(&config)
        .arg("--events")
        .arg(dir.path().join("events.ndjson"))
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + WAIT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            child.kill().ok();
            panic!("kanary kept running with an unknown tracepoint");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "exit status {}", output.status);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(stderr.contains("nosuch:event"), "{stderr}");
    assert!(stderr.contains("collectors.tracepoint[1]"), "{stderr}");
    assert!(stderr.contains("bogus"), "{stderr}");
}
