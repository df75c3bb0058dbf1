//! The [`Collector`] trait and what collectors exchange with the agent.
//!
//! A collector is one `bpf/<name>.bpf.c` plus one module under `src/collectors/`, listed once
//! in [`crate::collectors::COLLECTORS`]. Its `load` function opens the skeleton, sizes maps from
//! the config, shares the container filter, loads and attaches, and returns a [`Loaded`]: the
//! running collector, the ring buffers it streams events through and its loss counters.

use std::collections::BTreeMap;
use std::path::Path;

use kanary_model::config::Config;
use kanary_model::record::RecordBody;
use kanary_model::stats::ContainerStats;
use libbpf_rs::MapHandle;

use crate::containers::ContainerFilter;
use crate::error::Result;
use crate::kernel::{handle, DropsMap};
use crate::syscall_dispatch::SyscallDispatch;

/// Index of a watched container in every per-container kernel map (0: the host).
pub type Slot = u32;

/// Something a ring buffer delivered, decoded.
// Nearly every event is a record; boxing it would add an allocation per event for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum KernelEvent {
    /// A record about a container; the agent fills in `container` from the slot.
    Record(RecordEvent),
    /// A cgroup was created on the v2 hierarchy and is now watched (or could not be).
    CgroupCreated(CgroupEvent),
    /// A watched cgroup was removed.
    CgroupRemoved(CgroupEvent),
}

/// A container-scoped record as decoded from the kernel.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordEvent {
    /// `bpf_ktime_get_boot_ns()` when it happened.
    pub ts_boot_ns: u64,
    /// The cgroup it happened in.
    pub cgroup_id: u64,
    /// The container slot the kernel attributed it to.
    pub slot: Slot,
    /// The record, with an empty `container`.
    pub body: RecordBody,
}

/// A cgroup lifecycle event from `bpf/containers.bpf.c`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CgroupEvent {
    /// `bpf_ktime_get_boot_ns()` when it happened.
    pub ts_boot_ns: u64,
    /// The cgroup.
    pub cgroup_id: u64,
    /// Its parent (0 on removal).
    pub parent_cgroup_id: u64,
    /// The slot it was given.
    pub slot: Slot,
    /// A sub-cgroup of a watched container, sharing its slot.
    pub child: bool,
    /// It looked like a container but no slot or filter entry was free.
    pub slot_error: bool,
    /// Path relative to the cgroup v2 mount.
    pub path: String,
}

/// Decodes one raw ring-buffer record; `None` for a record it does not understand.
pub type Decoder = Box<dyn FnMut(&[u8]) -> Option<KernelEvent>>;

/// One ring buffer and its decoder.
pub struct EventStream {
    /// The ring buffer map.
    pub map: MapHandle,
    /// Its decoder.
    pub decode: Decoder,
}

impl EventStream {
    /// The ring buffer of `collector` (`events`, declared by `KANARY_RINGBUF()`), decoded by
    /// `decode`.
    pub(crate) fn new<'a, M>(
        collector: &'static str,
        events: &'a M,
        decode: fn(&[u8]) -> Option<KernelEvent>,
    ) -> Result<Self>
    where
        MapHandle: TryFrom<&'a M, Error = libbpf_rs::Error>,
    {
        Ok(EventStream {
            map: handle(events, collector, "events")?,
            decode: Box::new(decode),
        })
    }
}

/// A container the agent starts watching, as collectors see it.
#[derive(Debug, Clone, Copy)]
pub struct WatchedCgroup<'a> {
    /// Its slot.
    pub slot: Slot,
    /// Kernel cgroup id.
    pub cgroup_id: u64,
    /// Path relative to the cgroup v2 mount, e.g. `/docker/<id>`.
    pub path: &'a str,
}

/// Everything a collector's `load` needs.
pub struct LoadContext<'a> {
    /// The whole configuration.
    pub config: &'a Config,
    /// The shared container filter, whose maps every collector reuses.
    pub filter: &'a ContainerFilter,
    /// Number of slots in every per-container map (`max_containers` + the host slot).
    pub slots: u32,
    /// Mount point of the cgroup v2 hierarchy.
    pub cgroup2_mount: &'a Path,
    /// The one program on each raw syscall tracepoint, which runs the handlers of the
    /// collectors that work per syscall (loaded by the first of them).
    pub syscall_dispatch: SyscallDispatch,
}

/// A loaded, attached collector.
pub struct Loaded {
    /// The collector.
    pub collector: Box<dyn Collector>,
    /// Ring buffers it streams events through.
    pub streams: Vec<EventStream>,
    /// Its kernel loss counters, if it has kernel programs.
    pub drops: Option<DropsMap>,
}

/// The stats being built for one interval, by slot.
#[derive(Debug, Default)]
pub struct StatsBatch {
    /// Stats of every slot collected in this pass.
    pub by_slot: BTreeMap<Slot, ContainerStats>,
    /// Length of the interval, seconds.
    pub interval_s: f64,
}

impl StatsBatch {
    /// A batch for `slots`, all sections empty.
    pub fn new(slots: impl IntoIterator<Item = Slot>, interval_s: f64) -> Self {
        StatsBatch {
            by_slot: slots
                .into_iter()
                .map(|slot| (slot, ContainerStats::default()))
                .collect(),
            interval_s,
        }
    }
}

/// One source of per-container data. See `docs/adding-a-collector.md`.
pub trait Collector {
    /// Name as in `[collectors.<name>]` and in `drops` records.
    fn name(&self) -> &'static str;

    /// A container is now watched under `cgroup.slot` (attach per-cgroup hooks, open files).
    fn container_added(&mut self, _cgroup: &WatchedCgroup<'_>) -> Result<()> {
        Ok(())
    }

    /// A container is gone and its slot is about to be recycled: clear per-slot state.
    fn container_removed(&mut self, _slot: Slot) -> Result<()> {
        Ok(())
    }

    /// Adds this collector's section to the stats of every slot in `batch`.
    fn collect(&mut self, batch: &mut StatsBatch) -> Result<()>;
}

/// Wraps a decoded record with the header fields that say where it came from.
pub(crate) fn record_event(
    ts_boot_ns: u64,
    cgroup_id: u64,
    slot: Slot,
    body: RecordBody,
) -> KernelEvent {
    KernelEvent::Record(RecordEvent {
        ts_boot_ns,
        cgroup_id,
        slot,
        body,
    })
}
