//! The agent's run loop: load the filter and the collectors, find the containers, then poll the
//! ring buffers and read the kernel aggregates every interval, writing records to the sink.
//!
//! One thread owns every kernel object; the loop never blocks longer than a poll timeout, so a
//! stop signal is honoured within a quarter second and a final `stats` record is always written.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context, Result};
use kanary_collectors::collector::{CgroupEvent, RecordEvent, WatchedCgroup};
use kanary_collectors::collectors::COLLECTORS;
use kanary_collectors::containers::ContainerFilter;
use kanary_collectors::kernel::DropsMap;
use kanary_collectors::{Collector, KernelEvent, LoadContext, Slot, StatsBatch};
use kanary_model::cgroup;
use kanary_model::config::Config;
use kanary_model::record::{
    self, AgentStart, ContainerStop, Drops, Record, RecordBody, Stats, SCHEMA_VERSION,
};
use kanary_model::stats::DropCounts;
use libbpf_rs::{RingBuffer, RingBufferBuilder};

use crate::budget::{self, Budget};
use crate::clock::BootClock;
use crate::detection::{Detection, Judged, Window};
use crate::enrich::DockerEnricher;
use crate::preflight::Host;
use crate::registry::{Container, Registry};
use crate::sinks::Sink;
use kanary_detect::activity::{Activity, FactLog};

/// Longest time the loop waits in one poll, so stop requests are seen promptly.
const MAX_POLL: Duration = Duration::from_millis(250);
/// After handling events, how long the agent lets the next ones gather before it polls again.
/// The kernel wakes a ring buffer's reader for the first record after the reader caught up, so
/// without this pause a steady trickle of events (containers running short commands in a loop)
/// woke the agent once per event: at ~6,500 events/s, most of its CPU went to context switches.
/// Events wait at most this long; the first after a quiet spell is handled at once.
const EVENT_BATCH_WINDOW: Duration = Duration::from_millis(20);
/// How deep the start-up scan walks the cgroup tree (Kubernetes nests pods four levels down).
const MAX_SCAN_DEPTH: usize = 8;

/// The running agent.
pub struct Agent {
    config: Config,
    cgroup2_mount: PathBuf,
    filter: ContainerFilter,
    collectors: Vec<Box<dyn Collector>>,
    /// Loss counters of the filter and of each collector, with their last read per slot.
    drops: Vec<(DropsMap, HashMap<Slot, DropCounts>)>,
    registry: Registry,
    enricher: Option<DockerEnricher>,
    sink: Box<dyn Sink>,
    queue: Rc<RefCell<Vec<KernelEvent>>>,
    undecodable: Rc<Cell<u64>>,
    ring: RingBuffer<'static>,
    /// Records whose slot had no container yet (its cgroup event not handled): retried once.
    unattributed: Vec<RecordEvent>,
    clock: BootClock,
    last_tick: Instant,
    /// Live detection over the stats windows, when enabled and possible.
    detection: Option<Detection>,
    /// The facts of each container's records since its last window (only with detection).
    facts: HashMap<Slot, FactLog>,
    /// The CPU budget controller (`agent.cpu_budget_percent`; none when it is 0).
    budget: Option<Budget>,
}

impl Agent {
    /// Loads everything and writes `agent_start` and a `container_start` per running container.
    /// Baselines are kept under `data_dir`.
    pub fn start(config: Config, host: Host, sink: Box<dyn Sink>, data_dir: &Path) -> Result<Self> {
        // Classic tracepoints attach by name through tracefs, which some hosts only mount on demand.
        if let Err(error) = kanary_collectors::tracefs::ensure_mounted() {
            tracing::warn!(%error, "tracefs is not mounted and could not be mounted: collectors on classic tracepoints will not load");
        }
        let filter = ContainerFilter::load(&config).context("loading the container filter")?;
        let ctx = LoadContext {
            config: &config,
            filter: &filter,
            slots: config.agent.max_containers + 1,
            cgroup2_mount: &host.cgroup2_mount,
            syscall_dispatch: Default::default(),
        };
        let queue: Rc<RefCell<Vec<KernelEvent>>> = Rc::default();
        let undecodable: Rc<Cell<u64>> = Rc::default();
        let mut builder = RingBufferBuilder::new();
        let mut stream_maps = Vec::new();
        let mut decoders = Vec::new();
        let filter_stream = filter.event_stream()?;
        stream_maps.push(filter_stream.map);
        decoders.push(filter_stream.decode);
        let mut collectors = Vec::new();
        let mut drops = vec![(filter.drops()?, HashMap::new())];
        let mut loaded_names = Vec::new();
        let mut failed = BTreeMap::new();
        for entry in COLLECTORS.iter().filter(|entry| (entry.enabled)(&config)) {
            match (entry.load)(&ctx) {
                Ok(loaded) => {
                    for stream in loaded.streams {
                        stream_maps.push(stream.map);
                        decoders.push(stream.decode);
                    }
                    if let Some(map) = loaded.drops {
                        drops.push((map, HashMap::new()));
                    }
                    loaded_names.push(entry.name.to_string());
                    collectors.push(loaded.collector);
                }
                // A config the kernel cannot honour is the user's to fix: stop with its message.
                Err(error @ kanary_collectors::Error::UnknownTracepoint { .. }) => {
                    return Err(error.into())
                }
                Err(error) => {
                    tracing::warn!(collector = entry.name, %error, "collector not loaded; running without it");
                    failed.insert(entry.name.to_string(), error.to_string());
                }
            }
        }
        for (map, mut decode) in stream_maps.iter().zip(decoders) {
            let queue = Rc::clone(&queue);
            let undecodable = Rc::clone(&undecodable);
            builder
                .add(map, move |bytes: &[u8]| {
                    match decode(bytes) {
                        Some(event) => queue.borrow_mut().push(event),
                        None => undecodable.set(undecodable.get() + 1),
                    }
                    0
                })
                .context("adding a ring buffer")?;
        }
        let ring = builder.build().context("building the ring buffer poller")?;
        let enricher = DockerEnricher::new(&config.docker);
        let detection = detection_for(&config, &loaded_names, data_dir)?;
        let mut agent = Agent {
            cgroup2_mount: host.cgroup2_mount,
            filter,
            collectors,
            drops,
            registry: Registry::default(),
            enricher,
            sink,
            queue,
            undecodable,
            ring,
            unattributed: Vec::new(),
            clock: BootClock::now(),
            last_tick: Instant::now(),
            detection,
            facts: HashMap::new(),
            budget: None,
            config,
        };
        agent.emit(
            SystemTime::now(),
            RecordBody::AgentStart(AgentStart {
                version: env!("CARGO_PKG_VERSION").to_string(),
                schema_version: SCHEMA_VERSION,
                collectors: loaded_names,
                failed_collectors: failed,
                config: serde_json::to_value(&agent.config).unwrap_or_default(),
            }),
        );
        if agent.config.agent.include_host {
            agent.add_container(Container::host(), true, SystemTime::now());
        }
        agent.scan_existing();
        agent.sink.flush().context("writing records")?;
        // Start-up (loading, verifying, scanning) is not charged to the first interval.
        agent.budget = Budget::new(
            agent.config.agent.cpu_budget_percent,
            budget::process_cpu_seconds(),
        );
        Ok(agent)
    }

    /// Runs until `stop` is set, then writes the last interval's stats.
    pub fn run(mut self, stop: Arc<AtomicBool>) -> Result<()> {
        let interval = self.config.agent.interval;
        while !stop.load(Ordering::Relaxed) {
            let until_tick = interval.saturating_sub(self.last_tick.elapsed());
            if let Err(error) = self.ring.poll(until_tick.min(MAX_POLL)) {
                if error.kind() != libbpf_rs::ErrorKind::Interrupted {
                    return Err(error).context("polling ring buffers");
                }
            }
            let handled = self.handle_events();
            if self.last_tick.elapsed() >= interval {
                self.tick();
            }
            self.sink.flush().context("writing records")?;
            if handled {
                let until_tick = interval.saturating_sub(self.last_tick.elapsed());
                std::thread::sleep(EVENT_BATCH_WINDOW.min(until_tick));
            }
        }
        self.ring.consume().ok();
        self.handle_events();
        self.tick();
        if let Some(detection) = &mut self.detection {
            detection.shutdown();
        }
        self.sink.flush().context("writing records")?;
        Ok(())
    }

    /// Finds containers that were running before the agent started.
    fn scan_existing(&mut self) {
        let root = self.cgroup2_mount.clone();
        let mut stack = vec![(root.clone(), 0usize, None::<Slot>)];
        while let Some((dir, depth, parent_slot)) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if !entry.file_type().is_ok_and(|t| t.is_dir()) {
                    continue;
                }
                let Some(cgroup_id) = cgroup_id_of(&path) else {
                    continue;
                };
                let relative = format!("/{}", path.strip_prefix(&root).unwrap_or(&path).display());
                let slot = match parent_slot {
                    Some(slot) => {
                        if let Err(error) = self.filter.watch_child(cgroup_id, slot) {
                            tracing::warn!(%error, relative, "sub-cgroup not watched");
                        }
                        Some(slot)
                    }
                    None => cgroup::classify(&relative).and_then(|found| {
                        if self.registry.has_cgroup(cgroup_id) {
                            return None;
                        }
                        let slot = self
                            .filter
                            .watch(cgroup_id)
                            .map_err(
                                |error| tracing::warn!(%error, relative, "container not watched"),
                            )
                            .ok()?;
                        let container = self.new_container(slot, cgroup_id, &relative, found);
                        self.add_container(container, true, SystemTime::now());
                        Some(slot)
                    }),
                };
                if depth + 1 < MAX_SCAN_DEPTH {
                    stack.push((path, depth + 1, slot));
                }
            }
        }
    }

    fn new_container(
        &self,
        slot: Slot,
        cgroup_id: u64,
        path: &str,
        found: cgroup::CgroupContainer,
    ) -> Container {
        let enrichment = match (&self.enricher, found.runtime) {
            (Some(docker), cgroup::Runtime::Docker) => docker.inspect(&found.id),
            _ => None,
        };
        Container::new(slot, cgroup_id, path, found, enrichment)
    }

    /// Registers a container, tells the collectors and writes `container_start`.
    fn add_container(&mut self, mut container: Container, existing: bool, ts: SystemTime) {
        container.existing = existing;
        let watched = WatchedCgroup {
            slot: container.slot,
            cgroup_id: container.cgroup_id,
            path: &container.cgroup_path,
        };
        for collector in &mut self.collectors {
            if let Err(error) = collector.container_added(&watched) {
                tracing::warn!(collector = collector.name(), %error, container = container.reference.name, "collector could not follow the container");
            }
        }
        let trace = self
            .config
            .collectors
            .syscalls
            .trace_containers
            .iter()
            .any(|pattern| container.matches(pattern));
        if trace {
            if let Err(error) = self.filter.set_trace(container.cgroup_id, true) {
                tracing::warn!(%error, container = container.reference.name, "trace mode not enabled");
            }
        }
        tracing::info!(
            container = container.reference.name,
            id = container.reference.id,
            slot = container.slot,
            "watching container"
        );
        let start = container.start_record(existing);
        if self.registry.insert(container) {
            self.emit(ts, RecordBody::ContainerStart(start));
        }
    }

    /// Handles the queued events; false when there were none.
    fn handle_events(&mut self) -> bool {
        let events = std::mem::take(&mut *self.queue.borrow_mut());
        let handled = !events.is_empty();
        let mut records = Vec::new();
        let mut removals = Vec::new();
        // Creations first, so a new container's first records find it registered; removals
        // last, so a container's last records (its final exits) are still attributed to it.
        for event in events {
            match event {
                KernelEvent::CgroupCreated(created) => self.cgroup_created(created),
                KernelEvent::CgroupRemoved(removed) => removals.push(removed),
                KernelEvent::Record(record) => records.push(record),
            }
        }
        for event in std::mem::take(&mut self.unattributed) {
            self.record(event, false);
        }
        for event in records {
            if let Some(budget) = &mut self.budget {
                budget.record(event.slot);
            }
            self.record(event, true);
        }
        for removed in removals {
            self.cgroup_removed(removed);
        }
        let undecodable = self.undecodable.replace(0);
        if undecodable > 0 {
            tracing::warn!(
                undecodable,
                "ring-buffer records of unknown layout were skipped"
            );
        }
        handled
    }

    fn cgroup_created(&mut self, event: CgroupEvent) {
        // The start-up scan may have registered it already (created while the agent scanned).
        if self.registry.has_cgroup(event.cgroup_id) {
            return;
        }
        if event.slot_error {
            tracing::warn!(
                path = event.path,
                "container cgroup not watched: no free slot (raise agent.max_containers)"
            );
            return;
        }
        if event.child {
            return;
        }
        let Some(found) = cgroup::classify(&event.path) else {
            // Looked like a container to the kernel's quick test (e.g. conmon): give the slot back.
            self.filter.unwatch(event.cgroup_id).ok();
            self.filter.release(event.slot).ok();
            return;
        };
        let container = self.new_container(event.slot, event.cgroup_id, &event.path, found);
        let ts = self.clock.wall(event.ts_boot_ns);
        self.add_container(container, false, ts);
    }

    fn cgroup_removed(&mut self, event: CgroupEvent) {
        let own = self
            .registry
            .get(event.slot)
            .is_some_and(|c| c.cgroup_id == event.cgroup_id);
        if event.child || !own {
            return;
        }
        let ts = self.clock.wall(event.ts_boot_ns);
        self.collect_stats(vec![event.slot]);
        let Some(container) = self.registry.remove(event.slot) else {
            return;
        };
        self.facts.remove(&event.slot);
        if let Some(ended) = self.budget.as_mut().and_then(|b| b.forget(event.slot, ts)) {
            self.emit(ts, ended);
        }
        let ended = self
            .detection
            .as_mut()
            .map(|d| d.container_stopped(&container.reference.id))
            .unwrap_or_default();
        for alert in ended {
            self.emit(ts, alert);
        }
        self.emit(
            ts,
            RecordBody::ContainerStop(ContainerStop {
                container: container.reference.clone(),
                cgroup_id: container.cgroup_id,
                watched_s: container.since.elapsed().as_secs_f64(),
            }),
        );
        for collector in &mut self.collectors {
            if let Err(error) = collector.container_removed(event.slot) {
                tracing::warn!(collector = collector.name(), %error, "per-container state not cleared");
            }
        }
        for (map, last) in &mut self.drops {
            map.reset(event.slot).ok();
            last.remove(&event.slot);
        }
        if let Err(error) = self.filter.release(event.slot) {
            tracing::warn!(%error, slot = event.slot, "slot not recycled");
        }
        tracing::info!(container = container.reference.name, "container stopped");
    }

    fn record(&mut self, mut event: RecordEvent, retry: bool) {
        let Some(container) = self.registry.get(event.slot) else {
            if retry {
                self.unattributed.push(event);
                return;
            }
            let id = format!("cgroup-{}", event.cgroup_id);
            if let Some(reference) = event.body.container_mut() {
                reference.name = id.clone();
                reference.id = id;
            }
            let ts = self.clock.wall(event.ts_boot_ns);
            self.emit(ts, event.body);
            return;
        };
        if let Some(reference) = event.body.container_mut() {
            *reference = container.reference.clone();
        }
        if let RecordBody::Connect(connection) | RecordBody::Accept(connection) = &mut event.body {
            connection.peer = self.registry.peer_of(&connection.dst_addr);
        }
        if self.detection.is_some() {
            if let Some((activity, count)) = Activity::from_record(&event.body) {
                self.facts
                    .entry(event.slot)
                    .or_default()
                    .push(activity, count);
            }
        }
        let ts = self.clock.wall(event.ts_boot_ns);
        self.emit(ts, event.body);
    }

    /// The periodic pass: refresh the clock offset and late enrichment, then write stats.
    fn tick(&mut self) {
        self.clock = BootClock::now();
        if let Some(docker) = &self.enricher {
            for (slot, id) in self.registry.take_address_retries() {
                if let Some(found) = docker.inspect(&id).filter(|e| !e.addresses.is_empty()) {
                    self.registry.set_addresses(slot, found.addresses);
                }
            }
        }
        let slots: Vec<Slot> = self.registry.slots().collect();
        let interval_s = self.last_tick.elapsed().as_secs_f64();
        self.collect_stats(slots);
        self.enforce_budget(interval_s);
        self.last_tick = Instant::now();
    }

    /// Ends the budget's interval: throttles or releases containers and reports it.
    fn enforce_budget(&mut self, interval_s: f64) {
        let Some(budget) = &mut self.budget else {
            return;
        };
        let now = SystemTime::now();
        let mut out = Vec::new();
        for decision in budget.interval(interval_s, budget::process_cpu_seconds()) {
            let Some(container) = self.registry.get(decision.slot) else {
                budget.cancel(decision.slot);
                continue;
            };
            match self.filter.set_throttled(decision.slot, decision.throttle) {
                Ok(changed) if changed > 0 => {
                    let action = if decision.throttle {
                        "throttled"
                    } else {
                        "released"
                    };
                    tracing::warn!(
                        container = container.reference.name,
                        records_per_s = decision.records_per_s,
                        agent_cpu_percent = decision.agent_cpu_percent,
                        "cpu budget: container event stream {action}"
                    );
                    out.extend(budget.report(
                        &decision,
                        &container.reference,
                        container.enrichment.image_id.as_deref(),
                        now,
                    ));
                }
                // Its cgroups are gone (it is stopping): nothing to throttle.
                Ok(_) => budget.cancel(decision.slot),
                Err(error) => {
                    tracing::warn!(%error, slot = decision.slot, "cpu budget decision not applied");
                    budget.cancel(decision.slot);
                }
            }
        }
        for body in out {
            if let (RecordBody::Alert(alert), Some(detection)) = (&body, &mut self.detection) {
                detection.store_alert(alert);
            }
            self.emit(now, body);
        }
    }

    /// Reads every collector's aggregates for `slots` and writes their `stats` and `drops`.
    fn collect_stats(&mut self, slots: Vec<Slot>) {
        let mut batch = StatsBatch::new(slots, self.last_tick.elapsed().as_secs_f64());
        for collector in &mut self.collectors {
            if let Err(error) = collector.collect(&mut batch) {
                tracing::warn!(collector = collector.name(), %error, "stats not read");
            }
        }
        let now = SystemTime::now();
        let mut drop_records = Vec::new();
        let slots: Vec<Slot> = batch.by_slot.keys().copied().collect();
        for (map, last) in &mut self.drops {
            // The filter counts cgroups it could not watch under the host slot.
            let host_slot = [0].into_iter().filter(|_| map.collector() == "containers");
            for slot in slots.iter().copied().chain(host_slot) {
                let Ok(total) = map.read(slot) else { continue };
                let delta = total.since(last.get(&slot).unwrap_or(&DropCounts::default()));
                last.insert(slot, total);
                if let Some(budget) = &mut self.budget {
                    budget.withheld(slot, delta.throttled);
                }
                if delta.is_zero() {
                    continue;
                }
                if let Some(stats) = batch.by_slot.get_mut(&slot) {
                    stats.drops.insert(map.collector().to_string(), delta);
                }
                drop_records.push((map.collector().to_string(), slot, delta));
            }
        }
        for (collector, slot, counts) in drop_records {
            let container = self.registry.get(slot).map(|c| c.reference.clone());
            if counts.ringbuf_full == 0 && counts.map_full == 0 {
                // Only withheld from a throttled container: its `degraded` record said so.
                tracing::debug!(collector, ?container, ?counts, "events throttled");
            } else {
                tracing::warn!(collector, ?container, ?counts, "events lost");
            }
            self.emit(
                now,
                RecordBody::Drops(Drops {
                    collector,
                    container,
                    counts,
                }),
            );
        }
        let mut verdicts = match &mut self.detection {
            Some(detection) => {
                let windows: Vec<Window<'_>> = batch
                    .by_slot
                    .iter()
                    .filter_map(|(slot, stats)| {
                        let container = self.registry.get(*slot)?;
                        let facts = self
                            .facts
                            .get_mut(slot)
                            .map(FactLog::take)
                            .unwrap_or_default();
                        Some(Window {
                            container: &container.reference,
                            image_id: container.enrichment.image_id.as_deref(),
                            stats,
                            interval_s: batch.interval_s,
                            facts,
                            started_under_agent: !container.existing,
                        })
                    })
                    .collect();
                detection.interval(windows, now)
            }
            None => Judged::default(),
        };
        for (slot, stats) in batch.by_slot {
            let Some(container) = self.registry.get(slot) else {
                continue;
            };
            let body = RecordBody::Stats(Stats {
                container: container.reference.clone(),
                interval_s: batch.interval_s,
                stats,
                scores: verdicts
                    .scores
                    .remove(&container.reference.id)
                    .unwrap_or_default(),
            });
            self.emit(now, body);
        }
        for body in verdicts.records {
            self.emit(now, body);
        }
    }

    fn emit(&mut self, ts: SystemTime, body: RecordBody) {
        let record = Record {
            ts: record::timestamp(ts),
            body,
        };
        if let Err(error) = self.sink.write(&record) {
            tracing::error!(%error, "record not written");
        }
    }
}

/// The detection stage, when `[detection]` is on and the n-gram features it needs are collected.
fn detection_for(config: &Config, loaded: &[String], data_dir: &Path) -> Result<Option<Detection>> {
    if !config.detection.enabled {
        return Ok(None);
    }
    let syscalls = &config.collectors.syscalls;
    let collecting = loaded
        .iter()
        .any(|name| name == kanary_collectors::collectors::syscalls::NAME);
    if !syscalls.enabled || syscalls.ngram_len == 0 || !collecting {
        // Detection learns from syscall n-grams: without them there is nothing to judge.
        tracing::warn!(
            "detection is off: it needs the syscalls collector loaded with ngram_len > 0"
        );
        return Ok(None);
    }
    Detection::new(&config.detection, Some(data_dir)).map(Some)
}

/// A cgroup v2 directory's id is its inode number.
fn cgroup_id_of(path: &Path) -> Option<u64> {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(path).ok().map(|m| m.ino())
}
