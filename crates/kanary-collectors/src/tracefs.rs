//! tracefs, where classic tracepoints are found and attached by name, and the helpers shared
//! by collectors built on classic `syscalls:*` tracepoints.

use std::path::{Path, PathBuf};

use libbpf_rs::OpenObject;

/// Where tracefs is usually mounted: its own mount point first, then the debugfs automount
/// (libbpf resolves tracepoint ids from the same two places, in this order).
const MOUNTS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];
/// Section prefix of programs on classic syscall tracepoints.
const SYSCALL_SECTION: &str = "tracepoint/syscalls/";

/// The tracefs `events` directory, if tracefs is mounted where libbpf looks for it.
pub fn events_dir() -> Option<PathBuf> {
    MOUNTS
        .iter()
        .map(|root| Path::new(root).join("events"))
        .find(|events| events.is_dir())
}

/// Makes sure tracefs is mounted (hosts that mount it on demand only have it nowhere after
/// boot), mounting it at its usual place if needed; returns its `events` directory.
pub fn ensure_mounted() -> std::io::Result<PathBuf> {
    if let Some(events) = events_dir() {
        return Ok(events);
    }
    let target = std::ffi::CString::new(MOUNTS[0])?;
    let fstype = c"tracefs";
    // SAFETY: every pointer is a valid NUL-terminated string that outlives the call; tracefs
    // takes no mount data (null).
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    tracing::info!(mount_point = MOUNTS[0], "mounted tracefs");
    Ok(Path::new(MOUNTS[0]).join("events"))
}

/// The `events` directory, or where it would be: existence checks against it then name what
/// is missing.
pub(crate) fn events_dir_or_default() -> PathBuf {
    events_dir().unwrap_or_else(|| Path::new(MOUNTS[0]).join("events"))
}

/// The tracepoint name of a `tracepoint/syscalls/<name>` program section.
fn syscall_tracepoint(section: &str) -> Option<&str> {
    section.strip_prefix(SYSCALL_SECTION)
}

/// Turns off the programs of syscall tracepoints this kernel does not have (`init_module`
/// without `CONFIG_MODULES`, `open` on arm64), so the rest of the collector still loads.
///
/// Nothing is turned off when tracefs is not mounted at all: attaching then fails with an
/// error that says so, rather than a collector that silently sees nothing.
pub(crate) fn skip_missing_syscall_tracepoints(object: &mut OpenObject, collector: &'static str) {
    let Some(events) = events_dir() else {
        return;
    };
    for mut program in object.progs_mut() {
        let section = program.section().to_string_lossy().into_owned();
        let Some(tracepoint) = syscall_tracepoint(&section) else {
            continue;
        };
        let path = events.join("syscalls").join(tracepoint);
        if !path.is_dir() {
            tracing::info!(
                collector,
                tracepoint,
                "this kernel has no such syscall tracepoint; not watched"
            );
            program.set_autoload(false);
        }
    }
}

/// What to add to an attach error of the program in `section`: how to mount tracefs, when a
/// classic syscall tracepoint failed because it is not mounted.
pub(crate) fn attach_hint(section: &str) -> &'static str {
    if syscall_tracepoint(section).is_some() && events_dir().is_none() {
        " (tracefs is not mounted: mount -t tracefs nodev /sys/kernel/tracing)"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_sections() {
        assert_eq!(
            syscall_tracepoint("tracepoint/syscalls/sys_enter_openat"),
            Some("sys_enter_openat")
        );
        assert_eq!(syscall_tracepoint("tp_btf/sys_enter"), None);
    }
}
