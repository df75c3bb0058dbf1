//! The handlers of the JSON API (`docs/api.md`, the contract) and of `/metrics`, and the
//! router with its token check. Read-only: every route is a GET; anything else is 405. Bad
//! input is a 4xx with `{"error": ...}`, never a panic or a 500.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use kanary_detect::baseline::BaselineKey;
use kanary_model::record::{Alert, AlertClass, Severity};
use kanary_store::{AlertQuery, Store};
use serde::Deserialize;
use serde_json::{json, Value};

use super::metrics;
use super::state::{lock, name_of, relative, ContainerState, HostState, Shared, Window};

/// Alerts the overview lists.
const OVERVIEW_ALERTS: usize = 20;
/// `/api/alerts`' default and largest `limit`.
pub const DEFAULT_LIMIT: usize = 100;
/// See [`DEFAULT_LIMIT`].
pub const MAX_LIMIT: usize = 1000;
/// How far around an incident `/api/alerts/{id}` shows the container's series.
const AROUND: Duration = Duration::from_secs(300);

/// What every handler shares.
#[derive(Clone)]
pub struct App {
    /// The host state the agent feeds.
    pub state: Shared,
    /// The store's directory (`--data-dir`), for alerts and baselines.
    pub data_dir: PathBuf,
    /// The store, opened on first use (it may not exist until detection writes it).
    store: Arc<Mutex<Option<Store>>>,
    /// The bearer token requests must carry, when one is set.
    pub token: Option<Arc<str>>,
    /// Per-syscall series per container on `/metrics`.
    pub top_syscalls: usize,
}

impl App {
    /// The handlers' shared state.
    pub fn new(
        state: Shared,
        data_dir: PathBuf,
        token: Option<String>,
        top_syscalls: usize,
    ) -> Self {
        App {
            state,
            data_dir,
            store: Arc::default(),
            token: token.map(Into::into),
            top_syscalls,
        }
    }

    /// Runs `f` on the store; `None` when there is none (yet) or it cannot be opened.
    fn with_store<T>(&self, f: impl FnOnce(&mut Store) -> T) -> Option<T> {
        let mut guard = self
            .store
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if guard.is_none() {
            *guard = Store::open_existing(&self.data_dir).ok();
        }
        guard.as_mut().map(f)
    }
}

/// A 4xx (or 503) with `{"error": message}`.
#[derive(Debug)]
pub struct ApiError(StatusCode, String);

impl ApiError {
    fn bad(message: impl Into<String>) -> Self {
        ApiError(StatusCode::BAD_REQUEST, message.into())
    }
    fn not_found(message: impl Into<String>) -> Self {
        ApiError(StatusCode::NOT_FOUND, message.into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(json!({"error": self.1}))).into_response()
    }
}

type ApiResult = Result<Json<Value>, ApiError>;

/// The router: `/metrics`, `/api/...`, JSON 404 and 405, and the token check when a token is
/// set.
pub fn router(app: App) -> Router {
    Router::new()
        .route("/metrics", get(metrics_handler))
        .route("/api/overview", get(overview))
        .route("/api/containers/{id}", get(container))
        .route("/api/alerts", get(alerts))
        .route("/api/alerts/{id}", get(alert))
        .route("/api/network", get(network))
        .fallback(|| async { ApiError::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError(StatusCode::METHOD_NOT_ALLOWED, "read-only: only GET".into())
        })
        .layer(middleware::from_fn_with_state(app.clone(), authorize))
        // The web UI's static assets (no data) after the token layer: a browser cannot send the
        // bearer token for the page itself; the page sends it on its API calls.
        .route("/", get(super::ui::handler))
        .route("/ui/{*path}", get(super::ui::handler))
        .with_state(app)
}

/// Equal strings, compared in time independent of where they differ.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Lets a request through when no token is set or it carries `Authorization: Bearer TOKEN`.
async fn authorize(
    State(app): State<App>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    if let Some(token) = &app.token {
        let given = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !same(given.as_bytes(), token.as_bytes()) {
            let mut response = ApiError(
                StatusCode::UNAUTHORIZED,
                "missing or wrong bearer token".into(),
            )
            .into_response();
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                header::HeaderValue::from_static("Bearer"),
            );
            return response;
        }
    }
    next.run(request).await
}

async fn metrics_handler(State(app): State<App>) -> Response {
    let text = metrics::render(&lock(&app.state), app.top_syscalls);
    match text {
        Ok(text) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response(),
        Err(_) => ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "encoding the metrics failed".into(),
        )
        .into_response(),
    }
}

/// A container as the overview shows it.
pub fn container_json(state: &HostState, c: &ContainerState) -> Value {
    let (judged, learning) = state.judgement(c);
    let learning = learning.filter(|l| l.phase == "learning").map(|l| {
        let (progress, eta) = state.progress(l);
        json!({"progress": progress, "eta_s": eta, "windows": l.windows, "events": l.events})
    });
    let last = c.windows.back();
    let score = last
        .and_then(Window::top_score)
        .map(|s| json!({"detector": s.detector, "score": s.score, "threshold": s.threshold}));
    let skip = c
        .windows
        .len()
        .saturating_sub(super::state::SPARKLINE_WINDOWS);
    let sparkline: Vec<f64> = c
        .windows
        .iter()
        .skip(skip)
        .map(|w| w.top_score().map(relative).unwrap_or(0.0))
        .collect();
    json!({
        "id": c.container.id,
        "name": c.container.name,
        "image": c.container.image,
        "image_id": c.image_id,
        "state": judged,
        "learning": learning,
        "score": score,
        "sparkline": sparkline,
        "open_alerts": state.open_alerts(&c.container.id),
        "since": c.since,
        "running": c.running,
    })
}

async fn overview(State(app): State<App>) -> ApiResult {
    let state = lock(&app.state);
    let a = &state.agent;
    let drops: BTreeMap<&String, u64> = a
        .collectors
        .iter()
        .chain(a.drops.keys())
        .map(|name| {
            let total = a.drops.get(name).map(|by| by.values().sum()).unwrap_or(0);
            (name, total)
        })
        .collect();
    let containers: Vec<Value> = state
        .containers
        .values()
        .map(|c| container_json(&state, c))
        .collect();
    let alerts: Vec<&Alert> = state.alerts.iter().take(OVERVIEW_ALERTS).collect();
    Ok(Json(json!({
        "agent": {
            "version": a.version,
            "started": a.started,
            "cpu_percent": a.cpu_percent,
            "rss_bytes": a.rss_bytes,
            "records_per_s": a.records_per_s,
            "drops": drops,
        },
        "containers": containers,
        "alerts": alerts.iter().map(|alert| alert_json(alert)).collect::<Vec<_>>(),
    })))
}

/// An alert as records write it (`type` and `ts` included, as in `docs/schema.md`).
fn alert_json(alert: &Alert) -> Value {
    let mut value = serde_json::to_value(alert).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.insert("type".into(), json!("alert"));
        map.insert("ts".into(), json!(alert.last_seen));
    }
    value
}

/// The series of `windows`: timestamps, figures and scores aligned (null where a window lacks
/// one), and each detector's newest threshold.
pub fn series_json<'a>(windows: impl Iterator<Item = &'a Window> + Clone) -> Value {
    let metric_names: BTreeSet<&String> = windows.clone().flat_map(|w| w.metrics.keys()).collect();
    let detectors: BTreeSet<&String> = windows
        .clone()
        .flat_map(|w| w.scores.iter().map(|s| &s.detector))
        .collect();
    let ts: Vec<&String> = windows.clone().map(|w| &w.ts).collect();
    let metrics: BTreeMap<&String, Vec<Option<f64>>> = metric_names
        .iter()
        .map(|name| {
            let values = windows
                .clone()
                .map(|w| w.metrics.get(*name).copied())
                .collect();
            (*name, values)
        })
        .collect();
    let mut thresholds: BTreeMap<&String, f64> = BTreeMap::new();
    let scores: BTreeMap<&String, Vec<Option<f64>>> = detectors
        .iter()
        .map(|detector| {
            let values = windows
                .clone()
                .map(|w| {
                    let s = w.scores.iter().find(|s| &s.detector == *detector)?;
                    thresholds.insert(*detector, s.threshold);
                    Some(s.score)
                })
                .collect();
            (*detector, values)
        })
        .collect();
    json!({"ts": ts, "metrics": metrics, "scores": scores, "thresholds": thresholds})
}

async fn container(State(app): State<App>, Path(id): Path<String>) -> ApiResult {
    let (body, key) = {
        let state = lock(&app.state);
        let c = state
            .find(&id)
            .ok_or_else(|| ApiError::not_found(format!("no container {id:?}")))?;
        let key = c
            .container
            .image
            .as_ref()
            .map(|image| BaselineKey::new(c.image_id.as_deref(), image));
        let body = json!({
            "container": container_json(&state, c),
            "series": series_json(c.windows.iter()),
        });
        (body, (key, c.container.id.clone()))
    };
    let (key, full_id) = key;
    let baseline = key
        .and_then(|key| app.with_store(|store| store.get(&key).ok().flatten()))
        .flatten()
        .and_then(|b| b.models.resource)
        .map(|model| {
            model
                .baselines()
                .iter()
                .map(|b| {
                    (
                        b.metric.clone(),
                        json!({"median": b.median, "spread": b.spread, "max": b.max}),
                    )
                })
                .collect::<serde_json::Map<String, Value>>()
        });
    let query = AlertQuery {
        container: Some(full_id.clone()),
        limit: MAX_LIMIT,
        ..AlertQuery::default()
    };
    let alerts = query_alerts(&app, &query)?;
    let mut body = body;
    body["baseline"] = baseline.map(Value::Object).unwrap_or(Value::Null);
    body["alerts"] = Value::Array(alerts.iter().map(alert_json).collect());
    Ok(Json(body))
}

/// `/api/alerts`' query; every value is text, checked here so each error names its key.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertsParams {
    container: Option<String>,
    class: Option<String>,
    severity: Option<String>,
    since: Option<String>,
    open: Option<String>,
    limit: Option<String>,
}

/// A unit enum from its serde name.
fn parse_name<T: serde::de::DeserializeOwned>(key: &str, text: &str) -> Result<T, ApiError> {
    serde_json::from_value(json!(text))
        .map_err(|_| ApiError::bad(format!("{key}: unknown value {text:?}")))
}

impl AlertsParams {
    /// The store query these parameters ask for, at `now`.
    pub fn query(&self, now: SystemTime) -> Result<AlertQuery, ApiError> {
        let given = |v: &Option<String>| {
            v.as_deref()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let mut query = AlertQuery {
            container: given(&self.container),
            limit: DEFAULT_LIMIT,
            ..AlertQuery::default()
        };
        if let Some(class) = given(&self.class) {
            query.class = Some(parse_name::<AlertClass>("class", &class)?);
        }
        if let Some(severity) = given(&self.severity) {
            query.min_severity = Some(parse_name::<Severity>("severity", &severity)?);
        }
        if let Some(since) = given(&self.since) {
            let at = match humantime::parse_rfc3339_weak(&since) {
                Ok(at) => at,
                Err(_) => humantime::parse_duration(&since)
                    .ok()
                    .and_then(|ago| now.checked_sub(ago))
                    .ok_or_else(|| {
                        ApiError::bad(format!(
                            "since: {since:?} is neither an RFC 3339 time nor a duration like 1h"
                        ))
                    })?,
            };
            query.since = Some(at);
        }
        if let Some(open) = given(&self.open) {
            query.open_only = match open.as_str() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => {
                    return Err(ApiError::bad(format!(
                        "open: {open:?} is not true or false"
                    )))
                }
            };
        }
        if let Some(limit) = given(&self.limit) {
            let n: usize = limit.parse().ok().filter(|n| *n > 0).ok_or_else(|| {
                ApiError::bad(format!("limit: {limit:?} is not a positive number"))
            })?;
            query.limit = n.min(MAX_LIMIT);
        }
        Ok(query)
    }
}

/// Whether an in-memory alert passes `query` (when there is no store).
fn passes(alert: &Alert, query: &AlertQuery) -> bool {
    let container = query
        .container
        .as_ref()
        .is_none_or(|c| alert.container.name == *c || alert.container.id.starts_with(c.as_str()));
    let since = query.since.is_none_or(|since| {
        humantime::parse_rfc3339_weak(&alert.last_seen).is_ok_and(|last| last >= since)
    });
    container
        && since
        && query.class.is_none_or(|class| alert.class == class)
        && query.min_severity.is_none_or(|s| alert.severity >= s)
        && (!query.open_only || !alert.ended)
}

/// The alerts `query` selects: from the store when there is one, else the recent ones in
/// memory (detection off, or nothing stored yet).
fn query_alerts(app: &App, query: &AlertQuery) -> Result<Vec<Alert>, ApiError> {
    match app.with_store(|store| store.alerts(query)) {
        Some(Ok(alerts)) => Ok(alerts),
        Some(Err(error)) => Err(ApiError(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("reading the alert store: {error}"),
        )),
        None => {
            let state = lock(&app.state);
            let limit = if query.limit == 0 {
                usize::MAX
            } else {
                query.limit
            };
            Ok(state
                .alerts
                .iter()
                .filter(|a| passes(a, query))
                .take(limit)
                .cloned()
                .collect())
        }
    }
}

async fn alerts(
    State(app): State<App>,
    params: Result<Query<AlertsParams>, QueryRejection>,
) -> ApiResult {
    let Query(params) = params.map_err(|rejection| ApiError::bad(rejection.body_text()))?;
    let query = params.query(SystemTime::now())?;
    let alerts = query_alerts(&app, &query)?;
    Ok(Json(Value::Array(alerts.iter().map(alert_json).collect())))
}

/// What each alert class means, for the explanation step.
fn explain(class: AlertClass) -> &'static str {
    match class {
        AlertClass::SequenceAnomaly => "The container's syscall sequences or syscall mix departed from what its image's baseline learnt.",
        AlertClass::SuspiciousSyscall => "A system call that is suspicious whatever the baseline.",
        AlertClass::UnexpectedProcess => "A program or parent→child pair the image's baseline never saw.",
        AlertClass::UnexpectedFile => "A file path the image's baseline never saw.",
        AlertClass::UnauthorizedConnection => "A connection or listening port the image's baseline never saw, or a policy forbids.",
        AlertClass::ResourceAnomaly => "CPU, memory, IO, network or process figures far outside the image's learnt band.",
        AlertClass::EscapeAttempt => "An attempt to leave the container: no baseline is needed to judge it.",
        AlertClass::PrivilegeEscalation => "An attempt to gain privileges: powerful capabilities, module loads, ptrace of another process.",
    }
}

/// The steps of an alert's decision, as `docs/api.md` lists them.
pub fn steps(alert: &Alert) -> Value {
    let evidence: Vec<String> = alert
        .contributions
        .iter()
        .map(|c| match &c.detail {
            Some(detail) => format!("{}: {detail}", c.feature),
            None => c.feature.clone(),
        })
        .collect();
    let features: Vec<Value> = alert
        .contributions
        .iter()
        .map(|c| json!({"feature": c.feature, "baseline": c.baseline, "observed": c.observed}))
        .collect();
    let detectors: Vec<Value> = alert
        .detectors
        .iter()
        .map(|d| json!({"detector": d.detector, "score": d.score, "threshold": d.threshold, "anomalous": d.anomalous}))
        .collect();
    let decision = format!(
        "{}, severity {}, score {:.2} over threshold {:.2} ({}), {} anomalous window(s) from {} to {}{}",
        name_of(&alert.class),
        name_of(&alert.severity),
        alert.score,
        alert.threshold,
        alert.detector,
        alert.count,
        alert.first_seen,
        alert.last_seen,
        if alert.ended { ", ended" } else { ", open" },
    );
    let mut explanation = vec![explain(alert.class).to_string()];
    if let Some(top) = alert.contributions.first() {
        explanation.push(format!(
            "Most anomalous feature: {} (baseline {}, observed {}).",
            top.feature, top.baseline, top.observed
        ));
    }
    json!([
        {"step": "evidence", "title": "What was seen", "items": evidence},
        {"step": "features", "title": "Features against the baseline", "items": features},
        {"step": "detectors", "title": "Every detector's score", "items": detectors},
        {"step": "decision", "title": "Decision", "items": [decision]},
        {"step": "explanation", "title": "Why it matters", "items": explanation},
    ])
}

async fn alert(State(app): State<App>, Path(id): Path<String>) -> ApiResult {
    if id.is_empty() || id.len() > 256 {
        return Err(ApiError::bad("alert id: 1 to 256 characters"));
    }
    let stored = match app.with_store(|store| store.alert(&id)) {
        Some(Ok(found)) => found,
        Some(Err(error)) => {
            return Err(ApiError(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("reading the alert store: {error}"),
            ))
        }
        None => None,
    };
    let state = lock(&app.state);
    let alert = stored
        .or_else(|| state.alerts.iter().find(|a| a.id == id).cloned())
        .ok_or_else(|| ApiError::not_found(format!("no alert {id:?}")))?;
    let series = state.containers.get(&alert.container.id).and_then(|c| {
        let from = humantime::parse_rfc3339_weak(&alert.first_seen)
            .ok()?
            .checked_sub(AROUND)?;
        let to = humantime::parse_rfc3339_weak(&alert.last_seen).ok()? + AROUND;
        let around = c.windows.iter().filter(move |w| {
            humantime::parse_rfc3339_weak(&w.ts).is_ok_and(|t| t >= from && t <= to)
        });
        Some(series_json(around))
    });
    Ok(Json(json!({
        "alert": alert_json(&alert),
        "steps": steps(&alert),
        "series": series,
    })))
}

async fn network(State(app): State<App>) -> ApiResult {
    let state = lock(&app.state);
    let mut nodes: BTreeMap<String, Value> = state
        .containers
        .values()
        .map(|c| {
            (
                c.container.id.clone(),
                json!({"id": c.container.id, "name": c.container.name,
                       "image": c.container.image, "running": c.running}),
            )
        })
        .collect();
    let mut edges: Vec<_> = state.edges.values().collect();
    edges.sort_by(|a, b| (&a.from, &a.to, a.port).cmp(&(&b.from, &b.to, b.port)));
    for e in &edges {
        for end in [&e.from, &e.to] {
            nodes.entry(end.clone()).or_insert_with(|| {
                json!({"id": end, "name": if *end == e.to { e.target.clone() } else { end.clone() },
                       "image": null, "running": null})
            });
        }
    }
    let edges: Vec<Value> = edges
        .iter()
        .map(|e| {
            json!({"from": e.from, "to": e.to, "port": e.port, "protocol": e.protocol,
                   "count": e.count, "failed": e.failed, "last_seen": e.last_seen,
                   "authorized": e.authorized})
        })
        .collect();
    Ok(Json(
        json!({"nodes": nodes.into_values().collect::<Vec<_>>(), "edges": edges}),
    ))
}

#[cfg(test)]
mod tests {
    use super::super::state::tests::{sample, DB, ID};
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    fn app(token: Option<&str>) -> (App, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let app = App::new(
            Arc::new(Mutex::new(sample())),
            dir.path().to_path_buf(),
            token.map(str::to_string),
            10,
        );
        (app, dir)
    }

    async fn get(
        app: &App,
        method: &str,
        uri: &str,
        token: Option<&str>,
    ) -> (StatusCode, Value, String) {
        let mut request = Request::builder().method(method).uri(uri);
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let response = router(app.clone())
            .oneshot(request.body(Body::empty()).unwrap())
            .await
            .unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 24)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&bytes).to_string();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        )
    }

    fn run<F: std::future::Future>(f: F) -> F::Output {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn overview_container_network_and_alerts_follow_the_contract() {
        run(async {
            let (app, _dir) = app(None);
            let (status, overview, _) = get(&app, "GET", "/api/overview", None).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(overview["agent"]["version"], "0.1.0");
            assert_eq!(overview["agent"]["drops"]["syscalls"], 0);
            let c = &overview["containers"][0];
            assert_eq!(c["id"], ID);
            assert_eq!(c["state"], "learning");
            assert_eq!(c["learning"]["windows"], 30);
            assert_eq!(c["score"]["detector"], "invariants");
            assert_eq!(c["sparkline"], json!([0.5, 1.5]));
            assert_eq!(c["open_alerts"], 1);
            assert_eq!(c["running"], true);
            assert_eq!(overview["alerts"][0]["type"], "alert");

            let (status, detail, _) =
                get(&app, "GET", &format!("/api/containers/{ID}"), None).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(detail["container"]["name"], "web");
            assert_eq!(detail["series"]["ts"].as_array().unwrap().len(), 2);
            assert_eq!(
                detail["series"]["metrics"]["syscalls"],
                json!([50.0, 100.0])
            );
            assert_eq!(detail["series"]["scores"]["invariants"], json!([1.0, 3.0]));
            assert_eq!(detail["series"]["thresholds"]["resource"], 3.0);
            assert_eq!(detail["baseline"], Value::Null, "no store: learning");
            assert_eq!(detail["alerts"][0]["id"], "aaaaaaaaaaaa-1");

            let (status, net, _) = get(&app, "GET", "/api/network", None).await;
            assert_eq!(status, StatusCode::OK);
            let edge = &net["edges"][0];
            assert_eq!(
                (edge["from"].as_str(), edge["to"].as_str()),
                (Some(ID), Some(DB))
            );
            assert_eq!(edge["count"], 4);
            assert_eq!(edge["failed"], 2);
            assert_eq!(edge["authorized"], false);
            assert!(net["nodes"]
                .as_array()
                .unwrap()
                .iter()
                .any(|n| n["id"] == DB && n["name"] == "redis:7"));

            let (status, list, _) = get(&app, "GET", "/api/alerts?container=web&class=unauthorized_connection&severity=medium&since=1h&open=true&limit=5", None).await;
            assert_eq!(status, StatusCode::OK);
            assert_eq!(
                list.as_array().unwrap().len(),
                0,
                "since 1h: the sample is from 2026-03-01"
            );
            let (_, list, _) = get(
                &app,
                "GET",
                "/api/alerts?container=&class=&severity=high&since=2026-03-01T00:00:00Z&open=true",
                None,
            )
            .await;
            assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
            let (_, list, _) = get(&app, "GET", "/api/alerts?severity=critical", None).await;
            assert_eq!(list.as_array().unwrap().len(), 0);

            let (status, one, _) = get(&app, "GET", "/api/alerts/aaaaaaaaaaaa-1", None).await;
            assert_eq!(status, StatusCode::OK);
            let steps: Vec<&str> = one["steps"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["step"].as_str().unwrap())
                .collect();
            assert_eq!(
                steps,
                [
                    "evidence",
                    "features",
                    "detectors",
                    "decision",
                    "explanation"
                ]
            );
            assert_eq!(one["steps"][2]["items"][0]["detector"], "behaviour");
            assert_eq!(one["series"]["ts"].as_array().unwrap().len(), 2, "{one}");

            let (status, _, text) = get(&app, "GET", "/metrics", None).await;
            assert_eq!(status, StatusCode::OK);
            assert!(text.contains("kanary_container_syscalls_total"), "{text}");
        });
    }

    #[test]
    fn bad_input_is_a_json_4xx() {
        run(async {
            let (app, _dir) = app(None);
            for (uri, status) in [
                ("/api/alerts?limit=abc", StatusCode::BAD_REQUEST),
                ("/api/alerts?limit=0", StatusCode::BAD_REQUEST),
                ("/api/alerts?class=nope", StatusCode::BAD_REQUEST),
                ("/api/alerts?severity=huge", StatusCode::BAD_REQUEST),
                ("/api/alerts?since=yesterday", StatusCode::BAD_REQUEST),
                ("/api/alerts?open=maybe", StatusCode::BAD_REQUEST),
                ("/api/alerts?bogus=1", StatusCode::BAD_REQUEST),
                ("/api/alerts/nope", StatusCode::NOT_FOUND),
                ("/api/containers/ffff", StatusCode::NOT_FOUND),
                ("/api/nothing", StatusCode::NOT_FOUND),
            ] {
                let (got, body, text) = get(&app, "GET", uri, None).await;
                assert_eq!(got, status, "{uri}: {text}");
                assert!(body["error"].is_string(), "{uri}: {text}");
            }
            let (status, body, _) = get(&app, "POST", "/api/overview", None).await;
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
            assert!(body["error"].is_string());
            let (status, _, _) = get(&app, "DELETE", "/metrics", None).await;
            assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
            // A limit over the bound is served at the bound.
            let query = AlertsParams {
                limit: Some("5000".into()),
                ..Default::default()
            }
            .query(SystemTime::now())
            .unwrap();
            assert_eq!(query.limit, MAX_LIMIT);
        });
    }

    #[test]
    fn a_token_is_enforced_everywhere() {
        run(async {
            let (app, _dir) = app(Some("s3cret"));
            for uri in ["/metrics", "/api/overview", "/api/network", "/api/alerts"] {
                let (status, body, _) = get(&app, "GET", uri, None).await;
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
                assert!(body["error"].is_string());
                let (status, _, _) = get(&app, "GET", uri, Some("wrong")).await;
                assert_eq!(status, StatusCode::UNAUTHORIZED, "{uri}");
                let (status, _, _) = get(&app, "GET", uri, Some("s3cret")).await;
                assert_eq!(status, StatusCode::OK, "{uri}");
            }
        });
    }
}
