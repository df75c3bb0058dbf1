//! Which cgroup paths are containers, and of which runtime.
//!
//! The kernel side (`bpf/containers.bpf.c`) watches any cgroup whose name holds a 64-hex-digit
//! id; this module gives such a path its runtime and rejects look-alikes (conmon's cgroups).

use serde::{Deserialize, Serialize};

/// The container runtime a cgroup path belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    /// Docker (cgroupfs driver `/docker/<id>` or systemd driver `docker-<id>.scope`).
    Docker,
    /// containerd outside Kubernetes (`/<namespace>/<id>`, `cri-containerd-<id>.scope`).
    Containerd,
    /// CRI-O (`crio-<id>.scope`).
    Crio,
    /// podman (`libpod-<id>.scope`).
    Podman,
    /// A Kubernetes pod's container whose runtime the path does not name.
    Kubernetes,
    /// A 64-hex id with no known runtime around it.
    Unknown,
    /// Not a container: host processes (`agent.include_host`).
    Host,
}

/// A container recognised from its cgroup path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupContainer {
    /// The 64-hex-digit container id.
    pub id: String,
    /// Its runtime.
    pub runtime: Runtime,
    /// The Kubernetes pod uid, when the path holds one.
    pub pod_uid: Option<String>,
}

/// Finds the first run of exactly 64 lowercase hex digits in `name`.
fn container_id_in(name: &str) -> Option<&str> {
    let bytes = name.as_bytes();
    let mut start = 0;
    while start < bytes.len() {
        let is_hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        if !is_hex(bytes[start]) {
            start += 1;
            continue;
        }
        let end = (start..bytes.len())
            .find(|&i| !is_hex(bytes[i]))
            .unwrap_or(bytes.len());
        if end - start == 64 {
            return Some(&name[start..end]);
        }
        start = end;
    }
    None
}

/// Classifies a cgroup path (relative to the cgroup v2 mount, e.g. `/docker/<id>`).
///
/// Returns `None` for paths that are not a container's own cgroup, including conmon's
/// (`crio-conmon-<id>.scope`, `libpod-conmon-<id>.scope`) which carry a container id too.
pub fn classify(path: &str) -> Option<CgroupContainer> {
    let leaf = path.trim_end_matches('/').rsplit('/').next()?;
    if leaf.contains("conmon") {
        return None;
    }
    let id = container_id_in(leaf)?.to_string();
    let pod_uid = path.split('/').find_map(|part| {
        let at = part.rfind("pod")?;
        let uid = part[at + 3..].trim_end_matches(".slice");
        ((part.starts_with("kubepods") || part.starts_with("pod")) && uid.len() >= 32)
            .then(|| uid.replace('_', "-"))
    });
    let runtime = if leaf.starts_with("docker-") || path.contains("/docker/") {
        Runtime::Docker
    } else if leaf.starts_with("cri-containerd-") {
        Runtime::Containerd
    } else if leaf.starts_with("crio-") {
        Runtime::Crio
    } else if leaf.starts_with("libpod-") {
        Runtime::Podman
    } else if path.contains("kubepods") {
        Runtime::Kubernetes
    } else if leaf == id && path.matches('/').count() >= 2 {
        // containerd's cgroupfs layout is /<namespace>/<id>.
        Runtime::Containerd
    } else {
        Runtime::Unknown
    };
    Some(CgroupContainer {
        id,
        runtime,
        pod_uid,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    #[test]
    fn runtimes_are_recognised() {
        let cases = [
            (format!("/docker/{ID}"), Runtime::Docker),
            (format!("/system.slice/docker-{ID}.scope"), Runtime::Docker),
            (
                format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1b2c3d4e_1111_2222_3333_444455556666.slice/cri-containerd-{ID}.scope"),
                Runtime::Containerd,
            ),
            (format!("/kubepods.slice/kubepods-pod1b2c3d4e_1111_2222_3333_444455556666.slice/crio-{ID}.scope"), Runtime::Crio),
            (format!("/machine.slice/libpod-{ID}.scope"), Runtime::Podman),
            (format!("/kubepods/besteffort/pod1b2c3d4e-1111-2222-3333-444455556666/{ID}"), Runtime::Kubernetes),
            (format!("/default/{ID}"), Runtime::Containerd),
            (format!("/{ID}"), Runtime::Unknown),
        ];
        for (path, runtime) in cases {
            let found = classify(&path).unwrap_or_else(|| panic!("{path} not classified"));
            assert_eq!(found.id, ID, "{path}");
            assert_eq!(found.runtime, runtime, "{path}");
        }
    }

    #[test]
    fn pod_uid_is_extracted_in_both_spellings() {
        let systemd = format!("/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1b2c3d4e_1111_2222_3333_444455556666.slice/cri-containerd-{ID}.scope");
        let cgroupfs = format!("/kubepods/besteffort/pod1b2c3d4e-1111-2222-3333-444455556666/{ID}");
        for path in [systemd, cgroupfs] {
            assert_eq!(
                classify(&path).unwrap().pod_uid.as_deref(),
                Some("1b2c3d4e-1111-2222-3333-444455556666")
            );
        }
    }

    #[test]
    fn non_containers_are_rejected() {
        for path in [
            "/".to_string(),
            "/system.slice/cron.service".to_string(),
            format!("/machine.slice/libpod-conmon-{ID}.scope"),
            format!("/docker/{ID}0"),
            format!("/docker/{}", &ID[..63]),
        ] {
            assert_eq!(classify(&path), None, "{path}");
        }
    }
}
