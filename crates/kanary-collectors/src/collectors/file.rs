//! `file`: the files a container opens, de-duplicated in the kernel, and its read/write volume
//! (`bpf/file.bpf.c`).

use std::os::fd::AsFd;

use kanary_model::config::DedupStreamConfig;
use kanary_model::errno;
use kanary_model::record::{Access, Open, RecordBody};
use kanary_model::stats::FileStats;
use libbpf_rs::skel::OpenSkel;
use libbpf_rs::{Link, MapHandle};

use crate::collector::{
    record_event, Collector, EventStream, KernelEvent, LoadContext, Loaded, Slot, StatsBatch,
};
use crate::error::{attach_error, load_error, Result};
use crate::kernel::{
    boottime_now, c_string, forget_slot, handle, open_collector, read_pod, size_maps, DropsMap,
    SlotCounters, TaskIterator,
};
use crate::skel::file::types::file_call;
use crate::skel::file::{types, FileSkel, FileSkelBuilder};
use crate::syscall_dispatch::share_syscall_dispatch;
use crate::syscall_dispatch::{syscall_table, Handler, Registration, Route};

/// Collector name.
pub const NAME: &str = "file";

/// Open flags (uapi asm-generic/fcntl.h, the same on x86_64 and arm64).
const O_ACCMODE: u32 = 0o3;
const O_WRONLY: u32 = 0o1;
const O_CREAT: u32 = 0o100;
const O_TRUNC: u32 = 0o1000;

/// The syscalls `bpf/file.bpf.c` dispatches on, by name, and what they are to it.
/// Reads and writes are not among them: they come from the kernel's task I/O accounting.
const CALLS: [(&str, file_call); 4] = [
    ("open", file_call::FILE_CALL_OPEN),
    ("openat", file_call::FILE_CALL_OPENAT),
    ("openat2", file_call::FILE_CALL_OPENAT2),
    ("creat", file_call::FILE_CALL_CREAT),
];

// SAFETY: generated from C structs of integers and byte arrays only: every bit pattern is valid.
unsafe impl plain::Plain for types::open_event {}
unsafe impl plain::Plain for types::open_key {}

/// The loaded `file` collector.
pub struct FileCollector {
    /// First, so that its handlers leave the dispatcher before the object goes.
    _registration: Registration,
    /// Adds the growth of every container thread's I/O counters, each interval.
    thread_io: TaskIterator,
    /// The same for a thread that exits.
    _exit_io: Link,
    _skel: FileSkel<'static>,
    counts: SlotCounters,
    dedup: MapHandle,
}

/// Opens, sizes, loads and registers the collector.
pub fn load(ctx: &LoadContext<'_>) -> Result<Loaded> {
    let config: &DedupStreamConfig = &ctx.config.collectors.file;
    // 1. Open: parse the object and set up what every collector shares (container filter,
    //    `drops`, `targ_include_host`), and the syscall dispatcher's maps; nothing is in the
    //    kernel yet.
    let mut open = open_collector!(FileSkelBuilder, ctx, NAME)?;
    share_syscall_dispatch!(ctx, NAME, open.maps)?;
    // 2. Size this collector's maps: per-container ones get one entry per slot.
    size_maps(
        NAME,
        [
            (&mut open.maps.file_counts, ctx.slots),
            (&mut open.maps.open_dedup, config.dedup_entries),
            (&mut open.maps.events, config.ringbuf_bytes),
        ],
    )?;
    // 3. Its read-only tunables, fixed for the life of the program: the renotification delay
    //    and which call each syscall number is (enum file_call codes fit a byte).
    let calls = syscall_table(&CALLS.map(|(name, call)| (name, call.0 as u8)), NAME);
    if let Some(rodata) = open.maps.rodata_data.as_deref_mut() {
        rodata.targ_renotify_ns =
            u64::try_from(config.renotify_after.as_nanos()).unwrap_or(u64::MAX);
        rodata.targ_file_calls = calls;
        rodata.targ_loaded_boot_ns = u64::try_from(boottime_now().as_nanos()).unwrap_or(0);
    }
    // 4. Load: the verifier runs here.
    let skel = open.load().map_err(load_error(NAME))?;
    // 5. Register its handlers with the syscall dispatcher, the opens at entry and at exit,
    //    and attach the hooks that count reads and writes from the task I/O accounting.
    let is_open = |nr: usize| calls[nr] != 0;
    let registration = ctx.syscall_dispatch.register(
        ctx,
        Handler::SYSCALL_HANDLER_FILE,
        Some(Route {
            program: skel.progs.kanary_file_enter.as_fd(),
            wants: &is_open,
        }),
        Some(Route {
            program: skel.progs.kanary_file_exit.as_fd(),
            wants: &is_open,
        }),
    )?;
    let thread_io = TaskIterator::new(
        skel.progs
            .kanary_file_io
            .attach()
            .map_err(attach_error(NAME, "iter/task"))?,
        NAME,
        "thread_files",
    );
    // Once now, so that threads older than the agent get their starting point and the first
    // interval counts their I/O from here on.
    thread_io.run()?;
    let exit_io = skel
        .progs
        .kanary_file_exit_io
        .attach()
        .map_err(attach_error(NAME, "tp_btf/sched_process_exit"))?;
    // 6. Hand over the ring buffer, the loss counters and the counter and dedup maps.
    let streams = vec![EventStream::new(NAME, &skel.maps.events, decode)?];
    let drops = DropsMap::new(NAME, &skel.maps.drops)?;
    let collector = FileCollector {
        counts: SlotCounters::new(NAME, "file_counts", &skel.maps.file_counts)?,
        dedup: handle(&skel.maps.open_dedup, NAME, "open_dedup")?,
        _registration: registration,
        thread_io,
        _exit_io: exit_io,
        _skel: skel,
    };
    Ok(Loaded {
        collector: Box::new(collector),
        streams,
        drops: Some(drops),
    })
}

impl Collector for FileCollector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn container_removed(&mut self, slot: Slot) -> Result<()> {
        self.counts.reset(slot)?;
        forget_slot(
            &self.dedup,
            slot,
            |key: &types::open_key| key.slot,
            NAME,
            "open_dedup",
        )
    }

    fn collect(&mut self, batch: &mut StatsBatch) -> Result<()> {
        self.thread_io.run()?;
        for (&slot, stats) in batch.by_slot.iter_mut() {
            stats.file = Some(file_stats(&self.counts.deltas(slot)?));
        }
        Ok(())
    }
}

/// The stats section from the six counter deltas, in `struct file_counts` order.
fn file_stats(delta: &[u64]) -> FileStats {
    let at = |i: usize| delta.get(i).copied().unwrap_or(0);
    FileStats {
        opens: at(0),
        open_failures: at(1),
        reads: at(2),
        writes: at(3),
        read_bytes: at(4),
        write_bytes: at(5),
    }
}

/// The access class of open flags (`O_ACCMODE` 3, which Linux accepts, counts as read-write).
fn access(flags: u32) -> Access {
    match flags & O_ACCMODE {
        0 => Access::Read,
        O_WRONLY => Access::Write,
        _ => Access::ReadWrite,
    }
}

fn decode(bytes: &[u8]) -> Option<KernelEvent> {
    let raw: types::open_event = read_pod(bytes)?;
    let result = raw.result;
    let error = (result < 0)
        .then(|| errno::name(-result).map_or_else(|| format!("errno {}", -result), String::from));
    Some(record_event(
        raw.hdr.ts_boot_ns,
        raw.hdr.cgroup_id,
        raw.hdr.slot,
        RecordBody::Open(Open {
            container: Default::default(),
            pid: raw.hdr.pid,
            comm: c_string(&raw.comm.map(|c| c as u8)),
            path: c_string(&raw.path.map(|c| c as u8)),
            flags: raw.flags,
            access: access(raw.flags),
            create: raw.flags & O_CREAT != 0,
            truncate: raw.flags & O_TRUNC != 0,
            result,
            error,
            repeats: raw.repeats,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const O_RDWR: u32 = 0o2;

    fn event(path: &str, flags: u32, result: i64, repeats: u64) -> Vec<u8> {
        let mut raw = types::open_event::default();
        raw.hdr.ts_boot_ns = 42;
        raw.hdr.cgroup_id = 7;
        raw.hdr.slot = 3;
        raw.hdr.kind = 7;
        raw.hdr.pid = 100;
        raw.hdr.tid = 101;
        raw.result = result;
        raw.repeats = repeats;
        raw.flags = flags;
        for (dst, src) in raw.comm.iter_mut().zip(b"cat\0") {
            *dst = *src as _;
        }
        for (dst, src) in raw.path.iter_mut().zip(path.bytes().chain([0])) {
            *dst = src as _;
        }
        // SAFETY: open_event is plain old data; viewing it as bytes is always valid.
        unsafe { plain::as_bytes(&raw) }.to_vec()
    }

    fn open_of(bytes: &[u8]) -> (Slot, Open) {
        match decode(bytes) {
            Some(KernelEvent::Record(r)) => match r.body {
                RecordBody::Open(open) => (r.slot, open),
                other => panic!("not an open: {other:?}"),
            },
            other => panic!("not a record: {other:?}"),
        }
    }

    #[test]
    fn every_watched_call_is_a_syscall_of_this_architecture() {
        for (name, call) in CALLS {
            assert!(kanary_model::syscalls::number(name).is_some(), "{name}");
            assert!((1..=u32::from(u8::MAX)).contains(&call.0), "{name}");
        }
    }

    #[test]
    fn decodes_a_successful_read_open() {
        let (slot, open) = open_of(&event("/etc/passwd", 0o2000000, 3, 0));
        assert_eq!(slot, 3);
        assert_eq!(open.pid, 100);
        assert_eq!(open.comm, "cat");
        assert_eq!(open.path, "/etc/passwd");
        assert_eq!(open.access, Access::Read);
        assert!(!open.create && !open.truncate);
        assert_eq!(open.result, 3);
        assert_eq!(open.error, None);
        assert_eq!(open.repeats, 0);
    }

    #[test]
    fn decodes_a_failed_creating_write_open() {
        let flags = O_WRONLY | O_CREAT | O_TRUNC;
        let (_, open) = open_of(&event("/nonexistent/x", flags, -2, 12));
        assert_eq!(open.access, Access::Write);
        assert!(open.create && open.truncate);
        assert_eq!(open.result, -2);
        assert_eq!(open.error.as_deref(), Some("ENOENT"));
        assert_eq!(open.repeats, 12);
        assert_eq!(open.flags, flags);
    }

    #[test]
    fn unknown_errno_is_named_by_number() {
        let (_, open) = open_of(&event("x", 0, -4000, 0));
        assert_eq!(open.error.as_deref(), Some("errno 4000"));
    }

    #[test]
    fn a_short_record_is_not_decoded() {
        let bytes = event("/x", 0, 0, 0);
        assert!(decode(&bytes[..bytes.len() - 1]).is_none());
    }

    #[test]
    fn access_classes() {
        assert_eq!(access(0), Access::Read);
        assert_eq!(access(O_WRONLY | O_CREAT), Access::Write);
        assert_eq!(access(O_RDWR), Access::ReadWrite);
        assert_eq!(access(O_ACCMODE), Access::ReadWrite);
    }

    #[test]
    fn stats_follow_the_kernel_struct_order() {
        let stats = file_stats(&[1, 2, 3, 4, 5, 6]);
        assert_eq!(
            stats,
            FileStats {
                opens: 1,
                open_failures: 2,
                reads: 3,
                writes: 4,
                read_bytes: 5,
                write_bytes: 6,
            }
        );
    }
}
