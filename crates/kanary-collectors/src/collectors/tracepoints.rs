//! `tracepoint`: per-container counters of kernel tracepoints declared in the config
//! (`[[collectors.tracepoint]]`), with no code per tracepoint (`bpf/tracepoints.bpf.c`).
//!
//! One generic BPF program is attached once per declared tracepoint, with the counter's index
//! as its BPF cookie; it adds one to `n[index]` of the current task's container slot. Counters
//! are attributed to the task running when the tracepoint fires: right for process-context
//! tracepoints (`sched:sched_process_fork`, `syscalls:*`), arbitrary for ones fired from
//! softirq or timers (`tcp:tcp_retransmit_skb` mostly fires from the retransmit timer, so it is
//! counted only when it happens to interrupt a task of a watched container).
//!
//! A tracepoint that does not exist is a configuration error the user has to fix: `load`
//! checks every one in tracefs before loading anything and returns
//! [`Error::UnknownTracepoint`], which stops the agent with a message naming it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use kanary_model::config::{TracepointCounterConfig, MAX_TRACEPOINT_COUNTERS};
use libbpf_rs::skel::OpenSkel;
use libbpf_rs::{Link, TracepointCategory, TracepointOpts};

use crate::collector::{Collector, LoadContext, Loaded, Slot, StatsBatch};
use crate::error::{attach_error, load_error, Error, Result};
use crate::kernel::{open_collector, size_maps, SlotCounters};
use crate::skel::tracepoints::{TracepointsSkel, TracepointsSkelBuilder};
use crate::tracefs;

/// Collector name, as in `[[collectors.tracepoint]]`.
pub const NAME: &str = "tracepoint";
/// Counters per container (`KANARY_MAX_TRACEPOINT_COUNTERS`; the config allows no more).
const COUNTERS: usize = 32;
const _: () = assert!(COUNTERS == MAX_TRACEPOINT_COUNTERS);

/// The loaded `tracepoint` collector.
pub struct TracepointsCollector {
    /// Counter names, by index (the BPF cookie).
    names: Vec<String>,
    _skel: TracepointsSkel<'static>,
    _links: Vec<Link>,
    counts: SlotCounters,
}

/// Whether the config declares any counter (the collector is only loaded then).
pub fn enabled(config: &kanary_model::config::Config) -> bool {
    !config.collectors.tracepoint.is_empty()
}

/// Checks that every declared tracepoint exists, then opens, sizes, loads and attaches the
/// collector.
pub fn load(ctx: &LoadContext<'_>) -> Result<Loaded> {
    let declared = &ctx.config.collectors.tracepoint;
    let events = tracefs::events_dir_or_default();
    // Before loading anything, so a typo is reported as such and not as an attach failure.
    for (index, counter) in declared.iter().enumerate() {
        check_exists(index, counter, &events)?;
    }
    // 1. Open: parse the object and set up what every collector shares (container filter,
    //    `drops`, `targ_include_host`); nothing is in the kernel yet.
    let mut open = open_collector!(TracepointsSkelBuilder, ctx, NAME)?;
    // 2. Size this collector's maps. Nothing in this program can lose an event, so its `drops`
    //    map is never written: one entry instead of one per slot.
    size_maps(
        NAME,
        [
            (&mut open.maps.tracepoint_counts, ctx.slots),
            (&mut open.maps.drops, 1),
        ],
    )?;
    // 3. Load: the verifier runs here (no tunables of its own).
    let skel = open.load().map_err(load_error(NAME))?;
    // 4. Attach the one program once per declared tracepoint, with the counter's index as its
    //    cookie.
    let mut links = Vec::with_capacity(declared.len());
    for (index, counter) in declared.iter().enumerate() {
        let Some((category, event)) = counter.category_and_event() else {
            // Config validation already rejected this; unreachable in practice.
            return Err(unknown(index, counter, &events));
        };
        let opts = TracepointOpts {
            cookie: index as u64,
            ..Default::default()
        };
        let link = skel.progs.kanary_tracepoint.attach_tracepoint_with_opts(
            TracepointCategory::Custom(category.into()),
            event,
            opts,
        );
        let hook = format!("tracepoint {}", counter.tracepoint);
        links.push(link.map_err(attach_error(NAME, hook))?);
    }
    // 5. Hand over the per-slot counters (no events, no losses).
    let collector = TracepointsCollector {
        names: declared.iter().map(|c| c.name.clone()).collect(),
        counts: SlotCounters::new(NAME, "tracepoint_counts", &skel.maps.tracepoint_counts)?,
        _skel: skel,
        _links: links,
    };
    Ok(Loaded {
        collector: Box::new(collector),
        streams: Vec::new(),
        drops: None,
    })
}

impl Collector for TracepointsCollector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn container_removed(&mut self, slot: Slot) -> Result<()> {
        self.counts.reset(slot)
    }

    fn collect(&mut self, batch: &mut StatsBatch) -> Result<()> {
        for (&slot, stats) in batch.by_slot.iter_mut() {
            stats.tracepoints = by_name(&self.names, &self.counts.deltas(slot)?);
        }
        Ok(())
    }
}

/// Every declared counter by name with its delta, zeros included, so every `stats` record of a
/// run carries the same keys.
fn by_name(names: &[String], delta: &[u64]) -> BTreeMap<String, u64> {
    names
        .iter()
        .enumerate()
        .map(|(index, name)| (name.clone(), delta.get(index).copied().unwrap_or(0)))
        .collect()
}

/// `Err(UnknownTracepoint)` when the declared tracepoint has no directory under `events`.
fn check_exists(index: usize, counter: &TracepointCounterConfig, events: &Path) -> Result<()> {
    match tracepoint_dir(events, counter) {
        Some(dir) if dir.is_dir() => Ok(()),
        _ => Err(unknown(index, counter, events)),
    }
}

fn unknown(index: usize, counter: &TracepointCounterConfig, events: &Path) -> Error {
    Error::UnknownTracepoint {
        index,
        name: counter.name.clone(),
        tracepoint: counter.tracepoint.clone(),
        path: tracepoint_dir(events, counter).unwrap_or_else(|| events.to_path_buf()),
    }
}

/// The tracefs directory of a declared tracepoint, `None` when its category or event cannot be
/// a tracepoint name (a path separator or a dot-only component would leave `events`).
fn tracepoint_dir(events: &Path, counter: &TracepointCounterConfig) -> Option<PathBuf> {
    let (category, event) = counter.category_and_event()?;
    let plain_name = |part: &str| {
        !part.chars().all(|c| c == '.')
            && part
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    };
    (plain_name(category) && plain_name(event)).then(|| events.join(category).join(event))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counter(name: &str, tracepoint: &str) -> TracepointCounterConfig {
        TracepointCounterConfig {
            name: name.into(),
            tracepoint: tracepoint.into(),
        }
    }

    #[test]
    fn tracepoint_dirs_stay_under_events() {
        let events = Path::new("/sys/kernel/tracing/events");
        assert_eq!(
            tracepoint_dir(events, &counter("r", "tcp:tcp_retransmit_skb")),
            Some(PathBuf::from(
                "/sys/kernel/tracing/events/tcp/tcp_retransmit_skb"
            ))
        );
        // Real categories with a hyphen exist (xhci-hcd).
        assert!(tracepoint_dir(events, &counter("x", "xhci-hcd:xhci_urb_enqueue")).is_some());
        for bad in [
            "../..:passwd",
            "tcp:../../x",
            "a/b:c",
            "..:x",
            "sched:",
            "nocolon",
        ] {
            assert_eq!(tracepoint_dir(events, &counter("b", bad)), None, "{bad}");
        }
    }

    #[test]
    fn a_missing_tracepoint_is_named_with_its_index_and_path() {
        let events = tempfile_dir();
        std::fs::create_dir_all(events.join("sched/sched_process_fork")).unwrap();
        let ok = counter("forks", "sched:sched_process_fork");
        assert!(check_exists(0, &ok, &events).is_ok());
        let error = check_exists(3, &counter("bogus", "nosuch:event"), &events).unwrap_err();
        let text = error.to_string();
        assert!(text.contains("collectors.tracepoint[3]"), "{text}");
        assert!(text.contains("bogus"), "{text}");
        assert!(text.contains("nosuch:event"), "{text}");
        assert!(text.contains("nosuch/event"), "{text}");
        // A category that exists with an event that does not is just as unknown.
        assert!(check_exists(0, &counter("x", "sched:nosuch"), &events).is_err());
        std::fs::remove_dir_all(&events).ok();
    }

    #[test]
    fn counters_are_named_by_index_with_zeros_kept() {
        let names = vec!["tcp_retransmits".to_string(), "sched_forks".to_string()];
        let mut delta = vec![0u64; COUNTERS];
        delta[1] = 7;
        let named = by_name(&names, &delta);
        assert_eq!(named.len(), 2);
        assert_eq!(named["tcp_retransmits"], 0);
        assert_eq!(named["sched_forks"], 7);
        assert!(by_name(&[], &delta).is_empty());
    }

    /// A fresh directory under the system temp dir (this crate has no tempfile dependency).
    fn tempfile_dir() -> PathBuf {
        let dir = std::env::temp_dir().join(format!(
            "kanary-tracepoints-test-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
