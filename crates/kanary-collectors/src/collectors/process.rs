//! `process`: exec, fork and exit of container processes (`bpf/process.bpf.c`), streamed as
//! records and counted per container in the kernel.

use kanary_model::config::StreamConfig;
use kanary_model::record::{Exec, Exit, Fork, RecordBody};
use kanary_model::stats::ProcessStats;
use libbpf_rs::skel::{OpenSkel, Skel};
use libbpf_rs::Link;

use crate::collector::{
    record_event, Collector, EventStream, KernelEvent, LoadContext, Loaded, Slot, StatsBatch,
};
use crate::error::{load_error, Result};
use crate::kernel::{
    attach_all, c_string, open_collector, read_pod, size_maps, DropsMap, SlotCounters,
};
use crate::skel::process::{types, ProcessSkel, ProcessSkelBuilder};

/// Collector name.
pub const NAME: &str = "process";

/// `EVENT_EXEC`, `EVENT_FORK` and `EVENT_EXIT` of `bpf/include/types.h`.
const EVENT_EXEC: u32 = 4;
const EVENT_FORK: u32 = 5;
const EVENT_EXIT: u32 = 6;

// SAFETY: generated from C structs of integers and byte arrays only: every bit pattern is valid.
unsafe impl plain::Plain for types::event_header {}
// SAFETY: as above.
unsafe impl plain::Plain for types::exec_event {}
// SAFETY: as above.
unsafe impl plain::Plain for types::fork_event {}
// SAFETY: as above.
unsafe impl plain::Plain for types::exit_event {}

/// The loaded `process` collector.
pub struct ProcessCollector {
    _skel: ProcessSkel<'static>,
    _links: Vec<Link>,
    counts: SlotCounters,
}

/// Opens, sizes, loads and attaches the collector.
pub fn load(ctx: &LoadContext<'_>) -> Result<Loaded> {
    let config: &StreamConfig = &ctx.config.collectors.process;
    // 1. Open: parse the object and set up what every collector shares (container filter,
    //    `drops`, `targ_include_host`); nothing is in the kernel yet.
    let mut open = open_collector!(ProcessSkelBuilder, ctx, NAME)?;
    // 2. Size this collector's maps: per-container ones get one entry per slot.
    size_maps(
        NAME,
        [
            (&mut open.maps.process_counts, ctx.slots),
            (&mut open.maps.events, config.ringbuf_bytes),
        ],
    )?;
    // 3. Load: the verifier runs here (no tunables of its own).
    let skel = open.load().map_err(load_error(NAME))?;
    // 4. Attach the exec, fork and exit programs to their scheduler tracepoints.
    let links = attach_all(skel.object(), NAME)?;
    // 5. Hand over the ring buffer, the loss counters and the per-slot counters.
    let streams = vec![EventStream::new(NAME, &skel.maps.events, decode)?];
    let drops = DropsMap::new(NAME, &skel.maps.drops)?;
    let collector = ProcessCollector {
        counts: SlotCounters::new(NAME, "process_counts", &skel.maps.process_counts)?,
        _skel: skel,
        _links: links,
    };
    Ok(Loaded {
        collector: Box::new(collector),
        streams,
        drops: Some(drops),
    })
}

impl Collector for ProcessCollector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn container_removed(&mut self, slot: Slot) -> Result<()> {
        self.counts.reset(slot)
    }

    fn collect(&mut self, batch: &mut StatsBatch) -> Result<()> {
        for (&slot, stats) in batch.by_slot.iter_mut() {
            stats.process = Some(process_stats(&self.counts.deltas(slot)?));
        }
        Ok(())
    }
}

/// The stats section from the counter deltas, in `struct process_counts` order.
fn process_stats(delta: &[u64]) -> ProcessStats {
    let at = |i: usize| delta.get(i).copied().unwrap_or(0);
    ProcessStats {
        execs: at(0),
        forks: at(1),
        threads: at(2),
        exits: at(3),
    }
}

/// Decodes one ring-buffer record by the kind in its header.
fn decode(bytes: &[u8]) -> Option<KernelEvent> {
    let hdr: types::event_header = read_pod(bytes)?;
    let body = match hdr.kind {
        EVENT_EXEC => {
            let raw: types::exec_event = read_pod(bytes)?;
            let argv = raw.argv.map(|c| c as u8);
            let copied = (raw.argv_len as usize).min(argv.len());
            RecordBody::Exec(Exec {
                container: Default::default(),
                pid: raw.hdr.pid,
                ppid: raw.ppid,
                uid: raw.uid,
                gid: raw.gid,
                comm: c_string(&raw.comm.map(|c| c as u8)),
                parent_comm: c_string(&raw.parent_comm.map(|c| c as u8)),
                path: c_string(&raw.path.map(|c| c as u8)),
                argv: split_argv(&argv[..copied]),
                argv_truncated: raw.argv_full > raw.argv_len,
            })
        }
        EVENT_FORK => {
            let raw: types::fork_event = read_pod(bytes)?;
            RecordBody::Fork(Fork {
                container: Default::default(),
                pid: raw.hdr.pid,
                ppid: raw.ppid,
                parent_comm: c_string(&raw.parent_comm.map(|c| c as u8)),
            })
        }
        EVENT_EXIT => {
            let raw: types::exit_event = read_pod(bytes)?;
            let (exit_code, signal) = wait_status(raw.status);
            RecordBody::Exit(Exit {
                container: Default::default(),
                pid: raw.hdr.pid,
                comm: c_string(&raw.comm.map(|c| c as u8)),
                exit_code,
                signal,
            })
        }
        _ => return None,
    };
    Some(record_event(hdr.ts_boot_ns, hdr.cgroup_id, hdr.slot, body))
}

/// Splits the process's argument area (NUL-terminated strings back to back) into arguments.
///
/// A cut-off area keeps its partial last argument; `argv_truncated` says it is partial. Empty
/// arguments (`""`) are kept, since they are part of what was executed.
fn split_argv(area: &[u8]) -> Vec<String> {
    let area = area.strip_suffix(&[0]).unwrap_or(area);
    if area.is_empty() {
        return Vec::new();
    }
    area.split(|&b| b == 0)
        .map(|arg| String::from_utf8_lossy(arg).into_owned())
        .collect()
}

/// A wait(2) status as (exit code, terminating signal): exactly one of them is set.
fn wait_status(status: u32) -> (Option<u32>, Option<u32>) {
    match status & 0x7f {
        0 => (Some((status >> 8) & 0xff), None),
        signal => (None, Some(signal)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: u32) -> types::event_header {
        types::event_header {
            ts_boot_ns: 42,
            cgroup_id: 7,
            slot: 3,
            kind,
            pid: 100,
            tid: 100,
        }
    }

    fn bytes_of<T: plain::Plain>(value: &T) -> Vec<u8> {
        // SAFETY: `T: Plain` is plain old data; reading its bytes is always valid.
        unsafe { plain::as_bytes(value) }.to_vec()
    }

    fn fill(buffer: &mut [i8], text: &[u8]) {
        for (to, &from) in buffer.iter_mut().zip(text) {
            *to = from as i8;
        }
    }

    #[test]
    fn argv_splits_on_nul_and_keeps_empty_arguments() {
        assert_eq!(split_argv(b"sh\0-c\0id\0"), ["sh", "-c", "id"]);
        assert_eq!(split_argv(b"printf\0\0x\0"), ["printf", "", "x"]);
        assert_eq!(split_argv(b"echo\0partial-ar"), ["echo", "partial-ar"]);
        assert!(split_argv(b"").is_empty());
    }

    #[test]
    fn wait_status_separates_codes_and_signals() {
        assert_eq!(wait_status(3 << 8), (Some(3), None));
        assert_eq!(wait_status(0), (Some(0), None));
        assert_eq!(wait_status(11), (None, Some(11)));
        // A core dump sets 0x80 on top of the signal.
        assert_eq!(wait_status(0x80 | 6), (None, Some(6)));
        assert_eq!(wait_status(9), (None, Some(9)));
    }

    #[test]
    fn decodes_an_exec_and_flags_truncation() {
        let mut raw = types::exec_event {
            hdr: header(EVENT_EXEC),
            ppid: 99,
            uid: 1000,
            gid: 1001,
            argv_len: 14,
            argv_full: 14,
            ..Default::default()
        };
        fill(&mut raw.comm, b"busybox\0");
        fill(&mut raw.parent_comm, b"sh\0");
        fill(&mut raw.path, b"/bin/busybox\0");
        fill(&mut raw.argv, b"busybox\0ls\0-l\0");
        let Some(KernelEvent::Record(event)) = decode(&bytes_of(&raw)) else {
            panic!("not a record");
        };
        assert_eq!((event.ts_boot_ns, event.cgroup_id, event.slot), (42, 7, 3));
        let RecordBody::Exec(exec) = event.body else {
            panic!("not an exec");
        };
        assert_eq!(
            (exec.pid, exec.ppid, exec.uid, exec.gid),
            (100, 99, 1000, 1001)
        );
        assert_eq!(exec.comm, "busybox");
        assert_eq!(exec.parent_comm, "sh");
        assert_eq!(exec.path, "/bin/busybox");
        assert_eq!(exec.argv, ["busybox", "ls", "-l"]);
        assert!(!exec.argv_truncated);

        raw.argv_full = 4000;
        let Some(KernelEvent::Record(event)) = decode(&bytes_of(&raw)) else {
            panic!("not a record");
        };
        let RecordBody::Exec(exec) = event.body else {
            panic!("not an exec");
        };
        assert!(exec.argv_truncated);
    }

    #[test]
    fn decodes_fork_and_exit() {
        let mut fork = types::fork_event {
            hdr: header(EVENT_FORK),
            ppid: 50,
            ..Default::default()
        };
        fill(&mut fork.parent_comm, b"nginx\0");
        let Some(KernelEvent::Record(event)) = decode(&bytes_of(&fork)) else {
            panic!("not a record");
        };
        assert_eq!(
            event.body,
            RecordBody::Fork(Fork {
                container: Default::default(),
                pid: 100,
                ppid: 50,
                parent_comm: "nginx".into(),
            })
        );

        let mut exit = types::exit_event {
            hdr: header(EVENT_EXIT),
            status: 9,
            ..Default::default()
        };
        fill(&mut exit.comm, b"sleep\0");
        let Some(KernelEvent::Record(event)) = decode(&bytes_of(&exit)) else {
            panic!("not a record");
        };
        assert_eq!(
            event.body,
            RecordBody::Exit(Exit {
                container: Default::default(),
                pid: 100,
                comm: "sleep".into(),
                exit_code: None,
                signal: Some(9),
            })
        );
    }

    #[test]
    fn rejects_short_and_unknown_records() {
        assert!(decode(&[0u8; 8]).is_none());
        let unknown = header(99);
        assert!(decode(&bytes_of(&unknown)).is_none());
        // An exec header on a record too short for an exec.
        let short = header(EVENT_EXEC);
        assert!(decode(&bytes_of(&short)).is_none());
    }
}
