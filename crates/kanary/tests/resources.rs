//! The `resources` collector against real containers: CPU, memory, block IO, pids and OOM
//! kills as read from cgroupfs.

mod common;

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Agent, Container, BUSYBOX, DEBIAN};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);
const MIB: u64 = 1024 * 1024;

fn resources(record: &Value) -> &Value {
    &record["resources"]
}

fn figure(record: &Value, name: &str) -> u64 {
    resources(record)[name].as_u64().unwrap_or(0)
}

#[test]
fn a_busy_loop_shows_cpu_use() {
    require_docker!();
    let mut agent = Agent::start();
    let container = Container::run("cpu", &[], BUSYBOX, &["sh", "-c", "while :; do :; done"]);
    // A container's first interval is shorter than `interval_s` (it started mid-interval), so
    // compare the figures from a later one.
    let first = agent.wait_for_container("stats", &container.name, WAIT, |_| true);
    let stats = agent.wait_for_container("stats", &container.name, WAIT, |r| {
        r["ts"] != first["ts"] && resources(r)["cpu_percent"].as_f64().unwrap_or(0.0) > 50.0
    });
    let percent = resources(&stats)["cpu_percent"].as_f64().unwrap();
    // One thread cannot use much more than one core: a unit mix-up (µs vs ns) would.
    assert!(percent <= 150.0, "one busy thread at {percent}%: {stats}");
    let interval = stats["interval_s"].as_f64().unwrap();
    assert!(
        figure(&stats, "cpu_ns") as f64 > 0.4 * interval * 1e9,
        "cpu_ns does not match cpu_percent: {stats}"
    );
}

#[test]
fn an_allocation_shows_in_memory_use() {
    require_docker!();
    let mut agent = Agent::start();
    let container = Container::run(
        "memory",
        &[],
        DEBIAN,
        &[
            "python3",
            "-c",
            "b = bytearray(200*1024*1024); import time; time.sleep(60)",
        ],
    );
    let stats = agent.wait_for_container("stats", &container.name, WAIT, |r| {
        figure(r, "memory_bytes") >= 200 * MIB
    });
    // A few hundred MiB at most: the interpreter plus the buffer.
    assert!(figure(&stats, "memory_bytes") < 400 * MIB, "{stats}");
    assert!(
        resources(&stats)["memory_limit_bytes"].is_null(),
        "no --memory: unlimited: {stats}"
    );
}

#[test]
fn direct_writes_show_as_block_io() {
    require_docker!();
    let mut agent = Agent::start();
    // cgroup v1 block IO is accounted by blk-throttle, which 6.x kernels only switch on for a
    // disk once some cgroup has a throttle rule on it; a rule far above what the disk does
    // switches it on without slowing anything. (cgroup v2 io.stat needs no such rule.)
    let rule = docker_disk().map(|disk| format!("{}:1gb", disk.display()));
    let docker_args: Vec<&str> = match &rule {
        Some(rule) => vec!["--device-write-bps", rule],
        None => vec![],
    };
    let container = Container::run(
        "io",
        &docker_args,
        BUSYBOX,
        &[
            "sh",
            "-c",
            "sleep 2; dd if=/dev/zero of=/io-test bs=1M count=64 oflag=direct; sleep 600",
        ],
    );
    let deadline = Instant::now() + WAIT;
    let (written, ops) = loop {
        let records = agent.records_of("stats", &container.name);
        let written: u64 = records.iter().map(|r| figure(r, "io_write_bytes")).sum();
        let ops: u64 = records.iter().map(|r| figure(r, "io_write_ops")).sum();
        if written >= 64 * MIB {
            break (written, ops);
        }
        assert!(
            Instant::now() < deadline,
            "only {written} bytes written seen after {WAIT:?} (throttle rule: {rule:?}); last: {:?}",
            records.last()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    // The container writes nothing else to disk: the 64 writes of 1 MiB, nothing much more.
    assert!(written < 80 * MIB, "{written} bytes for a 64 MiB dd");
    assert!(
        ops >= 64,
        "{ops} write operations for 64 direct writes of 1 MiB"
    );
}

#[test]
fn pids_count_the_containers_processes() {
    require_docker!();
    let mut agent = Agent::start();
    let sleeps = 4;
    let container = Container::run(
        "pids",
        &[],
        BUSYBOX,
        &[
            "sh",
            "-c",
            "sleep 600 & sleep 600 & sleep 600 & sleep 600 & wait",
        ],
    );
    // The shell and its sleeps.
    agent.wait_for_container("stats", &container.name, WAIT, |r| {
        figure(r, "pids") > sleeps
    });
}

#[test]
fn an_oom_kill_is_counted() {
    require_docker!();
    let mut agent = Agent::start();
    // The shell survives the kill of its python child, so the container (and its cgroup) stays.
    let container = Container::run(
        "oom",
        &["--memory", "32m"],
        DEBIAN,
        &[
            "sh",
            "-c",
            "sleep 2; python3 -c 'b = bytearray(100*1024*1024)'; sleep 600",
        ],
    );
    let stats = agent.wait_for_container("stats", &container.name, WAIT, |r| {
        figure(r, "oom_kills") >= 1
    });
    assert_eq!(
        resources(&stats)["memory_limit_bytes"].as_u64(),
        Some(32 * MIB),
        "{stats}"
    );
    // One python, one kill: counters are deltas, not running totals.
    let kills: u64 = agent
        .records_of("stats", &container.name)
        .iter()
        .map(|r| figure(r, "oom_kills"))
        .sum();
    assert_eq!(kills, 1);
}

/// The whole disk holding Docker's data (`/dev/vda`), when it is a real block device.
fn docker_disk() -> Option<PathBuf> {
    let output = Command::new("docker")
        .args(["info", "-f", "{{.DockerRootDir}}"])
        .output()
        .ok()?;
    let root = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let dev = std::fs::metadata(&root).ok()?.dev();
    let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
    let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
    let sys = std::fs::canonicalize(format!("/sys/dev/block/{major}:{minor}")).ok()?;
    // Throttle rules go on whole disks: for a partition, take the disk it belongs to.
    let disk = if sys.join("partition").exists() {
        sys.parent()?.to_path_buf()
    } else {
        sys
    };
    let name = disk.file_name()?;
    let path = Path::new("/dev").join(name);
    path.exists().then_some(path)
}
