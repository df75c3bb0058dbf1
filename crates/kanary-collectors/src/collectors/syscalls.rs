//! `syscalls`: per-container syscall counts and per-thread n-grams, aggregated in the kernel
//! (`bpf/syscalls.bpf.c`); optional trace mode streams raw syscalls of chosen containers.

use std::collections::HashMap;
use std::os::fd::AsFd;
use std::time::Duration;

use kanary_model::config::SyscallsConfig;
use kanary_model::ngram;
use kanary_model::record::{RecordBody, Syscall};
use kanary_model::stats::{NgramStats, SyscallStats};
use kanary_model::syscalls;
use libbpf_rs::skel::OpenSkel;
use libbpf_rs::{Link, MapCore, MapFlags, MapHandle};

use crate::collector::{
    record_event, Collector, EventStream, KernelEvent, LoadContext, Loaded, Slot, StatsBatch,
};
use crate::error::{attach_error, load_error, map_error, Result};
use crate::kernel::{
    handle, open_collector, read_pod, size_maps, DropsMap, SlotCounters, TaskIterator,
};
use crate::skel::syscalls::{types, SyscallsSkel, SyscallsSkelBuilder};
use crate::syscall_dispatch::share_syscall_dispatch;
use crate::syscall_dispatch::{Handler, Registration, Route};

/// Collector name.
pub const NAME: &str = "syscalls";
/// Entries fetched per batch when draining the n-gram map.
const DRAIN_BATCH: u32 = 4096;
/// How long the drain waits after starting a new n-gram epoch. Each thread keeps its own n-gram
/// counts and hands them over to `ngram_counts` at its first syscall of the new epoch: a busy
/// thread does so within microseconds. The task iterator then hands over the tables of the
/// threads that made no syscall in the wait; the wait keeps it off the busy threads' tables,
/// which they write with plain increments.
const HAND_OVER_WAIT: Duration = Duration::from_millis(20);

// SAFETY: generated from C structs of integers only: every bit pattern is valid.
unsafe impl plain::Plain for types::syscall_event {}
unsafe impl plain::Plain for types::ngram_key {}

/// The loaded `syscalls` collector.
pub struct SyscallsCollector {
    config: SyscallsConfig,
    /// Before the object, so that its handler leaves the dispatcher before the object goes.
    _registration: Registration,
    /// The hooks that hand over n-grams of exiting threads and of idle ones (the task iterator,
    /// run each drain); `None` with sequence features off. Before the object, like the
    /// registration.
    hand_over: Option<HandOver>,
    skel: SyscallsSkel<'static>,
    counts: SlotCounters,
    ngrams: MapHandle,
    /// n-grams drained from the kernel but not yet handed out, by slot. Draining is global, so a
    /// pass that collects only some slots (a container stopping) keeps the others' here.
    pending_ngrams: HashMap<Slot, HashMap<u64, u64>>,
}

/// Opens, sizes, loads and registers the collector.
pub fn load(ctx: &LoadContext<'_>) -> Result<Loaded> {
    let config = ctx.config.collectors.syscalls.clone();
    // 1. Open: parse the object and set up what every collector shares (container filter,
    //    `drops`, `targ_include_host`), and the syscall dispatcher's maps; nothing is in the
    //    kernel yet.
    let mut open = open_collector!(SyscallsSkelBuilder, ctx, NAME)?;
    share_syscall_dispatch!(ctx, NAME, open.maps)?;
    // 2. Size this collector's maps: per-container ones get one entry per slot.
    size_maps(
        NAME,
        [
            (&mut open.maps.syscall_counts, ctx.slots),
            (&mut open.maps.ngram_counts, config.ngram_map_entries),
            (&mut open.maps.events, config.trace_ringbuf_bytes),
        ],
    )?;
    // 3. Its read-only tunables, fixed for the life of the program.
    if let Some(rodata) = open.maps.rodata_data.as_deref_mut() {
        rodata.targ_ngram_len = config.ngram_len;
        rodata.targ_ngram_mask = if config.ngram_len == 0 {
            0
        } else {
            ngram::mask(config.ngram_len)
        };
    }
    // 4. Load: the verifier runs here.
    let skel = open.load().map_err(load_error(NAME))?;
    // 5. Register its handler with the syscall dispatcher, for every syscall at entry.
    let registration = ctx.syscall_dispatch.register(
        ctx,
        Handler::SYSCALL_HANDLER_SYSCALLS,
        Some(Route {
            program: skel.progs.kanary_sys_enter.as_fd(),
            wants: &|_| true,
        }),
        None,
    )?;
    // 6. Attach the exit hook that hands over a thread's last n-grams (the handler above is run
    //    by the dispatcher, not attached).
    let hand_over = if config.ngram_len > 0 {
        Some(HandOver {
            _exit: skel
                .progs
                .kanary_ngrams_exit
                .attach()
                .map_err(attach_error(NAME, "tp_btf/sched_process_exit"))?,
            idle_threads: TaskIterator::new(
                skel.progs
                    .kanary_ngrams_collect
                    .attach()
                    .map_err(attach_error(NAME, "iter/task"))?,
                NAME,
                "thread_syscalls",
            ),
        })
    } else {
        None
    };
    // 7. Hand over the trace ring buffer, the loss counters and the counter maps.
    let streams = vec![EventStream::new(NAME, &skel.maps.events, decode)?];
    let drops = DropsMap::new(NAME, &skel.maps.drops)?;
    let collector = SyscallsCollector {
        counts: SlotCounters::new(NAME, "syscall_counts", &skel.maps.syscall_counts)?,
        ngrams: handle(&skel.maps.ngram_counts, NAME, "ngram_counts")?,
        config,
        _registration: registration,
        hand_over,
        skel,
        pending_ngrams: HashMap::new(),
    };
    Ok(Loaded {
        collector: Box::new(collector),
        streams,
        drops: Some(drops),
    })
}

impl SyscallsCollector {
    /// Moves every n-gram counted since the last drain into `pending_ngrams`: starts a new
    /// epoch, so that threads hand their own counts over, then drains the shared map.
    fn drain_ngrams(&mut self) -> Result<()> {
        if let (Some(hand_over), Some(bss)) =
            (&self.hand_over, self.skel.maps.bss_data.as_deref_mut())
        {
            // The programs read it with a plain load; a volatile store keeps the compiler from
            // dropping or reordering a write nobody in this process reads.
            let epoch = &mut bss.ngram_epoch as *mut u64;
            // SAFETY: `epoch` points into the skeleton's mmapped .bss, alive as long as `skel`.
            unsafe { epoch.write_volatile(epoch.read_volatile().wrapping_add(1)) };
            std::thread::sleep(HAND_OVER_WAIT);
            hand_over.idle_threads.run()?;
        }
        let entries = self
            .ngrams
            .lookup_and_delete_batch(DRAIN_BATCH, MapFlags::ANY, MapFlags::ANY)
            .map_err(map_error(NAME, "ngram_counts"))?;
        for (key, value) in entries {
            let (Some(key), Some(count)) =
                (read_pod::<types::ngram_key>(&key), read_pod::<u64>(&value))
            else {
                continue;
            };
            *self
                .pending_ngrams
                .entry(key.slot)
                .or_default()
                .entry(key.ngram)
                .or_default() += count;
        }
        Ok(())
    }
}

/// The hooks that hand threads' own n-gram tables over to `ngram_counts`.
struct HandOver {
    _exit: Link,
    /// Hands over the tables of the threads that did not do so themselves in the new epoch.
    idle_threads: TaskIterator,
}

impl Collector for SyscallsCollector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn container_removed(&mut self, slot: Slot) -> Result<()> {
        self.pending_ngrams.remove(&slot);
        self.counts.reset(slot)
    }

    fn collect(&mut self, batch: &mut StatsBatch) -> Result<()> {
        if self.config.ngram_len > 0 {
            self.drain_ngrams()?;
        }
        for (&slot, stats) in batch.by_slot.iter_mut() {
            let by_number = self
                .counts
                .deltas(slot)?
                .iter()
                .enumerate()
                .filter(|(_, &n)| n > 0)
                .map(|(nr, &n)| (nr as u32, n))
                .collect();
            stats.syscalls = Some(SyscallStats::from_counts(
                by_number,
                self.config.top_syscalls,
            ));
            if self.config.ngram_len > 0 {
                let packed = self
                    .pending_ngrams
                    .remove(&slot)
                    .map(|grams| grams.into_iter().collect())
                    .unwrap_or_default();
                stats.ngrams = Some(NgramStats::from_counts(
                    self.config.ngram_len,
                    packed,
                    self.config.top_ngrams,
                ));
            }
        }
        Ok(())
    }
}

fn decode(bytes: &[u8]) -> Option<KernelEvent> {
    let raw: types::syscall_event = read_pod(bytes)?;
    let nr = raw.nr as u32;
    Some(record_event(
        raw.hdr.ts_boot_ns,
        raw.hdr.cgroup_id,
        raw.hdr.slot,
        RecordBody::Syscall(Syscall {
            container: Default::default(),
            pid: raw.hdr.pid,
            tid: raw.hdr.tid,
            nr,
            name: syscalls::name_or_number(nr),
            args: raw.args,
        }),
    ))
}
