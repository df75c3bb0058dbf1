//! Container identity and lifecycle: the kernel-side filter, slot limits and host processes.

mod common;

use std::time::Duration;

use common::{Agent, Container, BUSYBOX};

const WAIT: Duration = Duration::from_secs(30);
const LOOP: &[&str] = &[
    "sh",
    "-c",
    "while true; do cat /etc/hostname > /dev/null; sleep 0.2; done",
];

#[test]
fn a_container_beyond_max_containers_is_reported_not_ignored() {
    require_docker!();
    // One slot, two containers: one of them (or a container of a concurrently running test)
    // finds no slot, and that must show as a loss, not pass silently.
    let mut agent = Agent::start_with("[agent]\ninterval = \"1s\"\nmax_containers = 1\n");
    let first = Container::run("slot-a", &[], BUSYBOX, LOOP);
    let second = Container::run("slot-b", &[], BUSYBOX, LOOP);
    let drops = agent.wait_for(
        "a drops record for a container that found no slot",
        WAIT,
        |r| r["type"] == "drops" && r["collector"] == "containers" && r["container"].is_null(),
    );
    assert!(drops["map_full"].as_u64().unwrap() >= 1, "{drops}");
    let watched = [&first, &second]
        .iter()
        .filter(|c| !agent.records_of("container_start", &c.name).is_empty())
        .count();
    assert!(
        watched <= 1,
        "two containers were watched with max_containers = 1"
    );
}

#[test]
fn host_processes_are_watched_only_when_asked() {
    require_docker!();
    let mut agent = Agent::start_with("[agent]\ninterval = \"1s\"\ninclude_host = true\n");
    let start = agent.wait_for("the host pseudo-container", WAIT, |r| {
        r["type"] == "container_start" && r["container"]["id"] == "host"
    });
    assert_eq!(start["runtime"], "host");
    // This test process itself runs on the host: its syscalls are counted under `host`.
    agent.wait_for_container("stats", "host", WAIT, |r| {
        r["syscalls"]["total"].as_u64().unwrap_or(0) > 0
    });

    let mut plain = Agent::start();
    let container = Container::run("nohost", &[], BUSYBOX, LOOP);
    plain.wait_for_container("stats", &container.name, WAIT, |_| true);
    assert!(plain
        .records()
        .iter()
        .all(|r| r["container"]["id"] != "host"));
}

#[test]
fn stop_and_restart_are_followed() {
    require_docker!();
    let mut agent = Agent::start();
    let container = Container::run("restart", &[], BUSYBOX, LOOP);
    let first = agent.wait_for_container("container_start", &container.name, WAIT, |_| true);
    let id = first["container"]["id"].as_str().unwrap().to_string();
    let stopped = std::process::Command::new("docker")
        .args(["stop", "-t", "1", &container.name])
        .output()
        .unwrap();
    assert!(stopped.status.success());
    agent.wait_for_container("container_stop", &container.name, WAIT, |_| true);
    // The last stats record of the container comes before its container_stop.
    let records = agent.records().to_vec();
    let stop_at = records
        .iter()
        .position(|r| r["type"] == "container_stop" && r["container"]["id"] == id.as_str())
        .unwrap();
    assert!(records[..stop_at]
        .iter()
        .any(|r| r["type"] == "stats" && r["container"]["id"] == id.as_str()));
    let started = std::process::Command::new("docker")
        .args(["start", &container.name])
        .output()
        .unwrap();
    assert!(started.status.success());
    // Same container id, new cgroup: a second container_start.
    agent.wait_for("a second container_start", WAIT, |r| {
        r["type"] == "container_start"
            && r["container"]["id"] == id.as_str()
            && r["cgroup_id"] != first["cgroup_id"]
    });
}
