//! kanary's data model, free of eBPF and I/O so it is unit-tested without root.
//!
//! Everything the agent reads (its [`config`]) and everything it writes (its [`record`]s) is
//! defined here once; the collectors, the agent and later the detectors all share these types.
#![deny(missing_docs)]

pub mod cgroup;
pub mod config;
pub mod errno;
pub mod ngram;
pub mod record;
pub mod stats;
pub mod syscall_table;
pub mod syscalls;
