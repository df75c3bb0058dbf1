//! Bad input to the command line gets a clear error and a non-zero exit, never a panic.

use std::process::Command;

fn kanary(args: &[&str]) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_kanary"))
        .args(args)
        .output()
        .expect("running kanary");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "kanary panicked: {stderr}");
    (output.status.success(), stderr)
}

#[test]
fn an_invalid_config_names_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        (
            "[collectors.syscalls]\nngram_len = 12\n",
            "collectors.syscalls.ngram_len",
        ),
        ("[agent]\nintervall = \"1s\"\n", "intervall"),
        (
            "[collectors.file]\nringbuf_bytes = \"big\"\n",
            "collectors.file.ringbuf_bytes",
        ),
        ("[[collectors.tracepoint]]\nname = \"x\"\n", "tracepoint"),
    ];
    for (i, (text, key)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let (ok, stderr) = kanary(&[
            "run",
            "--config",
            path.to_str().unwrap(),
            "--events",
            "/dev/null",
        ]);
        assert!(!ok, "accepted {text:?}");
        assert!(
            stderr.contains(key),
            "error for {text:?} does not name {key}: {stderr}"
        );
    }
}

#[test]
fn a_missing_config_file_is_named() {
    let (ok, stderr) = kanary(&["run", "--config", "/nonexistent/kanary.toml"]);
    assert!(!ok);
    assert!(stderr.contains("/nonexistent/kanary.toml"), "{stderr}");
}

#[test]
fn config_prints_the_effective_configuration() {
    let output = Command::new(env!("CARGO_BIN_EXE_kanary"))
        .args(["config"])
        .output()
        .unwrap();
    assert!(output.status.success());
    let text = String::from_utf8(output.stdout).unwrap();
    let config =
        kanary_model::config::Config::from_toml(&text).expect("printed config parses back");
    assert_eq!(config, kanary_model::config::Config::default());
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

#[test]
fn missing_privileges_are_named() {
    if !is_root() {
        eprintln!("skipped: needs root to drop privileges with setpriv");
        return;
    }
    let output = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--bounding-set=-all",
        ])
        .arg(env!("CARGO_BIN_EXE_kanary"))
        .args([
            "run",
            "--events",
            "/dev/null",
            "--data-dir",
            "/tmp/kanary-unprivileged-test",
        ])
        .output()
        .expect("setpriv (util-linux)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("missing privileges") && stderr.contains("CAP_BPF"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn a_directory_that_is_not_cgroup2_is_named() {
    if !is_root() {
        eprintln!("skipped: the privilege check comes first");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("k.toml");
    std::fs::write(
        &config,
        format!("[agent]\ncgroup2_mount = \"{}\"\n", dir.path().display()),
    )
    .unwrap();
    let (ok, stderr) = kanary(&[
        "run",
        "--config",
        config.to_str().unwrap(),
        "--events",
        "/dev/null",
        "--data-dir",
        dir.path().join("d").to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(stderr.contains("not a cgroup v2 mount"), "{stderr}");
}
