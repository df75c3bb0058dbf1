//! The agent's configuration: one TOML file, every key optional with an embedded default.
//!
//! Field doc comments are the user reference (`kanary.example.toml` mirrors them). Unknown keys
//! are rejected so a typo never silently falls back to a default, and every error names the key.

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
}

impl Default for AgentConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(5),
            include_host: false,
            max_containers: 256,
            cgroup2_mount: None,
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
    /// Quantile of the held-out learning scores taken as the alert threshold (0 < q <= 1).
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
}

impl Default for DetectionConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            learn_for: Duration::from_secs(15 * 60),
            min_windows: 10,
            max_windows: 2048,
            quantile: 0.99,
            margin: 0.0,
            realert_every: 12,
            close_after: 3,
            save_every: 12,
        }
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
    fn malformed_toml_is_an_error_not_a_panic() {
        assert!(Config::from_toml("[agent\ninterval = ").is_err());
    }
}
