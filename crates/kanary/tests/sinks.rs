//! `[[sinks]]` and `--falco-output` through the real binary: configuration errors name the key
//! (no root needed); with root and eBPF, a running agent POSTs its records to a real HTTP
//! server in this test and writes a configured NDJSON file, next to `--events`.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::Command;
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

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
fn invalid_sinks_are_refused_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("[[sinks]]\ntype = \"kafka\"\n", "sinks[0].type"),
        ("[[sinks]]\ntype = \"webhook\"\n", "sinks[0].url"),
        (
            "[[sinks]]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\nrecords = [\"alerts\"]\n",
            "sinks[0].records[0]",
        ),
        (
            "[[sinks]]\ntype = \"falco\"\npath = \"-\"\nurl = \"http://h/\"\n",
            "sinks[0].url",
        ),
    ];
    for (i, (text, key)) in cases.iter().enumerate() {
        let path = dir.path().join(format!("bad{i}.toml"));
        std::fs::write(&path, text).unwrap();
        let (ok, stderr) = kanary(&["run", "--config", path.to_str().unwrap()]);
        assert!(!ok, "accepted {text:?}");
        assert!(stderr.contains(key), "{text:?}: {stderr}");
    }
}

/// Answers every request of one connection with 204 and hands its headers and JSON body on.
fn serve(stream: TcpStream, requests: &mpsc::Sender<(Vec<(String, String)>, Value)>) {
    let mut reader = BufReader::new(stream);
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = Vec::new();
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header).unwrap_or(0) == 0 {
                return;
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
            }
        }
        let length: usize = headers
            .iter()
            .find(|(n, _)| n == "content-length")
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        let answer = b"HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n";
        if reader.get_mut().write_all(answer).is_err() {
            return;
        }
        let Ok(value) = serde_json::from_slice(&body) else {
            continue;
        };
        if requests.send((headers, value)).is_err() {
            return;
        }
    }
}

#[test]
fn a_running_agent_posts_to_a_webhook_and_writes_every_sink() {
    require_docker!();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/kanary", listener.local_addr().unwrap());
    let (tx, requests) = mpsc::channel();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || serve(stream, &tx));
        }
    });
    let extra = tempfile::tempdir().unwrap();
    let learning_file = extra.path().join("starts.ndjson");
    let config = format!(
        "{}\n[[sinks]]\ntype = \"webhook\"\nname = \"hook\"\nurl = \"{url}\"\n\
         records = [\"agent_start\", \"container_start\"]\n\
         headers = {{ Authorization = \"Bearer s3cret\" }}\ntimeout = \"5s\"\n\n\
         [[sinks]]\ntype = \"ndjson\"\npath = \"{}\"\nrecords = [\"agent_start\"]\n",
        common::TEST_CONFIG,
        learning_file.display()
    );
    // The harness adds --events: it stays a sink of its own next to these.
    let mut agent = common::Agent::start_with(&config);
    let (headers, start) = requests
        .recv_timeout(Duration::from_secs(30))
        .expect("no webhook request");
    assert_eq!(start["type"], "agent_start", "{start}");
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(header("authorization").as_deref(), Some("Bearer s3cret"));
    assert_eq!(header("content-type").as_deref(), Some("application/json"));
    // The effective configuration in agent_start names every sink and never a header value.
    let sinks = start["config"]["sinks"]
        .as_array()
        .expect("sinks in config");
    let names: Vec<&str> = sinks.iter().filter_map(|s| s["name"].as_str()).collect();
    assert_eq!(names, ["hook", "--events"], "{sinks:?}");
    assert_eq!(sinks[0]["headers"]["Authorization"], "<redacted>");
    assert!(!start.to_string().contains("s3cret"));

    // The --events file has the same agent_start, and everything else.
    let from_file = agent.wait_for("agent_start", Duration::from_secs(10), |r| {
        r["type"] == "agent_start"
    });
    assert_eq!(from_file, start);

    // A container started now reaches the webhook as a container_start.
    let container = common::Container::run("sinks", &[], common::BUSYBOX, &["sleep", "30"]);
    let name = container.name.clone();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let remaining = deadline.saturating_duration_since(std::time::Instant::now());
        let (_, record) = requests
            .recv_timeout(remaining)
            .unwrap_or_else(|_| panic!("no container_start of {name} posted"));
        assert!(
            ["agent_start", "container_start"].contains(&record["type"].as_str().unwrap_or("")),
            "a record type the sink does not take was posted: {record}"
        );
        if record["type"] == "container_start" && record["container"]["name"] == name.as_str() {
            break;
        }
    }
    agent.stop();

    // The configured NDJSON file holds only what its filter takes.
    let text = std::fs::read_to_string(&learning_file).unwrap();
    let types: Vec<String> = text
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["type"].to_string())
        .collect();
    assert_eq!(types, ["\"agent_start\""], "{text}");
}

#[test]
fn falco_output_and_events_on_stdout_at_once_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (ok, stderr) = kanary(&[
        "run",
        "--falco-output",
        "-",
        "--data-dir",
        dir.path().to_str().unwrap(),
    ]);
    assert!(!ok);
    assert!(
        stderr.contains("--falco-output") && stderr.contains("--events"),
        "{stderr}"
    );
}
