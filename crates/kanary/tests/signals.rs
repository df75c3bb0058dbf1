//! The `signals` collector against real containers: a process crashing on SIGSEGV, one killed
//! with SIGKILL, and the per-container counts.

mod common;

use std::time::Duration;

use common::{Agent, Container, BUSYBOX};

const WAIT: Duration = Duration::from_secs(30);

#[test]
fn reports_a_crash_and_a_kill_with_their_counts() {
    require_docker!();
    let mut agent = Agent::start();
    // A child shell signals itself (the container's init, pid 1 in its namespace, would ignore
    // it), then the shell kills a background sleep with SIGKILL once it has surely exec'd.
    let container = Container::run(
        "signals",
        &[],
        BUSYBOX,
        &[
            "sh",
            "-c",
            "sleep 1; sh -c 'kill -SEGV $$'; sleep 600 & sleep 1; kill -9 $!; sleep 600",
        ],
    );

    let segv = agent.wait_for_container("signal", &container.name, WAIT, |r| r["signal"] == 11);
    assert_eq!(segv["signal_name"], "SIGSEGV", "{segv}");
    assert_eq!(segv["comm"], "sh", "{segv}");
    let pid = segv["pid"].as_u64().unwrap();
    assert!(pid > 0, "{segv}");
    assert_eq!(segv["sender_pid"], pid, "it signalled itself: {segv}");
    // It is the child shell (the process collector saw it exec), not the container's init.
    let child = agent.wait_for_container("exec", &container.name, WAIT, |r| {
        r["argv"][2] == "kill -SEGV $$"
    });
    assert_eq!(child["pid"], pid, "{child}");
    // The process collector saw the same process die of it.
    let exit = agent.wait_for_container("exit", &container.name, WAIT, |r| r["pid"] == pid);
    assert_eq!(exit["signal"], 11, "{exit}");
    assert!(exit["exit_code"].is_null(), "{exit}");

    let kill = agent.wait_for_container("signal", &container.name, WAIT, |r| r["signal"] == 9);
    assert_eq!(kill["signal_name"], "SIGKILL", "{kill}");
    assert_eq!(kill["comm"], "sleep", "{kill}");
    let killed = kill["pid"].as_u64().unwrap();
    assert!(killed > 0 && killed != pid, "{kill}");
    // The sender is the container's init shell, which started the sleep.
    let init = agent.wait_for_container("exec", &container.name, WAIT, |r| {
        r["argv"][2]
            .as_str()
            .is_some_and(|script| script.starts_with("sleep 1; sh -c"))
    });
    assert_eq!(kill["sender_pid"], init["pid"], "{kill} {init}");

    // Counts are interval deltas: add them up over every stats record of the container.
    let count = |agent: &mut Agent, name: &str| -> u64 {
        agent
            .records_of("stats", &container.name)
            .iter()
            .map(|r| r["signals"]["counts"][name].as_u64().unwrap_or(0))
            .sum()
    };
    agent.wait_for_container("stats", &container.name, WAIT, |r| {
        r["signals"]["counts"]["SIGKILL"].as_u64().unwrap_or(0) >= 1
    });
    assert_eq!(count(&mut agent, "SIGSEGV"), 1);
    assert_eq!(count(&mut agent, "SIGKILL"), 1);
    // Only the watched signals are counted (the shell's SIGCHLDs are not).
    for stats in agent.records_of("stats", &container.name) {
        for name in stats["signals"]["counts"].as_object().unwrap().keys() {
            assert!(name == "SIGSEGV" || name == "SIGKILL", "{stats}");
        }
    }
}

#[test]
fn a_handled_signal_is_not_a_crash() {
    require_docker!();
    let mut agent = Agent::start();
    // The shell traps SIGABRT, so raising it kills nothing; the SIGSEGV that follows (to a
    // shell without the trap) is the control that the container was watched all along.
    let container = Container::run(
        "handled",
        &[],
        BUSYBOX,
        &[
            "sh",
            "-c",
            "sleep 1; sh -c 'trap \"echo caught\" ABRT; kill -ABRT $$; sleep 1'; \
             sh -c 'kill -SEGV $$'; sleep 600",
        ],
    );
    agent.wait_for_container("signal", &container.name, WAIT, |r| r["signal"] == 11);
    agent.wait_for_container("stats", &container.name, WAIT, |r| {
        r["signals"]["counts"]["SIGSEGV"].as_u64().unwrap_or(0) >= 1
    });
    let abrt: Vec<_> = agent
        .records_of("signal", &container.name)
        .into_iter()
        .filter(|r| r["signal"] == 6)
        .collect();
    assert!(abrt.is_empty(), "a trapped SIGABRT was reported: {abrt:?}");
}
