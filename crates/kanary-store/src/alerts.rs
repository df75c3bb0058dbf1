//! Alert storage: the `alerts` table, one row per incident.
//!
//! The agent writes an incident's `alert` record when it opens, now and then while it lasts and
//! once with `ended: true`; [`Store::put_alert`] stores each one over the previous (upsert by
//! the incident id), so a row always holds the latest state of its incident: its count,
//! last_seen, score and ended flag, and the whole record as JSON. A few fields are copied into
//! columns only to filter and sort on ([`AlertQuery`]); the JSON is what queries return.
//!
//! Retention: at most [`DEFAULT_MAX_ALERTS`] rows ([`Store::set_max_alerts`]). Beyond that the
//! oldest *ended* incidents (by last_seen) are deleted; an open incident is never deleted, so
//! the table can exceed the bound only while more incidents than that are open at once. The
//! bound is enforced when the store opens its first alert and then every [`PRUNE_EVERY`]
//! writes, so a write costs no table scan ([`Store::prune_alerts`] prunes at once).

use std::time::SystemTime;

use kanary_model::record::{Alert, AlertClass, Severity};
use rusqlite::types::ToSql;
use rusqlite::{params, params_from_iter, OptionalExtension, TransactionBehavior};

use crate::{nanos, Result, Store, StoreError};

/// How many alerts (incidents) the store keeps by default; the oldest ended ones go first.
/// 100 000 rows of a few kilobytes each keep the database within a few hundred megabytes.
pub const DEFAULT_MAX_ALERTS: usize = 100_000;

/// The retention bound is checked once every this many [`Store::put_alert`]s.
pub const PRUNE_EVERY: u64 = 64;

/// Which alerts [`Store::alerts`] returns. The default returns every alert.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AlertQuery {
    /// Only this container's: its name, or a prefix of its id.
    pub container: Option<String>,
    /// Only this class.
    pub class: Option<AlertClass>,
    /// Only this severity or worse.
    pub min_severity: Option<Severity>,
    /// Only incidents active since then (their last_seen is not earlier).
    pub since: Option<SystemTime>,
    /// Only incidents that have not ended.
    pub open_only: bool,
    /// At most this many, the newest (0: all).
    pub limit: usize,
}

/// The rank stored for a severity: ordered as [`Severity`] is.
fn severity_rank(severity: Severity) -> i64 {
    match severity {
        Severity::Low => 0,
        Severity::Medium => 1,
        Severity::High => 2,
        Severity::Critical => 3,
    }
}

/// The class as records write it (`sequence_anomaly`, ...).
pub fn class_name(class: AlertClass) -> String {
    match serde_json::to_value(class) {
        Ok(serde_json::Value::String(name)) => name,
        // Unit variants always serialise to their name; this only keeps the function total.
        _ => format!("{class:?}"),
    }
}

/// A time of a record (`first_seen`, `last_seen`), in nanoseconds.
fn record_time(alert: &Alert, field: &str, text: &str) -> Result<i64> {
    humantime::parse_rfc3339(text)
        .map(nanos)
        .map_err(|e| StoreError::Alert {
            id: alert.id.clone(),
            message: format!("{field} {text:?} is not an RFC 3339 time: {e}"),
        })
}

impl Store {
    /// Stores `alert`, replacing the stored record of the same incident (same `id`): its count,
    /// last_seen, score, severity, ended flag and JSON are the new record's. Every
    /// [`PRUNE_EVERY`] writes the retention bound is applied ([`Store::prune_alerts`]).
    pub fn put_alert(&mut self, alert: &Alert) -> Result<()> {
        if alert.id.is_empty() {
            return Err(StoreError::Alert {
                id: String::new(),
                message: "has no id".into(),
            });
        }
        let first_seen = record_time(alert, "first_seen", &alert.first_seen)?;
        let last_seen = record_time(alert, "last_seen", &alert.last_seen)?;
        let json = serde_json::to_string(alert).map_err(|e| StoreError::Alert {
            id: alert.id.clone(),
            message: format!("cannot be encoded: {e}"),
        })?;
        let path = self.path.clone();
        let failed = |e: rusqlite::Error| StoreError::Database {
            path: path.clone(),
            message: format!("storing alert {}: {e}", alert.id),
        };
        self.conn
            .execute(
                "INSERT INTO alerts (id, container_id, container_name, image, image_id, class, \
                 severity, score, count, first_seen, last_seen, ended, stored_at, alert) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14) \
                 ON CONFLICT(id) DO UPDATE SET container_id = excluded.container_id, \
                 container_name = excluded.container_name, image = excluded.image, \
                 image_id = excluded.image_id, class = excluded.class, \
                 severity = excluded.severity, score = excluded.score, count = excluded.count, \
                 first_seen = excluded.first_seen, last_seen = excluded.last_seen, \
                 ended = excluded.ended, stored_at = excluded.stored_at, alert = excluded.alert",
                params![
                    alert.id,
                    alert.container.id,
                    alert.container.name,
                    alert.container.image,
                    alert.image_id,
                    class_name(alert.class),
                    severity_rank(alert.severity),
                    alert.score,
                    i64::try_from(alert.count).unwrap_or(i64::MAX),
                    first_seen,
                    last_seen,
                    alert.ended,
                    nanos(SystemTime::now()),
                    json,
                ],
            )
            .map_err(failed)?;
        // The first write of a store prunes at once (a bound lowered since the last run applies
        // immediately), then every PRUNE_EVERY writes.
        if self.writes_before_prune == 0 {
            self.prune_alerts()?;
            self.writes_before_prune = PRUNE_EVERY;
        }
        self.writes_before_prune -= 1;
        Ok(())
    }

    /// The stored alerts `query` selects, newest first (by last_seen, then first_seen). A row
    /// that cannot be decoded fails the query with [`StoreError::Alert`] naming its id.
    pub fn alerts(&self, query: &AlertQuery) -> Result<Vec<Alert>> {
        // Conditions are fixed text with numbered placeholders; values are always bound.
        let mut conditions: Vec<String> = Vec::new();
        let mut values: Vec<Box<dyn ToSql>> = Vec::new();
        if let Some(container) = query.container.as_ref().filter(|c| !c.is_empty()) {
            values.push(Box::new(container.clone()));
            let n = values.len();
            conditions.push(format!(
                "(container_name = ?{n} OR substr(container_id, 1, length(?{n})) = ?{n})"
            ));
        }
        if let Some(class) = query.class {
            values.push(Box::new(class_name(class)));
            conditions.push(format!("class = ?{}", values.len()));
        }
        if let Some(severity) = query.min_severity {
            values.push(Box::new(severity_rank(severity)));
            conditions.push(format!("severity >= ?{}", values.len()));
        }
        if let Some(since) = query.since {
            values.push(Box::new(nanos(since)));
            conditions.push(format!("last_seen >= ?{}", values.len()));
        }
        if query.open_only {
            conditions.push("ended = 0".to_string());
        }
        let mut sql = String::from("SELECT id, alert FROM alerts");
        if !conditions.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&conditions.join(" AND "));
        }
        sql.push_str(" ORDER BY last_seen DESC, first_seen DESC, id DESC");
        if query.limit > 0 {
            sql.push_str(&format!(" LIMIT {}", query.limit));
        }
        let rows = {
            let mut statement = self.conn.prepare(&sql).map_err(self.db("listing alerts"))?;
            let rows = statement
                .query_map(params_from_iter(values.iter()), |row| {
                    Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
                })
                .map_err(self.db("listing alerts"))?
                .collect::<rusqlite::Result<Vec<_>>>()
                .map_err(self.db("listing alerts"))?;
            rows
        };
        rows.iter().map(|(id, json)| decode(id, json)).collect()
    }

    /// The stored alert of incident `id`, if any.
    pub fn alert(&self, id: &str) -> Result<Option<Alert>> {
        let json: Option<String> = self
            .conn
            .query_row(
                "SELECT alert FROM alerts WHERE id = ?1",
                params![id],
                |row| row.get(0),
            )
            .optional()
            .map_err(self.db("reading an alert"))?;
        json.map(|json| decode(id, &json)).transpose()
    }

    /// How many alerts are stored.
    pub fn alert_count(&self) -> Result<u64> {
        let count: i64 = self
            .conn
            .query_row("SELECT count(*) FROM alerts", [], |row| row.get(0))
            .map_err(self.db("counting alerts"))?;
        Ok(count.max(0) as u64)
    }

    /// The retention bound: at most `max` alerts are kept ([`DEFAULT_MAX_ALERTS`] unless set);
    /// applied at the next [`Store::prune_alerts`], which this does not call.
    pub fn set_max_alerts(&mut self, max: usize) {
        self.max_alerts = max;
    }

    /// Applies the retention bound now: deletes the oldest ended incidents beyond it (never an
    /// open one) and returns how many were deleted.
    pub fn prune_alerts(&mut self) -> Result<usize> {
        let path = self.path.clone();
        let failed = |e: rusqlite::Error| StoreError::Database {
            path: path.clone(),
            message: format!("pruning old alerts: {e}"),
        };
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(failed)?;
        let total: i64 = tx
            .query_row("SELECT count(*) FROM alerts", [], |row| row.get(0))
            .map_err(failed)?;
        let excess = total.saturating_sub(i64::try_from(self.max_alerts).unwrap_or(i64::MAX));
        let deleted = if excess > 0 {
            tx.execute(
                "DELETE FROM alerts WHERE id IN (SELECT id FROM alerts WHERE ended = 1 \
                 ORDER BY last_seen ASC, id ASC LIMIT ?1)",
                params![excess],
            )
            .map_err(failed)?
        } else {
            0
        };
        tx.commit().map_err(failed)?;
        Ok(deleted)
    }
}

/// The alert stored as `json` under `id`, or an error naming the id.
fn decode(id: &str, json: &str) -> Result<Alert> {
    let unreadable = |message: String| StoreError::Alert {
        id: id.to_string(),
        message: format!("the stored record is unreadable: {message}"),
    };
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let alert: Alert = serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        unreadable(format!("{path}: {}", e.into_inner()))
    })?;
    if alert.id != id {
        return Err(unreadable(format!("it holds the alert {:?}", alert.id)));
    }
    Ok(alert)
}
