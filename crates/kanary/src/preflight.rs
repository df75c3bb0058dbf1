//! Checks, before anything is loaded, that this host can run the agent, and says exactly what
//! is missing when it cannot.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

/// `CAP_SYS_ADMIN`, `CAP_PERFMON` and `CAP_BPF` bit numbers (linux/capability.h).
const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Where the kernel exposes its own BTF; CO-RE relocation needs it.
const KERNEL_BTF: &str = "/sys/kernel/btf/vmlinux";

/// What the host offers the agent.
#[derive(Debug)]
pub struct Host {
    /// Mount point of the cgroup v2 hierarchy.
    pub cgroup2_mount: PathBuf,
}

/// Runs every check; `cgroup2_mount` overrides the mountinfo lookup.
pub fn check(cgroup2_mount: Option<&Path>) -> Result<Host> {
    let status =
        std::fs::read_to_string("/proc/self/status").context("reading /proc/self/status")?;
    let caps = effective_capabilities(&status).context("no CapEff line in /proc/self/status")?;
    if let Some(missing) = missing_privileges(caps) {
        bail!("missing privileges: {missing}; run kanary as root");
    }
    if !Path::new(KERNEL_BTF).exists() {
        bail!(
            "this kernel has no BTF ({KERNEL_BTF} is missing): kanary's CO-RE programs need a kernel built with CONFIG_DEBUG_INFO_BTF=y"
        );
    }
    let cgroup2_mount = match cgroup2_mount {
        Some(path) => path.to_path_buf(),
        None => {
            let mountinfo = std::fs::read_to_string("/proc/self/mountinfo")
                .context("reading /proc/self/mountinfo")?;
            cgroup2_mount_point(&mountinfo).context(
                "no cgroup v2 hierarchy is mounted (no cgroup2 line in /proc/self/mountinfo): mount one, e.g. `mount -t cgroup2 none /sys/fs/cgroup/unified`, or set agent.cgroup2_mount",
            )?
        }
    };
    if !cgroup2_mount.join("cgroup.procs").exists() {
        bail!(
            "agent.cgroup2_mount {} is not a cgroup v2 mount (no cgroup.procs in it)",
            cgroup2_mount.display()
        );
    }
    Ok(Host { cgroup2_mount })
}

/// The effective capability set from /proc/self/status.
fn effective_capabilities(status: &str) -> Option<u64> {
    let hex = status
        .lines()
        .find_map(|line| line.strip_prefix("CapEff:"))?;
    u64::from_str_radix(hex.trim(), 16).ok()
}

/// Which capability is missing, if any. Loading tracing programs needs CAP_BPF and CAP_PERFMON,
/// or CAP_SYS_ADMIN on kernels before 5.8.
fn missing_privileges(caps: u64) -> Option<&'static str> {
    let has = |cap: u32| caps & (1 << cap) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return None;
    }
    Some(if has(CAP_BPF) {
        "CAP_PERFMON (needed to attach tracepoints)"
    } else {
        "CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN) to load eBPF programs"
    })
}

/// The first cgroup2 mount point in a mountinfo table.
fn cgroup2_mount_point(mountinfo: &str) -> Option<PathBuf> {
    mountinfo.lines().find_map(|line| {
        let (mount, fs) = line.split_once(" - ")?;
        let point = mount.split_whitespace().nth(4)?;
        (fs.split_whitespace().next()? == "cgroup2").then(|| PathBuf::from(point))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_v2_mount_on_hybrid_and_unified_hosts() {
        let hybrid = "25 24 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755\n\
                      26 25 0:23 / /sys/fs/cgroup/unified rw,nosuid - cgroup2 cgroup2 rw\n\
                      27 25 0:24 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n";
        assert_eq!(
            cgroup2_mount_point(hybrid),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
        let unified =
            "30 1 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            cgroup2_mount_point(unified),
            Some(PathBuf::from("/sys/fs/cgroup"))
        );
        assert_eq!(
            cgroup2_mount_point("27 25 0:24 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw\n"),
            None
        );
    }

    #[test]
    fn names_the_missing_capability() {
        assert_eq!(
            effective_capabilities("Name:\tx\nCapEff:\t000001ffffffffff\n"),
            Some(0x1ff_ffff_ffff)
        );
        assert_eq!(missing_privileges(0x1ff_ffff_ffff), None);
        assert_eq!(
            missing_privileges((1 << CAP_BPF) | (1 << CAP_PERFMON)),
            None
        );
        assert!(missing_privileges(1 << CAP_BPF)
            .unwrap()
            .contains("CAP_PERFMON"));
        assert!(missing_privileges(0).unwrap().contains("CAP_BPF"));
    }
}
