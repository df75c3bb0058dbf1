//! `kanary`: the eBPF container anomaly detection agent.

mod agent;
mod budget;
mod clock;
mod detection;
mod enrich;
mod preflight;
mod registry;
mod serve;
mod sinks;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use kanary_model::config::Config;

/// Watches every container on this host with eBPF.
#[derive(Debug, Parser)]
#[command(name = "kanary", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Attach the collectors and write per-container records.
    Run(RunArgs),
    /// Print the effective configuration (defaults merged with --config) as TOML.
    Config {
        /// Configuration file (TOML).
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Evaluate a detector offline on a labelled data set (ADFA-LD, LID-DS 2021).
    Eval(kanary_detect::eval::EvalArgs),
    /// Manage the learnt per-image baselines: list, export, import, reset.
    Baseline {
        #[command(subcommand)]
        command: kanary_store::cli::BaselineCommand,
    },
    /// Show the alerts stored under --data-dir: filter by container, class, severity, time.
    Alerts {
        #[command(subcommand)]
        command: kanary_store::alerts_cli::AlertsCommand,
    },
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// Configuration file (TOML); every key has a default.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Where to write NDJSON records: `-` for stdout, or a file (appended to). Default: `-`,
    /// unless the configuration declares `[[sinks]]` (then only those, plus this when given).
    #[arg(long, value_name = "PATH")]
    events: Option<String>,
    /// Also write alerts in Falco's JSON output format (for falcosidekick and other Falco alert
    /// routers) to this file (appended to), or `-` for stdout: a `falco` sink.
    #[arg(long, value_name = "PATH")]
    falco_output: Option<String>,
    /// Directory for the agent's state.
    #[arg(long, default_value = "/var/lib/kanary")]
    data_dir: PathBuf,
    /// Stream every raw syscall of this container (name or id prefix); repeatable.
    #[arg(long = "trace", value_name = "CONTAINER")]
    trace: Vec<String>,
    /// How long a new image baseline learns before it detects, e.g. `15m`, `30s` (overrides
    /// `[detection] learn_for`, default 15m).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    learn_for: Option<std::time::Duration>,
    /// Serve `/metrics` and the JSON API (docs/api.md) on this address, or `none` (overrides
    /// `[http] listen`, default 127.0.0.1:9750). An address that is not loopback needs a token.
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// Bearer token every HTTP request must carry (also `KANARY_TOKEN`, `[http] token`).
    #[arg(long, value_name = "TOKEN")]
    token: Option<String>,
}

fn load_config(path: Option<&PathBuf>) -> Result<Config> {
    let Some(path) = path else {
        return Ok(Config::default());
    };
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("reading config {}", path.display()))?;
    Config::from_toml(&text).with_context(|| format!("invalid config {}", path.display()))
}

fn run(args: RunArgs) -> Result<()> {
    let mut config = load_config(args.config.as_ref())?;
    config
        .collectors
        .syscalls
        .trace_containers
        .extend(args.trace);
    if let Some(learn_for) = args.learn_for {
        config.detection.learn_for = learn_for;
    }
    // Before anything is touched: two outputs on one file is a usage error.
    sinks::add_command_line_sinks(
        &mut config,
        args.events.as_deref(),
        args.falco_output.as_deref(),
    )?;
    // Also a usage error: a non-loopback address without a token.
    let env_token = std::env::var("KANARY_TOKEN").ok();
    let listen = serve::resolve(
        &config.http,
        args.listen.as_deref(),
        args.token.as_deref(),
        env_token.as_deref(),
    )?;
    let host = preflight::check(config.agent.cgroup2_mount.as_deref())?;
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating --data-dir {}", args.data_dir.display()))?;
    let mut sinks = sinks::build(&config.sinks)?;
    if let Some(listen) = &listen {
        // The server is a sink: it sees every record the agent writes.
        let state = serve::shared();
        if serve::start(
            listen,
            state.clone(),
            args.data_dir.clone(),
            config.http.top_syscalls,
        )?
        .is_some()
        {
            sinks.observe("http", Box::new(serve::StateSink::new(state)));
        }
    }
    tracing::debug!(sinks = ?sinks.names(), "records go to these sinks");
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&stop))
            .context("installing signal handlers")?;
    }
    let agent = agent::Agent::start(config, host, Box::new(sinks), &args.data_dir)?;
    tracing::info!("kanary running");
    agent.run(stop)
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("KANARY_LOG")
                .unwrap_or_else(|_| "info".into()),
        )
        .init();
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(args) => run(args),
        Command::Config { config } => load_config(config.as_ref()).and_then(|config| {
            print!("{}", toml_of(&config)?);
            Ok(())
        }),
        Command::Eval(args) => kanary_detect::eval::run(&args).map_err(Into::into),
        Command::Baseline { command } => kanary_store::cli::run(
            &command,
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
            std::time::SystemTime::now(),
        )
        .map_err(Into::into),
        Command::Alerts { command } => kanary_store::alerts_cli::run(
            &command,
            &mut std::io::stdout().lock(),
            &mut std::io::stderr().lock(),
            std::time::SystemTime::now(),
        )
        .map_err(Into::into),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("kanary: error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn toml_of(config: &Config) -> Result<String> {
    Ok(toml::to_string_pretty(config)?)
}
