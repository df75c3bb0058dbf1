//! `resources`: CPU, memory, block IO, pids and OOM kills per container, read from cgroupfs.
//!
//! No kernel program: the cgroup controllers already keep exact per-container figures, and
//! reading a few small files per container per interval costs nothing measurable.
//!
//! Where each figure lives is resolved once per container, in [`Collector::container_added`]:
//!
//! | figure        | cgroup v2 (controller enabled)  | cgroup v1 / hybrid host                              |
//! |---------------|---------------------------------|------------------------------------------------------|
//! | CPU time      | `cpu.stat` `usage_usec`         | `cpuacct.usage` (ns)                                 |
//! | memory in use | `memory.current` − `inactive_file` of `memory.stat` | `memory.usage_in_bytes` − `total_inactive_file` of `memory.stat` |
//! | memory limit  | `memory.max` (`max`: none)      | `memory.limit_in_bytes` (≥ 2^62: none)              |
//! | OOM kills     | `memory.events` `oom_kill`      | `memory.oom_control` `oom_kill`                      |
//! | block IO      | `io.stat` rbytes/wbytes/rios/wios, summed over devices | `blkio.throttle.io_service_bytes` / `io_serviced` Read and Write summed over devices, else `blkio.io_service_bytes_recursive` / `io_serviced_recursive` |
//! | pids          | `pids.current`                  | `pids.current`                                       |
//!
//! A controller counts as "v2" when it is listed in the container's `cgroup.controllers`;
//! otherwise its v1 mount point is taken from /proc/self/mountinfo and the container's path
//! (the same relative path as on v2, e.g. `/docker/<id>`) is looked up under it. When neither
//! has the CPU controller, the v2 core `cpu.stat` (always present on v2) is used.
//!
//! Memory in use follows `docker stats`: usage minus the inactive page cache, which the kernel
//! reclaims first, so a container that merely read large files does not look like it leaks.
//!
//! Block IO on v1 is accounted by blk-throttle, which recent kernels (6.x) only switch on for a
//! disk once some cgroup has a throttle rule on it (e.g. `docker run --device-write-bps`): until
//! then the v1 files list no device and IO reads as 0 — `docker stats` shows the same. cgroup v2
//! `io.stat` has no such condition. Buffered writes on v1 are written back by kernel threads
//! outside the container, so only direct IO and what the container flushes itself (fsync,
//! O_SYNC) is attributed there.
//!
//! Counters become interval deltas against the previous reading (the first reading after a
//! container is added is the baseline), gauges are reported as read. A file that is missing or
//! unreadable gives its figure 0 (`None` for the limit) and is logged once per container. Once a
//! container's cgroup is gone (the final pass when it stops) its section is left out: there is
//! nothing left to read.
//!
//! The host (`agent.include_host`) is the root cgroup `/`: on v1 its CPU, memory and IO figures
//! are the whole machine's, containers included, and v1 has no `pids.current` there (logged
//! once, reported as 0).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::time::Instant;

use kanary_model::stats::ResourceStats;

use crate::collector::{Collector, LoadContext, Loaded, Slot, StatsBatch, WatchedCgroup};
use crate::error::Result;

/// Collector name.
pub const NAME: &str = "resources";

/// A v1 memory limit at or above this is "no limit": the kernel reports its page-counter
/// maximum (9223372036854771712 on x86_64), and no machine has 4 EiB of memory.
const V1_UNLIMITED: u64 = 1 << 62;

/// Opens nothing in the kernel: finds the cgroup v1 controller mounts once.
pub fn load(ctx: &LoadContext<'_>) -> Result<Loaded> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_else(|error| {
        tracing::warn!(%error, "reading /proc/self/mountinfo failed: cgroup v1 controllers will not be found");
        String::new()
    });
    let collector = ResourcesCollector {
        cgroup2_mount: ctx.cgroup2_mount.to_path_buf(),
        v1: V1Mounts::parse(&mountinfo),
        containers: HashMap::new(),
    };
    Ok(Loaded {
        collector: Box::new(collector),
        streams: Vec::new(),
        drops: None,
    })
}

/// The loaded `resources` collector.
pub struct ResourcesCollector {
    cgroup2_mount: PathBuf,
    v1: V1Mounts,
    containers: HashMap<Slot, Tracked>,
}

/// One watched container.
#[derive(Debug)]
struct Tracked {
    /// Its path relative to the v2 mount, for log messages.
    path: String,
    /// Its v2 directory: when it is gone, so is the container.
    v2_dir: PathBuf,
    sources: Sources,
    /// Counters at the previous reading ([`Counters`] order).
    previous: [u64; COUNTERS],
    previous_at: Instant,
    /// Files already reported as unreadable.
    warned: HashSet<PathBuf>,
}

impl Collector for ResourcesCollector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn container_added(&mut self, cgroup: &WatchedCgroup<'_>) -> Result<()> {
        let relative = cgroup.path.trim_start_matches('/');
        let v2_dir = self.cgroup2_mount.join(relative);
        // No controllers file (root cgroup, or already gone) means no v2 controller.
        let controllers =
            std::fs::read_to_string(v2_dir.join("cgroup.controllers")).unwrap_or_default();
        let sources = resolve(&v2_dir, &controllers, &self.v1, relative);
        for figure in sources.unavailable() {
            tracing::warn!(
                container = cgroup.path,
                figure,
                "no cgroup controller for this figure on this host: reported as 0"
            );
        }
        // The baseline: a container that existed before the agent started reports what it uses
        // from now on, not its whole history in the first interval. A figure not readable yet
        // (a new container's v1 directories may still be being created) starts from 0.
        let mut previous = [0; COUNTERS];
        for (slot, value) in previous
            .iter_mut()
            .zip(sources.sample(&read_file, &mut Vec::new()).counters())
        {
            *slot = value.unwrap_or(0);
        }
        self.containers.insert(
            cgroup.slot,
            Tracked {
                path: cgroup.path.to_string(),
                v2_dir,
                sources,
                previous,
                previous_at: Instant::now(),
                warned: HashSet::new(),
            },
        );
        Ok(())
    }

    fn container_removed(&mut self, slot: Slot) -> Result<()> {
        self.containers.remove(&slot);
        Ok(())
    }

    fn collect(&mut self, batch: &mut StatsBatch) -> Result<()> {
        for (slot, stats) in batch.by_slot.iter_mut() {
            let Some(tracked) = self.containers.get_mut(slot) else {
                continue;
            };
            if !tracked.v2_dir.exists() {
                continue;
            }
            let mut problems = Vec::new();
            let sample = tracked.sources.sample(&read_file, &mut problems);
            for (file, problem) in problems {
                if tracked.warned.insert(file.clone()) {
                    tracing::warn!(
                        container = tracked.path,
                        file = %file.display(),
                        problem,
                        "resource figure not readable: reported as 0 (logged once per container)"
                    );
                }
            }
            let now = Instant::now();
            let elapsed = now.duration_since(tracked.previous_at).as_secs_f64();
            tracked.previous_at = now;
            let delta = deltas(&mut tracked.previous, &sample.counters());
            stats.resources = Some(ResourceStats {
                cpu_ns: delta[Counters::CpuNs as usize],
                cpu_percent: cpu_percent(delta[Counters::CpuNs as usize], elapsed),
                memory_bytes: sample.memory_bytes.unwrap_or(0),
                memory_limit_bytes: sample.memory_limit_bytes,
                io_read_bytes: delta[Counters::IoReadBytes as usize],
                io_write_bytes: delta[Counters::IoWriteBytes as usize],
                io_read_ops: delta[Counters::IoReadOps as usize],
                io_write_ops: delta[Counters::IoWriteOps as usize],
                pids: sample.pids.unwrap_or(0),
                oom_kills: delta[Counters::OomKills as usize],
            });
        }
        Ok(())
    }
}

fn read_file(path: &Path) -> std::io::Result<String> {
    std::fs::read_to_string(path)
}

/// The cumulative counters, in the order of [`Sample::counters`].
#[derive(Clone, Copy)]
enum Counters {
    CpuNs,
    IoReadBytes,
    IoWriteBytes,
    IoReadOps,
    IoWriteOps,
    OomKills,
}
const COUNTERS: usize = 6;

/// The increase of each counter since `previous`, updating it. A counter not read this time
/// reports 0 and keeps its previous value, so its next reading covers the gap.
fn deltas(previous: &mut [u64; COUNTERS], current: &[Option<u64>; COUNTERS]) -> [u64; COUNTERS] {
    let mut delta = [0; COUNTERS];
    for ((delta, previous), current) in delta.iter_mut().zip(previous.iter_mut()).zip(current) {
        if let Some(now) = *current {
            *delta = now.saturating_sub(*previous);
            *previous = now;
        }
    }
    delta
}

/// CPU time over wall time, as a percentage of one core.
fn cpu_percent(cpu_ns: u64, elapsed_s: f64) -> f64 {
    if elapsed_s > 0.0 {
        cpu_ns as f64 / elapsed_s / 1e9 * 100.0
    } else {
        0.0
    }
}

/// Mount points of the cgroup v1 controllers this collector reads.
#[derive(Debug, Clone, Default, PartialEq)]
struct V1Mounts {
    cpuacct: Option<PathBuf>,
    memory: Option<PathBuf>,
    blkio: Option<PathBuf>,
    pids: Option<PathBuf>,
}

impl V1Mounts {
    /// Finds each controller's mount in /proc/self/mountinfo: a `cgroup` file system whose
    /// super options name the controller (`cpu,cpuacct` co-mounts count for `cpuacct`).
    fn parse(mountinfo: &str) -> Self {
        let mut mounts = V1Mounts::default();
        for line in mountinfo.lines() {
            let Some((left, right)) = line.split_once(" - ") else {
                continue;
            };
            let mut right = right.split_whitespace();
            let (Some("cgroup"), Some(_source), Some(options)) =
                (right.next(), right.next(), right.next())
            else {
                continue;
            };
            let Some(point) = left.split_whitespace().nth(4) else {
                continue;
            };
            for option in options.split(',') {
                let slot = match option {
                    "cpuacct" => &mut mounts.cpuacct,
                    "memory" => &mut mounts.memory,
                    "blkio" => &mut mounts.blkio,
                    "pids" => &mut mounts.pids,
                    _ => continue,
                };
                // The first mount wins: a controller mounted twice shows the same hierarchy.
                slot.get_or_insert_with(|| PathBuf::from(unescape_mountinfo(point)));
            }
        }
        mounts
    }
}

/// Undoes mountinfo's octal escapes (`\040` for a space, `\011`, `\012`, `\134`).
fn unescape_mountinfo(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|digits| {
            digits
                .iter()
                .all(|d| (b'0'..=b'7').contains(d))
                .then(|| digits.iter().fold(0u32, |n, d| n * 8 + u32::from(d - b'0')))
        });
        match octal {
            Some(code) if bytes[i] == b'\\' && code <= 0xff => {
                out.push(code as u8);
                i += 4;
            }
            _ => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Where one container's CPU time is.
#[derive(Debug, Clone, PartialEq)]
enum CpuFile {
    /// v2 `cpu.stat`, `usage_usec`.
    V2Stat(PathBuf),
    /// v1 `cpuacct.usage`, nanoseconds.
    V1Usage(PathBuf),
}

/// Where one container's memory figures are.
#[derive(Debug, Clone, PartialEq)]
struct MemoryFiles {
    /// v1 layout (`total_inactive_file`, huge limit = none) rather than v2.
    v1: bool,
    usage: PathBuf,
    stat: PathBuf,
    limit: PathBuf,
    /// The file with the `oom_kill` line.
    oom: PathBuf,
}

/// Where one container's block IO counters are.
#[derive(Debug, Clone, PartialEq)]
enum IoFiles {
    /// v2 `io.stat`.
    V2(PathBuf),
    /// v1 (bytes, ops) file pairs, in order of preference: the first whose bytes file lists a
    /// device is used.
    V1(Vec<(PathBuf, PathBuf)>),
}

/// Where every figure of one container lives; `None` when this host has no such controller.
#[derive(Debug, Clone, PartialEq)]
struct Sources {
    cpu: Option<CpuFile>,
    memory: Option<MemoryFiles>,
    io: Option<IoFiles>,
    pids: Option<PathBuf>,
}

/// Decides where each figure of the container at `relative` (no leading `/`) lives, from its
/// v2 directory, that directory's `cgroup.controllers` and the v1 mounts.
fn resolve(v2_dir: &Path, controllers: &str, v1: &V1Mounts, relative: &str) -> Sources {
    let enabled: HashSet<&str> = controllers.split_whitespace().collect();
    let on_v2 = |controller: &str| enabled.contains(controller);
    let v1_dir = |mount: &Option<PathBuf>| mount.as_ref().map(|m| m.join(relative));

    let cpu = if on_v2("cpu") {
        Some(CpuFile::V2Stat(v2_dir.join("cpu.stat")))
    } else if let Some(dir) = v1_dir(&v1.cpuacct) {
        Some(CpuFile::V1Usage(dir.join("cpuacct.usage")))
    } else {
        // v2 keeps usage_usec in the core cpu.stat even without the cpu controller.
        Some(CpuFile::V2Stat(v2_dir.join("cpu.stat")))
    };
    let memory = if on_v2("memory") {
        Some(MemoryFiles {
            v1: false,
            usage: v2_dir.join("memory.current"),
            stat: v2_dir.join("memory.stat"),
            limit: v2_dir.join("memory.max"),
            oom: v2_dir.join("memory.events"),
        })
    } else {
        v1_dir(&v1.memory).map(|dir| MemoryFiles {
            v1: true,
            usage: dir.join("memory.usage_in_bytes"),
            stat: dir.join("memory.stat"),
            limit: dir.join("memory.limit_in_bytes"),
            oom: dir.join("memory.oom_control"),
        })
    };
    let io = if on_v2("io") {
        Some(IoFiles::V2(v2_dir.join("io.stat")))
    } else {
        v1_dir(&v1.blkio).map(|dir| {
            IoFiles::V1(vec![
                (
                    dir.join("blkio.throttle.io_service_bytes"),
                    dir.join("blkio.throttle.io_serviced"),
                ),
                (
                    dir.join("blkio.io_service_bytes_recursive"),
                    dir.join("blkio.io_serviced_recursive"),
                ),
            ])
        })
    };
    let pids = if on_v2("pids") {
        Some(v2_dir.join("pids.current"))
    } else {
        v1_dir(&v1.pids).map(|dir| dir.join("pids.current"))
    };
    Sources {
        cpu,
        memory,
        io,
        pids,
    }
}

/// One reading of every figure; `None` where the file could not be read.
#[derive(Debug, Clone, Default, PartialEq)]
struct Sample {
    cpu_ns: Option<u64>,
    memory_bytes: Option<u64>,
    memory_limit_bytes: Option<u64>,
    oom_kills: Option<u64>,
    io_bytes: Option<ReadWrite>,
    io_ops: Option<ReadWrite>,
    pids: Option<u64>,
}

impl Sample {
    /// The cumulative counters, in [`Counters`] order.
    fn counters(&self) -> [Option<u64>; COUNTERS] {
        [
            self.cpu_ns,
            self.io_bytes.map(|io| io.read),
            self.io_bytes.map(|io| io.write),
            self.io_ops.map(|io| io.read),
            self.io_ops.map(|io| io.write),
            self.oom_kills,
        ]
    }
}

/// A read and a write total.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct ReadWrite {
    read: u64,
    write: u64,
}

/// Something wrong with one file: its path and what.
type Problem = (PathBuf, String);

impl Sources {
    /// Names of the figures this host has no controller for.
    fn unavailable(&self) -> Vec<&'static str> {
        [
            ("cpu", self.cpu.is_none()),
            ("memory", self.memory.is_none()),
            ("io", self.io.is_none()),
            ("pids", self.pids.is_none()),
        ]
        .into_iter()
        .filter_map(|(name, missing)| missing.then_some(name))
        .collect()
    }

    /// Reads every figure through `read`, adding what could not be read to `problems`.
    fn sample(
        &self,
        read: &dyn Fn(&Path) -> std::io::Result<String>,
        problems: &mut Vec<Problem>,
    ) -> Sample {
        let cpu_ns = match &self.cpu {
            Some(CpuFile::V2Stat(path)) => read_parsed(read, path, problems, |text| {
                parse_keyed(text, "usage_usec").map(|us| us.saturating_mul(1000))
            }),
            Some(CpuFile::V1Usage(path)) => read_parsed(read, path, problems, parse_single),
            None => None,
        };
        let pids = self
            .pids
            .as_ref()
            .and_then(|path| read_parsed(read, path, problems, parse_single));
        let mut sample = Sample {
            cpu_ns,
            pids,
            ..Sample::default()
        };
        if let Some(memory) = &self.memory {
            let usage = read_parsed(read, &memory.usage, problems, parse_single);
            // memory.stat only refines the usage: without it the raw usage is reported.
            let stat = usage.and_then(|_| match read(&memory.stat) {
                Ok(text) => Some(text),
                Err(error) => {
                    problems.push((memory.stat.clone(), error.to_string()));
                    None
                }
            });
            sample.memory_bytes =
                usage.map(|usage| docker_memory_usage(usage, stat.as_deref(), memory.v1));
            sample.memory_limit_bytes = read_parsed(read, &memory.limit, problems, |text| {
                if memory.v1 {
                    parse_v1_limit(text)
                } else {
                    parse_v2_max(text)
                }
            })
            .flatten();
            sample.oom_kills = read_parsed(read, &memory.oom, problems, |text| {
                parse_keyed(text, "oom_kill")
            });
        }
        match &self.io {
            Some(IoFiles::V2(path)) => {
                if let Some(io) =
                    read_parsed(read, path, problems, |text| Some(parse_io_stat(text)))
                {
                    sample.io_bytes = Some(io.bytes);
                    sample.io_ops = Some(io.ops);
                }
            }
            Some(IoFiles::V1(pairs)) => {
                (sample.io_bytes, sample.io_ops) = sample_blkio(read, pairs, problems);
            }
            None => {}
        }
        sample
    }
}

/// Reads a file and parses it; a failure of either is a problem and `None`.
fn read_parsed<T>(
    read: &dyn Fn(&Path) -> std::io::Result<String>,
    path: &Path,
    problems: &mut Vec<Problem>,
    parse: impl FnOnce(&str) -> Option<T>,
) -> Option<T> {
    match read(path) {
        Ok(text) => {
            let parsed = parse(&text);
            if parsed.is_none() {
                problems.push((
                    path.to_path_buf(),
                    format!("unexpected content {:?}", text.trim()),
                ));
            }
            parsed
        }
        Err(error) => {
            problems.push((path.to_path_buf(), error.to_string()));
            None
        }
    }
}

/// v1 block IO from the first (bytes, ops) pair whose bytes file lists a device. When a file is
/// readable but lists no device (no IO accounted yet, or blk-throttle not active on any disk),
/// the counters are 0; when none is readable, that is a problem.
fn sample_blkio(
    read: &dyn Fn(&Path) -> std::io::Result<String>,
    pairs: &[(PathBuf, PathBuf)],
    problems: &mut Vec<Problem>,
) -> (Option<ReadWrite>, Option<ReadWrite>) {
    let mut readable = false;
    let mut first_error = None;
    for (bytes_path, ops_path) in pairs {
        match read(bytes_path) {
            Ok(text) => {
                readable = true;
                if let Some(bytes) = parse_blkio(&text) {
                    let ops = read_parsed(read, ops_path, problems, |text| {
                        Some(parse_blkio(text).unwrap_or_default())
                    });
                    return (Some(bytes), ops);
                }
            }
            Err(error) => {
                first_error.get_or_insert_with(|| (bytes_path.clone(), error.to_string()));
            }
        }
    }
    if readable {
        return (Some(ReadWrite::default()), Some(ReadWrite::default()));
    }
    problems.extend(first_error);
    (None, None)
}

/// A file holding one number (`cpuacct.usage`, `memory.current`, `pids.current`, ...).
fn parse_single(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// The value of `key` in a flat-keyed file of `key value` lines (`cpu.stat`, `memory.stat`,
/// `memory.events`, `memory.oom_control`).
fn parse_keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|line| {
        let mut fields = line.split_whitespace();
        (fields.next() == Some(key))
            .then(|| fields.next()?.parse().ok())
            .flatten()
    })
}

/// v1 `memory.limit_in_bytes`: `Some(None)` when unlimited.
fn parse_v1_limit(text: &str) -> Option<Option<u64>> {
    parse_single(text).map(|bytes| (bytes < V1_UNLIMITED).then_some(bytes))
}

/// v2 `memory.max`: `max` or a number of bytes.
fn parse_v2_max(text: &str) -> Option<Option<u64>> {
    match text.trim() {
        "max" => Some(None),
        other => other.parse().ok().map(Some),
    }
}

/// Memory in use as `docker stats` shows it: usage minus inactive file cache (v1:
/// `total_inactive_file`, which includes sub-cgroups like the usage does; v2: `inactive_file`).
/// Without `memory.stat`, or when the cache figure is not below the usage, the raw usage.
fn docker_memory_usage(usage: u64, stat: Option<&str>, v1: bool) -> u64 {
    let inactive_file = stat.and_then(|stat| {
        if v1 {
            parse_keyed(stat, "total_inactive_file").or_else(|| parse_keyed(stat, "inactive_file"))
        } else {
            parse_keyed(stat, "inactive_file")
        }
    });
    match inactive_file {
        Some(cache) if cache < usage => usage - cache,
        _ => usage,
    }
}

/// Block IO totals of a v2 `io.stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct IoTotals {
    bytes: ReadWrite,
    ops: ReadWrite,
}

/// v2 `io.stat`: one line per device, `MAJ:MIN rbytes=.. wbytes=.. rios=.. wios=.. dbytes=..
/// dios=..`, summed over devices. An empty file (no IO yet) is all zeros.
fn parse_io_stat(text: &str) -> IoTotals {
    let mut totals = IoTotals::default();
    for line in text.lines() {
        for (key, value) in line
            .split_whitespace()
            .skip(1)
            .filter_map(|field| field.split_once('='))
        {
            let Ok(value) = value.parse::<u64>() else {
                continue;
            };
            let total = match key {
                "rbytes" => &mut totals.bytes.read,
                "wbytes" => &mut totals.bytes.write,
                "rios" => &mut totals.ops.read,
                "wios" => &mut totals.ops.write,
                _ => continue,
            };
            *total = total.saturating_add(value);
        }
    }
    totals
}

/// v1 `blkio.*io_service_bytes*` / `blkio.*io_serviced*`: `MAJ:MIN Read N` and `MAJ:MIN Write N`
/// summed over devices (the `Sync`, `Async`, `Discard` and `Total` lines restate them). `None`
/// when no device is listed: the file then holds only `Total 0`.
fn parse_blkio(text: &str) -> Option<ReadWrite> {
    let mut totals = ReadWrite::default();
    let mut devices = false;
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let (Some(device), Some(op), Some(value)) = (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        if !device.contains(':') {
            continue;
        }
        devices = true;
        let Ok(value) = value.parse::<u64>() else {
            continue;
        };
        match op {
            "Read" => totals.read = totals.read.saturating_add(value),
            "Write" => totals.write = totals.write.saturating_add(value),
            _ => {}
        }
    }
    devices.then_some(totals)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "a7c4f4e24b8d5cd3b1326b6ad70639a1e867ab2f87328eabf18994aab9356585";

    /// This test bed's /proc/self/mountinfo (Debian 12, hybrid), plus a co-mounted cpu,cpuacct
    /// line as on systemd hosts (which must not lose to the plain cpu mount).
    const HYBRID_MOUNTINFO: &str = "\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

    const V2_CPU_STAT: &str = "\
usage_usec 13139561
user_usec 13097990
system_usec 41571
nice_usec 0
core_sched.force_idle_usec 0
nr_periods 0
nr_throttled 0
throttled_usec 0
nr_bursts 0
burst_usec 0
";

    const V2_MEMORY_STAT: &str = "\
anon 210243584
file 8388608
kernel 1179648
kernel_stack 49152
pagetables 528384
sock 0
shmem 0
file_mapped 3141632
file_dirty 0
file_writeback 0
inactive_anon 210231296
active_anon 12288
inactive_file 6291456
active_file 2097152
unevictable 0
slab_reclaimable 225672
slab_unreclaimable 262856
pgfault 52091
pgmajfault 12
";

    const V2_MEMORY_EVENTS: &str = "\
low 0
high 0
max 1043
oom 1
oom_kill 1
oom_group_kill 0
";

    const V2_IO_STAT: &str = "\
254:0 rbytes=1196032 wbytes=67108864 rios=41 wios=64 dbytes=0 dios=0
7:0 rbytes=8192 wbytes=0 rios=2 wios=0 dbytes=0 dios=0
";

    const V1_MEMORY_STAT: &str = "\
cache 1912832
rss 163840
rss_huge 0
shmem 0
mapped_file 1556480
dirty 0
writeback 0
swap 0
pgpgin 1269
pgpgout 762
pgfault 1166
pgmajfault 1
inactive_anon 155648
active_anon 8192
inactive_file 970752
active_file 942080
unevictable 0
hierarchical_memory_limit 67108864
hierarchical_memsw_limit 134217728
total_cache 1912832
total_rss 163840
total_inactive_anon 155648
total_active_anon 8192
total_inactive_file 1000000
total_active_file 942080
total_unevictable 0
";

    const V1_OOM_CONTROL: &str = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";

    const V1_IO_SERVICE_BYTES: &str = "\
254:0 Read 8192
254:0 Write 67108864
254:0 Sync 67117056
254:0 Async 0
254:0 Discard 0
254:0 Total 67117056
8:16 Read 4096
8:16 Write 1024
8:16 Sync 5120
8:16 Async 0
8:16 Discard 0
8:16 Total 5120
Total 67122176
";

    const V1_IO_SERVICED: &str = "\
254:0 Read 2
254:0 Write 64
254:0 Sync 66
254:0 Async 0
254:0 Discard 0
254:0 Total 66
Total 66
";

    /// blk-throttle not active on any disk (recent kernels without a throttle rule).
    const V1_BLKIO_EMPTY: &str = "Total 0\n";

    #[test]
    fn v1_mounts_come_from_cgroup_super_options() {
        let mounts = V1Mounts::parse(HYBRID_MOUNTINFO);
        assert_eq!(
            mounts,
            V1Mounts {
                cpuacct: Some("/sys/fs/cgroup/cpuacct".into()),
                memory: Some("/sys/fs/cgroup/memory".into()),
                blkio: Some("/sys/fs/cgroup/blkio".into()),
                pids: Some("/sys/fs/cgroup/pids".into()),
            }
        );
        let comounted = "25 24 0:22 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:9 - cgroup cgroup rw,cpu,cpuacct\n";
        assert_eq!(
            V1Mounts::parse(comounted).cpuacct,
            Some("/sys/fs/cgroup/cpu,cpuacct".into())
        );
        let unified =
            "30 1 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(V1Mounts::parse(unified), V1Mounts::default());
        let escaped = "40 31 0:37 / /mnt/my\\040cgroups rw - cgroup cgroup rw,memory\n";
        assert_eq!(
            V1Mounts::parse(escaped).memory,
            Some("/mnt/my cgroups".into())
        );
        assert_eq!(V1Mounts::parse("garbage\n\n- -\n"), V1Mounts::default());
    }

    #[test]
    fn hybrid_host_resolves_to_v1_files() {
        let v1 = V1Mounts::parse(HYBRID_MOUNTINFO);
        let relative = format!("docker/{ID}");
        let v2_dir = Path::new("/sys/fs/cgroup/unified").join(&relative);
        let sources = resolve(&v2_dir, "", &v1, &relative);
        assert_eq!(
            sources.cpu,
            Some(CpuFile::V1Usage(
                Path::new("/sys/fs/cgroup/cpuacct")
                    .join(&relative)
                    .join("cpuacct.usage")
            ))
        );
        let memory = sources.memory.clone().unwrap();
        assert!(memory.v1);
        assert_eq!(
            memory.usage,
            Path::new("/sys/fs/cgroup/memory")
                .join(&relative)
                .join("memory.usage_in_bytes")
        );
        assert_eq!(
            memory.oom,
            Path::new("/sys/fs/cgroup/memory")
                .join(&relative)
                .join("memory.oom_control")
        );
        assert!(
            matches!(&sources.io, Some(IoFiles::V1(pairs)) if pairs.len() == 2 && pairs[0].0.ends_with("blkio.throttle.io_service_bytes"))
        );
        assert_eq!(
            sources.pids,
            Some(
                Path::new("/sys/fs/cgroup/pids")
                    .join(&relative)
                    .join("pids.current")
            )
        );
        assert!(sources.unavailable().is_empty());
    }

    #[test]
    fn v2_controllers_win_and_missing_controllers_are_named() {
        let v2_dir = Path::new("/sys/fs/cgroup/system.slice/docker-x.scope");
        let sources = resolve(
            v2_dir,
            "cpuset cpu io memory hugetlb pids rdma misc\n",
            &V1Mounts::default(),
            "system.slice/docker-x.scope",
        );
        assert_eq!(sources.cpu, Some(CpuFile::V2Stat(v2_dir.join("cpu.stat"))));
        assert_eq!(sources.io, Some(IoFiles::V2(v2_dir.join("io.stat"))));
        assert_eq!(sources.pids, Some(v2_dir.join("pids.current")));
        let memory = sources.memory.unwrap();
        assert!(!memory.v1);
        assert_eq!(memory.limit, v2_dir.join("memory.max"));
        assert_eq!(memory.oom, v2_dir.join("memory.events"));

        // A v2 hierarchy with no controllers and no v1 mounts: only the core cpu.stat.
        let bare = resolve(v2_dir, "", &V1Mounts::default(), "x");
        assert_eq!(bare.cpu, Some(CpuFile::V2Stat(v2_dir.join("cpu.stat"))));
        assert_eq!(bare.unavailable(), ["memory", "io", "pids"]);
    }

    /// An in-memory cgroupfs for [`Sources::sample`].
    fn fake_fs(files: &[(&Path, &str)]) -> impl Fn(&Path) -> std::io::Result<String> {
        let files: HashMap<PathBuf, String> = files
            .iter()
            .map(|(path, text)| (path.to_path_buf(), text.to_string()))
            .collect();
        move |path: &Path| {
            files.get(path).cloned().ok_or_else(|| {
                std::io::Error::new(std::io::ErrorKind::NotFound, "No such file or directory")
            })
        }
    }

    #[test]
    fn samples_a_v2_container() {
        let dir = Path::new("/cg/c");
        let sources = resolve(dir, "cpu io memory pids", &V1Mounts::default(), "c");
        let read = fake_fs(&[
            (&dir.join("cpu.stat"), V2_CPU_STAT),
            (&dir.join("memory.current"), "218103808\n"),
            (&dir.join("memory.stat"), V2_MEMORY_STAT),
            (&dir.join("memory.max"), "max\n"),
            (&dir.join("memory.events"), V2_MEMORY_EVENTS),
            (&dir.join("io.stat"), V2_IO_STAT),
            (&dir.join("pids.current"), "5\n"),
        ]);
        let mut problems = Vec::new();
        let sample = sources.sample(&read, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            sample,
            Sample {
                cpu_ns: Some(13_139_561_000),
                memory_bytes: Some(218_103_808 - 6_291_456),
                memory_limit_bytes: None,
                oom_kills: Some(1),
                io_bytes: Some(ReadWrite {
                    read: 1_196_032 + 8192,
                    write: 67_108_864
                }),
                io_ops: Some(ReadWrite {
                    read: 43,
                    write: 64
                }),
                pids: Some(5),
            }
        );
    }

    #[test]
    fn samples_a_v1_container() {
        let v1 = V1Mounts::parse(HYBRID_MOUNTINFO);
        let sources = resolve(Path::new("/unified/docker/x"), "", &v1, "docker/x");
        let at = |controller: &str, file: &str| {
            Path::new("/sys/fs/cgroup")
                .join(controller)
                .join("docker/x")
                .join(file)
        };
        let files = [
            (at("cpuacct", "cpuacct.usage"), "13132351103\n"),
            (at("memory", "memory.usage_in_bytes"), "2895872\n"),
            (at("memory", "memory.stat"), V1_MEMORY_STAT),
            (at("memory", "memory.limit_in_bytes"), "33554432\n"),
            (at("memory", "memory.oom_control"), V1_OOM_CONTROL),
            (
                at("blkio", "blkio.throttle.io_service_bytes"),
                V1_IO_SERVICE_BYTES,
            ),
            (at("blkio", "blkio.throttle.io_serviced"), V1_IO_SERVICED),
            (at("pids", "pids.current"), "3\n"),
        ];
        let file_refs: Vec<(&Path, &str)> = files.iter().map(|(p, t)| (p.as_path(), *t)).collect();
        let mut problems = Vec::new();
        let sample = sources.sample(&fake_fs(&file_refs), &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            sample,
            Sample {
                cpu_ns: Some(13_132_351_103),
                memory_bytes: Some(2_895_872 - 1_000_000),
                memory_limit_bytes: Some(33_554_432),
                oom_kills: Some(2),
                io_bytes: Some(ReadWrite {
                    read: 8192 + 4096,
                    write: 67_108_864 + 1024
                }),
                io_ops: Some(ReadWrite { read: 2, write: 64 }),
                pids: Some(3),
            }
        );
    }

    #[test]
    fn v1_blkio_falls_back_to_the_recursive_files_and_reads_empty_as_zero() {
        let pairs = vec![
            (PathBuf::from("/t/bytes"), PathBuf::from("/t/ops")),
            (PathBuf::from("/r/bytes"), PathBuf::from("/r/ops")),
        ];
        let mut problems = Vec::new();
        let both = fake_fs(&[
            (Path::new("/t/bytes"), V1_BLKIO_EMPTY),
            (Path::new("/t/ops"), V1_BLKIO_EMPTY),
            (Path::new("/r/bytes"), V1_IO_SERVICE_BYTES),
            (Path::new("/r/ops"), V1_IO_SERVICED),
        ]);
        let (bytes, ops) = sample_blkio(&both, &pairs, &mut problems);
        assert_eq!(bytes.unwrap().write, 67_108_864 + 1024);
        assert_eq!(ops.unwrap().write, 64);
        // Throttle files empty and no recursive files (no BFQ): nothing accounted, not an error.
        let throttle_only = fake_fs(&[
            (Path::new("/t/bytes"), V1_BLKIO_EMPTY),
            (Path::new("/t/ops"), V1_BLKIO_EMPTY),
        ]);
        let (bytes, ops) = sample_blkio(&throttle_only, &pairs, &mut problems);
        assert_eq!(bytes, Some(ReadWrite::default()));
        assert_eq!(ops, Some(ReadWrite::default()));
        assert!(problems.is_empty(), "{problems:?}");
        // Nothing readable: one problem, naming the preferred file.
        let (bytes, ops) = sample_blkio(&fake_fs(&[]), &pairs, &mut problems);
        assert_eq!((bytes, ops), (None, None));
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].0, Path::new("/t/bytes"));
    }

    #[test]
    fn missing_files_give_zero_figures_and_name_the_file() {
        let dir = Path::new("/cg/c");
        let sources = resolve(dir, "cpu io memory pids", &V1Mounts::default(), "c");
        // Only memory.current and a garbled pids.current.
        let read = fake_fs(&[
            (&dir.join("memory.current"), "4096\n"),
            (&dir.join("pids.current"), "lots\n"),
        ]);
        let mut problems = Vec::new();
        let sample = sources.sample(&read, &mut problems);
        assert_eq!(
            sample.memory_bytes,
            Some(4096),
            "raw usage without memory.stat"
        );
        assert_eq!(sample.cpu_ns, None);
        assert_eq!(sample.pids, None);
        assert_eq!(sample.memory_limit_bytes, None);
        let files: Vec<PathBuf> = problems.iter().map(|(file, _)| file.clone()).collect();
        for name in [
            "cpu.stat",
            "memory.stat",
            "memory.max",
            "memory.events",
            "io.stat",
            "pids.current",
        ] {
            assert!(
                files.contains(&dir.join(name)),
                "{name} not reported: {files:?}"
            );
        }
        let garbled = problems
            .iter()
            .find(|(file, _)| file.ends_with("pids.current"))
            .unwrap();
        assert!(garbled.1.contains("lots"), "{garbled:?}");
    }

    #[test]
    fn flat_keyed_and_single_value_files() {
        assert_eq!(parse_keyed(V2_CPU_STAT, "usage_usec"), Some(13_139_561));
        assert_eq!(parse_keyed(V2_MEMORY_EVENTS, "oom_kill"), Some(1));
        // "oom" must not match "oom_kill" or "oom_group_kill".
        assert_eq!(parse_keyed(V2_MEMORY_EVENTS, "oom"), Some(1));
        assert_eq!(parse_keyed(V1_OOM_CONTROL, "oom_kill"), Some(2));
        assert_eq!(
            parse_keyed("oom_kill_disable 0\nunder_oom 0\n", "oom_kill"),
            None
        );
        assert_eq!(parse_single("13132351103\n"), Some(13_132_351_103));
        assert_eq!(parse_single(""), None);
    }

    #[test]
    fn memory_limits() {
        assert_eq!(parse_v1_limit("9223372036854771712\n"), Some(None));
        assert_eq!(parse_v1_limit("33554432\n"), Some(Some(33_554_432)));
        assert_eq!(parse_v1_limit("-1\n"), None);
        assert_eq!(parse_v2_max("max\n"), Some(None));
        assert_eq!(parse_v2_max("67108864\n"), Some(Some(67_108_864)));
        assert_eq!(parse_v2_max("unlimited\n"), None);
    }

    #[test]
    fn memory_usage_follows_docker_stats() {
        // v1 subtracts the hierarchical total_inactive_file, not the local inactive_file.
        assert_eq!(
            docker_memory_usage(2_895_872, Some(V1_MEMORY_STAT), true),
            1_895_872
        );
        assert_eq!(
            docker_memory_usage(2_000_000, Some("inactive_file 500000\n"), true),
            1_500_000
        );
        assert_eq!(
            docker_memory_usage(218_103_808, Some(V2_MEMORY_STAT), false),
            218_103_808 - 6_291_456
        );
        // Cache not below the usage (racy reads): the raw usage, never an underflow.
        assert_eq!(
            docker_memory_usage(100, Some("inactive_file 4096\n"), false),
            100
        );
        assert_eq!(docker_memory_usage(100, None, false), 100);
    }

    #[test]
    fn io_files_sum_over_devices() {
        assert_eq!(
            parse_io_stat(V2_IO_STAT),
            IoTotals {
                bytes: ReadWrite {
                    read: 1_204_224,
                    write: 67_108_864
                },
                ops: ReadWrite {
                    read: 43,
                    write: 64
                },
            }
        );
        assert_eq!(parse_io_stat(""), IoTotals::default());
        assert_eq!(
            parse_blkio(V1_IO_SERVICE_BYTES),
            Some(ReadWrite {
                read: 12_288,
                write: 67_109_888
            })
        );
        assert_eq!(parse_blkio(V1_BLKIO_EMPTY), None);
    }

    #[test]
    fn counters_become_deltas_and_unread_counters_wait() {
        let mut previous = [0; COUNTERS];
        let first = deltas(
            &mut previous,
            &[Some(100), Some(5), None, None, None, Some(0)],
        );
        assert_eq!(first, [100, 5, 0, 0, 0, 0]);
        let second = deltas(
            &mut previous,
            &[None, Some(9), Some(3), None, None, Some(1)],
        );
        assert_eq!(second, [0, 4, 3, 0, 0, 1]);
        // CPU was unreadable for an interval: its next reading covers both.
        let third = deltas(
            &mut previous,
            &[Some(250), Some(9), Some(3), None, None, Some(1)],
        );
        assert_eq!(third, [150, 0, 0, 0, 0, 0]);
        // A counter that went backwards (reset) never underflows.
        let fourth = deltas(
            &mut previous,
            &[Some(10), Some(9), Some(3), None, None, Some(1)],
        );
        assert_eq!(fourth[0], 0);
    }

    #[test]
    fn cpu_percent_is_of_one_core() {
        assert_eq!(cpu_percent(500_000_000, 1.0), 50.0);
        assert_eq!(cpu_percent(4_000_000_000, 2.0), 200.0);
        assert_eq!(cpu_percent(1, 0.0), 0.0);
    }

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo("/a\\040b\\134c"), "/a b\\c");
        assert_eq!(unescape_mountinfo("/trailing\\04"), "/trailing\\04");
        assert_eq!(unescape_mountinfo("/plain"), "/plain");
    }
}
