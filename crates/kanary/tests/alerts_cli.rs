//! `kanary alerts list`, driven through the real binary on a real store filled through the
//! store's API as the agent fills it (no root, no containers).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use kanary_model::record::{timestamp, Alert};
use kanary_store::Store;
use serde_json::{json, Value};

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn alerts(dir: &Path, rest: &[&str]) -> Run {
    let mut args = vec!["alerts", "list", "--data-dir", dir.to_str().unwrap()];
    args.extend_from_slice(rest);
    let output = Command::new(env!("CARGO_BIN_EXE_kanary"))
        .args(&args)
        .output()
        .expect("running kanary");
    let run = Run {
        ok: output.status.success(),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    };
    assert!(
        !run.stderr.contains("panicked") && output.status.code() != Some(101),
        "kanary {args:?} panicked: {}",
        run.stderr
    );
    run
}

const WEB: &str = "4f2a9c1e7b3d5a6c8e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d";
const DB: &str = "9b8a7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b";

/// An alert record of container (`id`, `name`), last seen `ago` before now.
fn alert(id: &str, container: (&str, &str), class: &str, severity: &str, ago: Duration) -> Alert {
    let last = SystemTime::now() - ago;
    serde_json::from_value(json!({
        "id": id,
        "container": {"id": container.0, "name": container.1, "image": "nginx:1.25"},
        "image_id": "sha256:0123",
        "class": class,
        "severity": severity,
        "score": 7.25,
        "threshold": 1.5,
        "detector": "combined",
        "views": {"sequence": 7.25},
        "contributions": [{"feature": "openat→read→close", "baseline": 1e-4, "observed": 12.0}],
        "first_seen": timestamp(last - Duration::from_secs(60)),
        "last_seen": timestamp(last),
        "count": 3,
        "ended": false,
    }))
    .unwrap()
}

/// A store holding four incidents, one of them ended, one re-written.
fn fill(dir: &Path) {
    let mut store = Store::open(dir).unwrap();
    let mut ended = alert(
        "web-1",
        (WEB, "web"),
        "sequence_anomaly",
        "low",
        Duration::from_secs(3 * 3600),
    );
    store.put_alert(&ended).unwrap();
    ended.ended = true;
    store.put_alert(&ended).unwrap();
    for a in [
        alert(
            "web-2",
            (WEB, "web"),
            "sequence_anomaly",
            "high",
            Duration::from_secs(1800),
        ),
        alert(
            "db-1",
            (DB, "db"),
            "escape_attempt",
            "critical",
            Duration::from_secs(600),
        ),
        alert(
            "db-2",
            (DB, "db"),
            "sequence_anomaly",
            "medium",
            Duration::from_secs(60),
        ),
    ] {
        store.put_alert(&a).unwrap();
    }
}

/// The ID column of a table, top to bottom.
fn ids(table: &str) -> Vec<String> {
    table
        .lines()
        .skip(1)
        .map(|line| {
            line.split_whitespace()
                .last()
                .unwrap_or_default()
                .to_string()
        })
        .collect()
}

#[test]
fn the_table_lists_incidents_newest_first_and_filters() {
    let tmp = tempfile::tempdir().unwrap();
    fill(tmp.path());
    let run = alerts(tmp.path(), &[]);
    assert!(run.ok, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    for column in ["LAST SEEN", "CONTAINER", "CLASS", "SEVERITY", "STATE", "ID"] {
        assert!(lines[0].contains(column), "no {column}: {}", run.stdout);
    }
    assert_eq!(ids(&run.stdout), ["db-2", "db-1", "web-2", "web-1"]);
    let web1 = lines.iter().find(|l| l.ends_with("web-1")).unwrap();
    for part in [
        "web",
        "nginx:1.25",
        "sequence_anomaly",
        "low",
        "7.25/1.50",
        " 3 ",
        "ended",
    ] {
        assert!(web1.contains(part), "no {part:?} in {web1}");
    }
    let db1 = lines.iter().find(|l| l.ends_with("db-1")).unwrap();
    assert!(db1.contains("escape_attempt") && db1.contains("critical") && db1.contains("open"));

    let filtered = |args: &[&str]| {
        let run = alerts(tmp.path(), args);
        assert!(run.ok, "{args:?}: {}", run.stderr);
        ids(&run.stdout)
    };
    assert_eq!(filtered(&["--container", "web"]), ["web-2", "web-1"]);
    assert_eq!(filtered(&["--container", "9b8a7c6d"]), ["db-2", "db-1"]);
    assert_eq!(filtered(&["--class", "escape_attempt"]), ["db-1"]);
    assert_eq!(filtered(&["--severity", "high"]), ["db-1", "web-2"]);
    assert_eq!(filtered(&["--since", "1h"]), ["db-2", "db-1", "web-2"]);
    assert_eq!(filtered(&["--open"]), ["db-2", "db-1", "web-2"]);
    assert_eq!(filtered(&["--limit", "1"]), ["db-2"]);
    assert_eq!(
        filtered(&["--container", "db", "--severity", "medium", "--since", "5m"]),
        ["db-2"]
    );
    let run = alerts(tmp.path(), &["--container", "nope"]);
    assert!(run.ok);
    assert_eq!(run.stdout, "no alerts\n");
}

#[test]
fn json_is_one_alert_record_per_line() {
    let tmp = tempfile::tempdir().unwrap();
    fill(tmp.path());
    let run = alerts(tmp.path(), &["--json", "--container", "web"]);
    assert!(run.ok, "{}", run.stderr);
    let records: Vec<Value> = run
        .stdout
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}")))
        .collect();
    assert_eq!(records.len(), 2, "{}", run.stdout);
    assert_eq!(records[0]["type"], "alert");
    assert_eq!(records[0]["id"], "web-2");
    assert_eq!(records[0]["ts"], records[0]["last_seen"]);
    // The ended incident holds its last record: ended, with the count it reached.
    assert_eq!(records[1]["id"], "web-1");
    assert_eq!(records[1]["ended"], true);
    assert_eq!(records[1]["count"], 3);
    assert_eq!(records[1]["container"]["id"], WEB);
    assert_eq!(
        records[1]["contributions"][0]["feature"],
        "openat→read→close"
    );
    // Each line reads back as the alert the agent stored.
    let stored = Store::open(tmp.path())
        .unwrap()
        .alert("web-1")
        .unwrap()
        .unwrap();
    let mut line = records[1].clone();
    let object = line.as_object_mut().unwrap();
    object.remove("type");
    object.remove("ts");
    assert_eq!(serde_json::from_value::<Alert>(line).unwrap(), stored);
    // Nothing matches: no lines at all.
    let run = alerts(tmp.path(), &["--json", "--class", "unexpected_file"]);
    assert!(run.ok && run.stdout.is_empty(), "{}", run.stdout);
}

#[test]
fn no_store_and_bad_arguments_get_clear_messages() {
    let tmp = tempfile::tempdir().unwrap();
    let none = tmp.path().join("none");
    let run = alerts(&none, &[]);
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(run.stdout, "no alerts\n");
    assert!(
        run.stderr.contains("no store at") && run.stderr.contains("none/kanary.db"),
        "{}",
        run.stderr
    );
    assert!(!none.exists(), "listing created a store");

    fill(tmp.path());
    for (args, words) in [
        (&["--class", "Escape"][..], "sequence_anomaly"),
        (&["--severity", "severe"][..], "critical"),
        (&["--since", "yesterday"][..], "RFC 3339"),
        (&["--limit", "many"][..], "--limit"),
    ] {
        let run = alerts(tmp.path(), args);
        assert!(!run.ok, "{args:?} accepted");
        assert!(run.stderr.contains(words), "{args:?}: {}", run.stderr);
    }

    // A damaged row is an error naming the incident, not a panic.
    let conn = rusqlite::Connection::open(tmp.path().join("kanary.db")).unwrap();
    conn.execute("UPDATE alerts SET alert = '{' WHERE id = 'db-1'", [])
        .unwrap();
    let run = alerts(tmp.path(), &[]);
    assert!(!run.ok);
    assert!(
        run.stderr.contains("alert db-1") && run.stderr.contains("unreadable"),
        "{}",
        run.stderr
    );
    // Filters that skip it still work.
    let run = alerts(tmp.path(), &["--container", "web"]);
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(ids(&run.stdout), ["web-2", "web-1"]);
}
