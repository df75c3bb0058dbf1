//! Per-container aggregates of one interval, as carried by `stats` records.
//!
//! Counters are deltas over the interval; gauges (memory, pids) are the value at its end.
//! Each section is `None` when its collector is off.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ngram;
use crate::syscalls;

/// Per-container aggregates of one interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ContainerStats {
    /// System call counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub syscalls: Option<SyscallStats>,
    /// Per-thread syscall n-grams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ngrams: Option<NgramStats>,
    /// Process lifecycle counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub process: Option<ProcessStats>,
    /// File activity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<FileStats>,
    /// Network activity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network: Option<NetworkStats>,
    /// CPU, memory, IO, pids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceStats>,
    /// Security-relevant syscalls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub security: Option<SecurityStats>,
    /// Fatal signals.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signals: Option<SignalStats>,
    /// Config-declared tracepoint counters by name.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tracepoints: BTreeMap<String, u64>,
    /// Losses by collector (only collectors that lost something).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub drops: BTreeMap<String, DropCounts>,
}

/// Events lost by one collector.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DropCounts {
    /// Events that found the ring buffer full.
    pub ringbuf_full: u64,
    /// Aggregation or de-duplication entries that found their kernel map full.
    pub map_full: u64,
    /// Events not streamed because their container was throttled to keep the agent within
    /// `agent.cpu_budget_percent` (its in-kernel aggregates were kept). Absent in records
    /// written before the field existed.
    #[serde(default)]
    pub throttled: u64,
}

impl DropCounts {
    /// Nothing was lost.
    pub fn is_zero(&self) -> bool {
        self.ringbuf_full == 0 && self.map_full == 0 && self.throttled == 0
    }

    /// The increase from `earlier` to `self` (kernel counters only grow).
    pub fn since(&self, earlier: &DropCounts) -> DropCounts {
        DropCounts {
            ringbuf_full: self.ringbuf_full.saturating_sub(earlier.ringbuf_full),
            map_full: self.map_full.saturating_sub(earlier.map_full),
            throttled: self.throttled.saturating_sub(earlier.throttled),
        }
    }

    /// Adds `other` to `self`.
    pub fn add(&mut self, other: &DropCounts) {
        self.ringbuf_full += other.ringbuf_full;
        self.map_full += other.map_full;
        self.throttled += other.throttled;
    }
}

/// System call counts of one interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SyscallStats {
    /// All syscalls.
    pub total: u64,
    /// How many different syscalls were made.
    pub distinct: u32,
    /// Count by syscall name: the `top_syscalls` most frequent (all when it is 0).
    pub counts: BTreeMap<String, u64>,
    /// Every non-zero count by syscall number, for feature extraction (not serialised).
    #[serde(skip)]
    pub by_number: Vec<(u32, u64)>,
}

impl SyscallStats {
    /// Builds the section from per-number counts, listing the `top` most frequent by name
    /// (all when `top` is 0).
    pub fn from_counts(by_number: Vec<(u32, u64)>, top: usize) -> Self {
        let total = by_number.iter().map(|(_, n)| n).sum();
        let mut ranked = by_number.clone();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        if top > 0 {
            ranked.truncate(top);
        }
        SyscallStats {
            total,
            distinct: by_number.len() as u32,
            counts: ranked
                .into_iter()
                .map(|(nr, n)| (syscalls::name_or_number(nr), n))
                .collect(),
            by_number,
        }
    }
}

/// One n-gram and its count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NgramCount {
    /// The syscalls, oldest first.
    pub seq: Vec<String>,
    /// How often a thread of the container made them in this order.
    pub count: u64,
}

/// n-gram counts of one interval.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct NgramStats {
    /// n-gram length.
    pub n: u32,
    /// All n-grams counted.
    pub total: u64,
    /// Distinct n-grams.
    pub distinct: u64,
    /// The most frequent ones.
    pub top: Vec<NgramCount>,
    /// Every packed n-gram with its count, for feature extraction (not serialised).
    #[serde(skip)]
    pub packed: Vec<(u64, u64)>,
}

impl NgramStats {
    /// Builds the section from packed n-gram counts, listing the `top` most frequent.
    pub fn from_counts(n: u32, packed: Vec<(u64, u64)>, top: usize) -> Self {
        let mut ranked: Vec<&(u64, u64)> = packed.iter().collect();
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        NgramStats {
            n,
            total: packed.iter().map(|(_, count)| count).sum(),
            distinct: packed.len() as u64,
            top: ranked
                .into_iter()
                .take(top)
                .map(|&(gram, count)| NgramCount {
                    seq: ngram::unpack(gram, n)
                        .into_iter()
                        .map(syscalls::name_or_number)
                        .collect(),
                    count,
                })
                .collect(),
            packed,
        }
    }
}

/// Process lifecycle counts of one interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessStats {
    /// Successful execs.
    pub execs: u64,
    /// New processes.
    pub forks: u64,
    /// New threads.
    pub threads: u64,
    /// Processes that exited.
    pub exits: u64,
}

/// File activity of one interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileStats {
    /// open/openat/openat2/creat calls that returned.
    pub opens: u64,
    /// Of those, how many failed.
    pub open_failures: u64,
    /// read-family calls (read, pread64, readv, preadv, preadv2) on any descriptor.
    pub reads: u64,
    /// write-family calls (write, pwrite64, writev, pwritev, pwritev2) on any descriptor.
    pub writes: u64,
    /// Bytes those reads returned.
    pub read_bytes: u64,
    /// Bytes those writes accepted.
    pub write_bytes: u64,
}

/// Network activity of one interval.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetworkStats {
    /// Bytes received (IP packets seen by the container's cgroup).
    pub rx_bytes: u64,
    /// Bytes sent.
    pub tx_bytes: u64,
    /// Packets received.
    pub rx_packets: u64,
    /// Packets sent.
    pub tx_packets: u64,
    /// Outbound TCP connections established and UDP sockets connected.
    pub connects: u64,
    /// Outbound TCP connections that failed.
    pub connect_failures: u64,
    /// Inbound TCP connections accepted.
    pub accepts: u64,
}

/// Resource use: counters over the interval, gauges at its end.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct ResourceStats {
    /// CPU time used in the interval, nanoseconds.
    pub cpu_ns: u64,
    /// The same as a percentage of one core.
    pub cpu_percent: f64,
    /// Memory in use now, bytes.
    pub memory_bytes: u64,
    /// Memory limit, bytes (`None`: unlimited).
    pub memory_limit_bytes: Option<u64>,
    /// Block IO bytes read in the interval.
    pub io_read_bytes: u64,
    /// Block IO bytes written in the interval.
    pub io_write_bytes: u64,
    /// Block IO read operations in the interval.
    pub io_read_ops: u64,
    /// Block IO write operations in the interval.
    pub io_write_ops: u64,
    /// Processes and threads now.
    pub pids: u64,
    /// OOM kills in the interval.
    pub oom_kills: u64,
}

/// Security-relevant syscalls of one interval.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityStats {
    /// Count by syscall name.
    pub counts: BTreeMap<String, u64>,
}

/// Fatal signals of one interval.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignalStats {
    /// Count by signal name.
    pub counts: BTreeMap<String, u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn syscall_stats_rank_and_name() {
        let stats = SyscallStats::from_counts(vec![(0, 5), (1, 9), (257, 2), (511, 1)], 2);
        assert_eq!(stats.total, 17);
        assert_eq!(stats.distinct, 4);
        assert_eq!(stats.counts.len(), 2);
        assert_eq!(stats.counts["write"], 9);
        assert_eq!(stats.counts["read"], 5);
        let all = SyscallStats::from_counts(vec![(0, 5), (511, 1)], 0);
        assert_eq!(all.counts["sys_511"], 1);
    }

    #[test]
    fn ngram_stats_unpack_the_top() {
        let packed = vec![(ngram::pack(&[0, 1, 3]), 7), (ngram::pack(&[257, 0, 3]), 2)];
        let stats = NgramStats::from_counts(3, packed, 1);
        assert_eq!(stats.total, 9);
        assert_eq!(stats.distinct, 2);
        assert_eq!(stats.top.len(), 1);
        assert_eq!(stats.top[0].seq, ["read", "write", "close"]);
    }

    #[test]
    fn drop_deltas_never_underflow() {
        let now = DropCounts {
            ringbuf_full: 5,
            map_full: 1,
            throttled: 9,
        };
        let before = DropCounts {
            ringbuf_full: 2,
            map_full: 3,
            throttled: 4,
        };
        assert_eq!(
            now.since(&before),
            DropCounts {
                ringbuf_full: 3,
                map_full: 0,
                throttled: 5,
            }
        );
    }

    #[test]
    fn throttled_drops_count_and_default_when_absent() {
        let only_throttled = DropCounts {
            throttled: 1,
            ..DropCounts::default()
        };
        assert!(!only_throttled.is_zero());
        let old: DropCounts =
            serde_json::from_str(r#"{"ringbuf_full": 1, "map_full": 2}"#).unwrap();
        assert_eq!(old.throttled, 0);
    }
}
