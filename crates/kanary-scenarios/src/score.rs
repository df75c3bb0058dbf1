//! Scoring: which alerts answer which scenario, false alerts per container-hour over the normal
//! period, and the report (JSON and Markdown). Pure: the runner hands in what it saw.

use std::fmt::Write as _;

use kanary_model::record::{Alert, AlertClass};
use serde::Serialize;

use crate::spec::Scenario;

/// A scenario is "detected in time" when the right alert arrives within this many seconds of
/// the attack's start (the issue's figure).
pub const IN_TIME_S: f64 = 10.0;

/// One alert record as the runner saw it arrive.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SeenAlert {
    /// Seconds since the run started when the record was read.
    pub at_s: f64,
    /// The incident id (repeats of one incident share it).
    pub id: String,
    /// The container's name.
    pub container: String,
    /// The alert's class.
    pub class: AlertClass,
    /// The detector that raised it.
    pub detector: String,
    /// Score against threshold.
    pub score: f64,
    /// The threshold.
    pub threshold: f64,
    /// The first piece of evidence: what a reader checks first.
    pub evidence: String,
}

impl SeenAlert {
    /// What the runner keeps of an alert record read at `at_s`.
    pub fn of(alert: &Alert, at_s: f64) -> SeenAlert {
        let evidence = alert
            .contributions
            .first()
            .map(|c| match &c.detail {
                Some(detail) => format!("{}: {detail}", c.feature),
                None => c.feature.clone(),
            })
            .unwrap_or_default();
        SeenAlert {
            at_s,
            id: alert.id.clone(),
            container: alert.container.name.clone(),
            class: alert.class,
            detector: alert.detector.clone(),
            score: alert.score,
            threshold: alert.threshold,
            evidence,
        }
    }
}

/// What one scenario produced.
#[derive(Debug, Clone, Serialize)]
pub struct ScenarioOutcome {
    /// The scenario's id (file stem).
    pub id: String,
    /// What it does.
    pub description: String,
    /// The class it must produce.
    pub class: AlertClass,
    /// The container it must be attributed to.
    pub container: String,
    /// The container that ran the script.
    pub ran_in: String,
    /// Any alert about the target container.
    pub detected: bool,
    /// An alert of the expected class about the target container.
    pub right_class: bool,
    /// Seconds from the script's start to the first alert of the expected class on the target.
    pub time_to_detect_s: Option<f64>,
    /// Seconds from the script's start to the first alert of any class on the target.
    pub first_alert_s: Option<f64>,
    /// The script's exit code (`None`: killed at its time limit or not started).
    pub script_exit: Option<i32>,
    /// The end of the script's output (set by the runner).
    pub script_output: String,
    /// Every alert record read while the scenario ran, on any container, in arrival order;
    /// `at_s` counted from the script's start.
    pub alerts: Vec<SeenAlert>,
}

impl ScenarioOutcome {
    /// Judges `scenario`, whose script started at `t0_s` (run clock) in container `ran_in` and
    /// must be attributed to `container`, from the alerts read until it was over.
    pub fn judge(
        scenario: &Scenario,
        container: &str,
        ran_in: &str,
        t0_s: f64,
        script_exit: Option<i32>,
        alerts: &[SeenAlert],
    ) -> ScenarioOutcome {
        let class = scenario.class;
        let during: Vec<SeenAlert> = alerts
            .iter()
            .filter(|a| a.at_s >= t0_s)
            .map(|a| SeenAlert {
                at_s: a.at_s - t0_s,
                ..a.clone()
            })
            .collect();
        let on_target = || during.iter().filter(|a| a.container == container);
        let first_alert_s = on_target().map(|a| a.at_s).reduce(f64::min);
        let time_to_detect_s = on_target()
            .filter(|a| a.class == class)
            .map(|a| a.at_s)
            .reduce(f64::min);
        ScenarioOutcome {
            id: scenario.id.clone(),
            description: scenario.description.trim().to_string(),
            class,
            container: container.to_string(),
            ran_in: ran_in.to_string(),
            detected: first_alert_s.is_some(),
            right_class: time_to_detect_s.is_some(),
            time_to_detect_s,
            first_alert_s,
            script_exit,
            script_output: String::new(),
            alerts: during,
        }
    }

    /// Right container and class within [`IN_TIME_S`].
    pub fn in_time(&self) -> bool {
        self.time_to_detect_s.is_some_and(|t| t <= IN_TIME_S)
    }
}

/// A stretch of plain normal life (learning, or the normal period after it) and the alerts it
/// raised: every one of them is a false alert.
#[derive(Debug, Clone, Serialize)]
pub struct NormalPeriod {
    /// Its length.
    pub seconds: f64,
    /// Sum over the deployment's containers of the time each was running in it.
    pub container_hours: f64,
    /// Distinct incidents opened in it (first record of each).
    pub false_alerts: Vec<SeenAlert>,
    /// `false_alerts` per container-hour.
    pub false_alerts_per_container_hour: f64,
}

impl NormalPeriod {
    /// The period from `from_s` to `to_s` (run clock), its container-hours, and the alerts read.
    pub fn judge(
        from_s: f64,
        to_s: f64,
        container_hours: f64,
        alerts: &[SeenAlert],
    ) -> NormalPeriod {
        let mut seen = std::collections::HashSet::new();
        let false_alerts: Vec<SeenAlert> = alerts
            .iter()
            .filter(|a| a.at_s >= from_s && a.at_s < to_s)
            .filter(|a| seen.insert(a.id.clone()))
            .cloned()
            .collect();
        let rate = if container_hours > 0.0 {
            false_alerts.len() as f64 / container_hours
        } else {
            0.0
        };
        NormalPeriod {
            seconds: to_s - from_s,
            container_hours,
            false_alerts,
            false_alerts_per_container_hour: rate,
        }
    }
}

/// The run's settings and provenance, copied into the report.
#[derive(Debug, Clone, Serialize)]
pub struct RunInfo {
    /// `kanary --version`.
    pub kanary_version: String,
    /// `git describe` of the suite's checkout, when it is one.
    pub commit: Option<String>,
    /// When the run started, RFC 3339 UTC.
    pub started: String,
    /// The host's name.
    pub host: String,
    /// Short form (CI) or the full suite.
    pub short: bool,
    /// Learning time given to the agent.
    pub learn_for_s: f64,
    /// Length of the normal period after learning.
    pub normal_for_s: f64,
    /// The agent's configuration file, verbatim (the same for every scenario).
    pub config: String,
}

/// The figures a reader looks at first.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    /// Scenarios run.
    pub scenarios: usize,
    /// With any alert about the target container.
    pub detected: usize,
    /// With an alert of the expected class about the target container.
    pub right_class: usize,
    /// With that alert within [`IN_TIME_S`].
    pub in_time: usize,
    /// `in_time / scenarios`.
    pub in_time_ratio: f64,
    /// Median time to detect over the scenarios with the right class.
    pub median_time_to_detect_s: Option<f64>,
    /// False alerts per container-hour in the normal period.
    pub false_alerts_per_container_hour: f64,
    /// Classes that at least one scenario expects, and which of them were produced right.
    pub classes_expected: Vec<AlertClass>,
    /// Classes produced right at least once.
    pub classes_detected: Vec<AlertClass>,
}

/// The whole report.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// Settings and provenance.
    pub run: RunInfo,
    /// The headline figures.
    pub summary: Summary,
    /// Learning: alerts raised while baselines learnt (only the no-learning rules judge then).
    pub learning: NormalPeriod,
    /// The normal period after learning.
    pub normal: NormalPeriod,
    /// One entry per scenario, in order.
    pub scenarios: Vec<ScenarioOutcome>,
    /// Anything the reader must know: images still learning, scripts that failed, ...
    pub notes: Vec<String>,
}

impl Report {
    /// Assembles the report and its summary.
    pub fn new(
        run: RunInfo,
        learning: NormalPeriod,
        normal: NormalPeriod,
        scenarios: Vec<ScenarioOutcome>,
        notes: Vec<String>,
    ) -> Report {
        let mut times: Vec<f64> = scenarios
            .iter()
            .filter_map(|s| s.time_to_detect_s)
            .collect();
        times.sort_by(f64::total_cmp);
        let median = match times.len() {
            0 => None,
            n if n % 2 == 1 => Some(times[n / 2]),
            n => Some((times[n / 2 - 1] + times[n / 2]) / 2.0),
        };
        let mut expected: Vec<AlertClass> = scenarios.iter().map(|s| s.class).collect();
        expected.sort();
        expected.dedup();
        let mut detected: Vec<AlertClass> = scenarios
            .iter()
            .filter(|s| s.right_class)
            .map(|s| s.class)
            .collect();
        detected.sort();
        detected.dedup();
        let in_time = scenarios.iter().filter(|s| s.in_time()).count();
        let summary = Summary {
            scenarios: scenarios.len(),
            detected: scenarios.iter().filter(|s| s.detected).count(),
            right_class: scenarios.iter().filter(|s| s.right_class).count(),
            in_time,
            in_time_ratio: if scenarios.is_empty() {
                0.0
            } else {
                in_time as f64 / scenarios.len() as f64
            },
            median_time_to_detect_s: median,
            false_alerts_per_container_hour: normal.false_alerts_per_container_hour,
            classes_expected: expected,
            classes_detected: detected,
        };
        Report {
            run,
            summary,
            learning,
            normal,
            scenarios,
            notes,
        }
    }

    /// The report as Markdown.
    pub fn markdown(&self) -> String {
        let r = &self.run;
        let s = &self.summary;
        let mut md = String::new();
        let _ = writeln!(
            md,
            "# kanary scenario suite: {} on {}{}\n",
            r.started,
            r.host,
            if r.short { " (short form)" } else { "" }
        );
        let _ = writeln!(
            md,
            "{}, suite at {}. Learning {:.0} s, normal period {:.0} s; the agent's configuration \
             (the same for every scenario) is at the end.\n",
            r.kanary_version,
            r.commit.as_deref().unwrap_or("(not a git checkout)"),
            r.learn_for_s,
            r.normal_for_s
        );
        let _ = writeln!(md, "## Summary\n");
        let _ = writeln!(md, "| figure | measured | aim |\n|---|---:|---|");
        let _ = writeln!(
            md,
            "| scenarios detected with the right container and class within {IN_TIME_S:.0} s | {} of {} ({:.0}%) | >= 95% |",
            s.in_time,
            s.scenarios,
            100.0 * s.in_time_ratio
        );
        let _ = writeln!(
            md,
            "| ... with the right class at any time | {} of {} | |",
            s.right_class, s.scenarios
        );
        let _ = writeln!(
            md,
            "| ... with any alert about the right container | {} of {} | |",
            s.detected, s.scenarios
        );
        let _ = writeln!(
            md,
            "| median time to detect | {} | |",
            s.median_time_to_detect_s
                .map_or("-".to_string(), |t| format!("{t:.1} s"))
        );
        let _ = writeln!(
            md,
            "| false alerts per container-hour, normal period | {:.3} ({} in {:.2} container-hours) | <= 0.1 |",
            self.normal.false_alerts_per_container_hour,
            self.normal.false_alerts.len(),
            self.normal.container_hours
        );
        let _ = writeln!(
            md,
            "| alerts while learning (no-learning rules only) | {} in {:.2} container-hours | |",
            self.learning.false_alerts.len(),
            self.learning.container_hours
        );
        let classes = |c: &[AlertClass]| {
            c.iter()
                .map(|c| class_name(*c))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(
            md,
            "| classes produced right | {} of {}: {} | every class |\n",
            s.classes_detected.len(),
            s.classes_expected.len(),
            classes(&s.classes_detected)
        );

        let _ = writeln!(md, "## Scenarios\n");
        let _ = writeln!(
            md,
            "| scenario | expected class | container | detected | right class | time to detect | alerts (class on container by detector: evidence) |\n|---|---|---|---|---|---:|---|"
        );
        for o in &self.scenarios {
            let alerts = o
                .alerts
                .iter()
                .map(|a| {
                    format!(
                        "{} on {} by {} at {:.1} s: {}",
                        class_name(a.class),
                        a.container,
                        a.detector,
                        a.at_s,
                        cell(&a.evidence, 90)
                    )
                })
                .collect::<Vec<_>>()
                .join("<br>");
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} |",
                o.id,
                class_name(o.class),
                o.container,
                yes_no(o.detected),
                yes_no(o.right_class),
                o.time_to_detect_s
                    .map_or("-".to_string(), |t| format!("{t:.1} s")),
                if alerts.is_empty() {
                    "none".to_string()
                } else {
                    alerts
                }
            );
        }
        let _ = writeln!(md, "\n## False alerts in the normal period\n");
        if self.normal.false_alerts.is_empty() {
            let _ = writeln!(md, "None.");
        }
        for a in &self.normal.false_alerts {
            let _ = writeln!(
                md,
                "- at {:.0} s: {} on {} by {} (score {:.2} > {:.2}): {}",
                a.at_s,
                class_name(a.class),
                a.container,
                a.detector,
                a.score,
                a.threshold,
                cell(&a.evidence, 160)
            );
        }
        if !self.learning.false_alerts.is_empty() {
            let _ = writeln!(md, "\n## Alerts while learning\n");
            for a in &self.learning.false_alerts {
                let _ = writeln!(
                    md,
                    "- at {:.0} s: {} on {} by {}: {}",
                    a.at_s,
                    class_name(a.class),
                    a.container,
                    a.detector,
                    cell(&a.evidence, 160)
                );
            }
        }
        if !self.notes.is_empty() {
            let _ = writeln!(md, "\n## Notes\n");
            for note in &self.notes {
                let _ = writeln!(md, "- {note}");
            }
        }
        let _ = writeln!(
            md,
            "\n## Agent configuration\n\n```toml\n{}\n```",
            r.config.trim_end()
        );
        md
    }
}

/// The class as written in records and scenario files.
pub fn class_name(class: AlertClass) -> String {
    serde_json::to_value(class)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| format!("{class:?}"))
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "**no**"
    }
}

/// `text` made safe for one Markdown table cell, cut to `max` characters.
fn cell(text: &str, max: usize) -> String {
    let flat: String = text
        .chars()
        .map(|c| match c {
            '|' => '/',
            '\n' | '\r' => ' ',
            c => c,
        })
        .collect();
    if flat.chars().count() <= max {
        flat
    } else {
        let cut: String = flat.chars().take(max).collect();
        format!("{cut}...")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(at_s: f64, id: &str, container: &str, class: AlertClass) -> SeenAlert {
        SeenAlert {
            at_s,
            id: id.into(),
            container: container.into(),
            class,
            detector: "behaviour".into(),
            score: 5.0,
            threshold: 1.0,
            evidence: "exec: /usr/bin/id | parent sh".into(),
        }
    }

    fn scenario(id: &str, class: AlertClass) -> Scenario {
        Scenario {
            id: id.into(),
            description: "d".into(),
            class,
            target: "app".into(),
            run_in: None,
            timeout: std::time::Duration::from_secs(30),
            short: false,
            script: "id".into(),
            cleanup: None,
        }
    }

    fn judge(alerts: &[SeenAlert]) -> ScenarioOutcome {
        let rce = scenario("01-rce", AlertClass::UnexpectedProcess);
        ScenarioOutcome::judge(&rce, "scn-app", "scn-client", 100.0, Some(0), alerts)
    }

    #[test]
    fn the_first_alert_of_the_class_on_the_target_sets_the_time_to_detect() {
        let o = judge(&[
            alert(90.0, "old", "scn-app", AlertClass::UnexpectedProcess),
            alert(103.0, "a", "scn-web", AlertClass::UnexpectedProcess),
            alert(104.0, "b", "scn-app", AlertClass::SequenceAnomaly),
            alert(106.5, "c", "scn-app", AlertClass::UnexpectedProcess),
        ]);
        assert!(o.detected && o.right_class && o.in_time());
        assert_eq!(o.first_alert_s, Some(4.0));
        assert_eq!(o.time_to_detect_s, Some(6.5));
        // The alert before the script started is not the scenario's.
        assert_eq!(o.alerts.len(), 3);
        assert_eq!(o.alerts[0].at_s, 3.0);
    }

    #[test]
    fn an_alert_on_another_container_or_of_another_class_is_not_a_right_detection() {
        let o = judge(&[alert(103.0, "a", "scn-web", AlertClass::UnexpectedProcess)]);
        assert!(!o.detected && !o.right_class && !o.in_time());
        let o = judge(&[alert(103.0, "a", "scn-app", AlertClass::ResourceAnomaly)]);
        assert!(o.detected && !o.right_class);
        let late = judge(&[alert(125.0, "a", "scn-app", AlertClass::UnexpectedProcess)]);
        assert!(late.right_class && !late.in_time());
    }

    #[test]
    fn normal_period_counts_each_incident_once_per_container_hour() {
        let alerts = [
            alert(5.0, "learning", "scn-app", AlertClass::EscapeAttempt),
            alert(20.0, "x", "scn-app", AlertClass::ResourceAnomaly),
            alert(80.0, "x", "scn-app", AlertClass::ResourceAnomaly),
            alert(90.0, "y", "scn-db", AlertClass::UnexpectedFile),
            alert(200.0, "after", "scn-db", AlertClass::UnexpectedFile),
        ];
        let p = NormalPeriod::judge(10.0, 100.0, 4.0, &alerts);
        assert_eq!(
            p.false_alerts
                .iter()
                .map(|a| a.id.as_str())
                .collect::<Vec<_>>(),
            vec!["x", "y"]
        );
        assert_eq!(p.false_alerts_per_container_hour, 0.5);
        assert_eq!(
            NormalPeriod::judge(0.0, 1.0, 0.0, &[]).false_alerts_per_container_hour,
            0.0
        );
    }

    #[test]
    fn report_summarises_and_renders_every_scenario() {
        let hit = judge(&[alert(104.0, "c", "scn-app", AlertClass::UnexpectedProcess)]);
        let miss = ScenarioOutcome::judge(
            &scenario("02-miss", AlertClass::EscapeAttempt),
            "scn-web",
            "scn-web",
            0.0,
            None,
            &[],
        );
        let run = RunInfo {
            kanary_version: "kanary 0.1.0".into(),
            commit: Some("abc".into()),
            started: "2026-12-04T00:00:00Z".into(),
            host: "vm".into(),
            short: true,
            learn_for_s: 60.0,
            normal_for_s: 60.0,
            config: "[agent]\n".into(),
        };
        let normal = NormalPeriod::judge(0.0, 60.0, 0.1, &[]);
        let learning = NormalPeriod::judge(0.0, 60.0, 0.1, &[]);
        let report = Report::new(
            run,
            learning,
            normal,
            vec![hit, miss],
            vec!["a note".into()],
        );
        assert_eq!(report.summary.in_time, 1);
        assert_eq!(report.summary.in_time_ratio, 0.5);
        assert_eq!(report.summary.median_time_to_detect_s, Some(4.0));
        assert_eq!(report.summary.classes_expected.len(), 2);
        assert_eq!(
            report.summary.classes_detected,
            vec![AlertClass::UnexpectedProcess]
        );
        let md = report.markdown();
        assert!(
            md.contains("| 01-rce | unexpected_process | scn-app | yes | yes | 4.0 s |"),
            "{md}"
        );
        assert!(
            md.contains("| 02-miss | escape_attempt | scn-web | **no** | **no** | - | none |"),
            "{md}"
        );
        assert!(
            md.contains("exec: /usr/bin/id / parent sh"),
            "table cells escape '|': {md}"
        );
        assert!(md.contains("- a note"));
        let json = serde_json::to_value(&report).expect("serialises");
        assert_eq!(json["scenarios"][0]["class"], "unexpected_process");
        assert_eq!(json["summary"]["in_time"], 1);
    }
}
