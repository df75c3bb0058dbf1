//! Where records go. Every output is one [`Sink`]; [`Sinks`] fans each record out to all of
//! them, each with its own record filter, and [`build`] makes them from `[[sinks]]`.
//!
//! Adding a sink: a module here with a type implementing [`Sink`], a [`SinkKind`] variant in
//! `kanary-model`'s config (with its keys validated there), and one arm in [`build`].
//!
//! A sink's failure is its own: it is reported (the first error at once, then at most once a
//! minute with a count) and the other sinks go on. Only when every sink that should have taken
//! a record failed does [`Sinks`] return the error, so a single sink (the default `--events`
//! output) behaves as it always did: a broken standard output stops the agent.

pub mod falco;
pub mod ndjson;
pub mod webhook;

use std::io;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use kanary_model::config::{Config, SinkConfig, SinkKind};
use kanary_model::record::{Record, RECORD_TYPES};

pub use falco::FalcoSink;
pub use ndjson::NdjsonSink;
pub use webhook::{WebhookOptions, WebhookSink};

/// A destination for records.
pub trait Sink {
    /// Writes one record.
    fn write(&mut self, record: &Record) -> io::Result<()>;
    /// Makes everything written so far visible to readers.
    fn flush(&mut self) -> io::Result<()>;
}

/// Lets something happen at most once per period: the first time at once.
#[derive(Debug)]
pub struct Throttle {
    every: Duration,
    last: Option<Instant>,
}

impl Throttle {
    /// Once a minute.
    pub fn per_minute() -> Self {
        Throttle {
            every: Duration::from_secs(60),
            last: None,
        }
    }

    /// Whether it may happen now (and if so, the period starts again).
    pub fn ready(&mut self) -> bool {
        let now = Instant::now();
        if self
            .last
            .is_some_and(|last| now.duration_since(last) < self.every)
        {
            return false;
        }
        self.last = Some(now);
        true
    }
}

/// One sink with its name and record filter.
struct Output {
    name: String,
    /// The record types it takes; `None`: all.
    accepts: Option<Vec<&'static str>>,
    sink: Box<dyn Sink>,
    /// An observer (the HTTP endpoint's state): takes every record, but its success does not
    /// count as the record having been written somewhere.
    observer: bool,
    /// Errors not yet reported, and when they may be.
    unreported: u64,
    report: Throttle,
}

impl Output {
    fn takes(&self, record_type: &str) -> bool {
        self.accepts
            .as_ref()
            .is_none_or(|types| types.contains(&record_type))
    }

    fn failed(&mut self, what: &str, error: &io::Error) {
        self.unreported += 1;
        if self.report.ready() {
            tracing::error!(sink = %self.name, errors = self.unreported, %error, "sink failed to {what}; the other sinks go on");
            self.unreported = 0;
        }
    }
}

/// Every configured sink: each record goes to each sink that takes its type.
#[derive(Default)]
pub struct Sinks {
    outputs: Vec<Output>,
}

impl Sinks {
    /// No sinks yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `sink`, called `name` in logs, taking the record types `records` (`None`: all).
    /// Unknown type names are an error (the configuration validates them first).
    pub fn add(
        &mut self,
        name: &str,
        records: Option<&[String]>,
        sink: Box<dyn Sink>,
    ) -> Result<()> {
        let accepts = match records {
            None => None,
            Some(records) => Some(
                records
                    .iter()
                    .map(|name| {
                        RECORD_TYPES
                            .iter()
                            .find(|known| *known == name)
                            .copied()
                            .with_context(|| format!("{name:?} is not a record type"))
                    })
                    .collect::<Result<Vec<_>>>()?,
            ),
        };
        self.outputs.push(Output {
            name: name.to_string(),
            accepts,
            sink,
            observer: false,
            unreported: 0,
            report: Throttle::per_minute(),
        });
        Ok(())
    }

    /// Adds an observer, called `name` in logs: it takes every record, but does not keep the
    /// agent going when every real output has failed (a broken standard output still stops
    /// the agent with an HTTP endpoint running).
    pub fn observe(&mut self, name: &str, sink: Box<dyn Sink>) {
        self.outputs.push(Output {
            name: name.to_string(),
            accepts: None,
            sink,
            observer: true,
            unreported: 0,
            report: Throttle::per_minute(),
        });
    }

    /// The names of the sinks, in order.
    pub fn names(&self) -> Vec<&str> {
        self.outputs.iter().map(|o| o.name.as_str()).collect()
    }
}

impl Sink for Sinks {
    fn write(&mut self, record: &Record) -> io::Result<()> {
        let record_type = record.body.type_name();
        let (mut taken, mut last_error) = (0, None);
        let mut failed = 0;
        for output in self.outputs.iter_mut().filter(|o| o.takes(record_type)) {
            let result = output.sink.write(record);
            if output.observer {
                if let Err(error) = result {
                    output.failed("write a record", &error);
                }
                continue;
            }
            taken += 1;
            if let Err(error) = result {
                output.failed("write a record", &error);
                failed += 1;
                last_error = Some(error);
            }
        }
        match last_error {
            Some(error) if failed == taken => Err(error),
            _ => Ok(()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        let (mut failed, mut outputs) = (0, 0);
        let mut last_error = None;
        for output in &mut self.outputs {
            let result = output.sink.flush();
            if !output.observer {
                outputs += 1;
            }
            if let Err(error) = result {
                output.failed("flush", &error);
                if !output.observer {
                    failed += 1;
                    last_error = Some(error);
                }
            }
        }
        match last_error {
            // Every output is broken: nothing is left to write to.
            Some(error) if failed == outputs => Err(error),
            _ => Ok(()),
        }
    }
}

/// This host's name (Falco's `hostname`), when it can be read.
pub fn hostname() -> Option<String> {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|name| name.trim().to_string())
        .filter(|name| !name.is_empty())
}

/// Adds the command line's outputs to `config.sinks`: `--events` (an `ndjson` sink; standard
/// output when neither it nor any `[[sinks]]` is given, as before sinks were configurable) and
/// `--falco-output` (a `falco` sink). Two outputs on one file or both on standard output are
/// refused, naming them.
pub fn add_command_line_sinks(
    config: &mut Config,
    events: Option<&str>,
    falco_output: Option<&str>,
) -> Result<()> {
    let events = match events {
        Some(path) => Some(path),
        None if config.sinks.is_empty() => Some("-"),
        None => None,
    };
    let mut added: Vec<(&str, SinkConfig)> = Vec::new();
    if let Some(path) = events {
        added.push(("--events", SinkConfig::file(SinkKind::Ndjson, path)));
    }
    if let Some(path) = falco_output {
        added.push(("--falco-output", SinkConfig::file(SinkKind::Falco, path)));
    }
    for (i, (flag, sink)) in added.iter().enumerate() {
        let path = sink.path.as_deref().unwrap_or_default();
        let shown = if path == "-" {
            "standard output".to_string()
        } else {
            path.to_string()
        };
        if let Some(j) = config
            .sinks
            .iter()
            .position(|other| other.path.as_deref() == Some(path))
        {
            bail!("{flag} {path}: {shown} is already written by sinks[{j}] of the configuration");
        }
        if let Some((other, _)) = added[..i]
            .iter()
            .find(|(_, other)| other.path.as_deref() == Some(path))
        {
            bail!("{flag} {path}: {shown} is already written by {other}");
        }
    }
    for (flag, mut sink) in added {
        sink.name = Some(flag.to_string());
        config.sinks.push(sink);
    }
    Ok(())
}

/// The sinks of `configs` (validated by the configuration), opened and started.
pub fn build(configs: &[SinkConfig]) -> Result<Sinks> {
    let hostname = hostname();
    let mut sinks = Sinks::new();
    for (i, config) in configs.iter().enumerate() {
        let name = config.display_name(i);
        let path = config.path.as_deref().unwrap_or("-");
        let sink: Box<dyn Sink> = match config.kind {
            SinkKind::Ndjson => {
                Box::new(NdjsonSink::open(path).with_context(|| format!("opening {name} {path}"))?)
            }
            SinkKind::Falco => Box::new(
                FalcoSink::open(path, hostname.clone())
                    .with_context(|| format!("opening {name} {path}"))?,
            ),
            SinkKind::Webhook => Box::new(
                WebhookSink::start(WebhookOptions::from_config(
                    name.clone(),
                    config,
                    hostname.clone(),
                ))
                .with_context(|| format!("starting {name}"))?,
            ),
        };
        sinks.add(&name, config.record_types().as_deref(), sink)?;
    }
    Ok(sinks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    use kanary_model::record::RecordBody;
    use serde_json::json;

    /// A sink that keeps the types it was given, and fails when told to.
    #[derive(Clone, Default)]
    struct Probe {
        seen: Arc<Mutex<Vec<String>>>,
        fail: bool,
    }

    impl Sink for Probe {
        fn write(&mut self, record: &Record) -> io::Result<()> {
            if self.fail {
                return Err(io::Error::other("disk full"));
            }
            self.seen
                .lock()
                .unwrap()
                .push(record.body.type_name().to_string());
            Ok(())
        }
        fn flush(&mut self) -> io::Result<()> {
            if self.fail {
                return Err(io::Error::other("disk full"));
            }
            Ok(())
        }
    }

    fn record(body: serde_json::Value) -> Record {
        let mut value = body;
        value["ts"] = json!("2026-03-01T10:00:05Z");
        serde_json::from_value(value).unwrap()
    }

    fn drops() -> Record {
        record(
            json!({"type": "drops", "collector": "file", "container": null,
                      "ringbuf_full": 1, "map_full": 0}),
        )
    }

    fn learning() -> Record {
        record(
            json!({"type": "learning", "image": "nginx:1", "image_id": null,
                      "phase": "learning", "windows": 1, "events": 2, "time_left_s": 3.0,
                      "windows_missing": 0, "threshold": null}),
        )
    }

    #[test]
    fn each_sink_gets_the_types_it_takes() {
        let (all, some) = (Probe::default(), Probe::default());
        let mut sinks = Sinks::new();
        sinks.add("all", None, Box::new(all.clone())).unwrap();
        sinks
            .add(
                "learning only",
                Some(&["learning".to_string()]),
                Box::new(some.clone()),
            )
            .unwrap();
        for r in [drops(), learning(), drops()] {
            sinks.write(&r).unwrap();
        }
        sinks.flush().unwrap();
        assert_eq!(*all.seen.lock().unwrap(), ["drops", "learning", "drops"]);
        assert_eq!(*some.seen.lock().unwrap(), ["learning"]);
        assert!(sinks
            .add(
                "bad",
                Some(&["alerts".to_string()]),
                Box::new(Probe::default())
            )
            .is_err());
    }

    #[test]
    fn a_failing_sink_does_not_stop_the_others() {
        let good = Probe::default();
        let bad = Probe {
            fail: true,
            ..Probe::default()
        };
        let mut sinks = Sinks::new();
        sinks.add("bad", None, Box::new(bad)).unwrap();
        sinks.add("good", None, Box::new(good.clone())).unwrap();
        sinks.write(&drops()).unwrap();
        sinks.write(&learning()).unwrap();
        sinks.flush().unwrap();
        assert_eq!(*good.seen.lock().unwrap(), ["drops", "learning"]);
        // A record only the failing sink takes is lost: that is an error.
        let mut alone = Sinks::new();
        alone
            .add(
                "bad",
                None,
                Box::new(Probe {
                    fail: true,
                    ..Probe::default()
                }),
            )
            .unwrap();
        alone
            .add("other", Some(&["alert".into()]), Box::new(Probe::default()))
            .unwrap();
        assert!(alone.write(&drops()).is_err());
        // Flushing fails only when every sink does.
        assert!(alone.flush().is_ok());
        let mut broken = Sinks::new();
        broken
            .add(
                "bad",
                None,
                Box::new(Probe {
                    fail: true,
                    ..Probe::default()
                }),
            )
            .unwrap();
        assert!(broken.flush().is_err());
        // An observer does not hide a broken output, and sees every record.
        let watcher = Probe::default();
        broken.observe("http", Box::new(watcher.clone()));
        assert!(broken.write(&drops()).is_err());
        assert!(broken.flush().is_err());
        assert_eq!(*watcher.seen.lock().unwrap(), ["drops"]);
    }

    #[test]
    fn the_command_line_keeps_stdout_ndjson_as_the_default() {
        // No [[sinks]], no flags: NDJSON on standard output, as before.
        let mut config = Config::default();
        add_command_line_sinks(&mut config, None, None).unwrap();
        assert_eq!(config.sinks.len(), 1);
        assert_eq!(config.sinks[0].kind, SinkKind::Ndjson);
        assert_eq!(config.sinks[0].path.as_deref(), Some("-"));
        assert_eq!(config.sinks[0].display_name(0), "--events");

        // --falco-output adds a Falco file next to it.
        let mut config = Config::default();
        add_command_line_sinks(&mut config, None, Some("/tmp/falco.json")).unwrap();
        let kinds: Vec<_> = config.sinks.iter().map(|s| s.kind).collect();
        assert_eq!(kinds, [SinkKind::Ndjson, SinkKind::Falco]);

        // Configured sinks replace the default; --events given explicitly adds to them.
        let toml = "[[sinks]]\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/\"\n";
        let mut config = Config::from_toml(toml).unwrap();
        add_command_line_sinks(&mut config, None, None).unwrap();
        assert_eq!(config.sinks.len(), 1);
        let mut config = Config::from_toml(toml).unwrap();
        add_command_line_sinks(&mut config, Some("/tmp/e.ndjson"), None).unwrap();
        assert_eq!(config.sinks.len(), 2);

        // Two outputs on standard output would interleave: refused, naming both.
        let mut config = Config::default();
        let error = add_command_line_sinks(&mut config, None, Some("-"))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("--falco-output") && error.contains("--events"),
            "{error}"
        );
        let mut config =
            Config::from_toml("[[sinks]]\ntype = \"ndjson\"\npath = \"/tmp/x\"\n").unwrap();
        let error = add_command_line_sinks(&mut config, Some("/tmp/x"), None)
            .unwrap_err()
            .to_string();
        assert!(error.contains("sinks[0]"), "{error}");
    }

    #[test]
    fn build_opens_every_configured_sink() {
        let dir = tempfile::tempdir().unwrap();
        let (events, falco) = (dir.path().join("e.ndjson"), dir.path().join("f.json"));
        let toml = format!(
            "[[sinks]]\ntype = \"ndjson\"\npath = \"{}\"\nrecords = [\"learning\"]\n\
             [[sinks]]\ntype = \"falco\"\nname = \"falco-file\"\npath = \"{}\"\n",
            events.display(),
            falco.display()
        );
        let config = Config::from_toml(&toml).unwrap();
        let mut sinks = build(&config.sinks).unwrap();
        assert_eq!(sinks.names(), ["ndjson[0]", "falco-file"]);
        let mut alert = falco::tests::sample_alert();
        sinks.write(&drops()).unwrap();
        sinks.write(&learning()).unwrap();
        sinks
            .write(&Record {
                ts: "2026-03-01T10:00:05Z".into(),
                body: RecordBody::Alert(alert.clone()),
            })
            .unwrap();
        alert.ended = true;
        sinks
            .write(&Record {
                ts: "2026-03-01T10:00:06Z".into(),
                body: RecordBody::Alert(alert),
            })
            .unwrap();
        sinks.flush().unwrap();
        let events = std::fs::read_to_string(&events).unwrap();
        assert_eq!(events.lines().count(), 1, "{events}");
        assert!(events.contains("\"type\":\"learning\""), "{events}");
        let falco = std::fs::read_to_string(&falco).unwrap();
        assert_eq!(falco.lines().count(), 1, "only the open record: {falco}");
        assert!(falco.contains("\"source\":\"kanary\""), "{falco}");
        // A file that cannot be opened is named.
        let bad =
            Config::from_toml("[[sinks]]\ntype = \"ndjson\"\npath = \"/nonexistent/dir/x\"\n")
                .unwrap();
        let error = format!("{:#}", build(&bad.sinks).err().unwrap());
        assert!(
            error.contains("ndjson[0]") && error.contains("/nonexistent/dir/x"),
            "{error}"
        );
    }

    #[test]
    fn throttles_let_the_first_through_then_wait() {
        let mut throttle = Throttle::per_minute();
        assert!(throttle.ready());
        assert!(!throttle.ready());
        throttle.last = Some(Instant::now() - Duration::from_secs(61));
        assert!(throttle.ready());
    }
}
