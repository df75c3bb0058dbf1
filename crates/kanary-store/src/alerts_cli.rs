//! `kanary alerts list`: the stored alert incidents, filtered, as a table or as NDJSON.
//! `main.rs` only parses the command and calls [`run`].

use std::io::Write;
use std::time::{Duration, SystemTime};

use kanary_model::record::{Alert, AlertClass, Record, RecordBody, Severity};

use crate::cli::{emit, rfc3339, table, StoreArgs};
use crate::{class_name, AlertQuery, Result, Store, StoreError};

/// `kanary alerts` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum AlertsCommand {
    /// Show the stored alerts, newest first: one per incident, in its latest state (open or
    /// ended, with its count of anomalous windows so far).
    List(ListArgs),
}

/// `kanary alerts list` arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct ListArgs {
    /// Store location.
    #[command(flatten)]
    pub store: StoreArgs,
    /// Only this container's alerts: its name, or a prefix of its id.
    #[arg(long, value_name = "NAME|ID")]
    pub container: Option<String>,
    /// Only this class: sequence_anomaly, suspicious_syscall, unexpected_process,
    /// unexpected_file, unauthorized_connection, resource_anomaly, escape_attempt,
    /// privilege_escalation.
    #[arg(long, value_name = "CLASS", value_parser = parse_class)]
    pub class: Option<AlertClass>,
    /// Only this severity or worse: low, medium, high, critical.
    #[arg(long, value_name = "SEVERITY", value_parser = parse_severity)]
    pub severity: Option<Severity>,
    /// Only incidents active since then: a duration back from now (`1h`, `30m`, `2d`) or an
    /// RFC 3339 time (`2026-01-31T08:00:00Z`).
    #[arg(long, value_name = "WHEN", value_parser = parse_since)]
    pub since: Option<Since>,
    /// Only incidents that have not ended.
    #[arg(long)]
    pub open: bool,
    /// At most this many, the newest (0: all).
    #[arg(long, value_name = "N", default_value_t = 100)]
    pub limit: usize,
    /// Print one `alert` record per line (NDJSON, `ts` = the incident's last_seen) instead of
    /// a table.
    #[arg(long)]
    pub json: bool,
}

/// A value of an enum written as records write it (`sequence_anomaly`, `high`).
fn parse_snake<T: serde::de::DeserializeOwned>(text: &str) -> std::result::Result<T, String> {
    serde_json::from_value(serde_json::Value::String(text.to_string())).map_err(|e| {
        // serde names the accepted values: "unknown variant `x`, expected one of ...".
        e.to_string()
    })
}

fn parse_class(text: &str) -> std::result::Result<AlertClass, String> {
    parse_snake(text)
}

fn parse_severity(text: &str) -> std::result::Result<Severity, String> {
    parse_snake(text)
}

/// `--since`: a duration back from now, or a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Since {
    /// This long before now.
    Ago(Duration),
    /// This time.
    At(SystemTime),
}

impl Since {
    /// The time it names at `now`.
    pub fn at(self, now: SystemTime) -> SystemTime {
        match self {
            // Longer ago than the epoch: everything.
            Since::Ago(ago) => now
                .checked_sub(ago)
                .filter(|time| *time >= SystemTime::UNIX_EPOCH)
                .unwrap_or(SystemTime::UNIX_EPOCH),
            Since::At(time) => time,
        }
    }
}

/// Parses `--since`: a duration (`1h`) or an RFC 3339 time.
pub fn parse_since(text: &str) -> std::result::Result<Since, String> {
    if let Ok(ago) = humantime::parse_duration(text) {
        return Ok(Since::Ago(ago));
    }
    humantime::parse_rfc3339_weak(text)
        .map(Since::At)
        .map_err(|_| {
            format!(
                "{text:?} is neither a duration (1h, 30m) nor an RFC 3339 time \
                 (2026-01-31T08:00:00Z)"
            )
        })
}

/// Runs `command`: results on `out`, notes on `err`, `now` for `--since`.
pub fn run(
    command: &AlertsCommand,
    out: &mut dyn Write,
    err: &mut dyn Write,
    now: SystemTime,
) -> Result<()> {
    match command {
        AlertsCommand::List(args) => list(args, out, err, now),
    }
}

fn list(args: &ListArgs, out: &mut dyn Write, err: &mut dyn Write, now: SystemTime) -> Result<()> {
    let query = AlertQuery {
        container: args.container.clone(),
        class: args.class,
        min_severity: args.severity,
        since: args.since.map(|since| since.at(now)),
        open_only: args.open,
        limit: args.limit,
    };
    let alerts = match Store::open_existing(&args.store.data_dir) {
        Ok(store) => store.alerts(&query)?,
        Err(StoreError::Missing { path }) => {
            // No store yet is a normal state (nothing learnt or alerted): say where we looked.
            emit(
                err,
                "<stderr>",
                &format!("kanary: no store at {} yet\n", path.display()),
            )?;
            Vec::new()
        }
        Err(e) => return Err(e),
    };
    let text = if args.json {
        listing_ndjson(&alerts)?
    } else {
        listing_table(&alerts)
    };
    emit(out, "<stdout>", &text)
}

/// One `alert` record per line, `ts` being the incident's last_seen.
pub fn listing_ndjson(alerts: &[Alert]) -> Result<String> {
    let mut text = String::new();
    for alert in alerts {
        let record = Record {
            ts: alert.last_seen.clone(),
            body: RecordBody::Alert(alert.clone()),
        };
        let line = serde_json::to_string(&record).map_err(|e| StoreError::Alert {
            id: alert.id.clone(),
            message: format!("cannot be encoded: {e}"),
        })?;
        text.push_str(&line);
        text.push('\n');
    }
    Ok(text)
}

/// A record time shown to the second (the stored text when it does not parse).
fn shown_time(text: &str) -> String {
    humantime::parse_rfc3339(text).map_or_else(|_| text.to_string(), rfc3339)
}

/// The table `kanary alerts list` prints.
pub fn listing_table(alerts: &[Alert]) -> String {
    if alerts.is_empty() {
        return "no alerts\n".to_string();
    }
    let rows: Vec<Vec<String>> = alerts
        .iter()
        .map(|a| {
            vec![
                shown_time(&a.last_seen),
                a.container.name.clone(),
                a.container.image.clone().unwrap_or_else(|| "-".into()),
                class_name(a.class),
                parse_back(a.severity),
                format!("{:.2}/{:.2}", a.score, a.threshold),
                a.count.to_string(),
                if a.ended { "ended" } else { "open" }.to_string(),
                a.id.clone(),
            ]
        })
        .collect();
    table(
        &[
            "LAST SEEN",
            "CONTAINER",
            "IMAGE",
            "CLASS",
            "SEVERITY",
            "SCORE/THRESHOLD",
            "WINDOWS",
            "STATE",
            "ID",
        ],
        &rows,
    )
}

/// The severity as records write it.
fn parse_back(severity: Severity) -> String {
    match severity {
        Severity::Low => "low",
        Severity::Medium => "medium",
        Severity::High => "high",
        Severity::Critical => "critical",
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_duration_or_a_time() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(10_000);
        assert_eq!(
            parse_since("1h").unwrap().at(now),
            SystemTime::UNIX_EPOCH + Duration::from_secs(6400)
        );
        assert_eq!(
            parse_since("1970-01-01T00:00:05Z").unwrap().at(now),
            SystemTime::UNIX_EPOCH + Duration::from_secs(5)
        );
        // Longer ago than the epoch: everything.
        assert_eq!(
            parse_since("1000000h").unwrap().at(now),
            SystemTime::UNIX_EPOCH
        );
        let error = parse_since("yesterday").unwrap_err();
        assert!(error.contains("yesterday"), "{error}");
    }

    #[test]
    fn classes_and_severities_parse_as_records_write_them() {
        assert_eq!(
            parse_class("escape_attempt").unwrap(),
            AlertClass::EscapeAttempt
        );
        assert!(parse_class("EscapeAttempt")
            .unwrap_err()
            .contains("sequence_anomaly"));
        assert_eq!(parse_severity("high").unwrap(), Severity::High);
        assert!(parse_severity("severe").unwrap_err().contains("critical"));
        for severity in [
            Severity::Low,
            Severity::Medium,
            Severity::High,
            Severity::Critical,
        ] {
            assert_eq!(parse_severity(&parse_back(severity)).unwrap(), severity);
        }
    }
}
