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
