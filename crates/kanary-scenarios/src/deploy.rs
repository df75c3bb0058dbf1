//! The deployment while it runs: its containers, their replicas, the normal life applied to
//! them, and the container-time they add up to (the denominator of false alerts per
//! container-hour).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::docker::{self, docker, LABEL};
use crate::spec::{Action, Deployment, Service};

/// Prefix of every container name, so that the deployment stands out among a host's others.
pub const PREFIX: &str = "scn-";

/// How long a service may take to pass its `ready` check.
const READY_TIMEOUT: Duration = Duration::from_secs(90);

/// The local image a service or job runs.
pub fn image_of(name: &str) -> String {
    format!("kanary-scn/{name}:latest")
}

/// The container name of replica `k` (1-based) of `service`: the first is `scn-<service>`, the
/// others `scn-<service>-<k>`.
pub fn container_name(service: &str, k: u32) -> String {
    if k == 1 {
        format!("{PREFIX}{service}")
    } else {
        format!("{PREFIX}{service}-{k}")
    }
}

/// Builds the image of every service and job of `spec` (directories relative to `suite`).
pub fn build_images(spec: &Deployment, suite: &Path) -> Result<()> {
    for (name, dir) in spec
        .services
        .iter()
        .map(|s| (&s.name, &s.build))
        .chain(spec.jobs.iter().map(|j| (&j.name, &j.build)))
    {
        let dir: PathBuf = suite.join(dir);
        eprintln!(
            "kanary-scenarios: building {} from {}",
            image_of(name),
            dir.display()
        );
        docker::build(&dir, &image_of(name))
            .with_context(|| format!("building the image of {name}"))?;
    }
    Ok(())
}

/// A started deployment. Dropping it does not remove the containers: call [`Running::remove`].
pub struct Running {
    spec: Deployment,
    replicas: BTreeMap<String, u32>,
    /// Container time accumulated since the last [`Running::take_container_hours`].
    container_seconds: f64,
    last_tick: Instant,
    /// Job runs add their own time when they end (they run on their own threads).
    job_seconds: Arc<Mutex<f64>>,
    job_runs: u32,
    /// What went wrong in maintenance or jobs: reported, never fatal.
    problems: Arc<Mutex<Vec<String>>>,
}

impl Running {
    /// Removes leftovers of earlier runs, creates the network and starts every service, each
    /// ready before the next. The images must be built ([`build_images`]).
    pub fn start(spec: Deployment) -> Result<Running> {
        docker::remove_labelled().context("removing an earlier run's containers")?;
        docker(&["network", "create", "--label", LABEL, &spec.network])?;
        let mut running = Running {
            replicas: BTreeMap::new(),
            container_seconds: 0.0,
            last_tick: Instant::now(),
            job_seconds: Arc::new(Mutex::new(0.0)),
            job_runs: 0,
            problems: Arc::new(Mutex::new(Vec::new())),
            spec,
        };
        for service in running.spec.services.clone() {
            for k in 1..=service.replicas {
                running.start_replica(&service, k)?;
            }
            running
                .replicas
                .insert(service.name.clone(), service.replicas);
        }
        Ok(running)
    }

    /// The address the host has on the deployment's network: where the stand-in attacker
    /// listens, as a machine outside the containers.
    pub fn gateway(&self) -> Result<String> {
        let format = "{{range .IPAM.Config}}{{.Gateway}} {{end}}";
        let out = docker(&["network", "inspect", "-f", format, &self.spec.network])?;
        out.split_whitespace()
            .find(|ip| ip.contains('.'))
            .map(str::to_string)
            .with_context(|| format!("network {} has no IPv4 gateway", self.spec.network))
    }

    fn start_replica(&mut self, service: &Service, k: u32) -> Result<()> {
        self.tick();
        let name = container_name(&service.name, k);
        let image = image_of(&service.name);
        let mut args: Vec<String> = [
            "run",
            "-d",
            "--name",
            &name,
            "--hostname",
            &name,
            "--label",
            LABEL,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(["--network".into(), self.spec.network.clone()]);
        args.extend(["--network-alias".into(), service.name.clone()]);
        if let Some(memory) = &service.memory {
            args.extend(["--memory".into(), memory.clone()]);
        }
        if let Some(pids) = service.pids_limit {
            args.extend(["--pids-limit".into(), pids.to_string()]);
        }
        for cap in &service.cap_add {
            args.extend(["--cap-add".into(), cap.clone()]);
        }
        for (key, value) in &service.env {
            args.extend(["-e".into(), format!("{key}={value}")]);
        }
        args.push(image);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        docker(&args).with_context(|| format!("starting {name}"))?;
        self.wait_ready(service, &name)
    }

    fn wait_ready(&self, service: &Service, name: &str) -> Result<()> {
        let Some(ready) = &service.ready else {
            return Ok(());
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match docker::exec(name, ready, Duration::from_secs(10)) {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() >= deadline => {
                    let logs = docker(&["logs", "--tail", "20", name]).unwrap_or_default();
                    bail!("{name} not ready after {READY_TIMEOUT:?}: {e:#}\nits last log lines:\n{logs}")
                }
                Err(_) => std::thread::sleep(Duration::from_secs(1)),
            }
        }
    }

    /// The containers of `service` now running.
    pub fn containers_of(&self, service: &str) -> Vec<String> {
        let n = self.replicas.get(service).copied().unwrap_or(0);
        (1..=n).map(|k| container_name(service, k)).collect()
    }

    /// Whether `container` is one of the deployment's (services or jobs).
    pub fn owns(&self, container: &str) -> bool {
        container.starts_with(PREFIX)
    }

    /// Applies one normal-life action. Failures are recorded as problems for the report, not
    /// returned: a failed log rotation must not end the run.
    pub fn apply(&mut self, action: &Action) {
        self.tick();
        eprintln!("kanary-scenarios: normal life: {action:?}");
        if let Err(e) = self.try_apply(action) {
            self.problem(format!("{action:?}: {e:#}"));
        }
    }

    fn try_apply(&mut self, action: &Action) -> Result<()> {
        match action {
            Action::Restart { service } => {
                for name in self.containers_of(service) {
                    docker(&["restart", "-t", "5", &name])?;
                    if let Some(spec) = self.spec.service(service) {
                        self.wait_ready(spec, &name)?;
                    }
                }
            }
            Action::Scale { service, replicas } => {
                let spec = self
                    .spec
                    .service(service)
                    .cloned()
                    .context("unknown service")?;
                let have = self.replicas.get(service).copied().unwrap_or(0);
                for k in (have + 1)..=*replicas {
                    self.start_replica(&spec, k)?;
                    self.replicas.insert(service.clone(), k);
                }
                for k in ((*replicas + 1)..=have).rev() {
                    docker(&["rm", "-f", &container_name(service, k)])?;
                    self.replicas.insert(service.clone(), k - 1);
                }
            }
            Action::Exec { service, command } => {
                for name in self.containers_of(service) {
                    docker::exec(&name, command, Duration::from_secs(30))?;
                }
            }
            Action::Job { name } => self.run_job(name),
        }
        Ok(())
    }

    /// Starts one run of job `name` on its own thread; its container time is added when it ends.
    fn run_job(&mut self, name: &str) {
        self.job_runs += 1;
        let container = format!("{PREFIX}{name}-{}", self.job_runs);
        let args: Vec<String> = [
            "run",
            "--rm",
            "--name",
            &container,
            "--label",
            LABEL,
            "--network",
            &self.spec.network,
            &image_of(name),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let seconds = Arc::clone(&self.job_seconds);
        let problems = Arc::clone(&self.problems);
        std::thread::spawn(move || {
            let started = Instant::now();
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            if let Err(e) = docker(&args) {
                if let Ok(mut p) = problems.lock() {
                    p.push(format!("job {container}: {e:#}"));
                }
            }
            if let Ok(mut s) = seconds.lock() {
                *s += started.elapsed().as_secs_f64();
            }
        });
    }

    fn problem(&self, text: String) {
        eprintln!("kanary-scenarios: problem: {text}");
        if let Ok(mut p) = self.problems.lock() {
            p.push(text);
        }
    }

    /// Adds the services' container time since the last tick. Called often (every loop turn).
    pub fn tick(&mut self) {
        let now = Instant::now();
        let running: u32 = self.replicas.values().sum();
        self.container_seconds +=
            f64::from(running) * now.duration_since(self.last_tick).as_secs_f64();
        self.last_tick = now;
    }

    /// Container-hours (services and finished jobs) since the last call.
    pub fn take_container_hours(&mut self) -> f64 {
        self.tick();
        let jobs = self
            .job_seconds
            .lock()
            .map(|mut s| std::mem::take(&mut *s))
            .unwrap_or(0.0);
        (std::mem::take(&mut self.container_seconds) + jobs) / 3600.0
    }

    /// Problems met so far, drained.
    pub fn take_problems(&self) -> Vec<String> {
        self.problems
            .lock()
            .map(|mut p| std::mem::take(&mut *p))
            .unwrap_or_default()
    }

    /// Removes every container and the network.
    pub fn remove(&self) -> Result<()> {
        docker::remove_labelled()
    }
}
