//! The Docker CLI, as a user would type it. The suite drives Docker through `docker` rather than
//! the engine API so that every step it takes can be replayed by hand from its log.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

/// Label on everything the suite creates, so that leftovers of an interrupted run are found.
pub const LABEL: &str = "org.kanary.scenarios";

/// Runs `docker args...`; its trimmed stdout, or an error carrying its stderr.
pub fn docker(args: &[&str]) -> Result<String> {
    let output = Command::new("docker")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .context("running docker (is the docker CLI installed?)")?;
    checked(args, output)
}

fn checked(args: &[&str], output: Output) -> Result<String> {
    if !output.status.success() {
        bail!(
            "docker {} failed ({}): {}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_string())
}

/// Builds the image in `dir` as `tag` with the classic builder (no registry is needed for a
/// local base image).
pub fn build(dir: &std::path::Path, tag: &str) -> Result<()> {
    let dir = dir.to_string_lossy();
    let args = ["build", "-q", "-t", tag, &dir];
    let output = Command::new("docker")
        .args(args)
        .env("DOCKER_BUILDKIT", "0")
        .stdin(Stdio::null())
        .output()
        .context("running docker build")?;
    checked(&args, output).map(|_| ())
}

/// `docker exec` of a shell script in `container` with `env`, started in the background.
pub fn spawn_exec(container: &str, env: &[(String, String)], script: &str) -> Result<Child> {
    let mut command = Command::new("docker");
    command.arg("exec");
    for (key, value) in env {
        command.arg("-e").arg(format!("{key}={value}"));
    }
    command
        .args([container, "sh", "-c", script])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting docker exec in {container}"))
}

/// Waits for `child` until `limit`; kills it past that. Its exit code (`None` when killed or
/// ended by a signal) and the tail of its output.
pub fn wait_limited(mut child: Child, limit: Duration) -> (Option<i32>, String) {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(_)) => break,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(100)),
            _ => {
                let _ = child.kill();
                break;
            }
        }
    }
    match child.wait_with_output() {
        Ok(output) => {
            let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&output.stderr));
            let tail: String = text
                .chars()
                .rev()
                .take(400)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            (output.status.code(), tail.trim().to_string())
        }
        Err(e) => (None, format!("waiting for docker exec: {e}")),
    }
}

/// Runs a shell command in `container` and waits up to `limit` for it; `Ok` if it exits 0.
pub fn exec(container: &str, script: &str, limit: Duration) -> Result<()> {
    let child = spawn_exec(container, &[], script)?;
    match wait_limited(child, limit) {
        (Some(0), _) => Ok(()),
        (code, output) => bail!("`{script}` in {container} exited with {code:?}: {output}"),
    }
}

/// Removes every container and network of earlier runs (found by [`LABEL`]).
pub fn remove_labelled() -> Result<()> {
    let filter = format!("label={LABEL}");
    let containers = docker(&["ps", "-aq", "--filter", &filter])?;
    let ids: Vec<&str> = containers.split_whitespace().collect();
    if !ids.is_empty() {
        let mut args = vec!["rm", "-f"];
        args.extend(ids);
        docker(&args)?;
    }
    for network in docker(&["network", "ls", "-q", "--filter", &filter])?.split_whitespace() {
        docker(&["network", "rm", network])?;
    }
    Ok(())
}
