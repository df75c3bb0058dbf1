//! The scenario suite end to end: its files validate, a broken file is named in a clear error,
//! and the short form (what CI runs) detects each of its attacks about the right container with
//! the right class, with real containers under a real agent.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

/// The suite in this checkout.
fn suite() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scenarios")
}

fn runner(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_kanary-scenarios"))
        .args(args)
        .output()
        .expect("running kanary-scenarios")
}

#[test]
fn the_suite_validates_with_every_class_covered_by_at_least_16_scenarios() {
    let suite = suite();
    let out = runner(&["--check", "--suite", suite.to_str().expect("utf-8 path")]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Vec<&str>> = stdout
        .lines()
        .filter(|l| l.contains('\t'))
        .map(|l| l.split('\t').collect())
        .collect();
    assert!(rows.len() >= 16, "only {} scenarios:\n{stdout}", rows.len());
    for class in [
        "sequence_anomaly",
        "suspicious_syscall",
        "unexpected_process",
        "unexpected_file",
        "unauthorized_connection",
        "resource_anomaly",
        "escape_attempt",
        "privilege_escalation",
    ] {
        assert!(
            rows.iter().any(|r| r[1] == class),
            "no scenario expects {class}:\n{stdout}"
        );
    }
}

#[test]
fn a_broken_scenario_file_is_named_in_the_error() {
    let copy = tempfile::tempdir().expect("temporary directory");
    let status = Command::new("cp")
        .arg("-r")
        .arg(suite())
        .arg(copy.path().join("suite"))
        .status()
        .expect("cp");
    assert!(status.success());
    let broken = copy.path().join("suite/attacks/99-broken.toml");
    std::fs::write(
        &broken,
        "description = \"x\"\nclass = \"spooky\"\ntarget = \"app\"\nscript = \"id\"\n",
    )
    .expect("writing the broken scenario");
    let suite = copy.path().join("suite");
    let out = runner(&["--check", "--suite", suite.to_str().expect("utf-8 path")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("99-broken.toml") && stderr.contains("spooky"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// The kanary binary of this build (nextest and `cargo test --workspace` build it; a lone
/// `cargo test -p kanary-scenarios` does not, so build it then).
fn kanary() -> PathBuf {
    let path = Path::new(env!("CARGO_BIN_EXE_kanary-scenarios")).with_file_name("kanary");
    if !path.is_file() {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let release = path.parent().is_some_and(|d| d.ends_with("release"));
        let mut build = Command::new(cargo);
        build.args(["build", "-p", "kanary"]);
        if release {
            build.arg("--release");
        }
        assert!(build.status().expect("cargo build -p kanary").success());
    }
    path
}

#[test]
fn the_short_form_detects_each_attack_about_the_right_container_with_the_right_class() {
    if std::env::var("KANARY_TEST_DOCKER").as_deref() != Ok("1") {
        eprintln!("skipped: needs root, eBPF and Docker; run with KANARY_TEST_DOCKER=1 (scripts/test.sh does)");
        return;
    }
    let out_dir = tempfile::tempdir().expect("temporary directory");
    let kanary = kanary();
    let suite = suite();
    let out = runner(&[
        "--short",
        "--suite",
        suite.to_str().expect("utf-8 path"),
        "--kanary",
        kanary.to_str().expect("utf-8 path"),
        "--out",
        out_dir.path().to_str().expect("utf-8 path"),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the run failed:\n{stderr}");
    let report: Value = serde_json::from_str(
        &std::fs::read_to_string(out_dir.path().join("latest.json")).expect("latest.json written"),
    )
    .expect("latest.json is JSON");
    let markdown =
        std::fs::read_to_string(out_dir.path().join("latest.md")).expect("latest.md written");
    assert_eq!(markdown, stdout, "the Markdown report is also printed");

    let scenarios = report["scenarios"].as_array().expect("scenarios");
    assert!(
        scenarios.len() >= 5,
        "the short form runs a handful of scenarios: {report:#}"
    );
    let missed: Vec<String> = scenarios
        .iter()
        .filter(|s| s["right_class"] != true)
        .map(|s| {
            format!(
                "{}: expected {} on {}; saw {}",
                s["id"], s["class"], s["container"], s["alerts"]
            )
        })
        .collect();
    assert!(
        missed.is_empty(),
        "not detected right:\n{}\n\n{markdown}",
        missed.join("\n")
    );
    for s in scenarios {
        assert!(markdown.contains(&format!("| {} |", s["id"].as_str().expect("id"))));
    }
    // The normal period ran with the whole deployment up, so it has container-time to count
    // false alerts against; the learning baselines all reached detection.
    assert!(
        report["normal"]["container_hours"]
            .as_f64()
            .expect("container_hours")
            > 0.05,
        "{report:#}"
    );
    let notes = report["notes"].to_string();
    assert!(!notes.contains("still learning"), "{notes}");
}
