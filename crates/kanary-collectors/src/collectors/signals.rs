//! `signals`: crash and kill signals generated for container processes (`bpf/signals.bpf.c`),
//! streamed as `signal` records and counted per container and signal in the kernel.
//!
//! This is the worked example of `docs/adding-a-collector.md`: one hook, one counter map, one
//! event type.

use kanary_model::record::{RecordBody, Signal};
use kanary_model::stats::SignalStats;
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
use crate::skel::signals::{types, SignalsSkel, SignalsSkelBuilder};

/// Collector name.
pub const NAME: &str = "signals";

/// Counters per container in the kernel (`KANARY_SIGNAL_SLOTS`): one per signal number.
const SIGNAL_SLOTS: usize = 32;

/// The watched signals: those whose default action kills the process and that mean it crashed
/// (a fault, an abort, a seccomp violation) or was killed outright. Numbers are the same on
/// x86_64 and arm64.
const WATCHED: [(u32, &str); 7] = [
    (4, "SIGILL"),
    (6, "SIGABRT"),
    (7, "SIGBUS"),
    (8, "SIGFPE"),
    (9, "SIGKILL"),
    (11, "SIGSEGV"),
    (31, "SIGSYS"),
];

// SAFETY: generated from C structs of integers and byte arrays only: every bit pattern is valid.
unsafe impl plain::Plain for types::signal_event {}
// SAFETY: as above.
unsafe impl plain::Plain for types::signal_counts {}

/// The loaded `signals` collector.
pub struct SignalsCollector {
    _skel: SignalsSkel<'static>,
    _link: Link,
    counts: MapHandle,
    deltas: Deltas,
}

/// Opens, sizes, loads and attaches the collector.
pub fn load(ctx: &LoadContext<'_>) -> Result<Loaded> {
    let load_error = |source| Error::Load {
        collector: NAME,
        source,
    };
    let config = &ctx.config.collectors.signals;
    // 1. Open: parse the object; nothing is in the kernel yet.
    let mut open = SignalsSkelBuilder::default()
        .open(object_storage())
        .map_err(load_error)?;
    // 2. Use the agent's container filter instead of this object's own copy.
    ctx.filter.share(&mut open.maps.watched_cgroups)?;
    // 3. Size the maps: per-container ones get one entry per slot.
    let sizes = [
        (&mut open.maps.drops, ctx.slots),
        (&mut open.maps.signal_counts, ctx.slots),
        (&mut open.maps.events, config.ringbuf_bytes),
    ];
    for (map, entries) in sizes {
        map.set_max_entries(entries).map_err(load_error)?;
    }
    // 4. Read-only tunables, fixed for the life of the program.
    if let Some(rodata) = open.maps.rodata_data.as_deref_mut() {
        rodata.targ_include_host = ctx.config.agent.include_host;
        rodata.targ_signal_mask = signal_mask(&WATCHED);
    }
    // 5. Load (the verifier runs here), then 6. attach.
    let skel = open.load().map_err(load_error)?;
    let link = skel
        .progs
        .kanary_signal_generate
        .attach()
        .map_err(|source| Error::Attach {
            collector: NAME,
            hook: "tp_btf/signal_generate".into(),
            source,
        })?;
    let streams = vec![EventStream {
        map: handle(&skel.maps.events, NAME, "events")?,
        decode: Box::new(decode),
    }];
    let drops = DropsMap::new(NAME, &skel.maps.drops)?;
    let collector = SignalsCollector {
        counts: handle(&skel.maps.signal_counts, NAME, "signal_counts")?,
        _skel: skel,
        _link: link,
        deltas: Deltas::default(),
    };
    Ok(Loaded {
        collector: Box::new(collector),
        streams,
        drops: Some(drops),
    })
}

impl Collector for SignalsCollector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn container_removed(&mut self, slot: Slot) -> Result<()> {
        self.deltas.forget(slot);
        zero_percpu(&self.counts, slot, NAME, "signal_counts")
    }

    fn collect(&mut self, batch: &mut StatsBatch) -> Result<()> {
        for (&slot, stats) in batch.by_slot.iter_mut() {
            let per_cpu: Vec<types::signal_counts> =
                read_percpu(&self.counts, slot, NAME, "signal_counts")?;
            let total = sum_per_cpu::<SIGNAL_SLOTS>(per_cpu.iter().map(|cpu| cpu.n));
            stats.signals = Some(signal_stats(&self.deltas.delta(slot, &total)));
        }
        Ok(())
    }
}

/// The kernel's bit mask of watched signal numbers.
fn signal_mask(signals: &[(u32, &str)]) -> u32 {
    signals
        .iter()
        .filter(|(number, _)| (1..SIGNAL_SLOTS as u32).contains(number))
        .fold(0, |mask, (number, _)| mask | 1 << number)
}

/// A signal's name, e.g. `SIGSEGV` (`SIG<n>` for one kanary does not watch).
fn signal_name(signal: u32) -> String {
    WATCHED
        .iter()
        .find(|(number, _)| *number == signal)
        .map_or_else(|| format!("SIG{signal}"), |(_, name)| (*name).to_string())
}

/// The stats section from per-signal-number interval counts: non-zero counts by name.
fn signal_stats(by_number: &[u64]) -> SignalStats {
    SignalStats {
        counts: by_number
            .iter()
            .enumerate()
            .filter(|(_, &n)| n > 0)
            .map(|(signal, &n)| (signal_name(signal as u32), n))
            .collect(),
    }
}

fn decode(bytes: &[u8]) -> Option<KernelEvent> {
    let raw: types::signal_event = read_pod(bytes)?;
    Some(record_event(
        raw.hdr.ts_boot_ns,
        raw.hdr.cgroup_id,
        raw.hdr.slot,
        RecordBody::Signal(Signal {
            container: Default::default(),
            pid: raw.hdr.pid,
            comm: c_string(&raw.comm.map(|c| c as u8)),
            signal: raw.signal,
            signal_name: signal_name(raw.signal),
            sender_pid: raw.sender_pid,
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mask_has_one_bit_per_watched_signal() {
        let mask = signal_mask(&WATCHED);
        assert_eq!(mask.count_ones(), 7);
        assert_ne!(mask & 1 << 11, 0);
        assert_ne!(mask & 1 << 9, 0);
        assert_eq!(mask & 1 << 15, 0, "SIGTERM is not a crash");
    }

    #[test]
    fn names_known_and_unknown_signals() {
        assert_eq!(signal_name(11), "SIGSEGV");
        assert_eq!(signal_name(31), "SIGSYS");
        assert_eq!(signal_name(15), "SIG15");
    }

    #[test]
    fn stats_list_non_zero_counts_by_name() {
        let mut counts = [0u64; SIGNAL_SLOTS];
        counts[9] = 2;
        counts[11] = 1;
        let stats = signal_stats(&counts);
        assert_eq!(stats.counts.len(), 2);
        assert_eq!(stats.counts["SIGKILL"], 2);
        assert_eq!(stats.counts["SIGSEGV"], 1);
    }

    #[test]
    fn decodes_the_receiver_and_the_sender() {
        let mut raw = types::signal_event {
            hdr: types::event_header {
                ts_boot_ns: 5,
                cgroup_id: 77,
                slot: 2,
                kind: 11,
                pid: 300,
                tid: 301,
            },
            signal: 11,
            sender_pid: 300,
            ..Default::default()
        };
        for (to, &from) in raw.comm.iter_mut().zip(b"app\0") {
            *to = from as i8;
        }
        // SAFETY: `signal_event` is plain old data; reading its bytes is always valid.
        let bytes = unsafe { plain::as_bytes(&raw) };
        let Some(KernelEvent::Record(event)) = decode(bytes) else {
            panic!("not a record");
        };
        assert_eq!((event.cgroup_id, event.slot), (77, 2));
        assert_eq!(
            event.body,
            RecordBody::Signal(Signal {
                container: Default::default(),
                pid: 300,
                comm: "app".into(),
                signal: 11,
                signal_name: "SIGSEGV".into(),
                sender_pid: 300,
            })
        );
        assert!(decode(&bytes[..bytes.len() - 1]).is_none());
    }
}
