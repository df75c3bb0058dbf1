//! The `process` collector against real containers: exec (path, argv, parent), fork, exit
//! codes, argv truncation and the per-container lifecycle counters.

mod common;

use std::time::{Duration, Instant};

use common::{Agent, Container, BUSYBOX};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

fn exec_with_argv(record: &Value, argv: &[&str]) -> bool {
    record["argv"].as_array().is_some_and(|args| {
        args.iter()
            .map(|a| a.as_str())
            .eq(argv.iter().map(|a| Some(*a)))
    })
}

/// Waits until `process.<field>` added up over the container's stats records reaches `min`.
fn wait_for_total(agent: &mut Agent, name: &str, field: &str, min: u64) -> u64 {
    let deadline = Instant::now() + WAIT;
    loop {
        let stats = agent.records_of("stats", name);
        let total = stats
            .iter()
            .map(|r| r["process"][field].as_u64().unwrap_or(0))
            .sum();
        if total >= min {
            return total;
        }
        assert!(
            Instant::now() < deadline,
            "process.{field} of {name} stayed at {total} < {min}: {stats:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn reports_exec_fork_and_exit_of_container_processes() {
    require_docker!();
    let mut agent = Agent::start();
    // `/bin/busybox ...` with a path makes the shell fork and exec rather than run a builtin.
    // The exit code comes from a child shell, so the container outlives it and its exit record
    // cannot race the container's removal.
    let container = Container::run(
        "process",
        &[],
        BUSYBOX,
        &[
            "sh",
            "-c",
            "sleep 1; /bin/busybox printf kanary-marker-%s 42; /bin/busybox sh -c 'exit 3'; sleep 600",
        ],
    );
    let printf_argv = ["/bin/busybox", "printf", "kanary-marker-%s", "42"];
    let exec = agent.wait_for_container("exec", &container.name, WAIT, |r| {
        exec_with_argv(r, &printf_argv)
    });
    assert_eq!(exec["path"], "/bin/busybox", "{exec}");
    assert_eq!(exec["argv_truncated"], false, "{exec}");
    assert_eq!(exec["uid"], 0, "{exec}");
    assert_eq!(exec["gid"], 0, "{exec}");
    assert_eq!(exec["parent_comm"], "sh", "{exec}");
    assert_eq!(exec["comm"], "busybox", "{exec}");
    let pid = exec["pid"].as_u64().unwrap();
    let ppid = exec["ppid"].as_u64().unwrap();
    assert!(pid > 0 && ppid > 0 && ppid != pid, "{exec}");

    // The shell forked the process that exec'd printf: a fork record with the same pid and
    // parent.
    let fork = agent.wait_for_container("fork", &container.name, WAIT, |r| r["pid"] == pid);
    assert_eq!(fork["ppid"], ppid, "{fork}");
    assert_eq!(fork["parent_comm"], "sh", "{fork}");

    // The child shell that exits 3: its exec record names it, its exit record carries the code.
    let exiting = agent.wait_for_container("exec", &container.name, WAIT, |r| {
        exec_with_argv(r, &["/bin/busybox", "sh", "-c", "exit 3"])
    });
    let exiting_pid = exiting["pid"].as_u64().unwrap();
    let exit = agent.wait_for_container("exit", &container.name, WAIT, |r| r["pid"] == exiting_pid);
    assert_eq!(exit["exit_code"], 3, "{exit}");
    assert!(exit["signal"].is_null(), "{exit}");
    // printf exited normally too.
    let printf_exit = agent.wait_for_container("exit", &container.name, WAIT, |r| r["pid"] == pid);
    assert_eq!(printf_exit["exit_code"], 0, "{printf_exit}");

    // The counters saw the execs, forks and exits (interval deltas, so they are added up).
    let execs = wait_for_total(&mut agent, &container.name, "execs", 3);
    assert!(execs >= 3, "the entrypoint, printf and the child sh");
    wait_for_total(&mut agent, &container.name, "forks", 2);
    wait_for_total(&mut agent, &container.name, "exits", 2);
}

#[test]
fn a_long_argv_is_cut_and_flagged() {
    require_docker!();
    let mut agent = Agent::start();
    let long = "x".repeat(300);
    let script = format!("sleep 1; /bin/busybox echo kanary-long {long} > /dev/null; sleep 600");
    let container = Container::run("argv", &[], BUSYBOX, &["sh", "-c", &script]);
    let exec = agent.wait_for_container("exec", &container.name, WAIT, |r| {
        r["argv"][1] == "echo" && r["argv"][2] == "kanary-long"
    });
    assert_eq!(exec["argv_truncated"], true, "{exec}");
    let argv: Vec<&str> = exec["argv"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert_eq!(argv.len(), 4, "{exec}");
    assert_eq!(argv[0], "/bin/busybox");
    // The cut falls inside the long argument: a strict, non-empty prefix of it is kept.
    assert!(
        !argv[3].is_empty() && argv[3].len() < long.len() && long.starts_with(argv[3]),
        "{exec}"
    );
    // Everything kept fits the kernel bound (256 bytes of NUL-separated arguments).
    let kept: usize = argv.iter().map(|a| a.len() + 1).sum();
    assert!(kept <= 257, "{kept} bytes kept: {exec}");
}
