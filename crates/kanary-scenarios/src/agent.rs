//! The kanary agent under test: started as a user would (`kanary run` with the suite's
//! configuration), read back through its NDJSON records.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use kanary_model::record::{Record, RecordBody};

use crate::score::SeenAlert;

/// A running agent.
pub struct Agent {
    child: Child,
    stderr: PathBuf,
    log: EventLog,
}

impl Agent {
    /// Starts `kanary run` writing its records under `dir`, and waits until it has attached.
    pub fn start(kanary: &Path, config: &Path, learn_for: Duration, dir: &Path) -> Result<Agent> {
        let events = dir.join("events.ndjson");
        let stderr = dir.join("agent.log");
        File::create(&events).context("creating the events file")?;
        let child = Command::new(kanary)
            .arg("run")
            .arg("--config")
            .arg(config)
            .arg("--events")
            .arg(&events)
            .arg("--data-dir")
            .arg(dir.join("data"))
            .arg("--learn-for")
            .arg(humantime::format_duration(learn_for).to_string())
            .args(["--listen", "none"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(File::create(&stderr).context("creating the agent's log")?)
            .spawn()
            .with_context(|| format!("starting {}", kanary.display()))?;
        let mut agent = Agent {
            child,
            stderr,
            log: EventLog::open(&events)?,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        while !agent.log.started {
            if let Ok(Some(status)) = agent.child.try_wait() {
                bail!(
                    "kanary exited ({status}) before it attached:\n{}",
                    agent.stderr_tail()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "kanary did not attach within 60 s:\n{}",
                    agent.stderr_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
            agent.log.poll(0.0)?;
        }
        Ok(agent)
    }

    /// Reads the records written since the last call; `now_s` stamps the alerts among them.
    pub fn poll(&mut self, now_s: f64) -> Result<&EventLog> {
        if let Ok(Some(status)) = self.child.try_wait() {
            bail!(
                "kanary exited ({status}) during the run:\n{}",
                self.stderr_tail()
            );
        }
        self.log.poll(now_s)?;
        Ok(&self.log)
    }

    /// What has been read so far.
    pub fn log(&self) -> &EventLog {
        &self.log
    }

    /// Stops the agent with SIGINT as a user would, killing it if it does not stop in 30 s.
    pub fn stop(mut self) -> Result<()> {
        let pid = libc::pid_t::try_from(self.child.id()).context("agent pid")?;
        // SAFETY: kill(2) on the pid of a child we spawned and have not reaped.
        unsafe {
            libc::kill(pid, libc::SIGINT);
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        bail!("kanary did not stop within 30 s of SIGINT; killed")
    }

    fn stderr_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        // Stopped already, or an error path: never leave an agent attached to the host.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The agent's records, read as they are appended.
pub struct EventLog {
    reader: BufReader<File>,
    partial: String,
    /// The agent has written `agent_start`.
    pub started: bool,
    /// Every alert record, stamped with when it was read.
    pub alerts: Vec<SeenAlert>,
    /// Open incidents: id -> container name (removed by the incident's `ended` record).
    pub open: BTreeMap<String, String>,
    /// Images (references) whose baseline detects.
    pub detecting: BTreeSet<String>,
    /// Lines that did not parse as records.
    pub bad_lines: u64,
}

impl EventLog {
    fn open(path: &Path) -> Result<EventLog> {
        let file = File::open(path).with_context(|| format!("opening {}", path.display()))?;
        Ok(EventLog {
            reader: BufReader::new(file),
            partial: String::new(),
            started: false,
            alerts: Vec::new(),
            open: BTreeMap::new(),
            detecting: BTreeSet::new(),
            bad_lines: 0,
        })
    }

    fn poll(&mut self, now_s: f64) -> Result<()> {
        loop {
            let n = self
                .reader
                .read_line(&mut self.partial)
                .context("reading the events file")?;
            // A line without its newline is still being written: keep it for the next poll.
            if n == 0 || !self.partial.ends_with('\n') {
                return Ok(());
            }
            let line = std::mem::take(&mut self.partial);
            match serde_json::from_str::<Record>(&line) {
                Ok(record) => self.take(record, now_s),
                Err(_) => self.bad_lines += 1,
            }
        }
    }

    fn take(&mut self, record: Record, now_s: f64) {
        match record.body {
            RecordBody::AgentStart(_) => self.started = true,
            RecordBody::Alert(alert) => {
                // An incident's closing record is not a detection: only opening and update
                // records are kept.
                if alert.ended {
                    self.open.remove(&alert.id);
                } else {
                    self.open
                        .insert(alert.id.clone(), alert.container.name.clone());
                    self.alerts.push(SeenAlert::of(&alert, now_s));
                }
            }
            RecordBody::Learning(learning) if learning.phase == "detecting" => {
                self.detecting.insert(learning.image);
            }
            _ => {}
        }
    }

    /// Whether `container` has an open incident.
    pub fn has_open_incident(&self, container: &str) -> bool {
        self.open.values().any(|c| c == container)
    }
}
