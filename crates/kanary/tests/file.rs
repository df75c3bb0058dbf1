//! The `file` collector against real containers: de-duplicated `open` records, their fields,
//! renotification with a repeat count, and the per-container read/write counters.

mod common;

use std::time::{Duration, Instant};

use common::{Agent, Container, BUSYBOX};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(60);
const MARKER: &str = "/etc/kanary-test-marker";

/// Sums the `file` section of every `stats` record of `name` until `done` holds for the sums.
fn wait_for_file_totals(
    agent: &mut Agent,
    name: &str,
    done: impl Fn(&Value) -> bool,
) -> serde_json::Map<String, Value> {
    let deadline = Instant::now() + WAIT;
    loop {
        let mut totals = serde_json::Map::new();
        for record in agent.records_of("stats", name) {
            let Some(file) = record["file"].as_object() else {
                continue;
            };
            for (key, value) in file {
                let sum = totals.get(key).and_then(Value::as_u64).unwrap_or(0)
                    + value.as_u64().unwrap_or(0);
                totals.insert(key.clone(), sum.into());
            }
        }
        if done(&Value::Object(totals.clone())) {
            return totals;
        }
        assert!(
            Instant::now() < deadline,
            "file stats of {name} never reached the expected totals: {totals:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn reports_each_distinct_open_once_and_counts_io() {
    require_docker!();
    let mut agent = Agent::start();
    let script = format!(
        "echo kanary > {MARKER}; \
         i=0; while [ $i -lt 50 ]; do cat {MARKER} > /dev/null; i=$((i+1)); done; \
         cat /nonexistent/x; \
         dd if=/dev/zero of=/tmp/x bs=4096 count=256; \
         sleep 600"
    );
    let container = Container::run("file", &[], BUSYBOX, &["sh", "-c", &script]);
    let name = container.name.clone();

    // dd runs after the loop: once its open is here, every open of the marker has been made.
    let dd = agent.wait_for_container("open", &name, WAIT, |r| r["path"] == "/tmp/x");
    assert_eq!(dd["comm"], "dd");
    assert_eq!(dd["access"], "write");
    assert_eq!(dd["create"], true);
    assert_eq!(dd["truncate"], true);
    assert!(dd["result"].as_i64().unwrap() >= 0, "{dd}");

    let failed = agent.wait_for_container("open", &name, WAIT, |r| r["path"] == "/nonexistent/x");
    assert_eq!(failed["comm"], "cat");
    assert_eq!(failed["access"], "read");
    assert_eq!(failed["result"], -2);
    assert_eq!(failed["error"], "ENOENT");
    assert_eq!(failed["create"], false);

    let writes: Vec<Value> = agent
        .records_of("open", &name)
        .into_iter()
        .filter(|r| r["path"] == MARKER && r["access"] == "write")
        .collect();
    assert_eq!(writes.len(), 1, "the shell's redirection: {writes:?}");
    assert_eq!(writes[0]["comm"], "sh");
    assert_eq!(writes[0]["create"], true);
    assert_eq!(writes[0]["truncate"], true);

    // 50 cats opened the marker for reading: one record, the kernel folded the rest.
    let reads: Vec<Value> = agent
        .records_of("open", &name)
        .into_iter()
        .filter(|r| r["path"] == MARKER && r["access"] == "read")
        .collect();
    assert_eq!(
        reads.len(),
        1,
        "repeated opens were not de-duplicated: {reads:?}"
    );
    let read = &reads[0];
    assert_eq!(read["comm"], "cat");
    assert!(read["result"].as_i64().unwrap() >= 0, "{read}");
    assert_eq!(read["error"], Value::Null);
    assert_eq!(read["create"], false);
    assert_eq!(read["truncate"], false);
    assert_eq!(read["repeats"], 0);
    assert_eq!(read["flags"].as_u64().unwrap() & 3, 0);

    let totals = wait_for_file_totals(&mut agent, &name, |t| {
        t["opens"].as_u64().unwrap_or(0) >= 52 && t["write_bytes"].as_u64().unwrap_or(0) >= 1 << 20
    });
    assert!(totals["open_failures"].as_u64().unwrap() >= 1, "{totals:?}");
    assert!(totals["reads"].as_u64().unwrap() >= 50, "{totals:?}");
    assert!(totals["read_bytes"].as_u64().unwrap() > 0, "{totals:?}");
    assert!(totals["writes"].as_u64().unwrap() >= 256, "{totals:?}");
}

#[test]
fn reports_a_repeated_open_again_after_renotify_after_with_its_repeats() {
    require_docker!();
    let mut agent = Agent::start_with(
        "[agent]\ninterval = \"1s\"\n[collectors.file]\nrenotify_after = \"2s\"\n",
    );
    let container = Container::run(
        "filerenotify",
        &[],
        BUSYBOX,
        &[
            "sh",
            "-c",
            "while true; do cat /etc/hostname > /dev/null; sleep 0.1; done",
        ],
    );
    let is_hostname_read =
        |r: &Value| r["path"] == "/etc/hostname" && r["access"] == "read" && r["comm"] == "cat";
    let again = agent.wait_for_container("open", &container.name, WAIT, |r| {
        is_hostname_read(r) && r["repeats"].as_u64().unwrap_or(0) > 0
    });
    // About 20 opens in 2 s on an idle machine; at least a few on a loaded one.
    assert!(again["repeats"].as_u64().unwrap() >= 3, "{again}");
    let first = agent
        .records_of("open", &container.name)
        .into_iter()
        .find(|r| is_hostname_read(r))
        .unwrap();
    assert_eq!(first["repeats"], 0, "{first}");
}

#[test]
fn counts_io_of_threads_that_never_exit_and_not_before_the_agent() {
    require_docker!();
    // The shell itself writes (echo is a builtin): its I/O counters grow in a thread that never
    // exits, so only the interval's walk over the threads can count them. Its first 400 KB are
    // written before the agent starts and must not be counted.
    let line = "0123456789012345678901234567890123456789";
    let script = format!(
        "exec 3>/dev/null; i=0; while [ $i -lt 10000 ]; do echo {line} >&3; i=$((i+1)); done; \
         touch /tmp/ready; while true; do echo {line} >&3; sleep 0.2; done"
    );
    let container = Container::run("fileio", &[], BUSYBOX, &["sh", "-c", &script]);
    container.exec(&[
        "sh",
        "-c",
        "i=0; while [ ! -f /tmp/ready ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i+1)); done; \
         test -f /tmp/ready",
    ]);
    let mut agent = Agent::start();
    let name = container.name.clone();
    let totals = wait_for_file_totals(&mut agent, &name, |t| {
        t["writes"].as_u64().unwrap_or(0) >= 10
    });
    let bytes = totals["write_bytes"].as_u64().unwrap();
    let writes = totals["writes"].as_u64().unwrap();
    assert!(bytes >= 10 * (line.len() as u64 + 1), "{totals:?}");
    assert!(
        bytes < 100_000 && writes < 2_000,
        "I/O from before the agent was counted: {totals:?}"
    );
}
