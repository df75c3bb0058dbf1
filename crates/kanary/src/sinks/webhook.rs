//! `webhook`: records POSTed as JSON to an HTTP(S) URL, one request per record.
//!
//! The agent's loop must never wait on the network, so [`WebhookSink::write`] only encodes the
//! record and hands it to a background thread through a bounded queue. When the queue is full
//! the record is dropped and counted, and a warning says how many were dropped, at most once a
//! minute. The thread sends each record with a per-request timeout and retries a failed
//! attempt (connection error, timeout, HTTP 429 or 5xx) with exponential backoff; any other
//! status is final (a 4xx will not get better by repeating it). On shutdown the queue is
//! drained for at most [`SHUTDOWN_GRACE`] (no more retries then); what is left is counted as
//! dropped.

use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kanary_model::config::{SinkConfig, SinkFormat};
use kanary_model::record::Record;

use super::{falco, Sink, Throttle};

/// How long a stopping agent keeps delivering what is queued.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// The first retry waits this long; each next one twice as long, up to [`MAX_BACKOFF`].
pub const FIRST_BACKOFF: Duration = Duration::from_millis(500);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The most of a response body read (only so the connection can be reused).
const MAX_RESPONSE_BYTES: u64 = 64 * 1024;

/// Everything a webhook needs.
#[derive(Debug, Clone)]
pub struct WebhookOptions {
    /// For logs.
    pub name: String,
    /// Where to POST.
    pub url: String,
    /// The record itself, or its Falco alert.
    pub format: SinkFormat,
    /// Extra headers (e.g. `Authorization`).
    pub headers: Vec<(String, String)>,
    /// Per request.
    pub timeout: Duration,
    /// Attempts after the first.
    pub retries: u32,
    /// Records waiting to be sent.
    pub queue: usize,
    /// Wait before the first retry (doubling after).
    pub backoff: Duration,
    /// This host's name, for the Falco format.
    pub hostname: Option<String>,
}

impl WebhookOptions {
    /// The options of a `[[sinks]]` webhook entry.
    pub fn from_config(name: String, config: &SinkConfig, hostname: Option<String>) -> Self {
        WebhookOptions {
            name,
            url: config.url.clone().unwrap_or_default(),
            format: config.format(),
            headers: config
                .headers
                .iter()
                .map(|(name, value)| (name.clone(), value.clone()))
                .collect(),
            timeout: config.timeout(),
            retries: config.retries(),
            queue: config.queue(),
            backoff: FIRST_BACKOFF,
            hostname,
        }
    }
}

/// What a webhook did so far.
#[derive(Debug, Default)]
pub struct WebhookStats {
    /// Records delivered (a 2xx answer).
    pub sent: AtomicU64,
    /// Records given up on (a final status, or every attempt failed).
    pub failed: AtomicU64,
    /// Records dropped because the queue was full, or left when shutting down.
    pub dropped: AtomicU64,
    /// Attempts repeated after a failure.
    pub retried: AtomicU64,
}

/// When the thread must stop retrying: set when the sink is dropped.
#[derive(Debug, Default)]
struct Shutdown(Mutex<Option<Instant>>);

impl Shutdown {
    fn deadline(&self) -> Option<Instant> {
        // A poisoned lock only means another thread panicked while holding it: the value
        // (a plain Option<Instant>) is still meaningful.
        *self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set(&self, deadline: Instant) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(deadline);
    }
}

/// POSTs records to a URL from a background thread (see the module documentation).
pub struct WebhookSink {
    name: String,
    format: SinkFormat,
    hostname: Option<String>,
    queue: Option<SyncSender<Vec<u8>>>,
    worker: Option<JoinHandle<()>>,
    stats: Arc<WebhookStats>,
    shutdown: Arc<Shutdown>,
    /// Drops not yet reported, and when they may be.
    unreported_drops: u64,
    drop_report: Throttle,
}

impl WebhookSink {
    /// Starts the sending thread.
    pub fn start(options: WebhookOptions) -> io::Result<Self> {
        let (queue, receiver) = mpsc::sync_channel(options.queue.max(1));
        let stats = Arc::new(WebhookStats::default());
        let shutdown = Arc::new(Shutdown::default());
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(options.timeout))
            // Statuses are judged here (retry or not), not turned into errors.
            .http_status_as_error(false)
            // A redirected POST would become a GET without its body: report it instead.
            .max_redirects(0)
            .user_agent(concat!("kanary/", env!("CARGO_PKG_VERSION")))
            .build()
            .into();
        let worker = Worker {
            agent,
            options: options.clone(),
            stats: Arc::clone(&stats),
            shutdown: Arc::clone(&shutdown),
            failure_report: Throttle::per_minute(),
            unreported_failures: 0,
        };
        let thread = std::thread::Builder::new()
            .name(format!("kanary-webhook-{}", options.name))
            .spawn(move || worker.run(receiver))?;
        Ok(WebhookSink {
            name: options.name,
            format: options.format,
            hostname: options.hostname,
            queue: Some(queue),
            worker: Some(thread),
            stats,
            shutdown,
            unreported_drops: 0,
            drop_report: Throttle::per_minute(),
        })
    }

    /// Its counters.
    #[cfg(test)]
    pub fn stats(&self) -> Arc<WebhookStats> {
        Arc::clone(&self.stats)
    }

    /// The request body for `record`, or `None` when this format does not carry it.
    fn body(&self, record: &Record) -> io::Result<Option<Vec<u8>>> {
        match self.format {
            SinkFormat::Kanary => Ok(Some(serde_json::to_vec(record)?)),
            SinkFormat::Falco => falco::event_of(record, self.hostname.as_deref())
                .map(|event| serde_json::to_vec(&event))
                .transpose()
                .map_err(Into::into),
        }
    }

    /// Warns about dropped records, at most once a minute.
    fn report_drops(&mut self) {
        if self.unreported_drops > 0 && self.drop_report.ready() {
            tracing::warn!(
                sink = %self.name,
                dropped = self.unreported_drops,
                total_dropped = self.stats.dropped.load(Ordering::Relaxed),
                "webhook queue full: records dropped (the endpoint is slower than the records \
                 come, or down; raise `queue` or check it)"
            );
            self.unreported_drops = 0;
        }
    }
}

impl Sink for WebhookSink {
    fn write(&mut self, record: &Record) -> io::Result<()> {
        let Some(body) = self.body(record)? else {
            return Ok(());
        };
        let Some(queue) = &self.queue else {
            return Err(io::Error::other("the webhook is shut down"));
        };
        match queue.try_send(body) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                // Never wait for the network on the agent's loop: drop, count, report.
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                self.unreported_drops += 1;
                self.report_drops();
            }
            Err(TrySendError::Disconnected(_)) => {
                return Err(io::Error::other(format!(
                    "the sending thread of webhook {} stopped",
                    self.name
                )));
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        // Delivery is the thread's; flushing must not wait for it. Only late drop reports.
        self.report_drops();
        Ok(())
    }
}

impl Drop for WebhookSink {
    fn drop(&mut self) {
        self.shutdown.set(Instant::now() + SHUTDOWN_GRACE);
        // Closing the queue ends the thread once it has drained it.
        self.queue = None;
        if let Some(worker) = self.worker.take() {
            if worker.join().is_err() {
                tracing::error!(sink = %self.name, "the webhook's sending thread panicked");
            }
        }
        let (sent, failed, dropped) = (
            self.stats.sent.load(Ordering::Relaxed),
            self.stats.failed.load(Ordering::Relaxed),
            self.stats.dropped.load(Ordering::Relaxed),
        );
        if failed > 0 || dropped > 0 {
            tracing::warn!(sink = %self.name, sent, failed, dropped, "webhook stopped; some records were not delivered");
        }
    }
}

/// The sending thread.
struct Worker {
    agent: ureq::Agent,
    options: WebhookOptions,
    stats: Arc<WebhookStats>,
    shutdown: Arc<Shutdown>,
    failure_report: Throttle,
    unreported_failures: u64,
}

/// How one attempt went.
enum Attempt {
    Delivered,
    /// Worth trying again, with the reason.
    Retry(String),
    /// Final, with the reason.
    Fail(String),
}

impl Worker {
    fn run(mut self, queue: Receiver<Vec<u8>>) {
        while let Ok(body) = queue.recv() {
            if self
                .shutdown
                .deadline()
                .is_some_and(|d| Instant::now() >= d)
            {
                // Out of time while stopping: count what is left rather than hold the exit.
                self.stats.dropped.fetch_add(1, Ordering::Relaxed);
                continue;
            }
            self.deliver(&body);
        }
    }

    fn deliver(&mut self, body: &[u8]) {
        let mut backoff = self.options.backoff;
        let mut attempt = 0;
        let reason = loop {
            match self.attempt(body) {
                Attempt::Delivered => {
                    self.stats.sent.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                Attempt::Fail(reason) => break reason,
                Attempt::Retry(reason) => {
                    let stopping = self.shutdown.deadline().is_some();
                    if attempt >= self.options.retries || stopping {
                        break reason;
                    }
                    attempt += 1;
                    self.stats.retried.fetch_add(1, Ordering::Relaxed);
                    self.sleep(backoff);
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        };
        self.stats.failed.fetch_add(1, Ordering::Relaxed);
        self.unreported_failures += 1;
        if self.failure_report.ready() {
            tracing::warn!(
                sink = %self.options.name,
                url = %self.options.url,
                failed = self.unreported_failures,
                %reason,
                "webhook: records not delivered"
            );
            self.unreported_failures = 0;
        }
    }

    /// Sleeps `duration`, waking early when the sink is dropped.
    fn sleep(&self, duration: Duration) {
        let until = Instant::now() + duration;
        loop {
            let now = Instant::now();
            if now >= until || self.shutdown.deadline().is_some() {
                return;
            }
            std::thread::sleep((until - now).min(Duration::from_millis(50)));
        }
    }

    fn attempt(&self, body: &[u8]) -> Attempt {
        let mut request = self
            .agent
            .post(&self.options.url)
            .header("Content-Type", "application/json");
        for (name, value) in &self.options.headers {
            request = request.header(name, value);
        }
        match request.send(body) {
            Ok(mut response) => {
                let status = response.status().as_u16();
                // Read (a bounded part of) the answer so the connection can be reused.
                let _ = response
                    .body_mut()
                    .with_config()
                    .limit(MAX_RESPONSE_BYTES)
                    .read_to_vec();
                match status {
                    200..=299 => Attempt::Delivered,
                    429 | 500..=599 => Attempt::Retry(format!("HTTP {status}")),
                    _ => Attempt::Fail(format!("HTTP {status}")),
                }
            }
            // Transport errors (refused, reset, timed out, TLS) are worth another try; errors
            // in the request itself (a bad URL or header) are not.
            Err(
                error @ (ureq::Error::BadUri(_)
                | ureq::Error::Http(_)
                | ureq::Error::InvalidProxyUrl
                | ureq::Error::RequireHttpsOnly(_)),
            ) => Attempt::Fail(error.to_string()),
            Err(error) => Attempt::Retry(error.to_string()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::mpsc::Receiver;

    use kanary_model::record::RecordBody;
    use serde_json::{json, Value};

    /// One request the test server received.
    #[derive(Debug)]
    struct Request {
        method: String,
        path: String,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    }

    impl Request {
        fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.as_str())
        }

        fn json(&self) -> Value {
            serde_json::from_slice(&self.body).unwrap()
        }
    }

    /// Reads one HTTP/1.1 request (headers, then a Content-Length body) off `stream`.
    fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
        let mut line = String::new();
        if reader.read_line(&mut line).ok()? == 0 {
            return None;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next()?.to_string();
        let path = parts.next()?.to_string();
        let mut headers = Vec::new();
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).ok()?;
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':')?;
            headers.push((name.trim().to_string(), value.trim().to_string()));
        }
        let length: usize = headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
            .and_then(|(_, v)| v.parse().ok())
            .unwrap_or(0);
        let mut body = vec![0; length];
        reader.read_exact(&mut body).ok()?;
        Some(Request {
            method,
            path,
            headers,
            body,
        })
    }

    /// A real HTTP server on a loopback port: answers the n-th request with `statuses[n]`
    /// (200 past the end) after `delay`, and hands every request to the test.
    struct Server {
        url: String,
        requests: Receiver<Request>,
    }

    impl Server {
        fn start(statuses: Vec<u16>, delay: Duration) -> Server {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let url = format!("http://{}/events", listener.local_addr().unwrap());
            let (tx, requests) = mpsc::channel();
            std::thread::spawn(move || {
                let mut served = 0;
                for stream in listener.incoming() {
                    let Ok(stream) = stream else { return };
                    let mut reader = BufReader::new(stream);
                    // Keep-alive: serve every request of the connection.
                    while let Some(request) = read_request(&mut reader) {
                        std::thread::sleep(delay);
                        let status = statuses.get(served).copied().unwrap_or(200);
                        served += 1;
                        let answer = format!(
                            "HTTP/1.1 {status} X\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
                        );
                        if tx.send(request).is_err() {
                            return;
                        }
                        if reader.get_mut().write_all(answer.as_bytes()).is_err() {
                            break;
                        }
                    }
                }
            });
            Server { url, requests }
        }

        fn next(&self) -> Request {
            self.requests
                .recv_timeout(Duration::from_secs(30))
                .expect("the webhook made no request")
        }
    }

    fn options(url: &str, format: SinkFormat) -> WebhookOptions {
        WebhookOptions {
            name: "test".into(),
            url: url.to_string(),
            format,
            headers: vec![("Authorization".into(), "Bearer s3cret".into())],
            timeout: Duration::from_secs(10),
            retries: 3,
            queue: 16,
            backoff: Duration::from_millis(20),
            hostname: Some("node-1".into()),
        }
    }

    fn alert_record(ended: bool) -> Record {
        let mut alert = super::super::falco::tests::sample_alert();
        alert.ended = ended;
        Record {
            ts: "2026-03-01T10:00:05.300000000Z".into(),
            body: RecordBody::Alert(alert),
        }
    }

    fn stats_record() -> Record {
        serde_json::from_value(json!({
            "ts": "2026-03-01T10:00:05.300000000Z",
            "type": "drops",
            "collector": "file",
            "container": null,
            "ringbuf_full": 3,
            "map_full": 0
        }))
        .unwrap()
    }

    /// Waits until `done` holds (the thread works in the background).
    fn eventually(what: &str, done: impl Fn() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !done() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn records_are_posted_as_kanary_json_with_the_configured_headers() {
        let server = Server::start(vec![], Duration::ZERO);
        let mut sink = WebhookSink::start(options(&server.url, SinkFormat::Kanary)).unwrap();
        let record = alert_record(false);
        sink.write(&record).unwrap();
        sink.write(&alert_record(true)).unwrap();
        sink.flush().unwrap();
        let first = server.next();
        assert_eq!(first.method, "POST");
        assert_eq!(first.path, "/events");
        assert_eq!(first.header("Authorization"), Some("Bearer s3cret"));
        assert_eq!(first.header("Content-Type"), Some("application/json"));
        assert!(first.header("User-Agent").unwrap().starts_with("kanary/"));
        assert_eq!(first.json(), serde_json::to_value(&record).unwrap());
        assert_eq!(first.json()["type"], "alert");
        // The kanary format carries the ended record too.
        assert_eq!(server.next().json()["ended"], true);
        let stats = sink.stats();
        eventually("two deliveries", || stats.sent.load(Ordering::Relaxed) == 2);
        assert_eq!(stats.failed.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn the_falco_format_posts_the_falco_alert_and_skips_the_rest() {
        let server = Server::start(vec![], Duration::ZERO);
        let mut sink = WebhookSink::start(options(&server.url, SinkFormat::Falco)).unwrap();
        sink.write(&stats_record()).unwrap();
        sink.write(&alert_record(true)).unwrap();
        let record = alert_record(false);
        sink.write(&record).unwrap();
        let request = server.next();
        let RecordBody::Alert(alert) = &record.body else {
            unreachable!()
        };
        let expected = falco::event(alert, Some("node-1")).unwrap();
        assert_eq!(request.json(), serde_json::to_value(&expected).unwrap());
        // What falcosidekick checks before it accepts an event.
        let body = request.json();
        assert_eq!(body["priority"], "Error");
        assert_eq!(body["source"], "kanary");
        assert_eq!(body["hostname"], "node-1");
        assert!(!body["rule"].as_str().unwrap().is_empty());
        assert!(!body["output_fields"].as_object().unwrap().is_empty());
        drop(sink);
        // Nothing else was sent: the drops record and the ended alert were not Falco events.
        assert!(server.requests.try_recv().is_err());
    }

    #[test]
    fn a_failed_attempt_is_retried_after_a_500() {
        let server = Server::start(vec![500, 503], Duration::ZERO);
        let mut sink = WebhookSink::start(options(&server.url, SinkFormat::Kanary)).unwrap();
        sink.write(&alert_record(false)).unwrap();
        let attempts: Vec<Value> = (0..3).map(|_| server.next().json()).collect();
        assert!(attempts.iter().all(|a| *a == attempts[0]), "the same body");
        let stats = sink.stats();
        eventually("the delivery", || stats.sent.load(Ordering::Relaxed) == 1);
        assert_eq!(stats.retried.load(Ordering::Relaxed), 2);
        assert_eq!(stats.failed.load(Ordering::Relaxed), 0);
    }

    #[test]
    fn a_client_error_is_final_and_retries_run_out() {
        // 400: not retried. Then 500 four times: the first attempt and 3 retries, then given up.
        let server = Server::start(vec![400, 500, 500, 500, 500], Duration::ZERO);
        let mut sink = WebhookSink::start(options(&server.url, SinkFormat::Kanary)).unwrap();
        sink.write(&alert_record(false)).unwrap();
        let stats = sink.stats();
        eventually("the refusal", || stats.failed.load(Ordering::Relaxed) == 1);
        assert_eq!(stats.retried.load(Ordering::Relaxed), 0);
        sink.write(&alert_record(false)).unwrap();
        eventually("giving up", || stats.failed.load(Ordering::Relaxed) == 2);
        assert_eq!(stats.retried.load(Ordering::Relaxed), 3);
        assert_eq!(stats.sent.load(Ordering::Relaxed), 0);
        for _ in 0..5 {
            server.next();
        }
    }

    #[test]
    fn a_refused_connection_is_retried_then_counted_as_failed() {
        // A port nothing listens on: bind one, then close it.
        let url = {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            format!("http://{}/", listener.local_addr().unwrap())
        };
        let mut sink = WebhookSink::start(WebhookOptions {
            retries: 1,
            ..options(&url, SinkFormat::Kanary)
        })
        .unwrap();
        sink.write(&alert_record(false)).unwrap();
        let stats = sink.stats();
        eventually("giving up", || stats.failed.load(Ordering::Relaxed) == 1);
        assert_eq!(stats.retried.load(Ordering::Relaxed), 1);
    }

    #[test]
    fn a_full_queue_drops_without_blocking_the_caller() {
        // Each answer takes 300 ms; the queue holds 2.
        let server = Server::start(vec![], Duration::from_millis(300));
        let mut sink = WebhookSink::start(WebhookOptions {
            queue: 2,
            ..options(&server.url, SinkFormat::Kanary)
        })
        .unwrap();
        let record = alert_record(false);
        let started = Instant::now();
        for _ in 0..50 {
            sink.write(&record).unwrap();
        }
        sink.flush().unwrap();
        let took = started.elapsed();
        let stats = sink.stats();
        // One in flight and two queued are kept (a few more only if this thread was descheduled
        // for 300 ms mid-loop); the rest were dropped at once: 50 sends at 300 ms each would
        // take 15 s if write waited.
        let dropped = stats.dropped.load(Ordering::Relaxed);
        assert!((40..=48).contains(&dropped), "dropped {dropped}");
        assert!(took < Duration::from_secs(5), "write blocked for {took:?}");
        let kept = 50 - dropped;
        eventually("the kept records", || {
            stats.sent.load(Ordering::Relaxed) == kept
        });
        for _ in 0..kept {
            server.next();
        }
    }

    #[test]
    fn dropping_the_sink_delivers_what_is_queued() {
        let server = Server::start(vec![], Duration::from_millis(20));
        let mut sink = WebhookSink::start(options(&server.url, SinkFormat::Kanary)).unwrap();
        for _ in 0..5 {
            sink.write(&alert_record(false)).unwrap();
        }
        let stats = sink.stats();
        drop(sink);
        assert_eq!(stats.sent.load(Ordering::Relaxed), 5);
        for _ in 0..5 {
            server.next();
        }
    }
}
