//! Small mechanisms every collector loader shares: opening, loading and attaching a skeleton,
//! decoding fixed-width kernel structs, per-slot counters and the per-collector loss counters.
//!
//! A collector's `load` reads top-down as the lifecycle of its object:
//!
//! 1. `open_collector!`: open the skeleton with what every collector shares (the agent's
//!    container filter, `drops` sized per slot, `targ_include_host`);
//! 2. `size_maps`: size the collector's own maps;
//! 3. set its own read-only tunables;
//! 4. load (`open.load().map_err(load_error(NAME))`: the verifier runs here);
//! 5. `attach_all` (or the collector's own attach for hooks that need a target);
//! 6. wrap the maps user space reads (`SlotCounters`, [`DropsMap`], ring buffers).

use std::collections::HashMap;
use std::mem::MaybeUninit;
use std::time::Duration;

use kanary_model::stats::DropCounts;
use libbpf_rs::skel::SkelBuilder;
use libbpf_rs::{Iter, Link, MapCore, MapFlags, MapHandle, Object, OpenMapMut, OpenObject};

use crate::collector::Slot;
use crate::error::{attach_error, load_error, map_error, Result};
use crate::tracefs;

/// Storage for one skeleton's object. Collectors live as long as the agent, so the storage is
/// leaked once per collector instead of threading a lifetime through every owner.
pub(crate) fn object_storage() -> &'static mut MaybeUninit<OpenObject> {
    Box::leak(Box::new(MaybeUninit::uninit()))
}

/// Parses collector `collector`'s object from its skeleton builder `B`; nothing is in the
/// kernel yet. Used by `open_collector!`.
pub(crate) fn open_skeleton<B>(collector: &'static str) -> Result<B::Output>
where
    B: SkelBuilder<'static> + Default,
{
    B::default()
        .open(object_storage())
        .map_err(load_error(collector))
}

/// Opens a collector's skeleton with everything every collector object shares (the maps and
/// tunable of `bpf/include/common.h`):
///
/// - the object is parsed (nothing is in the kernel yet);
/// - its `watched_cgroups` and `filter_epoch` become the agent's one container filter;
/// - its `drops` gets one entry per container slot;
/// - `targ_include_host` is set from `agent.include_host`.
///
/// `open_collector!(Builder, ctx, NAME)` evaluates to a `Result` of the open skeleton, whose
/// own maps and tunables the caller sets next. A macro because every skeleton has its own map
/// and rodata types.
macro_rules! open_collector {
    ($builder:ty, $ctx:expr, $collector:expr) => {{
        let ctx: &$crate::collector::LoadContext<'_> = $ctx;
        let collector: &'static str = $collector;
        $crate::kernel::open_skeleton::<$builder>(collector).and_then(|mut open| {
            ctx.filter
                .share(&mut open.maps.watched_cgroups, &mut open.maps.filter_epoch)?;
            $crate::kernel::size_maps(collector, [(&mut open.maps.drops, ctx.slots)])?;
            if let Some(rodata) = open.maps.rodata_data.as_deref_mut() {
                rodata.targ_include_host = ctx.config.agent.include_host;
            }
            Ok(open)
        })
    }};
}
pub(crate) use open_collector;

/// Sets the number of entries of each map (before load).
pub(crate) fn size_maps<'a, 'obj: 'a>(
    collector: &'static str,
    sizes: impl IntoIterator<Item = (&'a mut OpenMapMut<'obj>, u32)>,
) -> Result<()> {
    for (map, entries) in sizes {
        map.set_max_entries(entries)
            .map_err(load_error(collector))?;
    }
    Ok(())
}

/// Attaches every loaded program of `object` to the hook its section names (`tp_btf/<event>`,
/// `tracepoint/<category>/<event>`, ...); an error names the section.
///
/// For objects whose every program attaches by its section alone; programs that need a
/// target (a cgroup, a cookie) are attached by their collector, with
/// [`attach_error`](crate::error::attach_error).
pub(crate) fn attach_all(object: &Object, collector: &'static str) -> Result<Vec<Link>> {
    let mut links = Vec::new();
    for program in object.progs_mut() {
        if !program.autoload() {
            continue;
        }
        let link = program.attach().map_err(|source| {
            let section = program.section().to_string_lossy();
            let hook = format!("{section}{}", tracefs::attach_hint(&section));
            attach_error(collector, hook)(source)
        })?;
        links.push(link);
    }
    Ok(links)
}

/// CLOCK_BOOTTIME now: the clock of `bpf_ktime_get_boot_ns()` and of `task->start_boottime`.
pub fn boottime_now() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec into the valid pointer we pass.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// An attached `iter/task` program: each [`run`](TaskIterator::run) runs it once over every
/// thread of the host. For per-thread state a collector keeps in task storage and must sum
/// over a container's threads at the end of an interval, whether or not they ran meanwhile.
pub(crate) struct TaskIterator {
    link: Link,
    collector: &'static str,
    /// The map it works on, named in errors.
    map: &'static str,
}

impl TaskIterator {
    /// Wraps the link of an attached `iter/task` program.
    pub(crate) fn new(link: Link, collector: &'static str, map: &'static str) -> Self {
        TaskIterator {
            link,
            collector,
            map,
        }
    }

    /// Runs the program over every thread. It writes no output: reading the iterator to its
    /// end is what runs it.
    pub(crate) fn run(&self) -> Result<()> {
        let fail = |error: libbpf_rs::Error| map_error(self.collector, self.map)(error);
        let mut iter = Iter::new(&self.link).map_err(fail)?;
        std::io::copy(&mut iter, &mut std::io::sink()).map_err(|error| fail(error.into()))?;
        Ok(())
    }
}

/// Copies a fixed-width kernel struct out of a ring-buffer record or map value.
///
/// Returns `None` when `bytes` is too short (a record from a mismatched build).
pub(crate) fn read_pod<T: plain::Plain + Default>(bytes: &[u8]) -> Option<T> {
    let mut value = T::default();
    plain::copy_from_bytes(&mut value, bytes).ok()?;
    Some(value)
}

/// A NUL-terminated kernel string buffer as text (lossy for non-UTF-8 bytes).
pub(crate) fn c_string(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}

/// An owned handle on a skeleton's map, usable after the skeleton is borrowed elsewhere.
pub(crate) fn handle<'a, M>(
    map: &'a M,
    collector: &'static str,
    name: &'static str,
) -> Result<MapHandle>
where
    MapHandle: TryFrom<&'a M, Error = libbpf_rs::Error>,
{
    MapHandle::try_from(map).map_err(map_error(collector, name))
}

/// One collector's per-container counters: a per-CPU array indexed by slot whose value is a
/// struct of `__u64` counters only. Every counters struct in `bpf/include/types.h` is (and
/// must stay) such a struct, so the value is read as consecutive native-endian u64 fields in
/// declaration order, whatever its C type; [`SlotCounters::new`] refuses a map whose value is
/// not a whole number of u64s.
///
/// The kernel only ever adds; [`SlotCounters::deltas`] turns the cumulative counts into the
/// increase since the previous call for the slot.
#[derive(Debug)]
pub(crate) struct SlotCounters {
    collector: &'static str,
    name: &'static str,
    map: MapHandle,
    /// u64 fields per value.
    fields: usize,
    deltas: Deltas,
}

impl SlotCounters {
    /// Wraps map `name` of `collector`.
    pub(crate) fn new<'a, M>(
        collector: &'static str,
        name: &'static str,
        map: &'a M,
    ) -> Result<Self>
    where
        MapHandle: TryFrom<&'a M, Error = libbpf_rs::Error>,
    {
        let map = handle(map, collector, name)?;
        let value_size = map.value_size() as usize;
        let fields = value_size / 8;
        if fields == 0 || fields * 8 != value_size {
            let why = format!("value of {value_size} bytes is not a struct of u64 counters");
            return Err(map_error(collector, name)(
                std::io::Error::new(std::io::ErrorKind::InvalidData, why).into(),
            ));
        }
        Ok(SlotCounters {
            collector,
            name,
            map,
            fields,
            deltas: Deltas::default(),
        })
    }

    /// The cumulative counters of `slot`, summed over CPUs, in struct field order.
    pub(crate) fn totals(&self, slot: Slot) -> Result<Vec<u64>> {
        let per_cpu = self
            .map
            .lookup_percpu(&slot.to_ne_bytes(), MapFlags::ANY)
            .map_err(map_error(self.collector, self.name))?
            .unwrap_or_default();
        Ok(sum_u64_fields(per_cpu, self.fields))
    }

    /// The increase of each counter of `slot` since the last call for it (the first call
    /// reports everything counted so far), in struct field order.
    pub(crate) fn deltas(&mut self, slot: Slot) -> Result<Vec<u64>> {
        let totals = self.totals(slot)?;
        Ok(self.deltas.delta(slot, &totals))
    }

    /// Zeroes the counters of `slot` on every CPU, so a recycled slot starts from nothing.
    pub(crate) fn zero(&self, slot: Slot) -> Result<()> {
        let zeros = vec![vec![0u8; self.fields * 8]; libbpf_rs::num_possible_cpus().unwrap_or(1)];
        self.map
            .update_percpu(&slot.to_ne_bytes(), &zeros, MapFlags::ANY)
            .map_err(map_error(self.collector, self.name))
    }

    /// Forgets `slot`, which is being recycled, and zeroes its counters.
    pub(crate) fn reset(&mut self, slot: Slot) -> Result<()> {
        self.deltas.forget(slot);
        self.zero(slot)
    }
}

/// Sums per-CPU copies of a struct of u64 counters field by field (wrapping, like the kernel's
/// own additions); a copy shorter than `fields` counters adds nothing to the missing ones.
fn sum_u64_fields(per_cpu: impl IntoIterator<Item = impl AsRef<[u8]>>, fields: usize) -> Vec<u64> {
    let mut total = vec![0u64; fields];
    for value in per_cpu {
        for (sum, field) in total.iter_mut().zip(value.as_ref().chunks_exact(8)) {
            let bytes: [u8; 8] = field.try_into().unwrap_or_default();
            *sum = sum.wrapping_add(u64::from_ne_bytes(bytes));
        }
    }
    total
}

/// A collector's `drops` map (see `bpf/include/common.h`): per-slot, per-CPU loss counters.
#[derive(Debug)]
pub struct DropsMap {
    counters: SlotCounters,
}

impl DropsMap {
    /// Wraps the `drops` map of `collector`.
    pub(crate) fn new<'a, M>(collector: &'static str, map: &'a M) -> Result<Self>
    where
        MapHandle: TryFrom<&'a M, Error = libbpf_rs::Error>,
    {
        Ok(DropsMap {
            counters: SlotCounters::new(collector, "drops", map)?,
        })
    }

    /// The collector these counters belong to.
    pub fn collector(&self) -> &'static str {
        self.counters.collector
    }

    /// Cumulative losses of `slot`, summed over CPUs.
    pub fn read(&self, slot: Slot) -> Result<DropCounts> {
        // `struct drop_counts` field order.
        let totals = self.counters.totals(slot)?;
        let at = |i: usize| totals.get(i).copied().unwrap_or(0);
        Ok(DropCounts {
            ringbuf_full: at(0),
            map_full: at(1),
            throttled: at(2),
        })
    }

    /// Zeroes the counters of a slot that is being recycled.
    pub fn reset(&self, slot: Slot) -> Result<()> {
        self.counters.zero(slot)
    }
}

/// Deletes the entries of a de-duplication map (`KANARY_DEDUP_MAP` in `bpf/include/common.h`)
/// whose key belongs to `slot`: a recycled slot must not inherit the old container's
/// de-duplication state, or the new container's first events would be taken for repeats.
pub(crate) fn forget_slot<K: plain::Plain + Default>(
    map: &MapHandle,
    slot: Slot,
    key_slot: fn(&K) -> Slot,
    collector: &'static str,
    name: &'static str,
) -> Result<()> {
    let stale: Vec<Vec<u8>> = map
        .keys()
        .filter(|key| read_pod::<K>(key).is_some_and(|k| key_slot(&k) == slot))
        .collect();
    for key in stale {
        match map.delete(&key) {
            Ok(()) => {}
            // Evicted by the LRU meanwhile.
            Err(error) if error.kind() == libbpf_rs::ErrorKind::NotFound => {}
            Err(error) => return Err(map_error(collector, name)(error)),
        }
    }
    Ok(())
}

/// Per-slot previous values of cumulative kernel counters, turning them into interval deltas.
#[derive(Debug, Default)]
struct Deltas {
    previous: HashMap<Slot, Vec<u64>>,
}

impl Deltas {
    /// The increase of each counter since the last call for `slot` (the first call reports
    /// everything counted so far).
    fn delta(&mut self, slot: Slot, current: &[u64]) -> Vec<u64> {
        let previous = self
            .previous
            .entry(slot)
            .or_insert_with(|| vec![0; current.len()]);
        let delta = current
            .iter()
            .zip(previous.iter())
            .map(|(now, before)| now.saturating_sub(*before))
            .collect();
        previous.copy_from_slice(current);
        delta
    }

    /// Forgets a slot that is being recycled.
    fn forget(&mut self, slot: Slot) {
        self.previous.remove(&slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_count_increases_per_slot() {
        let mut deltas = Deltas::default();
        assert_eq!(deltas.delta(1, &[5, 0]), [5, 0]);
        assert_eq!(deltas.delta(1, &[7, 3]), [2, 3]);
        assert_eq!(deltas.delta(2, &[1, 1]), [1, 1]);
        deltas.forget(1);
        assert_eq!(deltas.delta(1, &[1, 0]), [1, 0]);
    }

    #[test]
    fn c_strings_stop_at_nul() {
        assert_eq!(c_string(b"/bin/sh\0garbage"), "/bin/sh");
        assert_eq!(c_string(b"full"), "full");
    }

    #[test]
    fn per_cpu_sums() {
        let cpu = |fields: [u64; 2]| fields.map(u64::to_ne_bytes).concat();
        assert_eq!(sum_u64_fields([cpu([1, 2]), cpu([3, 4])], 2), [4, 6]);
    }

    #[test]
    fn a_short_per_cpu_copy_adds_only_its_whole_fields() {
        let short = [7u64.to_ne_bytes().as_slice(), &[1, 2, 3]].concat();
        assert_eq!(sum_u64_fields([short], 3), [7, 0, 0]);
        assert_eq!(sum_u64_fields(Vec::<Vec<u8>>::new(), 2), [0, 0]);
    }
}
