//! The built-in web UI in a real browser: a real agent with `--listen` learns two containers'
//! shared baseline, a real anomaly (a program the image never ran) raises an alert, and headless
//! Chromium (Debian's `/usr/bin/chromium`, driven over the DevTools protocol) visits every page.
//! Any JavaScript exception or console error fails the test; each page must show what it is for
//! (charts drawn, the alert's analysis steps naming the container and the program).

mod common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Agent, Container, TestImage, STEADY_LOOP};
use headless_chrome::protocol::cdp::types::Event;
use headless_chrome::protocol::cdp::Log::LogEntryLevel;
use headless_chrome::protocol::cdp::Runtime::ConsoleAPICalledEventTypeOption;
use headless_chrome::{Browser, LaunchOptions, Tab};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);
const CHROMIUM: &str = "/usr/bin/chromium";

/// A loopback port nobody listens on right now.
fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a free port");
    listener.local_addr().expect("local address").port()
}

/// `GET base + path` as JSON, or `None` until the server answers 200.
fn get_json(base: &str, path: &str) -> Option<Value> {
    let mut response = ureq::get(&format!("{base}{path}")).call().ok()?;
    let text = response.body_mut().read_to_string().ok()?;
    serde_json::from_str(&text).ok()
}

/// Headless Chromium with one tab, recording every JavaScript exception and console or log
/// error of the pages it shows.
struct Ui {
    _browser: Browser,
    tab: Arc<Tab>,
    base: String,
    problems: Arc<Mutex<Vec<String>>>,
}

impl Ui {
    fn open(base: &str) -> Ui {
        let options = LaunchOptions::default_builder()
            .path(Some(CHROMIUM.into()))
            .headless(true)
            // Tests run as root, where Chromium's sandbox cannot start.
            .sandbox(false)
            .window_size(Some((1280, 1000)))
            .idle_browser_timeout(Duration::from_secs(300))
            .build()
            .expect("Chromium launch options");
        let browser = Browser::new(options).expect("starting /usr/bin/chromium");
        let tab = browser.new_tab().expect("a browser tab");
        tab.set_default_timeout(WAIT);
        let problems = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&problems);
        tab.add_event_listener(Arc::new(move |event: &Event| {
            let problem = match event {
                Event::RuntimeExceptionThrown(e) => {
                    let d = &e.params.exception_details;
                    let what = d
                        .exception
                        .as_ref()
                        .and_then(|x| x.description.clone())
                        .unwrap_or_else(|| d.text.clone());
                    Some(format!(
                        "exception at {}:{}: {what}",
                        d.url.clone().unwrap_or_default(),
                        d.line_number
                    ))
                }
                Event::RuntimeConsoleAPICalled(e)
                    if e.params.Type == ConsoleAPICalledEventTypeOption::Error =>
                {
                    let args: Vec<String> = e
                        .params
                        .args
                        .iter()
                        .map(|a| {
                            a.value
                                .as_ref()
                                .map(|v| v.to_string())
                                .or_else(|| a.description.clone())
                                .unwrap_or_default()
                        })
                        .collect();
                    Some(format!("console.error: {}", args.join(" ")))
                }
                // Failed loads, CSP violations, deprecations reported as errors.
                Event::LogEntryAdded(e) if e.params.entry.level == LogEntryLevel::Error => {
                    Some(format!(
                        "log error ({:?}) {}: {}",
                        e.params.entry.source,
                        e.params.entry.url.clone().unwrap_or_default(),
                        e.params.entry.text
                    ))
                }
                _ => None,
            };
            if let Some(problem) = problem {
                if let Ok(mut all) = sink.lock() {
                    all.push(problem);
                }
            }
        }))
        .expect("listening to the tab's events");
        tab.enable_runtime().expect("Runtime.enable");
        tab.enable_log().expect("Log.enable");
        Ui {
            _browser: browser,
            tab,
            base: base.to_string(),
            problems,
        }
    }

    /// Loads the page afresh at `hash` (e.g. `#/alerts`): by way of `about:blank`, since a
    /// change of the fragment alone is not a load the tab could wait for, and nothing of the
    /// previous page may satisfy the next page's checks.
    fn visit(&self, hash: &str) {
        for url in ["about:blank".to_string(), format!("{}/{hash}", self.base)] {
            self.tab.navigate_to(&url).expect("navigating");
            self.tab.wait_until_navigated().expect("page load");
        }
    }

    /// The value of a JavaScript expression, which must evaluate to a JSON string.
    fn eval(&self, expression: &str) -> Value {
        let wrapped = format!("JSON.stringify((() => {{ {expression} }})())");
        let result = self
            .tab
            .evaluate(&wrapped, false)
            .expect("Runtime.evaluate");
        match result.value {
            Some(Value::String(text)) => serde_json::from_str(&text).unwrap_or(Value::Null),
            _ => Value::Null,
        }
    }

    /// Waits until the script body `expression` returns something other than `null`, `false`
    /// or `undefined`; fails naming `what` with the page's text.
    fn wait(&self, what: &str, expression: &str) -> Value {
        let deadline = Instant::now() + WAIT;
        loop {
            let value = self.eval(expression);
            if !value.is_null() && value != Value::Bool(false) {
                return value;
            }
            if Instant::now() > deadline {
                panic!(
                    "timed out waiting for {what}; the page says:\n{}\nproblems: {:?}",
                    self.text(),
                    self.problems()
                );
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// The visible text of the page's main area.
    fn text(&self) -> String {
        self.eval("return document.getElementById('app').innerText;")
            .as_str()
            .unwrap_or("")
            .to_string()
    }

    /// Proves the listener hears the page: an uncaught exception thrown on purpose must be
    /// reported; it is then forgotten.
    fn probe_listener(&self) {
        self.eval("setTimeout(() => { throw new Error('kanary-probe'); }, 0); return true;");
        let deadline = Instant::now() + WAIT;
        while !self.problems().iter().any(|p| p.contains("kanary-probe")) {
            assert!(
                Instant::now() < deadline,
                "the browser's exceptions are not heard"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        if let Ok(mut all) = self.problems.lock() {
            all.clear();
        }
    }

    fn problems(&self) -> Vec<String> {
        self.problems.lock().map(|p| p.clone()).unwrap_or_default()
    }

    /// Fails if the page showed an error message or the browser reported a problem.
    fn assert_clean(&self, page: &str) {
        let shown = self
            .eval("return [...document.querySelectorAll('#app .error')].map(e => e.textContent);");
        assert_eq!(shown, serde_json::json!([]), "{page} shows an error");
        let problems = self.problems();
        assert!(problems.is_empty(), "{page}: {problems:#?}");
    }
}

#[test]
fn every_page_renders_the_live_agent_and_the_injected_alert() {
    require_docker!();
    assert!(
        std::path::Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: scripts/install-deps.sh --test installs Debian's chromium"
    );
    let image = TestImage::build("web-ui");
    let image_id = image.id();
    let config = "[agent]\ninterval = \"1s\"\n\
                  [detection]\nlearn_for = \"20s\"\nmin_windows = 30\nclose_after = 300\n";
    let odd = Container::run("webui-odd", &[], &image.name, &["sh", "-c", STEADY_LOOP]);
    let sibling = Container::run("webui-sib", &[], &image.name, &["sh", "-c", STEADY_LOOP]);
    std::thread::sleep(Duration::from_secs(2));
    let listen = format!("127.0.0.1:{}", free_port());
    let base = format!("http://{listen}");
    let mut agent = Agent::start_with_args(config, &["--listen", &listen]);
    agent.wait_for_container("container_start", &odd.name, WAIT, |_| true);
    let odd_id = odd.id();

    // The UI while the baseline learns: the overview must show the learning state.
    let deadline = Instant::now() + WAIT;
    while get_json(&base, "/api/overview").is_none() {
        assert!(
            Instant::now() < deadline,
            "{base}/api/overview never answered"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let ui = Ui::open(&base);
    ui.visit("#/");
    ui.probe_listener();
    ui.wait(
        "the overview's containers table",
        &format!(
            "return [...document.querySelectorAll('table.containers a')].some(a => a.textContent === {:?});",
            odd.name
        ),
    );
    ui.assert_clean("the overview while learning");

    agent.wait_for(
        "the test image's baseline to detect",
        Duration::from_secs(90),
        |r| {
            r["type"] == "learning"
                && r["image_id"] == image_id.as_str()
                && r["phase"] == "detecting"
        },
    );
    // Some judged windows, then the anomaly: a program the image never ran.
    std::thread::sleep(Duration::from_secs(5));
    odd.exec(&["uname", "-a"]);
    let alert = agent.wait_for_container("alert", &odd.name, WAIT, |a| {
        a["class"] == "unexpected_process"
    });
    let alert_id = alert["id"].as_str().expect("alert id").to_string();
    // And a connection attempt to the sibling, which the baseline never saw.
    odd.exec(&[
        "sh",
        "-c",
        &format!("nc -w 1 {} 7777 </dev/null; true", sibling.ip()),
    ]);
    agent.wait_for_container("alert", &odd.name, WAIT, |a| {
        a["class"] == "unauthorized_connection"
    });

    // Overview: the container detecting, its score sparkline drawn, its open alert counted,
    // and the alert in the recent list.
    ui.visit("#/");
    let row = ui.wait(
        "the overview row of the odd container, detecting, with a sparkline",
        &format!(
            "const row = [...document.querySelectorAll('table.containers tbody tr')]
                 .find(r => r.querySelector('a')?.textContent === {name:?});
             if (!row) return null;
             const line = row.querySelector('svg.sparkline polyline');
             if (!line || !row.textContent.includes('detecting')) return null;
             const box = row.querySelector('svg.sparkline').getBoundingClientRect();
             return {{points: line.getAttribute('points').trim().split(/\\s+/).length,
                      width: box.width, height: box.height, text: row.textContent}};",
            name = odd.name
        ),
    );
    assert!(row["points"].as_u64().unwrap_or(0) >= 2, "{row}");
    assert!(row["width"].as_f64().unwrap_or(0.0) > 0.0, "{row}");
    assert!(row["height"].as_f64().unwrap_or(0.0) > 0.0, "{row}");
    ui.wait(
        "the injected alert in the recent alerts",
        &format!(
            "return [...document.querySelectorAll('table.alerts a')]
                 .some(a => a.getAttribute('href') === '#/alert/' + encodeURIComponent({alert_id:?}));"
        ),
    );
    ui.assert_clean("the overview");

    // Container: a uPlot chart per figure and per detector score, drawn (a canvas of non-zero
    // size), and still there after a refresh.
    ui.visit(&format!("#/container/{odd_id}"));
    let charts_ready = "const charts = [...document.querySelectorAll('.chart')];
         const drawn = charts.filter(c => { const k = c.querySelector('canvas');
             return k && k.width > 0 && k.height > 0 && k.getBoundingClientRect().width > 0; });
         if (drawn.length < charts.length || !drawn.some(c => c.dataset.chart === 'm:cpu_percent')
             || !drawn.some(c => c.dataset.chart.startsWith('s:'))) return null;
         return drawn.map(c => c.dataset.chart);";
    let charts = ui.wait("the container's charts", charts_ready);
    let charts: Vec<&str> = charts
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for figure in ["m:cpu_percent", "m:memory_bytes", "m:syscalls"] {
        assert!(charts.contains(&figure), "no {figure} chart in {charts:?}");
    }
    assert!(
        ui.text().contains(&odd.name),
        "the container page does not name {}",
        odd.name
    );
    std::thread::sleep(Duration::from_secs(7)); // two refreshes
    ui.wait("the container's charts after refreshes", charts_ready);
    ui.assert_clean("the container page");

    // Alerts: the filter by class and open state lists the injected alert.
    ui.visit("#/alerts?class=unexpected_process&open=true");
    ui.wait(
        "the filtered alert list",
        &format!(
            "const rows = [...document.querySelectorAll('table.alerts tbody tr')];
             return rows.length > 0 && rows.every(r => r.textContent.includes('unexpected_process'))
                 && rows.some(r => r.textContent.includes({name:?}));",
            name = odd.name
        ),
    );
    // This test's container never attempts an escape (other tests' containers on the same host
    // may: the agent watches every container, so the filter names ours).
    ui.visit(&format!(
        "#/alerts?class=escape_attempt&container={}",
        odd.name
    ));
    ui.wait(
        "an empty list for a class never raised",
        "return document.querySelector('#app')?.textContent.includes('No alerts.');",
    );
    ui.assert_clean("the alerts page");

    // Alert detail: the analysis as step cards, with the evidence naming the program, each
    // detector's score as a bar against its threshold, and the decision.
    ui.visit(&format!("#/alert/{alert_id}"));
    let steps = ui.wait(
        "the alert's analysis steps",
        "const steps = [...document.querySelectorAll('.step')].map(s => s.dataset.step);
         return steps.length ? steps : null;",
    );
    for step in ["evidence", "detectors", "decision"] {
        assert!(
            steps
                .as_array()
                .is_some_and(|s| s.iter().any(|x| x == step)),
            "no {step} step in {steps}"
        );
    }
    let bars = ui.eval("return document.querySelectorAll('.step-detectors .bar-row').length;");
    assert!(bars.as_u64().unwrap_or(0) >= 1, "no detector bars: {bars}");
    let evidence = ui.eval("return document.querySelector('.step-evidence').textContent;");
    assert!(
        evidence.as_str().is_some_and(|e| e.contains("uname")),
        "the evidence does not name uname: {evidence}"
    );
    let text = ui.text();
    assert!(text.contains(&odd.name), "{text}");
    assert!(text.contains("unexpected_process"), "{text}");
    ui.assert_clean("the alert page");

    // Network: both containers, and the unauthorized edge drawn red.
    ui.visit("#/network");
    ui.wait(
        "the network graph with the unauthorized edge",
        &format!(
            "const svg = document.querySelector('svg.network');
             if (!svg) return null;
             const names = [...svg.querySelectorAll('.node text')].map(t => t.textContent);
             const bad = svg.querySelector('line.edge.unauthorized');
             return names.includes({odd:?}) && names.includes({sib:?}) && !!bad
                 && getComputedStyle(bad).stroke;",
            odd = odd.name,
            sib = sibling.name
        ),
    );
    ui.assert_clean("the network page");

    // An unknown alert: a message on the page, and no exception (the browser's own log of the
    // 404 is expected).
    ui.visit("#/alert/no-such-alert");
    let message = ui.wait(
        "the error message of an unknown alert",
        "return document.querySelector('#app .error')?.textContent;",
    );
    assert!(
        message.as_str().is_some_and(|m| m.contains("404")),
        "{message}"
    );
    let (network, exceptions): (Vec<String>, Vec<String>) = ui
        .problems()
        .into_iter()
        .partition(|p| p.starts_with("log error (Network)"));
    assert!(exceptions.is_empty(), "{exceptions:#?}");
    assert!(
        network.iter().any(|p| p.contains("404")),
        "the browser's log of the 404 was not heard: {network:?}"
    );

    // The agent kept running through it all.
    let status = agent.stop();
    assert!(status.success(), "kanary exited with {status}");
}
