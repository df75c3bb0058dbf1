//! The `syscalls` collector against real containers: per-syscall counts, n-grams and trace
//! mode.

mod common;

use std::time::Duration;

use common::{Agent, Container, BUSYBOX};

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn counts_a_containers_syscalls_and_ngrams() {
    require_docker!();
    let mut agent = Agent::start();
    // A loop of getpid-free, recognisable work: cat opens, reads and writes in a tight loop.
    let container = Container::run(
        "syscalls",
        &[],
        BUSYBOX,
        &[
            "sh",
            "-c",
            "while true; do cat /etc/passwd > /dev/null; sleep 0.1; done",
        ],
    );
    let start = agent.wait_for_container("container_start", &container.name, WAIT, |_| true);
    assert_eq!(start["container"]["image"], BUSYBOX);
    assert_eq!(start["runtime"], "docker");
    assert_eq!(start["container"]["id"], container.id());

    let stats = agent.wait_for_container("stats", &container.name, WAIT, |r| {
        r["syscalls"]["counts"]["openat"].as_u64().unwrap_or(0) >= 5
            && r["syscalls"]["counts"]["read"].as_u64().unwrap_or(0) >= 5
    });
    let total = stats["syscalls"]["total"].as_u64().unwrap();
    let listed: u64 = stats["syscalls"]["counts"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert!(listed <= total, "listed {listed} > total {total}");
    let ngrams = &stats["ngrams"];
    assert_eq!(ngrams["n"], 3);
    assert!(ngrams["total"].as_u64().unwrap() > 0);
    let top = ngrams["top"].as_array().unwrap();
    assert!(
        !top.is_empty() && top.iter().all(|g| g["seq"].as_array().unwrap().len() == 3),
        "{ngrams}"
    );

    // Host processes are not watched: no stats record belongs to anything but a container.
    for record in agent.records().iter().filter(|r| r["type"] == "stats") {
        assert_eq!(
            record["container"]["id"].as_str().unwrap().len(),
            64,
            "{record}"
        );
    }

    drop(container);
    agent.wait_for("container_stop", WAIT, |r| {
        r["type"] == "container_stop" && r["container"]["id"] == start["container"]["id"]
    });
}

#[test]
fn trace_mode_streams_raw_syscalls_of_the_chosen_container_only() {
    require_docker!();
    let traced = common::unique_name("traced");
    let config = format!(
        "[agent]\ninterval = \"1s\"\n[collectors.syscalls]\ntrace_containers = [\"{traced}\"]\n"
    );
    let mut agent = Agent::start_with(&config);
    let other = Container::run(
        "untraced",
        &[],
        BUSYBOX,
        &[
            "sh",
            "-c",
            "while true; do cat /etc/hostname > /dev/null; sleep 0.2; done",
        ],
    );
    let output = std::process::Command::new("docker")
        .args([
            "run",
            "-d",
            "--name",
            &traced,
            BUSYBOX,
            "sh",
            "-c",
            "while true; do cat /etc/hostname > /dev/null; sleep 0.2; done",
        ])
        .output()
        .unwrap();
    assert!(output.status.success());
    let traced_container = Container {
        name: traced.clone(),
    };
    let record = agent.wait_for_container("syscall", &traced, WAIT, |r| r["name"] == "openat");
    assert!(record["args"].as_array().unwrap().len() == 6);
    assert!(record["tid"].as_u64().unwrap() > 0);
    agent.wait_for_container("stats", &other.name, WAIT, |r| {
        r["syscalls"]["total"].as_u64().unwrap_or(0) > 0
    });
    assert!(
        agent.records_of("syscall", &other.name).is_empty(),
        "an untraced container's syscalls were streamed"
    );
    drop(traced_container);
}

#[test]
fn containers_running_before_the_agent_are_found() {
    require_docker!();
    let container = Container::run(
        "existing",
        &[],
        BUSYBOX,
        &[
            "sh",
            "-c",
            "while true; do cat /etc/hostname > /dev/null; sleep 0.2; done",
        ],
    );
    // Give the container time to be fully up before the agent looks.
    std::thread::sleep(Duration::from_secs(1));
    let mut agent = Agent::start();
    let start = agent.wait_for_container("container_start", &container.name, WAIT, |_| true);
    assert_eq!(start["existing"], true);
    assert_eq!(start["container"]["id"], container.id());
    agent.wait_for_container("stats", &container.name, WAIT, |r| {
        r["syscalls"]["counts"]["openat"].as_u64().unwrap_or(0) > 0
    });
}

#[test]
fn losses_are_reported_not_silent() {
    require_docker!();
    // A one-page trace ring buffer and an n-gram map of 8 entries cannot keep up with a busy
    // container: both losses must show up, attributed to it.
    let traced = common::unique_name("lossy");
    let config = format!(
        "[agent]\ninterval = \"1s\"\n[collectors.syscalls]\ntrace_containers = [\"{traced}\"]\ntrace_ringbuf_bytes = 4096\nngram_map_entries = 8\n"
    );
    let mut agent = Agent::start_with(&config);
    let output = std::process::Command::new("docker")
        .args([
            "run",
            "-d",
            "--name",
            &traced,
            BUSYBOX,
            "sh",
            "-c",
            "while true; do cat /etc/passwd /etc/group > /dev/null; done",
        ])
        .output()
        .unwrap();
    assert!(output.status.success());
    let _container = Container {
        name: traced.clone(),
    };
    let drops = agent.wait_for("a drops record of the syscalls collector", WAIT, |r| {
        r["type"] == "drops"
            && r["collector"] == "syscalls"
            && r["container"]["name"] == traced.as_str()
    });
    assert!(drops["ringbuf_full"].as_u64().unwrap() + drops["map_full"].as_u64().unwrap() > 0);
    agent.wait_for_container("stats", &traced, WAIT, |r| {
        r["drops"]["syscalls"]["ringbuf_full"].as_u64().unwrap_or(0) > 0
    });
    agent.wait_for_container("stats", &traced, WAIT, |r| {
        r["drops"]["syscalls"]["map_full"].as_u64().unwrap_or(0) > 0
    });
}
