//! One run of the suite: the deployment starts under a fresh agent, lives normally while the
//! agent learns and then for a normal period, then each attack runs in turn; the report says
//! what was detected, how fast, about which container, and what was raised in vain.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::agent::Agent;
use crate::attacker::Attacker;
use crate::deploy::{self, container_name, image_of, Running};
use crate::docker::{self, spawn_exec, wait_limited};
use crate::score::{NormalPeriod, Report, RunInfo, ScenarioOutcome, SeenAlert};
use crate::spec::{Action, Deployment, Scenario};

/// How often the run reads the agent's records and checks the schedule.
const TICK: Duration = Duration::from_millis(250);

/// A script runs at most this long past its scenario's timeout before it is killed.
const SCRIPT_GRACE: Duration = Duration::from_secs(30);

/// What to run and where.
#[derive(Debug, Clone)]
pub struct Options {
    /// The suite directory (`deployment.toml`, `deployment/`, `attacks/`).
    pub suite: PathBuf,
    /// The agent binary.
    pub kanary: PathBuf,
    /// The agent's configuration file.
    pub config: PathBuf,
    /// Learning time.
    pub learn_for: Duration,
    /// Normal period after learning.
    pub normal_for: Duration,
    /// The short form: only scenarios marked `short`.
    pub short: bool,
    /// Only scenarios whose id starts with one of these (all when empty).
    pub only: Vec<String>,
    /// Leave the deployment and the run's files in place afterwards.
    pub keep: bool,
}

/// The suite's files, validated.
pub struct Suite {
    /// The deployment.
    pub deployment: Deployment,
    /// The scenarios selected, in order.
    pub scenarios: Vec<Scenario>,
}

impl Suite {
    /// Loads and validates the suite, selecting scenarios as `options` say.
    pub fn load(options: &Options) -> Result<Suite> {
        let deployment = Deployment::load(&options.suite.join("deployment.toml"), &options.suite)?;
        let all = Scenario::load_all(&options.suite.join("attacks"), &deployment)?;
        let scenarios: Vec<Scenario> = all
            .into_iter()
            .filter(|s| !options.short || s.short)
            .filter(|s| {
                options.only.is_empty() || options.only.iter().any(|p| s.id.starts_with(p.as_str()))
            })
            .collect();
        if scenarios.is_empty() {
            bail!("no scenario selected (--short keeps those with `short = true`; --only matches id prefixes)");
        }
        Ok(Suite {
            deployment,
            scenarios,
        })
    }
}

/// Runs the suite; the report, also when scenarios failed to detect (that is a result, not an
/// error). Errors are for a run that could not be carried out.
pub fn run(options: &Options, info: RunInfo) -> Result<Report> {
    let suite = Suite::load(options)?;
    deploy::build_images(&suite.deployment, &options.suite)?;
    let work = tempfile::Builder::new()
        .prefix("kanary-scenarios-")
        .tempdir()?;
    let result = run_in(options, info, suite, work.path());
    if options.keep || result.is_err() {
        let kept = work.keep();
        eprintln!(
            "kanary-scenarios: the agent's records and log are kept in {}",
            kept.display()
        );
    }
    result
}

fn run_in(options: &Options, info: RunInfo, suite: Suite, work: &Path) -> Result<Report> {
    // Ctrl-C or SIGTERM: the run stops at its next tick and cleans up like any failed run.
    let interrupted = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(signal, Arc::clone(&interrupted))?;
    }
    let agent = Agent::start(&options.kanary, &options.config, options.learn_for, work)?;
    let deployment = Running::start(suite.deployment.clone())?;
    let mut run = Run {
        agent,
        deployment,
        clock: Instant::now(),
        notes: Vec::new(),
        interrupted,
    };
    let result = run.all(options, &suite, info);
    let Run {
        agent, deployment, ..
    } = run;
    let stopped = agent.stop();
    if !options.keep {
        if let Err(e) = deployment.remove() {
            eprintln!("kanary-scenarios: removing the deployment: {e:#}");
        }
    }
    let report = result?;
    stopped?;
    Ok(report)
}

struct Run {
    agent: Agent,
    deployment: Running,
    clock: Instant,
    notes: Vec<String>,
    interrupted: Arc<AtomicBool>,
}

impl Run {
    fn now_s(&self) -> f64 {
        self.clock.elapsed().as_secs_f64()
    }

    fn all(&mut self, options: &Options, suite: &Suite, info: RunInfo) -> Result<Report> {
        let attacker = Attacker::start(&self.deployment.gateway()?)?;
        let spec = &suite.deployment;

        eprintln!(
            "kanary-scenarios: learning for {}",
            humantime::format_duration(options.learn_for)
        );
        self.deployment.take_container_hours();
        self.live(options.learn_for, spec.schedule(options.learn_for))?;
        self.wait_until_detecting(spec, options.learn_for)?;
        let learnt_at = self.now_s();
        let learning = NormalPeriod::judge(
            0.0,
            learnt_at,
            self.deployment.take_container_hours(),
            &self.own_alerts(),
        );

        eprintln!(
            "kanary-scenarios: normal period of {}",
            humantime::format_duration(options.normal_for)
        );
        self.live(options.normal_for, spec.schedule(options.normal_for))?;
        let normal_end = self.now_s();
        let normal = NormalPeriod::judge(
            learnt_at,
            normal_end,
            self.deployment.take_container_hours(),
            &self.own_alerts(),
        );

        // Attacks meet the deployment as it started (maintenance may have scaled it).
        for service in &spec.services {
            if self.deployment.containers_of(&service.name).len() != service.replicas as usize {
                self.deployment.apply(&Action::Scale {
                    service: service.name.clone(),
                    replicas: service.replicas,
                });
            }
        }
        let mut outcomes = Vec::new();
        for scenario in &suite.scenarios {
            outcomes.push(self.attack(scenario, &attacker)?);
        }
        self.notes.extend(self.deployment.take_problems());
        let bad = self.agent.log().bad_lines;
        if bad > 0 {
            self.notes
                .push(format!("{bad} lines of the agent's records did not parse"));
        }
        self.notes.push(format!(
            "the stand-in attacker received {} bytes",
            attacker.received()
        ));
        Ok(Report::new(
            info,
            learning,
            normal,
            outcomes,
            std::mem::take(&mut self.notes),
        ))
    }

    /// Reads records and applies `events` (offsets from now) for `length`.
    fn live(&mut self, length: Duration, events: Vec<(Duration, Action)>) -> Result<()> {
        let start = Instant::now();
        let mut events = events.into_iter().peekable();
        while start.elapsed() < length {
            while let Some((_, action)) = events.next_if(|(at, _)| *at <= start.elapsed()) {
                self.deployment.apply(&action);
            }
            self.tick()?;
        }
        Ok(())
    }

    fn tick(&mut self) -> Result<()> {
        std::thread::sleep(TICK);
        if self.interrupted.load(Ordering::Relaxed) {
            bail!("interrupted");
        }
        let now = self.now_s();
        self.agent.poll(now)?;
        self.deployment.tick();
        Ok(())
    }

    /// After the learning time, waits (living on, plain load only) until every service's
    /// image detects; a baseline that needs longer is noted, not waited for forever.
    fn wait_until_detecting(&mut self, spec: &Deployment, learn_for: Duration) -> Result<()> {
        let limit = Instant::now() + (learn_for / 2).max(Duration::from_secs(60));
        loop {
            let missing: Vec<String> = spec
                .services
                .iter()
                .map(|s| image_of(&s.name))
                .filter(|image| !self.agent.log().detecting.contains(image))
                .collect();
            if missing.is_empty() {
                return Ok(());
            }
            if Instant::now() >= limit {
                self.notes.push(format!(
                    "still learning when the normal period began: {}",
                    missing.join(", ")
                ));
                return Ok(());
            }
            self.tick()?;
        }
    }

    /// The alerts about the deployment's containers (the agent watches the whole host).
    fn own_alerts(&self) -> Vec<SeenAlert> {
        self.agent
            .log()
            .alerts
            .iter()
            .filter(|a| self.deployment.owns(&a.container))
            .cloned()
            .collect()
    }

    fn attack(&mut self, scenario: &Scenario, attacker: &Attacker) -> Result<ScenarioOutcome> {
        let target = container_name(&scenario.target, 1);
        let runs_in = container_name(scenario.runs_in(), 1);
        // An incident still open on the target would absorb the new evidence into an old alert.
        let quiet_by = Instant::now() + Duration::from_secs(90);
        while self.agent.log().has_open_incident(&target) && Instant::now() < quiet_by {
            self.tick()?;
        }
        eprintln!("kanary-scenarios: scenario {} in {runs_in}", scenario.id);
        let t0 = self.now_s();
        let started = Instant::now();
        let child = spawn_exec(&runs_in, &attacker.env(), &scenario.script)?;
        let limit = scenario.timeout + SCRIPT_GRACE;
        let script = std::thread::spawn(move || wait_limited(child, limit));
        loop {
            self.tick()?;
            let found = self
                .agent
                .log()
                .alerts
                .iter()
                .any(|a| a.at_s >= t0 && a.container == target && a.class == scenario.class);
            if script.is_finished() && (found || started.elapsed() >= scenario.timeout) {
                break;
            }
        }
        let (exit, output) = script
            .join()
            .unwrap_or((None, "the script's waiter panicked".into()));
        if exit.is_none() {
            self.notes.push(format!(
                "{}: script killed at its time limit ({limit:?})",
                scenario.id
            ));
        }
        if let Some(cleanup) = &scenario.cleanup {
            if let Err(e) = docker::exec(&runs_in, cleanup, Duration::from_secs(60)) {
                self.notes
                    .push(format!("{}: cleanup failed: {e:#}", scenario.id));
            }
        }
        let mut outcome =
            ScenarioOutcome::judge(scenario, &target, &runs_in, t0, exit, &self.own_alerts());
        outcome.script_output = output;
        eprintln!(
            "kanary-scenarios: {}: detected {}, right class {}, time {:?}",
            scenario.id, outcome.detected, outcome.right_class, outcome.time_to_detect_s
        );
        Ok(outcome)
    }
}

/// Writes the report as `<stamp>-<host>.json` and `latest.{json,md}` in `out`; the paths
/// written.
pub fn write_report(report: &Report, out: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let stamp: String = report.run.started.chars().filter(|c| *c != ':').collect();
    let json = serde_json::to_string_pretty(report)?;
    let paths = vec![
        out.join(format!("{stamp}-{}.json", report.run.host)),
        out.join("latest.json"),
        out.join("latest.md"),
    ];
    std::fs::write(&paths[0], &json)?;
    std::fs::write(&paths[1], &json)?;
    std::fs::write(&paths[2], report.markdown())?;
    Ok(paths)
}
