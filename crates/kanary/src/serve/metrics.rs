//! `/metrics`: the [`HostState`] in the OpenMetrics text format, `kanary_` prefix.
//!
//! The registry is built afresh from the state at each scrape, so a stopped container's series
//! are gone at the next scrape and nothing outlives what the state holds. Cardinality is
//! bounded: per-container series only for running containers (bounded by
//! `agent.max_containers`), per-syscall series only for each container's `top_syscalls` most
//! frequent syscalls, alert counters by class and severity (no container label), learning
//! series per image.

use std::sync::atomic::AtomicU64;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::state::{name_of, relative, HostState};
use kanary_model::record::{AlertClass, Severity};

/// The content type of what [`render`] returns.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

type Labels = Vec<(String, String)>;
type GaugeF = Family<Labels, Gauge<f64, AtomicU64>>;
type CounterF = Family<Labels, Counter<f64, AtomicU64>>;

/// Every alert class and severity, so `kanary_alerts_total` has its series (at 0) before the
/// first alert and `rate()` sees the first one.
const CLASSES: &[AlertClass] = &[
    AlertClass::SequenceAnomaly,
    AlertClass::SuspiciousSyscall,
    AlertClass::UnexpectedProcess,
    AlertClass::UnexpectedFile,
    AlertClass::UnauthorizedConnection,
    AlertClass::ResourceAnomaly,
    AlertClass::EscapeAttempt,
    AlertClass::PrivilegeEscalation,
];
const SEVERITIES: &[Severity] = &[
    Severity::Low,
    Severity::Medium,
    Severity::High,
    Severity::Critical,
];

/// Registers a gauge family.
fn gauge(registry: &mut Registry, name: &str, help: &str) -> GaugeF {
    let family = GaugeF::default();
    registry.register(name, help, family.clone());
    family
}

/// Registers a counter family (exposed as `<name>_total`).
fn counter(registry: &mut Registry, name: &str, help: &str) -> CounterF {
    let family = CounterF::default();
    registry.register(name, help, family.clone());
    family
}

fn with(labels: &Labels, name: &str, value: &str) -> Labels {
    let mut out = labels.clone();
    out.push((name.to_string(), value.to_string()));
    out
}

/// The exposition of `state`, with per-syscall series for each container's `top_syscalls`
/// most frequent syscalls.
pub fn render(state: &HostState, top_syscalls: usize) -> Result<String, std::fmt::Error> {
    let mut registry = Registry::with_prefix("kanary");
    // Per container.
    let info = gauge(
        &mut registry,
        "container_info",
        "A watched running container (1), with its image id and judgement",
    );
    let syscalls = counter(
        &mut registry,
        "container_syscalls",
        "System calls made by the container",
    );
    let by_syscall = counter(
        &mut registry,
        "container_syscall_calls",
        "System calls by name (each container's top_syscalls most frequent only)",
    );
    let cpu_seconds = counter(
        &mut registry,
        "container_cpu_seconds",
        "CPU time used by the container",
    );
    let cpu_percent = gauge(
        &mut registry,
        "container_cpu_percent",
        "CPU use over the last interval, percent of one core",
    );
    let memory = gauge(
        &mut registry,
        "container_memory_bytes",
        "Memory in use at the last interval",
    );
    let pids = gauge(&mut registry, "container_pids", "Tasks in the container");
    let io_read = counter(
        &mut registry,
        "container_io_read_bytes",
        "Block IO bytes read",
    );
    let io_write = counter(
        &mut registry,
        "container_io_write_bytes",
        "Block IO bytes written",
    );
    let rx = counter(
        &mut registry,
        "container_network_receive_bytes",
        "Network bytes received",
    );
    let tx = counter(
        &mut registry,
        "container_network_transmit_bytes",
        "Network bytes sent",
    );
    let connects = counter(
        &mut registry,
        "container_connects",
        "Outbound connections and attempts",
    );
    let connect_failures = counter(
        &mut registry,
        "container_connect_failures",
        "Failed outbound connection attempts",
    );
    let forks = counter(&mut registry, "container_forks", "Processes forked");
    let execs = counter(&mut registry, "container_execs", "Programs executed");
    let opens = counter(&mut registry, "container_file_opens", "Files opened");
    let score = gauge(
        &mut registry,
        "container_anomaly_score",
        "Each detector's score of the last window",
    );
    let threshold = gauge(
        &mut registry,
        "container_anomaly_threshold",
        "Each detector's threshold for the last window",
    );
    let relative_score = gauge(
        &mut registry,
        "container_anomaly_relative_score",
        "The last window's highest score divided by its threshold (above 1: anomalous)",
    );
    let open_alerts = gauge(
        &mut registry,
        "container_open_alerts",
        "Incidents of the container not yet ended",
    );
    for c in state.containers.values().filter(|c| c.running) {
        let labels: Labels = vec![
            ("container".into(), c.container.name.clone()),
            ("id".into(), c.container.id.clone()),
            (
                "image".into(),
                c.container.image.clone().unwrap_or_default(),
            ),
        ];
        let (judged, _) = state.judgement(c);
        let mut info_labels = with(&labels, "image_id", c.image_id.as_deref().unwrap_or(""));
        info_labels.push(("state".into(), judged.into()));
        info.get_or_create(&info_labels).set(1.0);
        let t = &c.totals;
        for (family, value) in [
            (&syscalls, t.syscalls as f64),
            (&cpu_seconds, t.cpu_ns as f64 / 1e9),
            (&io_read, t.io_read_bytes as f64),
            (&io_write, t.io_write_bytes as f64),
            (&rx, t.rx_bytes as f64),
            (&tx, t.tx_bytes as f64),
            (&connects, t.connects as f64),
            (&connect_failures, t.connect_failures as f64),
            (&forks, t.forks as f64),
            (&execs, t.execs as f64),
            (&opens, t.opens as f64),
        ] {
            family.get_or_create(&labels).inc_by(value);
        }
        let mut top: Vec<(&String, &u64)> = t.by_syscall.iter().collect();
        top.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        for (name, count) in top.into_iter().take(top_syscalls) {
            by_syscall
                .get_or_create(&with(&labels, "syscall", name))
                .inc_by(*count as f64);
        }
        for (family, key) in [
            (&cpu_percent, "cpu_percent"),
            (&memory, "memory_bytes"),
            (&pids, "pids"),
        ] {
            if let Some(value) = c.levels.get(key) {
                family.get_or_create(&labels).set(*value);
            }
        }
        if let Some(window) = c.windows.back() {
            for s in &window.scores {
                let l = with(&labels, "detector", &s.detector);
                score.get_or_create(&l).set(s.score);
                threshold.get_or_create(&l).set(s.threshold);
            }
            if let Some(top) = window.top_score() {
                relative_score.get_or_create(&labels).set(relative(top));
            }
        }
        open_alerts
            .get_or_create(&labels)
            .set(state.open_alerts(&c.container.id) as f64);
    }

    // Alerts and learning.
    let alerts = counter(
        &mut registry,
        "alerts",
        "Incidents opened since the agent started, by class and severity",
    );
    for class in CLASSES {
        for severity in SEVERITIES {
            let key = (name_of(class), name_of(severity));
            let n = state.alert_counts.get(&key).copied().unwrap_or(0);
            alerts
                .get_or_create(&vec![
                    ("class".to_string(), key.0),
                    ("severity".to_string(), key.1),
                ])
                .inc_by(n as f64);
        }
    }
    let learning_detecting = gauge(
        &mut registry,
        "learning_detecting",
        "1 when the image's baseline detects, 0 while it learns",
    );
    let learning_progress = gauge(
        &mut registry,
        "learning_progress",
        "How far the image's baseline has learnt, 0 to 1",
    );
    let learning_eta = gauge(
        &mut registry,
        "learning_remaining_seconds",
        "Learning time still to go",
    );
    let learning_windows = gauge(
        &mut registry,
        "learning_windows",
        "Windows the image's baseline has seen or learnt from",
    );
    for (image, l) in &state.learning {
        let labels: Labels = vec![("image".into(), image.clone())];
        let (progress, eta) = state.progress(l);
        learning_detecting
            .get_or_create(&labels)
            .set(if l.phase == "detecting" { 1.0 } else { 0.0 });
        learning_progress.get_or_create(&labels).set(progress);
        learning_eta.get_or_create(&labels).set(eta);
        learning_windows
            .get_or_create(&labels)
            .set(l.windows as f64);
    }

    // The agent itself.
    let a = &state.agent;
    let agent_info = gauge(
        &mut registry,
        "agent_info",
        "The agent (1), with its version",
    );
    agent_info
        .get_or_create(&vec![("version".to_string(), a.version.clone())])
        .set(1.0);
    for (name, help, value) in [
        (
            "agent_cpu_percent",
            "The agent's own CPU use, percent of one core",
            a.cpu_percent,
        ),
        (
            "agent_resident_memory_bytes",
            "The agent's resident memory",
            a.rss_bytes as f64,
        ),
        (
            "agent_records_per_second",
            "Records written per second",
            a.records_per_s,
        ),
        (
            "agent_containers",
            "Containers watched",
            state.containers.values().filter(|c| c.running).count() as f64,
        ),
    ] {
        gauge(&mut registry, name, help)
            .get_or_create(&Vec::new())
            .set(value);
    }
    counter(&mut registry, "agent_records", "Records written")
        .get_or_create(&Vec::new())
        .inc_by(a.records as f64);
    let drops = counter(
        &mut registry,
        "agent_drops",
        "Events lost, by collector and reason",
    );
    // Every loaded collector has its series at 0, so a dashboard shows "no loss" as 0.
    let mut collectors: Vec<&String> = a.collectors.iter().collect();
    collectors.extend(a.drops.keys().filter(|k| !a.collectors.contains(k)));
    for collector in collectors {
        for reason in ["ringbuf_full", "map_full", "throttled"] {
            let n = a
                .drops
                .get(collector)
                .and_then(|by| by.get(reason))
                .copied()
                .unwrap_or(0);
            drops
                .get_or_create(&vec![
                    ("collector".to_string(), collector.clone()),
                    ("reason".to_string(), reason.to_string()),
                ])
                .inc_by(n as f64);
        }
    }

    let mut out = String::new();
    encode(&mut out, &registry)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::state::tests::{record, sample, ID};
    use super::*;

    #[test]
    fn the_exposition_names_every_family_with_bounded_labels() {
        let state = sample();
        let text = render(&state, 1).unwrap();
        for needle in [
            "kanary_container_syscalls_total{container=\"web\",id=\"",
            "kanary_container_cpu_seconds_total",
            "kanary_container_memory_bytes{",
            "kanary_container_anomaly_score{container=\"web\"",
            "detector=\"invariants\"} 3.0",
            "kanary_container_anomaly_threshold{",
            "kanary_alerts_total{class=\"unauthorized_connection\",severity=\"high\"} 1",
            "kanary_alerts_total{class=\"escape_attempt\",severity=\"critical\"} 0",
            "kanary_learning_progress{image=\"nginx:1\"} 0.5",
            "kanary_agent_drops_total{collector=\"syscalls\",reason=\"ringbuf_full\"} 0",
            "kanary_agent_records_total",
            "# EOF",
        ] {
            assert!(text.contains(needle), "{needle} missing:\n{text}");
        }
        // top_syscalls = 1: one per-syscall series.
        let per_syscall = text
            .lines()
            .filter(|l| l.starts_with("kanary_container_syscall_calls_total{"))
            .count();
        assert_eq!(per_syscall, 1, "{text}");
    }

    #[test]
    fn a_stopped_container_loses_its_series() {
        let mut state = sample();
        state.apply(&record(
            serde_json::json!({"type": "container_stop", "ts": "t",
            "container": {"id": ID, "name": "web", "image": "nginx:1"},
            "cgroup_id": 1, "watched_s": 1.0}),
        ));
        let text = render(&state, 10).unwrap();
        assert!(!text.contains(ID), "{text}");
        assert!(text.contains("kanary_agent_containers 0"), "{text}");
    }
}
