//! `falco`: `alert` records as Falco alerts, so falcosidekick and other Falco alert routers can
//! forward them (docs/schema.md, "Falco format"; docs/adr/0006-sinks.md).
//!
//! The object is Falco's JSON output (`json_output: true`): `uuid`, `output`, `priority`, `rule`,
//! `time`, `output_fields`, `source`, `tags`, `hostname`, with Falco's own field names where one
//! exists (`container.id` is the 12-digit short id as in Falco, `container.full_id` the whole
//! one) and `kanary.*` for the rest. falcosidekick accepts an event only with a known
//! `priority`, a `rule`, a `time` and non-empty `output_fields`; every event here has them.
//!
//! Which records: an incident's first record and its re-writes (each carries the grown count
//! and last_seen; the agent writes them at most once per `detection.realert_every` intervals).
//! The `ended` record is not forwarded: a Falco event means "this happened", and routers have
//! no notion of an incident closing, so an "ended" event would reach a chat channel or a pager
//! as one more alert.

use std::collections::BTreeMap;
use std::io::{self, Write};

use kanary_model::record::{Alert, AlertClass, Record, RecordBody, Severity};
use serde::Serialize;
use serde_json::{json, Value};

use super::ndjson::open_output;
use super::Sink;

/// One Falco alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FalcoEvent {
    /// A UUID-shaped id, the same for the same record (so a retried delivery can be
    /// de-duplicated) and different for each record of an incident.
    pub uuid: String,
    /// Falco's text line: `<time>: <Priority> <rule> (<field>=<value> ...)`.
    pub output: String,
    /// Falco priority ([`priority`]).
    pub priority: &'static str,
    /// The rule: one per alert class ([`rule`]).
    pub rule: &'static str,
    /// When the incident's latest anomalous window was read (RFC 3339, nanoseconds).
    pub time: String,
    /// The fields, by Falco name.
    pub output_fields: BTreeMap<String, Value>,
    /// Always `kanary`.
    pub source: &'static str,
    /// `container`, `kanary`, the class, and MITRE tags where the class implies one.
    pub tags: Vec<String>,
    /// This host's name, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

/// The Falco priority of a severity. Falco's scale is syslog's (Emergency, Alert, Critical,
/// Error, Warning, Notice, Informational, Debug); routers filter on it (falcosidekick's
/// `minimumpriority`, often `warning`). `low` is just above the threshold: worth noting, not
/// yet a problem, so Notice, below the usual filters. `medium` Warning, `high` Error, and
/// `critical` (invariants such as escape attempts) Critical. Alert and Emergency ("act now",
/// "system unusable") are never used: a baseline departure is evidence, not proof.
pub fn priority(severity: Severity) -> &'static str {
    match severity {
        Severity::Low => "Notice",
        Severity::Medium => "Warning",
        Severity::High => "Error",
        Severity::Critical => "Critical",
    }
}

/// The rule name of a class (stable: routers match on it).
pub fn rule(class: AlertClass) -> &'static str {
    match class {
        AlertClass::SequenceAnomaly => "Anomalous syscall behaviour in container",
        AlertClass::SuspiciousSyscall => "Suspicious syscall in container",
        AlertClass::UnexpectedProcess => "Unexpected process in container",
        AlertClass::UnexpectedFile => "Unexpected file access in container",
        AlertClass::UnauthorizedConnection => "Unauthorized connection in container",
        AlertClass::ResourceAnomaly => "Anomalous resource use in container",
        AlertClass::EscapeAttempt => "Container escape attempt",
        AlertClass::PrivilegeEscalation => "Privilege escalation in container",
    }
}

/// MITRE ATT&CK tags, as Falco's own rules write them, for the classes that imply one.
fn mitre_tags(class: AlertClass) -> &'static [&'static str] {
    match class {
        // T1611: Escape to Host.
        AlertClass::EscapeAttempt => &["T1611", "mitre_privilege_escalation"],
        AlertClass::PrivilegeEscalation => &["mitre_privilege_escalation"],
        _ => &[],
    }
}

/// The parts of an image reference: repository, tag and digest, as Falco's
/// `container.image.repository`, `.tag` and `.digest`. `None` for what is not a reference
/// (empty, or a bare image id such as `sha256:…`).
pub fn image_parts(image: &str) -> Option<(&str, Option<&str>, Option<&str>)> {
    let (name, digest) = match image.split_once('@') {
        Some((name, digest)) => (name, Some(digest)),
        None => (image, None),
    };
    // A tag is after the last ':' that follows the last '/' (a registry port is before it).
    let slash = name.rfind('/').map_or(0, |i| i + 1);
    let (repository, tag) = match name[slash..].rfind(':') {
        Some(i) => (&name[..slash + i], Some(&name[slash + i + 1..])),
        None => (name, None),
    };
    let bare_id = repository == "sha256" || repository.is_empty();
    if bare_id || tag == Some("") || digest == Some("") {
        return None;
    }
    Some((repository, tag, digest))
}

/// 64-bit FNV-1a of `bytes` from `seed`.
fn fnv1a(seed: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(seed, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A deterministic UUID (version 8, RFC 9562's custom layout) of the record's identity: the
/// incident and how far it is, so each re-write is a new event and a retried one is not.
fn event_uuid(alert: &Alert) -> String {
    let key = format!(
        "{}\u{0}{}\u{0}{}\u{0}{}",
        alert.id, alert.count, alert.last_seen, alert.ended
    );
    let high = fnv1a(0xcbf2_9ce4_8422_2325, key.as_bytes());
    let low = fnv1a(0x6c62_272e_07bb_0142, key.as_bytes()).rotate_left(29) ^ high;
    let mut bytes = [0u8; 16];
    bytes[..8].copy_from_slice(&high.to_be_bytes());
    bytes[8..].copy_from_slice(&low.to_be_bytes());
    bytes[6] = (bytes[6] & 0x0f) | 0x80; // version 8
    bytes[8] = (bytes[8] & 0x3f) | 0x80; // RFC 9562 variant
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
}

/// The class as records write it.
fn class_name(class: AlertClass) -> String {
    kanary_store::class_name(class)
}

/// The severity as records write it.
fn severity_name(severity: Severity) -> &'static str {
    match severity {
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
}

/// How many contributions `kanary.top_features` lists.
const TOP_FEATURES: usize = 3;

/// The Falco alert of `alert`, or `None` for an `ended` record (not forwarded: see the module
/// documentation).
pub fn event(alert: &Alert, hostname: Option<&str>) -> Option<FalcoEvent> {
    if alert.ended {
        return None;
    }
    let container = &alert.container;
    let short_id: String = container.id.chars().take(12).collect();
    let mut fields: BTreeMap<String, Value> = BTreeMap::new();
    let mut field = |name: &str, value: Value| {
        fields.insert(name.to_string(), value);
    };
    field("container.id", json!(short_id));
    field("container.full_id", json!(container.id));
    field("container.name", json!(container.name));
    field("container.image", json!(container.image));
    if let Some((repository, tag, digest)) = container.image.as_deref().and_then(image_parts) {
        field("container.image.repository", json!(repository));
        if let Some(tag) = tag {
            field("container.image.tag", json!(tag));
        }
        if let Some(digest) = digest {
            field("container.image.digest", json!(digest));
        }
    }
    if let Some(image_id) = &alert.image_id {
        // Falco's container.image.id is the 12-digit short id, without the algorithm.
        let bare = image_id
            .split_once(':')
            .map_or(image_id.as_str(), |(_, hex)| hex);
        field(
            "container.image.id",
            json!(bare.chars().take(12).collect::<String>()),
        );
    }
    if let Ok(time) = humantime::parse_rfc3339(&alert.last_seen) {
        // Falco writes evt.time in output_fields as nanoseconds since the epoch.
        if let Ok(since_epoch) = time.duration_since(std::time::SystemTime::UNIX_EPOCH) {
            field(
                "evt.time",
                json!(u64::try_from(since_epoch.as_nanos()).unwrap_or(u64::MAX)),
            );
        }
    }
    let top: Vec<&str> = alert
        .contributions
        .iter()
        .take(TOP_FEATURES)
        .map(|c| c.feature.as_str())
        .collect();
    let class = class_name(alert.class);
    field("kanary.alert_id", json!(alert.id));
    field("kanary.class", json!(class));
    field("kanary.severity", json!(severity_name(alert.severity)));
    field("kanary.score", json!(alert.score));
    field("kanary.threshold", json!(alert.threshold));
    field("kanary.detector", json!(alert.detector));
    field("kanary.count", json!(alert.count));
    field("kanary.first_seen", json!(alert.first_seen));
    field("kanary.last_seen", json!(alert.last_seen));
    field("kanary.top_features", json!(top.join(", ")));
    for (view, z) in &alert.views {
        field(&format!("kanary.view.{view}"), json!(z));
    }
    let priority = priority(alert.severity);
    let rule = rule(alert.class);
    let output = format!(
        "{time}: {priority} {rule} (container.id={short_id} container.name={name} \
         container.image={image} kanary.class={class} kanary.score={score:.2} \
         kanary.threshold={threshold:.2} kanary.count={count} kanary.top_features={top})",
        time = alert.last_seen,
        name = container.name,
        image = container.image.as_deref().unwrap_or("<NA>"),
        score = alert.score,
        threshold = alert.threshold,
        count = alert.count,
        top = if top.is_empty() {
            "<NA>".to_string()
        } else {
            top.join(",")
        },
    );
    let mut tags: Vec<String> = ["container", "kanary"]
        .iter()
        .chain(mitre_tags(alert.class))
        .map(|tag| tag.to_string())
        .chain(std::iter::once(class))
        .collect();
    tags.sort();
    Some(FalcoEvent {
        uuid: event_uuid(alert),
        output,
        priority,
        rule,
        time: alert.last_seen.clone(),
        output_fields: fields,
        source: "kanary",
        tags,
        hostname: hostname.map(str::to_string),
    })
}

/// The Falco alert of `record` if it is an alert that is forwarded.
pub fn event_of(record: &Record, hostname: Option<&str>) -> Option<FalcoEvent> {
    match &record.body {
        RecordBody::Alert(alert) => event(alert, hostname),
        _ => None,
    }
}

/// Writes the Falco alert of each forwarded `alert` record, one JSON object per line; other
/// records are ignored.
pub struct FalcoSink {
    out: io::BufWriter<Box<dyn Write + Send>>,
    hostname: Option<String>,
}

impl FalcoSink {
    /// Writes to `out`, naming this host `hostname`.
    pub fn new(out: Box<dyn Write + Send>, hostname: Option<String>) -> Self {
        FalcoSink {
            out: io::BufWriter::new(out),
            hostname,
        }
    }

    /// Writes to `path`, appended to, or standard output for `-`.
    pub fn open(path: &str, hostname: Option<String>) -> io::Result<Self> {
        Ok(Self::new(open_output(path)?, hostname))
    }
}

impl Sink for FalcoSink {
    fn write(&mut self, record: &Record) -> io::Result<()> {
        let Some(event) = event_of(record, self.hostname.as_deref()) else {
            return Ok(());
        };
        serde_json::to_writer(&mut self.out, &event)?;
        self.out.write_all(b"\n")
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// An alert as the agent writes it (from JSON, so fields added later keep their defaults).
    pub(crate) fn sample_alert() -> Alert {
        serde_json::from_value(json!({
            "id": "4f2a9c1e7b3d-17",
            "container": {
                "id": "4f2a9c1e7b3d5a6c8e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d",
                "name": "web",
                "image": "registry.local:5000/team/nginx:1.25"
            },
            "image_id": "sha256:6f7e2741b66b0123456789abcdef",
            "class": "sequence_anomaly",
            "severity": "high",
            "score": 9.5,
            "threshold": 1.25,
            "detector": "combined",
            "views": {"frequency": 2.5, "sequence": 12.0},
            "contributions": [
                {"feature": "getdents64→getdents64→close", "baseline": 1e-5, "observed": 40.0},
                {"feature": "openat→fstat→read", "baseline": 2e-4, "observed": 12.0},
                {"feature": "socket→connect→write", "baseline": 0.0, "observed": 3.0},
                {"feature": "close→close→close", "baseline": 0.1, "observed": 1.0}
            ],
            "first_seen": "2026-03-01T10:00:00.000000000Z",
            "last_seen": "2026-03-01T10:00:05.250000000Z",
            "count": 2,
            "ended": false
        }))
        .unwrap()
    }

    #[test]
    fn an_alert_maps_to_this_exact_falco_object() {
        let event = event(&sample_alert(), Some("node-1")).unwrap();
        let expected = json!({
            // Derived from the record, so pinned: the same record always gets this id.
            "uuid": "0fb9698c-655f-883d-ae8a-523425965b79",
            "output": "2026-03-01T10:00:05.250000000Z: Error Anomalous syscall behaviour in \
                       container (container.id=4f2a9c1e7b3d container.name=web \
                       container.image=registry.local:5000/team/nginx:1.25 \
                       kanary.class=sequence_anomaly kanary.score=9.50 kanary.threshold=1.25 \
                       kanary.count=2 kanary.top_features=getdents64→getdents64→close,\
                       openat→fstat→read,socket→connect→write)",
            "priority": "Error",
            "rule": "Anomalous syscall behaviour in container",
            "time": "2026-03-01T10:00:05.250000000Z",
            "output_fields": {
                "container.full_id": "4f2a9c1e7b3d5a6c8e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d",
                "container.id": "4f2a9c1e7b3d",
                "container.image": "registry.local:5000/team/nginx:1.25",
                "container.image.id": "6f7e2741b66b",
                "container.image.repository": "registry.local:5000/team/nginx",
                "container.image.tag": "1.25",
                "container.name": "web",
                "evt.time": 1_772_359_205_250_000_000u64,
                "kanary.alert_id": "4f2a9c1e7b3d-17",
                "kanary.class": "sequence_anomaly",
                "kanary.count": 2,
                "kanary.detector": "combined",
                "kanary.first_seen": "2026-03-01T10:00:00.000000000Z",
                "kanary.last_seen": "2026-03-01T10:00:05.250000000Z",
                "kanary.score": 9.5,
                "kanary.severity": "high",
                "kanary.threshold": 1.25,
                "kanary.top_features": "getdents64→getdents64→close, openat→fstat→read, socket→connect→write",
                "kanary.view.frequency": 2.5,
                "kanary.view.sequence": 12.0
            },
            "source": "kanary",
            "tags": ["container", "kanary", "sequence_anomaly"],
            "hostname": "node-1"
        });
        assert_eq!(serde_json::to_value(&event).unwrap(), expected);
        // The keys come out in Falco's order, as one line.
        let line = serde_json::to_string(&event).unwrap();
        assert!(
            line.starts_with("{\"uuid\":\"") && line.contains("\"output\":\"2026-03-01T10:00:05"),
            "{line}"
        );
        assert!(!line.contains('\n'));
        // The uuid is a version-8 RFC 9562 UUID.
        let uuid = &event.uuid;
        assert_eq!(uuid.len(), 36, "{uuid}");
        assert_eq!(
            uuid.split('-').map(str::len).collect::<Vec<_>>(),
            [8, 4, 4, 4, 12]
        );
        assert_eq!(&uuid[14..15], "8", "{uuid}");
        assert!(matches!(&uuid[19..20], "8" | "9" | "a" | "b"), "{uuid}");
    }

    #[test]
    fn uuids_are_stable_per_record_and_differ_between_records() {
        let alert = sample_alert();
        let first = event(&alert, None).unwrap();
        assert_eq!(event(&alert, None).unwrap().uuid, first.uuid);
        let mut again = alert.clone();
        again.count = 3;
        again.last_seen = "2026-03-01T10:01:05.000000000Z".into();
        let rewritten = event(&again, None).unwrap();
        assert_ne!(rewritten.uuid, first.uuid);
        assert_eq!(rewritten.output_fields["kanary.count"], 3);
        assert!(first.hostname.is_none());
        assert!(!serde_json::to_string(&first).unwrap().contains("hostname"));
    }

    #[test]
    fn ended_records_are_not_forwarded() {
        let mut alert = sample_alert();
        alert.ended = true;
        assert_eq!(event(&alert, None), None);
    }

    #[test]
    fn severities_map_to_falco_priorities_falcosidekick_knows() {
        let known = [
            "Emergency",
            "Alert",
            "Critical",
            "Error",
            "Warning",
            "Notice",
            "Informational",
            "Debug",
        ];
        let mapped = [
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ]
        .map(priority);
        assert_eq!(mapped, ["Notice", "Warning", "Error", "Critical"]);
        assert!(mapped.iter().all(|p| known.contains(p)));
        // Every class has its own rule, and the invariants carry MITRE tags.
        let classes = [
            AlertClass::SequenceAnomaly,
            AlertClass::SuspiciousSyscall,
            AlertClass::UnexpectedProcess,
            AlertClass::UnexpectedFile,
            AlertClass::UnauthorizedConnection,
            AlertClass::ResourceAnomaly,
            AlertClass::EscapeAttempt,
            AlertClass::PrivilegeEscalation,
        ];
        let mut rules: Vec<&str> = classes.iter().map(|c| rule(*c)).collect();
        rules.sort();
        rules.dedup();
        assert_eq!(rules.len(), classes.len());
        let mut escape = sample_alert();
        escape.class = AlertClass::EscapeAttempt;
        escape.severity = Severity::Critical;
        let event = event(&escape, None).unwrap();
        assert_eq!(event.priority, "Critical");
        assert_eq!(
            event.tags,
            [
                "T1611",
                "container",
                "escape_attempt",
                "kanary",
                "mitre_privilege_escalation"
            ]
        );
    }

    #[test]
    fn image_references_split_as_falco_does() {
        assert_eq!(
            image_parts("nginx:1.25"),
            Some(("nginx", Some("1.25"), None))
        );
        assert_eq!(image_parts("nginx"), Some(("nginx", None, None)));
        assert_eq!(
            image_parts("localhost:5000/nginx"),
            Some(("localhost:5000/nginx", None, None))
        );
        assert_eq!(
            image_parts("ghcr.io/a/b:v1@sha256:abcd"),
            Some(("ghcr.io/a/b", Some("v1"), Some("sha256:abcd")))
        );
        assert_eq!(
            image_parts("busybox@sha256:abcd"),
            Some(("busybox", None, Some("sha256:abcd")))
        );
        assert_eq!(image_parts("sha256:6f7e2741b66b"), None);
        assert_eq!(image_parts(""), None);
        assert_eq!(image_parts("nginx:"), None);
        // Unknown image: no image fields beyond container.image = null, and <NA> in the line.
        let mut alert = sample_alert();
        alert.container.image = None;
        alert.image_id = None;
        alert.contributions.clear();
        let event = event(&alert, None).unwrap();
        assert_eq!(event.output_fields["container.image"], Value::Null);
        assert!(!event
            .output_fields
            .contains_key("container.image.repository"));
        assert!(!event.output_fields.contains_key("container.image.id"));
        assert!(
            event.output.contains("container.image=<NA>"),
            "{}",
            event.output
        );
        assert!(
            event.output.contains("top_features=<NA>"),
            "{}",
            event.output
        );
    }

    /// A writer the test can read back.
    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn the_sink_writes_one_line_per_forwarded_alert_and_ignores_the_rest() {
        let out = Shared::default();
        let mut sink = FalcoSink::new(Box::new(out.clone()), Some("node-1".into()));
        let ts = "2026-03-01T10:00:05.250000000Z".to_string();
        let alert = sample_alert();
        let mut ended = alert.clone();
        ended.ended = true;
        let learning: RecordBody = serde_json::from_value(json!({
            "type": "learning", "image": "nginx:1", "image_id": null, "phase": "learning",
            "windows": 1, "events": 2, "time_left_s": 3.0, "windows_missing": 0, "threshold": null
        }))
        .unwrap();
        for body in [
            RecordBody::Alert(alert.clone()),
            learning,
            RecordBody::Alert(ended),
        ] {
            sink.write(&Record {
                ts: ts.clone(),
                body,
            })
            .unwrap();
        }
        sink.flush().unwrap();
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1, "{text}");
        let parsed: Value = serde_json::from_str(lines[0]).unwrap();
        assert_eq!(
            parsed,
            serde_json::to_value(event(&alert, Some("node-1")).unwrap()).unwrap()
        );
    }
}
