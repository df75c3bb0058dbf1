//! The collectors, one module each, and the one list that registers them.

use crate::collector::{LoadContext, Loaded};
use crate::error::Result;

pub mod syscalls;

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
pub const COLLECTORS: &[CollectorEntry] = &[CollectorEntry {
    name: syscalls::NAME,
    enabled: |config| config.collectors.syscalls.enabled,
    load: syscalls::load,
}];
