//! `syscalls`: per-container syscall counts and per-thread n-grams, aggregated in the kernel
//! (`bpf/syscalls.bpf.c`); optional trace mode streams raw syscalls of chosen containers.

use std::collections::HashMap;

use kanary_model::config::SyscallsConfig;
use kanary_model::ngram;
use kanary_model::record::{RecordBody, Syscall};
use kanary_model::stats::{NgramStats, SyscallStats};
use kanary_model::syscalls;
use libbpf_rs::skel::{OpenSkel, SkelBuilder};
use libbpf_rs::{Link, MapCore, MapFlags, MapHandle};

use crate::collector::{
    record_event, Collector, EventStream, KernelEvent, LoadContext, Loaded, Slot, StatsBatch,
};
use crate::error::{map_error, Error, Result};
use crate::kernel::{
    handle, object_storage, read_percpu, read_pod, sum_per_cpu, zero_percpu, Deltas, DropsMap,
};
use crate::skel::syscalls::{types, SyscallsSkel, SyscallsSkelBuilder};

/// Collector name.
pub const NAME: &str = "syscalls";
/// Number of syscall counters per container (`KANARY_SYSCALL_SLOTS`).
const SYSCALL_SLOTS: usize = 512;
/// Entries fetched per batch when draining the n-gram map.
const DRAIN_BATCH: u32 = 4096;

// SAFETY: generated from C structs of integers only: every bit pattern is valid.
unsafe impl plain::Plain for types::syscall_counts {}
unsafe impl plain::Plain for types::syscall_event {}
unsafe impl plain::Plain for types::ngram_key {}

/// The loaded `syscalls` collector.
pub struct SyscallsCollector {
    config: SyscallsConfig,
    _skel: SyscallsSkel<'static>,
    _link: Link,
    counts: MapHandle,
    ngrams: MapHandle,
    deltas: Deltas,
    /// n-grams drained from the kernel but not yet handed out, by slot. Draining is global, so a
    /// pass that collects only some slots (a container stopping) keeps the others' here.
    pending_ngrams: HashMap<Slot, HashMap<u64, u64>>,
}

/// Opens, sizes, loads and attaches the collector.
pub fn load(ctx: &LoadContext<'_>) -> Result<Loaded> {
    let load_error = |source| Error::Load {
        collector: NAME,
        source,
    };
    let config = ctx.config.collectors.syscalls.clone();
    let mut open = SyscallsSkelBuilder::default()
        .open(object_storage())
        .map_err(load_error)?;
    ctx.filter.share(&mut open.maps.watched_cgroups)?;
    let sizes = [
        (&mut open.maps.drops, ctx.slots),
        (&mut open.maps.syscall_counts, ctx.slots),
        (&mut open.maps.ngram_counts, config.ngram_map_entries),
        (&mut open.maps.events, config.trace_ringbuf_bytes),
    ];
    for (map, entries) in sizes {
        map.set_max_entries(entries).map_err(load_error)?;
    }
    if let Some(rodata) = open.maps.rodata_data.as_deref_mut() {
        rodata.targ_include_host = ctx.config.agent.include_host;
        rodata.targ_ngram_len = config.ngram_len;
        rodata.targ_ngram_mask = if config.ngram_len == 0 {
            0
        } else {
            ngram::mask(config.ngram_len)
        };
    }
    let skel = open.load().map_err(load_error)?;
    let link = skel
        .progs
        .kanary_sys_enter
        .attach()
        .map_err(|source| Error::Attach {
            collector: NAME,
            hook: "tp_btf/sys_enter".into(),
            source,
        })?;
    let streams = vec![EventStream {
        map: handle(&skel.maps.events, NAME, "events")?,
        decode: Box::new(decode),
    }];
    let drops = DropsMap::new(NAME, &skel.maps.drops)?;
    let collector = SyscallsCollector {
        counts: handle(&skel.maps.syscall_counts, NAME, "syscall_counts")?,
        ngrams: handle(&skel.maps.ngram_counts, NAME, "ngram_counts")?,
        config,
        _skel: skel,
        _link: link,
        deltas: Deltas::default(),
        pending_ngrams: HashMap::new(),
    };
    Ok(Loaded {
        collector: Box::new(collector),
        streams,
        drops: Some(drops),
    })
}

impl SyscallsCollector {
    /// Moves every n-gram counted since the last drain into `pending_ngrams`.
    fn drain_ngrams(&mut self) -> Result<()> {
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

impl Collector for SyscallsCollector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn container_removed(&mut self, slot: Slot) -> Result<()> {
        self.deltas.forget(slot);
        self.pending_ngrams.remove(&slot);
        zero_percpu(&self.counts, slot, NAME, "syscall_counts")
    }

    fn collect(&mut self, batch: &mut StatsBatch) -> Result<()> {
        if self.config.ngram_len > 0 {
            self.drain_ngrams()?;
        }
        for (&slot, stats) in batch.by_slot.iter_mut() {
            let per_cpu: Vec<types::syscall_counts> =
                read_percpu(&self.counts, slot, NAME, "syscall_counts")?;
            let total = sum_per_cpu::<SYSCALL_SLOTS>(per_cpu.iter().map(|cpu| cpu.n));
            let delta = self.deltas.delta(slot, &total);
            let by_number = delta
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
