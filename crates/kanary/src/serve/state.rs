//! What the HTTP endpoint knows about the host: [`HostState`], fed with every record the agent
//! writes (through [`StateSink`]) and read by `/metrics` and the JSON API. Pure logic: no
//! kernel, no clock of its own (times come from the records and the caller), so it is tested
//! with crafted records.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use kanary_detect::activity::metrics_of;
use kanary_model::record::{
    Alert, AlertClass, Connection, ConnectionResult, ContainerRef, DetectorScore, Learning, Record,
    RecordBody, Stats,
};

use crate::sinks::Sink;

/// Windows kept per container (the API's `series`).
pub const SERIES_WINDOWS: usize = 300;
/// Windows in the overview's sparkline.
pub const SPARKLINE_WINDOWS: usize = 60;
/// Newest alerts kept in memory (the overview shows 20 of them).
pub const RECENT_ALERTS: usize = 200;
/// Stopped containers kept for the UI, the oldest forgotten first.
pub const STOPPED_CONTAINERS: usize = 50;
/// Network edges kept, the least recently seen forgotten first.
pub const MAX_EDGES: usize = 2048;
/// Alert ids remembered to count each incident once in `kanary_alerts_total`.
const COUNTED_ALERTS: usize = 8192;

/// One stats window of one container.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    /// The record's `ts`.
    pub ts: String,
    /// The figures (`kanary_detect::activity::metrics_of`), per second.
    pub metrics: BTreeMap<String, f64>,
    /// Each detector's score of the window.
    pub scores: Vec<DetectorScore>,
}

impl Window {
    /// The highest score relative to its threshold, with its detector.
    pub fn top_score(&self) -> Option<&DetectorScore> {
        self.scores
            .iter()
            .filter(|s| s.score.is_finite() && s.threshold.is_finite())
            .max_by(|a, b| relative(a).total_cmp(&relative(b)))
    }
}

/// `score / threshold`, where above 1 is anomalous. A detector whose threshold is 0 (the
/// invariants: any match alarms) is 0 without a match and `1 + score` with one.
pub fn relative(score: &DetectorScore) -> f64 {
    if score.threshold > 0.0 {
        score.score / score.threshold
    } else if score.score > score.threshold {
        1.0 + score.score
    } else {
        0.0
    }
}

/// Running totals of a container's counters since the agent saw it (the `_total` series).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    /// System calls.
    pub syscalls: u64,
    /// System calls by name (only names a window's top list carried).
    pub by_syscall: BTreeMap<String, u64>,
    /// CPU time, nanoseconds.
    pub cpu_ns: u64,
    /// Block IO bytes read and written.
    pub io_read_bytes: u64,
    /// See `io_read_bytes`.
    pub io_write_bytes: u64,
    /// Network bytes received and sent.
    pub rx_bytes: u64,
    /// See `rx_bytes`.
    pub tx_bytes: u64,
    /// Outbound connections and failed attempts.
    pub connects: u64,
    /// See `connects`.
    pub connect_failures: u64,
    /// Processes forked and images executed.
    pub forks: u64,
    /// See `forks`.
    pub execs: u64,
    /// Files opened.
    pub opens: u64,
}

/// One container the agent has seen.
#[derive(Debug, Clone, PartialEq)]
pub struct ContainerState {
    /// Who it is.
    pub container: ContainerRef,
    /// Its image id, when the runtime gave one.
    pub image_id: Option<String>,
    /// When the agent found it.
    pub since: String,
    /// `false` once its `container_stop` was seen.
    pub running: bool,
    /// The last [`SERIES_WINDOWS`] windows, oldest first.
    pub windows: VecDeque<Window>,
    /// Counters since the agent saw it.
    pub totals: Totals,
    /// Levels of the last window (`cpu_percent`, `memory_bytes`, `pids`).
    pub levels: BTreeMap<String, f64>,
}

/// A connection edge: one (from, to, port, protocol), repeats folded.
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    /// The connecting container's id.
    pub from: String,
    /// The peer container's id, or the remote address.
    pub to: String,
    /// What the behaviour profile calls the peer (its image, else its name, else the address):
    /// how an `unauthorized_connection` alert names it.
    pub target: String,
    /// Remote port.
    pub port: u16,
    /// `tcp` or `udp`.
    pub protocol: String,
    /// Connections and attempts.
    pub count: u64,
    /// Failed attempts among them.
    pub failed: u64,
    /// The newest one's `ts`.
    pub last_seen: String,
    /// `false` when an `unauthorized_connection` alert named it.
    pub authorized: bool,
    /// Insertion order, to forget the least recently seen.
    seen_seq: u64,
}

/// The agent's own health.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AgentHealth {
    /// kanary's version.
    pub version: String,
    /// When the agent started (`agent_start`'s `ts`).
    pub started: String,
    /// CPU use over the last sample, percent of one core.
    pub cpu_percent: f64,
    /// Resident memory.
    pub rss_bytes: u64,
    /// Records written per second over the last sample.
    pub records_per_s: f64,
    /// Records written since start.
    pub records: u64,
    /// Losses by collector and reason (`ringbuf_full`, `map_full`, `throttled`) since start.
    pub drops: BTreeMap<String, BTreeMap<&'static str, u64>>,
    /// The collectors that loaded.
    pub collectors: Vec<String>,
}

/// Where the agent-health sample last was.
#[derive(Debug, Clone, Copy)]
struct Sample {
    at: Instant,
    cpu_s: f64,
    records: u64,
}

/// Everything the endpoint serves, built from records.
#[derive(Debug, Default)]
pub struct HostState {
    /// Containers by full id (running, and the newest stopped ones).
    pub containers: BTreeMap<String, ContainerState>,
    /// Stopped container ids, oldest first.
    stopped: VecDeque<String>,
    /// The newest learning record of each image (by image reference).
    pub learning: BTreeMap<String, Learning>,
    /// The newest version of the newest alerts, newest first.
    pub alerts: VecDeque<Alert>,
    /// Incidents counted in [`HostState::alert_counts`] (bounded, oldest forgotten first).
    counted: HashSet<String>,
    counted_order: VecDeque<String>,
    /// Incidents opened since start, by class and severity.
    pub alert_counts: BTreeMap<(String, String), u64>,
    /// Connection edges by (from, to, port, protocol).
    pub edges: HashMap<(String, String, u16, String), Edge>,
    edge_seq: u64,
    /// The agent's health.
    pub agent: AgentHealth,
    /// `detection.learn_for` and `agent.interval` from `agent_start` (learning progress).
    learn_for_s: Option<f64>,
    interval_s: Option<f64>,
    last_sample: Option<Sample>,
}

/// Reads a duration written by humantime in the effective configuration (`"15m"`).
fn config_seconds(config: &serde_json::Value, section: &str, key: &str) -> Option<f64> {
    let text = config.get(section)?.get(key)?.as_str()?;
    humantime::parse_duration(text)
        .ok()
        .map(|d| d.as_secs_f64())
}

/// How far an image's learning is: `(progress 0..=1, seconds to go)`.
pub fn learning_progress(
    learning: &Learning,
    learn_for_s: Option<f64>,
    interval_s: Option<f64>,
) -> (f64, f64) {
    if learning.phase != "learning" {
        return (1.0, 0.0);
    }
    let by_windows = if learning.windows + learning.windows_missing > 0 {
        learning.windows as f64 / (learning.windows + learning.windows_missing) as f64
    } else {
        0.0
    };
    let by_time = match learn_for_s {
        Some(total) if total > 0.0 => (1.0 - learning.time_left_s / total).clamp(0.0, 1.0),
        _ => by_windows,
    };
    let eta = learning
        .time_left_s
        .max(learning.windows_missing as f64 * interval_s.unwrap_or(0.0));
    (by_time.min(by_windows).clamp(0.0, 1.0), eta.max(0.0))
}

impl HostState {
    /// An empty state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one record.
    pub fn apply(&mut self, record: &Record) {
        self.agent.records += 1;
        match &record.body {
            RecordBody::AgentStart(start) => {
                self.agent.version = start.version.clone();
                self.agent.started = record.ts.clone();
                self.agent.collectors = start.collectors.clone();
                self.learn_for_s = config_seconds(&start.config, "detection", "learn_for");
                self.interval_s = config_seconds(&start.config, "agent", "interval");
            }
            RecordBody::ContainerStart(start) => {
                let id = start.container.id.clone();
                self.stopped.retain(|s| *s != id);
                let entry = self.container(&start.container, &record.ts);
                entry.container = start.container.clone();
                entry.image_id = start.image_id.clone();
                entry.since = record.ts.clone();
                entry.running = true;
            }
            RecordBody::ContainerStop(stop) => {
                if let Some(c) = self.containers.get_mut(&stop.container.id) {
                    c.running = false;
                    self.stopped.push_back(stop.container.id.clone());
                }
                while self.stopped.len() > STOPPED_CONTAINERS {
                    if let Some(old) = self.stopped.pop_front() {
                        self.containers.remove(&old);
                    }
                }
            }
            RecordBody::Stats(stats) => self.stats(stats, &record.ts),
            RecordBody::Learning(learning) => {
                self.learning
                    .insert(learning.image.clone(), learning.clone());
            }
            RecordBody::Alert(alert) => self.alert(alert),
            RecordBody::Connect(connection) => self.connect(connection, &record.ts),
            RecordBody::Drops(drops) => {
                let by = self.agent.drops.entry(drops.collector.clone()).or_default();
                *by.entry("ringbuf_full").or_default() += drops.counts.ringbuf_full;
                *by.entry("map_full").or_default() += drops.counts.map_full;
                *by.entry("throttled").or_default() += drops.counts.throttled;
            }
            _ => {}
        }
    }

    /// The container's entry, made when it is new (a record may come before its start).
    fn container(&mut self, who: &ContainerRef, ts: &str) -> &mut ContainerState {
        self.containers
            .entry(who.id.clone())
            .or_insert_with(|| ContainerState {
                container: who.clone(),
                image_id: None,
                since: ts.to_string(),
                running: true,
                windows: VecDeque::new(),
                totals: Totals::default(),
                levels: BTreeMap::new(),
            })
    }

    fn stats(&mut self, stats: &Stats, ts: &str) {
        // The last stats of a stopped container precede its stop; a late one must not revive
        // an entry that was forgotten.
        let entry = self.container(&stats.container, ts);
        let s = &stats.stats;
        let t = &mut entry.totals;
        if let Some(sys) = &s.syscalls {
            t.syscalls += sys.total;
            for (name, count) in &sys.counts {
                *t.by_syscall.entry(name.clone()).or_default() += count;
            }
        }
        if let Some(r) = &s.resources {
            t.cpu_ns += r.cpu_ns;
            t.io_read_bytes += r.io_read_bytes;
            t.io_write_bytes += r.io_write_bytes;
        }
        if let Some(n) = &s.network {
            t.rx_bytes += n.rx_bytes;
            t.tx_bytes += n.tx_bytes;
            t.connects += n.connects;
            t.connect_failures += n.connect_failures;
        }
        if let Some(p) = &s.process {
            t.forks += p.forks;
            t.execs += p.execs;
        }
        if let Some(f) = &s.file {
            t.opens += f.opens;
        }
        let metrics = metrics_of(s, stats.interval_s);
        entry.levels = ["cpu_percent", "memory_bytes", "pids"]
            .iter()
            .filter_map(|k| metrics.get(*k).map(|v| (k.to_string(), *v)))
            .collect();
        entry.windows.push_back(Window {
            ts: ts.to_string(),
            metrics,
            scores: stats.scores.clone(),
        });
        while entry.windows.len() > SERIES_WINDOWS {
            entry.windows.pop_front();
        }
    }

    fn alert(&mut self, alert: &Alert) {
        if !self.counted.contains(&alert.id) {
            self.counted.insert(alert.id.clone());
            self.counted_order.push_back(alert.id.clone());
            if self.counted_order.len() > COUNTED_ALERTS {
                if let Some(old) = self.counted_order.pop_front() {
                    self.counted.remove(&old);
                }
            }
            *self
                .alert_counts
                .entry((name_of(&alert.class), name_of(&alert.severity)))
                .or_default() += 1;
        }
        self.alerts.retain(|a| a.id != alert.id);
        self.alerts.push_front(alert.clone());
        self.alerts.truncate(RECENT_ALERTS);
        if alert.class == AlertClass::UnauthorizedConnection {
            for edge in self
                .edges
                .values_mut()
                .filter(|e| e.from == alert.container.id)
            {
                let named = format!("connect {} {}/{}", edge.target, edge.protocol, edge.port);
                if alert
                    .contributions
                    .iter()
                    .any(|c| c.feature.starts_with(&named))
                {
                    edge.authorized = false;
                }
            }
        }
    }

    fn connect(&mut self, c: &Connection, ts: &str) {
        let (to, target) = match &c.peer {
            Some(peer) => (
                peer.id.clone(),
                peer.image.clone().unwrap_or_else(|| peer.name.clone()),
            ),
            None => (c.dst_addr.to_string(), c.dst_addr.to_string()),
        };
        let key = (
            c.container.id.clone(),
            to.clone(),
            c.dst_port,
            c.protocol.clone(),
        );
        self.edge_seq += 1;
        let seq = self.edge_seq;
        let edge = self.edges.entry(key).or_insert_with(|| Edge {
            from: c.container.id.clone(),
            to,
            target,
            port: c.dst_port,
            protocol: c.protocol.clone(),
            count: 0,
            failed: 0,
            last_seen: String::new(),
            authorized: true,
            seen_seq: seq,
        });
        let n = c.repeats.max(1);
        edge.count += n;
        if c.result == ConnectionResult::Failed {
            edge.failed += n;
        }
        edge.last_seen = ts.to_string();
        edge.seen_seq = seq;
        if self.edges.len() > MAX_EDGES {
            if let Some(oldest) = self
                .edges
                .iter()
                .min_by_key(|(_, e)| e.seen_seq)
                .map(|(k, _)| k.clone())
            {
                self.edges.remove(&oldest);
            }
        }
    }

    /// Takes a sample of the agent's own figures: `cpu_s` is its CPU time so far, `rss_bytes`
    /// its resident memory. Rates are over the time since the previous sample.
    pub fn sample_agent(&mut self, at: Instant, cpu_s: f64, rss_bytes: u64) {
        if let Some(last) = self.last_sample {
            let elapsed = at.saturating_duration_since(last.at).as_secs_f64();
            if elapsed > 0.0 {
                self.agent.cpu_percent = ((cpu_s - last.cpu_s) / elapsed * 100.0).max(0.0);
                self.agent.records_per_s =
                    self.agent.records.saturating_sub(last.records) as f64 / elapsed;
            }
        }
        self.agent.rss_bytes = rss_bytes;
        self.last_sample = Some(Sample {
            at,
            cpu_s,
            records: self.agent.records,
        });
    }

    /// `learning`, `detecting` or `unjudged` for a container, with its image's learning record.
    pub fn judgement(&self, c: &ContainerState) -> (&'static str, Option<&Learning>) {
        let learning = c
            .container
            .image
            .as_ref()
            .and_then(|image| self.learning.get(image));
        match learning {
            Some(l) if l.phase == "detecting" => ("detecting", Some(l)),
            Some(l) => ("learning", Some(l)),
            None => ("unjudged", None),
        }
    }

    /// The container whose id is `id`, or starts with it, or whose name it is (unique).
    pub fn find(&self, id: &str) -> Option<&ContainerState> {
        if id.is_empty() {
            return None;
        }
        if let Some(c) = self.containers.get(id) {
            return Some(c);
        }
        let mut matches = self
            .containers
            .values()
            .filter(|c| c.container.id.starts_with(id) || c.container.name == id);
        let first = matches.next()?;
        matches.next().is_none().then_some(first)
    }

    /// Open (not ended) alerts of a container among the recent ones.
    pub fn open_alerts(&self, id: &str) -> usize {
        self.alerts
            .iter()
            .filter(|a| a.container.id == id && !a.ended)
            .count()
    }

    /// [`learning_progress`] with the agent's configuration.
    pub fn progress(&self, learning: &Learning) -> (f64, f64) {
        learning_progress(learning, self.learn_for_s, self.interval_s)
    }
}

/// A unit enum's serde name (`sequence_anomaly`, `high`).
pub fn name_of<T: serde::Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(name)) => name,
        _ => String::new(),
    }
}

/// The state shared between the agent (writer) and the server (readers).
pub type Shared = Arc<Mutex<HostState>>;

/// Locks the state; a panic elsewhere while it was held leaves it usable (it holds figures, no
/// invariants a half-done update could break badly).
pub fn lock(state: &Shared) -> MutexGuard<'_, HostState> {
    state
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The agent's CPU time so far, in seconds.
fn process_cpu_seconds() -> f64 {
    crate::budget::process_cpu_seconds()
}

/// The agent's resident memory, from `/proc/self/statm` (0 when unreadable).
fn rss_bytes() -> u64 {
    let pages = std::fs::read_to_string("/proc/self/statm")
        .ok()
        .and_then(|s| s.split_whitespace().nth(1)?.parse::<u64>().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions; it only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * u64::try_from(page).unwrap_or(4096)
}

/// The sink that feeds the [`HostState`]: the server sees every record the agent writes.
pub struct StateSink {
    state: Shared,
    /// When the agent's own figures were last sampled.
    sampled: Option<Instant>,
}

/// How often the agent's CPU and memory are sampled (at a flush).
const SAMPLE_EVERY: Duration = Duration::from_secs(1);

impl StateSink {
    /// A sink writing into `state`.
    pub fn new(state: Shared) -> Self {
        StateSink {
            state,
            sampled: None,
        }
    }
}

impl Sink for StateSink {
    fn write(&mut self, record: &Record) -> io::Result<()> {
        lock(&self.state).apply(record);
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        let now = Instant::now();
        if self
            .sampled
            .is_none_or(|at| now.duration_since(at) >= SAMPLE_EVERY)
        {
            self.sampled = Some(now);
            let (cpu, rss) = (process_cpu_seconds(), rss_bytes());
            lock(&self.state).sample_agent(now, cpu, rss);
        }
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use serde_json::json;

    pub(crate) const ID: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    pub(crate) const DB: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    pub(crate) fn record(value: serde_json::Value) -> Record {
        serde_json::from_value(value).unwrap()
    }

    fn who(id: &str, name: &str, image: &str) -> serde_json::Value {
        json!({"id": id, "name": name, "image": image})
    }

    pub(crate) fn start(id: &str, name: &str, image: &str) -> Record {
        record(
            json!({"type": "container_start", "ts": "2026-03-01T10:00:00Z",
            "container": who(id, name, image), "runtime": "docker", "cgroup_id": 1,
            "cgroup_path": "/docker/x", "image_id": "sha256:11", "pod_uid": null,
            "labels": {}, "addresses": [], "existing": false}),
        )
    }

    pub(crate) fn stats(id: &str, ts: &str, syscalls: u64, score: f64) -> Record {
        record(
            json!({"type": "stats", "ts": ts, "container": who(id, "web", "nginx:1"),
            "interval_s": 2.0,
            "syscalls": {"total": syscalls, "distinct": 2,
                         "counts": {"read": syscalls / 2, "write": syscalls / 2}},
            "resources": {"cpu_ns": 1_000_000_000u64, "cpu_percent": 50.0, "memory_bytes": 1000,
                          "memory_limit_bytes": null, "io_read_bytes": 10, "io_write_bytes": 20,
                          "io_read_ops": 1, "io_write_ops": 1, "pids": 3, "oom_kills": 0},
            "scores": [{"detector": "invariants", "score": score, "threshold": 2.0,
                        "anomalous": score > 2.0},
                       {"detector": "resource", "score": 0.1, "threshold": 3.0,
                        "anomalous": false}]}),
        )
    }

    pub(crate) fn alert(id: &str, class: &str, ended: bool, feature: &str) -> Record {
        record(
            json!({"type": "alert", "ts": "2026-03-01T10:00:09Z", "id": id,
            "container": who(ID, "web", "nginx:1"), "image_id": "sha256:11",
            "class": class, "severity": "high", "score": 5.0, "threshold": 1.0,
            "detector": "behaviour", "views": {},
            "contributions": [{"feature": feature, "baseline": 0.0, "observed": 1.0,
                               "detail": "peer db, by nginx"}],
            "detectors": [{"detector": "behaviour", "score": 5.0, "threshold": 1.0,
                           "anomalous": true}],
            "first_seen": "2026-03-01T10:00:08Z", "last_seen": "2026-03-01T10:00:09Z",
            "count": 1, "ended": ended}),
        )
    }

    pub(crate) fn connect(port: u16, ok: bool) -> Record {
        record(json!({"type": "connect", "ts": "2026-03-01T10:00:07Z",
            "container": who(ID, "web", "nginx:1"), "pid": 5, "comm": "nginx",
            "protocol": "tcp", "src_addr": "172.17.0.2", "src_port": 40000,
            "dst_addr": "172.17.0.3", "dst_port": port,
            "result": if ok { "ok" } else { "failed" },
            "peer": who(DB, "db", "redis:7"), "repeats": 2}))
    }

    pub(crate) fn learning(phase: &str) -> Record {
        record(
            json!({"type": "learning", "ts": "2026-03-01T10:00:05Z", "image": "nginx:1",
            "image_id": "sha256:11", "phase": phase, "windows": 30, "events": 900,
            "time_left_s": if phase == "learning" { 450.0 } else { 0.0 },
            "windows_missing": 0, "threshold": null}),
        )
    }

    pub(crate) fn agent_start() -> Record {
        record(
            json!({"type": "agent_start", "ts": "2026-03-01T09:59:59Z", "version": "0.1.0",
            "schema_version": 1, "collectors": ["syscalls", "process"],
            "failed_collectors": {},
            "config": {"agent": {"interval": "2s"}, "detection": {"learn_for": "15m"}}}),
        )
    }

    /// A state with one running container, two windows, a learning image, an alert and an edge.
    pub(crate) fn sample() -> HostState {
        let mut state = HostState::new();
        for r in [
            agent_start(),
            start(ID, "web", "nginx:1"),
            stats(ID, "2026-03-01T10:00:02Z", 100, 1.0),
            stats(ID, "2026-03-01T10:00:04Z", 200, 3.0),
            learning("learning"),
            connect(6379, true),
            connect(6379, false),
            alert(
                "aaaaaaaaaaaa-1",
                "unauthorized_connection",
                false,
                "connect redis:7 tcp/6379",
            ),
        ] {
            state.apply(&r);
        }
        state
    }

    #[test]
    fn stats_fill_the_series_and_totals() {
        let state = sample();
        let c = state.find(ID).unwrap();
        assert_eq!(c.windows.len(), 2);
        assert_eq!(c.totals.syscalls, 300);
        assert_eq!(c.totals.by_syscall["read"], 150);
        assert_eq!(c.totals.cpu_ns, 2_000_000_000);
        assert_eq!(c.windows[1].metrics["syscalls"], 100.0, "per second");
        assert_eq!(c.levels["memory_bytes"], 1000.0);
        let top = c.windows[1].top_score().unwrap();
        assert_eq!(top.detector, "invariants");
        assert_eq!(relative(top), 1.5);
        // By prefix and by name, not by an ambiguous or empty prefix.
        assert!(state.find("aaaa").is_some() && state.find("web").is_some());
        assert!(state.find("").is_none() && state.find("ffff").is_none());
    }

    #[test]
    fn the_series_is_bounded() {
        let mut state = HostState::new();
        state.apply(&start(ID, "web", "nginx:1"));
        for i in 0..(SERIES_WINDOWS + 20) {
            state.apply(&stats(ID, &format!("t{i}"), 2, 0.0));
        }
        let c = state.find(ID).unwrap();
        assert_eq!(c.windows.len(), SERIES_WINDOWS);
        assert_eq!(c.windows[0].ts, "t20");
    }

    #[test]
    fn learning_progress_and_judgement() {
        let mut state = sample();
        let c = state.find(ID).unwrap().clone();
        let (judged, learnt) = state.judgement(&c);
        assert_eq!(judged, "learning");
        let (progress, eta) = state.progress(learnt.unwrap());
        assert!((progress - 0.5).abs() < 1e-9, "{progress}");
        assert_eq!(eta, 450.0);
        state.apply(&learning("detecting"));
        assert_eq!(state.judgement(&c).0, "detecting");
        let mut unjudged = c.clone();
        unjudged.container.image = None;
        assert_eq!(state.judgement(&unjudged).0, "unjudged");
    }

    #[test]
    fn alerts_are_counted_once_per_incident_and_mark_edges() {
        let mut state = sample();
        let edge = state.edges.values().next().unwrap();
        assert_eq!((edge.count, edge.failed, edge.port), (4, 2, 6379));
        assert_eq!(edge.to, DB);
        assert!(!edge.authorized, "the alert named connect redis:7 tcp/6379");
        assert_eq!(state.open_alerts(ID), 1);
        state.apply(&alert(
            "aaaaaaaaaaaa-1",
            "unauthorized_connection",
            true,
            "connect redis:7 tcp/6379",
        ));
        assert_eq!(state.alerts.len(), 1, "the incident's newest version only");
        assert_eq!(state.open_alerts(ID), 0);
        let key = ("unauthorized_connection".to_string(), "high".to_string());
        assert_eq!(state.alert_counts[&key], 1);
        // An edge the alert did not name stays authorized.
        state.apply(&connect(80, true));
        assert!(state.edges.values().any(|e| e.port == 80 && e.authorized));
    }

    #[test]
    fn stopped_containers_are_kept_bounded() {
        let mut state = HostState::new();
        for i in 0..(STOPPED_CONTAINERS + 5) {
            let id = format!("{i:064}");
            state.apply(&start(&id, "x", "busybox"));
            state.apply(&record(json!({"type": "container_stop", "ts": "t",
                "container": who(&id, "x", "busybox"), "cgroup_id": 1, "watched_s": 1.0})));
        }
        assert_eq!(state.containers.len(), STOPPED_CONTAINERS);
        assert!(state.containers.values().all(|c| !c.running));
    }

    #[test]
    fn agent_health_is_sampled() {
        let mut state = sample();
        state.apply(&record(
            json!({"type": "drops", "ts": "t", "collector": "process",
            "container": null, "ringbuf_full": 3, "map_full": 1}),
        ));
        let t0 = Instant::now();
        state.sample_agent(t0, 10.0, 1000);
        for _ in 0..10 {
            state.apply(&learning("learning"));
        }
        state.sample_agent(t0 + Duration::from_secs(2), 10.5, 2000);
        assert!((state.agent.cpu_percent - 25.0).abs() < 1e-9);
        assert!((state.agent.records_per_s - 5.0).abs() < 1e-9);
        assert_eq!(state.agent.rss_bytes, 2000);
        assert_eq!(state.agent.drops["process"]["ringbuf_full"], 3);
        assert_eq!(state.agent.version, "0.1.0");
    }
}
