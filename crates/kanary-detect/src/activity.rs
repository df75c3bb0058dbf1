//! What a window holds beyond syscall counts: the container's resource and activity figures
//! ([`metrics_of`]) and the discrete facts seen during the interval ([`Activity`]: programs
//! executed, files opened, connections, security-relevant calls).
//!
//! These feed the detectors that judge behaviour rather than syscall sequences: the behaviour
//! profile (which programs, files and peers), the resource model and the window model (how much
//! CPU, memory, IO, traffic, forks), and the invariants (escape and privilege attempts). They are
//! built from the same records the agent writes (`stats`, `exec`, `open`, `connect`, `accept`,
//! `security`), so what a detector saw is exactly what a reader of `--events` can see.
//!
//! Each fact carries only what a detector judges and an alert shows as evidence; repeats of one
//! fact within a window are folded into a count, so a busy container's window stays small.

use std::collections::BTreeMap;

use kanary_model::record::{Access, ConnectionResult, RecordBody};
use kanary_model::stats::ContainerStats;
use serde::{Deserialize, Serialize};

/// Names of the figures [`metrics_of`] gives, in a fixed order (documented in `docs/detection.md`).
/// Levels (`cpu_percent`, `memory_bytes`, `pids`) as measured, every other figure per second.
pub const METRICS: &[&str] = &[
    "cpu_percent",
    "memory_bytes",
    "io_read_bytes",
    "io_write_bytes",
    "pids",
    "rx_bytes",
    "tx_bytes",
    "connects",
    "connect_failures",
    "accepts",
    "execs",
    "forks",
    "opens",
    "open_failures",
    "syscalls",
];

/// The figures of one `stats` interval of `interval_s` seconds by name ([`METRICS`]): levels as
/// measured, counters divided by the interval, so that figures learnt at one interval compare
/// with those of another. A figure whose collector is off is absent, not zero, so a detector
/// never learns "zero" for something that was not measured; so is every counter when the
/// interval is not a positive number.
pub fn metrics_of(stats: &ContainerStats, interval_s: f64) -> BTreeMap<String, f64> {
    let mut out = BTreeMap::new();
    let timed = interval_s > 0.0 && interval_s.is_finite();
    let level = |out: &mut BTreeMap<String, f64>, name: &str, value: f64| {
        out.insert(name.to_string(), value);
    };
    let rate = |out: &mut BTreeMap<String, f64>, name: &str, count: u64| {
        if timed {
            out.insert(name.to_string(), count as f64 / interval_s);
        }
    };
    if let Some(r) = &stats.resources {
        level(&mut out, "cpu_percent", r.cpu_percent);
        level(&mut out, "memory_bytes", r.memory_bytes as f64);
        level(&mut out, "pids", r.pids as f64);
        rate(&mut out, "io_read_bytes", r.io_read_bytes);
        rate(&mut out, "io_write_bytes", r.io_write_bytes);
    }
    if let Some(n) = &stats.network {
        rate(&mut out, "rx_bytes", n.rx_bytes);
        rate(&mut out, "tx_bytes", n.tx_bytes);
        rate(&mut out, "connects", n.connects);
        rate(&mut out, "connect_failures", n.connect_failures);
        rate(&mut out, "accepts", n.accepts);
    }
    if let Some(p) = &stats.process {
        rate(&mut out, "execs", p.execs);
        rate(&mut out, "forks", p.forks);
    }
    if let Some(f) = &stats.file {
        rate(&mut out, "opens", f.opens);
        rate(&mut out, "open_failures", f.open_failures);
    }
    if let Some(s) = &stats.syscalls {
        rate(&mut out, "syscalls", s.total);
    }
    out
}

/// Who is at the other end of a connection, as the behaviour profile remembers it: another
/// container by its image (stable across restarts and replicas, unlike its id or address), or
/// an address outside the host's containers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Peer {
    /// One of this host's containers.
    Container {
        /// Its image (or its name when the image is unknown).
        image: String,
        /// Its name, for the evidence (not part of what is learnt).
        name: String,
    },
    /// Anything else.
    Address {
        /// The remote IP address.
        address: String,
    },
}

/// One discrete fact of a window. Repeats within the window are folded into
/// [`Fact::count`].
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Activity {
    /// A program was executed.
    Exec {
        /// The executed file as passed to exec.
        path: String,
        /// The parent's command name.
        parent: String,
        /// The command line, space-joined (evidence).
        cmdline: String,
        /// Real user id.
        uid: u32,
    },
    /// A file was opened.
    Open {
        /// The path as passed to open.
        path: String,
        /// Opened for writing (write, read-write, create or truncate).
        write: bool,
        /// The open succeeded.
        ok: bool,
        /// Command name of the opener.
        comm: String,
    },
    /// An outbound connection or attempt.
    Connect {
        /// The remote end.
        peer: Peer,
        /// Remote port.
        port: u16,
        /// `tcp` or `udp`.
        protocol: String,
        /// It was established.
        ok: bool,
        /// Command name of the caller.
        comm: String,
    },
    /// An inbound connection was accepted.
    Accept {
        /// The remote end.
        peer: Peer,
        /// The local (listening) port.
        port: u16,
    },
    /// A security-relevant syscall returned.
    Security {
        /// Syscall name.
        syscall: String,
        /// Decoded arguments by name, values as text (evidence and rules).
        args: BTreeMap<String, String>,
        /// It succeeded (a refused attempt is still an attempt).
        ok: bool,
        /// Command name of the caller.
        comm: String,
        /// Effective uid of the caller.
        uid: u32,
    },
}

/// A fact and how often it happened in the window.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fact {
    /// What happened.
    pub activity: Activity,
    /// How many times in the window (kernel-folded repeats included).
    pub count: u64,
}

impl Activity {
    /// Whether the fact comes from the container runtime setting the container (or a `docker
    /// exec`) up: runc's processes run in the container's cgroup, so their mounts, capability
    /// changes and look-ups of `/etc/passwd` are attributed to it. An exec is the runtime's only
    /// when runc re-executes itself (`runc init`, from a sealed copy of its binary such as
    /// `/dev/fd/N`); what runc executes otherwise (an entrypoint, a `docker exec`'d command) is
    /// the container's. Known limitation: recognised by process name, which a process can
    /// change.
    pub fn by_runtime(&self) -> bool {
        match self {
            Activity::Exec {
                parent, cmdline, ..
            } => parent.starts_with("runc") && cmdline.starts_with("runc init"),
            Activity::Open { comm, .. }
            | Activity::Connect { comm, .. }
            | Activity::Security { comm, .. } => comm.starts_with("runc"),
            Activity::Accept { .. } => false,
        }
    }

    /// Whether the fact is an exec the runtime performed: an entrypoint or a `docker exec`'d
    /// command (runc is the parent).
    pub fn started_by_runtime(&self) -> bool {
        matches!(self, Activity::Exec { parent, .. } if parent.starts_with("runc"))
    }

    /// The fact a record states, for the record types that carry one.
    pub fn from_record(record: &RecordBody) -> Option<(Activity, u64)> {
        match record {
            RecordBody::Exec(e) => Some((
                Activity::Exec {
                    path: program_of(&e.path, &e.argv),
                    parent: e.parent_comm.clone(),
                    cmdline: e.argv.join(" "),
                    uid: e.uid,
                },
                1,
            )),
            RecordBody::Open(o) => Some((
                Activity::Open {
                    path: o.path.clone(),
                    write: o.access != Access::Read || o.create || o.truncate,
                    ok: o.result >= 0,
                    comm: o.comm.clone(),
                },
                o.repeats.max(1),
            )),
            RecordBody::Connect(c) => Some((
                Activity::Connect {
                    peer: peer_of(c.peer.as_ref(), &c.dst_addr.to_string()),
                    port: c.dst_port,
                    protocol: c.protocol.clone(),
                    ok: c.result == ConnectionResult::Ok,
                    comm: c.comm.clone(),
                },
                c.repeats.max(1),
            )),
            RecordBody::Accept(c) => Some((
                Activity::Accept {
                    peer: peer_of(c.peer.as_ref(), &c.dst_addr.to_string()),
                    port: c.src_port,
                },
                c.repeats.max(1),
            )),
            RecordBody::Security(s) => Some((
                Activity::Security {
                    syscall: s.syscall.clone(),
                    args: s
                        .args
                        .iter()
                        .map(|(name, value)| {
                            let value = match value {
                                serde_json::Value::String(text) => text.clone(),
                                other => other.to_string(),
                            };
                            (name.clone(), value)
                        })
                        .collect(),
                    ok: s.result >= 0,
                    comm: s.comm.clone(),
                    uid: s.uid,
                },
                1,
            )),
            _ => None,
        }
    }
}

/// The program an exec ran, as the behaviour profile knows it: the path, except for a re-exec
/// of the caller's own binary (`/proc/self/exe`, how busybox's shell runs its applets and some
/// runtimes re-launch themselves), where the path is the same for every program and `argv[0]`
/// is what tells `cat` from `wget`.
fn program_of(path: &str, argv: &[String]) -> String {
    match argv.first().filter(|_| path == "/proc/self/exe") {
        Some(argv0) => format!("/proc/self/exe ({argv0})"),
        None => path.to_string(),
    }
}

fn peer_of(container: Option<&kanary_model::record::ContainerRef>, address: &str) -> Peer {
    match container {
        Some(peer) => Peer::Container {
            image: peer.image.clone().unwrap_or_else(|| peer.name.clone()),
            name: peer.name.clone(),
        },
        None => Peer::Address {
            address: address.to_string(),
        },
    }
}

/// Collects one container's facts over an interval, folding repeats; bounded so that a storm
/// of distinct facts cannot grow a window without limit (the overflow is counted).
#[derive(Debug, Clone, Default)]
pub struct FactLog {
    facts: BTreeMap<Activity, u64>,
    overflow: u64,
}

/// Most distinct facts a window keeps; later distinct facts are counted in
/// [`FactLog::overflow`] only.
pub const MAX_FACTS: usize = 512;

impl FactLog {
    /// Records `activity` seen `count` times.
    pub fn push(&mut self, activity: Activity, count: u64) {
        if let Some(seen) = self.facts.get_mut(&activity) {
            *seen = seen.saturating_add(count);
        } else if self.facts.len() < MAX_FACTS {
            self.facts.insert(activity, count);
        } else {
            self.overflow = self.overflow.saturating_add(count);
        }
    }

    /// Distinct facts that did not fit.
    pub fn overflow(&self) -> u64 {
        self.overflow
    }

    /// The facts, in a stable order, leaving the log empty for the next interval.
    pub fn take(&mut self) -> Vec<Fact> {
        self.overflow = 0;
        std::mem::take(&mut self.facts)
            .into_iter()
            .map(|(activity, count)| Fact { activity, count })
            .collect()
    }
}

/// Adds `facts` to `union`, a list sorted by activity (as [`FactLog::take`] gives), adding the
/// counts of facts already there. At most `cap` distinct facts are kept; returns how many
/// distinct facts did not fit. Used to remember every fact a baseline saw while learning, not
/// only those of the windows its sample keeps: a program run once in a learning period is known.
pub fn merge_facts(union: &mut Vec<Fact>, facts: &[Fact], cap: usize) -> u64 {
    let mut overflow = 0;
    for fact in facts {
        match union.binary_search_by(|kept| kept.activity.cmp(&fact.activity)) {
            Ok(at) => union[at].count = union[at].count.saturating_add(fact.count),
            Err(_) if union.len() >= cap => overflow += 1,
            Err(at) => union.insert(at, fact.clone()),
        }
    }
    overflow
}

#[cfg(test)]
mod tests {
    use super::*;
    use kanary_model::record::{Connection, ContainerRef, Exec, Open};
    use kanary_model::stats::{NetworkStats, ResourceStats};

    fn container() -> ContainerRef {
        ContainerRef {
            id: "a".repeat(64),
            name: "web".into(),
            image: Some("web:1".into()),
        }
    }

    #[test]
    fn metrics_name_only_what_was_measured() {
        let stats = ContainerStats {
            resources: Some(ResourceStats {
                cpu_percent: 12.5,
                memory_bytes: 1024,
                pids: 3,
                ..ResourceStats::default()
            }),
            network: Some(NetworkStats {
                tx_bytes: 99,
                ..NetworkStats::default()
            }),
            ..ContainerStats::default()
        };
        let metrics = metrics_of(&stats, 2.0);
        assert_eq!(metrics["cpu_percent"], 12.5);
        assert_eq!(metrics["memory_bytes"], 1024.0);
        // Counters per second.
        assert_eq!(metrics["tx_bytes"], 49.5);
        // Levels only, without a usable interval.
        let untimed = metrics_of(&stats, 0.0);
        assert_eq!(untimed["pids"], 3.0);
        assert!(!untimed.contains_key("tx_bytes"));
        // The process and file collectors were off: no figure, rather than a misleading zero.
        assert!(!metrics.contains_key("forks"));
        assert!(!metrics.contains_key("opens"));
        assert!(metrics.keys().all(|k| METRICS.contains(&k.as_str())));
    }

    #[test]
    fn records_become_facts_and_repeats_fold() {
        let exec = RecordBody::Exec(Exec {
            container: container(),
            pid: 10,
            ppid: 1,
            uid: 0,
            gid: 0,
            comm: "sh".into(),
            parent_comm: "nginx".into(),
            path: "/bin/sh".into(),
            argv: vec!["sh".into(), "-c".into(), "id".into()],
            argv_truncated: false,
        });
        let open = RecordBody::Open(Open {
            container: container(),
            pid: 10,
            comm: "cat".into(),
            path: "/etc/shadow".into(),
            flags: 0,
            access: Access::Read,
            create: false,
            truncate: false,
            result: -13,
            error: Some("EACCES".into()),
            repeats: 4,
        });
        let connect = RecordBody::Connect(Connection {
            container: container(),
            pid: 10,
            comm: "nc".into(),
            protocol: "tcp".into(),
            src_addr: "172.17.0.2".parse().unwrap(),
            src_port: 40000,
            dst_addr: "172.17.0.3".parse().unwrap(),
            dst_port: 6379,
            result: ConnectionResult::Failed,
            peer: Some(ContainerRef {
                id: "b".repeat(64),
                name: "cache".into(),
                image: Some("redis:7".into()),
            }),
            repeats: 0,
        });
        let mut log = FactLog::default();
        for record in [&exec, &open, &connect, &exec] {
            let (activity, count) = Activity::from_record(record).unwrap();
            log.push(activity, count);
        }
        let facts = log.take();
        assert_eq!(facts.len(), 3);
        let count_of = |pred: &dyn Fn(&Activity) -> bool| {
            facts.iter().find(|f| pred(&f.activity)).map(|f| f.count)
        };
        assert_eq!(
            count_of(
                &|a| matches!(a, Activity::Exec { path, parent, cmdline, .. }
                if path == "/bin/sh" && parent == "nginx" && cmdline == "sh -c id")
            ),
            Some(2)
        );
        assert_eq!(
            count_of(
                &|a| matches!(a, Activity::Open { path, write: false, ok: false, .. }
                if path == "/etc/shadow")
            ),
            Some(4)
        );
        assert_eq!(
            count_of(
                &|a| matches!(a, Activity::Connect { peer: Peer::Container { image, .. }, port: 6379, ok: false, .. }
                if image == "redis:7")
            ),
            Some(1)
        );
        assert!(log.take().is_empty(), "taking empties the log");
    }

    #[test]
    fn a_re_exec_of_self_is_told_apart_by_its_argv0() {
        assert_eq!(program_of("/bin/sh", &["sh".into()]), "/bin/sh");
        assert_eq!(
            program_of("/proc/self/exe", &["wget".into(), "-q".into()]),
            "/proc/self/exe (wget)"
        );
        assert_eq!(program_of("/proc/self/exe", &[]), "/proc/self/exe");
        // Fileless execution keeps its telling path.
        assert_eq!(
            program_of("/proc/self/fd/3", &["x".into()]),
            "/proc/self/fd/3"
        );
    }

    #[test]
    fn unions_add_counts_keep_order_and_are_bounded() {
        let open = |path: &str, count| Fact {
            activity: Activity::Open {
                path: path.into(),
                write: false,
                ok: true,
                comm: "x".into(),
            },
            count,
        };
        let mut union = Vec::new();
        assert_eq!(
            merge_facts(&mut union, &[open("/b", 1), open("/d", 2)], 3),
            0
        );
        assert_eq!(
            merge_facts(&mut union, &[open("/a", 1), open("/b", 5)], 3),
            0
        );
        assert_eq!(union, vec![open("/a", 1), open("/b", 6), open("/d", 2)]);
        // Full: known facts still count, a new one is refused and counted.
        assert_eq!(
            merge_facts(&mut union, &[open("/c", 1), open("/d", 1)], 3),
            1
        );
        assert_eq!(union, vec![open("/a", 1), open("/b", 6), open("/d", 3)]);
    }

    #[test]
    fn the_runtime_re_executing_itself_is_the_runtime_but_what_it_starts_is_the_container() {
        let exec = |parent: &str, cmdline: &str| Activity::Exec {
            path: "/dev/fd/6".into(),
            parent: parent.into(),
            cmdline: cmdline.into(),
            uid: 0,
        };
        let reexec = exec("runc", "runc init");
        assert!(reexec.by_runtime() && reexec.started_by_runtime());
        let entrypoint = exec("runc:[2:INIT]", "/usr/sbin/nginx -g daemon off;");
        assert!(!entrypoint.by_runtime() && entrypoint.started_by_runtime());
        let shell = exec("python3", "sh -c getent hosts cache");
        assert!(!shell.by_runtime() && !shell.started_by_runtime());
    }

    #[test]
    fn the_log_is_bounded_and_counts_what_it_drops() {
        let mut log = FactLog::default();
        for i in 0..MAX_FACTS + 10 {
            log.push(
                Activity::Open {
                    path: format!("/tmp/{i}"),
                    write: true,
                    ok: true,
                    comm: "x".into(),
                },
                1,
            );
        }
        assert_eq!(log.overflow(), 10);
        assert_eq!(log.take().len(), MAX_FACTS);
    }
}
