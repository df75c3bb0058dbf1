//! `security`: privilege, namespace, mount, module, BPF and memfd system calls of container
//! processes, with decoded arguments (`bpf/security.bpf.c`).
//!
//! The kernel captures raw argument registers and the calls' user strings; naming flags,
//! ptrace requests and modes is done here, in pure functions.

use std::collections::BTreeMap;
use std::os::fd::AsFd;

use kanary_model::errno;
use kanary_model::record::{RecordBody, Security};
use kanary_model::stats::SecurityStats;
use libbpf_rs::skel::OpenSkel;
use serde_json::{json, Value};

use crate::collector::{
    record_event, Collector, EventStream, KernelEvent, LoadContext, Loaded, Slot, StatsBatch,
};
use crate::error::{load_error, Result};
use crate::kernel::{c_string, open_collector, read_pod, size_maps, DropsMap, SlotCounters};
use crate::skel::security::{types, SecuritySkel, SecuritySkelBuilder};
use crate::syscall_dispatch::share_syscall_dispatch;
use crate::syscall_dispatch::{syscall_table, Handler, Registration, Route};

/// Collector name.
pub const NAME: &str = "security";
/// User strings captured per call (`KANARY_SECURITY_STRINGS`).
const STRINGS: usize = 3;
/// Bytes per captured string (`KANARY_PATH_MAX`).
const PATH_MAX: usize = 256;

/// The watched calls, indexed by `enum security_syscall` (`bpf/include/types.h`).
const SYSCALLS: [&str; 24] = [
    "setuid",
    "setgid",
    "setreuid",
    "setregid",
    "setresuid",
    "setresgid",
    "setfsuid",
    "setfsgid",
    "capset",
    "ptrace",
    "mount",
    "umount2",
    "unshare",
    "setns",
    "bpf",
    "init_module",
    "finit_module",
    "delete_module",
    "memfd_create",
    "execveat",
    "chmod",
    "fchmod",
    "fchmodat",
    "fchmodat2",
];

// SAFETY: generated from C structs of integers and byte arrays only: every bit pattern is valid.
unsafe impl plain::Plain for types::security_event {}

/// The loaded `security` collector.
pub struct SecurityCollector {
    /// First, so that its handlers leave the dispatcher before the object goes.
    _registration: Registration,
    _skel: SecuritySkel<'static>,
    counts: SlotCounters,
}

/// Opens, sizes, loads and registers the collector.
pub fn load(ctx: &LoadContext<'_>) -> Result<Loaded> {
    let config = &ctx.config.collectors.security;
    // 1. Open: parse the object and set up what every collector shares (container filter,
    //    `drops`, `targ_include_host`), and the syscall dispatcher's maps; nothing is in the
    //    kernel yet.
    let mut open = open_collector!(SecuritySkelBuilder, ctx, NAME)?;
    share_syscall_dispatch!(ctx, NAME, open.maps)?;
    // 2. Size this collector's maps: per-container ones get one entry per slot.
    size_maps(
        NAME,
        [
            (&mut open.maps.security_counts, ctx.slots),
            (&mut open.maps.events, config.ringbuf_bytes),
        ],
    )?;
    // 3. Its read-only tunable: which watched call each syscall number is.
    let calls = syscall_table(&syscall_codes(), NAME);
    if let Some(rodata) = open.maps.rodata_data.as_deref_mut() {
        rodata.targ_security_calls = calls;
    }
    // 4. Load: the verifier runs here.
    let skel = open.load().map_err(load_error(NAME))?;
    // 5. Register its handlers with the syscall dispatcher, for every watched call at entry
    //    and at exit (a call refused by seccomp only reaches the exit).
    let is_watched = |nr: usize| calls[nr] != 0;
    let registration = ctx.syscall_dispatch.register(
        ctx,
        Handler::SYSCALL_HANDLER_SECURITY,
        Some(Route {
            program: skel.progs.kanary_security_enter.as_fd(),
            wants: &is_watched,
        }),
        Some(Route {
            program: skel.progs.kanary_security_exit.as_fd(),
            wants: &is_watched,
        }),
    )?;
    // 6. Hand over the ring buffer, the loss counters and the per-slot counters.
    let streams = vec![EventStream::new(NAME, &skel.maps.events, decode)?];
    let drops = DropsMap::new(NAME, &skel.maps.drops)?;
    let collector = SecurityCollector {
        counts: SlotCounters::new(NAME, "security_counts", &skel.maps.security_counts)?,
        _registration: registration,
        _skel: skel,
    };
    Ok(Loaded {
        collector: Box::new(collector),
        streams,
        drops: Some(drops),
    })
}

impl Collector for SecurityCollector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn container_removed(&mut self, slot: Slot) -> Result<()> {
        self.counts.reset(slot)
    }

    fn collect(&mut self, batch: &mut StatsBatch) -> Result<()> {
        for (&slot, stats) in batch.by_slot.iter_mut() {
            stats.security = Some(security_stats(&self.counts.deltas(slot)?));
        }
        Ok(())
    }
}

/// The watched calls by name with their code in the kernel's syscall table: the call's
/// `enum security_syscall` + 1, since 0 means "not watched" (`KANARY_SECURITY_CODE`).
fn syscall_codes() -> [(&'static str, u8); SYSCALLS.len()] {
    std::array::from_fn(|id| (SYSCALLS[id], id as u8 + 1))
}

/// The stats section from per-call counts indexed by `enum security_syscall`.
fn security_stats(delta: &[u64]) -> SecurityStats {
    SecurityStats {
        counts: delta
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(id, &n)| (syscall_name(id as u32), n))
            .collect(),
    }
}

/// The name of a watched call, or `security_<id>` for one this build does not know.
fn syscall_name(id: u32) -> String {
    SYSCALLS
        .get(id as usize)
        .map_or_else(|| format!("security_{id}"), |name| name.to_string())
}

fn decode(bytes: &[u8]) -> Option<KernelEvent> {
    let raw: types::security_event = read_pod(bytes)?;
    let call = Call {
        args: raw.call.args,
        data: raw.call.data,
        strings: strings(&raw.call.strings.map(|c| c as u8)),
    };
    let id = raw.call.syscall;
    let result = raw.result;
    let error = (result < 0)
        .then(|| errno::name(-result).map_or_else(|| format!("errno {}", -result), String::from));
    Some(record_event(
        raw.hdr.ts_boot_ns,
        raw.hdr.cgroup_id,
        raw.hdr.slot,
        RecordBody::Security(Security {
            container: Default::default(),
            pid: raw.hdr.pid,
            comm: c_string(&raw.comm.map(|c| c as u8)),
            uid: raw.call.euid,
            syscall: syscall_name(id),
            args: decode_args(id, &call),
            result,
            error,
        }),
    ))
}

/// The call's strings: `KANARY_SECURITY_STRINGS` NUL-terminated buffers of `KANARY_PATH_MAX`
/// bytes, back to back.
fn strings(flat: &[u8]) -> [String; STRINGS] {
    let mut chunks = flat.chunks(PATH_MAX).map(c_string);
    std::array::from_fn(|_| chunks.next().unwrap_or_default())
}

/// What the kernel captured of one call, as plain Rust values.
#[derive(Debug, Clone, Default, PartialEq)]
struct Call {
    /// The six argument registers.
    args: [u64; 6],
    /// capset: header {version, pid} then the two user cap_data structs.
    data: [u32; 8],
    /// The call's user strings, in `string_arg()` order.
    strings: [String; STRINGS],
}

/// The call's arguments by name, decoded for syscall `id` (`enum security_syscall`).
fn decode_args(id: u32, call: &Call) -> BTreeMap<String, Value> {
    let a = &call.args;
    let s = |n: usize| json!(call.strings[n]);
    let fields: Vec<(&str, Value)> = match SYSCALLS.get(id as usize).copied() {
        Some("setuid") => vec![("uid", id_arg(a[0]))],
        Some("setgid") => vec![("gid", id_arg(a[0]))],
        Some("setreuid") => vec![("ruid", id_arg(a[0])), ("euid", id_arg(a[1]))],
        Some("setregid") => vec![("rgid", id_arg(a[0])), ("egid", id_arg(a[1]))],
        Some("setresuid") => vec![
            ("ruid", id_arg(a[0])),
            ("euid", id_arg(a[1])),
            ("suid", id_arg(a[2])),
        ],
        Some("setresgid") => vec![
            ("rgid", id_arg(a[0])),
            ("egid", id_arg(a[1])),
            ("sgid", id_arg(a[2])),
        ],
        Some("setfsuid") => vec![("fsuid", id_arg(a[0]))],
        Some("setfsgid") => vec![("fsgid", id_arg(a[0]))],
        Some("capset") => capset_args(&call.data),
        Some("ptrace") => vec![
            ("request", json!(ptrace_request(a[0]))),
            ("pid", int_arg(a[1])),
            ("addr", hex(a[2])),
            ("data", hex(a[3])),
        ],
        Some("mount") => vec![
            ("source", s(0)),
            ("target", s(1)),
            ("fstype", s(2)),
            ("flags", mount_flags(a[3])),
        ],
        Some("umount2") => vec![("target", s(0)), ("flags", flag_names(a[1], UMOUNT_FLAGS))],
        Some("unshare") => vec![("flags", flag_names(a[0], CLONE_FLAGS))],
        Some("setns") => vec![
            ("fd", int_arg(a[0])),
            ("flags", flag_names(a[1], CLONE_FLAGS)),
        ],
        Some("bpf") => vec![
            ("cmd", json!(bpf_command(a[0]))),
            ("size", json!(a[2] as u32)),
        ],
        Some("init_module") => vec![("len", json!(a[1])), ("params", s(0))],
        Some("finit_module") => vec![
            ("fd", int_arg(a[0])),
            ("params", s(0)),
            ("flags", flag_names(a[2], MODULE_INIT_FLAGS)),
        ],
        Some("delete_module") => vec![
            ("name", s(0)),
            ("flags", flag_names(a[1], DELETE_MODULE_FLAGS)),
        ],
        Some("memfd_create") => vec![("name", s(0)), ("flags", flag_names(a[1], MFD_FLAGS))],
        Some("execveat") => vec![
            ("dirfd", int_arg(a[0])),
            ("path", s(0)),
            ("flags", flag_names(a[4], AT_FLAGS)),
        ],
        Some("chmod") => vec![("path", s(0)), ("mode", json!(mode(a[1])))],
        Some("fchmod") => vec![("fd", int_arg(a[0])), ("mode", json!(mode(a[1])))],
        Some("fchmodat") => vec![
            ("dirfd", int_arg(a[0])),
            ("path", s(0)),
            ("mode", json!(mode(a[2]))),
        ],
        Some("fchmodat2") => vec![
            ("dirfd", int_arg(a[0])),
            ("path", s(0)),
            ("mode", json!(mode(a[2]))),
            ("flags", flag_names(a[3], AT_FLAGS)),
        ],
        // A call this build does not know: its raw registers, so nothing is hidden.
        _ => vec![("raw", json!(a))],
    };
    fields
        .into_iter()
        .map(|(name, value)| (name.to_string(), value))
        .collect()
}

/// A uid or gid argument; -1 ("leave unchanged") stays -1 rather than 4294967295.
fn id_arg(value: u64) -> Value {
    match value as u32 {
        u32::MAX => json!(-1),
        id => json!(id),
    }
}

/// A C `int` argument (fd, pid): the low 32 bits, signed, so AT_FDCWD reads -100.
fn int_arg(value: u64) -> Value {
    json!(value as u32 as i32)
}

fn hex(value: u64) -> Value {
    json!(format!("{value:#x}"))
}

/// A file mode's permission bits in octal with the set-id/sticky digit, e.g. `04755`.
fn mode(value: u64) -> String {
    format!("{:05o}", value & 0o7777)
}

/// The names of the bits set in `value`, plus the unnamed rest in hex.
fn flag_names(value: u64, table: &[(u64, &str)]) -> Value {
    let mut rest = value;
    let mut names: Vec<String> = Vec::new();
    for &(bit, name) in table {
        if value & bit == bit && bit != 0 {
            names.push(name.to_string());
            rest &= !bit;
        }
    }
    if rest != 0 {
        names.push(format!("{rest:#x}"));
    }
    json!(names)
}

/// mount(2) flags, ignoring the historic magic number some callers put in the top 16 bits.
fn mount_flags(value: u64) -> Value {
    const MS_MGC_MSK: u64 = 0xffff_0000;
    const MS_MGC_VAL: u64 = 0xc0ed_0000;
    let value = value & 0xffff_ffff;
    let value = if value & MS_MGC_MSK == MS_MGC_VAL {
        value & !MS_MGC_MSK
    } else {
        value
    };
    flag_names(value, MOUNT_FLAGS)
}

/// capset(2): the header the caller passed and the three capability sets as 64-bit masks
/// (version 1 headers carry only the low 32 bits).
fn capset_args(data: &[u32; 8]) -> Vec<(&'static str, Value)> {
    const VERSION_1: u32 = 0x1998_0330;
    let version = data[0];
    let set = |i: usize| {
        let low = u64::from(data[2 + i]);
        let high = if version == VERSION_1 {
            0
        } else {
            u64::from(data[5 + i])
        };
        hex(high << 32 | low)
    };
    vec![
        ("version", hex(u64::from(version))),
        ("pid", json!(data[1] as i32)),
        ("effective", set(0)),
        ("permitted", set(1)),
        ("inheritable", set(2)),
    ]
}

/// A ptrace(2) request's name (x86_64 and generic requests), or its number.
fn ptrace_request(request: u64) -> String {
    let name = match request {
        0 => "PTRACE_TRACEME",
        1 => "PTRACE_PEEKTEXT",
        2 => "PTRACE_PEEKDATA",
        3 => "PTRACE_PEEKUSR",
        4 => "PTRACE_POKETEXT",
        5 => "PTRACE_POKEDATA",
        6 => "PTRACE_POKEUSR",
        7 => "PTRACE_CONT",
        8 => "PTRACE_KILL",
        9 => "PTRACE_SINGLESTEP",
        12 => "PTRACE_GETREGS",
        13 => "PTRACE_SETREGS",
        14 => "PTRACE_GETFPREGS",
        15 => "PTRACE_SETFPREGS",
        16 => "PTRACE_ATTACH",
        17 => "PTRACE_DETACH",
        18 => "PTRACE_GETFPXREGS",
        19 => "PTRACE_SETFPXREGS",
        24 => "PTRACE_SYSCALL",
        25 => "PTRACE_GET_THREAD_AREA",
        26 => "PTRACE_SET_THREAD_AREA",
        30 => "PTRACE_ARCH_PRCTL",
        31 => "PTRACE_SYSEMU",
        32 => "PTRACE_SYSEMU_SINGLESTEP",
        33 => "PTRACE_SINGLEBLOCK",
        0x4200 => "PTRACE_SETOPTIONS",
        0x4201 => "PTRACE_GETEVENTMSG",
        0x4202 => "PTRACE_GETSIGINFO",
        0x4203 => "PTRACE_SETSIGINFO",
        0x4204 => "PTRACE_GETREGSET",
        0x4205 => "PTRACE_SETREGSET",
        0x4206 => "PTRACE_SEIZE",
        0x4207 => "PTRACE_INTERRUPT",
        0x4208 => "PTRACE_LISTEN",
        0x4209 => "PTRACE_PEEKSIGINFO",
        0x420a => "PTRACE_GETSIGMASK",
        0x420b => "PTRACE_SETSIGMASK",
        0x420c => "PTRACE_SECCOMP_GET_FILTER",
        0x420d => "PTRACE_SECCOMP_GET_METADATA",
        0x420e => "PTRACE_GET_SYSCALL_INFO",
        0x420f => "PTRACE_GET_RSEQ_CONFIGURATION",
        0x4210 => "PTRACE_SET_SYSCALL_USER_DISPATCH_CONFIG",
        0x4211 => "PTRACE_GET_SYSCALL_USER_DISPATCH_CONFIG",
        other => return format!("PTRACE_{other:#x}"),
    };
    name.to_string()
}

/// A bpf(2) command's name (uapi enum bpf_cmd), or its number.
fn bpf_command(cmd: u64) -> String {
    const COMMANDS: [&str; 37] = [
        "BPF_MAP_CREATE",
        "BPF_MAP_LOOKUP_ELEM",
        "BPF_MAP_UPDATE_ELEM",
        "BPF_MAP_DELETE_ELEM",
        "BPF_MAP_GET_NEXT_KEY",
        "BPF_PROG_LOAD",
        "BPF_OBJ_PIN",
        "BPF_OBJ_GET",
        "BPF_PROG_ATTACH",
        "BPF_PROG_DETACH",
        "BPF_PROG_TEST_RUN",
        "BPF_PROG_GET_NEXT_ID",
        "BPF_MAP_GET_NEXT_ID",
        "BPF_PROG_GET_FD_BY_ID",
        "BPF_MAP_GET_FD_BY_ID",
        "BPF_OBJ_GET_INFO_BY_FD",
        "BPF_PROG_QUERY",
        "BPF_RAW_TRACEPOINT_OPEN",
        "BPF_BTF_LOAD",
        "BPF_BTF_GET_FD_BY_ID",
        "BPF_TASK_FD_QUERY",
        "BPF_MAP_LOOKUP_AND_DELETE_ELEM",
        "BPF_MAP_FREEZE",
        "BPF_BTF_GET_NEXT_ID",
        "BPF_MAP_LOOKUP_BATCH",
        "BPF_MAP_LOOKUP_AND_DELETE_BATCH",
        "BPF_MAP_UPDATE_BATCH",
        "BPF_MAP_DELETE_BATCH",
        "BPF_LINK_CREATE",
        "BPF_LINK_UPDATE",
        "BPF_LINK_GET_FD_BY_ID",
        "BPF_LINK_GET_NEXT_ID",
        "BPF_ENABLE_STATS",
        "BPF_ITER_CREATE",
        "BPF_LINK_DETACH",
        "BPF_PROG_BIND_MAP",
        "BPF_TOKEN_CREATE",
    ];
    usize::try_from(cmd)
        .ok()
        .and_then(|i| COMMANDS.get(i))
        .map_or_else(|| format!("BPF_{cmd}"), |name| name.to_string())
}

/// Namespace flags of unshare(2) and setns(2) (uapi linux/sched.h), plus the other clone flags
/// unshare accepts.
const CLONE_FLAGS: &[(u64, &str)] = &[
    (0x0000_0080, "CLONE_NEWTIME"),
    (0x0000_0100, "CLONE_VM"),
    (0x0000_0200, "CLONE_FS"),
    (0x0000_0400, "CLONE_FILES"),
    (0x0000_0800, "CLONE_SIGHAND"),
    (0x0000_8000, "CLONE_PARENT"),
    (0x0001_0000, "CLONE_THREAD"),
    (0x0002_0000, "CLONE_NEWNS"),
    (0x0004_0000, "CLONE_SYSVSEM"),
    (0x0200_0000, "CLONE_NEWCGROUP"),
    (0x0400_0000, "CLONE_NEWUTS"),
    (0x0800_0000, "CLONE_NEWIPC"),
    (0x1000_0000, "CLONE_NEWUSER"),
    (0x2000_0000, "CLONE_NEWPID"),
    (0x4000_0000, "CLONE_NEWNET"),
    (0x8000_0000, "CLONE_IO"),
];

/// mount(2) flags (uapi linux/mount.h).
const MOUNT_FLAGS: &[(u64, &str)] = &[
    (1, "MS_RDONLY"),
    (1 << 1, "MS_NOSUID"),
    (1 << 2, "MS_NODEV"),
    (1 << 3, "MS_NOEXEC"),
    (1 << 4, "MS_SYNCHRONOUS"),
    (1 << 5, "MS_REMOUNT"),
    (1 << 6, "MS_MANDLOCK"),
    (1 << 7, "MS_DIRSYNC"),
    (1 << 8, "MS_NOSYMFOLLOW"),
    (1 << 10, "MS_NOATIME"),
    (1 << 11, "MS_NODIRATIME"),
    (1 << 12, "MS_BIND"),
    (1 << 13, "MS_MOVE"),
    (1 << 14, "MS_REC"),
    (1 << 15, "MS_SILENT"),
    (1 << 16, "MS_POSIXACL"),
    (1 << 17, "MS_UNBINDABLE"),
    (1 << 18, "MS_PRIVATE"),
    (1 << 19, "MS_SLAVE"),
    (1 << 20, "MS_SHARED"),
    (1 << 21, "MS_RELATIME"),
    (1 << 22, "MS_KERNMOUNT"),
    (1 << 23, "MS_I_VERSION"),
    (1 << 24, "MS_STRICTATIME"),
    (1 << 25, "MS_LAZYTIME"),
];

/// umount2(2) flags.
const UMOUNT_FLAGS: &[(u64, &str)] = &[
    (1, "MNT_FORCE"),
    (2, "MNT_DETACH"),
    (4, "MNT_EXPIRE"),
    (8, "UMOUNT_NOFOLLOW"),
];

/// memfd_create(2) flags (MFD_HUGE_* sizes in the top bits are left as a number).
const MFD_FLAGS: &[(u64, &str)] = &[
    (1, "MFD_CLOEXEC"),
    (2, "MFD_ALLOW_SEALING"),
    (4, "MFD_HUGETLB"),
    (8, "MFD_NOEXEC_SEAL"),
    (0x10, "MFD_EXEC"),
];

/// `AT_*` flags of execveat(2) and fchmodat2(2).
const AT_FLAGS: &[(u64, &str)] = &[(0x100, "AT_SYMLINK_NOFOLLOW"), (0x1000, "AT_EMPTY_PATH")];

/// finit_module(2) flags.
const MODULE_INIT_FLAGS: &[(u64, &str)] = &[
    (1, "MODULE_INIT_IGNORE_MODVERSIONS"),
    (2, "MODULE_INIT_IGNORE_VERMAGIC"),
    (4, "MODULE_INIT_COMPRESSED_FILE"),
];

/// delete_module(2) flags.
const DELETE_MODULE_FLAGS: &[(u64, &str)] = &[(0o1000, "O_TRUNC"), (0o4000, "O_NONBLOCK")];

#[cfg(test)]
mod tests {
    use super::*;

    /// Counters per container (`KANARY_SECURITY_SLOTS`).
    const SECURITY_SLOTS: usize = 32;

    fn args(id: u32, call: Call) -> Value {
        json!(decode_args(id, &call))
    }

    fn call(args: [u64; 6], strings: [&str; 3]) -> Call {
        Call {
            args,
            data: [0; 8],
            strings: strings.map(String::from),
        }
    }

    fn id(name: &str) -> u32 {
        SYSCALLS.iter().position(|n| *n == name).unwrap() as u32
    }

    #[test]
    fn every_watched_call_is_a_syscall_of_this_architecture_coded_by_its_enum() {
        for (id, (name, code)) in syscall_codes().into_iter().enumerate() {
            assert_eq!(name, SYSCALLS[id]);
            assert_eq!(usize::from(code), id + 1, "{name}");
            assert!(kanary_model::syscalls::number(name).is_some(), "{name}");
        }
    }

    #[test]
    fn the_name_table_follows_the_kernel_enum() {
        use types::security_syscall as e;
        let pinned = [
            (e::SECURITY_SETUID, "setuid"),
            (e::SECURITY_SETGID, "setgid"),
            (e::SECURITY_SETREUID, "setreuid"),
            (e::SECURITY_SETREGID, "setregid"),
            (e::SECURITY_SETRESUID, "setresuid"),
            (e::SECURITY_SETRESGID, "setresgid"),
            (e::SECURITY_SETFSUID, "setfsuid"),
            (e::SECURITY_SETFSGID, "setfsgid"),
            (e::SECURITY_CAPSET, "capset"),
            (e::SECURITY_PTRACE, "ptrace"),
            (e::SECURITY_MOUNT, "mount"),
            (e::SECURITY_UMOUNT2, "umount2"),
            (e::SECURITY_UNSHARE, "unshare"),
            (e::SECURITY_SETNS, "setns"),
            (e::SECURITY_BPF, "bpf"),
            (e::SECURITY_INIT_MODULE, "init_module"),
            (e::SECURITY_FINIT_MODULE, "finit_module"),
            (e::SECURITY_DELETE_MODULE, "delete_module"),
            (e::SECURITY_MEMFD_CREATE, "memfd_create"),
            (e::SECURITY_EXECVEAT, "execveat"),
            (e::SECURITY_CHMOD, "chmod"),
            (e::SECURITY_FCHMOD, "fchmod"),
            (e::SECURITY_FCHMODAT, "fchmodat"),
            (e::SECURITY_FCHMODAT2, "fchmodat2"),
        ];
        for (value, name) in pinned {
            assert_eq!(syscall_name(value.0), name);
        }
        assert_eq!(e::SECURITY_SYSCALL_COUNT.0 as usize, SYSCALLS.len());
        assert!(SYSCALLS.len() <= SECURITY_SLOTS);
        assert_eq!(syscall_name(30), "security_30");
    }

    #[test]
    fn uid_calls() {
        assert_eq!(
            args(id("setuid"), call([65534, 0, 0, 0, 0, 0], ["", "", ""])),
            json!({"uid": 65534})
        );
        assert_eq!(
            args(
                id("setresuid"),
                call([0xffff_ffff, 0, u64::MAX, 0, 0, 0], ["", "", ""])
            ),
            json!({"ruid": -1, "euid": 0, "suid": -1})
        );
        assert_eq!(
            args(id("setregid"), call([5, 6, 0, 0, 0, 0], ["", "", ""])),
            json!({"rgid": 5, "egid": 6})
        );
    }

    #[test]
    fn ptrace_attach() {
        assert_eq!(
            args(id("ptrace"), call([16, 1234, 0, 0, 0, 0], ["", "", ""])),
            json!({"request": "PTRACE_ATTACH", "pid": 1234, "addr": "0x0", "data": "0x0"})
        );
        assert_eq!(ptrace_request(0x4206), "PTRACE_SEIZE");
        assert_eq!(ptrace_request(0x9999), "PTRACE_0x9999");
    }

    #[test]
    fn mount_names_strings_and_flags() {
        let flags = 0xc0ed_0000 | 1 | 2 | (1 << 9) | (1 << 12) | (1 << 14);
        assert_eq!(
            args(
                id("mount"),
                call([0, 0, 0, flags, 0, 0], ["none", "/mnt", "tmpfs"])
            ),
            json!({
                "source": "none",
                "target": "/mnt",
                "fstype": "tmpfs",
                "flags": ["MS_RDONLY", "MS_NOSUID", "MS_BIND", "MS_REC", "0x200"],
            })
        );
        assert_eq!(
            args(id("umount2"), call([0, 2, 0, 0, 0, 0], ["/mnt", "", ""])),
            json!({"target": "/mnt", "flags": ["MNT_DETACH"]})
        );
    }

    #[test]
    fn namespace_flags() {
        assert_eq!(
            args(
                id("unshare"),
                call([0x2002_0000, 0, 0, 0, 0, 0], ["", "", ""])
            ),
            json!({"flags": ["CLONE_NEWNS", "CLONE_NEWPID"]})
        );
        assert_eq!(
            args(
                id("setns"),
                call([3, 0x4000_0000, 0, 0, 0, 0], ["", "", ""])
            ),
            json!({"fd": 3, "flags": ["CLONE_NEWNET"]})
        );
        assert_eq!(
            args(id("setns"), call([4, 0, 0, 0, 0, 0], ["", "", ""])),
            json!({"fd": 4, "flags": []})
        );
    }

    #[test]
    fn capset_masks() {
        let mut capset = call([0; 6], ["", "", ""]);
        // version 3: two structs, low words then high words
        capset.data = [0x2008_0522, 0, 0xffff_ffff, 0x20, 0, 0x1ff, 0, 0];
        assert_eq!(
            args(id("capset"), capset.clone()),
            json!({
                "version": "0x20080522",
                "pid": 0,
                "effective": "0x1ffffffffff",
                "permitted": "0x20",
                "inheritable": "0x0",
            })
        );
        capset.data[0] = 0x1998_0330;
        assert_eq!(args(id("capset"), capset)["effective"], "0xffffffff");
    }

    #[test]
    fn chmod_modes() {
        assert_eq!(mode(0o104755), "04755");
        assert_eq!(mode(0o2755), "02755");
        assert_eq!(
            args(
                id("chmod"),
                call([0, 0o4755, 0, 0, 0, 0], ["/tmp/x", "", ""])
            ),
            json!({"path": "/tmp/x", "mode": "04755"})
        );
        assert_eq!(
            args(
                id("fchmodat"),
                call([(-100i64) as u64, 0, 0o6711, 0, 0, 0], ["x", "", ""])
            ),
            json!({"dirfd": -100, "path": "x", "mode": "06711"})
        );
        assert_eq!(
            args(id("fchmod"), call([3, 0o2700, 0, 0, 0, 0], ["", "", ""])),
            json!({"fd": 3, "mode": "02700"})
        );
    }

    #[test]
    fn memfd_bpf_execveat_and_modules() {
        assert_eq!(
            args(
                id("memfd_create"),
                call([0, 1, 0, 0, 0, 0], ["kanary", "", ""])
            ),
            json!({"name": "kanary", "flags": ["MFD_CLOEXEC"]})
        );
        assert_eq!(
            args(id("bpf"), call([5, 0, 144, 0, 0, 0], ["", "", ""])),
            json!({"cmd": "BPF_PROG_LOAD", "size": 144})
        );
        assert_eq!(bpf_command(99), "BPF_99");
        assert_eq!(
            args(id("execveat"), call([3, 0, 0, 0, 0x1000, 0], ["", "", ""])),
            json!({"dirfd": 3, "path": "", "flags": ["AT_EMPTY_PATH"]})
        );
        assert_eq!(
            args(
                id("delete_module"),
                call([0, 0o4000, 0, 0, 0, 0], ["evil", "", ""])
            ),
            json!({"name": "evil", "flags": ["O_NONBLOCK"]})
        );
        assert_eq!(
            args(
                id("init_module"),
                call([0, 4096, 0, 0, 0, 0], ["x=1", "", ""])
            ),
            json!({"len": 4096, "params": "x=1"})
        );
    }

    #[test]
    fn unknown_calls_keep_their_raw_registers() {
        assert_eq!(
            args(99, call([1, 2, 3, 4, 5, 6], ["", "", ""])),
            json!({"raw": [1, 2, 3, 4, 5, 6]})
        );
    }

    #[test]
    fn decodes_a_crafted_event() {
        let mut raw = types::security_event::default();
        raw.hdr.ts_boot_ns = 5;
        raw.hdr.cgroup_id = 9;
        raw.hdr.slot = 2;
        raw.hdr.kind = 10;
        raw.hdr.pid = 77;
        raw.result = -1;
        raw.call.syscall = types::security_syscall::SECURITY_MOUNT.0;
        raw.call.euid = 1000;
        raw.call.args[3] = 0;
        for (n, text) in ["none", "/mnt", "tmpfs"].iter().enumerate() {
            let buffer = &mut raw.call.strings[n * PATH_MAX..(n + 1) * PATH_MAX];
            for (dst, src) in buffer.iter_mut().zip(text.bytes().chain([0])) {
                *dst = src as _;
            }
        }
        for (dst, src) in raw.comm.iter_mut().zip(b"mount\0") {
            *dst = *src as _;
        }
        // SAFETY: security_event is plain old data; viewing it as bytes is always valid.
        let bytes = unsafe { plain::as_bytes(&raw) }.to_vec();
        let Some(KernelEvent::Record(record)) = decode(&bytes) else {
            panic!("not decoded");
        };
        assert_eq!(record.slot, 2);
        let RecordBody::Security(security) = record.body else {
            panic!("not a security record");
        };
        assert_eq!(security.syscall, "mount");
        assert_eq!(security.pid, 77);
        assert_eq!(security.comm, "mount");
        assert_eq!(security.uid, 1000);
        assert_eq!(security.result, -1);
        assert_eq!(security.error.as_deref(), Some("EPERM"));
        assert_eq!(security.args["source"], "none");
        assert_eq!(security.args["target"], "/mnt");
        assert_eq!(security.args["fstype"], "tmpfs");
        assert_eq!(security.args["flags"], json!([]));
        assert!(decode(&bytes[..bytes.len() - 1]).is_none());
    }

    #[test]
    fn stats_name_the_counted_calls() {
        let mut delta = vec![0u64; SECURITY_SLOTS];
        delta[0] = 2;
        delta[10] = 1;
        let stats = security_stats(&delta);
        assert_eq!(stats.counts.len(), 2);
        assert_eq!(stats.counts["setuid"], 2);
        assert_eq!(stats.counts["mount"], 1);
    }
}
