//! tracefs, where classic tracepoints are found and attached by name.

use std::path::{Path, PathBuf};

/// Where tracefs is usually mounted: its own mount point first, then the debugfs automount
/// (libbpf resolves tracepoint ids from the same two places, in this order).
const MOUNTS: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];
/// Section prefix of programs on classic tracepoints, which libbpf attaches through tracefs.
const TRACEPOINT_SECTION: &str = "tracepoint/";

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

/// What to add to an attach error of the program in `section`: how to mount tracefs, when a
/// classic tracepoint failed because it is not mounted.
pub(crate) fn attach_hint(section: &str) -> &'static str {
    if section.starts_with(TRACEPOINT_SECTION) && events_dir().is_none() {
        " (tracefs is not mounted: mount -t tracefs nodev /sys/kernel/tracing)"
    } else {
        ""
    }
}
