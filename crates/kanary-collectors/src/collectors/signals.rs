//! `signals`: crash and kill signals generated for container processes (`bpf/signals.bpf.c`),
//! streamed as `signal` records and counted per container and signal in the kernel.
//!
//! This is the worked example of `docs/adding-a-collector.md`: one hook, one counter map, one
//! event type.

use kanary_model::record::{RecordBody, Signal};
use kanary_model::stats::SignalStats;
use libbpf_rs::skel::{OpenSkel, Skel};
use libbpf_rs::Link;

use crate::collector::{
    record_event, Collector, EventStream, KernelEvent, LoadContext, Loaded, Slot, StatsBatch,
};
use crate::error::{load_error, Result};
use crate::kernel::{
    attach_all, c_string, open_collector, read_pod, size_maps, DropsMap, SlotCounters,
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

// SAFETY: generated from a C struct of integers and byte arrays only: every bit pattern is valid.
unsafe impl plain::Plain for types::signal_event {}

/// The loaded `signals` collector.
pub struct SignalsCollector {
    _skel: SignalsSkel<'static>,
    _links: Vec<Link>,
    counts: SlotCounters,
}

/// Opens, sizes, loads and attaches the collector.
pub fn load(ctx: &LoadContext<'_>) -> Result<Loaded> {
    let config = &ctx.config.collectors.signals;
    // 1. Open: parse the object and set up what every collector shares (container filter,
    //    `drops`, `targ_include_host`); nothing is in the kernel yet.
    let mut open = open_collector!(SignalsSkelBuilder, ctx, NAME)?;
    // 2. Size this collector's maps: per-container ones get one entry per slot.
    size_maps(
        NAME,
        [
            (&mut open.maps.signal_counts, ctx.slots),
            (&mut open.maps.events, config.ringbuf_bytes),
        ],
    )?;
    // 3. Its read-only tunables, fixed for the life of the program.
    if let Some(rodata) = open.maps.rodata_data.as_deref_mut() {
        rodata.targ_signal_mask = signal_mask(&WATCHED);
    }
    // 4. Load: the verifier runs here.
    let skel = open.load().map_err(load_error(NAME))?;
    // 5. Attach the program to its tracepoint.
    let links = attach_all(skel.object(), NAME)?;
    // 6. Hand over the ring buffer, the loss counters and the per-slot counters.
    let streams = vec![EventStream::new(NAME, &skel.maps.events, decode)?];
    let drops = DropsMap::new(NAME, &skel.maps.drops)?;
    let collector = SignalsCollector {
        counts: SlotCounters::new(NAME, "signal_counts", &skel.maps.signal_counts)?,
        _skel: skel,
        _links: links,
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
        self.counts.reset(slot)
    }

    fn collect(&mut self, batch: &mut StatsBatch) -> Result<()> {
        for (&slot, stats) in batch.by_slot.iter_mut() {
            stats.signals = Some(signal_stats(&self.counts.deltas(slot)?));
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
