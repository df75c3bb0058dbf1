//! Small mechanisms every collector loader shares: skeleton storage, decoding fixed-width
//! kernel structs, per-CPU slot arrays and the per-collector loss counters.

use std::mem::MaybeUninit;

use kanary_model::stats::DropCounts;
use libbpf_rs::{MapCore, MapFlags, MapHandle, OpenObject};

use crate::collector::Slot;
use crate::error::{map_error, Result};

/// Storage for one skeleton's object. Collectors live as long as the agent, so the storage is
/// leaked once per collector instead of threading a lifetime through every owner.
pub(crate) fn object_storage() -> &'static mut MaybeUninit<OpenObject> {
    Box::leak(Box::new(MaybeUninit::uninit()))
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

/// Reads one slot of a per-CPU array: one value per possible CPU.
pub(crate) fn read_percpu<T: plain::Plain + Default>(
    map: &MapHandle,
    slot: Slot,
    collector: &'static str,
    name: &'static str,
) -> Result<Vec<T>> {
    let values = map
        .lookup_percpu(&slot.to_ne_bytes(), MapFlags::ANY)
        .map_err(map_error(collector, name))?
        .unwrap_or_default();
    Ok(values.iter().filter_map(|bytes| read_pod(bytes)).collect())
}

/// Zeroes one slot of a per-CPU array on every CPU, so a recycled slot starts from nothing.
pub(crate) fn zero_percpu(
    map: &MapHandle,
    slot: Slot,
    collector: &'static str,
    name: &'static str,
) -> Result<()> {
    let zeros =
        vec![vec![0u8; map.value_size() as usize]; libbpf_rs::num_possible_cpus().unwrap_or(1)];
    map.update_percpu(&slot.to_ne_bytes(), &zeros, MapFlags::ANY)
        .map_err(map_error(collector, name))
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

/// A collector's `drops` map (see `bpf/include/common.h`): per-slot, per-CPU loss counters.
#[derive(Debug)]
pub struct DropsMap {
    collector: &'static str,
    map: MapHandle,
}

impl DropsMap {
    /// Wraps the `drops` map of `collector`.
    pub(crate) fn new<'a, M>(collector: &'static str, map: &'a M) -> Result<Self>
    where
        MapHandle: TryFrom<&'a M, Error = libbpf_rs::Error>,
    {
        Ok(DropsMap {
            collector,
            map: handle(map, collector, "drops")?,
        })
    }

    /// The collector these counters belong to.
    pub fn collector(&self) -> &'static str {
        self.collector
    }

    /// Cumulative losses of `slot`, summed over CPUs.
    pub fn read(&self, slot: Slot) -> Result<DropCounts> {
        let mut total = DropCounts::default();
        for bytes in self
            .map
            .lookup_percpu(&slot.to_ne_bytes(), MapFlags::ANY)
            .map_err(map_error(self.collector, "drops"))?
            .unwrap_or_default()
        {
            let field = |i: usize| {
                bytes
                    .get(i * 8..i * 8 + 8)
                    .map_or(0, |b| u64::from_ne_bytes(b.try_into().unwrap_or_default()))
            };
            total.add(&DropCounts {
                ringbuf_full: field(0),
                map_full: field(1),
            });
        }
        Ok(total)
    }

    /// Zeroes the counters of a slot that is being recycled.
    pub fn reset(&self, slot: Slot) -> Result<()> {
        zero_percpu(&self.map, slot, self.collector, "drops")
    }
}

/// Per-slot previous values of cumulative kernel counters, turning them into interval deltas.
#[derive(Debug, Default)]
pub(crate) struct Deltas {
    previous: std::collections::HashMap<Slot, Vec<u64>>,
}

impl Deltas {
    /// The increase of each counter since the last call for `slot` (the first call reports
    /// everything counted so far).
    pub(crate) fn delta(&mut self, slot: Slot, current: &[u64]) -> Vec<u64> {
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
    pub(crate) fn forget(&mut self, slot: Slot) {
        self.previous.remove(&slot);
    }
}

/// Sums per-CPU copies of a counter array element-wise.
pub(crate) fn sum_per_cpu<const N: usize>(per_cpu: impl IntoIterator<Item = [u64; N]>) -> Vec<u64> {
    let mut total = vec![0u64; N];
    for values in per_cpu {
        for (sum, value) in total.iter_mut().zip(values) {
            *sum = sum.wrapping_add(value);
        }
    }
    total
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
        assert_eq!(sum_per_cpu([[1, 2], [3, 4]]), [4, 6]);
    }
}
