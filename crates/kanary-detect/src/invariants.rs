//! Invariants: things a container must never do, whatever its baseline. They need no learning,
//! so they judge a container from its first window, while its image's baseline is still
//! learning ([`Invariants::matches`]).
//!
//! Each rule is a named predicate over one fact of a window ([`crate::activity::Activity`]).
//! Rules come in three categories, each with its alert class and weight:
//!
//! | category | class | weight | rules |
//! |----------|-------|--------|-------|
//! | escape | `escape_attempt` | 10 | `release_hook_write` (open for write of a path holding `release_agent` or `notify_on_release`), `kernel_tunable_write` (under `/proc/sys/`, `/sys/kernel/`, or `/proc/sysrq-trigger`), `cgroup_write` (under `/sys/fs/cgroup/`), `cgroup_mount` (fstype cgroup, cgroup2), `kernel_fs_mount` (proc, sysfs, debugfs), `host_disk_mount` (source `/dev/sd*`, `/dev/vd*`, `/dev/nvme*`, `/dev/xvd*`, `/dev/dm-*`), `setns` (any), `user_namespace` (unshare with `CLONE_NEWUSER`) |
//! | privilege | `privilege_escalation` | 8 | `kernel_module` (init_module, finit_module, delete_module), `ptrace_attach` (attach, seize or poke), `become_root` (a set*id call naming id 0 by a caller whose euid is not 0), `capability_raise` (capset, see below), `setid_chmod` (a chmod-family mode with the setuid or setgid bit), `bpf` (any) |
//! | suspicious | `suspicious_syscall` | 5 | `preload_write` (open for write of `/etc/ld.so.preload`), `memfd_create` (any), `fileless_execveat` (execveat with `AT_EMPTY_PATH`, or of `/proc/*/fd/*` or `memfd:`), `temp_exec` (exec of a file under `/tmp`, `/var/tmp`, `/dev/shm`, `/proc/*/fd` or a `memfd:`), `namespace_unshare` (unshare of any other namespace) |
//!
//! Escape outweighs privilege outweighs suspicious because each is a step closer to the host.
//! A window's score is the sum of the weights of its matches, and the threshold is 0: any match
//! alarms. A fact matches at most one rule, the first in the table (most severe first), so one
//! call is never counted twice. Refused calls count: an attempt is an attempt.
//!
//! Decisions:
//! * `unshare(CLONE_NEWUSER)` is an escape step (a user namespace hands the caller every
//!   capability over new namespaces, opening kernel surface such as cgroup mounts); unsharing
//!   other namespaces without a user namespace needs privileges a container rarely has, so it
//!   is only suspicious.
//! * capset: the kernel refuses exactly the capsets that raise a capability beyond the caller's
//!   permitted set, so a refused capset is an attempt to raise; a successful one matches when it
//!   makes effective a capability a default container never holds (`CAP_DAC_READ_SEARCH`,
//!   `CAP_SYS_MODULE`, `CAP_SYS_RAWIO`, `CAP_SYS_PTRACE`, `CAP_SYS_ADMIN`, `CAP_BPF`), or when
//!   its effective set cannot be read. Dropping capabilities, as daemons do at start, matches
//!   nothing.
//! * `become_root` covers the gid calls too: the caller's group is not known, so a non-root
//!   caller naming gid 0 is taken as an attempt.
//!
//! Known limitation: the container runtime sets a container up from inside its cgroup (runc's
//! mounts, capset, setns, setuid at every start), so facts whose process name (for an exec, the
//! parent's) starts with `runc` are skipped. A process can rename itself; a later version should
//! skip the start-up phase of a container instead of trusting names.

use kanary_model::record::AlertClass;
use serde::{Deserialize, Serialize};

use crate::activity::Activity;
use crate::detector::{Calibration, Contribution, Detector, Versioned, FORMAT_VERSION};
use crate::error::Result;
use crate::window::FeatureWindow;

/// How many matches a finding explains.
const TOP: usize = 10;

/// Capability bits a default container never holds and a container escape wants:
/// DAC_READ_SEARCH (2), SYS_MODULE (16), SYS_RAWIO (17), SYS_PTRACE (19), SYS_ADMIN (21), BPF (39).
const POWERFUL_CAPS: u64 = 1 << 2 | 1 << 16 | 1 << 17 | 1 << 19 | 1 << 21 | 1 << 39;

/// The kind of an invariant: its alert class and weight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Category {
    /// Leaving the container.
    Escape,
    /// Gaining privileges.
    Privilege,
    /// A call normal containers rarely make, often an attack's first step.
    Suspicious,
}

impl Category {
    /// The alert class of the category's matches.
    pub fn class(self) -> AlertClass {
        match self {
            Category::Escape => AlertClass::EscapeAttempt,
            Category::Privilege => AlertClass::PrivilegeEscalation,
            Category::Suspicious => AlertClass::SuspiciousSyscall,
        }
    }

    /// The weight one match adds to a window's score.
    pub fn weight(self) -> f64 {
        match self {
            Category::Escape => 10.0,
            Category::Privilege => 8.0,
            Category::Suspicious => 5.0,
        }
    }

    fn label(self) -> &'static str {
        match self {
            Category::Escape => "escape",
            Category::Privilege => "privilege",
            Category::Suspicious => "suspicious",
        }
    }
}

/// One invariant.
#[derive(Debug, Clone, Copy)]
pub struct Rule {
    /// Its name, e.g. `release_hook_write`.
    pub name: &'static str,
    /// Its category.
    pub category: Category,
    /// What it catches, for a reader, e.g. `cgroup release hook`.
    pub description: &'static str,
    /// The action a fact shows, e.g. `mount cgroup on /tmp/cg`, when the rule matches it.
    action: fn(&Activity) -> Option<String>,
}

/// Every invariant, most severe first (see the module documentation).
pub const RULES: &[Rule] = &[
    Rule {
        name: "release_hook_write",
        category: Category::Escape,
        description: "cgroup release hook",
        action: release_hook_write,
    },
    Rule {
        name: "kernel_tunable_write",
        category: Category::Escape,
        description: "kernel tunable write",
        action: kernel_tunable_write,
    },
    Rule {
        name: "cgroup_write",
        category: Category::Escape,
        description: "cgroup file write",
        action: cgroup_write,
    },
    Rule {
        name: "cgroup_mount",
        category: Category::Escape,
        description: "cgroup mount",
        action: cgroup_mount,
    },
    Rule {
        name: "kernel_fs_mount",
        category: Category::Escape,
        description: "kernel filesystem mount",
        action: kernel_fs_mount,
    },
    Rule {
        name: "host_disk_mount",
        category: Category::Escape,
        description: "host disk mount",
        action: host_disk_mount,
    },
    Rule {
        name: "setns",
        category: Category::Escape,
        description: "namespace join",
        action: setns,
    },
    Rule {
        name: "user_namespace",
        category: Category::Escape,
        description: "user namespace",
        action: user_namespace,
    },
    Rule {
        name: "kernel_module",
        category: Category::Privilege,
        description: "kernel module",
        action: kernel_module,
    },
    Rule {
        name: "ptrace_attach",
        category: Category::Privilege,
        description: "ptrace of another process",
        action: ptrace_attach,
    },
    Rule {
        name: "become_root",
        category: Category::Privilege,
        description: "become root",
        action: become_root,
    },
    Rule {
        name: "capability_raise",
        category: Category::Privilege,
        description: "capability raise",
        action: capability_raise,
    },
    Rule {
        name: "setid_chmod",
        category: Category::Privilege,
        description: "set-id bit",
        action: setid_chmod,
    },
    Rule {
        name: "bpf",
        category: Category::Privilege,
        description: "bpf program or map",
        action: bpf,
    },
    Rule {
        name: "preload_write",
        category: Category::Suspicious,
        description: "loader preload",
        action: preload_write,
    },
    Rule {
        name: "memfd_create",
        category: Category::Suspicious,
        description: "in-memory file",
        action: memfd_create,
    },
    Rule {
        name: "fileless_execveat",
        category: Category::Suspicious,
        description: "fileless execution",
        action: fileless_execveat,
    },
    Rule {
        name: "temp_exec",
        category: Category::Suspicious,
        description: "exec from a temporary or in-memory file",
        action: temp_exec,
    },
    Rule {
        name: "namespace_unshare",
        category: Category::Suspicious,
        description: "namespace unshare",
        action: namespace_unshare,
    },
];

/// A rule matched by one fact of a window.
#[derive(Debug, Clone, PartialEq)]
pub struct Match {
    /// The rule's name.
    pub rule: &'static str,
    /// The rule's class.
    pub class: AlertClass,
    /// The rule's weight.
    pub weight: f64,
    /// What happened and why it matters, e.g. `mount cgroup on /tmp/cg (escape: cgroup mount)`.
    pub feature: String,
    /// Evidence: the process and the call's arguments.
    pub detail: String,
    /// How many times the fact happened in the window.
    pub count: u64,
}

/// The invariants detector (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Invariants {
    /// [`FORMAT_VERSION`] of this state.
    pub format_version: u32,
    threshold: f64,
}

impl Default for Invariants {
    fn default() -> Self {
        Invariants {
            format_version: FORMAT_VERSION,
            threshold: 0.0,
        }
    }
}

impl Invariants {
    /// The detector, ready to score (threshold 0: any match alarms).
    pub fn new() -> Self {
        Invariants::default()
    }

    /// The rules `window`'s facts match, one per matching fact, in the window's fact order.
    pub fn matches(window: &FeatureWindow) -> Vec<Match> {
        window
            .facts
            .iter()
            // An entrypoint or `docker exec`'d program may legitimately live anywhere (some
            // images start from /tmp): the rules judge what the container does after that.
            .filter(|fact| !fact.activity.by_runtime() && !fact.activity.started_by_runtime())
            .filter_map(|fact| {
                RULES.iter().find_map(|rule| {
                    (rule.action)(&fact.activity).map(|action| Match {
                        rule: rule.name,
                        class: rule.category.class(),
                        weight: rule.category.weight(),
                        feature: format!(
                            "{action} ({}: {})",
                            rule.category.label(),
                            rule.description
                        ),
                        detail: detail(&fact.activity),
                        count: fact.count,
                    })
                })
            })
            .collect()
    }
}

impl Versioned for Invariants {
    fn format_version(&self) -> u32 {
        self.format_version
    }
}

impl Detector for Invariants {
    fn kind(&self) -> &'static str {
        "invariants"
    }

    fn class(&self) -> AlertClass {
        AlertClass::SuspiciousSyscall
    }

    /// It judges facts, which start-up and idle windows have too.
    fn is_statistical(&self) -> bool {
        false
    }

    /// Nothing to learn: any windows, even none, are accepted.
    fn learn(&mut self, _windows: &[FeatureWindow]) -> Result<()> {
        Ok(())
    }

    /// The sum of the weights of the window's matches.
    fn raw_score(&self, window: &FeatureWindow) -> Result<f64> {
        Ok(Invariants::matches(window).iter().map(|m| m.weight).sum())
    }

    /// One contribution per match, heaviest first: class = the rule's, `baseline` 0,
    /// `observed` = how many times the fact happened.
    fn explain(&self, window: &FeatureWindow, top: usize) -> Result<Vec<Contribution>> {
        let mut matches = Invariants::matches(window);
        // Stable: equal weights keep the window's fact order.
        matches.sort_by(|a, b| b.weight.total_cmp(&a.weight));
        Ok(matches
            .into_iter()
            .take(top)
            .map(|m| {
                let mut contribution = Contribution::new(m.feature, 0.0, m.count as f64);
                contribution.class = Some(m.class);
                contribution.detail = Some(m.detail);
                contribution
            })
            .collect())
    }

    fn top(&self) -> usize {
        TOP
    }

    fn threshold(&self) -> Option<f64> {
        Some(self.threshold)
    }

    fn set_threshold(&mut self, threshold: f64) {
        self.threshold = threshold;
    }

    /// Sets the threshold to 0 without cross-validation: invariants do not vary with the
    /// baseline, so any match alarms.
    fn calibrate(&mut self, _windows: &[FeatureWindow], _calibration: &Calibration) -> Result<f64> {
        self.threshold = 0.0;
        Ok(0.0)
    }
}

/// Evidence for a reader: who did it, and the call's arguments.
fn detail(activity: &Activity) -> String {
    match activity {
        Activity::Exec {
            parent, cmdline, ..
        } => format!("{cmdline} (parent {parent})"),
        Activity::Open { comm, ok, .. } => {
            format!("{comm}{}", if *ok { "" } else { " (refused)" })
        }
        Activity::Security {
            comm,
            args,
            ok,
            uid,
            ..
        } => {
            let args: Vec<String> = args.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let refused = if *ok { "" } else { ", refused" };
            format!("{comm} (uid {uid}{refused}): {}", args.join(" "))
        }
        Activity::Connect { comm, .. } => comm.clone(),
        Activity::Accept { .. } => String::new(),
    }
}

/// The path of an open for writing.
fn written(activity: &Activity) -> Option<&str> {
    match activity {
        Activity::Open {
            path, write: true, ..
        } => Some(path),
        _ => None,
    }
}

/// A call of one of `syscalls`: its name, arguments, success and caller's euid.
struct Call<'a> {
    syscall: &'a str,
    args: &'a std::collections::BTreeMap<String, String>,
    ok: bool,
    uid: u32,
}

impl Call<'_> {
    fn arg(&self, name: &str) -> &str {
        self.args.get(name).map_or("", String::as_str)
    }

    /// Whether the flags argument `name` (the collector writes a JSON list of flag names)
    /// holds `flag`.
    fn has_flag(&self, name: &str, flag: &str) -> bool {
        self.arg(name)
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .any(|token| token == flag)
    }
}

fn call<'a>(activity: &'a Activity, syscalls: &[&str]) -> Option<Call<'a>> {
    match activity {
        Activity::Security {
            syscall,
            args,
            ok,
            uid,
            ..
        } if syscalls.contains(&syscall.as_str()) => Some(Call {
            syscall,
            args,
            ok: *ok,
            uid: *uid,
        }),
        _ => None,
    }
}

/// `/proc/<pid or self>/fd/...`: an open file descriptor, possibly of a deleted or memory file.
/// A path that names an open file descriptor: `/proc/<pid|self>/fd/N`, or `/dev/fd/N` (the
/// path the kernel gives a program executed from a descriptor, `fexecve`).
fn is_fd_path(path: &str) -> bool {
    path.starts_with("/dev/fd/")
        || path
            .strip_prefix("/proc/")
            .and_then(|rest| rest.split_once('/'))
            .is_some_and(|(pid, rest)| {
                (pid == "self" || pid.bytes().all(|b| b.is_ascii_digit()))
                    && rest.starts_with("fd/")
            })
}

fn release_hook_write(activity: &Activity) -> Option<String> {
    written(activity)
        .filter(|path| path.contains("release_agent") || path.contains("notify_on_release"))
        .map(|path| format!("write {path}"))
}

fn kernel_tunable_write(activity: &Activity) -> Option<String> {
    written(activity)
        .filter(|path| {
            path.starts_with("/proc/sys/")
                || path.starts_with("/sys/kernel/")
                || *path == "/proc/sysrq-trigger"
        })
        .map(|path| format!("write {path}"))
}

fn cgroup_write(activity: &Activity) -> Option<String> {
    written(activity)
        .filter(|path| path.starts_with("/sys/fs/cgroup/"))
        .map(|path| format!("write {path}"))
}

fn mount_action(call: &Call) -> String {
    format!(
        "mount {} on {}",
        match call.arg("fstype") {
            "" => call.arg("source"),
            fstype => fstype,
        },
        call.arg("target")
    )
}

fn cgroup_mount(activity: &Activity) -> Option<String> {
    call(activity, &["mount"])
        .filter(|c| matches!(c.arg("fstype"), "cgroup" | "cgroup2"))
        .map(|c| mount_action(&c))
}

fn kernel_fs_mount(activity: &Activity) -> Option<String> {
    call(activity, &["mount"])
        .filter(|c| matches!(c.arg("fstype"), "proc" | "sysfs" | "debugfs"))
        .map(|c| mount_action(&c))
}

fn host_disk_mount(activity: &Activity) -> Option<String> {
    const DISKS: &[&str] = &["/dev/sd", "/dev/vd", "/dev/nvme", "/dev/xvd", "/dev/dm-"];
    call(activity, &["mount"])
        .filter(|c| DISKS.iter().any(|disk| c.arg("source").starts_with(disk)))
        .map(|c| format!("mount {} on {}", c.arg("source"), c.arg("target")))
}

fn setns(activity: &Activity) -> Option<String> {
    call(activity, &["setns"]).map(|c| format!("setns {}", c.arg("flags")))
}

fn user_namespace(activity: &Activity) -> Option<String> {
    call(activity, &["unshare"])
        .filter(|c| c.has_flag("flags", "CLONE_NEWUSER"))
        .map(|c| format!("unshare {}", c.arg("flags")))
}

fn kernel_module(activity: &Activity) -> Option<String> {
    call(activity, &["init_module", "finit_module", "delete_module"]).map(|c| match c.arg("name") {
        "" => c.syscall.to_string(),
        name => format!("{} {name}", c.syscall),
    })
}

fn ptrace_attach(activity: &Activity) -> Option<String> {
    const REQUESTS: &[&str] = &[
        "PTRACE_ATTACH",
        "PTRACE_SEIZE",
        "PTRACE_POKETEXT",
        "PTRACE_POKEDATA",
        "PTRACE_POKEUSR",
    ];
    call(activity, &["ptrace"])
        .filter(|c| REQUESTS.contains(&c.arg("request")))
        .map(|c| format!("ptrace {} pid {}", c.arg("request"), c.arg("pid")))
}

fn become_root(activity: &Activity) -> Option<String> {
    const SET_IDS: &[&str] = &[
        "setuid",
        "setgid",
        "setreuid",
        "setregid",
        "setresuid",
        "setresgid",
        "setfsuid",
        "setfsgid",
    ];
    // Every argument of these calls is an id.
    call(activity, SET_IDS)
        .filter(|c| c.uid != 0 && c.args.values().any(|id| id == "0"))
        .map(|c| format!("{} to 0 by uid {}", c.syscall, c.uid))
}

fn capability_raise(activity: &Activity) -> Option<String> {
    call(activity, &["capset"])
        .filter(|c| {
            let effective = u64::from_str_radix(c.arg("effective").trim_start_matches("0x"), 16);
            !c.ok || effective.map_or(true, |caps| caps & POWERFUL_CAPS != 0)
        })
        .map(|c| format!("capset effective {}", c.arg("effective")))
}

fn setid_chmod(activity: &Activity) -> Option<String> {
    call(activity, &["chmod", "fchmod", "fchmodat", "fchmodat2"])
        .filter(|c| u32::from_str_radix(c.arg("mode"), 8).is_ok_and(|mode| mode & 0o6000 != 0))
        .map(|c| {
            let target = match c.arg("path") {
                "" => format!("fd {}", c.arg("fd")),
                path => path.to_string(),
            };
            format!("{} {} {target}", c.syscall, c.arg("mode"))
        })
}

fn bpf(activity: &Activity) -> Option<String> {
    call(activity, &["bpf"]).map(|c| format!("bpf {}", c.arg("cmd")))
}

fn preload_write(activity: &Activity) -> Option<String> {
    written(activity)
        .filter(|path| *path == "/etc/ld.so.preload")
        .map(|path| format!("write {path}"))
}

fn memfd_create(activity: &Activity) -> Option<String> {
    call(activity, &["memfd_create"]).map(|c| format!("memfd_create {}", c.arg("name")))
}

fn fileless_execveat(activity: &Activity) -> Option<String> {
    call(activity, &["execveat"])
        .filter(|c| {
            let path = c.arg("path");
            c.has_flag("flags", "AT_EMPTY_PATH") || is_fd_path(path) || path.starts_with("memfd:")
        })
        .map(|c| format!("execveat {} fd {}", c.arg("path"), c.arg("dirfd")))
}

fn temp_exec(activity: &Activity) -> Option<String> {
    const TEMP_DIRS: &[&str] = &["/tmp/", "/var/tmp/", "/dev/shm/"];
    match activity {
        Activity::Exec { path, .. }
            if TEMP_DIRS.iter().any(|dir| path.starts_with(dir))
                || is_fd_path(path)
                || path.starts_with("memfd:") =>
        {
            Some(format!("exec {path}"))
        }
        _ => None,
    }
}

fn namespace_unshare(activity: &Activity) -> Option<String> {
    const NAMESPACES: &[&str] = &[
        "CLONE_NEWNS",
        "CLONE_NEWCGROUP",
        "CLONE_NEWUTS",
        "CLONE_NEWIPC",
        "CLONE_NEWPID",
        "CLONE_NEWNET",
        "CLONE_NEWTIME",
    ];
    call(activity, &["unshare"])
        .filter(|c| NAMESPACES.iter().any(|ns| c.has_flag("flags", ns)))
        .map(|c| format!("unshare {}", c.arg("flags")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activity::Fact;
    use crate::detector::{from_json, to_json};
    use crate::error::DetectError;

    fn security(syscall: &str, args: &[(&str, &str)], ok: bool, uid: u32) -> Activity {
        Activity::Security {
            syscall: syscall.into(),
            args: args
                .iter()
                .map(|&(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            ok,
            comm: "sh".into(),
            uid,
        }
    }

    fn open(path: &str, write: bool) -> Activity {
        Activity::Open {
            path: path.into(),
            write,
            ok: true,
            comm: "sh".into(),
        }
    }

    fn exec(path: &str) -> Activity {
        Activity::Exec {
            path: path.into(),
            parent: "sh".into(),
            cmdline: path.into(),
            uid: 0,
        }
    }

    fn window(activities: Vec<Activity>) -> FeatureWindow {
        FeatureWindow {
            facts: activities
                .into_iter()
                .map(|activity| Fact { activity, count: 2 })
                .collect(),
            ..FeatureWindow::default()
        }
    }

    fn rule_of(activity: Activity) -> Option<&'static str> {
        let matches = Invariants::matches(&window(vec![activity]));
        assert!(matches.len() <= 1, "a fact matches one rule at most");
        matches.first().map(|m| m.rule)
    }

    #[test]
    fn every_rule_matches_its_attack() {
        let mount = |source: &str, fstype: &str| {
            security(
                "mount",
                &[
                    ("source", source),
                    ("target", "/tmp/cg"),
                    ("fstype", fstype),
                    ("flags", "[]"),
                ],
                true,
                0,
            )
        };
        let cases = [
            (
                open("/sys/fs/cgroup/rdma/x/release_agent", true),
                "release_hook_write",
            ),
            (
                open("/tmp/cg/x/notify_on_release", true),
                "release_hook_write",
            ),
            (
                open("/proc/sys/kernel/core_pattern", true),
                "kernel_tunable_write",
            ),
            (open("/proc/sysrq-trigger", true), "kernel_tunable_write"),
            (
                open("/sys/kernel/uevent_helper", true),
                "kernel_tunable_write",
            ),
            (open("/sys/fs/cgroup/cgroup.procs", true), "cgroup_write"),
            (mount("cgroup", "cgroup"), "cgroup_mount"),
            (mount("none", "cgroup2"), "cgroup_mount"),
            (mount("proc", "proc"), "kernel_fs_mount"),
            (mount("/dev/sda1", "ext4"), "host_disk_mount"),
            (mount("/dev/nvme0n1p1", "xfs"), "host_disk_mount"),
            (
                security("setns", &[("fd", "3"), ("flags", "[]")], false, 0),
                "setns",
            ),
            (
                security(
                    "unshare",
                    &[("flags", r#"["CLONE_NEWNS","CLONE_NEWUSER"]"#)],
                    true,
                    1000,
                ),
                "user_namespace",
            ),
            (
                security("finit_module", &[("fd", "3"), ("params", "")], false, 0),
                "kernel_module",
            ),
            (
                security("delete_module", &[("name", "nf_tables")], false, 0),
                "kernel_module",
            ),
            (
                security(
                    "ptrace",
                    &[("request", "PTRACE_ATTACH"), ("pid", "1")],
                    true,
                    0,
                ),
                "ptrace_attach",
            ),
            (
                security(
                    "ptrace",
                    &[("request", "PTRACE_POKETEXT"), ("pid", "9")],
                    true,
                    0,
                ),
                "ptrace_attach",
            ),
            (
                security("setuid", &[("uid", "0")], false, 1000),
                "become_root",
            ),
            (
                security(
                    "setresuid",
                    &[("ruid", "-1"), ("euid", "0"), ("suid", "-1")],
                    false,
                    33,
                ),
                "become_root",
            ),
            (
                security("capset", &[("effective", "0x20")], false, 0),
                "capability_raise",
            ),
            (
                security("capset", &[("effective", "0x200000")], true, 0),
                "capability_raise",
            ),
            (security("capset", &[], true, 0), "capability_raise"),
            (
                security("chmod", &[("path", "/tmp/x"), ("mode", "04755")], true, 0),
                "setid_chmod",
            ),
            (
                security("fchmod", &[("fd", "3"), ("mode", "02711")], true, 0),
                "setid_chmod",
            ),
            (
                security("bpf", &[("cmd", "BPF_PROG_LOAD")], false, 0),
                "bpf",
            ),
            (open("/etc/ld.so.preload", true), "preload_write"),
            (
                security("memfd_create", &[("name", "x"), ("flags", "[]")], true, 0),
                "memfd_create",
            ),
            (
                security(
                    "execveat",
                    &[
                        ("dirfd", "3"),
                        ("path", ""),
                        ("flags", r#"["AT_EMPTY_PATH"]"#),
                    ],
                    true,
                    0,
                ),
                "fileless_execveat",
            ),
            (
                security(
                    "execveat",
                    &[
                        ("dirfd", "-100"),
                        ("path", "/proc/self/fd/4"),
                        ("flags", "[]"),
                    ],
                    true,
                    0,
                ),
                "fileless_execveat",
            ),
            (exec("/dev/shm/x"), "temp_exec"),
            (exec("/tmp/kinsing"), "temp_exec"),
            (exec("/proc/self/fd/3"), "temp_exec"),
            (exec("/proc/77/fd/3"), "temp_exec"),
            (exec("/dev/fd/3"), "temp_exec"),
            (
                security("unshare", &[("flags", r#"["CLONE_NEWNS"]"#)], false, 0),
                "namespace_unshare",
            ),
        ];
        for (activity, rule) in cases {
            assert_eq!(rule_of(activity.clone()), Some(rule), "{activity:?}");
        }
        let named: Vec<&str> = RULES.iter().map(|r| r.name).collect();
        for rule in &named {
            assert!(
                named.iter().filter(|n| *n == rule).count() == 1,
                "rule names are unique"
            );
        }
    }

    #[test]
    fn normal_facts_and_the_runtime_match_nothing() {
        let runc = |comm: &str| Activity::Security {
            syscall: "mount".into(),
            args: [("fstype".to_string(), "proc".to_string())].into(),
            ok: true,
            comm: comm.into(),
            uid: 0,
        };
        let quiet = [
            open("/sys/fs/cgroup/rdma/x/release_agent", false),
            open("/proc/sys/net/core/somaxconn", false),
            open("/etc/ld.so.preload", false),
            open("/tmp/app.log", true),
            exec("/usr/sbin/nginx"),
            exec("/usr/bin/tmp-cleaner"),
            runc("runc:[2:INIT]"),
            runc("runc"),
            Activity::Exec {
                path: "/tmp/entrypoint".into(),
                parent: "runc:[1:CHILD]".into(),
                cmdline: "/tmp/entrypoint".into(),
                uid: 0,
            },
            security(
                "mount",
                &[("source", "tmpfs"), ("target", "/run"), ("fstype", "tmpfs")],
                true,
                0,
            ),
            security("setuid", &[("uid", "0")], true, 0),
            security("setuid", &[("uid", "101")], true, 0),
            security("setgid", &[("gid", "101")], true, 1000),
            security("capset", &[("effective", "0x400")], true, 0),
            security("ptrace", &[("request", "PTRACE_TRACEME")], true, 0),
            security(
                "chmod",
                &[("path", "/app/run.sh"), ("mode", "00755")],
                true,
                0,
            ),
            security(
                "unshare",
                &[("flags", r#"["CLONE_FILES","CLONE_FS"]"#)],
                true,
                0,
            ),
            security("umount2", &[("target", "/mnt")], true, 0),
        ];
        for activity in quiet {
            assert_eq!(rule_of(activity.clone()), None, "{activity:?}");
        }
    }

    #[test]
    fn scores_sum_weights_and_explain_heaviest_first() {
        let mut invariants = Invariants::new();
        assert_eq!(
            invariants.calibrate(&[], &Calibration::default()).unwrap(),
            0.0
        );
        let attack = window(vec![
            security("memfd_create", &[("name", "x")], true, 0),
            open("/sys/fs/cgroup/rdma/x/release_agent", true),
            open("/etc/hosts", false),
        ]);
        let finding = invariants.score(&attack).unwrap();
        assert_eq!(finding.score, 15.0);
        assert!(finding.anomalous);
        assert_eq!(finding.detector, "invariants");
        let first = &finding.contributions[0];
        assert_eq!(
            first.feature,
            "write /sys/fs/cgroup/rdma/x/release_agent (escape: cgroup release hook)"
        );
        assert_eq!(first.class, Some(AlertClass::EscapeAttempt));
        assert_eq!((first.baseline, first.observed), (0.0, 2.0));
        assert_eq!(first.detail.as_deref(), Some("sh"));
        let second = &finding.contributions[1];
        assert_eq!(second.class, Some(AlertClass::SuspiciousSyscall));
        assert_eq!(second.detail.as_deref(), Some("sh (uid 0): name=x"));
        assert_eq!(finding.contributions.len(), 2);
        let mount = window(vec![security(
            "mount",
            &[
                ("source", "cgroup"),
                ("target", "/tmp/cg"),
                ("fstype", "cgroup"),
            ],
            false,
            0,
        )]);
        assert_eq!(
            invariants.explain(&mount, 5).unwrap()[0].feature,
            "mount cgroup on /tmp/cg (escape: cgroup mount)"
        );
        let normal = window(vec![open("/etc/hosts", false), exec("/usr/bin/id")]);
        let finding = invariants.score(&normal).unwrap();
        assert_eq!(finding.score, 0.0);
        assert!(!finding.anomalous && finding.contributions.is_empty());
    }

    #[test]
    fn state_round_trips_and_other_versions_are_refused() {
        let mut invariants = Invariants::new();
        invariants.learn(&[FeatureWindow::default()]).unwrap();
        let text = to_json(&invariants).unwrap();
        let back: Invariants = from_json(&text).unwrap();
        assert_eq!(back, invariants);
        let future = text.replace(
            &format!("\"format_version\":{FORMAT_VERSION}"),
            "\"format_version\":999",
        );
        assert!(matches!(
            from_json::<Invariants>(&future),
            Err(DetectError::State(_))
        ));
    }
}
