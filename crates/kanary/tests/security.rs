//! The `security` collector against real containers: set-uid chmod, namespace and mount calls
//! (refused by Docker's seccomp profile, and allowed with CAP_SYS_ADMIN), setuid, memfd_create,
//! ptrace and capset, each with its decoded arguments, plus the per-container counts.

mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Agent, Container, BUSYBOX, DEBIAN};
use serde_json::{json, Value};

const WAIT: Duration = Duration::from_secs(60);

/// Docker's default capability set as a capset(2) mask: CHOWN, DAC_OVERRIDE, FOWNER, FSETID,
/// KILL, SETGID, SETUID, SETPCAP, NET_BIND_SERVICE, NET_RAW, SYS_CHROOT, MKNOD, AUDIT_WRITE,
/// SETFCAP.
const DOCKER_DEFAULT_CAPS: u64 = 0xa804_25fb;
/// CAP_SYS_ADMIN.
const CAP_SYS_ADMIN: u64 = 1 << 21;

fn security_of(agent: &mut Agent, name: &str, comm: &str, syscall: &str) -> Vec<Value> {
    agent
        .records_of("security", name)
        .into_iter()
        .filter(|r| r["comm"] == comm && r["syscall"] == syscall)
        .collect()
}

/// The container runtime sets the capabilities of every container with one capset(2).
fn assert_runtime_capset(agent: &mut Agent, name: &str, caps: u64) {
    let capset = agent.wait_for_container("security", name, WAIT, |r| r["syscall"] == "capset");
    let mask = json!(format!("{caps:#x}"));
    assert_eq!(capset["args"]["version"], "0x20080522", "{capset}");
    assert_eq!(capset["args"]["effective"], mask, "{capset}");
    assert_eq!(capset["args"]["permitted"], mask, "{capset}");
    assert_eq!(capset["result"], 0);
}

#[test]
fn refused_namespace_and_mount_calls_and_setuid_chmod() {
    require_docker!();
    let mut agent = Agent::start();
    // Without CAP_SYS_ADMIN Docker's seccomp profile answers unshare and mount with EPERM
    // before they run: the records must still come, with the error.
    let container = Container::run(
        "secrefused",
        &[],
        BUSYBOX,
        &[
            "sh",
            "-c",
            "touch /tmp/x; chmod 0644 /tmp/x; chmod 4755 /tmp/x; unshare -m true; \
             mkdir -p /mnt; mount -t tmpfs none /mnt; touch /tmp/done; sleep 600",
        ],
    );
    let name = container.name.clone();

    let mount = agent.wait_for_container("security", &name, WAIT, |r| {
        r["comm"] == "mount" && r["syscall"] == "mount"
    });
    assert_eq!(
        mount["args"],
        json!({"source": "none", "target": "/mnt", "fstype": "tmpfs", "flags": ["MS_SILENT"]})
    );
    assert_eq!(mount["result"], -1);
    assert_eq!(mount["error"], "EPERM");
    assert_eq!(mount["uid"], 0);

    let unshare = security_of(&mut agent, &name, "unshare", "unshare");
    assert_eq!(unshare.len(), 1, "{unshare:?}");
    assert_eq!(unshare[0]["args"], json!({"flags": ["CLONE_NEWNS"]}));
    assert_eq!(unshare[0]["result"], -1);
    assert_eq!(unshare[0]["error"], "EPERM");

    // Only the chmod that sets S_ISUID is reported, whichever chmod-family call libc uses.
    let chmods: Vec<Value> = agent
        .records_of("security", &name)
        .into_iter()
        .filter(|r| r["comm"] == "chmod")
        .collect();
    assert_eq!(chmods.len(), 1, "{chmods:?}");
    let chmod = &chmods[0];
    assert!(
        ["chmod", "fchmodat", "fchmodat2"].contains(&chmod["syscall"].as_str().unwrap()),
        "{chmod}"
    );
    assert_eq!(chmod["args"]["path"], "/tmp/x");
    assert_eq!(chmod["args"]["mode"], "04755");
    assert_eq!(chmod["result"], 0);
    assert_eq!(chmod["error"], Value::Null);

    assert_runtime_capset(&mut agent, &name, DOCKER_DEFAULT_CAPS);

    let deadline = Instant::now() + WAIT;
    loop {
        let mut counts: BTreeMap<String, u64> = BTreeMap::new();
        for record in agent.records_of("stats", &name) {
            if let Some(section) = record["security"]["counts"].as_object() {
                for (call, n) in section {
                    *counts.entry(call.clone()).or_default() += n.as_u64().unwrap_or(0);
                }
            }
        }
        let chmod_family: u64 = ["chmod", "fchmodat", "fchmodat2"]
            .iter()
            .map(|call| counts.get(*call).copied().unwrap_or(0))
            .sum();
        // The runtime's own calls count too, so these are lower bounds, but the 0644 chmod
        // must not be counted: no other chmod with a set-id bit runs in this container.
        if counts.get("unshare").copied().unwrap_or(0) >= 1
            && counts.get("mount").copied().unwrap_or(0) >= 1
            && chmod_family >= 1
        {
            assert_eq!(chmod_family, 1, "{counts:?}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "security counts never showed the calls: {counts:?}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn allowed_namespace_and_mount_calls_with_cap_sys_admin() {
    require_docker!();
    let mut agent = Agent::start();
    let container = Container::run(
        "secadmin",
        &["--cap-add", "SYS_ADMIN"],
        BUSYBOX,
        &[
            "sh",
            "-c",
            "unshare -m true; mkdir -p /mnt; mount -t tmpfs none /mnt; umount /mnt; sleep 600",
        ],
    );
    let name = container.name.clone();

    let umount = agent.wait_for_container("security", &name, WAIT, |r| {
        r["comm"] == "umount" && r["syscall"] == "umount2"
    });
    assert_eq!(umount["args"], json!({"target": "/mnt", "flags": []}));
    assert_eq!(umount["result"], 0);

    let mount = security_of(&mut agent, &name, "mount", "mount");
    assert_eq!(mount.len(), 1, "{mount:?}");
    assert_eq!(
        mount[0]["args"],
        json!({"source": "none", "target": "/mnt", "fstype": "tmpfs", "flags": ["MS_SILENT"]})
    );
    assert_eq!(mount[0]["result"], 0);
    assert_eq!(mount[0]["error"], Value::Null);

    let unshare = security_of(&mut agent, &name, "unshare", "unshare");
    assert_eq!(unshare.len(), 1, "{unshare:?}");
    assert_eq!(unshare[0]["args"], json!({"flags": ["CLONE_NEWNS"]}));
    assert_eq!(unshare[0]["result"], 0);

    assert_runtime_capset(&mut agent, &name, DOCKER_DEFAULT_CAPS | CAP_SYS_ADMIN);
}

#[test]
fn setuid_memfd_create_and_ptrace_from_python() {
    require_docker!();
    let mut agent = Agent::start();
    // Prints the traced child's pid, ptrace's return value and errno so the test can check the
    // record's arguments and result against what the caller saw.
    let script = r#"
import ctypes, os, subprocess
os.memfd_create("kanary")
child = subprocess.Popen(["sleep", "600"])
libc = ctypes.CDLL(None, use_errno=True)
libc.ptrace.argtypes = [ctypes.c_long, ctypes.c_long, ctypes.c_void_p, ctypes.c_void_p]
ret = libc.ptrace(16, child.pid, None, None)
print(child.pid, ret, ctypes.get_errno(), flush=True)
os.setuid(65534)
os.system("sleep 600")
"#;
    let container = Container::run("secpython", &[], DEBIAN, &["python3", "-c", script]);
    let name = container.name.clone();

    let setuid = agent.wait_for_container("security", &name, WAIT, |r| {
        r["comm"] == "python3" && r["syscall"] == "setuid"
    });
    assert_eq!(setuid["args"], json!({"uid": 65534}));
    assert_eq!(setuid["result"], 0);
    assert_eq!(setuid["uid"], 0, "uid is the caller's euid before the call");

    let memfd = security_of(&mut agent, &name, "python3", "memfd_create");
    assert_eq!(memfd.len(), 1, "{memfd:?}");
    assert_eq!(
        memfd[0]["args"],
        json!({"name": "kanary", "flags": ["MFD_CLOEXEC"]})
    );
    assert!(memfd[0]["result"].as_i64().unwrap() >= 0, "{}", memfd[0]);

    let output = Command::new("docker")
        .args(["logs", &name])
        .output()
        .expect("docker logs");
    let logs = String::from_utf8_lossy(&output.stdout);
    let mut seen = logs.split_whitespace().map(|n| n.parse::<i64>().unwrap());
    let (child, ret, errno) = (
        seen.next().unwrap(),
        seen.next().unwrap(),
        seen.next().unwrap(),
    );
    let expected = if ret < 0 { -errno } else { ret };
    let ptrace = security_of(&mut agent, &name, "python3", "ptrace");
    assert_eq!(ptrace.len(), 1, "{ptrace:?}");
    assert_eq!(ptrace[0]["args"]["request"], "PTRACE_ATTACH");
    assert_eq!(ptrace[0]["args"]["pid"], child);
    assert_eq!(ptrace[0]["result"], expected, "{}", ptrace[0]);
}
