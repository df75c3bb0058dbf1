//! `kanary baseline list|export|import|reset`, driven through the real binary on real stores in
//! temporary directories (no root, no containers). The baselines are real: the combined detector
//! learnt on synthetic windows, stored by the library as the agent will store them.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

use kanary_detect::baseline::{Baseline, BaselineConfig, BaselineKey, FORMAT_VERSION};
use kanary_detect::synthetic::normal_trace;
use kanary_detect::window::{windows_of_threads, FeatureWindow};
use kanary_store::Store;

struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn kanary(args: &[&str]) -> Run {
    let output = Command::new(env!("CARGO_BIN_EXE_kanary"))
        .args(args)
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

/// `kanary baseline <command> --data-dir <dir> <rest...>`.
fn baseline(command: &str, dir: &Path, rest: &[&str]) -> Run {
    let dir = dir.to_str().unwrap();
    let mut args = vec!["baseline", command, "--data-dir", dir];
    args.extend_from_slice(rest);
    kanary(&args)
}

fn config() -> BaselineConfig {
    BaselineConfig {
        learn_for: Duration::from_secs(3600),
        min_windows: 5,
        ..BaselineConfig::default()
    }
}

/// Windows of 200 syscalls of a normal workload.
fn windows() -> Vec<FeatureWindow> {
    windows_of_threads(3, &[normal_trace(7, 600)], Some(200)).unwrap()
}

/// How many windows and syscalls [`windows`] holds.
fn seen() -> (u64, u64) {
    let windows = windows();
    (
        windows.len() as u64,
        windows.iter().map(FeatureWindow::syscall_total).sum(),
    )
}

/// A baseline that observed [`windows`], starting `now`.
fn learning(key: BaselineKey, now: SystemTime) -> Baseline {
    let mut baseline = Baseline::new(key, &config(), now).unwrap();
    for window in windows() {
        baseline.observe(&window, now).unwrap();
    }
    baseline
}

/// A baseline that learnt and calibrated the combined detector.
fn learnt(key: BaselineKey) -> Baseline {
    let start = SystemTime::now() - Duration::from_secs(7200);
    let mut baseline = learning(key, start);
    baseline
        .finish_learning(&config(), start + Duration::from_secs(3600))
        .unwrap();
    baseline
}

fn nginx() -> BaselineKey {
    BaselineKey::new(
        Some("sha256:5e1f6a0c9d2b4e7f8a1b3c5d7e9f0a2b4c6d8e0f1a3b5c7d9e1f3a5b7c9d1e3f"),
        "nginx:1",
    )
}

fn redis() -> BaselineKey {
    BaselineKey::new(None, "redis:7")
}

/// A store in `dir` holding a detecting nginx and a learning redis baseline, as the agent leaves
/// it.
fn agent_store(dir: &Path) {
    let mut store = Store::open(dir).unwrap();
    store.put(&learnt(nginx())).unwrap();
    store.put(&learning(redis(), SystemTime::now())).unwrap();
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

#[test]
fn an_exported_baseline_imports_lists_and_round_trips() {
    let tmp = tempfile::tempdir().unwrap();
    let (host_a, host_b) = (tmp.path().join("a"), tmp.path().join("b"));
    agent_store(&host_a);

    let file = tmp.path().join("nginx.json");
    let run = baseline(
        "export",
        &host_a,
        &["--image", "nginx:1", "--out", file.to_str().unwrap()],
    );
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stdout.contains("exported nginx:1") && run.stdout.contains("detecting"),
        "{}",
        run.stdout
    );
    let document = json(&std::fs::read_to_string(&file).unwrap());
    assert_eq!(document["kind"], "kanary-baseline");
    assert_eq!(document["format_version"], FORMAT_VERSION);
    assert_eq!(document["key"]["image"], "nginx:1");
    assert_eq!(document["state"]["phase"], "detecting");
    assert!(document["models"]["combined"].is_object());

    let run = baseline("import", &host_b, &[file.to_str().unwrap()]);
    assert!(run.ok, "{}", run.stderr);
    assert!(run.stdout.contains("imported nginx:1"), "{}", run.stdout);

    // The table: the image, its short id, its state and what it learnt from.
    let run = baseline("list", &host_b, &[]);
    assert!(run.ok, "{}", run.stderr);
    let lines: Vec<&str> = run.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", run.stdout);
    assert!(lines[0].starts_with("IMAGE"), "{}", run.stdout);
    let (windows, events) = seen();
    assert!(windows >= 5);
    let (windows_cell, events_cell) = (format!(" {windows} "), format!(" {events} "));
    for part in [
        "nginx:1",
        "5e1f6a0c9d2b",
        "detecting",
        &windows_cell,
        &events_cell,
        "since",
    ] {
        assert!(lines[1].contains(part), "no {part:?} in {}", run.stdout);
    }
    let listing = json(&baseline("list", &host_b, &["--json"]).stdout);
    let entry = &listing["baselines"][0];
    assert_eq!(entry["image"], "nginx:1");
    assert_eq!(entry["image_id"], nginx().image_id.unwrap().as_str());
    assert_eq!(entry["phase"], "detecting");
    assert_eq!(entry["windows"], windows);
    assert_eq!(entry["events"], events);
    assert_eq!(entry["time_left_secs"], serde_json::Value::Null);
    assert_eq!(listing["quarantined"].as_array().map(Vec::len), Some(0));

    // Exported again from the second host: the same bytes, and the same models in both stores.
    let again = tmp.path().join("again.json");
    let run = baseline(
        "export",
        &host_b,
        &["--image", "5e1f6a0c", "--out", again.to_str().unwrap()],
    );
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(
        std::fs::read(&file).unwrap(),
        std::fs::read(&again).unwrap()
    );
    let from_a = Store::open(&host_a)
        .unwrap()
        .get(&nginx())
        .unwrap()
        .unwrap();
    let from_b = Store::open(&host_b)
        .unwrap()
        .get(&nginx())
        .unwrap()
        .unwrap();
    assert_eq!(from_a.models, from_b.models);
    assert_eq!(from_a, from_b);

    // To standard output.
    let run = baseline("export", &host_b, &["--image", "nginx:1", "--out", "-"]);
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(run.stdout.as_bytes(), std::fs::read(&file).unwrap());

    // Importing the same file again replaces, and says so.
    let run = baseline("import", &host_b, &[file.to_str().unwrap()]);
    assert!(run.ok && run.stdout.contains("replacing"), "{}", run.stdout);
}

#[test]
fn export_all_carries_learning_progress_to_another_host() {
    let tmp = tempfile::tempdir().unwrap();
    let (host_a, host_b, out) = (
        tmp.path().join("a"),
        tmp.path().join("b"),
        tmp.path().join("out"),
    );
    agent_store(&host_a);
    let run = baseline(
        "export",
        &host_a,
        &["--all", "--out", out.to_str().unwrap()],
    );
    assert!(run.ok, "{}", run.stderr);
    let mut files: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().path().to_str().unwrap().to_string())
        .collect();
    files.sort();
    assert_eq!(files.len(), 2, "{files:?}");
    assert!(files[0].ends_with("nginx_1-5e1f6a0c9d2b.json"), "{files:?}");
    assert!(files[1].ends_with("redis_7.json"), "{files:?}");

    let args: Vec<&str> = files.iter().map(String::as_str).collect();
    let run = baseline("import", &host_b, &args);
    assert!(run.ok, "{}", run.stderr);

    let run = baseline("list", &host_b, &[]);
    let redis_line = run
        .stdout
        .lines()
        .find(|l| l.starts_with("redis:7"))
        .unwrap_or_else(|| panic!("{}", run.stdout));
    // Learning for an hour from just now, with more windows seen than the 5 needed.
    assert!(redis_line.contains("learning"), "{redis_line}");
    assert!(redis_line.contains(" left"), "{redis_line}");
    assert!(!redis_line.contains("needs"), "{redis_line}");
    let listing = json(&baseline("list", &host_b, &["--json"]).stdout);
    let entry = listing["baselines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["image"] == "redis:7")
        .unwrap();
    assert_eq!(entry["phase"], "learning");
    assert_eq!(entry["windows"], seen().0);
    assert_eq!(entry["image_id"], serde_json::Value::Null);
    let left = entry["time_left_secs"].as_u64().unwrap();
    assert!(left > 3000 && left <= 3600, "{left}");
}

#[test]
fn reset_forgets_one_image_or_all() {
    let tmp = tempfile::tempdir().unwrap();
    agent_store(tmp.path());
    let run = baseline("reset", tmp.path(), &["--image", "redis:7"]);
    assert!(run.ok, "{}", run.stderr);
    assert!(
        run.stdout.contains("reset redis:7") && run.stdout.contains("learns again"),
        "{}",
        run.stdout
    );
    let run = baseline("list", tmp.path(), &[]);
    assert!(!run.stdout.contains("redis:7"), "{}", run.stdout);
    assert!(run.stdout.contains("nginx:1"), "{}", run.stdout);

    let run = baseline("reset", tmp.path(), &["--image", "redis:7"]);
    assert!(!run.ok);
    assert!(
        run.stderr.contains("no baseline matches image \"redis:7\""),
        "{}",
        run.stderr
    );

    let run = baseline("reset", tmp.path(), &["--all"]);
    assert!(
        run.ok && run.stdout.contains("reset nginx:1"),
        "{}",
        run.stdout
    );
    assert_eq!(baseline("list", tmp.path(), &[]).stdout, "no baselines\n");
    // Neither or both of --image and --all: a usage error, not a guess.
    assert!(!baseline("reset", tmp.path(), &[]).ok);
    assert!(!baseline("reset", tmp.path(), &["--all", "--image", "x"]).ok);
}

#[test]
fn bad_files_get_a_clear_error_and_change_nothing() {
    let tmp = tempfile::tempdir().unwrap();
    let host = tmp.path().join("host");
    let good = learnt(nginx()).to_json().unwrap();
    let mut future = json(&good);
    future["format_version"] = 99.into();
    let newer =
        format!("format version 99 is newer than this kanary reads (version {FORMAT_VERSION})");
    let mut detector = json(&good);
    detector["models"]["combined"]["format_version"] = 9.into();
    let cases = [
        (
            "truncated.json",
            good[..good.len() / 3].to_string(),
            "not JSON",
        ),
        ("future.json", future.to_string(), newer.as_str()),
        (
            "detector.json",
            detector.to_string(),
            "models.combined has detector format version 9",
        ),
        (
            "notes.json",
            "{\"notes\": []}".to_string(),
            "not a kanary baseline",
        ),
        ("binary.json", "\u{0}\u{1}garbage".to_string(), "not JSON"),
    ];
    for (name, text, reason) in &cases {
        let path = tmp.path().join(name);
        std::fs::write(&path, text).unwrap();
        let run = baseline("import", &host, &[path.to_str().unwrap()]);
        assert!(!run.ok, "{name} was accepted");
        assert!(
            run.stderr.contains(path.to_str().unwrap()) && run.stderr.contains(reason),
            "{name}: {}",
            run.stderr
        );
    }
    let missing = tmp.path().join("missing.json");
    let run = baseline("import", &host, &[missing.to_str().unwrap()]);
    assert!(
        !run.ok && run.stderr.contains("missing.json"),
        "{}",
        run.stderr
    );
    assert!(
        !host.join("kanary.db").exists(),
        "refused files left a store"
    );

    // One good file among bad ones: it is imported, the others reported, the exit non-zero.
    let good_file = tmp.path().join("good.json");
    std::fs::write(&good_file, &good).unwrap();
    let future_file = tmp.path().join("future.json");
    let run = baseline(
        "import",
        &host,
        &[future_file.to_str().unwrap(), good_file.to_str().unwrap()],
    );
    assert!(!run.ok);
    assert!(run.stdout.contains("imported nginx:1"), "{}", run.stdout);
    assert!(
        run.stderr.contains("1 of 2 imports failed"),
        "{}",
        run.stderr
    );
    let listing = json(&baseline("list", &host, &["--json"]).stdout);
    assert_eq!(listing["baselines"].as_array().map(Vec::len), Some(1));
}

/// Damages the models blob of `key` in the store at `dir` with `sql` (`?1` is the key).
fn damage(dir: &Path, sql: &str) {
    let conn = rusqlite::Connection::open(dir.join("kanary.db")).unwrap();
    let changed = conn.execute(sql, [nginx().id()]).unwrap();
    assert_eq!(changed, 1);
}

#[test]
fn a_truncated_stored_blob_is_quarantined_and_listed() {
    let tmp = tempfile::tempdir().unwrap();
    agent_store(tmp.path());
    damage(
        tmp.path(),
        "UPDATE baselines SET models = substr(models, 1, 100) WHERE key = ?1",
    );
    let out = tmp.path().join("nginx.json");
    let run = baseline(
        "export",
        tmp.path(),
        &["--image", "nginx:1", "--out", out.to_str().unwrap()],
    );
    assert!(!run.ok, "exported a damaged baseline");
    for part in ["nginx:1", "damaged", "quarantine", "relearnt"] {
        assert!(run.stderr.contains(part), "no {part:?} in {}", run.stderr);
    }
    assert!(!out.exists());

    let run = baseline("list", tmp.path(), &[]);
    assert!(run.ok, "{}", run.stderr);
    let (baselines, quarantine) = run.stdout.split_once("QUARANTINED").unwrap_or_else(|| {
        panic!("list does not show the quarantine: {}", run.stdout);
    });
    assert!(!baselines.contains("nginx:1") && baselines.contains("redis:7"));
    assert!(
        quarantine.contains("nginx:1") && quarantine.contains("damaged"),
        "{}",
        run.stdout
    );
    let listing = json(&baseline("list", tmp.path(), &["--json"]).stdout);
    assert_eq!(listing["quarantined"][0]["image"], "nginx:1");
    assert!(listing["quarantined"][0]["models_bytes"].as_u64().unwrap() > 0);

    // Reset clears the quarantine entry.
    let run = baseline("reset", tmp.path(), &["--image", "nginx:1"]);
    assert!(
        run.ok && run.stdout.contains("quarantined"),
        "{}",
        run.stdout
    );
    assert!(!baseline("list", tmp.path(), &[])
        .stdout
        .contains("QUARANTINED"));
}

#[test]
fn a_silently_damaged_stored_blob_is_caught_by_its_checksum() {
    let tmp = tempfile::tempdir().unwrap();
    agent_store(tmp.path());
    // Same length, one byte changed: a flipped bit on disk.
    damage(
        tmp.path(),
        "UPDATE baselines SET models = CAST(replace(CAST(models AS TEXT), '\"stride\":1', \
         '\"stride\":2') AS BLOB) WHERE key = ?1",
    );
    let run = baseline("export", tmp.path(), &["--image", "nginx:1", "--out", "-"]);
    assert!(!run.ok);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(
        run.stderr.contains("checksum") && run.stderr.contains("quarantine"),
        "{}",
        run.stderr
    );
    let run = baseline("list", tmp.path(), &[]);
    assert!(run.ok);
    assert!(run.stdout.contains("QUARANTINED"), "{}", run.stdout);
    assert!(run.stdout.contains("checksum"), "{}", run.stdout);
}

#[test]
fn a_damaged_or_newer_database_is_named() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(tmp.path().join("kanary.db"), vec![b'x'; 4096]).unwrap();
    for args in [
        vec!["list"],
        vec!["reset", "--all"],
        vec!["export", "--all", "--out", "/nonexistent"],
    ] {
        let (command, rest) = args.split_first().unwrap();
        let run = baseline(command, tmp.path(), rest);
        assert!(!run.ok, "{args:?}");
        assert!(
            run.stderr.contains("kanary.db") && run.stderr.contains("not a database"),
            "{args:?}: {}",
            run.stderr
        );
    }

    // A database file cut short (a full disk, a bad copy): refused at open, not half read.
    let cut = tempfile::tempdir().unwrap();
    agent_store(cut.path());
    let db = cut.path().join("kanary.db");
    let len = std::fs::metadata(&db).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&db)
        .unwrap()
        .set_len(len / 2)
        .unwrap();
    for command in ["list", "import"] {
        let file = tmp.path().join("any.json");
        std::fs::write(&file, learnt(redis()).to_json().unwrap()).unwrap();
        let run = baseline(
            command,
            cut.path(),
            &[file.to_str().unwrap()][..usize::from(command == "import")],
        );
        assert!(!run.ok, "{command}");
        for part in ["kanary.db", "malformed", "move it aside"] {
            assert!(
                run.stderr.contains(part),
                "{command}: no {part:?} in {}",
                run.stderr
            );
        }
    }

    let newer = tempfile::tempdir().unwrap();
    agent_store(newer.path());
    rusqlite::Connection::open(newer.path().join("kanary.db"))
        .unwrap()
        .execute("UPDATE schema_version SET version = 99", [])
        .unwrap();
    let run = baseline("list", newer.path(), &[]);
    assert!(!run.ok);
    assert!(
        run.stderr.contains("schema version 99 is newer"),
        "{}",
        run.stderr
    );
}

#[test]
fn without_a_store_list_is_empty_and_the_rest_say_where_they_looked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("none");
    let run = baseline("list", &dir, &[]);
    assert!(run.ok);
    assert_eq!(run.stdout, "no baselines\n");
    assert!(
        run.stderr.contains("no baseline store at"),
        "{}",
        run.stderr
    );
    let listing = json(&baseline("list", &dir, &["--json"]).stdout);
    assert_eq!(listing["baselines"].as_array().map(Vec::len), Some(0));
    let run = baseline("export", &dir, &["--image", "nginx:1", "--out", "-"]);
    assert!(!run.ok);
    assert!(
        run.stderr.contains("no baseline store at") && run.stderr.contains("none/kanary.db"),
        "{}",
        run.stderr
    );
    assert!(
        !dir.exists(),
        "a read-only command created the data directory"
    );
}
