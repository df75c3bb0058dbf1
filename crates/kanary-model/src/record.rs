//! The records `kanary run --events` writes, one JSON object per line (schema in
//! `docs/schema.md`). Every record has `type` and `ts`; every container-scoped record has
//! `container: {id, name, image}`.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::cgroup::Runtime;
use crate::stats::{ContainerStats, DropCounts};

/// Version of the record schema; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// Formats a wall-clock time as RFC 3339 UTC with nanoseconds, the form of every `ts`.
pub fn timestamp(time: SystemTime) -> String {
    humantime::format_rfc3339_nanos(time).to_string()
}

/// Who a record is about.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContainerRef {
    /// Full container id (64 hex digits), or `host`.
    pub id: String,
    /// Container name from the runtime, or the short id when the runtime could not be asked.
    pub name: String,
    /// Image reference the container was started from, when known.
    pub image: Option<String>,
}

/// One output record: a timestamp and a typed body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// When it happened (kernel events) or was measured (`stats`), RFC 3339 UTC.
    pub ts: String,
    /// What happened.
    #[serde(flatten)]
    pub body: RecordBody,
}

/// The record types, tagged by `type`.
// Records are built once and written once; boxing the large `stats` variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RecordBody {
    /// The agent started: versions and the effective configuration.
    AgentStart(AgentStart),
    /// A container was found (at start-up, or when its cgroup was created).
    ContainerStart(ContainerStart),
    /// A container's cgroup went away; its last `stats` record precedes this one.
    ContainerStop(ContainerStop),
    /// A process image was executed.
    Exec(Exec),
    /// A new process (not thread) was forked.
    Fork(Fork),
    /// A process exited.
    Exit(Exit),
    /// A file was opened (first time for this path and access class, or again after
    /// `renotify_after`).
    Open(Open),
    /// An outbound TCP connection completed or failed, or a UDP socket was connected.
    Connect(Connection),
    /// An inbound TCP connection was accepted.
    Accept(Connection),
    /// A security-relevant system call returned.
    Security(Security),
    /// A fatal signal was generated for a container process.
    Signal(Signal),
    /// One raw system call (trace mode only).
    Syscall(Syscall),
    /// Per-container aggregates of the last interval.
    Stats(Stats),
    /// Events lost by a collector during the last interval.
    Drops(Drops),
    /// An anomaly incident of one container (written when it opens, again now and then while
    /// it lasts, and once when it ends).
    Alert(Alert),
    /// Where an image's baseline is in its life: each interval while it learns, and when it
    /// starts detecting.
    Learning(Learning),
    /// The agent throttled a container's event stream to stay within its CPU budget, or
    /// released it.
    Degraded(Degraded),
}

/// `agent_start`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentStart {
    /// kanary's version.
    pub version: String,
    /// [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Collectors that loaded and attached.
    pub collectors: Vec<String>,
    /// Collectors that are enabled but failed to load, with the reason.
    pub failed_collectors: BTreeMap<String, String>,
    /// The effective configuration.
    pub config: serde_json::Value,
}

/// `container_start`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerStart {
    /// The container.
    pub container: ContainerRef,
    /// Its runtime, from the cgroup path.
    pub runtime: Runtime,
    /// Kernel cgroup id (`bpf_get_current_cgroup_id()`).
    pub cgroup_id: u64,
    /// cgroup v2 path relative to the hierarchy's mount.
    pub cgroup_path: String,
    /// Image id (digest) from the runtime, when known.
    pub image_id: Option<String>,
    /// Kubernetes pod uid, when the path holds one.
    pub pod_uid: Option<String>,
    /// Labels from the runtime.
    pub labels: BTreeMap<String, String>,
    /// IP addresses of the container, when known.
    pub addresses: Vec<IpAddr>,
    /// `true` when the container was running before the agent started.
    pub existing: bool,
}

/// `container_stop`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContainerStop {
    /// The container.
    pub container: ContainerRef,
    /// Kernel cgroup id.
    pub cgroup_id: u64,
    /// Seconds the agent watched it.
    pub watched_s: f64,
}

/// `exec`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exec {
    /// The container.
    pub container: ContainerRef,
    /// Process id (as seen from the host).
    pub pid: u32,
    /// Parent process id.
    pub ppid: u32,
    /// Real user id.
    pub uid: u32,
    /// Real group id.
    pub gid: u32,
    /// Command name after the exec.
    pub comm: String,
    /// The parent's command name.
    pub parent_comm: String,
    /// The executed file as passed to exec.
    pub path: String,
    /// Arguments, bounded in the kernel.
    pub argv: Vec<String>,
    /// `true` when `argv` was cut at the kernel bound.
    pub argv_truncated: bool,
}

/// `fork`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Fork {
    /// The container.
    pub container: ContainerRef,
    /// The new process.
    pub pid: u32,
    /// Its parent.
    pub ppid: u32,
    /// The parent's command name.
    pub parent_comm: String,
}

/// `exit`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exit {
    /// The container.
    pub container: ContainerRef,
    /// The process.
    pub pid: u32,
    /// Its command name.
    pub comm: String,
    /// Exit status (0..=255) when it exited normally.
    pub exit_code: Option<u32>,
    /// Terminating signal when it was killed.
    pub signal: Option<u32>,
}

/// How a file was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Access {
    /// O_RDONLY.
    Read,
    /// O_WRONLY.
    Write,
    /// O_RDWR.
    ReadWrite,
}

/// `open`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Open {
    /// The container.
    pub container: ContainerRef,
    /// Process id.
    pub pid: u32,
    /// Command name.
    pub comm: String,
    /// Path as passed to the syscall (relative paths are relative to the caller's cwd/dirfd).
    pub path: String,
    /// Raw open flags.
    pub flags: u32,
    /// Access class from the flags.
    pub access: Access,
    /// O_CREAT was set.
    pub create: bool,
    /// O_TRUNC was set.
    pub truncate: bool,
    /// The file descriptor, or the negative errno.
    pub result: i64,
    /// The errno's name when it failed.
    pub error: Option<String>,
    /// How many identical opens the kernel folded into this one since it was last reported.
    pub repeats: u64,
}

/// Result of a connection attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionResult {
    /// Established (TCP) or connected (UDP).
    Ok,
    /// Refused, reset, timed out or unreachable.
    Failed,
}

/// `connect` and `accept`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Connection {
    /// The container.
    pub container: ContainerRef,
    /// Process id (0 when the kernel completed it outside process context).
    pub pid: u32,
    /// Command name (empty when outside process context).
    pub comm: String,
    /// `tcp` or `udp`.
    pub protocol: String,
    /// Local address.
    pub src_addr: IpAddr,
    /// Local port.
    pub src_port: u16,
    /// Remote address.
    pub dst_addr: IpAddr,
    /// Remote port.
    pub dst_port: u16,
    /// Whether it succeeded.
    pub result: ConnectionResult,
    /// The container that owns the remote address, when it is one of this host's containers.
    pub peer: Option<ContainerRef>,
    /// How many identical connections the kernel folded into this one since it was last
    /// reported.
    pub repeats: u64,
}

/// `security`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Security {
    /// The container.
    pub container: ContainerRef,
    /// Process id.
    pub pid: u32,
    /// Command name.
    pub comm: String,
    /// Effective user id of the caller.
    pub uid: u32,
    /// Syscall name, e.g. `setuid`, `mount`, `init_module`.
    pub syscall: String,
    /// Decoded arguments by name.
    pub args: BTreeMap<String, serde_json::Value>,
    /// Return value (negative errno on failure).
    pub result: i64,
    /// The errno's name when it failed.
    pub error: Option<String>,
}

/// `signal`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Signal {
    /// The container of the process receiving the signal.
    pub container: ContainerRef,
    /// Receiving process.
    pub pid: u32,
    /// Its command name.
    pub comm: String,
    /// Signal number.
    pub signal: u32,
    /// Signal name, e.g. `SIGSEGV`.
    pub signal_name: String,
    /// Process that raised it (the receiver itself for faults).
    pub sender_pid: u32,
}

/// `syscall` (trace mode).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Syscall {
    /// The container.
    pub container: ContainerRef,
    /// Process id.
    pub pid: u32,
    /// Thread id.
    pub tid: u32,
    /// Syscall number.
    pub nr: u32,
    /// Syscall name.
    pub name: String,
    /// The six raw argument registers.
    pub args: [u64; 6],
}

/// `stats`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// The container.
    pub container: ContainerRef,
    /// Length of the interval these counters cover, in seconds.
    pub interval_s: f64,
    /// The aggregates.
    #[serde(flatten)]
    pub stats: ContainerStats,
    /// Each detector's score of this window against its threshold (empty when detection is
    /// off, or the container has no image to judge it by; only the invariants while its
    /// image's baseline learns).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scores: Vec<DetectorScore>,
}

/// `drops`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Drops {
    /// The collector that lost data.
    pub collector: String,
    /// The container it was about, when known.
    pub container: Option<ContainerRef>,
    /// The losses in the last interval.
    #[serde(flatten)]
    pub counts: DropCounts,
}

/// What kind of anomaly an alert is about. The list is the documented contract; each is documented
/// in `docs/detection.md` with the detector that raises it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertClass {
    /// The container's syscall sequences or syscall mix departed from its image's baseline.
    SequenceAnomaly,
    /// A system call that is suspicious whatever the baseline.
    SuspiciousSyscall,
    /// A process (exec path or parent→child pair) the baseline never saw.
    UnexpectedProcess,
    /// A file path the baseline never saw.
    UnexpectedFile,
    /// A connection (or attempt) to or from a peer, e.g. another container, the baseline never
    /// saw or a policy forbids.
    UnauthorizedConnection,
    /// CPU, memory, IO, egress, fork rate or pids far from the baseline.
    ResourceAnomaly,
    /// An attempt to leave the container (release_agent writes, host mounts, setns into the
    /// host, writes under /proc/sys).
    EscapeAttempt,
    /// Gaining privileges: powerful capabilities, kernel module loads, ptrace of another
    /// process.
    PrivilegeEscalation,
}

/// How serious an alert is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Just above the threshold.
    Low,
    /// Clearly above it.
    Medium,
    /// Far above it.
    High,
    /// Needs no baseline to be serious (reserved for invariants such as escape attempts).
    Critical,
}

/// One feature that made a window anomalous: what the baseline learnt against what was seen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertContribution {
    /// The feature, e.g. an n-gram as syscall names (`openat→read→close`).
    pub feature: String,
    /// What the baseline learnt for it (for an n-gram: its learnt probability).
    pub baseline: f64,
    /// What the window showed (for an n-gram: how often it occurred).
    pub observed: f64,
    /// Evidence for a reader: the command line, the process, the peer's name, a rule's reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// One detector's verdict on the window that set an alert's score: the steps of the decision,
/// for readers who want to see every detector's view and not only the one that fired.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DetectorScore {
    /// The detector (`combined`, `window`, `resource`, `behaviour`, `invariants`).
    pub detector: String,
    /// Its score of the window.
    pub score: f64,
    /// Its calibrated threshold.
    pub threshold: f64,
    /// `score > threshold`.
    pub anomalous: bool,
}

/// `alert`: one incident of one container. The same `id` is written when the incident opens,
/// at most once per `detection.realert_every` intervals while it lasts (with the updated
/// `count` and `last_seen`), and once more with `ended: true` when it ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Alert {
    /// Identifies the incident across its repeats.
    pub id: String,
    /// The container.
    pub container: ContainerRef,
    /// The image id (digest) whose baseline judged it, when known.
    pub image_id: Option<String>,
    /// What kind of anomaly.
    pub class: AlertClass,
    /// How serious.
    pub severity: Severity,
    /// Highest anomaly score of the incident (higher is more anomalous).
    pub score: f64,
    /// The calibrated threshold the score exceeded.
    pub threshold: f64,
    /// The detector that scored (`combined`: sequence and frequency views).
    pub detector: String,
    /// Each view's standardised score in the window that set `score` (`{"sequence": z,
    /// "frequency": z}`; 1 is that view's own 1%-false-alarm point on normal behaviour).
    pub views: BTreeMap<String, f64>,
    /// The features that contributed most in that window, most anomalous first.
    pub contributions: Vec<AlertContribution>,
    /// Every detector's score of that window against its threshold.
    #[serde(default)]
    pub detectors: Vec<DetectorScore>,
    /// When the incident's first anomalous window was read.
    pub first_seen: String,
    /// When its latest anomalous window was read.
    pub last_seen: String,
    /// Anomalous windows so far.
    pub count: u64,
    /// `true` on the last record of the incident (the container behaved normally for
    /// `detection.close_after` intervals, or stopped).
    pub ended: bool,
}

/// `learning`: an image's baseline progress.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Learning {
    /// The image reference the baseline is for.
    pub image: String,
    /// The image id, when known (the baseline's key then).
    pub image_id: Option<String>,
    /// `learning` or `detecting`.
    pub phase: String,
    /// Windows seen (learning) or learnt from (detecting).
    pub windows: u64,
    /// Syscalls in those windows.
    pub events: u64,
    /// Learning time still to go, in seconds (0 when detecting).
    pub time_left_s: f64,
    /// Windows still needed beyond the time (0 when detecting).
    pub windows_missing: u64,
    /// The calibrated alert threshold, once detecting.
    pub threshold: Option<f64>,
}

/// `degraded`: the agent stopped streaming a container's events (`throttled: true`) because it
/// was over `agent.cpu_budget_percent` and this container's records were the cost, or started
/// again (`throttled: false`). While throttled the container's events are counted as
/// `throttled` drops and its `stats` (kernel aggregates) are still written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Degraded {
    /// The container.
    pub container: ContainerRef,
    /// `true` when its stream was stopped, `false` when it was released.
    pub throttled: bool,
    /// Why, for a reader (`agent cpu 12.3% over budget 10%: 45000 records/s`).
    pub reason: String,
    /// The agent's own CPU use over the interval that decided it, in percent of one core.
    pub agent_cpu_percent: f64,
    /// `agent.cpu_budget_percent`.
    pub cpu_budget_percent: f64,
    /// The container's records per second: streamed ones when it is throttled, the ones the
    /// kernel withheld (throttled drops) when it is released.
    pub records_per_s: f64,
}

/// Every record `type`, as written in the `type` field (the [`RecordBody`] variants, in order).
/// Sinks filter records by these names (`[[sinks]] records = [...]`).
pub const RECORD_TYPES: &[&str] = &[
    "agent_start",
    "container_start",
    "container_stop",
    "exec",
    "fork",
    "exit",
    "open",
    "connect",
    "accept",
    "security",
    "signal",
    "syscall",
    "stats",
    "drops",
    "alert",
    "learning",
    "degraded",
];

impl RecordBody {
    /// The record's `type`, one of [`RECORD_TYPES`].
    pub fn type_name(&self) -> &'static str {
        match self {
            RecordBody::AgentStart(_) => "agent_start",
            RecordBody::ContainerStart(_) => "container_start",
            RecordBody::ContainerStop(_) => "container_stop",
            RecordBody::Exec(_) => "exec",
            RecordBody::Fork(_) => "fork",
            RecordBody::Exit(_) => "exit",
            RecordBody::Open(_) => "open",
            RecordBody::Connect(_) => "connect",
            RecordBody::Accept(_) => "accept",
            RecordBody::Security(_) => "security",
            RecordBody::Signal(_) => "signal",
            RecordBody::Syscall(_) => "syscall",
            RecordBody::Stats(_) => "stats",
            RecordBody::Drops(_) => "drops",
            RecordBody::Alert(_) => "alert",
            RecordBody::Learning(_) => "learning",
            RecordBody::Degraded(_) => "degraded",
        }
    }

    /// The container a record is about, for records that are container-scoped.
    pub fn container_mut(&mut self) -> Option<&mut ContainerRef> {
        match self {
            RecordBody::AgentStart(_) => None,
            RecordBody::ContainerStart(r) => Some(&mut r.container),
            RecordBody::ContainerStop(r) => Some(&mut r.container),
            RecordBody::Exec(r) => Some(&mut r.container),
            RecordBody::Fork(r) => Some(&mut r.container),
            RecordBody::Exit(r) => Some(&mut r.container),
            RecordBody::Open(r) => Some(&mut r.container),
            RecordBody::Connect(r) | RecordBody::Accept(r) => Some(&mut r.container),
            RecordBody::Security(r) => Some(&mut r.container),
            RecordBody::Signal(r) => Some(&mut r.container),
            RecordBody::Syscall(r) => Some(&mut r.container),
            RecordBody::Stats(r) => Some(&mut r.container),
            RecordBody::Drops(r) => r.container.as_mut(),
            RecordBody::Alert(r) => Some(&mut r.container),
            RecordBody::Learning(_) => None,
            RecordBody::Degraded(r) => Some(&mut r.container),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container() -> ContainerRef {
        ContainerRef {
            id: "ab".repeat(32),
            name: "web".into(),
            image: Some("nginx:1".into()),
        }
    }

    #[test]
    fn records_carry_type_ts_and_container() {
        let record = Record {
            ts: timestamp(SystemTime::UNIX_EPOCH),
            body: RecordBody::Exec(Exec {
                container: container(),
                pid: 10,
                ppid: 1,
                uid: 0,
                gid: 0,
                comm: "sh".into(),
                parent_comm: "bash".into(),
                path: "/bin/sh".into(),
                argv: vec!["sh".into(), "-c".into(), "id".into()],
                argv_truncated: false,
            }),
        };
        let json: serde_json::Value = serde_json::to_value(&record).unwrap();
        assert_eq!(json["type"], "exec");
        assert_eq!(json["ts"], "1970-01-01T00:00:00.000000000Z");
        assert_eq!(json["container"]["name"], "web");
        assert_eq!(json["argv"][2], "id");
        let back: Record = serde_json::from_value(json).unwrap();
        assert_eq!(back, record);
    }

    #[test]
    fn alerts_name_their_class_and_severity_in_snake_case() {
        let record = Record {
            ts: timestamp(SystemTime::UNIX_EPOCH),
            body: RecordBody::Alert(Alert {
                id: "abababababab-1".into(),
                container: container(),
                image_id: Some("sha256:00".into()),
                class: AlertClass::SequenceAnomaly,
                severity: Severity::High,
                score: 9.5,
                threshold: 1.2,
                detector: "combined".into(),
                views: BTreeMap::from([("sequence".to_string(), 12.0)]),
                contributions: vec![AlertContribution {
                    feature: "getdents64→getdents64→close".into(),
                    baseline: 1e-5,
                    observed: 40.0,
                    detail: None,
                }],
                detectors: vec![DetectorScore {
                    detector: "combined".into(),
                    score: 9.5,
                    threshold: 1.2,
                    anomalous: true,
                }],
                first_seen: timestamp(SystemTime::UNIX_EPOCH),
                last_seen: timestamp(SystemTime::UNIX_EPOCH),
                count: 3,
                ended: false,
            }),
        };
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["type"], "alert");
        assert_eq!(json["class"], "sequence_anomaly");
        assert_eq!(json["severity"], "high");
        assert_eq!(json["container"]["name"], "web");
        assert_eq!(json["contributions"][0]["observed"], 40.0);
        let back: Record = serde_json::from_value(json).unwrap();
        assert_eq!(back, record);
        for (class, name) in [
            (
                AlertClass::UnauthorizedConnection,
                "unauthorized_connection",
            ),
            (AlertClass::EscapeAttempt, "escape_attempt"),
            (AlertClass::PrivilegeEscalation, "privilege_escalation"),
        ] {
            assert_eq!(serde_json::to_value(class).unwrap(), name);
        }
        assert!(Severity::Critical > Severity::High && Severity::Medium > Severity::Low);
    }

    #[test]
    fn type_names_are_the_serde_tags() {
        // Every listed name is a variant serde knows (an unknown one fails as such).
        for name in RECORD_TYPES {
            let error =
                serde_json::from_value::<Record>(serde_json::json!({"ts": "x", "type": name}))
                    .unwrap_err()
                    .to_string();
            assert!(!error.contains("unknown variant"), "{name}: {error}");
        }
        let error =
            serde_json::from_value::<Record>(serde_json::json!({"ts": "x", "type": "nope"}))
                .unwrap_err()
                .to_string();
        assert!(error.contains("unknown variant"), "{error}");
        let body = RecordBody::Learning(Learning {
            image: "nginx:1".into(),
            image_id: None,
            phase: "learning".into(),
            windows: 1,
            events: 2,
            time_left_s: 3.0,
            windows_missing: 0,
            threshold: None,
        });
        let json = serde_json::to_value(&body).unwrap();
        assert_eq!(json["type"], body.type_name());
        let fork = RecordBody::Fork(Fork {
            container: container(),
            pid: 2,
            ppid: 1,
            parent_comm: "sh".into(),
        });
        assert_eq!(
            serde_json::to_value(&fork).unwrap()["type"],
            fork.type_name()
        );
        let degraded = RecordBody::Degraded(Degraded {
            container: container(),
            throttled: true,
            reason: "storm".into(),
            agent_cpu_percent: 12.5,
            cpu_budget_percent: 10.0,
            records_per_s: 9000.0,
        });
        let json = serde_json::to_value(&degraded).unwrap();
        assert_eq!(json["type"], "degraded");
        assert_eq!(json["type"], degraded.type_name());
        assert_eq!(json["throttled"], true);
        assert_eq!(json["container"]["id"], container().id);
        assert_eq!(RECORD_TYPES.len(), 17);
    }

    #[test]
    fn stats_flatten_their_sections() {
        let mut stats = ContainerStats::default();
        stats.tracepoints.insert("tcp_retransmits".into(), 3);
        let record = Record {
            ts: timestamp(SystemTime::UNIX_EPOCH),
            body: RecordBody::Stats(Stats {
                container: container(),
                interval_s: 5.0,
                stats,
                scores: vec![DetectorScore {
                    detector: "resource".into(),
                    score: 0.5,
                    threshold: 3.0,
                    anomalous: false,
                }],
            }),
        };
        let json = serde_json::to_value(&record).unwrap();
        assert_eq!(json["type"], "stats");
        assert_eq!(json["tracepoints"]["tcp_retransmits"], 3);
        assert_eq!(json["scores"][0]["detector"], "resource");
        let back: Record = serde_json::from_value(json).unwrap();
        assert_eq!(back, record);
    }
}
