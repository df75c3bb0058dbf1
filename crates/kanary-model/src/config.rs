//! The agent's configuration: one TOML file, every key optional with an embedded default.
//!
//! Field doc comments are the user reference (`kanary.example.toml` mirrors them). Unknown keys
//! are rejected so a typo never silently falls back to a default, and every error names the key.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The smallest ring buffer the kernel accepts is one page.
const MIN_RINGBUF_BYTES: u32 = 4096;

/// A configuration file that could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file is not valid TOML, or a key has the wrong type or is unknown.
    #[error("{key}: {message}")]
    Parse {
        /// Dotted path of the offending key (`.` when the document itself is malformed).
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// A key parsed but its value is out of range or inconsistent.
    #[error("{key}: {message}")]
    Invalid {
        /// Dotted path of the offending key.
        key: String,
        /// What is wrong with it.
        message: String,
    },
}

/// The whole configuration.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Agent-wide settings.
    pub agent: AgentConfig,
    /// One section per collector.
    pub collectors: CollectorsConfig,
    /// Enrichment from the Docker API.
    pub docker: DockerConfig,
    /// Live anomaly detection over the per-container windows.
    pub detection: DetectionConfig,
    /// The HTTP endpoint: `/metrics` and the JSON API (`docs/api.md`).
    pub http: HttpConfig,
    /// Where records go, `[[sinks]]`: every record goes to every sink whose `records` accept
    /// it. Empty: NDJSON on `kanary run --events` (standard output by default).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sinks: Vec<SinkConfig>,
}

/// The HTTP endpoint, `[http]`: `/metrics` (Prometheus) and the read-only JSON API.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct HttpConfig {
    /// Address to serve on, e.g. `"127.0.0.1:9750"`, or `"none"` to serve nothing (`kanary run
    /// --listen` overrides it). An address that is not loopback needs a `token`.
    pub listen: String,
    /// Bearer token every request must carry (`Authorization: Bearer ...`); `kanary run
    /// --token` and the `KANARY_TOKEN` environment variable override it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Per-syscall series on `/metrics` only for each container's this many most frequent
    /// syscalls (bounds the series count; the total is always there).
    pub top_syscalls: usize,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:9750".to_string(),
            token: None,
            top_syscalls: 10,
        }
    }
}

/// Agent-wide settings.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AgentConfig {
    /// How often per-container aggregates are read from the kernel and a `stats` record is
    /// written per container, e.g. `"5s"`.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Also watch processes outside containers, reported as the container `host`.
    pub include_host: bool,
    /// How many containers can be watched at once; sizes every per-container kernel map.
    pub max_containers: u32,
    /// Mount point of the cgroup v2 hierarchy; found in /proc/self/mountinfo when unset.
    pub cgroup2_mount: Option<PathBuf>,
    /// The agent's own CPU budget, in percent of one core (0: no budget). When an interval
    /// costs more, the containers whose records cost the most have their event streams
    /// throttled in the kernel (their aggregates are kept) until they calm down; each decision
    /// is written as a `degraded` record.
    pub cpu_budget_percent: f64,
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(5),
            include_host: false,
            max_containers: 256,
            cgroup2_mount: None,
            cpu_budget_percent: 10.0,
        }
    }
}

/// One section per collector, `[collectors.<name>]`.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct CollectorsConfig {
    /// System call counts and n-gram sequence features.
    pub syscalls: SyscallsConfig,
    /// exec, fork and exit of container processes.
    pub process: StreamConfig,
    /// File opens (de-duplicated in the kernel) and read/write volume.
    pub file: DedupStreamConfig,
    /// Traffic volume, connects and accepts.
    pub network: DedupStreamConfig,
    /// CPU, memory, block IO, pids and OOM kills from cgroupfs.
    pub resources: ToggleConfig,
    /// Privilege, namespace, module and memfd system calls, with arguments.
    pub security: StreamConfig,
    /// Fatal signals (SIGSEGV, SIGABRT, ...) delivered to container processes.
    pub signals: StreamConfig,
    /// Per-container counters of arbitrary kernel tracepoints, declared here with no code.
    pub tracepoint: Vec<TracepointCounterConfig>,
}

/// `[collectors.syscalls]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct SyscallsConfig {
    /// Turn the collector on or off.
    pub enabled: bool,
    /// Length of the per-thread syscall n-grams counted in the kernel (2..=7); 0 turns
    /// sequence features off.
    pub ngram_len: u32,
    /// Capacity of the kernel n-gram map: distinct (container, n-gram) pairs per interval.
    pub ngram_map_entries: u32,
    /// How many of the most frequent syscalls a `stats` record lists (0: all).
    pub top_syscalls: usize,
    /// How many of the most frequent n-grams a `stats` record lists.
    pub top_ngrams: usize,
    /// Containers (name, or a prefix of the id) whose every raw syscall is streamed as a
    /// `syscall` record, to record data sets. Empty: none.
    pub trace_containers: Vec<String>,
    /// Ring buffer size for trace mode (a power of two, at least 4096).
    pub trace_ringbuf_bytes: u32,
}

impl Default for SyscallsConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            ngram_len: 3,
            ngram_map_entries: 65536,
            top_syscalls: 20,
            top_ngrams: 10,
            trace_containers: Vec::new(),
            trace_ringbuf_bytes: 16 << 20,
        }
    }
}

/// A collector that can only be switched on or off.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct ToggleConfig {
    /// Turn the collector on or off.
    pub enabled: bool,
}

impl Default for ToggleConfig {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// A collector that streams events through a ring buffer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct StreamConfig {
    /// Turn the collector on or off.
    pub enabled: bool,
    /// Ring buffer size in bytes (a power of two, at least 4096).
    pub ringbuf_bytes: u32,
}

impl Default for StreamConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            ringbuf_bytes: 1 << 20,
        }
    }
}

/// A streaming collector that de-duplicates repeated events in the kernel.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DedupStreamConfig {
    /// Turn the collector on or off.
    pub enabled: bool,
    /// Ring buffer size in bytes (a power of two, at least 4096).
    pub ringbuf_bytes: u32,
    /// Capacity of the kernel LRU of recently reported events; a repeat of one of them is
    /// counted, not streamed.
    pub dedup_entries: u32,
    /// A repeated event is reported again (with its repeat count) after this long, e.g. `"60s"`.
    #[serde(with = "humantime_serde")]
    pub renotify_after: Duration,
}

impl Default for DedupStreamConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            ringbuf_bytes: 1 << 20,
            dedup_entries: 16384,
            renotify_after: Duration::from_secs(300),
        }
    }
}

/// `[[collectors.tracepoint]]`: a per-container counter of a kernel tracepoint.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TracepointCounterConfig {
    /// Counter name as it appears in `stats` records (`[a-z0-9_]+`).
    pub name: String,
    /// The tracepoint as `category:event`, e.g. `tcp:tcp_retransmit_skb`
    /// (see /sys/kernel/tracing/events/).
    pub tracepoint: String,
}

impl TracepointCounterConfig {
    /// The tracepoint split into category and event.
    pub fn category_and_event(&self) -> Option<(&str, &str)> {
        self.tracepoint
            .split_once(':')
            .filter(|(category, event)| !category.is_empty() && !event.is_empty())
    }
}

/// `[docker]`: where to enrich containers with name, image and labels.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DockerConfig {
    /// Ask the Docker API at all.
    pub enabled: bool,
    /// Path of the Docker API socket.
    pub socket: PathBuf,
    /// How long one API request may take before the container is reported without it.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
}

impl Default for DockerConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            socket: PathBuf::from("/var/run/docker.sock"),
            timeout: Duration::from_secs(2),
        }
    }
}

/// `[detection]`: per-image baselines learnt from the `stats` windows, then alerts.
///
/// Every container of one image shares one baseline (keyed by the image id, else the image
/// name). It learns for `learn_for` and at least `min_windows` windows, calibrates its threshold
/// on what it saw, then scores each container's window every interval and writes `alert`
/// records. Baselines are kept in the store under `--data-dir` and reloaded on restart.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct DetectionConfig {
    /// Turn live detection on or off (it needs the syscalls collector with `ngram_len` > 0).
    pub enabled: bool,
    /// How long a new baseline learns before it detects, e.g. `"15m"` (`kanary run
    /// --learn-for` overrides it). A baseline reloaded from the store keeps its own period.
    #[serde(with = "humantime_serde")]
    pub learn_for: Duration,
    /// Fewest windows (one per container per interval, with syscalls) a baseline must have seen
    /// before it detects, whatever the time (at least 2: the threshold is calibrated on
    /// held-out windows).
    pub min_windows: u64,
    /// Most windows the learning sample keeps (older ones are thinned evenly beyond that).
    pub max_windows: usize,
    /// Quantile of the held-out learning scores taken as the alert threshold (0 < q <= 1),
    /// per detector and window. The default 0.9999 aims at one false window in 10 000: at 5 s
    /// windows and four statistical detectors, about 0.3 false windows per container-day
    /// rather than the 0.99 quantile's 30 per hour. Learning samples are smaller than 10 000
    /// windows: the threshold then comes from the exponential tail fitted to the held-out
    /// scores (see `docs/detection.md`, calibration).
    pub quantile: f64,
    /// Widening of the threshold: q + margin x (q - median) of the held-out scores (>= 0).
    pub margin: f64,
    /// While a container stays anomalous its alert is updated (count, last_seen) and written
    /// again at most once per this many intervals.
    pub realert_every: u32,
    /// An incident ends after this many consecutive normal intervals; the next anomaly opens a
    /// new alert.
    pub close_after: u32,
    /// A learning baseline is saved to the store every this many intervals (and at every
    /// change of phase, and when the agent stops).
    pub save_every: u32,
    /// The first this many windows of a container started while the agent runs are its
    /// start-up: the runtime's set-up and the entrypoint's exec are no sample of its steady
    /// state, so the statistical detectors neither learn from nor score them; the behaviour
    /// profile learns their programs and files, and the invariants judge them (0: none). Two by
    /// default: the first window is partial (from the container's start to the end of the
    /// interval), so one window often ends before an interpreter has loaded its modules and
    /// filled its connection pools.
    pub startup_windows: u32,
    /// An optional container-to-container allow-policy file (TOML, see `docs/detection.md`):
    /// connections it allows never alert; with `default = "deny"`, those it does not allow
    /// always do.
    pub policy: Option<std::path::PathBuf>,
}

impl Default for DetectionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            learn_for: Duration::from_secs(15 * 60),
            min_windows: 10,
            max_windows: 2048,
            quantile: 0.9999,
            margin: 0.0,
            realert_every: 12,
            close_after: 3,
            save_every: 12,
            startup_windows: 2,
            policy: None,
        }
    }
}

/// What a sink is, `type` in `[[sinks]]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkKind {
    /// The records as newline-delimited JSON, to a file (appended to) or standard output.
    Ndjson,
    /// `alert` records as Falco alerts (Falco's JSON output, one object per line), for
    /// falcosidekick and other Falco alert routers (see docs/schema.md).
    Falco,
    /// Records POSTed as JSON to an HTTP(S) URL, from a background thread with a bounded queue.
    Webhook,
}

impl SinkKind {
    /// The name used in the configuration.
    pub fn name(self) -> &'static str {
        match self {
            SinkKind::Ndjson => "ndjson",
            SinkKind::Falco => "falco",
            SinkKind::Webhook => "webhook",
        }
    }
}

/// How a webhook encodes a record, `format` in `[[sinks]]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkFormat {
    /// The record itself, as in the NDJSON output.
    #[default]
    Kanary,
    /// The Falco alert of an `alert` record (what a `falco` sink writes), so a falcosidekick
    /// endpoint can receive it directly.
    Falco,
}

/// `[[sinks]]`: one destination for records.
///
/// ```toml
/// [[sinks]]
/// type = "webhook"
/// url = "http://falcosidekick:2801/"
/// format = "falco"
/// headers = { Authorization = "Bearer s3cret" }
/// ```
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    /// `ndjson`, `falco` or `webhook`.
    #[serde(rename = "type")]
    pub kind: SinkKind,
    /// A name for logs (default: `<type>[<index>]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `ndjson` and `falco`: the file, appended to, or `-` for standard output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// `webhook`: the `http://` or `https://` URL records are POSTed to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `webhook`: `kanary` (the record, default) or `falco` (the Falco alert of an `alert`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub format: Option<SinkFormat>,
    /// The record types this sink receives (see docs/schema.md). Default: every type for
    /// `ndjson`, `["alert"]` for `falco` and `webhook` (the only type Falco formats take).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<Vec<String>>,
    /// `webhook`: extra request headers, e.g. `Authorization`. Their values are never written
    /// out (`kanary config` and `agent_start` show `<redacted>`).
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        serialize_with = "redacted_headers"
    )]
    pub headers: BTreeMap<String, String>,
    /// `webhook`: how long one request may take, e.g. `"5s"` (default 5s).
    #[serde(
        default,
        with = "humantime_serde",
        skip_serializing_if = "Option::is_none"
    )]
    pub timeout: Option<Duration>,
    /// `webhook`: further attempts after a failed one (connection error, timeout, HTTP 429 or
    /// 5xx), with exponential backoff from 500ms (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// `webhook`: records waiting to be sent; when full, new ones are dropped and counted, so a
    /// slow endpoint never stalls the agent (default 1024).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue: Option<usize>,
}

/// What header values are replaced with wherever the configuration is written out.
pub const REDACTED: &str = "<redacted>";

fn redacted_headers<S: serde::Serializer>(
    headers: &BTreeMap<String, String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    // Header values carry credentials (Authorization); the effective configuration is written
    // into every run's `agent_start` record and by `kanary config`, so only names go out.
    serializer.collect_map(headers.keys().map(|name| (name, REDACTED)))
}

/// Default `timeout` of a webhook sink.
pub const DEFAULT_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(5);
/// Default `retries` of a webhook sink.
pub const DEFAULT_WEBHOOK_RETRIES: u32 = 3;
/// Default `queue` of a webhook sink.
pub const DEFAULT_WEBHOOK_QUEUE: usize = 1024;

impl SinkConfig {
    /// A file sink of `kind` writing to `path` (`-`: standard output), with its default records.
    pub fn file(kind: SinkKind, path: &str) -> Self {
        SinkConfig {
            kind,
            name: None,
            path: Some(path.to_string()),
            url: None,
            format: None,
            records: None,
            headers: BTreeMap::new(),
            timeout: None,
            retries: None,
            queue: None,
        }
    }

    /// The webhook format (`kanary` unless set).
    pub fn format(&self) -> SinkFormat {
        self.format.unwrap_or_default()
    }

    /// Whether this sink writes Falco alerts (a `falco` sink, or a webhook in `falco` format).
    pub fn writes_falco(&self) -> bool {
        self.kind == SinkKind::Falco
            || (self.kind == SinkKind::Webhook && self.format() == SinkFormat::Falco)
    }

    /// The record types it receives; `None`: every type.
    pub fn record_types(&self) -> Option<Vec<String>> {
        match (&self.records, self.kind) {
            (Some(records), _) => Some(records.clone()),
            (None, SinkKind::Ndjson) => None,
            (None, SinkKind::Falco | SinkKind::Webhook) => Some(vec!["alert".to_string()]),
        }
    }

    /// The request timeout of a webhook.
    pub fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(DEFAULT_WEBHOOK_TIMEOUT)
    }

    /// The retries of a webhook.
    pub fn retries(&self) -> u32 {
        self.retries.unwrap_or(DEFAULT_WEBHOOK_RETRIES)
    }

    /// The queue length of a webhook.
    pub fn queue(&self) -> usize {
        self.queue.unwrap_or(DEFAULT_WEBHOOK_QUEUE)
    }

    /// The name logs use for the sink at `index` of `[[sinks]]`.
    pub fn display_name(&self, index: usize) -> String {
        self.name
            .clone()
            .unwrap_or_else(|| format!("{}[{index}]", self.kind.name()))
    }
}

/// The most tracepoint counters one agent can declare (a kernel array bound).
pub const MAX_TRACEPOINT_COUNTERS: usize = 32;

impl Config {
    /// Parses and validates a TOML document.
    pub fn from_toml(text: &str) -> Result<Self, ConfigError> {
        let deserializer = toml::Deserializer::new(text);
        let config: Config = serde_path_to_error::deserialize(deserializer).map_err(|error| {
            let key = error.path().to_string();
            ConfigError::Parse {
                key: if key.is_empty() { ".".into() } else { key },
                message: error.into_inner().message().trim().to_string(),
            }
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Checks ranges and consistency that types alone cannot express.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: key.to_string(),
            message,
        };
        if self.agent.interval < Duration::from_millis(100) {
            return Err(invalid("agent.interval", "must be at least 100ms".into()));
        }
        if !(1..=4096).contains(&self.agent.max_containers) {
            return Err(invalid(
                "agent.max_containers",
                format!(
                    "must be between 1 and 4096 (got {})",
                    self.agent.max_containers
                ),
            ));
        }
        let budget = self.agent.cpu_budget_percent;
        if !(budget.is_finite() && (0.0..=100.0).contains(&budget)) {
            return Err(invalid(
                "agent.cpu_budget_percent",
                format!("must be between 0 (no budget) and 100 (one core) (got {budget})"),
            ));
        }
        let syscalls = &self.collectors.syscalls;
        if syscalls.ngram_len != 0
            && !(crate::ngram::MIN_LEN..=crate::ngram::MAX_LEN).contains(&syscalls.ngram_len)
        {
            return Err(invalid(
                "collectors.syscalls.ngram_len",
                format!(
                    "must be 0 (off) or between {} and {} (got {}): n-grams are packed 9 bits per syscall into 64 bits",
                    crate::ngram::MIN_LEN,
                    crate::ngram::MAX_LEN,
                    syscalls.ngram_len
                ),
            ));
        }
        if syscalls.ngram_map_entries == 0 {
            return Err(invalid(
                "collectors.syscalls.ngram_map_entries",
                "must be at least 1".into(),
            ));
        }
        let ringbufs = [
            (
                "collectors.syscalls.trace_ringbuf_bytes",
                syscalls.trace_ringbuf_bytes,
            ),
            (
                "collectors.process.ringbuf_bytes",
                self.collectors.process.ringbuf_bytes,
            ),
            (
                "collectors.file.ringbuf_bytes",
                self.collectors.file.ringbuf_bytes,
            ),
            (
                "collectors.network.ringbuf_bytes",
                self.collectors.network.ringbuf_bytes,
            ),
            (
                "collectors.security.ringbuf_bytes",
                self.collectors.security.ringbuf_bytes,
            ),
            (
                "collectors.signals.ringbuf_bytes",
                self.collectors.signals.ringbuf_bytes,
            ),
        ];
        for (key, bytes) in ringbufs {
            if bytes < MIN_RINGBUF_BYTES || !bytes.is_power_of_two() {
                return Err(invalid(
                    key,
                    format!("must be a power of two of at least {MIN_RINGBUF_BYTES} (got {bytes})"),
                ));
            }
        }
        for (key, entries) in [
            (
                "collectors.file.dedup_entries",
                self.collectors.file.dedup_entries,
            ),
            (
                "collectors.network.dedup_entries",
                self.collectors.network.dedup_entries,
            ),
        ] {
            if entries == 0 {
                return Err(invalid(key, "must be at least 1".into()));
            }
        }
        self.validate_detection()?;
        self.validate_sinks()?;
        let counters = &self.collectors.tracepoint;
        if counters.len() > MAX_TRACEPOINT_COUNTERS {
            return Err(invalid(
                "collectors.tracepoint",
                format!(
                    "at most {MAX_TRACEPOINT_COUNTERS} counters (got {})",
                    counters.len()
                ),
            ));
        }
        for (i, counter) in counters.iter().enumerate() {
            let valid_name = !counter.name.is_empty()
                && counter
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
            if !valid_name {
                return Err(invalid(
                    &format!("collectors.tracepoint[{i}].name"),
                    format!(
                        "{:?} must be non-empty and use only a-z, 0-9 and _",
                        counter.name
                    ),
                ));
            }
            if counters[..i].iter().any(|other| other.name == counter.name) {
                return Err(invalid(
                    &format!("collectors.tracepoint[{i}].name"),
                    format!("{:?} is declared twice", counter.name),
                ));
            }
            if counter.category_and_event().is_none() {
                return Err(invalid(
                    &format!("collectors.tracepoint[{i}].tracepoint"),
                    format!(
                        "{:?} must be written category:event, e.g. tcp:tcp_retransmit_skb",
                        counter.tracepoint
                    ),
                ));
            }
        }
        Ok(())
    }
}

impl Config {
    fn validate_detection(&self) -> Result<(), ConfigError> {
        let invalid = |key: &str, message: String| ConfigError::Invalid {
            key: format!("detection.{key}"),
            message,
        };
        let detection = &self.detection;
        if detection.min_windows < 2 {
            return Err(invalid(
                "min_windows",
                format!(
                    "must be at least 2: the threshold is calibrated on held-out windows (got {})",
                    detection.min_windows
                ),
            ));
        }
        if (detection.max_windows as u64) < detection.min_windows {
            return Err(invalid(
                "max_windows",
                format!(
                    "must be at least min_windows ({}) (got {})",
                    detection.min_windows, detection.max_windows
                ),
            ));
        }
        if !(detection.quantile > 0.0 && detection.quantile <= 1.0) {
            return Err(invalid(
                "quantile",
                format!("must be above 0 and at most 1 (got {})", detection.quantile),
            ));
        }
        if !(detection.margin >= 0.0 && detection.margin.is_finite()) {
            return Err(invalid(
                "margin",
                format!("must be finite and not negative (got {})", detection.margin),
            ));
        }
        for (key, value) in [
            ("realert_every", detection.realert_every),
            ("close_after", detection.close_after),
            ("save_every", detection.save_every),
        ] {
            if value == 0 {
                return Err(invalid(key, "must be at least 1 interval".into()));
            }
        }
        Ok(())
    }
}

/// Longest webhook `timeout` accepted: a request hanging longer holds up the queue behind it.
const MAX_WEBHOOK_TIMEOUT: Duration = Duration::from_secs(300);
/// Most webhook `retries` accepted.
const MAX_WEBHOOK_RETRIES: u32 = 10;
/// Longest webhook `queue` accepted (records are held in memory).
const MAX_WEBHOOK_QUEUE: usize = 1 << 20;

impl Config {
    /// Checks `[[sinks]]`: each key used by its type only, required keys present, URLs, header
    /// names and record types valid, no two sinks writing to the same file.
    pub fn validate_sinks(&self) -> Result<(), ConfigError> {
        for (i, sink) in self.sinks.iter().enumerate() {
            let invalid = |key: &str, message: String| ConfigError::Invalid {
                key: format!("sinks[{i}].{key}"),
                message,
            };
            let kind = sink.kind.name();
            let webhook = sink.kind == SinkKind::Webhook;
            let only_webhook = [
                ("url", sink.url.is_some()),
                ("format", sink.format.is_some()),
                ("headers", !sink.headers.is_empty()),
                ("timeout", sink.timeout.is_some()),
                ("retries", sink.retries.is_some()),
                ("queue", sink.queue.is_some()),
            ];
            if webhook {
                if sink.path.is_some() {
                    return Err(invalid(
                        "path",
                        "a webhook sink takes a url, not a path".into(),
                    ));
                }
                let Some(url) = &sink.url else {
                    return Err(invalid("url", "required for a webhook sink".into()));
                };
                check_url(url).map_err(|message| invalid("url", message))?;
                for (name, value) in &sink.headers {
                    check_header(name, value)
                        .map_err(|message| invalid(&format!("headers.{name}"), message))?;
                }
                let timeout = sink.timeout();
                if timeout < Duration::from_millis(1) || timeout > MAX_WEBHOOK_TIMEOUT {
                    return Err(invalid(
                        "timeout",
                        format!(
                            "must be between 1ms and {} (got {})",
                            humantime::format_duration(MAX_WEBHOOK_TIMEOUT),
                            humantime::format_duration(timeout)
                        ),
                    ));
                }
                if sink.retries() > MAX_WEBHOOK_RETRIES {
                    return Err(invalid(
                        "retries",
                        format!(
                            "must be at most {MAX_WEBHOOK_RETRIES} (got {})",
                            sink.retries()
                        ),
                    ));
                }
                if !(1..=MAX_WEBHOOK_QUEUE).contains(&sink.queue()) {
                    return Err(invalid(
                        "queue",
                        format!(
                            "must be between 1 and {MAX_WEBHOOK_QUEUE} (got {})",
                            sink.queue()
                        ),
                    ));
                }
            } else {
                if let Some((key, _)) = only_webhook.iter().find(|(_, set)| *set) {
                    return Err(invalid(
                        key,
                        format!("only a webhook sink takes {key}, not a {kind} sink"),
                    ));
                }
                match &sink.path {
                    None => {
                        return Err(invalid(
                            "path",
                            format!(
                                "required for a {kind} sink (a file, or - for standard output)"
                            ),
                        ))
                    }
                    Some(path) if path.is_empty() => {
                        return Err(invalid(
                            "path",
                            "must not be empty (- is standard output)".into(),
                        ))
                    }
                    Some(path) => {
                        if let Some(j) = self.sinks[..i]
                            .iter()
                            .position(|other| other.path.as_deref() == Some(path.as_str()))
                        {
                            return Err(invalid(
                                "path",
                                format!("{path:?} is already written by sinks[{j}]: two sinks would interleave their lines"),
                            ));
                        }
                    }
                }
            }
            if let Some(name) = &sink.name {
                if name.is_empty() {
                    return Err(invalid("name", "must not be empty".into()));
                }
                if self.sinks[..i]
                    .iter()
                    .any(|other| other.name.as_deref() == Some(name.as_str()))
                {
                    return Err(invalid("name", format!("{name:?} is used twice")));
                }
            }
            if let Some(records) = &sink.records {
                if records.is_empty() {
                    return Err(invalid(
                        "records",
                        "must name at least one record type (remove the sink to send nothing)"
                            .into(),
                    ));
                }
                for (j, record) in records.iter().enumerate() {
                    if !crate::record::RECORD_TYPES.contains(&record.as_str()) {
                        return Err(invalid(
                            &format!("records[{j}]"),
                            format!(
                                "{record:?} is not a record type (one of: {})",
                                crate::record::RECORD_TYPES.join(", ")
                            ),
                        ));
                    }
                    if sink.writes_falco() && record != "alert" {
                        return Err(invalid(
                            &format!("records[{j}]"),
                            format!("the Falco format carries alert records only, not {record:?}"),
                        ));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Why `url` cannot be a webhook URL, if it cannot.
fn check_url(url: &str) -> Result<(), String> {
    let rest = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
        .ok_or_else(|| format!("{url:?} must start with http:// or https://"))?;
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit('@').next().unwrap_or_default();
    if host.is_empty() || host.starts_with(':') {
        return Err(format!("{url:?} has no host"));
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(format!("{url:?} contains whitespace or control characters"));
    }
    Ok(())
}

/// Why `name: value` cannot be sent as an HTTP header, if it cannot.
fn check_header(name: &str, value: &str) -> Result<(), String> {
    // RFC 9110 token characters.
    let token = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
    if name.is_empty() || !name.chars().all(token) {
        return Err(format!("{name:?} is not a valid header name"));
    }
    // A CR or LF in a value would let the configuration inject headers or a second request.
    if value.chars().any(|c| c.is_control() && c != '\t') {
        return Err("the value must not contain control characters (CR, LF, ...)".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_document_gives_the_defaults() {
        assert_eq!(Config::from_toml("").unwrap(), Config::default());
    }

    #[test]
    fn the_example_config_parses_and_matches_the_defaults_it_documents() {
        let text = include_str!("../../../kanary.example.toml");
        let config = Config::from_toml(text).unwrap();
        assert_eq!(config.agent, AgentConfig::default());
        assert_eq!(config.detection, DetectionConfig::default());
        assert_eq!(config.http, HttpConfig::default());
        assert_eq!(config.collectors.tracepoint.len(), 1);
        assert_eq!(config.collectors.tracepoint[0].name, "tcp_retransmits");
    }

    #[test]
    fn unknown_key_is_named() {
        let error = Config::from_toml("[collectors.syscalls]\nngram_lenght = 3\n").unwrap_err();
        let text = error.to_string();
        assert!(text.starts_with("collectors.syscalls"), "{text}");
        assert!(text.contains("ngram_lenght"), "{text}");
    }

    #[test]
    fn wrong_type_is_named() {
        let error = Config::from_toml("[agent]\nmax_containers = \"many\"\n").unwrap_err();
        assert!(
            error.to_string().starts_with("agent.max_containers:"),
            "{error}"
        );
    }

    #[test]
    fn bad_duration_is_named() {
        let error = Config::from_toml("[agent]\ninterval = \"soon\"\n").unwrap_err();
        assert!(error.to_string().starts_with("agent.interval:"), "{error}");
    }

    #[test]
    fn out_of_range_values_are_named() {
        let cases = [
            (
                "[collectors.syscalls]\nngram_len = 9\n",
                "collectors.syscalls.ngram_len",
            ),
            (
                "[collectors.file]\nringbuf_bytes = 5000\n",
                "collectors.file.ringbuf_bytes",
            ),
            ("[agent]\nmax_containers = 0\n", "agent.max_containers"),
            (
                "[agent]\ncpu_budget_percent = -1.0\n",
                "agent.cpu_budget_percent",
            ),
            (
                "[agent]\ncpu_budget_percent = 150.0\n",
                "agent.cpu_budget_percent",
            ),
            (
                "[agent]\ncpu_budget_percent = nan\n",
                "agent.cpu_budget_percent",
            ),
            ("[detection]\nmin_windows = 1\n", "detection.min_windows"),
            (
                "[detection]\nmin_windows = 20\nmax_windows = 10\n",
                "detection.max_windows",
            ),
            ("[detection]\nquantile = 0.0\n", "detection.quantile"),
            ("[detection]\nmargin = -1.0\n", "detection.margin"),
            (
                "[detection]\nrealert_every = 0\n",
                "detection.realert_every",
            ),
            ("[detection]\nlearn_for = \"soon\"\n", "detection.learn_for"),
            (
                "[[collectors.tracepoint]]\nname = \"x\"\ntracepoint = \"nocolon\"\n",
                "collectors.tracepoint[0].tracepoint",
            ),
            (
                "[[collectors.tracepoint]]\nname = \"Bad-Name\"\ntracepoint = \"a:b\"\n",
                "collectors.tracepoint[0].name",
            ),
        ];
        for (text, key) in cases {
            let error = Config::from_toml(text).unwrap_err();
            assert!(
                error.to_string().starts_with(&format!("{key}:")),
                "{text} -> {error}"
            );
        }
    }

    #[test]
    fn sinks_parse_with_their_defaults() {
        let config = Config::from_toml(
            r#"
[[sinks]]
type = "ndjson"
path = "/var/log/kanary.ndjson"

[[sinks]]
type = "falco"
path = "-"

[[sinks]]
type = "webhook"
name = "sidekick"
url = "http://127.0.0.1:2801/"
format = "falco"
headers = { Authorization = "Bearer s3cret" }
timeout = "2s"

[[sinks]]
type = "webhook"
url = "https://alerts.example/kanary"
records = ["alert", "learning"]
retries = 0
queue = 16
"#,
        )
        .unwrap();
        let [ndjson, falco, sidekick, plain] = &config.sinks[..] else {
            panic!("{:?}", config.sinks);
        };
        assert_eq!(ndjson.kind, SinkKind::Ndjson);
        assert_eq!(ndjson.record_types(), None, "ndjson takes every record");
        assert_eq!(ndjson.display_name(0), "ndjson[0]");
        assert_eq!(falco.record_types(), Some(vec!["alert".to_string()]));
        assert!(falco.writes_falco());
        assert_eq!(sidekick.display_name(2), "sidekick");
        assert!(sidekick.writes_falco());
        assert_eq!(sidekick.timeout(), Duration::from_secs(2));
        assert_eq!(sidekick.retries(), DEFAULT_WEBHOOK_RETRIES);
        assert_eq!(sidekick.headers["Authorization"], "Bearer s3cret");
        assert_eq!(plain.format(), SinkFormat::Kanary);
        assert!(!plain.writes_falco());
        assert_eq!((plain.retries(), plain.queue()), (0, 16));
        assert_eq!(plain.timeout(), DEFAULT_WEBHOOK_TIMEOUT);
    }

    #[test]
    fn header_values_are_never_written_out() {
        let config = Config::from_toml(
            "[[sinks]]\ntype = \"webhook\"\nurl = \"http://h/\"\nheaders = { Authorization = \"Bearer s3cret\" }\n",
        )
        .unwrap();
        let toml = toml::to_string_pretty(&config).unwrap();
        let json = serde_json::to_string(&config).unwrap();
        for text in [&toml, &json] {
            assert!(!text.contains("s3cret"), "{text}");
            assert!(
                text.contains("Authorization") && text.contains(REDACTED),
                "{text}"
            );
        }
        // What is printed parses back (with the placeholder value).
        assert_eq!(Config::from_toml(&toml).unwrap().sinks.len(), 1);
        // No sinks: nothing is printed for them.
        assert!(!toml::to_string_pretty(&Config::default())
            .unwrap()
            .contains("sinks"));
    }

    #[test]
    fn bad_sinks_are_named() {
        let cases = [
            ("[[sinks]]\ntype = \"kafka\"\n", "sinks[0].type", "unknown variant"),
            ("[[sinks]]\ntype = \"ndjson\"\npath = \"-\"\nurll = \"x\"\n", "sinks[0].urll", "unknown field"),
            ("[[sinks]]\npath = \"-\"\n", "sinks[0]", "type"),
            ("[[sinks]]\ntype = \"ndjson\"\n", "sinks[0].path", "required"),
            ("[[sinks]]\ntype = \"falco\"\npath = \"\"\n", "sinks[0].path", "empty"),
            (
                "[[sinks]]\ntype = \"ndjson\"\npath = \"-\"\nurl = \"http://h/\"\n",
                "sinks[0].url",
                "only a webhook sink",
            ),
            (
                "[[sinks]]\ntype = \"falco\"\npath = \"-\"\nformat = \"kanary\"\n",
                "sinks[0].format",
                "only a webhook sink",
            ),
            ("[[sinks]]\ntype = \"webhook\"\n", "sinks[0].url", "required"),
            (
                "[[sinks]]\ntype = \"webhook\"\nurl = \"ftp://h/\"\n",
                "sinks[0].url",
                "http://",
            ),
            (
                "[[sinks]]\ntype = \"webhook\"\nurl = \"http:///x\"\n",
                "sinks[0].url",
                "no host",
            ),
            (
                "[[sinks]]\ntype = \"webhook\"\nurl = \"http://h/\"\npath = \"-\"\n",
                "sinks[0].path",
                "url, not a path",
            ),
            (
                "[[sinks]]\ntype = \"webhook\"\nurl = \"http://h/\"\nformat = \"xml\"\n",
                "sinks[0].format",
                "unknown variant",
            ),
            (
                "[[sinks]]\ntype = \"webhook\"\nurl = \"http://h/\"\nheaders = { \"Bad Name\" = \"x\" }\n",
                "sinks[0].headers.Bad Name",
                "header name",
            ),
            (
                "[[sinks]]\ntype = \"webhook\"\nurl = \"http://h/\"\nheaders = { X-A = \"a\\r\\nX-B: b\" }\n",
                "sinks[0].headers.X-A",
                "control characters",
            ),
            (
                "[[sinks]]\ntype = \"webhook\"\nurl = \"http://h/\"\ntimeout = \"10m\"\n",
                "sinks[0].timeout",
                "between",
            ),
            (
                "[[sinks]]\ntype = \"webhook\"\nurl = \"http://h/\"\ntimeout = \"soon\"\n",
                "sinks[0].timeout",
                "",
            ),
            (
                "[[sinks]]\ntype = \"webhook\"\nurl = \"http://h/\"\nretries = 11\n",
                "sinks[0].retries",
                "at most 10",
            ),
            (
                "[[sinks]]\ntype = \"webhook\"\nurl = \"http://h/\"\nqueue = 0\n",
                "sinks[0].queue",
                "between",
            ),
            (
                "[[sinks]]\ntype = \"webhook\"\nurl = \"http://h/\"\nrecords = [\"alerts\"]\n",
                "sinks[0].records[0]",
                "not a record type",
            ),
            (
                "[[sinks]]\ntype = \"webhook\"\nurl = \"http://h/\"\nrecords = []\n",
                "sinks[0].records",
                "at least one",
            ),
            (
                "[[sinks]]\ntype = \"webhook\"\nurl = \"http://h/\"\nformat = \"falco\"\nrecords = [\"alert\", \"stats\"]\n",
                "sinks[0].records[1]",
                "alert records only",
            ),
            (
                "[[sinks]]\ntype = \"falco\"\npath = \"-\"\nrecords = [\"exec\"]\n",
                "sinks[0].records[0]",
                "alert records only",
            ),
            (
                "[[sinks]]\ntype = \"ndjson\"\npath = \"-\"\n[[sinks]]\ntype = \"falco\"\npath = \"-\"\n",
                "sinks[1].path",
                "already written by sinks[0]",
            ),
            (
                "[[sinks]]\ntype = \"ndjson\"\npath = \"a\"\nname = \"x\"\n[[sinks]]\ntype = \"ndjson\"\npath = \"b\"\nname = \"x\"\n",
                "sinks[1].name",
                "used twice",
            ),
        ];
        for (text, key, words) in cases {
            let error = Config::from_toml(text).unwrap_err().to_string();
            assert!(
                error.starts_with(&format!("{key}:")) && error.contains(words),
                "{text} -> {error}"
            );
        }
    }

    #[test]
    fn malformed_toml_is_an_error_not_a_panic() {
        assert!(Config::from_toml("[agent\ninterval = ").is_err());
    }
}
