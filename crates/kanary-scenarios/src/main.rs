//! `kanary-scenarios`: kanary's attack and workload scenario suite. Starts a realistic
//! deployment (web, app, cache, db, load, jobs, maintenance) under a fresh kanary agent, lets it
//! learn, measures false alerts over a normal period, injects each attack of `attacks/` and
//! writes a detection-accuracy report (Markdown and JSON). See `scenarios/README.md`.
#![deny(missing_docs)]

mod agent;
mod attacker;
mod deploy;
mod docker;
mod run;
mod score;
mod spec;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use anyhow::{bail, Context, Result};
use clap::Parser;

use run::{Options, Suite};
use score::RunInfo;

/// Learning and normal period of the full suite: learning as long as kanary's default
/// (`[detection] learn_for`), so that the figures are what a default installation gets.
const FULL_LEARN: Duration = Duration::from_secs(15 * 60);
const FULL_NORMAL: Duration = Duration::from_secs(10 * 60);
/// Learning and normal period of the short form (`--short`).
const SHORT_LEARN: Duration = Duration::from_secs(150);
const SHORT_NORMAL: Duration = Duration::from_secs(60);

/// Runs kanary's scenario suite and writes a detection-accuracy report.
#[derive(Debug, Parser)]
#[command(version)]
struct Cli {
    /// The suite directory.
    #[arg(long, default_value = "scenarios")]
    suite: PathBuf,
    /// Where to write the report [default: <suite>/results].
    #[arg(long)]
    out: Option<PathBuf>,
    /// The kanary binary [default: `kanary` beside this program].
    #[arg(long)]
    kanary: Option<PathBuf>,
    /// The agent's configuration [default: <suite>/kanary.toml].
    #[arg(long)]
    config: Option<PathBuf>,
    /// Short form, as CI runs it: scenarios marked `short`, 150 s learning, 60 s normal period.
    #[arg(long)]
    short: bool,
    /// Learning time (default 15m, kanary's own default; 150s with --short).
    #[arg(long, value_parser = humantime::parse_duration)]
    learn_for: Option<Duration>,
    /// Normal period after learning, where every alert is a false one (default 10m; 60s with --short).
    #[arg(long, value_parser = humantime::parse_duration)]
    normal_for: Option<Duration>,
    /// Only scenarios whose id (file stem) starts with one of these; repeatable.
    #[arg(long)]
    only: Vec<String>,
    /// Leave the deployment running and keep the agent's records afterwards.
    #[arg(long)]
    keep: bool,
    /// Validate the suite's files and list the scenarios, then exit (no Docker, no root).
    #[arg(long)]
    check: bool,
}

fn main() -> ExitCode {
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("kanary-scenarios: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> Result<()> {
    let cli = Cli::parse();
    let options = Options {
        kanary: match &cli.kanary {
            Some(path) => path.clone(),
            None => std::env::current_exe()?.with_file_name("kanary"),
        },
        config: cli
            .config
            .clone()
            .unwrap_or_else(|| cli.suite.join("kanary.toml")),
        learn_for: cli
            .learn_for
            .unwrap_or(if cli.short { SHORT_LEARN } else { FULL_LEARN }),
        normal_for: cli
            .normal_for
            .unwrap_or(if cli.short { SHORT_NORMAL } else { FULL_NORMAL }),
        short: cli.short,
        only: cli.only.clone(),
        keep: cli.keep,
        suite: cli.suite.clone(),
    };
    let suite = Suite::load(&options)?;
    let config = std::fs::read_to_string(&options.config).with_context(|| {
        format!(
            "reading the agent configuration {}",
            options.config.display()
        )
    })?;
    if cli.check {
        for s in &suite.scenarios {
            println!("{}\t{}\t{}", s.id, score::class_name(s.class), s.target);
        }
        println!(
            "{} scenarios, {} services: the suite is valid",
            suite.scenarios.len(),
            suite.deployment.services.len()
        );
        return Ok(());
    }
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        bail!("the suite runs the kanary agent (eBPF) and Docker: run it as root");
    }
    if !options.kanary.is_file() {
        bail!(
            "no kanary binary at {} (build it with `cargo build --release -p kanary`, or pass --kanary)",
            options.kanary.display()
        );
    }
    let info = RunInfo {
        kanary_version: version_of(&options.kanary)?,
        commit: git_describe(&options.suite),
        started: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        host: std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default(),
        short: options.short,
        learn_for_s: options.learn_for.as_secs_f64(),
        normal_for_s: options.normal_for.as_secs_f64(),
        config,
    };
    let report = run::run(&options, info)?;
    let out = cli
        .out
        .clone()
        .unwrap_or_else(|| options.suite.join("results"));
    for path in run::write_report(&report, &out)? {
        eprintln!("kanary-scenarios: wrote {}", path.display());
    }
    print!("{}", report.markdown());
    Ok(())
}

fn version_of(kanary: &std::path::Path) -> Result<String> {
    let out = std::process::Command::new(kanary)
        .arg("--version")
        .output()
        .with_context(|| format!("running {} --version", kanary.display()))?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

fn git_describe(dir: &std::path::Path) -> Option<String> {
    let out = std::process::Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(["describe", "--always", "--dirty"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}
