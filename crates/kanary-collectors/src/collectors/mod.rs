//! The collectors, one module each, and the one list that registers them.

use crate::collector::{LoadContext, Loaded};
use crate::error::Result;

pub mod file;
pub mod network;
pub mod process;
pub mod resources;
pub mod security;
pub mod signals;
pub mod syscalls;
pub mod tracepoints;

/// A collector the agent can load.
pub struct CollectorEntry {
    /// Name as in `[collectors.<name>]`.
    pub name: &'static str,
    /// Whether the config turns it on.
    pub enabled: fn(&kanary_model::config::Config) -> bool,
    /// Opens, sizes, loads and attaches it.
    pub load: fn(&LoadContext<'_>) -> Result<Loaded>,
}

/// Every collector, in load order. Adding a collector adds one line here.
pub const COLLECTORS: &[CollectorEntry] = &[
    CollectorEntry {
        name: syscalls::NAME,
        enabled: |config| config.collectors.syscalls.enabled,
        load: syscalls::load,
    },
    CollectorEntry {
        name: process::NAME,
        enabled: |config| config.collectors.process.enabled,
        load: process::load,
    },
    CollectorEntry {
        name: file::NAME,
        enabled: |config| config.collectors.file.enabled,
        load: file::load,
    },
    CollectorEntry {
        name: network::NAME,
        enabled: |config| config.collectors.network.enabled,
        load: network::load,
    },
    CollectorEntry {
        name: security::NAME,
        enabled: |config| config.collectors.security.enabled,
        load: security::load,
    },
    CollectorEntry {
        name: signals::NAME,
        enabled: |config| config.collectors.signals.enabled,
        load: signals::load,
    },
    CollectorEntry {
        name: resources::NAME,
        enabled: |config| config.collectors.resources.enabled,
        load: resources::load,
    },
    CollectorEntry {
        name: tracepoints::NAME,
        enabled: tracepoints::enabled,
        load: tracepoints::load,
    },
];
