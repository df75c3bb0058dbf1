//! The agent's self-enforced CPU budget (`agent.cpu_budget_percent`).
//!
//! Almost all of the agent's CPU goes to the records the kernel streams to it (decoding,
//! attributing, serialising, writing); the in-kernel aggregates cost it next to nothing. So
//! when a container storms (fork/exec loops, opens of unique files, connection floods), the
//! agent stays within its budget by no longer streaming *that container's* records: it sets
//! `CONTAINER_F_THROTTLED` on the container's filter entries and the kernel counts its events
//! as `throttled` drops instead of reserving them, while its counters, n-grams and `stats`
//! carry on, so detection still sees the storm's figures.
//!
//! [`Budget`] is the pure decision logic: fed, each interval, the agent's CPU time and the
//! records each container caused (streamed, and withheld while throttled), it says which
//! containers to throttle and which to release. [`Budget::report`] turns a decision into the
//! `degraded` record and the storm's `resource_anomaly` alert (detector `budget`).
//!
//! - **Throttle**: the agent was over budget for [`OVER_INTERVALS`] consecutive intervals (one
//!   slow interval, e.g. a baseline being trained, is not a storm). The containers whose
//!   records cost the most are throttled, most first, until the interval's cost without their
//!   records is within the budget. The cost of a record is the interval's CPU divided by its
//!   records: an upper bound (it charges the agent's fixed costs to records too), so the
//!   projection never throttles more than the storm. The cost is only measured in intervals
//!   with enough records for them to dominate it; otherwise the last measured one is used.
//!   A container is only throttled when its records alone cost at least [`THROTTLE_SHARE`] of
//!   the budget and it streams at least [`MIN_RECORDS_PER_S`]: a storm, not ordinary load.
//! - **Release**: while throttled, the kernel counts exactly the records the container would
//!   have streamed (its `throttled` drops), which says what releasing it would cost. Once that
//!   is at most [`RELEASE_SHARE`] of the budget for [`CALM_INTERVALS`] consecutive intervals,
//!   and the agent is within budget, it is released. The gap between the two thresholds is
//!   the hysteresis that keeps a container from flapping.

use std::collections::{BTreeMap, HashMap};
use std::time::SystemTime;

use kanary_collectors::Slot;
use kanary_model::record::{
    self, Alert, AlertClass, AlertContribution, ContainerRef, Degraded, DetectorScore, RecordBody,
    Severity,
};

/// Consecutive intervals over budget before anything is throttled.
pub const OVER_INTERVALS: u32 = 2;
/// Consecutive calm intervals before a throttled container is released.
pub const CALM_INTERVALS: u32 = 3;
/// A throttled container is calm when its withheld records would cost at most this share of
/// the budget.
pub const RELEASE_SHARE: f64 = 0.1;
/// Containers streaming fewer records per second are never throttled: they cannot be a storm.
pub const MIN_RECORDS_PER_S: f64 = 50.0;
/// Only a container whose records alone cost at least this share of the budget is a storm
/// worth throttling: many ordinary containers over the budget together are not degraded.
pub const THROTTLE_SHARE: f64 = 0.25;
/// Records per second an interval must have for its CPU per record to be learnt: below it, the
/// agent's fixed costs (reading aggregates, detection) would be charged to too few records.
const MIN_RECORDS_PER_S_TO_MEASURE: f64 = 1000.0;
/// CPU seconds per record assumed until one has been measured (a record costs the agent tens
/// of microseconds).
const DEFAULT_COST_S: f64 = 20e-6;
/// The host's slot (`KANARY_HOST_SLOT`): it has no filter entry, so it cannot be throttled.
const HOST_SLOT: Slot = 0;
/// The detector name on the storm's alert.
pub const DETECTOR: &str = "budget";

/// A decision about one container.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    /// The container's slot.
    pub slot: Slot,
    /// `true`: throttle it; `false`: release it.
    pub throttle: bool,
    /// Its records per second: streamed when throttling, withheld when releasing.
    pub records_per_s: f64,
    /// The agent's CPU over the interval, in percent of one core.
    pub agent_cpu_percent: f64,
    /// The budget, in percent of one core.
    pub budget_percent: f64,
    /// Records per second the whole budget pays for, at the measured cost per record.
    pub affordable_records_per_s: f64,
}

/// A throttled container's state.
#[derive(Debug, Default)]
struct Throttled {
    /// Consecutive calm intervals so far.
    calm: u32,
    /// Intervals it has been throttled.
    intervals: u64,
    /// The storm's open alert, ended on release.
    alert: Option<Alert>,
}

/// The budget controller. Pure: the agent measures, this decides.
#[derive(Debug)]
pub struct Budget {
    /// The budget as a fraction of one core.
    budget: f64,
    /// The agent's cumulative CPU seconds at the end of the last interval.
    last_cpu_s: f64,
    /// Consecutive intervals over budget.
    over: u32,
    /// Records streamed per container in this interval.
    records: HashMap<Slot, u64>,
    /// Records withheld (throttled drops) per container in this interval.
    withheld: HashMap<Slot, u64>,
    /// Throttled containers.
    throttled: HashMap<Slot, Throttled>,
    /// Containers just released, until [`Budget::report`] ends their alert.
    released: HashMap<Slot, Throttled>,
    /// Smoothed CPU seconds per record, once measured.
    cost_s: Option<f64>,
}

impl Budget {
    /// A controller for `budget_percent` of one core; `None` when it is 0 (no budget).
    /// `cpu_s` is the agent's cumulative CPU time now, so start-up is not charged to the first
    /// interval.
    pub fn new(budget_percent: f64, cpu_s: f64) -> Option<Self> {
        (budget_percent > 0.0).then(|| Budget {
            budget: budget_percent / 100.0,
            last_cpu_s: cpu_s,
            over: 0,
            records: HashMap::new(),
            withheld: HashMap::new(),
            throttled: HashMap::new(),
            released: HashMap::new(),
            cost_s: None,
        })
    }

    /// Counts one record streamed for `slot`.
    pub fn record(&mut self, slot: Slot) {
        *self.records.entry(slot).or_default() += 1;
    }

    /// Counts `n` records the kernel withheld from throttled `slot` (its `throttled` drops).
    pub fn withheld(&mut self, slot: Slot, n: u64) {
        if n > 0 {
            *self.withheld.entry(slot).or_default() += n;
        }
    }

    /// Undoes a decision about `slot` the agent could not apply (its filter entries are gone or
    /// could not be written): the controller goes back to not knowing it.
    pub fn cancel(&mut self, slot: Slot) {
        self.throttled.remove(&slot);
        self.released.remove(&slot);
    }

    /// Whether `slot` is throttled.
    #[cfg(test)]
    pub fn is_throttled(&self, slot: Slot) -> bool {
        self.throttled.contains_key(&slot)
    }

    /// Forgets a container that stopped; returns its storm alert, ended, if it was throttled.
    pub fn forget(&mut self, slot: Slot, now: SystemTime) -> Option<RecordBody> {
        self.records.remove(&slot);
        self.withheld.remove(&slot);
        let state = self
            .throttled
            .remove(&slot)
            .or_else(|| self.released.remove(&slot))?;
        end_alert(state, now)
    }

    /// Ends an interval of `interval_s` seconds at which the agent's cumulative CPU time is
    /// `cpu_s`: the containers to throttle (most costly first) and to release.
    pub fn interval(&mut self, interval_s: f64, cpu_s: f64) -> Vec<Decision> {
        let records = std::mem::take(&mut self.records);
        let withheld = std::mem::take(&mut self.withheld);
        let used_s = (cpu_s - self.last_cpu_s).max(0.0);
        self.last_cpu_s = cpu_s;
        if interval_s <= 0.0 {
            return Vec::new();
        }
        let usage = used_s / interval_s;
        let total: u64 = records.values().sum();
        // This interval's cost per record, an upper bound (see the module comment); the smoothed
        // one prices the withheld records of throttled containers, which cost nothing now.
        let interval_cost = (total as f64 / interval_s >= MIN_RECORDS_PER_S_TO_MEASURE)
            .then(|| used_s / total as f64);
        if let Some(cost) = interval_cost {
            self.cost_s = Some(match self.cost_s {
                Some(old) => 0.7 * old + 0.3 * cost,
                None => cost,
            });
        }
        let cost_s = self.cost_s.unwrap_or(DEFAULT_COST_S).max(f64::MIN_POSITIVE);
        let decision = |slot: Slot, throttle: bool, n: u64| Decision {
            slot,
            throttle,
            records_per_s: n as f64 / interval_s,
            agent_cpu_percent: usage * 100.0,
            budget_percent: self.budget * 100.0,
            affordable_records_per_s: self.budget / cost_s,
        };
        let mut out = Vec::new();
        self.over = if usage > self.budget {
            self.over + 1
        } else {
            0
        };

        // Releases: calm containers, and only while the agent is within its budget.
        let mut released = Vec::new();
        for (slot, state) in &mut self.throttled {
            state.intervals += 1;
            let n = withheld.get(slot).copied().unwrap_or(0);
            let would_cost = n as f64 * cost_s / interval_s;
            state.calm = if would_cost <= RELEASE_SHARE * self.budget {
                state.calm + 1
            } else {
                0
            };
            if state.calm >= CALM_INTERVALS && usage <= self.budget {
                released.push((*slot, n));
            }
        }
        released.sort_unstable();
        for (slot, n) in released {
            out.push(decision(slot, false, n));
        }

        // Throttles: the costliest containers until the interval's projected cost fits.
        if self.over >= OVER_INTERVALS {
            let cost_now = interval_cost.unwrap_or(cost_s);
            let mut candidates: Vec<(Slot, u64)> = records
                .iter()
                .filter(|(slot, n)| {
                    let per_s = **n as f64 / interval_s;
                    // The host has no filter entry to flag.
                    **slot != HOST_SLOT
                        && !self.throttled.contains_key(slot)
                        && per_s >= MIN_RECORDS_PER_S
                        && per_s * cost_now >= THROTTLE_SHARE * self.budget
                })
                .map(|(slot, n)| (*slot, *n))
                .collect();
            candidates.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            let mut projected = usage;
            for (slot, n) in candidates {
                if projected <= self.budget {
                    break;
                }
                projected -= n as f64 * cost_now / interval_s;
                out.push(decision(slot, true, n));
            }
        }
        for d in &out {
            if d.throttle {
                self.throttled.insert(d.slot, Throttled::default());
            } else if let Some(state) = self.throttled.remove(&d.slot) {
                self.released.insert(d.slot, state);
            }
        }
        out
    }

    /// The records that tell of `decision` about `container`: a `degraded` record, and the
    /// storm's `resource_anomaly` alert (opened on throttle, ended on release).
    pub fn report(
        &mut self,
        decision: &Decision,
        container: &ContainerRef,
        image_id: Option<&str>,
        now: SystemTime,
    ) -> Vec<RecordBody> {
        let reason = if decision.throttle {
            format!(
                "agent cpu {:.1}% over budget {:.1}%: this container caused {:.0} records/s (the budget pays for about {:.0}/s); its events are counted, not streamed",
                decision.agent_cpu_percent,
                decision.budget_percent,
                decision.records_per_s,
                decision.affordable_records_per_s
            )
        } else {
            format!(
                "calm for {CALM_INTERVALS} intervals ({:.0} records/s withheld, the budget pays for about {:.0}/s): streaming again",
                decision.records_per_s, decision.affordable_records_per_s
            )
        };
        let mut out = vec![RecordBody::Degraded(Degraded {
            container: container.clone(),
            throttled: decision.throttle,
            reason,
            agent_cpu_percent: decision.agent_cpu_percent,
            cpu_budget_percent: decision.budget_percent,
            records_per_s: decision.records_per_s,
        })];
        if decision.throttle {
            let alert = storm_alert(decision, container, image_id, now);
            out.push(RecordBody::Alert(alert.clone()));
            if let Some(state) = self.throttled.get_mut(&decision.slot) {
                state.alert = Some(alert);
            }
        } else if let Some(ended) = self
            .released
            .remove(&decision.slot)
            .and_then(|state| end_alert(state, now))
        {
            out.push(ended);
        }
        out
    }
}

/// The storm as an anomaly: the container's records per second against what the budget pays
/// for. Same id scheme as the detection's incidents.
fn storm_alert(
    decision: &Decision,
    container: &ContainerRef,
    image_id: Option<&str>,
    now: SystemTime,
) -> Alert {
    let short = container.id.get(..12).unwrap_or(&container.id);
    let ms = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_millis();
    let ts = record::timestamp(now);
    let score = decision.records_per_s / decision.affordable_records_per_s.max(f64::MIN_POSITIVE);
    Alert {
        id: format!("{short}-resource_anomaly-{DETECTOR}-{ms}"),
        container: container.clone(),
        image_id: image_id.map(str::to_string),
        class: AlertClass::ResourceAnomaly,
        severity: Severity::High,
        score,
        threshold: 1.0,
        detector: DETECTOR.to_string(),
        views: BTreeMap::new(),
        contributions: vec![AlertContribution {
            feature: "records/s".to_string(),
            baseline: decision.affordable_records_per_s,
            observed: decision.records_per_s,
            detail: Some(format!(
                "agent cpu {:.1}% against a budget of {:.1}%: event stream throttled",
                decision.agent_cpu_percent, decision.budget_percent
            )),
        }],
        detectors: vec![DetectorScore {
            detector: DETECTOR.to_string(),
            score,
            threshold: 1.0,
            anomalous: true,
        }],
        first_seen: ts.clone(),
        last_seen: ts,
        count: 1,
        ended: false,
    }
}

/// The storm's alert, ended: it lasted the intervals the container was throttled.
fn end_alert(state: Throttled, now: SystemTime) -> Option<RecordBody> {
    let mut alert = state.alert?;
    alert.last_seen = record::timestamp(now);
    alert.count = state.intervals.max(1);
    alert.ended = true;
    Some(RecordBody::Alert(alert))
}

/// The agent's own CPU time so far (user + system, every thread), in seconds.
pub fn process_cpu_seconds() -> f64 {
    // SAFETY: getrusage writes one struct rusage, which we own; zeroed is a valid rusage.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        if libc::getrusage(libc::RUSAGE_SELF, &mut usage) != 0 {
            return 0.0;
        }
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STORM: Slot = 1;
    const QUIET: Slot = 2;

    /// One interval of 1 s in which the agent used `cpu_s` CPU seconds, with `records` streamed
    /// and `withheld` throttled per slot.
    fn step(
        budget: &mut Budget,
        clock: &mut f64,
        cpu_s: f64,
        records: &[(Slot, u64)],
        withheld: &[(Slot, u64)],
    ) -> Vec<Decision> {
        for (slot, n) in records {
            for _ in 0..*n {
                budget.record(*slot);
            }
        }
        for (slot, n) in withheld {
            budget.withheld(*slot, *n);
        }
        *clock += cpu_s;
        budget.interval(1.0, *clock)
    }

    fn container(id: char) -> ContainerRef {
        ContainerRef {
            id: id.to_string().repeat(64),
            name: format!("c{id}"),
            image: Some("busybox".into()),
        }
    }

    #[test]
    fn no_budget_is_no_controller() {
        assert!(Budget::new(0.0, 0.0).is_none());
        assert!(Budget::new(10.0, 0.0).is_some());
    }

    #[test]
    fn a_storm_is_throttled_after_two_intervals_over_budget_and_the_quiet_one_is_not() {
        let mut clock = 5.0; // start-up CPU is not charged
        let mut budget = Budget::new(10.0, clock).unwrap();
        let storm = [(STORM, 20_000), (QUIET, 60)];
        // 30% of a core: over a 10% budget.
        assert!(step(&mut budget, &mut clock, 0.3, &storm, &[]).is_empty());
        let decisions = step(&mut budget, &mut clock, 0.3, &storm, &[]);
        assert_eq!(decisions.len(), 1, "{decisions:?}");
        let d = &decisions[0];
        assert_eq!(d.slot, STORM);
        assert!(d.throttle);
        assert_eq!(d.records_per_s, 20_000.0);
        assert!((d.agent_cpu_percent - 30.0).abs() < 1e-9);
        assert_eq!(d.budget_percent, 10.0);
        assert!(budget.is_throttled(STORM));
        assert!(!budget.is_throttled(QUIET));
    }

    #[test]
    fn one_slow_interval_is_not_a_storm() {
        let mut clock = 0.0;
        let mut budget = Budget::new(10.0, clock).unwrap();
        assert!(step(&mut budget, &mut clock, 0.5, &[(STORM, 5000)], &[]).is_empty());
        assert!(step(&mut budget, &mut clock, 0.01, &[(STORM, 100)], &[]).is_empty());
        assert!(step(&mut budget, &mut clock, 0.5, &[(STORM, 5000)], &[]).is_empty());
    }

    #[test]
    fn the_costliest_go_first_until_the_projection_fits() {
        let mut clock = 0.0;
        let mut budget = Budget::new(10.0, clock).unwrap();
        // 40% of a core for 40000 records: 10 us each. Slot 3 alone is 20%, slot 1 15%.
        let records = [(1, 15_000), (3, 20_000), (4, 4_900), (QUIET, 100)];
        step(&mut budget, &mut clock, 0.4, &records, &[]);
        let decisions = step(&mut budget, &mut clock, 0.4, &records, &[]);
        let slots: Vec<Slot> = decisions.iter().map(|d| d.slot).collect();
        // 40 - 20 = 20 > 10, 20 - 15 = 5 <= 10: stop.
        assert_eq!(slots, [3, 1]);
    }

    #[test]
    fn quiet_and_host_containers_are_never_throttled() {
        let mut clock = 0.0;
        let mut budget = Budget::new(1.0, clock).unwrap();
        // Over budget from fixed costs, with only slow streams and a busy host.
        let records = [(QUIET, 40), (HOST_SLOT, 10_000)];
        step(&mut budget, &mut clock, 0.5, &records, &[]);
        assert!(step(&mut budget, &mut clock, 0.5, &records, &[]).is_empty());
    }

    #[test]
    fn fixed_costs_do_not_throttle_ordinary_streams() {
        let mut clock = 0.0;
        let mut budget = Budget::new(3.0, clock).unwrap();
        let storm = [(STORM, 20_000), (QUIET, 100)];
        step(&mut budget, &mut clock, 0.2, &storm, &[]);
        let first = step(&mut budget, &mut clock, 0.2, &storm, &[]);
        assert_eq!(first.iter().map(|d| d.slot).collect::<Vec<_>>(), [STORM]);
        // Still over budget once the storm is withheld (the agent's fixed costs), with the
        // quiet container streaming 100 records/s: charging it all would throttle it.
        for _ in 0..5 {
            let out = step(
                &mut budget,
                &mut clock,
                0.05,
                &[(QUIET, 100)],
                &[(STORM, 20_000)],
            );
            assert!(out.is_empty(), "{out:?}");
        }
        assert!(!budget.is_throttled(QUIET));
    }

    #[test]
    fn release_waits_for_calm_intervals_and_does_not_flap() {
        let mut clock = 0.0;
        let mut budget = Budget::new(10.0, clock).unwrap();
        let storm = [(STORM, 20_000)];
        step(&mut budget, &mut clock, 0.4, &storm, &[]);
        assert_eq!(step(&mut budget, &mut clock, 0.4, &storm, &[]).len(), 1);
        // Still storming while throttled: withheld records would cost 40%: never released.
        for _ in 0..10 {
            assert!(step(&mut budget, &mut clock, 0.01, &[], &[(STORM, 20_000)]).is_empty());
        }
        // Calm down to 300 records/s withheld (0.6% at 20 us): released after 3 intervals.
        let calm = [(STORM, 300)];
        assert!(step(&mut budget, &mut clock, 0.01, &[], &calm).is_empty());
        assert!(step(&mut budget, &mut clock, 0.01, &[], &calm).is_empty());
        // A relapse restarts the count.
        assert!(step(&mut budget, &mut clock, 0.01, &[], &[(STORM, 20_000)]).is_empty());
        assert!(step(&mut budget, &mut clock, 0.01, &[], &calm).is_empty());
        assert!(step(&mut budget, &mut clock, 0.01, &[], &calm).is_empty());
        let decisions = step(&mut budget, &mut clock, 0.01, &[], &calm);
        assert_eq!(decisions.len(), 1);
        assert!(!decisions[0].throttle);
        assert_eq!(decisions[0].records_per_s, 300.0);
        assert!(!budget.is_throttled(STORM));
    }

    #[test]
    fn no_release_while_the_agent_is_over_budget() {
        let mut clock = 0.0;
        let mut budget = Budget::new(10.0, clock).unwrap();
        step(&mut budget, &mut clock, 0.4, &[(STORM, 20_000)], &[]);
        step(&mut budget, &mut clock, 0.4, &[(STORM, 20_000)], &[]);
        for _ in 0..5 {
            // Over budget for costs the calm container does not cause (too few records to
            // throttle anyone else).
            assert!(step(&mut budget, &mut clock, 0.3, &[(QUIET, 10)], &[(STORM, 10)]).is_empty());
        }
        assert!(budget.is_throttled(STORM));
    }

    #[test]
    fn reports_a_degraded_record_and_a_storm_alert_that_ends_on_release() {
        let mut clock = 0.0;
        let mut budget = Budget::new(10.0, clock).unwrap();
        let c = container('a');
        step(&mut budget, &mut clock, 0.4, &[(STORM, 20_000)], &[]);
        let d = step(&mut budget, &mut clock, 0.4, &[(STORM, 20_000)], &[]).remove(0);
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_700_000_000_123);
        let out = budget.report(&d, &c, Some("sha256:x"), at);
        assert_eq!(out.len(), 2);
        let RecordBody::Degraded(degraded) = &out[0] else {
            panic!("{out:?}")
        };
        assert!(degraded.throttled);
        assert_eq!(degraded.container, c);
        assert_eq!(degraded.records_per_s, 20_000.0);
        assert!(
            degraded.reason.contains("over budget 10.0%"),
            "{}",
            degraded.reason
        );
        let RecordBody::Alert(alert) = &out[1] else {
            panic!("{out:?}")
        };
        assert_eq!(
            alert.id,
            "aaaaaaaaaaaa-resource_anomaly-budget-1700000000123"
        );
        assert_eq!(alert.class, AlertClass::ResourceAnomaly);
        assert_eq!(alert.severity, Severity::High);
        assert_eq!(alert.detector, "budget");
        assert_eq!(alert.contributions[0].feature, "records/s");
        assert_eq!(alert.contributions[0].observed, 20_000.0);
        assert!(alert.score > 1.0 && !alert.ended);
        assert_eq!(alert.image_id.as_deref(), Some("sha256:x"));
        let json = serde_json::to_value(&out[0]).unwrap();
        assert_eq!(json["type"], "degraded");
        assert_eq!(json["throttled"], true);

        let calm = [(STORM, 10)];
        let mut released = Vec::new();
        for _ in 0..CALM_INTERVALS {
            released = step(&mut budget, &mut clock, 0.01, &[], &calm);
        }
        let out = budget.report(&released[0], &c, None, at);
        let RecordBody::Degraded(degraded) = &out[0] else {
            panic!("{out:?}")
        };
        assert!(!degraded.throttled);
        let RecordBody::Alert(ended) = &out[1] else {
            panic!("{out:?}")
        };
        assert_eq!(ended.id, alert.id);
        assert!(ended.ended);
        assert_eq!(ended.count, u64::from(CALM_INTERVALS));
    }

    #[test]
    fn a_stopped_container_is_forgotten_with_its_alert_ended() {
        let mut clock = 0.0;
        let mut budget = Budget::new(10.0, clock).unwrap();
        step(&mut budget, &mut clock, 0.4, &[(STORM, 20_000)], &[]);
        let d = step(&mut budget, &mut clock, 0.4, &[(STORM, 20_000)], &[]).remove(0);
        budget.report(&d, &container('b'), None, SystemTime::now());
        let Some(RecordBody::Alert(ended)) = budget.forget(STORM, SystemTime::now()) else {
            panic!("no ended alert")
        };
        assert!(ended.ended);
        assert!(!budget.is_throttled(STORM));
        assert!(budget.forget(STORM, SystemTime::now()).is_none());
    }

    #[test]
    fn cpu_time_is_measured() {
        let before = process_cpu_seconds();
        let mut x = 0u64;
        for i in 0..5_000_000u64 {
            x = x.wrapping_add(i * i);
        }
        std::hint::black_box(x);
        assert!(process_cpu_seconds() >= before);
    }
}
