//! The container filter shared by every collector (`bpf/containers.bpf.c`).
//!
//! The kernel adds a cgroup to `watched_cgroups` the moment it is created, taking a slot from
//! the `free_slots` queue; the agent adds containers that existed before it started through
//! [`ContainerFilter::watch`], which takes slots from the same queue, so there is one allocator.

use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicU64, Ordering};

use kanary_model::config::Config;
use libbpf_rs::skel::{OpenSkel, Skel};
use libbpf_rs::{Link, MapCore, MapFlags, MapHandle, OpenMapMut};

use crate::collector::{CgroupEvent, EventStream, KernelEvent, Slot};
use crate::error::{load_error, map_error, Error, Result};
use crate::kernel::{attach_all, c_string, handle, open_skeleton, read_pod, size_maps, DropsMap};
use crate::skel::containers::{types, ContainersSkel, ContainersSkelBuilder};

const NAME: &str = "containers";
/// Flag of a sub-cgroup sharing its container's slot (`CONTAINER_F_CHILD`).
const FLAG_CHILD: u32 = 1;
/// Flag of a container in syscall trace mode (`CONTAINER_F_TRACE`).
const FLAG_TRACE: u32 = 2;
/// Flag of a container throttled to keep the agent within its CPU budget
/// (`CONTAINER_F_THROTTLED`).
const FLAG_THROTTLED: u32 = 4;
/// Sub-cgroups a container may create, on average, before the filter map is full.
const CGROUPS_PER_CONTAINER: u32 = 8;

// SAFETY: generated from the C struct, integers and byte arrays only: every bit pattern is valid.
unsafe impl plain::Plain for types::cgroup_event {}

/// The shared container filter and the cgroup lifecycle hooks that keep it.
///
/// Every change made here to `watched_cgroups` is followed by a bump of `filter_epoch`
/// ([`ContainerFilter::changed`]), which invalidates what the kernel cached from the filter; the
/// map handle is private so that nothing else writes it.
pub struct ContainerFilter {
    skel: ContainersSkel<'static>,
    watched: MapHandle,
    epoch: MapHandle,
    /// The last value written to `filter_epoch`; the agent is its only writer.
    epoch_value: AtomicU64,
    free_slots: MapHandle,
    _links: Vec<Link>,
}

impl ContainerFilter {
    /// Loads and attaches the cgroup hooks, and fills the slot queue with slots
    /// `1..=max_containers`.
    pub fn load(config: &Config) -> Result<Self> {
        let max = config.agent.max_containers;
        // 1. Open: parse the object; nothing is in the kernel yet. This object owns the
        //    filter every collector shares.
        let mut open = open_skeleton::<ContainersSkelBuilder>(NAME)?;
        // 2. Size the maps: the filter has room for sub-cgroups, the slot queue for every
        //    container, `drops` one entry per slot (the host's included).
        size_maps(
            NAME,
            [
                (
                    &mut open.maps.watched_cgroups,
                    max * CGROUPS_PER_CONTAINER + 1,
                ),
                (&mut open.maps.free_slots, max),
                (&mut open.maps.drops, max + 1),
            ],
        )?;
        // 3. Read-only tunables, fixed for the life of the program.
        if let Some(rodata) = open.maps.rodata_data.as_deref_mut() {
            rodata.targ_include_host = config.agent.include_host;
        }
        // 4. Load: the verifier runs here.
        let skel = open.load().map_err(load_error(NAME))?;
        // 5. Attach the cgroup mkdir and rmdir programs.
        let links = attach_all(skel.object(), NAME)?;
        // 6. Fill the slot queue.
        let watched = handle(&skel.maps.watched_cgroups, NAME, "watched_cgroups")?;
        let epoch = handle(&skel.maps.filter_epoch, NAME, "filter_epoch")?;
        let free_slots = handle(&skel.maps.free_slots, NAME, "free_slots")?;
        for slot in 1..=max {
            free_slots
                .update(&[], &slot.to_ne_bytes(), MapFlags::ANY)
                .map_err(map_error(NAME, "free_slots"))?;
        }
        Ok(ContainerFilter {
            skel,
            watched,
            epoch,
            epoch_value: AtomicU64::new(0),
            free_slots,
            _links: links,
        })
    }

    /// Makes another collector's copies of `watched_cgroups` and `filter_epoch` this filter's
    /// maps (before load).
    pub fn share(&self, watched: &mut OpenMapMut<'_>, epoch: &mut OpenMapMut<'_>) -> Result<()> {
        watched
            .reuse_fd(self.watched.as_fd())
            .map_err(load_error(NAME))?;
        epoch.reuse_fd(self.epoch.as_fd()).map_err(load_error(NAME))
    }

    /// Bumps `filter_epoch` after a change to `watched_cgroups`, so that the kernel looks the
    /// filter up again instead of using what it cached.
    fn changed(&self) -> Result<()> {
        let value = self.epoch_value.fetch_add(1, Ordering::Relaxed) + 1;
        self.epoch
            .update(&0u32.to_ne_bytes(), &value.to_ne_bytes(), MapFlags::ANY)
            .map_err(map_error(NAME, "filter_epoch"))
    }

    /// The filter map's file descriptor.
    pub fn watched_fd(&self) -> BorrowedFd<'_> {
        self.watched.as_fd()
    }

    /// The ring buffer of cgroup lifecycle events.
    pub fn event_stream(&self) -> Result<EventStream> {
        EventStream::new(NAME, &self.skel.maps.events, decode)
    }

    /// This filter's loss counters (slot 0 counts cgroups that found no free slot).
    pub fn drops(&self) -> Result<DropsMap> {
        DropsMap::new(NAME, &self.skel.maps.drops)
    }

    /// Watches a container cgroup found by the agent (one that existed before it started).
    ///
    /// A container created while the agent scans is watched by the kernel too: the insert only
    /// succeeds where no entry exists, and otherwise the kernel's slot is returned and the one
    /// taken here goes back, so one cgroup never holds two slots.
    pub fn watch(&self, cgroup_id: u64) -> Result<Slot> {
        let slot = self
            .free_slots
            .lookup_and_delete(&[])
            .map_err(map_error(NAME, "free_slots"))?
            .and_then(|bytes| read_pod::<u32>(&bytes))
            .ok_or(Error::SlotsExhausted)?;
        let entry = types::container_slot { slot, flags: 0 };
        // SAFETY: container_slot is two u32s with no padding.
        let value = unsafe { plain::as_bytes(&entry) };
        let key = cgroup_id.to_ne_bytes();
        match self.watched.update(&key, value, MapFlags::NO_EXIST) {
            Ok(()) => self.changed().map(|()| slot),
            Err(error) => {
                self.release(slot)?;
                let existing = self
                    .watched
                    .lookup(&key, MapFlags::ANY)
                    .map_err(map_error(NAME, "watched_cgroups"))?
                    .and_then(|bytes| read_pod::<types::container_slot>(&bytes));
                existing
                    .map(|entry| entry.slot)
                    .ok_or_else(|| map_error(NAME, "watched_cgroups")(error))
            }
        }
    }

    /// Watches a sub-cgroup of a watched container under the container's slot.
    pub fn watch_child(&self, cgroup_id: u64, slot: Slot) -> Result<()> {
        self.insert(cgroup_id, slot, FLAG_CHILD)
    }

    /// Turns syscall trace mode on or off for a watched container cgroup and its sub-cgroups.
    pub fn set_trace(&self, cgroup_id: u64, trace: bool) -> Result<()> {
        let Some(entry) = self.entry(cgroup_id)? else {
            return Ok(());
        };
        self.set_flag(entry.slot, FLAG_TRACE, trace).map(|_| ())
    }

    /// Throttles (or releases) every cgroup of the container in `slot`: while throttled its
    /// events are counted as `throttled` drops instead of being streamed; the kernel keeps its
    /// aggregates. Sub-cgroups created later inherit the flag in the kernel. Returns how many
    /// filter entries were changed (0: the container is gone, or the slot is the host's, which
    /// has no entry and cannot be throttled).
    pub fn set_throttled(&self, slot: Slot, throttled: bool) -> Result<usize> {
        self.set_flag(slot, FLAG_THROTTLED, throttled)
    }

    /// Sets or clears `flag` on every filter entry of `slot` (the container and its
    /// sub-cgroups); returns how many entries were changed.
    fn set_flag(&self, slot: Slot, flag: u32, on: bool) -> Result<usize> {
        // Collected first: rewriting a hash map's values while walking its keys is fine, but a
        // cgroup removed meanwhile must not be written back, hence EXIST below.
        let keys: Vec<Vec<u8>> = self.watched.keys().collect();
        let mut changed = 0;
        for key in keys {
            let Some(mut entry) = self
                .watched
                .lookup(&key, MapFlags::ANY)
                .map_err(map_error(NAME, "watched_cgroups"))?
                .and_then(|bytes| read_pod::<types::container_slot>(&bytes))
            else {
                continue;
            };
            if entry.slot != slot {
                continue;
            }
            let flags = if on {
                entry.flags | flag
            } else {
                entry.flags & !flag
            };
            if flags == entry.flags {
                continue;
            }
            entry.flags = flags;
            // SAFETY: container_slot is two u32s with no padding.
            let value = unsafe { plain::as_bytes(&entry) };
            match self.watched.update(&key, value, MapFlags::EXIST) {
                Ok(()) => {
                    self.changed()?;
                    changed += 1;
                }
                // Removed by cgroup_rmdir since the walk: nothing left to flag.
                Err(error) if error.kind() == libbpf_rs::ErrorKind::NotFound => {}
                Err(error) => return Err(map_error(NAME, "watched_cgroups")(error)),
            }
        }
        Ok(changed)
    }

    fn entry(&self, cgroup_id: u64) -> Result<Option<types::container_slot>> {
        Ok(self
            .watched
            .lookup(&cgroup_id.to_ne_bytes(), MapFlags::ANY)
            .map_err(map_error(NAME, "watched_cgroups"))?
            .and_then(|bytes| read_pod(&bytes)))
    }

    /// Stops watching a cgroup (a container the agent decided is not one, e.g. conmon).
    pub fn unwatch(&self, cgroup_id: u64) -> Result<()> {
        match self.watched.delete(&cgroup_id.to_ne_bytes()) {
            Ok(()) => self.changed(),
            Err(error) if error.kind() == libbpf_rs::ErrorKind::NotFound => Ok(()),
            Err(error) => Err(map_error(NAME, "watched_cgroups")(error)),
        }
    }

    /// Hands a slot back to the allocator once every collector has cleared it.
    pub fn release(&self, slot: Slot) -> Result<()> {
        self.free_slots
            .update(&[], &slot.to_ne_bytes(), MapFlags::ANY)
            .map_err(map_error(NAME, "free_slots"))
    }

    fn insert(&self, cgroup_id: u64, slot: Slot, flags: u32) -> Result<()> {
        self.write(cgroup_id, &types::container_slot { slot, flags })
    }

    fn write(&self, cgroup_id: u64, entry: &types::container_slot) -> Result<()> {
        // SAFETY: container_slot is two u32s with no padding.
        let value = unsafe { plain::as_bytes(entry) };
        self.watched
            .update(&cgroup_id.to_ne_bytes(), value, MapFlags::ANY)
            .map_err(map_error(NAME, "watched_cgroups"))?;
        self.changed()
    }
}

// SAFETY: two u32s: every bit pattern is valid.
unsafe impl plain::Plain for types::container_slot {}

fn decode(bytes: &[u8]) -> Option<KernelEvent> {
    let raw: types::cgroup_event = read_pod(bytes)?;
    let event = CgroupEvent {
        ts_boot_ns: raw.hdr.ts_boot_ns,
        cgroup_id: raw.hdr.cgroup_id,
        parent_cgroup_id: raw.parent_cgroup_id,
        slot: raw.hdr.slot,
        child: raw.flags & FLAG_CHILD != 0,
        slot_error: raw.slot_error != 0,
        path: c_string(&raw.path.map(|c| c as u8)),
    };
    match raw.hdr.kind {
        1 => Some(KernelEvent::CgroupCreated(event)),
        2 => Some(KernelEvent::CgroupRemoved(event)),
        _ => None,
    }
}
