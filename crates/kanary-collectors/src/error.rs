//! Errors of the collection layer.

use std::path::PathBuf;

/// Why a collector or the container filter could not do its job.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The kernel refused to load a collector's programs (verifier, missing BTF, privileges).
    #[error("collector {collector}: loading its eBPF programs failed: {source}")]
    Load {
        /// Collector name.
        collector: &'static str,
        /// libbpf's error.
        source: libbpf_rs::Error,
    },
    /// A program loaded but could not be attached to its hook.
    #[error("collector {collector}: attaching to {hook} failed: {source}")]
    Attach {
        /// Collector name.
        collector: &'static str,
        /// The hook, e.g. `tracepoint tcp:tcp_retransmit_skb`.
        hook: String,
        /// libbpf's error.
        source: libbpf_rs::Error,
    },
    /// A tracepoint declared in `[[collectors.tracepoint]]` does not exist on this kernel.
    #[error("collectors.tracepoint[{index}] ({name}): unknown tracepoint {tracepoint:?}: no {} on this kernel", path.display())]
    UnknownTracepoint {
        /// Position in the config list.
        index: usize,
        /// Counter name.
        name: String,
        /// The tracepoint as written.
        tracepoint: String,
        /// The tracefs directory that is missing.
        path: PathBuf,
    },
    /// Reading or writing a kernel map failed.
    #[error("collector {collector}: map {map}: {source}")]
    Map {
        /// Collector name.
        collector: &'static str,
        /// Map name.
        map: &'static str,
        /// libbpf's error.
        source: libbpf_rs::Error,
    },
    /// Every container slot is in use (`agent.max_containers`).
    #[error("no free container slot: agent.max_containers containers are already watched")]
    SlotsExhausted,
    /// A cgroup file or directory could not be read.
    #[error("{}: {source}", path.display())]
    Cgroup {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Result of the collection layer.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Adds the collector name to a libbpf error raised while opening, sizing or loading its object.
pub(crate) fn load_error(collector: &'static str) -> impl Fn(libbpf_rs::Error) -> Error {
    move |source| Error::Load { collector, source }
}

/// Adds the collector name and the hook to a libbpf error raised while attaching a program.
pub(crate) fn attach_error(
    collector: &'static str,
    hook: impl Into<String>,
) -> impl FnOnce(libbpf_rs::Error) -> Error {
    let hook = hook.into();
    move |source| Error::Attach {
        collector,
        hook,
        source,
    }
}

/// Adds the collector and map name to a libbpf map error.
pub(crate) fn map_error(
    collector: &'static str,
    map: &'static str,
) -> impl FnOnce(libbpf_rs::Error) -> Error {
    move |source| Error::Map {
        collector,
        map,
        source,
    }
}
