//! `process`: exec, fork and exit of container processes (`bpf/process.bpf.c`), streamed as
//! records and counted per container in the kernel.

use kanary_model::config::StreamConfig;
use kanary_model::record::{Exec, Exit, Fork, RecordBody};
use kanary_model::stats::ProcessStats;
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, MapHandle};

use crate::collector::{
    record_event, Collector, EventStream, KernelEvent, LoadContext, Loaded, Slot, StatsBatch,
};
use crate::error::{Error, Result};
use crate::kernel::{
    c_string, handle, object_storage, read_percpu, read_pod, sum_per_cpu, zero_percpu, Deltas,
    DropsMap,
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
// SAFETY: as above.
unsafe impl plain::Plain for types::process_counts {}

/// The loaded `process` collector.
pub struct ProcessCollector {
    _skel: ProcessSkel<'static>,
    _links: Vec<Link>,
    counts: MapHandle,
    deltas: Deltas,
}

/// Opens, sizes, loads and attaches the collector.
pub fn load(ctx: &LoadContext<'_>) -> Result<Loaded> {
    let load_error = |source| Error::Load {
        collector: NAME,
        source,
    };
    let config: &StreamConfig = &ctx.config.collectors.process;
    let mut open = ProcessSkelBuilder::default()
        .open(object_storage())
        .map_err(load_error)?;
    ctx.filter.share(&mut open.maps.watched_cgroups)?;
    let sizes = [
        (&mut open.maps.drops, ctx.slots),
        (&mut open.maps.process_counts, ctx.slots),
        (&mut open.maps.events, config.ringbuf_bytes),
    ];
    for (map, entries) in sizes {
        map.set_max_entries(entries).map_err(load_error)?;
    }
    if let Some(rodata) = open.maps.rodata_data.as_deref_mut() {
        rodata.targ_include_host = ctx.config.agent.include_host;
    }
    let skel = open.load().map_err(load_error)?;
    let mut links = Vec::new();
    for (program, hook) in [
        (&skel.progs.kanary_exec, "tp_btf/sched_process_exec"),
        (&skel.progs.kanary_fork, "tp_btf/sched_process_fork"),
        (&skel.progs.kanary_exit, "tp_btf/sched_process_exit"),
    ] {
        links.push(program.attach().map_err(|source| Error::Attach {
            collector: NAME,
            hook: hook.to_string(),
            source,
        })?);
    }
    let streams = vec![EventStream {
        map: handle(&skel.maps.events, NAME, "events")?,
        decode: Box::new(decode),
    }];
    let drops = DropsMap::new(NAME, &skel.maps.drops)?;
    let collector = ProcessCollector {
        counts: handle(&skel.maps.process_counts, NAME, "process_counts")?,
        _skel: skel,
        _links: links,
        deltas: Deltas::default(),
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
        self.deltas.forget(slot);
        zero_percpu(&self.counts, slot, NAME, "process_counts")
    }

    fn collect(&mut self, batch: &mut StatsBatch) -> Result<()> {
        for (&slot, stats) in batch.by_slot.iter_mut() {
            let per_cpu: Vec<types::process_counts> =
                read_percpu(&self.counts, slot, NAME, "process_counts")?;
            let total = sum_per_cpu::<4>(
                per_cpu
                    .iter()
                    .map(|cpu| [cpu.execs, cpu.forks, cpu.threads, cpu.exits]),
            );
            let delta = self.deltas.delta(slot, &total);
            stats.process = Some(ProcessStats {
                execs: delta[0],
                forks: delta[1],
                threads: delta[2],
                exits: delta[3],
            });
        }
        Ok(())
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
