//! The live detection stage: every interval, each container's window (its `stats` figures and
//! the facts of its `exec`, `open`, `connect`, `accept` and `security` records) is judged by
//! its image's baseline, which learns for a while and then scores; anomalous windows become
//! `alert` records, one per incident and class.
//!
//! * **Baselines.** One [`Baseline`] per image ([`key_of`]: the image id when the runtime gave
//!   one, else the image name), shared by all containers of that image, loaded from the store
//!   under `--data-dir` on first use or started afresh. A stored baseline the store cannot decode
//!   is quarantined by the store and relearnt here with a warning; so is one whose n-gram length
//!   no longer matches the agent's (`collectors.syscalls.ngram_len` changed).
//! * **Learning.** Windows are observed while learning; at the end of an interval a baseline that
//!   is [`Baseline::ready`] learns and calibrates its detectors and detects from the next
//!   interval. A learning baseline is saved every `save_every` intervals, at each change of phase
//!   and when the agent stops, not on every window: a save writes the whole learning sample.
//! * **Start-up.** The first `startup_windows` windows of a container started under the agent
//!   hold the runtime's set-up and the entrypoint's exec: the statistical detectors (sequence,
//!   frequency, window, resource) neither learn from them nor score them, the behaviour profile
//!   learns and judges their facts. Containers found running at start-up have no such windows.
//! * **Invariants** judge every window from the first, learning or not: an escape or privilege
//!   attempt needs no baseline.
//! * **Verdicts.** Every detector of the baseline scores the window; an anomalous one is
//!   explained, and its explanation is split by class (one behaviour finding may name a new
//!   program and a new peer), giving one [`Verdict`] per class. Each verdict lists every
//!   detector's score against its threshold, so a reader sees the whole decision.
//! * **Incidents.** [`Incidents`] turns verdicts into one alert per incident of a container and
//!   class: the first anomalous window opens it (written at once, and stored), later ones update
//!   its count, last_seen and, when higher, its score and explanation, and it is written again
//!   at most once per `realert_every` intervals; `close_after` intervals without that class (or
//!   the container stopping) end it with a last record marked `ended`.
//!
//! Nothing here touches the kernel: the agent hands in windows and writes what comes back.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::SystemTime;

use anyhow::Context;
use kanary_detect::activity::Fact;
use kanary_detect::baseline::{Baseline, BaselineConfig, BaselineKey};
use kanary_detect::detector::Calibration;
use kanary_detect::invariants::Invariants;
use kanary_detect::policy::Policy;
use kanary_detect::{CombinedConfig, Contribution, DetectError, Detector, FeatureWindow};
use kanary_model::config::DetectionConfig;
use kanary_model::record::{
    self, Alert, AlertClass, AlertContribution, ContainerRef, DetectorScore, Learning, RecordBody,
    Severity,
};
use kanary_model::stats::ContainerStats;
use kanary_store::{Store, StoreError};

/// Most contributions an alert lists from one window.
const TOP_CONTRIBUTIONS: usize = 8;

/// Most contributions an incident of discrete evidence accumulates (newest first).
const MAX_EVIDENCE: usize = 16;

/// One container's window of one interval, as the agent hands it in.
#[derive(Debug, Clone)]
pub struct Window<'a> {
    /// The container.
    pub container: &'a ContainerRef,
    /// Its image id (digest), when the runtime gave one.
    pub image_id: Option<&'a str>,
    /// Its aggregates of the interval.
    pub stats: &'a ContainerStats,
    /// The interval's length in seconds.
    pub interval_s: f64,
    /// The facts of its records of the interval, repeats folded.
    pub facts: Vec<Fact>,
    /// The container was started while the agent ran (so its first windows are its start-up).
    pub started_under_agent: bool,
}

/// What one interval's judgement gives the agent to write.
#[derive(Debug, Default)]
pub struct Judged {
    /// The `alert` and `learning` records.
    pub records: Vec<RecordBody>,
    /// Each judged container's detector scores, by container id (for its `stats` record).
    pub scores: HashMap<String, Vec<DetectorScore>>,
}

/// The baseline key of a container's image: the id when known, else the name (see
/// [`BaselineKey`]); `None` when neither is known (the host pseudo-container, or a container the
/// runtime could not describe), which is then not judged: it has no image to share a baseline
/// with.
pub fn key_of(image_id: Option<&str>, image: Option<&str>) -> Option<BaselineKey> {
    let image = image.map(str::trim).filter(|name| !name.is_empty());
    let image_id = image_id.map(str::trim).filter(|id| !id.is_empty());
    let name = image.or(image_id)?;
    Some(BaselineKey::new(image_id, name))
}

/// The baseline settings the `[detection]` section asks for.
pub fn baseline_config(config: &DetectionConfig) -> BaselineConfig {
    BaselineConfig {
        learn_for: config.learn_for,
        min_windows: config.min_windows,
        max_windows: config.max_windows,
        detector: CombinedConfig::live(),
        calibration: Calibration {
            quantile: config.quantile,
            margin: config.margin,
            ..Calibration::default()
        },
    }
}

/// How serious an alert is. Escape and privilege attempts are critical whatever their score:
/// they are not departures from a habit but attempts no container should make. Otherwise the
/// excess of the score over the threshold decides, in the detector's own units (for the
/// combined detector, each view's 1%-false-alarm distance from its normal median; for the
/// behaviour profile, novelty weights, one new program weighing 1).
pub fn severity(class: AlertClass, score: f64, threshold: f64) -> Severity {
    if matches!(
        class,
        AlertClass::EscapeAttempt | AlertClass::PrivilegeEscalation
    ) {
        return Severity::Critical;
    }
    let excess = score - threshold;
    if excess >= 4.0 {
        Severity::High
    } else if excess >= 1.0 {
        Severity::Medium
    } else {
        Severity::Low
    }
}

/// One anomalous window's verdict of one class, before incident bookkeeping.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// What kind of anomaly.
    pub class: AlertClass,
    /// The detector that raised it.
    pub detector: String,
    /// Its score.
    pub score: f64,
    /// Its threshold.
    pub threshold: f64,
    /// The combined detector's standardised views, when it raised it.
    pub views: BTreeMap<String, f64>,
    /// The explanation: the contributions of this class.
    pub contributions: Vec<AlertContribution>,
    /// Every detector's score of the window.
    pub detectors: Vec<DetectorScore>,
    /// Raised by a detector of discrete evidence (behaviour, invariants): each new item is news
    /// to a reader, where a statistical detector's next window is more of the same.
    pub discrete: bool,
}

/// An open incident.
#[derive(Debug, Clone)]
struct Incident {
    alert: Alert,
    /// Intervals since it was last written.
    since_written: u32,
    /// Consecutive intervals without this class.
    normal: u32,
}

/// Open incidents by container id and class (see the module documentation).
#[derive(Debug)]
pub struct Incidents {
    realert_every: u32,
    close_after: u32,
    open: HashMap<(String, AlertClass), Incident>,
}

impl Incidents {
    /// No incident open yet.
    pub fn new(realert_every: u32, close_after: u32) -> Self {
        Incidents {
            realert_every: realert_every.max(1),
            close_after: close_after.max(1),
            open: HashMap::new(),
        }
    }

    /// Whether `container_id` has an open incident of `class`.
    #[cfg(test)]
    pub fn is_open(&self, container_id: &str, class: AlertClass) -> bool {
        self.open.contains_key(&(container_id.to_string(), class))
    }

    /// One interval of `container` read at `now`, with its verdicts (at most one per class):
    /// the alerts to write.
    pub fn interval(
        &mut self,
        container: &ContainerRef,
        image_id: Option<&str>,
        verdicts: Vec<Verdict>,
        now: SystemTime,
    ) -> Vec<Alert> {
        let mut out = Vec::new();
        let classes: HashSet<AlertClass> = verdicts.iter().map(|v| v.class).collect();
        for verdict in verdicts {
            out.extend(self.anomalous(container, image_id, verdict, now));
        }
        let quiet: Vec<AlertClass> = self
            .open
            .keys()
            .filter(|(id, class)| *id == container.id && !classes.contains(class))
            .map(|(_, class)| *class)
            .collect();
        for class in quiet {
            out.extend(self.normal(&container.id, class));
        }
        out
    }

    /// An anomalous window of `container` read at `now`: the alert to write, if any.
    fn anomalous(
        &mut self,
        container: &ContainerRef,
        image_id: Option<&str>,
        verdict: Verdict,
        now: SystemTime,
    ) -> Option<Alert> {
        let ts = record::timestamp(now);
        let key = (container.id.clone(), verdict.class);
        let Some(incident) = self.open.get_mut(&key) else {
            let short = container.id.get(..12).unwrap_or(&container.id);
            let since_epoch = now
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis();
            let class = serde_json::to_value(verdict.class)
                .ok()
                .and_then(|v| v.as_str().map(str::to_string))
                .unwrap_or_default();
            let alert = Alert {
                id: format!("{short}-{class}-{since_epoch}"),
                container: container.clone(),
                image_id: image_id.map(str::to_string),
                class: verdict.class,
                severity: severity(verdict.class, verdict.score, verdict.threshold),
                score: verdict.score,
                threshold: verdict.threshold,
                detector: verdict.detector,
                views: verdict.views,
                contributions: verdict.contributions,
                detectors: verdict.detectors,
                first_seen: ts.clone(),
                last_seen: ts,
                count: 1,
                ended: false,
            };
            self.open.insert(
                key,
                Incident {
                    alert: alert.clone(),
                    since_written: 0,
                    normal: 0,
                },
            );
            return Some(alert);
        };
        let alert = &mut incident.alert;
        alert.count += 1;
        alert.last_seen = ts;
        // New discrete evidence (another new program, a second sensitive file) is added to the
        // incident and written at once: it is what a responder needs next, and it would
        // otherwise hide behind the incident's first, maybe milder, window.
        let news: Vec<AlertContribution> = if verdict.discrete {
            verdict
                .contributions
                .iter()
                .filter(|new| !alert.contributions.iter().any(|c| c.feature == new.feature))
                .cloned()
                .collect()
        } else {
            Vec::new()
        };
        // The record describes the incident's worst window, so a burst that grows is explained
        // by its peak rather than by its first, milder, window.
        if verdict.score > alert.score {
            alert.severity = severity(verdict.class, verdict.score, verdict.threshold);
            alert.score = verdict.score;
            alert.threshold = verdict.threshold;
            alert.detector = verdict.detector;
            alert.views = verdict.views;
            alert.detectors = verdict.detectors;
            if !verdict.discrete {
                alert.contributions = verdict.contributions;
            }
        }
        if !news.is_empty() {
            alert.contributions.splice(0..0, news);
            alert.contributions.truncate(MAX_EVIDENCE);
            incident.normal = 0;
            incident.since_written = 0;
            return Some(incident.alert.clone());
        }
        incident.normal = 0;
        incident.since_written += 1;
        if incident.since_written >= self.realert_every {
            incident.since_written = 0;
            return Some(incident.alert.clone());
        }
        None
    }

    /// An interval of `container_id` without `class`: the ended alert to write, if the incident
    /// ends now.
    fn normal(&mut self, container_id: &str, class: AlertClass) -> Option<Alert> {
        let key = (container_id.to_string(), class);
        let incident = self.open.get_mut(&key)?;
        incident.normal += 1;
        incident.since_written += 1;
        if incident.normal < self.close_after {
            return None;
        }
        let mut incident = self.open.remove(&key)?;
        // Always written: readers learn the incident is over, with its final count.
        incident.alert.ended = true;
        Some(incident.alert)
    }

    /// The container stopped: its incidents end, in a stable order.
    pub fn stopped(&mut self, container_id: &str) -> Vec<Alert> {
        let mut keys: Vec<(String, AlertClass)> = self
            .open
            .keys()
            .filter(|(id, _)| id == container_id)
            .cloned()
            .collect();
        keys.sort();
        keys.into_iter()
            .filter_map(|key| self.open.remove(&key))
            .map(|mut incident| {
                incident.alert.ended = true;
                incident.alert
            })
            .collect()
    }
}

/// A baseline in use, with its saving bookkeeping.
#[derive(Debug)]
struct Tracked {
    baseline: Baseline,
    /// Intervals with new windows since it was last saved.
    unsaved: u32,
    /// Changed since it was last saved.
    dirty: bool,
    /// Fewest windows seen before finishing learning is tried again after a failure (e.g. no
    /// n-gram at all yet), so a failing calibration is not redone every interval.
    retry_at: u64,
    /// A scoring error was already reported (reported once, not every interval).
    warned: bool,
}

/// The detection stage (see the module documentation).
pub struct Detection {
    config: DetectionConfig,
    baselines_config: BaselineConfig,
    store: Option<Store>,
    baselines: HashMap<String, Tracked>,
    incidents: Incidents,
    /// Windows judged so far per container id (for the start-up phase).
    windows_of: HashMap<String, u64>,
    /// The rules that need no baseline.
    invariants: Invariants,
    /// The container-to-container allow-policy, when configured.
    policy: Option<Policy>,
}

impl Detection {
    /// The stage for `config`, keeping baselines in the store under `data_dir` (`None`: in
    /// memory only). A store that cannot be opened is reported and detection runs in memory:
    /// losing persistence is better than losing detection. A policy file that cannot be read
    /// or parsed is an error: running without the policy the user asked for would be silent.
    pub fn new(config: &DetectionConfig, data_dir: Option<&Path>) -> anyhow::Result<Self> {
        let policy = match &config.policy {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("reading detection.policy {}", path.display()))?;
                Some(
                    Policy::from_toml(&text)
                        .with_context(|| format!("detection.policy {}", path.display()))?,
                )
            }
        };
        let mut baselines_config = baseline_config(config);
        if let Err(error) = baselines_config.check() {
            // `Config::validate` checks the same bounds; this only guards against drift.
            tracing::warn!(%error, "detection settings refused: using the defaults");
            baselines_config = BaselineConfig::default();
        }
        let store = data_dir.and_then(|dir| match Store::open(dir) {
            Ok(store) => Some(store),
            Err(error) => {
                tracing::warn!(%error, "baseline store not opened: baselines are kept in memory only and relearnt after a restart");
                None
            }
        });
        Ok(Detection {
            config: config.clone(),
            baselines_config,
            store,
            baselines: HashMap::new(),
            incidents: Incidents::new(config.realert_every, config.close_after),
            windows_of: HashMap::new(),
            invariants: Invariants::new(),
            policy,
        })
    }

    /// Feeds one interval's windows, read at `now`; returns the `alert` and `learning` records
    /// to write and each container's scores.
    pub fn interval(&mut self, windows: Vec<Window<'_>>, now: SystemTime) -> Judged {
        let mut out = Vec::new();
        let mut scores = HashMap::new();
        let mut touched = HashSet::new();
        for window in windows {
            let container = window.container;
            let Some(key) = key_of(window.image_id, container.image.as_deref()) else {
                continue;
            };
            let id = key.id().to_string();
            if !self.baselines.contains_key(&id) {
                let Some(tracked) = self.load(key, now) else {
                    continue;
                };
                if !tracked.baseline.state.is_learning() {
                    out.push(RecordBody::Learning(learning_record(
                        &tracked.baseline,
                        now,
                    )));
                }
                self.baselines.insert(id.clone(), tracked);
            }
            touched.insert(id.clone());
            let seen = self.windows_of.entry(container.id.clone()).or_default();
            *seen += 1;
            let startup =
                window.started_under_agent && *seen <= u64::from(self.config.startup_windows);
            let mut features = FeatureWindow::from_stats(window.stats, window.interval_s);
            features.facts = window.facts;
            let (verdicts, window_scores) = self.judge(&id, &features, startup, now);
            scores.insert(container.id.clone(), window_scores);
            for alert in self
                .incidents
                .interval(container, window.image_id, verdicts, now)
            {
                self.store_alert(&alert);
                out.push(RecordBody::Alert(alert));
            }
        }
        let mut touched: Vec<String> = touched.into_iter().collect();
        touched.sort();
        for id in touched {
            out.extend(self.end_of_interval(&id, now));
        }
        Judged {
            records: out,
            scores,
        }
    }

    /// Learns from or scores one window of the baseline `id`; returns its verdicts and every
    /// detector's score.
    fn judge(
        &mut self,
        id: &str,
        features: &FeatureWindow,
        startup: bool,
        now: SystemTime,
    ) -> (Vec<Verdict>, Vec<DetectorScore>) {
        let Some(tracked) = self.baselines.get_mut(id) else {
            return (Vec::new(), Vec::new());
        };
        // The invariants judge every window, learning or not.
        let mut detectors: Vec<&dyn Detector> = vec![&self.invariants];
        if tracked.baseline.state.is_learning() {
            let invariants = verdicts(&tracked.baseline, &detectors, features, startup);
            let learnt = if startup {
                tracked.baseline.observe_facts(features);
                Ok(())
            } else {
                tracked.baseline.observe(features, now)
            };
            match learnt {
                Ok(()) => tracked.dirty |= features.syscall_total() > 0,
                Err(DetectError::NgramLen(reason)) => {
                    tracing::warn!(baseline = %tracked.baseline.key, %reason, "baseline relearnt: the n-gram length changed");
                    self.relearn(id, now);
                }
                Err(error) => {
                    if !tracked.warned {
                        tracked.warned = true;
                        tracing::warn!(baseline = %tracked.baseline.key, %error, "window not learnt");
                    }
                }
            }
            return invariants.unwrap_or_default();
        }
        detectors.extend(tracked.baseline.detectors());
        match verdicts(&tracked.baseline, &detectors, features, startup) {
            Ok(verdicts) => verdicts,
            Err(DetectError::NgramLen(reason)) => {
                tracing::warn!(baseline = %tracked.baseline.key, %reason, "baseline relearnt: the n-gram length changed");
                self.relearn(id, now);
                Default::default()
            }
            Err(error) => {
                if !tracked.warned {
                    tracked.warned = true;
                    tracing::warn!(baseline = %tracked.baseline.key, %error, "window not scored");
                }
                Default::default()
            }
        }
    }

    /// Keeps an alert in the store (for `kanary alerts` and the web UI); a failure is reported,
    /// the record is still written to the sinks. Also for alerts raised outside detection (the
    /// CPU budget's).
    pub fn store_alert(&mut self, alert: &Alert) {
        let Some(store) = self.store.as_mut() else {
            return;
        };
        if let Err(error) = store.put_alert(alert) {
            tracing::warn!(alert = alert.id, %error, "alert not stored");
        }
    }

    /// After all windows of an interval: finish learning when due, save now and then, and report
    /// progress.
    fn end_of_interval(&mut self, id: &str, now: SystemTime) -> Option<RecordBody> {
        let save_every = self.config.save_every;
        let tracked = self.baselines.get_mut(id)?;
        if !tracked.baseline.state.is_learning() {
            return None;
        }
        let progress = tracked.baseline.progress(now);
        if tracked.baseline.ready(now) && progress.windows >= tracked.retry_at {
            match tracked
                .baseline
                .finish_learning(&self.baselines_config, now)
            {
                Ok(threshold) => {
                    tracing::info!(baseline = %tracked.baseline.key, windows = progress.windows, threshold, "baseline learnt: detecting");
                    tracked.baseline.set_policy(self.policy.clone());
                    tracked.dirty = true;
                    let record = learning_record(&tracked.baseline, now);
                    self.save(id);
                    return Some(RecordBody::Learning(record));
                }
                Err(error) => {
                    tracked.retry_at = progress.windows + self.config.min_windows;
                    tracing::warn!(baseline = %tracked.baseline.key, %error, retry_after_windows = tracked.retry_at, "baseline could not finish learning yet");
                }
            }
        }
        let tracked = self.baselines.get_mut(id)?;
        tracked.unsaved += 1;
        let record = learning_record(&tracked.baseline, now);
        if tracked.unsaved >= save_every {
            self.save(id);
        }
        Some(RecordBody::Learning(record))
    }

    /// A container stopped: its incidents end.
    pub fn container_stopped(&mut self, container_id: &str) -> Vec<RecordBody> {
        self.windows_of.remove(container_id);
        let ended = self.incidents.stopped(container_id);
        for alert in &ended {
            self.store_alert(alert);
        }
        ended.into_iter().map(RecordBody::Alert).collect()
    }

    /// The agent stops: unsaved learning is saved.
    pub fn shutdown(&mut self) {
        let ids: Vec<String> = self.baselines.keys().cloned().collect();
        for id in ids {
            if self.baselines.get(&id).is_some_and(|t| t.dirty) {
                self.save(&id);
            }
        }
    }

    /// The stored baseline of `key`, or a new one; a quarantined or unreadable one is relearnt.
    fn load(&mut self, key: BaselineKey, now: SystemTime) -> Option<Tracked> {
        let stored = match self.store.as_mut().map(|store| store.get(&key)) {
            None | Some(Ok(None)) => None,
            Some(Ok(Some(baseline))) => Some(baseline),
            Some(Err(error @ StoreError::Quarantined { .. })) => {
                tracing::warn!(%error, "baseline relearnt");
                None
            }
            Some(Err(error)) => {
                tracing::warn!(baseline = %key, %error, "stored baseline not read: relearning it");
                None
            }
        };
        let (baseline, dirty) = match stored {
            Some(mut baseline) => {
                tracing::info!(baseline = %baseline.key, phase = baseline.state.phase(), "baseline loaded");
                baseline.set_policy(self.policy.clone());
                (baseline, false)
            }
            None => (self.fresh(key, now)?, true),
        };
        Some(Tracked {
            baseline,
            unsaved: 0,
            dirty,
            retry_at: 0,
            warned: false,
        })
    }

    /// A new learning baseline. Only fails on settings `BaselineConfig::check` refuses, which
    /// [`Detection::new`] already replaced by the defaults.
    fn fresh(&self, key: BaselineKey, now: SystemTime) -> Option<Baseline> {
        Baseline::new(key, &self.baselines_config, now)
            .map_err(|error| tracing::warn!(%error, "baseline not started"))
            .ok()
    }

    fn relearn(&mut self, id: &str, now: SystemTime) {
        let Some(key) = self.baselines.get(id).map(|t| t.baseline.key.clone()) else {
            return;
        };
        match self.load_fresh(key, now) {
            Some(tracked) => {
                self.baselines.insert(id.to_string(), tracked);
                self.save(id);
            }
            None => {
                self.baselines.remove(id);
            }
        }
    }

    fn load_fresh(&self, key: BaselineKey, now: SystemTime) -> Option<Tracked> {
        Some(Tracked {
            baseline: self.fresh(key, now)?,
            unsaved: 0,
            dirty: true,
            retry_at: 0,
            warned: false,
        })
    }

    fn save(&mut self, id: &str) {
        let Some(tracked) = self.baselines.get_mut(id) else {
            return;
        };
        tracked.unsaved = 0;
        tracked.dirty = false;
        let Some(store) = self.store.as_mut() else {
            return;
        };
        if let Err(error) = store.put(&tracked.baseline) {
            tracing::warn!(baseline = %tracked.baseline.key, %error, "baseline not saved");
        }
    }
}

/// Every verdict of `detectors` (the invariants, then a detecting baseline's) on `window`:
/// each scores the window
/// (the statistical ones skip start-up windows and idle ones, which hold nothing to judge); an
/// anomalous detector is explained (only then: explaining costs more than scoring) and its
/// explanation split by class. When two detectors raise one class, the first in the
/// baseline's order raises it and the other's contributions are appended.
pub fn verdicts<'d>(
    baseline: &Baseline,
    detectors: &[&'d dyn Detector],
    window: &FeatureWindow,
    startup: bool,
) -> kanary_detect::Result<(Vec<Verdict>, Vec<DetectorScore>)> {
    let idle = window.syscall_total() == 0;
    let mut scores = Vec::new();
    let mut raised: Vec<(&'d dyn Detector, f64, f64, Vec<Contribution>)> = Vec::new();
    for &detector in detectors {
        if (startup || idle) && detector.is_statistical() {
            continue;
        }
        let threshold = detector
            .threshold()
            .ok_or(DetectError::NotTrained(detector.kind()))?;
        let score = detector.raw_score(window)?;
        // A NaN score (nothing comparable) is not an alarm.
        let anomalous = score.partial_cmp(&threshold) == Some(std::cmp::Ordering::Greater);
        scores.push(DetectorScore {
            detector: detector.kind().to_string(),
            score,
            threshold,
            anomalous,
        });
        if anomalous {
            let top = detector.top().max(TOP_CONTRIBUTIONS);
            raised.push((detector, score, threshold, detector.explain(window, top)?));
        }
    }
    tracing::debug!(baseline = %baseline.key, ?scores, syscalls = window.syscall_total(), "window scored");
    let mut by_class: BTreeMap<AlertClass, Verdict> = BTreeMap::new();
    for (detector, score, threshold, contributions) in raised {
        for contribution in contributions {
            let class = contribution.class.unwrap_or_else(|| detector.class());
            let verdict = by_class.entry(class).or_insert_with(|| Verdict {
                class,
                detector: detector.kind().to_string(),
                score,
                threshold,
                views: views_of(baseline, detector, window),
                contributions: Vec::new(),
                detectors: scores.clone(),
                discrete: !detector.is_statistical(),
            });
            if verdict.contributions.len() < TOP_CONTRIBUTIONS {
                verdict.contributions.push(AlertContribution {
                    feature: contribution.feature,
                    baseline: contribution.baseline,
                    observed: contribution.observed,
                    detail: contribution.detail,
                });
            }
        }
    }
    Ok((by_class.into_values().collect(), scores))
}

/// The combined detector's two standardised views of `window`, when `detector` is it: they say
/// whether the sequences or the syscall mix made the score.
fn views_of(
    baseline: &Baseline,
    detector: &dyn Detector,
    window: &FeatureWindow,
) -> BTreeMap<String, f64> {
    let Some(combined) = baseline.detector().filter(|c| c.kind() == detector.kind()) else {
        return BTreeMap::new();
    };
    match combined.z_scores(window) {
        Ok([sequence, frequency]) => BTreeMap::from([
            ("sequence".to_string(), sequence),
            ("frequency".to_string(), frequency),
        ]),
        Err(_) => BTreeMap::new(),
    }
}

/// The `learning` record of a baseline at `now`.
fn learning_record(baseline: &Baseline, now: SystemTime) -> Learning {
    let progress = baseline.progress(now);
    Learning {
        image: baseline.key.image.clone(),
        image_id: baseline.key.image_id.clone(),
        phase: baseline.state.phase().to_string(),
        windows: progress.windows,
        events: progress.events,
        time_left_s: progress.time_left.as_secs_f64(),
        windows_missing: progress.windows_missing,
        threshold: baseline.detector().and_then(|d| d.threshold()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kanary_detect::activity::Activity;
    use kanary_detect::window::windows_of_threads;
    use kanary_model::stats::{NgramStats, SyscallStats};
    use std::time::Duration;

    fn container(name: &str) -> ContainerRef {
        ContainerRef {
            id: format!("{name:0>64}"),
            name: name.into(),
            image: Some("app:1".into()),
        }
    }

    fn verdict_of(class: AlertClass, score: f64) -> Verdict {
        Verdict {
            class,
            detector: "combined".into(),
            score,
            threshold: 1.0,
            views: BTreeMap::new(),
            contributions: vec![AlertContribution {
                feature: format!("f{score}"),
                baseline: 0.0,
                observed: 1.0,
                detail: None,
            }],
            detectors: Vec::new(),
            discrete: false,
        }
    }

    fn verdict(score: f64) -> Verdict {
        verdict_of(AlertClass::SequenceAnomaly, score)
    }

    /// One interval with at most one verdict: the one alert written, if any.
    fn step(
        incidents: &mut Incidents,
        container: &ContainerRef,
        verdict: Option<Verdict>,
        at: SystemTime,
    ) -> Option<Alert> {
        let mut out = incidents.interval(
            container,
            Some("sha256:1"),
            verdict.into_iter().collect(),
            at,
        );
        assert!(out.len() <= 1, "{out:?}");
        out.pop()
    }

    #[test]
    fn the_key_is_the_image_id_else_the_name() {
        let by_id = key_of(Some("sha256:abc"), Some("app:1")).unwrap();
        assert_eq!(by_id.id(), "sha256:abc");
        assert_eq!(by_id.image, "app:1");
        let by_name = key_of(Some("  "), Some("app:1")).unwrap();
        assert_eq!(by_name.id(), "app:1");
        assert_eq!(key_of(None, Some("app:1")), Some(by_name));
        // An id without a name still keys (and names) the baseline.
        assert_eq!(
            key_of(Some("sha256:abc"), None).unwrap().image,
            "sha256:abc"
        );
        // The host, or a container the runtime did not describe: nothing to share with.
        assert_eq!(key_of(None, None), None);
        assert_eq!(key_of(None, Some("")), None);
    }

    #[test]
    fn one_alert_per_incident_repeats_are_counted_and_rewritten_rarely() {
        let mut incidents = Incidents::new(3, 2);
        let web = container("web");
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let opened = step(&mut incidents, &web, Some(verdict(2.0)), t0).unwrap();
        assert_eq!((opened.count, opened.ended), (1, false));
        assert_eq!(opened.first_seen, opened.last_seen);
        // Two more anomalous intervals: counted, not written.
        for i in 1..3 {
            let at = t0 + Duration::from_secs(i);
            assert!(step(&mut incidents, &web, Some(verdict(1.5)), at).is_none());
        }
        // One normal interval does not end it (close_after = 2), and resets nothing but the streak.
        assert!(step(&mut incidents, &web, None, t0).is_none());
        // The third interval since it was written: written again, same id, updated count.
        let at = t0 + Duration::from_secs(5);
        let again = step(&mut incidents, &web, Some(verdict(6.0)), at).unwrap();
        assert_eq!(again.id, opened.id);
        assert_eq!(again.count, 4);
        assert_eq!(again.first_seen, opened.first_seen);
        assert_eq!(again.last_seen, record::timestamp(at));
        // The worst window describes the incident.
        assert_eq!(again.score, 6.0);
        assert_eq!(again.severity, Severity::High);
        assert_eq!(again.contributions[0].feature, "f6");
        assert!(step(&mut incidents, &web, Some(verdict(3.0)), at).is_none());
        // Two normal intervals in a row end it, once.
        assert!(step(&mut incidents, &web, None, at).is_none());
        let ended = step(&mut incidents, &web, None, at).unwrap();
        assert!(ended.ended);
        assert_eq!(
            (ended.id.as_str(), ended.count, ended.score),
            (opened.id.as_str(), 5, 6.0)
        );
        assert!(!incidents.is_open(&web.id, AlertClass::SequenceAnomaly));
        assert!(step(&mut incidents, &web, None, at).is_none());
        // The next anomaly is a new incident.
        let later = t0 + Duration::from_secs(60);
        let next = step(&mut incidents, &web, Some(verdict(2.0)), later).unwrap();
        assert_ne!(next.id, opened.id);
        assert_eq!(next.count, 1);
        // Containers do not share incidents; a stopped container's incident ends.
        let db = container("db");
        assert!(step(&mut incidents, &db, Some(verdict(2.0)), later).is_some());
        let stopped = incidents.stopped(&web.id);
        assert_eq!(stopped.len(), 1);
        assert!(stopped[0].ended);
        assert!(incidents.is_open(&db.id, AlertClass::SequenceAnomaly));
        assert!(incidents.stopped(&web.id).is_empty());
    }

    #[test]
    fn new_discrete_evidence_is_added_and_written_at_once() {
        let mut incidents = Incidents::new(10, 3);
        let web = container("web");
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let evidence = |feature: &str| Verdict {
            detector: "behaviour".into(),
            discrete: true,
            contributions: vec![AlertContribution {
                feature: feature.into(),
                baseline: 0.0,
                observed: 1.0,
                detail: None,
            }],
            ..verdict_of(AlertClass::UnexpectedFile, 2.0)
        };
        let opened = step(&mut incidents, &web, Some(evidence("open /etc/passwd")), t0).unwrap();
        // The same evidence again: counted only.
        assert!(step(&mut incidents, &web, Some(evidence("open /etc/passwd")), t0).is_none());
        // A new file, with a lower score: written now, newest evidence first, the first kept.
        let news = step(&mut incidents, &web, Some(evidence("open /etc/shadow")), t0).unwrap();
        assert_eq!(news.id, opened.id);
        assert_eq!(news.count, 3);
        let features: Vec<&str> = news
            .contributions
            .iter()
            .map(|c| c.feature.as_str())
            .collect();
        assert_eq!(features, ["open /etc/shadow", "open /etc/passwd"]);
    }

    #[test]
    fn classes_are_separate_incidents_of_one_container() {
        let mut incidents = Incidents::new(10, 2);
        let web = container("web");
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(100);
        let both = vec![
            verdict_of(AlertClass::UnexpectedProcess, 2.0),
            verdict_of(AlertClass::UnauthorizedConnection, 3.0),
        ];
        let opened = incidents.interval(&web, None, both, t0);
        assert_eq!(opened.len(), 2);
        assert_ne!(opened[0].id, opened[1].id);
        assert!(
            opened[0].id.contains("unexpected_process"),
            "{}",
            opened[0].id
        );
        // The process keeps going, the connection stops: only the connection's incident ends.
        for i in 1..3 {
            let at = t0 + Duration::from_secs(i);
            let written = incidents.interval(
                &web,
                None,
                vec![verdict_of(AlertClass::UnexpectedProcess, 2.0)],
                at,
            );
            if i == 2 {
                assert_eq!(written.len(), 1, "{written:?}");
                assert_eq!(written[0].class, AlertClass::UnauthorizedConnection);
                assert!(written[0].ended);
            } else {
                assert!(written.is_empty(), "{written:?}");
            }
        }
        assert!(incidents.is_open(&web.id, AlertClass::UnexpectedProcess));
        assert!(!incidents.is_open(&web.id, AlertClass::UnauthorizedConnection));
    }

    #[test]
    fn severity_grows_with_the_excess_over_the_threshold() {
        let class = AlertClass::SequenceAnomaly;
        assert_eq!(severity(class, 1.2, 1.0), Severity::Low);
        assert_eq!(severity(class, 2.5, 1.0), Severity::Medium);
        assert_eq!(severity(class, 5.0, 1.0), Severity::High);
        assert_eq!(severity(class, 3.0, -2.0), Severity::High);
        // Attempts no container should make are critical however they scored.
        assert_eq!(
            severity(AlertClass::EscapeAttempt, 0.1, 0.0),
            Severity::Critical
        );
    }

    /// A deterministic generator, so the synthetic workload never flakes.
    struct Lcg(u64);
    impl Lcg {
        fn next(&mut self, below: u32) -> u32 {
            self.0 = self
                .0
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            ((self.0 >> 33) % u64::from(below)) as u32
        }
    }

    fn stats_of(threads: &[Vec<u32>]) -> ContainerStats {
        let window = windows_of_threads(3, threads, None).unwrap().remove(0);
        ContainerStats {
            syscalls: Some(SyscallStats::from_counts(window.syscalls, 0)),
            ngrams: Some(NgramStats::from_counts(3, window.ngrams, 0)),
            ..ContainerStats::default()
        }
    }

    /// A server loop picking one of three request paths (x86_64 numbers).
    fn normal(rng: &mut Lcg) -> ContainerStats {
        let paths: [&[u32]; 3] = [
            &[232, 0, 257, 5, 0, 3, 1],
            &[232, 0, 1, 3],
            &[232, 0, 1, 20, 3],
        ];
        let mut seq = Vec::new();
        for _ in 0..60 {
            seq.extend_from_slice(paths[rng.next(3) as usize]);
        }
        stats_of(&[seq])
    }

    /// A directory walk: getdents64, newfstatat, openat, close.
    fn walk() -> ContainerStats {
        let seq: Vec<u32> = [217, 262, 262, 257, 217, 217, 3].repeat(40);
        stats_of(&[seq])
    }

    fn config() -> DetectionConfig {
        DetectionConfig {
            learn_for: Duration::from_secs(5),
            min_windows: 10,
            realert_every: 4,
            close_after: 2,
            save_every: 3,
            ..DetectionConfig::default()
        }
    }

    fn phases(judged: &Judged) -> Vec<(String, String)> {
        judged
            .records
            .iter()
            .filter_map(|r| match r {
                RecordBody::Learning(l) => Some((l.image.clone(), l.phase.clone())),
                _ => None,
            })
            .collect()
    }

    fn alerts(judged: &Judged) -> Vec<Alert> {
        judged
            .records
            .iter()
            .filter_map(|r| match r {
                RecordBody::Alert(a) => Some(a.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn learns_a_shared_baseline_then_alerts_on_the_odd_container_only() {
        let dir = tempfile::tempdir().unwrap();
        let mut detection = Detection::new(&config(), Some(dir.path())).unwrap();
        let (a, b) = (container("a"), container("b"));
        let host = ContainerRef {
            id: "host".into(),
            name: "host".into(),
            image: None,
        };
        let mut rng = Lcg(3);
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut now = t0;
        let mut learnt_at = None;
        for second in 0..8 {
            now = t0 + Duration::from_secs(second);
            let (sa, sb, sh) = (normal(&mut rng), normal(&mut rng), walk());
            let windows = [
                Window {
                    container: &a,
                    image_id: Some("sha256:app"),
                    stats: &sa,
                    interval_s: 1.0,
                    facts: Vec::new(),
                    started_under_agent: false,
                },
                Window {
                    container: &b,
                    image_id: Some("sha256:app"),
                    stats: &sb,
                    interval_s: 1.0,
                    facts: Vec::new(),
                    started_under_agent: false,
                },
                // Not judged: no image.
                Window {
                    container: &host,
                    image_id: None,
                    stats: &sh,
                    interval_s: 1.0,
                    facts: Vec::new(),
                    started_under_agent: false,
                },
            ];
            let out = detection.interval(windows.to_vec(), now);
            assert!(alerts(&out).is_empty(), "no alert while learning");
            let phases = phases(&out);
            // One progress record per image per interval while learning, and one when it
            // switches; never one for the host.
            if learnt_at.is_some() {
                assert!(phases.is_empty(), "{phases:?}");
                continue;
            }
            assert_eq!(phases.len(), 1, "{phases:?}");
            if phases[0].1 == "detecting" {
                learnt_at = Some(second);
            }
        }
        // 2 windows per second: 10 windows after 5 s, and the 5 s are over at second 5.
        assert_eq!(learnt_at, Some(5));
        // Detecting: normal windows of both containers raise nothing and report no progress.
        for second in 8..12 {
            now = t0 + Duration::from_secs(second);
            let (sa, sb) = (normal(&mut rng), normal(&mut rng));
            let out = detection.interval(
                vec![
                    Window {
                        container: &a,
                        image_id: Some("sha256:app"),
                        stats: &sa,
                        interval_s: 1.0,
                        facts: Vec::new(),
                        started_under_agent: false,
                    },
                    Window {
                        container: &b,
                        image_id: Some("sha256:app"),
                        stats: &sb,
                        interval_s: 1.0,
                        facts: Vec::new(),
                        started_under_agent: false,
                    },
                ],
                now,
            );
            assert!(out.records.is_empty(), "{out:?}");
            // Every detector scored both windows, none above its threshold.
            for id in [&a.id, &b.id] {
                let scores = &out.scores[id.as_str()];
                let names: Vec<&str> = scores.iter().map(|s| s.detector.as_str()).collect();
                assert_eq!(
                    names,
                    ["invariants", "behaviour", "combined", "resource", "window"]
                );
                assert!(scores.iter().all(|s| !s.anomalous), "{scores:?}");
            }
        }
        // `a` walks the file system for three intervals: one alert, about `a`.
        let mut written = Vec::new();
        for second in 12..15 {
            now = t0 + Duration::from_secs(second);
            let (sa, sb) = (walk(), normal(&mut rng));
            written.extend(alerts(&detection.interval(
                vec![
                    Window {
                        container: &a,
                        image_id: Some("sha256:app"),
                        stats: &sa,
                        interval_s: 1.0,
                        facts: Vec::new(),
                        started_under_agent: false,
                    },
                    Window {
                        container: &b,
                        image_id: Some("sha256:app"),
                        stats: &sb,
                        interval_s: 1.0,
                        facts: Vec::new(),
                        started_under_agent: false,
                    },
                ],
                now,
            )));
        }
        assert_eq!(written.len(), 1, "{written:?}");
        let alert = &written[0];
        assert_eq!(alert.container, a);
        assert_eq!(alert.class, AlertClass::SequenceAnomaly);
        assert_eq!(alert.image_id.as_deref(), Some("sha256:app"));
        assert!(alert.score > alert.threshold);
        assert!(
            alert
                .contributions
                .iter()
                .any(|c| c.feature.contains("getdents64")),
            "{:?}",
            alert.contributions
        );
        // It stops: the incident ends with its count.
        let mut ended = detection.container_stopped(&a.id);
        assert_eq!(ended.len(), 1, "{ended:?}");
        let RecordBody::Alert(ended) = ended.remove(0) else {
            panic!("not an alert: {ended:?}");
        };
        assert!(ended.ended);
        assert_eq!(ended.count, 3);
        detection.shutdown();

        // A restart reloads the learnt baseline: detecting at once, no relearning.
        let mut again = Detection::new(&config(), Some(dir.path())).unwrap();
        let sb = walk();
        let out = again.interval(
            vec![Window {
                container: &b,
                image_id: Some("sha256:app"),
                stats: &sb,
                interval_s: 1.0,
                facts: Vec::new(),
                started_under_agent: false,
            }],
            now + Duration::from_secs(1),
        );
        assert_eq!(
            phases(&out),
            vec![("app:1".to_string(), "detecting".to_string())]
        );
        assert_eq!(alerts(&out).len(), 1);
    }

    fn exec_fact(path: &str) -> Fact {
        Fact {
            activity: Activity::Exec {
                path: path.into(),
                parent: "sh".into(),
                cmdline: path.into(),
                uid: 0,
            },
            count: 1,
        }
    }

    fn window_of<'a>(
        container: &'a ContainerRef,
        stats: &'a ContainerStats,
        facts: Vec<Fact>,
        started_under_agent: bool,
    ) -> Window<'a> {
        Window {
            container,
            image_id: Some("sha256:app"),
            stats,
            interval_s: 1.0,
            facts,
            started_under_agent,
        }
    }

    #[test]
    fn start_up_windows_are_judged_on_their_facts_only_and_invariants_never_wait() {
        let mut detection = Detection::new(&config(), None).unwrap();
        let a = container("a");
        let mut rng = Lcg(11);
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let cgroup_mount = Fact {
            activity: Activity::Security {
                syscall: "mount".into(),
                args: BTreeMap::from([
                    ("source".to_string(), "cgroup".to_string()),
                    ("target".to_string(), "/tmp/cg".to_string()),
                    ("fstype".to_string(), "cgroup".to_string()),
                ]),
                ok: false,
                comm: "mount".into(),
                uid: 0,
            },
            count: 1,
        };
        // Learning: the invariants already judge; nothing else does.
        let stats = normal(&mut rng);
        let out = detection.interval(
            vec![window_of(&a, &stats, vec![cgroup_mount.clone()], false)],
            t0,
        );
        let early = alerts(&out);
        assert_eq!(early.len(), 1, "{out:?}");
        assert_eq!(early[0].class, AlertClass::EscapeAttempt);
        assert_eq!(early[0].detector, "invariants");
        for second in 1..12 {
            let stats = normal(&mut rng);
            let facts = vec![exec_fact("/bin/cat")];
            let at = t0 + Duration::from_secs(second);
            detection.interval(vec![window_of(&a, &stats, facts, false)], at);
        }
        // Detecting. A new container of the image starts: its first window walks the file
        // system (the runtime's set-up looks odd too) and runs its entrypoint, a new program.
        let b = container("b");
        let walk_stats = walk();
        let first = alerts(&detection.interval(
            vec![window_of(
                &b,
                &walk_stats,
                vec![exec_fact("/bin/entry")],
                true,
            )],
            t0 + Duration::from_secs(13),
        ));
        let classes: Vec<AlertClass> = first.iter().map(|alert| alert.class).collect();
        assert_eq!(
            classes,
            vec![AlertClass::UnexpectedProcess],
            "start-up: facts judged, figures not: {first:?}"
        );
        // The rest of its start-up: the same walk, figures still not judged.
        let startup = u64::from(config().startup_windows);
        for window in 2..=startup {
            let out = alerts(&detection.interval(
                vec![window_of(&b, &walk_stats, Vec::new(), true)],
                t0 + Duration::from_secs(12 + window),
            ));
            assert!(out.is_empty(), "start-up window {window}: {out:?}");
        }
        // The window after its start-up: the same walk is a sequence anomaly.
        let second = alerts(&detection.interval(
            vec![window_of(&b, &walk_stats, Vec::new(), true)],
            t0 + Duration::from_secs(13 + startup),
        ));
        assert!(
            second
                .iter()
                .any(|alert| alert.class == AlertClass::SequenceAnomaly),
            "{second:?}"
        );
    }

    #[test]
    fn a_damaged_stored_baseline_is_relearnt_not_a_panic() {
        let dir = tempfile::tempdir().unwrap();
        let a = container("a");
        let mut rng = Lcg(5);
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        {
            let mut detection = Detection::new(&config(), Some(dir.path())).unwrap();
            for second in 0..3 {
                let sa = normal(&mut rng);
                let window = Window {
                    container: &a,
                    image_id: None,
                    stats: &sa,
                    interval_s: 1.0,
                    facts: Vec::new(),
                    started_under_agent: false,
                };
                detection.interval(vec![window], t0 + Duration::from_secs(second));
            }
            // Saved every 3 intervals: the baseline is in the store, learning, 3 windows.
        }
        let db = rusqlite::Connection::open(dir.path().join(kanary_store::DB_FILE)).unwrap();
        let changed = db
            .execute(
                "UPDATE baselines SET models = x'7b7d' WHERE key = 'app:1'",
                [],
            )
            .unwrap();
        assert_eq!(changed, 1);
        drop(db);
        let mut detection = Detection::new(&config(), Some(dir.path())).unwrap();
        let sa = normal(&mut rng);
        let out = detection.interval(
            vec![Window {
                container: &a,
                image_id: None,
                stats: &sa,
                interval_s: 1.0,
                facts: Vec::new(),
                started_under_agent: false,
            }],
            t0 + Duration::from_secs(10),
        );
        let RecordBody::Learning(progress) = &out.records[0] else {
            panic!("{out:?}");
        };
        // Learning again from scratch: this window is the first.
        assert_eq!((progress.phase.as_str(), progress.windows), ("learning", 1));
        let store = Store::open(dir.path()).unwrap();
        assert_eq!(store.quarantined().unwrap().len(), 1);
    }
}
