//! Store tests on real SQLite files in temporary directories.

use std::time::{Duration, SystemTime};

use kanary_detect::baseline::{Baseline, BaselineConfig, BaselineKey, State, FORMAT_VERSION};
use kanary_detect::synthetic::normal_trace;
use kanary_detect::window::windows_of_threads;
use kanary_detect::Detector;
use rusqlite::params;

use super::*;

fn at(seconds: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + seconds)
}

fn config() -> BaselineConfig {
    BaselineConfig {
        learn_for: Duration::from_secs(60),
        min_windows: 5,
        ..BaselineConfig::default()
    }
}

fn learning(key: BaselineKey) -> Baseline {
    let mut baseline = Baseline::new(key, &config(), at(0)).unwrap();
    let windows = windows_of_threads(3, &[normal_trace(7, 600)], Some(200)).unwrap();
    for (i, window) in windows.iter().enumerate() {
        baseline.observe(window, at(i as u64)).unwrap();
    }
    baseline
}

fn learnt(key: BaselineKey) -> Baseline {
    let mut baseline = learning(key);
    baseline.finish_learning(&config(), at(100)).unwrap();
    baseline
}

fn nginx() -> BaselineKey {
    BaselineKey::new(Some("sha256:0123456789abcdef"), "nginx:1")
}

fn raw(dir: &std::path::Path) -> rusqlite::Connection {
    rusqlite::Connection::open(dir.join(DB_FILE)).unwrap()
}

#[test]
fn opens_in_wal_mode_with_the_latest_schema() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("nested/data");
    let store = Store::open(&data).unwrap();
    assert_eq!(store.path(), data.join(DB_FILE));
    let conn = raw(&data);
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    let version: i64 = conn
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, schema::LATEST);
    drop(store);
    // Reopening migrates nothing and keeps one version row.
    Store::open(&data).unwrap();
    let rows: i64 = conn
        .query_row("SELECT count(*) FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(rows, 1);
}

#[test]
fn baselines_round_trip_exactly_and_are_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    assert_eq!(store.get(&nginx()).unwrap(), None);
    let learning = learning(nginx());
    assert!(!store.put(&learning).unwrap());
    assert_eq!(store.get(&nginx()).unwrap().as_ref(), Some(&learning));

    let mut learnt = learnt(nginx());
    // Sub-second times survive the nanosecond columns.
    learnt.updated_at += Duration::from_nanos(987_654_321);
    assert!(store.put(&learnt).unwrap(), "replaces the learning one");
    // A fresh connection reads exactly what was written.
    drop(store);
    let mut store = Store::open(dir.path()).unwrap();
    let back = store.get(&nginx()).unwrap().unwrap();
    assert_eq!(back, learnt);
    let window = windows_of_threads(3, &[normal_trace(3, 50)], None).unwrap();
    assert_eq!(
        back.detector().unwrap().score(&window[0]).unwrap(),
        learnt.detector().unwrap().score(&window[0]).unwrap()
    );

    let summaries = store.list().unwrap();
    assert_eq!(summaries.len(), 1);
    let summary = &summaries[0];
    assert_eq!(summary.key, nginx());
    assert_eq!(summary.state, learnt.state);
    assert_eq!(summary.updated_at, learnt.updated_at);
    assert_eq!(summary.format_version, FORMAT_VERSION);
    assert!(summary.models_bytes > 1000);
    assert!(store.quarantined().unwrap().is_empty());
}

#[test]
fn the_image_name_keys_a_baseline_without_an_image_id() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let by_name = BaselineKey::new(None, "nginx:1");
    store.put(&learning(by_name.clone())).unwrap();
    store.put(&learning(nginx())).unwrap();
    // Two baselines: one under the id, one under the name.
    assert_eq!(store.list().unwrap().len(), 2);
    assert_eq!(store.get(&by_name).unwrap().unwrap().key, by_name);
    assert!(matches!(
        store.find_one("nginx:1"),
        Err(StoreError::Ambiguous { ref matches, .. }) if matches.len() == 2
    ));
    assert_eq!(store.find_one("0123").unwrap(), nginx());
    assert!(matches!(
        store.find_one("redis"),
        Err(StoreError::NotFound(_))
    ));
}

#[test]
fn a_truncated_blob_is_quarantined_by_list() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    store.put(&learnt(nginx())).unwrap();
    let redis = BaselineKey::new(None, "redis:7");
    store.put(&learning(redis.clone())).unwrap();
    raw(dir.path())
        .execute(
            "UPDATE baselines SET models = substr(models, 1, length(models) / 2) WHERE key = ?1",
            params![nginx().id()],
        )
        .unwrap();
    let summaries = store.list().unwrap();
    assert_eq!(
        summaries.iter().map(|s| &s.key).collect::<Vec<_>>(),
        vec![&redis]
    );
    let quarantined = store.quarantined().unwrap();
    assert_eq!(quarantined.len(), 1);
    assert_eq!(quarantined[0].key, nginx());
    assert!(
        quarantined[0].reason.contains("damaged"),
        "{:?}",
        quarantined[0]
    );
    assert!(quarantined[0].models_bytes > 0, "the blob is kept");
    // Gone from the baselines: the caller relearns.
    assert_eq!(store.get(&nginx()).unwrap(), None);
    // Asked for by name, it is reported as quarantined rather than unknown.
    assert!(matches!(
        store.find_one("nginx:1"),
        Err(StoreError::Quarantined { ref reason, .. }) if reason.contains("damaged")
    ));
}

#[test]
fn a_damaged_blob_is_quarantined_by_get() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    store.put(&learnt(nginx())).unwrap();
    // Same length, one digit changed: only the checksum can tell.
    let blob: Vec<u8> = raw(dir.path())
        .query_row("SELECT models FROM baselines", [], |r| r.get(0))
        .unwrap();
    let mut damaged = blob.clone();
    let digit = damaged.iter().position(u8::is_ascii_digit).unwrap();
    damaged[digit] = if damaged[digit] == b'9' { b'8' } else { b'9' };
    raw(dir.path())
        .execute("UPDATE baselines SET models = ?1", params![damaged])
        .unwrap();
    assert_eq!(store.list().unwrap().len(), 1, "list checks lengths only");
    match store.get(&nginx()) {
        Err(StoreError::Quarantined { key, reason }) => {
            assert_eq!(key, nginx());
            assert!(reason.contains("checksum"), "{reason}");
        }
        other => panic!("expected quarantine, got {other:?}"),
    }
    assert_eq!(store.get(&nginx()).unwrap(), None);
    assert!(store.list().unwrap().is_empty());
    assert_eq!(store.quarantined().unwrap().len(), 1);
}

#[test]
fn undecodable_models_and_versions_are_quarantined_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    // Models that checksum right but are not models (written by something else).
    store.put(&learnt(nginx())).unwrap();
    let bogus = br#"{"sample": 3}"#.to_vec();
    raw(dir.path())
        .execute(
            "UPDATE baselines SET models = ?1, models_len = ?2, models_checksum = ?3",
            params![bogus, bogus.len() as i64, fnv1a(&bogus) as i64],
        )
        .unwrap();
    let error = store.get(&nginx()).unwrap_err().to_string();
    assert!(error.contains("models.sample"), "{error}");
    assert!(
        error.contains("quarantine") && error.contains("relearnt"),
        "{error}"
    );

    // A row of a newer format: refused with the versions, by list already.
    store.put(&learnt(nginx())).unwrap();
    raw(dir.path())
        .execute("UPDATE baselines SET format_version = 9", [])
        .unwrap();
    assert!(store.list().unwrap().is_empty());
    let quarantined = store.quarantined().unwrap();
    assert_eq!(quarantined.len(), 2);
    assert!(
        quarantined[1].reason.contains("format version 9 is newer"),
        "{quarantined:?}"
    );

    // A damaged state.
    store.put(&learnt(nginx())).unwrap();
    raw(dir.path())
        .execute("UPDATE baselines SET state = '{\"phase\": \"lea'", [])
        .unwrap();
    assert!(store.list().unwrap().is_empty());
    assert!(store.quarantined().unwrap()[2].reason.starts_with("state:"));

    // Reset removes the quarantine entries of the image too.
    let removed = store.reset(&Selector::Image("nginx:1".into())).unwrap();
    assert!(removed.baselines.is_empty());
    assert_eq!(removed.quarantined, vec![nginx()]);
    assert!(store.quarantined().unwrap().is_empty());
}

#[test]
fn reset_removes_one_image_or_all() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let redis = BaselineKey::new(None, "redis:7");
    let busybox = BaselineKey::new(Some("sha256:feedbeef00"), "busybox:1");
    for key in [nginx(), redis.clone(), busybox.clone()] {
        store.put(&learning(key)).unwrap();
    }
    let removed = store.reset(&Selector::Image("redis:7".into())).unwrap();
    assert_eq!(removed.baselines, vec![redis.clone()]);
    assert_eq!(store.get(&redis).unwrap(), None);
    assert!(matches!(
        store.reset(&Selector::Image("redis:7".into())),
        Err(StoreError::NotFound(_))
    ));
    let removed = store.reset(&Selector::All).unwrap();
    assert_eq!(removed.baselines.len(), 2);
    assert!(store.list().unwrap().is_empty());
    assert_eq!(store.reset(&Selector::All).unwrap(), Removed::default());
}

#[test]
fn export_then_import_gives_the_same_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut first = Store::open(&dir.path().join("a")).unwrap();
    first.put(&learnt(nginx())).unwrap();
    let file_a = dir.path().join("nginx.json");
    first.export(&nginx(), &file_a).unwrap();

    let mut second = Store::open(&dir.path().join("b")).unwrap();
    let imported = second.import(&file_a).unwrap();
    assert_eq!(
        imported,
        Imported {
            key: nginx(),
            phase: "detecting",
            replaced: false
        }
    );
    assert!(second.import(&file_a).unwrap().replaced);
    let file_b = dir.path().join("again.json");
    second.export(&nginx(), &file_b).unwrap();
    assert_eq!(
        std::fs::read(&file_a).unwrap(),
        std::fs::read(&file_b).unwrap()
    );
    assert_eq!(second.get(&nginx()).unwrap(), first.get(&nginx()).unwrap());
    assert!(matches!(
        second.export(&BaselineKey::new(None, "redis"), &file_b),
        Err(StoreError::NotFound(_))
    ));
    // No temporary file is left behind.
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 4, "{names:?}");
}

#[test]
fn bad_files_are_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let missing = dir.path().join("missing.json");
    let error = store.import(&missing).unwrap_err().to_string();
    assert!(error.contains("missing.json"), "{error}");

    let good = learnt(nginx()).to_json().unwrap();
    let cases = [
        (
            "truncated.json",
            good[..good.len() / 2].to_string(),
            "not JSON",
        ),
        (
            "future.json",
            good.replacen(
                &format!("\"format_version\":{FORMAT_VERSION},"),
                "\"format_version\":99,",
                1,
            ),
            "format version 99 is newer",
        ),
        (
            "other.json",
            "{\"name\": \"x\"}".to_string(),
            "not a kanary baseline",
        ),
    ];
    for (name, text, what) in cases {
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        let error = store.import(&path).unwrap_err().to_string();
        assert!(error.contains(name) && error.contains(what), "{error}");
    }
    assert!(store.list().unwrap().is_empty(), "nothing was stored");
}

#[test]
fn a_file_that_is_not_a_database_is_named() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join(DB_FILE), vec![b'x'; 8192]).unwrap();
    let error = Store::open(dir.path()).unwrap_err().to_string();
    assert!(error.contains("kanary.db"), "{error}");
    assert!(error.contains("not a database"), "{error}");
    let missing = tempfile::tempdir().unwrap();
    assert!(matches!(
        Store::open_existing(missing.path()),
        Err(StoreError::Missing { .. })
    ));
    assert!(!missing.path().join(DB_FILE).exists(), "nothing created");
}

#[test]
fn migrations_run_once_and_a_newer_schema_is_refused() {
    fn add_notes(tx: &rusqlite::Transaction<'_>) -> rusqlite::Result<()> {
        tx.execute_batch("ALTER TABLE baselines ADD COLUMN notes TEXT")
    }
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    store.put(&learning(nginx())).unwrap();
    drop(store);
    let path = dir.path().join(DB_FILE);
    let mut conn = raw(dir.path());
    let mut future: Vec<schema::Migration> = schema::MIGRATIONS.to_vec();
    future.push(add_notes);
    schema::migrate_with(&mut conn, &path, &future).unwrap();
    // Again: nothing to do (a second ALTER would fail).
    schema::migrate_with(&mut conn, &path, &future).unwrap();
    let version: i64 = conn
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, schema::LATEST + 1);
    let notes: Option<String> = conn
        .query_row("SELECT notes FROM baselines", [], |r| r.get(0))
        .unwrap();
    assert_eq!(notes, None, "the row survived the migration");
    drop(conn);
    match Store::open(dir.path()) {
        Err(StoreError::SchemaTooNew {
            found, supported, ..
        }) => assert_eq!((found, supported), (schema::LATEST + 1, schema::LATEST)),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn two_processes_can_write_at_once() {
    let dir = tempfile::tempdir().unwrap();
    Store::open(dir.path()).unwrap();
    let baseline = learning(nginx());
    let writers: Vec<_> = (0..2)
        .map(|w| {
            let dir = dir.path().to_path_buf();
            let baseline = baseline.clone();
            std::thread::spawn(move || {
                // One connection each, as two processes would have.
                let mut store = Store::open(&dir).unwrap();
                for i in 0..20 {
                    let mut b = baseline.clone();
                    b.key = BaselineKey::new(None, &format!("image-{w}-{i}"));
                    store.put(&b).unwrap();
                }
            })
        })
        .collect();
    let mut reader = Store::open(dir.path()).unwrap();
    for _ in 0..10 {
        reader.list().unwrap();
    }
    for writer in writers {
        writer.join().unwrap();
    }
    assert_eq!(reader.list().unwrap().len(), 40);
}

#[test]
fn summaries_tell_learning_progress() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let baseline = learning(nginx());
    store.put(&baseline).unwrap();
    let summary = store.list().unwrap().remove(0);
    let progress = summary.state.progress(at(20));
    assert!(progress.learning);
    assert_eq!(progress.time_left, Duration::from_secs(40));
    assert_eq!(progress, baseline.progress(at(20)));
    assert!(matches!(summary.state, State::Learning { .. }));
}

#[test]
fn times_are_stored_exactly() {
    for time in [
        at(0) + Duration::from_nanos(1),
        SystemTime::UNIX_EPOCH,
        SystemTime::UNIX_EPOCH - Duration::from_secs(5),
    ] {
        assert_eq!(time_of(nanos(time)), time);
    }
    assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
}

// ---- alerts ----

use kanary_model::record::{timestamp, Alert, AlertClass, Severity};

const WEB_ID: &str = "4f2a9c1e7b3d5a6c8e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d";
const DB_ID: &str = "9b8a7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d1e0f9a8b";

/// An alert record as the agent writes it (built from JSON, as a reader would see it, so fields
/// added to the record later keep their defaults here).
fn alert(id: &str, container: (&str, &str), seen: (u64, u64), severity: Severity) -> Alert {
    serde_json::from_value(serde_json::json!({
        "id": id,
        "container": {"id": container.0, "name": container.1, "image": "nginx:1.25"},
        "image_id": "sha256:0123",
        "class": "sequence_anomaly",
        "severity": severity,
        "score": 4.5,
        "threshold": 1.25,
        "detector": "combined",
        "views": {"sequence": 4.5},
        "contributions": [{"feature": "openat→read→close", "baseline": 1e-4, "observed": 12.0}],
        "first_seen": timestamp(at(seen.0)),
        "last_seen": timestamp(at(seen.1) + Duration::from_nanos(123)),
        "count": 1,
        "ended": false,
    }))
    .unwrap()
}

fn ids(alerts: &[Alert]) -> Vec<&str> {
    alerts.iter().map(|a| a.id.as_str()).collect()
}

#[test]
fn an_incident_is_one_row_replaced_by_each_of_its_records() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    assert_eq!(store.alert("web-1").unwrap(), None);
    let opened = alert("web-1", (WEB_ID, "web"), (10, 10), Severity::Medium);
    store.put_alert(&opened).unwrap();
    assert_eq!(store.alert("web-1").unwrap().as_ref(), Some(&opened));

    let mut later = opened.clone();
    later.count = 7;
    later.last_seen = timestamp(at(70));
    later.score = 9.0;
    later.severity = Severity::High;
    store.put_alert(&later).unwrap();
    let mut ended = later.clone();
    ended.ended = true;
    store.put_alert(&ended).unwrap();

    // A fresh connection reads exactly the last record, once.
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert_eq!(store.alert_count().unwrap(), 1);
    assert_eq!(store.alert("web-1").unwrap().as_ref(), Some(&ended));
    assert_eq!(store.alerts(&AlertQuery::default()).unwrap(), vec![ended]);
    // The columns queries filter on follow the record.
    let conn = raw(dir.path());
    let (count, severity, ended, score): (i64, i64, bool, f64) = conn
        .query_row(
            "SELECT count, severity, ended, score FROM alerts WHERE id = 'web-1'",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .unwrap();
    assert_eq!((count, severity, ended, score), (7, 2, true, 9.0));
}

#[test]
fn queries_filter_and_return_the_newest_first() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let mut escape = alert("db-2", (DB_ID, "db"), (50, 60), Severity::Critical);
    escape.class = AlertClass::EscapeAttempt;
    let mut old_ended = alert("web-1", (WEB_ID, "web"), (10, 20), Severity::Low);
    old_ended.ended = true;
    for a in [
        old_ended,
        alert("web-2", (WEB_ID, "web"), (30, 40), Severity::High),
        escape,
        alert("db-1", (DB_ID, "db"), (5, 90), Severity::Medium),
    ] {
        store.put_alert(&a).unwrap();
    }
    let query = |q: AlertQuery| ids(&store.alerts(&q).unwrap()).join(",");
    // Newest first by last_seen: db-1 (90), db-2 (60), web-2 (40), web-1 (20).
    assert_eq!(query(AlertQuery::default()), "db-1,db-2,web-2,web-1");
    let by = |container: &str| AlertQuery {
        container: Some(container.into()),
        ..AlertQuery::default()
    };
    assert_eq!(query(by("web")), "web-2,web-1");
    assert_eq!(query(by("9b8a7c")), "db-1,db-2", "an id prefix");
    assert_eq!(query(by(DB_ID)), "db-1,db-2", "the full id");
    assert_eq!(query(by("we")), "", "a name matches whole");
    assert_eq!(query(by("nope")), "");
    assert_eq!(
        query(AlertQuery {
            class: Some(AlertClass::EscapeAttempt),
            ..AlertQuery::default()
        }),
        "db-2"
    );
    assert_eq!(
        query(AlertQuery {
            min_severity: Some(Severity::High),
            ..AlertQuery::default()
        }),
        "db-2,web-2"
    );
    assert_eq!(
        query(AlertQuery {
            since: Some(at(40)),
            ..AlertQuery::default()
        }),
        "db-1,db-2,web-2",
        "active since: last_seen not earlier (web-2's is 40 s + 123 ns)"
    );
    assert_eq!(
        query(AlertQuery {
            open_only: true,
            ..AlertQuery::default()
        }),
        "db-1,db-2,web-2"
    );
    assert_eq!(
        query(AlertQuery {
            limit: 2,
            ..AlertQuery::default()
        }),
        "db-1,db-2"
    );
    // Filters combine.
    assert_eq!(
        query(AlertQuery {
            container: Some("db".into()),
            min_severity: Some(Severity::Medium),
            since: Some(at(70)),
            open_only: true,
            class: Some(AlertClass::SequenceAnomaly),
            limit: 10,
        }),
        "db-1"
    );
}

#[test]
fn retention_prunes_the_oldest_ended_incidents_never_open_ones() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    // Two open incidents older than every ended one.
    for i in 0..2 {
        store
            .put_alert(&alert(
                &format!("open-{i}"),
                (WEB_ID, "web"),
                (i, i),
                Severity::Low,
            ))
            .unwrap();
    }
    for i in 0..5 {
        let mut a = alert(
            &format!("ended-{i}"),
            (DB_ID, "db"),
            (100 + i, 100 + i),
            Severity::Low,
        );
        a.ended = true;
        store.put_alert(&a).unwrap();
    }
    assert_eq!(store.alert_count().unwrap(), 7);
    store.set_max_alerts(3);
    assert_eq!(store.prune_alerts().unwrap(), 4);
    let kept = store.alerts(&AlertQuery::default()).unwrap();
    assert_eq!(ids(&kept), ["ended-4", "open-1", "open-0"]);
    // A bound below the open incidents keeps them all.
    store.set_max_alerts(1);
    assert_eq!(store.prune_alerts().unwrap(), 1);
    assert_eq!(
        ids(&store.alerts(&AlertQuery::default()).unwrap()),
        ["open-1", "open-0"]
    );
    assert_eq!(store.prune_alerts().unwrap(), 0);
    assert_eq!(DEFAULT_MAX_ALERTS, 100_000);
}

#[test]
fn writes_apply_the_retention_bound_by_themselves() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    store.set_max_alerts(2);
    let writes = PRUNE_EVERY + 6;
    for i in 0..writes {
        let mut a = alert(&format!("a-{i}"), (WEB_ID, "web"), (i, i), Severity::Low);
        a.ended = true;
        store.put_alert(&a).unwrap();
    }
    // Pruned at the first write and at write PRUNE_EVERY + 1, to 2; 5 written since.
    assert_eq!(store.alert_count().unwrap(), 2 + (writes - PRUNE_EVERY - 1));
    let newest = store.alerts(&AlertQuery::default()).unwrap();
    assert_eq!(newest[0].id, format!("a-{}", writes - 1));
}

#[test]
fn an_undecodable_alert_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    store
        .put_alert(&alert("good-1", (WEB_ID, "web"), (1, 1), Severity::Low))
        .unwrap();
    store
        .put_alert(&alert("bad-1", (WEB_ID, "web"), (2, 2), Severity::Low))
        .unwrap();
    let conn = raw(dir.path());
    conn.execute(
        "UPDATE alerts SET alert = substr(alert, 1, 40) WHERE id = 'bad-1'",
        [],
    )
    .unwrap();
    for error in [
        store.alerts(&AlertQuery::default()).unwrap_err(),
        store.alert("bad-1").unwrap_err(),
    ] {
        let text = error.to_string();
        assert!(
            matches!(error, StoreError::Alert { ref id, .. } if id == "bad-1"),
            "{text}"
        );
        assert!(
            text.contains("bad-1") && text.contains("unreadable"),
            "{text}"
        );
    }
    // The good one is still readable on its own.
    assert!(store.alert("good-1").unwrap().is_some());
    // A record stored under another incident's id is refused too.
    conn.execute(
        "UPDATE alerts SET alert = (SELECT alert FROM alerts WHERE id = 'good-1') \
         WHERE id = 'bad-1'",
        [],
    )
    .unwrap();
    let text = store.alert("bad-1").unwrap_err().to_string();
    assert!(text.contains("bad-1") && text.contains("good-1"), "{text}");
    // Not JSON of an alert at all.
    conn.execute(
        "UPDATE alerts SET alert = '{\"id\": 3}' WHERE id = 'bad-1'",
        [],
    )
    .unwrap();
    let text = store.alert("bad-1").unwrap_err().to_string();
    assert!(text.contains("bad-1") && text.contains("id"), "{text}");
}

#[test]
fn an_alert_with_a_bad_time_or_no_id_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let mut bad = alert("web-9", (WEB_ID, "web"), (1, 1), Severity::Low);
    bad.last_seen = "yesterday".into();
    let text = store.put_alert(&bad).unwrap_err().to_string();
    assert!(
        text.contains("web-9") && text.contains("last_seen"),
        "{text}"
    );
    bad.id.clear();
    assert!(store.put_alert(&bad).is_err());
    assert_eq!(store.alert_count().unwrap(), 0);
}

#[test]
fn a_version_1_store_gains_the_alerts_table_and_keeps_its_baselines() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path()).unwrap();
    let path = dir.path().join(DB_FILE);
    {
        let mut conn = raw(dir.path());
        schema::migrate_with(&mut conn, &path, &schema::MIGRATIONS[..1]).unwrap();
    }
    // A version-1 store with a baseline, as the previous kanary left it: written through a
    // store that only knows version 1 is not possible here, so write the row by hand.
    let baseline = learning(nginx());
    {
        let scratch_dir = tempfile::tempdir().unwrap();
        let mut scratch = Store::open(scratch_dir.path()).unwrap();
        scratch.put(&baseline).unwrap();
        let conn = raw(dir.path());
        conn.execute(
            "ATTACH DATABASE ?1 AS scratch",
            params![scratch.path().to_str().unwrap()],
        )
        .unwrap();
        conn.execute("INSERT INTO baselines SELECT * FROM scratch.baselines", [])
            .unwrap();
    }
    let conn = raw(dir.path());
    let version: i64 = conn
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 1);
    let mut store = Store::open(dir.path()).unwrap();
    let version: i64 = conn
        .query_row("SELECT version FROM schema_version", [], |r| r.get(0))
        .unwrap();
    assert_eq!(version, 2);
    assert_eq!(store.get(&nginx()).unwrap().as_ref(), Some(&baseline));
    store
        .put_alert(&alert("web-1", (WEB_ID, "web"), (1, 1), Severity::Low))
        .unwrap();
    assert_eq!(store.alert_count().unwrap(), 1);
}
