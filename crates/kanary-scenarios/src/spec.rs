//! The suite's files: `deployment.toml` (the normal deployment and its normal life) and
//! `attacks/*.toml` (one anomaly scenario each). Parsing and validation only, no I/O beyond
//! reading the files, so every rule here is unit-tested.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use kanary_model::record::AlertClass;
use serde::Deserialize;

/// `deployment.toml`: the services, the periodic jobs and the maintenance a real host sees.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Deployment {
    /// The user-defined bridge network every container joins (service names resolve on it).
    pub network: String,
    /// Long-running services, started in this order.
    #[serde(rename = "service")]
    pub services: Vec<Service>,
    /// Short-lived containers started on a schedule.
    #[serde(default, rename = "job")]
    pub jobs: Vec<Job>,
    /// Normal operations: restarts, scaling, commands such as log rotation.
    #[serde(default)]
    pub maintenance: Vec<Maintenance>,
}

/// One long-running service.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Service {
    /// Its name: network alias of every replica, and the name of its image.
    pub name: String,
    /// Directory holding its Dockerfile, relative to the suite directory.
    pub build: PathBuf,
    /// Replicas at start.
    #[serde(default = "one")]
    pub replicas: u32,
    /// `docker run --memory`.
    pub memory: Option<String>,
    /// `docker run --pids-limit`.
    pub pids_limit: Option<u32>,
    /// `docker run --cap-add`.
    #[serde(default)]
    pub cap_add: Vec<String>,
    /// Environment variables.
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// A shell command that exits 0 once the service is ready, run inside it.
    pub ready: Option<String>,
}

fn one() -> u32 {
    1
}

/// A job: a container started every `every`, removed when it exits.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Job {
    /// Its name (and its image's).
    pub name: String,
    /// Directory holding its Dockerfile, relative to the suite directory.
    pub build: PathBuf,
    /// How often it runs.
    #[serde(with = "humantime_serde")]
    pub every: Duration,
}

/// One maintenance entry, as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Maintenance {
    /// `restart`, `scale` or `exec`.
    pub what: MaintenanceKind,
    /// The service it acts on.
    pub service: String,
    /// When, as a fraction of each phase (0..=1); exclusive with `every`.
    pub at: Option<f64>,
    /// Repeated this often instead; exclusive with `at`.
    #[serde(default, with = "humantime_serde")]
    pub every: Option<Duration>,
    /// `scale`: the replicas to scale to.
    pub replicas: Option<u32>,
    /// `exec`: the shell command run in every replica.
    pub command: Option<String>,
}

/// What a maintenance entry does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaintenanceKind {
    /// `docker restart` every replica.
    Restart,
    /// Start or remove replicas to reach `replicas`.
    Scale,
    /// `docker exec` a command in every replica.
    Exec,
}

/// A maintenance action, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Restart every replica of the service.
    Restart {
        /// The service.
        service: String,
    },
    /// Scale the service.
    Scale {
        /// The service.
        service: String,
        /// Replicas wanted.
        replicas: u32,
    },
    /// Run a command in every replica of the service.
    Exec {
        /// The service.
        service: String,
        /// The shell command.
        command: String,
    },
    /// Start one run of a job.
    Job {
        /// The job's name.
        name: String,
    },
}

impl Deployment {
    /// Reads and validates `path`; relative `build` directories are resolved against `suite`.
    pub fn load(path: &Path, suite: &Path) -> Result<Deployment> {
        let text =
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let deployment = Self::parse(&text).with_context(|| format!("in {}", path.display()))?;
        for dir in deployment.build_dirs() {
            let dockerfile = suite.join(dir).join("Dockerfile");
            if !dockerfile.is_file() {
                bail!("{}: no such Dockerfile", dockerfile.display());
            }
        }
        Ok(deployment)
    }

    /// Parses and validates the text of a `deployment.toml`.
    pub fn parse(text: &str) -> Result<Deployment> {
        let deployment: Deployment = toml::from_str(text)?;
        deployment.validate()?;
        Ok(deployment)
    }

    fn validate(&self) -> Result<()> {
        valid_name("network", &self.network)?;
        if self.services.is_empty() {
            bail!("no [[service]]");
        }
        let mut names = BTreeSet::new();
        for name in self
            .services
            .iter()
            .map(|s| &s.name)
            .chain(self.jobs.iter().map(|j| &j.name))
        {
            valid_name("service or job name", name)?;
            if !names.insert(name.as_str()) {
                bail!("name {name:?} is used twice");
            }
        }
        for service in &self.services {
            if service.replicas == 0 {
                bail!("service {:?}: replicas must be at least 1", service.name);
            }
        }
        for job in &self.jobs {
            if job.every < Duration::from_secs(1) {
                bail!("job {:?}: every must be at least 1s", job.name);
            }
        }
        for entry in &self.maintenance {
            entry.action(self)?;
            match (entry.at, entry.every) {
                (Some(at), None) if (0.0..=1.0).contains(&at) => {}
                (Some(at), None) => bail!(
                    "maintenance of {:?}: at = {at} is not in 0..=1",
                    entry.service
                ),
                (None, Some(every)) if every >= Duration::from_secs(1) => {}
                (None, Some(_)) => bail!(
                    "maintenance of {:?}: every must be at least 1s",
                    entry.service
                ),
                _ => bail!(
                    "maintenance of {:?}: give exactly one of `at` and `every`",
                    entry.service
                ),
            }
        }
        Ok(())
    }

    /// The service called `name`.
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }

    /// Every image directory: services, then jobs.
    pub fn build_dirs(&self) -> impl Iterator<Item = &Path> {
        self.services
            .iter()
            .map(|s| s.build.as_path())
            .chain(self.jobs.iter().map(|j| j.build.as_path()))
    }

    /// The normal life of a phase of `length`: every maintenance action and job run, by offset
    /// from the phase's start, in time order. Repeated entries start half a period in, so that
    /// a phase's first moments are plain load.
    pub fn schedule(&self, length: Duration) -> Vec<(Duration, Action)> {
        let repeat = |every: Duration, action: Action| {
            let times = std::iter::successors(Some(every / 2), move |at| Some(*at + every));
            times
                .take_while(|at| *at < length)
                .map(move |at| (at, action.clone()))
        };
        let mut events: Vec<(Duration, Action)> = Vec::new();
        for job in &self.jobs {
            events.extend(repeat(
                job.every,
                Action::Job {
                    name: job.name.clone(),
                },
            ));
        }
        for entry in &self.maintenance {
            // Validated at load.
            let Ok(action) = entry.action(self) else {
                continue;
            };
            match (entry.at, entry.every) {
                (Some(at), _) => events.push((length.mul_f64(at), action)),
                (None, Some(every)) => events.extend(repeat(every, action)),
                (None, None) => {}
            }
        }
        events.sort_by_key(|(at, _)| *at);
        events
    }
}

impl Maintenance {
    /// The action this entry takes, checked against the deployment.
    pub fn action(&self, deployment: &Deployment) -> Result<Action> {
        let service = self.service.clone();
        if deployment.service(&service).is_none() {
            bail!("maintenance names service {service:?}, which the deployment does not have");
        }
        Ok(match (self.what, self.replicas, &self.command) {
            (MaintenanceKind::Restart, None, None) => Action::Restart { service },
            (MaintenanceKind::Scale, Some(replicas), None) if replicas >= 1 => {
                Action::Scale { service, replicas }
            }
            (MaintenanceKind::Exec, None, Some(command)) if !command.trim().is_empty() => {
                Action::Exec {
                    service,
                    command: command.clone(),
                }
            }
            (MaintenanceKind::Restart, ..) => {
                bail!("maintenance restart of {service:?}: takes neither replicas nor command")
            }
            (MaintenanceKind::Scale, ..) => {
                bail!("maintenance scale of {service:?}: needs replicas >= 1 and no command")
            }
            (MaintenanceKind::Exec, ..) => {
                bail!("maintenance exec in {service:?}: needs a command and no replicas")
            }
        })
    }
}

/// One attack scenario (`attacks/<NN>-<slug>.toml`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// The file's stem (`07-disk-fill`): the scenario's id in reports.
    #[serde(skip)]
    pub id: String,
    /// What the attacker does and why it is anomalous.
    pub description: String,
    /// The alert class it must produce.
    pub class: AlertClass,
    /// The service whose first replica must be alerted.
    pub target: String,
    /// The service whose first replica runs the script (default: the target).
    pub run_in: Option<String>,
    /// How long to wait for the alert after the script starts.
    #[serde(default = "default_timeout", with = "humantime_serde")]
    pub timeout: Duration,
    /// Part of the short form (CI) of the suite.
    #[serde(default)]
    pub short: bool,
    /// The attack: a POSIX shell script.
    pub script: String,
    /// Run the same way afterwards to return the container to normal.
    pub cleanup: Option<String>,
}

fn default_timeout() -> Duration {
    Duration::from_secs(30)
}

impl Scenario {
    /// The service the script runs in.
    pub fn runs_in(&self) -> &str {
        self.run_in.as_deref().unwrap_or(&self.target)
    }

    /// Parses the text of scenario `id`, checking it against `deployment`.
    pub fn parse(id: &str, text: &str, deployment: &Deployment) -> Result<Scenario> {
        let mut scenario: Scenario = toml::from_str(text)?;
        scenario.id = id.to_string();
        for service in [scenario.target.as_str(), scenario.runs_in()] {
            if deployment.service(service).is_none() {
                bail!("service {service:?} is not in the deployment");
            }
        }
        if scenario.script.trim().is_empty() {
            bail!("empty script");
        }
        if scenario.timeout < Duration::from_secs(1) {
            bail!("timeout must be at least 1s");
        }
        Ok(scenario)
    }

    /// Every `*.toml` in `dir`, by file name.
    pub fn load_all(dir: &Path, deployment: &Deployment) -> Result<Vec<Scenario>> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(dir)
            .with_context(|| format!("reading {}", dir.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|path| path.extension().is_some_and(|e| e == "toml"))
            .collect();
        paths.sort();
        if paths.is_empty() {
            bail!("{}: no scenario files (*.toml)", dir.display());
        }
        paths
            .iter()
            .map(|path| {
                let id = path
                    .file_stem()
                    .map(|s| s.to_string_lossy().into_owned())
                    .unwrap_or_default();
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading {}", path.display()))?;
                Scenario::parse(&id, &text, deployment)
                    .with_context(|| format!("in {}", path.display()))
            })
            .collect()
    }
}

/// Docker accepts `[a-zA-Z0-9][a-zA-Z0-9_.-]*` for names; the suite also uses them in image tags,
/// which must be lower case.
fn valid_name(what: &str, name: &str) -> Result<()> {
    let ok = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "_.-".contains(c));
    if !ok {
        bail!("{what} {name:?}: use lower-case letters, digits, '_', '.', '-'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEPLOYMENT: &str = r#"
network = "net"
[[service]]
name = "web"
build = "deployment/web"
[[service]]
name = "app"
build = "deployment/app"
replicas = 2
env = { MODE = "prod" }
[[job]]
name = "report"
build = "deployment/job"
every = "60s"
[[maintenance]]
what = "scale"
service = "app"
replicas = 3
at = 0.5
[[maintenance]]
what = "exec"
service = "web"
command = "rotate"
every = "90s"
"#;

    fn deployment() -> Deployment {
        Deployment::parse(DEPLOYMENT).expect("valid deployment")
    }

    fn error_of(text: &str) -> String {
        format!(
            "{:#}",
            Deployment::parse(text).expect_err("invalid deployment")
        )
    }

    #[test]
    fn parses_services_jobs_and_maintenance() {
        let d = deployment();
        assert_eq!(d.services.len(), 2);
        assert_eq!(d.service("app").map(|s| s.replicas), Some(2));
        assert_eq!(d.service("web").map(|s| s.replicas), Some(1));
        assert_eq!(d.jobs[0].every, Duration::from_secs(60));
        assert_eq!(d.build_dirs().count(), 3);
    }

    #[test]
    fn schedule_orders_jobs_and_maintenance_within_the_phase() {
        let events = deployment().schedule(Duration::from_secs(200));
        let at: Vec<u64> = events.iter().map(|(t, _)| t.as_secs()).collect();
        // report at 30, 90, 150; rotate at 45, 135; scale at 100.
        assert_eq!(at, vec![30, 45, 90, 100, 135, 150]);
        assert_eq!(
            events[3].1,
            Action::Scale {
                service: "app".into(),
                replicas: 3
            }
        );
        assert_eq!(
            events[1].1,
            Action::Exec {
                service: "web".into(),
                command: "rotate".into()
            }
        );
    }

    #[test]
    fn rejects_bad_deployments_naming_the_problem() {
        assert!(error_of("network = \"n\"\nservice = []\n").contains("no [[service]]"));
        let twice = "network = \"n\"\n[[service]]\nname = \"a\"\nbuild = \"x\"\n[[service]]\nname = \"a\"\nbuild = \"y\"\n";
        assert!(error_of(twice).contains("used twice"));
        let upper = "network = \"n\"\n[[service]]\nname = \"Web\"\nbuild = \"x\"\n";
        assert!(error_of(upper).contains("lower-case"));
        let unknown = format!(
            "{DEPLOYMENT}[[maintenance]]\nwhat = \"restart\"\nservice = \"db\"\nat = 0.1\n"
        );
        assert!(error_of(&unknown).contains("\"db\""));
        let both = format!("{DEPLOYMENT}[[maintenance]]\nwhat = \"restart\"\nservice = \"web\"\nat = 0.1\nevery = \"5s\"\n");
        assert!(error_of(&both).contains("exactly one of"));
        let late = format!(
            "{DEPLOYMENT}[[maintenance]]\nwhat = \"restart\"\nservice = \"web\"\nat = 1.5\n"
        );
        assert!(error_of(&late).contains("not in 0..=1"));
        let scale =
            format!("{DEPLOYMENT}[[maintenance]]\nwhat = \"scale\"\nservice = \"web\"\nat = 0.1\n");
        assert!(error_of(&scale).contains("needs replicas"));
        let typo = format!(
            "{DEPLOYMENT}[[maintenance]]\nwhat = \"reboot\"\nservice = \"web\"\nat = 0.1\n"
        );
        assert!(error_of(&typo).contains("reboot"));
        let field = "network = \"n\"\nextra = 1\n[[service]]\nname = \"a\"\nbuild = \"x\"\n";
        assert!(error_of(field).contains("extra"));
    }

    #[test]
    fn parses_a_scenario_and_checks_its_services() {
        let d = deployment();
        let text = "description = \"d\"\nclass = \"unexpected_process\"\ntarget = \"app\"\nrun_in = \"web\"\nscript = \"id\"\n";
        let s = Scenario::parse("01-x", text, &d).expect("valid scenario");
        assert_eq!(s.id, "01-x");
        assert_eq!(s.class, AlertClass::UnexpectedProcess);
        assert_eq!(s.runs_in(), "web");
        assert_eq!(s.timeout, Duration::from_secs(30));
        assert!(!s.short);

        let bad_class = text.replace("unexpected_process", "bad_vibes");
        let e = format!(
            "{:#}",
            Scenario::parse("x", &bad_class, &d).expect_err("bad class")
        );
        assert!(e.contains("bad_vibes"), "{e}");
        let bad_target = text.replace("\"app\"", "\"db\"");
        let e = format!(
            "{:#}",
            Scenario::parse("x", &bad_target, &d).expect_err("bad target")
        );
        assert!(e.contains("\"db\""), "{e}");
        let empty = text.replace("\"id\"", "\"  \"");
        assert!(Scenario::parse("x", &empty, &d).is_err());
    }
}
