//! The behaviour profile: which programs, files, ports and peers an image's containers use, and
//! what in a window was never seen while learning.
//!
//! **Items.** Each fact of a window ([`crate::activity::Activity`]) names items of six kinds
//! ([`ItemKind`]): the program executed, the parent→child pair (parent command → program), the
//! file read, the file written (a file known as read is not known as written), the local port
//! that accepted a connection, and the outbound peer (another container's image, or an
//! address, with protocol and port; a failed attempt is an attempt). Paths and command names
//! are generalised first ([`crate::generalise`]: pids, hashes, temporary names), except
//! sensitive paths, which are kept verbatim.
//!
//! **Model.** Per kind, how many times each item was seen while learning, capped at
//! [`BehaviourConfig::max_items`] distinct items (4096 by default; the most seen are kept, the
//! rest counted as dropped), so a baseline stays well under a megabyte per kind. And the *open
//! groups*: a directory whose direct children were at least
//! [`BehaviourConfig::open_group_size`] distinct files while learning (8 by default: log
//! directories, caches, upload spools), or a protocol/port to which at least as many distinct
//! addresses were contacted (a client of many hosts), counts as "any child known", so normal
//! churn is not novel. Sensitive paths never benefit from an open group. Items under an open
//! group are not stored one by one.
//!
//! **Score.** The sum of the weights of the window's distinct novel items:
//!
//! | novel item | weight |
//! |------------|--------|
//! | program executed | 1.0 |
//! | parent→child pair of a known program | 0.5 |
//! | peer: another container's image | 1.5 |
//! | peer: an address | 1.0 |
//! | listening port | 0.5 |
//! | file written | 0.5 |
//! | file read | 0.25 |
//! | sensitive file ([`crate::generalise::is_sensitive`]) | × 4 |
//!
//! A new program is one novelty, not two: its parent→child pair is judged only when the program
//! itself is known (then the pair says "a known program, started by an unusual parent", e.g. a
//! shell spawned by a web server). Novelty counts by presence, not by how many times it happened:
//! the question is *whether* something new happened; a count grows with the window's length
//! and is in the attacker's hands, while presence keeps "one new program" worth the same at any
//! interval. The count is reported as evidence.
//!
//! **Threshold.** Each class (`unexpected_process`, `unexpected_file`,
//! `unauthorized_connection`) is cross-validated on its own: its threshold is the empirical
//! quantile of its summed novelty weight in held-out learning windows, never below
//! [`MIN_THRESHOLD`], just under the weight of one novel program (or one novel address peer).
//! Why per class: the classes differ in how much novelty normal churn brings. An app reading a
//! few new library files in a held-out window must not lift the bar for a new program, which
//! for most images is the strongest sign of an intrusion. The score is the largest ratio of a
//! class's novelty to its own threshold, so the detector alarms (score above
//! [`NORMALISED_THRESHOLD`]) when any class does, and only the classes over their own
//! thresholds are explained and raised. Sensitive items are calibrated apart from their class's
//! ordinary ones, so that churn among ordinary files never lifts the bar for a sensitive one. A class whose held-out windows showed no novelty gets
//! exactly the floor: one new program, one new peer or one new sensitive file alarms on its
//! own, while a lone new ordinary file, parent→child pair or port (weights below 1) alarms only
//! together with other novelties of its class.
//!
//! **Policy.** An optional [`Policy`] ([`BehaviourProfile::set_policy`]) judges
//! container-to-container connections: an allowed one is never novel; with `default = "deny"`
//! one no rule allows is novel even when learnt. The policy is configuration, not learnt state:
//! it is never serialised.
//!
//! **Explanation.** One contribution per novel item, heaviest first: `class` =
//! `unexpected_process` (programs, pairs), `unexpected_file` or `unauthorized_connection`
//! (peers, ports); `baseline` = times the item was seen while learning (0 when novel, the learnt
//! count for a connection the policy denies); `observed` = times in the window.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

use kanary_model::record::AlertClass;
use serde::{Deserialize, Serialize};

use crate::activity::{Activity, Peer};
use crate::detector::{
    cross_validated, empirical_threshold, Calibration, Contribution, Detector, Versioned,
    FORMAT_VERSION,
};
use crate::error::{DetectError, Result};
use crate::generalise::{generalise_name, generalise_path, is_sensitive};
use crate::policy::{Policy, Verdict};
use crate::window::FeatureWindow;

const EXEC_WEIGHT: f64 = 1.0;
const PARENT_CHILD_WEIGHT: f64 = 0.5;
const CONTAINER_PEER_WEIGHT: f64 = 1.5;
const ADDRESS_PEER_WEIGHT: f64 = 1.0;
const LISTEN_WEIGHT: f64 = 0.5;
const WRITE_WEIGHT: f64 = 0.5;
const READ_WEIGHT: f64 = 0.25;
const SENSITIVE_FACTOR: f64 = 4.0;

/// The lowest threshold calibration sets for a class: just under the weight of one novel
/// program, so that one alarms even when held-out normal windows showed no novelty at all.
pub const MIN_THRESHOLD: f64 = EXEC_WEIGHT - 1e-6;

/// The threshold on the normalised score (see [`Detector::raw_score`] of the profile): a class
/// alarms when its novelty exceeds its own threshold.
pub const NORMALISED_THRESHOLD: f64 = MIN_THRESHOLD;

/// The kinds of item the profile learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// A program executed (its generalised path).
    Exec,
    /// A parent→child pair (`parent → program`).
    ParentChild,
    /// A file opened for reading only.
    Read,
    /// A file opened for writing.
    Write,
    /// A local port that accepted a connection.
    Listen,
    /// An outbound peer (`image protocol/port`, or `address protocol/port`).
    Connect,
}

impl ItemKind {
    fn class(self) -> AlertClass {
        match self {
            ItemKind::Exec | ItemKind::ParentChild => AlertClass::UnexpectedProcess,
            ItemKind::Read | ItemKind::Write => AlertClass::UnexpectedFile,
            ItemKind::Listen | ItemKind::Connect => AlertClass::UnauthorizedConnection,
        }
    }
}

/// Settings of the behaviour profile.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BehaviourConfig {
    /// Most distinct items learnt per kind; the most seen are kept.
    pub max_items: usize,
    /// Distinct children that open a group (a directory's files, a port's addresses): any
    /// child of an open group is known. At least 2.
    pub open_group_size: usize,
    /// How many novel items a finding explains.
    pub top: usize,
}

impl Default for BehaviourConfig {
    fn default() -> Self {
        BehaviourConfig {
            max_items: 4096,
            open_group_size: 8,
            top: 10,
        }
    }
}

/// What was learnt of one kind of item.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
struct Seen {
    /// Times each item was seen while learning.
    counts: BTreeMap<String, u64>,
    /// Groups any child of which is known.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    open_groups: BTreeSet<String>,
    /// Distinct items (and groups) left out by the cap.
    #[serde(default, skip_serializing_if = "is_zero")]
    dropped: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// One item a fact names.
struct Item {
    kind: ItemKind,
    key: String,
    /// The group whose opening makes the item known; none for sensitive paths.
    group: Option<String>,
    sensitive: bool,
}

/// A novel item of a window, with the first fact that showed it.
struct Novelty<'w> {
    kind: ItemKind,
    /// The item is sensitive: its own threshold, apart from the class's ordinary items.
    sensitive: bool,
    weight: f64,
    /// Times seen while learning (non-zero only for a connection the policy denies).
    seen: u64,
    /// Times in the window.
    count: u64,
    activity: &'w Activity,
    denied: bool,
}

impl Novelty<'_> {
    fn group(&self) -> Group {
        (self.kind.class(), self.sensitive)
    }
}

/// A policy and the image it is applied for.
#[derive(Debug, Clone, PartialEq)]
struct ScopedPolicy {
    image: String,
    policy: Policy,
}

/// The behaviour profile (see the module documentation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BehaviourProfile {
    /// [`FORMAT_VERSION`] of this state.
    pub format_version: u32,
    /// Settings.
    pub config: BehaviourConfig,
    /// Learning windows the profile was learnt from (0: nothing learnt yet).
    windows: u64,
    seen: BTreeMap<ItemKind, Seen>,
    /// Each class's own threshold on its summed novelty weight of ordinary items (see
    /// "Threshold" above); a class without one uses [`MIN_THRESHOLD`].
    class_thresholds: BTreeMap<AlertClass, f64>,
    /// The same for sensitive items, apart: churn among ordinary files must not lift the bar
    /// for `/etc/shadow`.
    sensitive_thresholds: BTreeMap<AlertClass, f64>,
    /// The threshold on [`Detector::raw_score`], which is normalised by the class thresholds:
    /// [`NORMALISED_THRESHOLD`] once calibrated.
    threshold: Option<f64>,
    #[serde(skip)]
    policy: Option<ScopedPolicy>,
}

impl BehaviourProfile {
    /// A profile that has learnt nothing yet.
    pub fn new(config: BehaviourConfig) -> Self {
        BehaviourProfile {
            format_version: FORMAT_VERSION,
            config,
            windows: 0,
            seen: BTreeMap::new(),
            class_thresholds: BTreeMap::new(),
            sensitive_thresholds: BTreeMap::new(),
            threshold: None,
            policy: None,
        }
    }

    /// Judges container-to-container connections by `policy` from now on (`None`: by the
    /// baseline only); `image` is the image of the containers this profile scores, matched
    /// against the policy's `from` patterns.
    pub fn set_policy(&mut self, image: &str, policy: Option<Policy>) {
        self.policy = policy.map(|policy| ScopedPolicy {
            image: image.to_string(),
            policy,
        });
    }

    /// Times the item `key` (as generalised) of `kind` was seen while learning.
    pub fn seen(&self, kind: ItemKind, key: &str) -> u64 {
        self.seen
            .get(&kind)
            .and_then(|seen| seen.counts.get(key))
            .copied()
            .unwrap_or(0)
    }

    /// Distinct items kept, over all kinds.
    pub fn items(&self) -> usize {
        self.seen.values().map(|seen| seen.counts.len()).sum()
    }

    /// Distinct items and groups left out by [`BehaviourConfig::max_items`], over all kinds.
    pub fn dropped(&self) -> u64 {
        self.seen.values().map(|seen| seen.dropped).sum()
    }

    /// The threshold of `class`'s summed novelty weight of ordinary items.
    pub fn class_threshold(&self, class: AlertClass) -> f64 {
        self.group_threshold((class, false))
    }

    /// The threshold of `group`'s summed novelty weight.
    fn group_threshold(&self, (class, sensitive): Group) -> f64 {
        let thresholds = if sensitive {
            &self.sensitive_thresholds
        } else {
            &self.class_thresholds
        };
        thresholds.get(&class).copied().unwrap_or(MIN_THRESHOLD)
    }

    /// The summed weight of the window's novel items, per group.
    fn group_sums(novelties: &[Novelty]) -> BTreeMap<Group, f64> {
        let mut sums = BTreeMap::new();
        for novelty in novelties {
            *sums.entry(novelty.group()).or_insert(0.0) += novelty.weight;
        }
        sums
    }

    /// Whether `item` was seen while learning, itself or as a child of an open group.
    fn is_known(&self, item: &Item) -> bool {
        self.seen.get(&item.kind).is_some_and(|seen| {
            seen.counts.contains_key(&item.key)
                || item
                    .group
                    .as_ref()
                    .is_some_and(|group| seen.open_groups.contains(group))
        })
    }

    /// The policy's verdict on `activity`, when it is a connection to another container and a
    /// policy is set.
    fn verdict(&self, activity: &Activity) -> Option<Verdict> {
        let scoped = self.policy.as_ref()?;
        match activity {
            Activity::Connect {
                peer: Peer::Container { image, .. },
                port,
                ..
            } => Some(scoped.policy.verdict(&scoped.image, image, *port)),
            _ => None,
        }
    }

    /// The distinct novel items of `window`, in the order first seen.
    fn novelties<'w>(&self, window: &'w FeatureWindow) -> Result<Vec<Novelty<'w>>> {
        if self.windows == 0 {
            return Err(DetectError::NotTrained("behaviour"));
        }
        let mut found: Vec<Novelty<'w>> = Vec::new();
        let mut index: BTreeMap<(ItemKind, String), usize> = BTreeMap::new();
        for fact in &window.facts {
            // The runtime's own look-ups and re-executions are not the container's behaviour.
            if fact.activity.by_runtime() {
                continue;
            }
            let verdict = self.verdict(&fact.activity);
            let denied = verdict == Some(Verdict::Denied);
            let mut program_novel = false;
            for item in items_of(&fact.activity) {
                let novel = match verdict {
                    Some(Verdict::Allowed) => false,
                    _ => denied || !self.is_known(&item),
                };
                // A new program's parent→child pair is new too; it adds nothing.
                if !novel || (item.kind == ItemKind::ParentChild && program_novel) {
                    continue;
                }
                program_novel |= item.kind == ItemKind::Exec;
                let novelty = Novelty {
                    kind: item.kind,
                    sensitive: item.sensitive,
                    weight: weight(&item, &fact.activity),
                    seen: self.seen(item.kind, &item.key),
                    count: fact.count,
                    activity: &fact.activity,
                    denied,
                };
                match index.entry((item.kind, item.key)) {
                    Entry::Occupied(at) => {
                        let first = &mut found[*at.get()];
                        first.count = first.count.saturating_add(fact.count);
                    }
                    Entry::Vacant(slot) => {
                        slot.insert(found.len());
                        found.push(novelty);
                    }
                }
            }
        }
        Ok(found)
    }
}

impl Seen {
    /// The learnt counts of `items` (key → count and group), opened groups and cap applied.
    fn learn(items: BTreeMap<String, (u64, Option<String>)>, config: &BehaviourConfig) -> Seen {
        let mut children: BTreeMap<&str, u64> = BTreeMap::new();
        for (_, group) in items.values() {
            if let Some(group) = group {
                *children.entry(group).or_default() += 1;
            }
        }
        let open: Vec<(String, u64)> = children
            .into_iter()
            .filter(|&(_, n)| n >= config.open_group_size as u64)
            .map(|(group, n)| (group.to_string(), n))
            .collect();
        let (open_groups, dropped_groups) = most_seen(open, config.max_items);
        let singles = items
            .into_iter()
            .filter(|(_, (_, group))| group.as_ref().is_none_or(|g| !open_groups.contains_key(g)))
            .map(|(key, (count, _))| (key, count));
        let (counts, dropped) = most_seen(singles, config.max_items);
        Seen {
            counts,
            open_groups: open_groups.into_keys().collect(),
            dropped: dropped + dropped_groups,
        }
    }
}

/// The `cap` entries with the highest counts (ties: the first keys), and how many were left out.
fn most_seen(
    entries: impl IntoIterator<Item = (String, u64)>,
    cap: usize,
) -> (BTreeMap<String, u64>, u64) {
    let mut ranked: Vec<(String, u64)> = entries.into_iter().collect();
    let dropped = ranked.len().saturating_sub(cap) as u64;
    if dropped > 0 {
        ranked.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        ranked.truncate(cap);
    }
    (ranked.into_iter().collect(), dropped)
}

/// The items `activity` names; an exec names its program first, then its parent→child pair.
fn items_of(activity: &Activity) -> Vec<Item> {
    let item = |kind, key: String, group: Option<String>| Item {
        kind,
        key,
        group,
        sensitive: false,
    };
    match activity {
        Activity::Exec { path, parent, .. } => {
            let program = generalise_path(path);
            let pair = format!("{} → {program}", generalise_name(parent));
            vec![
                item(ItemKind::Exec, program, None),
                item(ItemKind::ParentChild, pair, None),
            ]
        }
        Activity::Open { path, write, .. } => {
            let kind = if *write {
                ItemKind::Write
            } else {
                ItemKind::Read
            };
            let key = generalise_path(path);
            let sensitive = is_sensitive(path);
            // The root is never a group: its children are the whole file system.
            let group = match key.rsplit_once('/') {
                Some((dir, _)) if !sensitive && !dir.is_empty() => Some(dir.to_string()),
                _ => None,
            };
            vec![Item {
                kind,
                key,
                group,
                sensitive,
            }]
        }
        Activity::Connect {
            peer,
            port,
            protocol,
            ..
        } => {
            let service = format!("{protocol}/{port}");
            vec![match peer {
                Peer::Container { image, .. } => item(
                    ItemKind::Connect,
                    format!("container {image} {service}"),
                    None,
                ),
                Peer::Address { address } => item(
                    ItemKind::Connect,
                    format!("address {address} {service}"),
                    Some(service),
                ),
            }]
        }
        Activity::Accept { port, .. } => vec![item(ItemKind::Listen, port.to_string(), None)],
        Activity::Security { .. } => Vec::new(),
    }
}

fn weight(item: &Item, activity: &Activity) -> f64 {
    let base = match item.kind {
        ItemKind::Exec => EXEC_WEIGHT,
        ItemKind::ParentChild => PARENT_CHILD_WEIGHT,
        ItemKind::Read => READ_WEIGHT,
        ItemKind::Write => WRITE_WEIGHT,
        ItemKind::Listen => LISTEN_WEIGHT,
        ItemKind::Connect => match activity {
            Activity::Connect {
                peer: Peer::Container { .. },
                ..
            } => CONTAINER_PEER_WEIGHT,
            _ => ADDRESS_PEER_WEIGHT,
        },
    };
    if item.sensitive {
        base * SENSITIVE_FACTOR
    } else {
        base
    }
}

/// The contribution explaining `novelty`: what happened, as the fact showed it.
fn contribution(novelty: &Novelty) -> Contribution {
    let (feature, detail) = match novelty.activity {
        Activity::Exec {
            path,
            parent,
            cmdline,
            ..
        } => {
            let feature = match novelty.kind {
                ItemKind::ParentChild => format!("exec {path} (new parent {parent})"),
                _ => format!("exec {path} (parent {parent})"),
            };
            (feature, cmdline.clone())
        }
        Activity::Open {
            path,
            write,
            ok,
            comm,
        } => (
            format!("open {path} ({})", if *write { "write" } else { "read" }),
            format!("{comm}{}", if *ok { "" } else { " (refused)" }),
        ),
        Activity::Connect {
            peer,
            port,
            protocol,
            ok,
            comm,
        } => {
            let (target, peer_name) = match peer {
                Peer::Container { image, name } => (image, format!("peer {name}, ")),
                Peer::Address { address } => (address, String::new()),
            };
            let denied = if novelty.denied {
                " (denied by policy)"
            } else {
                ""
            };
            (
                format!("connect {target} {protocol}/{port}{denied}"),
                format!("{peer_name}by {comm}{}", if *ok { "" } else { " (failed)" }),
            )
        }
        Activity::Accept { peer, port } => (
            format!("accept on port {port}"),
            match peer {
                Peer::Container { image, name } => format!("from {name} ({image})"),
                Peer::Address { address } => format!("from {address}"),
            },
        ),
        Activity::Security { syscall, comm, .. } => (syscall.clone(), comm.clone()),
    };
    let mut contribution = Contribution::new(feature, novelty.seen as f64, novelty.count as f64);
    contribution.class = Some(novelty.kind.class());
    contribution.detail = Some(detail);
    contribution
}

impl Versioned for BehaviourProfile {
    fn format_version(&self) -> u32 {
        self.format_version
    }
}

impl Detector for BehaviourProfile {
    fn kind(&self) -> &'static str {
        "behaviour"
    }

    fn class(&self) -> AlertClass {
        AlertClass::UnexpectedProcess
    }

    /// It judges facts, which start-up and idle windows have too.
    fn is_statistical(&self) -> bool {
        false
    }

    /// Learns every item of the windows' facts. Windows without facts are learnt too (a
    /// container that did nothing observable); only an empty slice is refused.
    fn learn(&mut self, windows: &[FeatureWindow]) -> Result<()> {
        if self.config.max_items == 0 || self.config.open_group_size < 2 {
            return Err(DetectError::Config(format!(
                "behaviour profile: max_items must be at least 1 and open_group_size at least 2 (got {} and {})",
                self.config.max_items, self.config.open_group_size
            )));
        }
        if windows.is_empty() {
            return Err(DetectError::EmptyTraining(
                "the behaviour profile got no learning window".into(),
            ));
        }
        let mut all: BTreeMap<ItemKind, BTreeMap<String, (u64, Option<String>)>> = BTreeMap::new();
        for fact in windows.iter().flat_map(|w| &w.facts) {
            for item in items_of(&fact.activity) {
                let entry = all
                    .entry(item.kind)
                    .or_default()
                    .entry(item.key)
                    .or_insert((0, item.group));
                entry.0 = entry.0.saturating_add(fact.count);
            }
        }
        self.seen = all
            .into_iter()
            .map(|(kind, items)| (kind, Seen::learn(items, &self.config)))
            .collect();
        self.windows = windows.len() as u64;
        Ok(())
    }

    /// The largest, over the classes, of the summed weight of the window's distinct novel
    /// items of that class scaled by [`NORMALISED_THRESHOLD`] / the class's threshold: for a
    /// class at the floor, just its summed weight.
    fn raw_score(&self, window: &FeatureWindow) -> Result<f64> {
        let sums = Self::group_sums(&self.novelties(window)?);
        Ok(sums
            .iter()
            .map(|(group, sum)| sum * NORMALISED_THRESHOLD / self.group_threshold(*group))
            .fold(0.0, f64::max))
    }

    /// One contribution per novel item of the classes over their threshold, heaviest first
    /// (see the module documentation): a class under its own threshold raises nothing, even
    /// when another class alarms.
    fn explain(&self, window: &FeatureWindow, top: usize) -> Result<Vec<Contribution>> {
        let mut novelties = self.novelties(window)?;
        let sums = Self::group_sums(&novelties);
        novelties.retain(|n| {
            sums.get(&n.group())
                .is_some_and(|sum| *sum > self.group_threshold(n.group()))
        });
        // Stable: equal weights keep the order the window showed them in.
        novelties.sort_by(|a, b| b.weight.total_cmp(&a.weight));
        Ok(novelties.iter().take(top).map(contribution).collect())
    }

    /// Calibrates each class on its own held-out novelty (see "Threshold" above); the
    /// normalised score's threshold is then [`NORMALISED_THRESHOLD`].
    fn calibrate(&mut self, windows: &[FeatureWindow], calibration: &Calibration) -> Result<f64> {
        let held_out = cross_validated(self, windows, calibration, |profile, window| {
            Ok(Self::group_sums(&profile.novelties(window)?))
        })?;
        let threshold_of = |group: Group| {
            let scores: Vec<f64> = held_out
                .iter()
                .map(|sums| sums.get(&group).copied().unwrap_or(0.0))
                .collect();
            empirical_threshold(&scores, calibration).max(MIN_THRESHOLD)
        };
        self.class_thresholds = CLASSES
            .iter()
            .map(|c| (*c, threshold_of((*c, false))))
            .collect();
        self.sensitive_thresholds = CLASSES
            .iter()
            .map(|c| (*c, threshold_of((*c, true))))
            .collect();
        self.set_threshold(NORMALISED_THRESHOLD);
        Ok(NORMALISED_THRESHOLD)
    }

    fn top(&self) -> usize {
        self.config.top
    }

    fn threshold(&self) -> Option<f64> {
        self.threshold
    }

    fn set_threshold(&mut self, threshold: f64) {
        self.threshold = Some(threshold);
    }
}

/// A class, and whether its items are sensitive: what each threshold is kept for.
type Group = (AlertClass, bool);

/// The classes the profile raises, each calibrated on its own.
const CLASSES: [AlertClass; 3] = [
    AlertClass::UnexpectedProcess,
    AlertClass::UnexpectedFile,
    AlertClass::UnauthorizedConnection,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::activity::Fact;
    use crate::detector::{cross_validated_scores, Calibration};
    use crate::detector::{from_json, to_json};

    fn exec(path: &str, parent: &str) -> Activity {
        Activity::Exec {
            path: path.into(),
            parent: parent.into(),
            cmdline: format!("{path} -x"),
            uid: 0,
        }
    }

    fn open(path: &str, write: bool) -> Activity {
        Activity::Open {
            path: path.into(),
            write,
            ok: true,
            comm: "nginx".into(),
        }
    }

    fn connect_container(image: &str, name: &str, port: u16, ok: bool) -> Activity {
        Activity::Connect {
            peer: Peer::Container {
                image: image.into(),
                name: name.into(),
            },
            port,
            protocol: "tcp".into(),
            ok,
            comm: "nginx".into(),
        }
    }

    fn connect_address(address: &str, port: u16) -> Activity {
        Activity::Connect {
            peer: Peer::Address {
                address: address.into(),
            },
            port,
            protocol: "udp".into(),
            ok: true,
            comm: "nginx".into(),
        }
    }

    fn accept(port: u16) -> Activity {
        Activity::Accept {
            peer: Peer::Address {
                address: "10.1.0.9".into(),
            },
            port,
        }
    }

    fn window(activities: Vec<Activity>) -> FeatureWindow {
        FeatureWindow {
            facts: activities
                .into_iter()
                .map(|activity| Fact { activity, count: 3 })
                .collect(),
            ..FeatureWindow::default()
        }
    }

    const PAGES: [&str; 12] = [
        "about", "blog", "contact", "docs", "faq", "help", "index", "jobs", "news", "press",
        "shop", "team",
    ];

    /// One window per page, each reading six files of a directory no other window reads (so no
    /// group of opens forms), plus `extra`: held-out windows all show file novelty.
    fn file_churn_windows(extra: &[Activity]) -> Vec<FeatureWindow> {
        PAGES
            .iter()
            .map(|name| {
                let files = (0..6).map(|i| open(&format!("/srv/{name}/f{i}.dat"), false));
                window(files.chain(extra.iter().cloned()).collect())
            })
            .collect()
    }

    /// A web server: serves pages of a churning directory, logs to numbered files, asks a
    /// cache container and many DNS resolvers, and runs curl from a shell every third window.
    fn normal(i: usize) -> FeatureWindow {
        let mut activities = vec![
            accept(80),
            open("/etc/hosts", false),
            open(&format!("/srv/www/{}.html", PAGES[i % PAGES.len()]), false),
            open(&format!("/var/log/nginx/access-{i}.log"), true),
            open(&format!("/proc/{}/stat", 1000 + i), false),
            connect_container("redis:7", &format!("cache-{}", i % 2), 6379, true),
            connect_address(&format!("10.0.0.{}", i % 20), 53),
        ];
        if i.is_multiple_of(3) {
            activities.push(exec("/usr/bin/curl", "sh"));
        }
        window(activities)
    }

    fn training() -> Vec<FeatureWindow> {
        (0..30).map(normal).collect()
    }

    fn fitted() -> BehaviourProfile {
        let mut profile = BehaviourProfile::new(BehaviourConfig::default());
        profile.fit(&training(), &Calibration::default()).unwrap();
        profile
    }

    /// `base` plus `extra` facts.
    fn with(base: FeatureWindow, extra: Vec<Activity>) -> FeatureWindow {
        let mut window = base;
        window.facts.extend(window_facts(extra));
        window
    }

    fn window_facts(activities: Vec<Activity>) -> Vec<Fact> {
        window(activities).facts
    }

    #[test]
    fn the_runtimes_look_ups_are_not_judged_but_what_it_executes_is() {
        let profile = fitted();
        let runc_open = Activity::Open {
            path: "/etc/passwd".into(),
            write: false,
            ok: true,
            comm: "runc:[2:INIT]".into(),
        };
        let finding = profile.score(&window(vec![runc_open])).unwrap();
        assert_eq!(finding.score, 0.0, "{finding:?}");
        // A `docker exec`'d program: runc is its parent, the program is the container's.
        let finding = profile
            .score(&window(vec![exec("/bin/uname", "runc:[2:INIT]")]))
            .unwrap();
        assert!(finding.anomalous, "{finding:?}");
    }

    #[test]
    fn normal_windows_pass_and_the_threshold_is_the_floor() {
        let profile = fitted();
        let held_out =
            cross_validated_scores(&profile, &training(), &Calibration::default()).unwrap();
        assert!(held_out.iter().all(|&s| s == 0.0), "{held_out:?}");
        assert_eq!(profile.threshold(), Some(MIN_THRESHOLD));
        // New log number, page, pid and resolver: generalised or under an open group.
        let fresh = window(vec![
            open("/var/log/nginx/access-977.log", true),
            open("/srv/www/pricing.html", false),
            open("/proc/31337/stat", false),
            connect_address("10.0.0.99", 53),
            exec("/usr/bin/curl", "sh"),
        ]);
        let finding = profile.score(&fresh).unwrap();
        assert_eq!(finding.score, 0.0, "{finding:?}");
        assert!(!finding.anomalous);
        assert_eq!(profile.seen(ItemKind::Exec, "/usr/bin/curl"), 30);
        assert_eq!(profile.seen(ItemKind::Read, "/proc/<n>/stat"), 90);
    }

    #[test]
    fn one_new_program_alarms_with_its_command_line() {
        let profile = fitted();
        let finding = profile
            .score(&with(normal(31), vec![exec("/bin/sh", "nginx")]))
            .unwrap();
        assert!(finding.anomalous, "{finding:?}");
        assert_eq!(finding.score, 1.0, "the pair of a new program adds nothing");
        assert_eq!(finding.class, AlertClass::UnexpectedProcess);
        let first = &finding.contributions[0];
        assert_eq!(first.feature, "exec /bin/sh (parent nginx)");
        assert_eq!(first.class, Some(AlertClass::UnexpectedProcess));
        assert_eq!(first.detail.as_deref(), Some("/bin/sh -x"));
        assert_eq!((first.baseline, first.observed), (0.0, 3.0));
        assert_eq!(finding.contributions.len(), 1);
    }

    #[test]
    fn a_known_program_with_a_new_parent_weighs_half() {
        let profile = fitted();
        let w = window(vec![exec("/usr/bin/curl", "nginx")]);
        assert_eq!(profile.raw_score(&w).unwrap(), PARENT_CHILD_WEIGHT);
        assert!(
            !profile.score(&w).unwrap().anomalous,
            "0.5 alone is below the floor"
        );
        assert!(
            profile.explain(&w, 5).unwrap().is_empty(),
            "nothing over a threshold to explain"
        );
        let twice = window(vec![
            exec("/usr/bin/curl", "nginx"),
            exec("/usr/bin/tar", "nginx"),
        ]);
        let explained = profile.explain(&twice, 5).unwrap();
        let features: Vec<&str> = explained.iter().map(|c| c.feature.as_str()).collect();
        assert_eq!(
            features,
            vec![
                "exec /usr/bin/tar (parent nginx)",
                "exec /usr/bin/curl (new parent nginx)"
            ],
            "a class over its threshold explains all its novelties, heaviest first"
        );
    }

    #[test]
    fn files_read_and_written_are_apart_and_sensitive_ones_weigh_more() {
        let profile = fitted();
        let written = window(vec![open("/etc/hosts", true)]);
        assert_eq!(profile.raw_score(&written).unwrap(), WRITE_WEIGHT);
        let plain = window(vec![open("/etc/motd", false)]);
        assert_eq!(profile.raw_score(&plain).unwrap(), READ_WEIGHT);
        assert!(!profile.score(&plain).unwrap().anomalous);
        let shadow = window(vec![open("/etc/motd", false), open("/etc/shadow", false)]);
        let finding = profile.score(&shadow).unwrap();
        assert!(finding.anomalous, "{finding:?}");
        // Sensitive items are judged apart from the ordinary ones of their class: the shadow
        // read alarms on its own, the lone new ordinary read stays under its threshold.
        assert_eq!(finding.score, READ_WEIGHT * SENSITIVE_FACTOR);
        assert_eq!(finding.contributions.len(), 1, "{finding:?}");
        let first = &finding.contributions[0];
        assert_eq!(first.feature, "open /etc/shadow (read)");
        assert_eq!(first.class, Some(AlertClass::UnexpectedFile));
        assert_eq!(first.detail.as_deref(), Some("nginx"));
    }

    #[test]
    fn ordinary_file_churn_does_not_hide_a_sensitive_read() {
        // Every window reads files never read in any other: the ordinary file threshold rises,
        // the sensitive one stays at the floor.
        let windows = file_churn_windows(&[]);
        let mut profile = BehaviourProfile::new(BehaviourConfig::default());
        profile.fit(&windows, &Calibration::default()).unwrap();
        assert!(profile.class_threshold(AlertClass::UnexpectedFile) > 1.0);
        let finding = profile
            .score(&window(vec![open("/etc/shadow", false)]))
            .unwrap();
        assert!(finding.anomalous, "{finding:?}");
    }

    #[test]
    fn open_directories_know_any_child_but_never_a_sensitive_one() {
        let mut profile = BehaviourProfile::new(BehaviourConfig::default());
        let names = ["a", "b", "c", "d", "e", "f", "g", "h"];
        let learnt: Vec<Activity> = names
            .iter()
            .flat_map(|n| {
                [
                    open(&format!("/var/cache/app/{n}"), false),
                    open(&format!("/run/secrets/{n}"), false),
                ]
            })
            .chain(
                names[..7]
                    .iter()
                    .map(|n| open(&format!("/var/lib/db/{n}"), false)),
            )
            .collect();
        profile.learn(&[window(learnt)]).unwrap();
        assert_eq!(
            profile
                .raw_score(&window(vec![open("/var/cache/app/zz", false)]))
                .unwrap(),
            0.0
        );
        // Direct children only, and only of a directory with enough of them.
        for path in ["/var/cache/app/zz/deeper", "/var/lib/db/zz"] {
            assert_eq!(
                profile.raw_score(&window(vec![open(path, false)])).unwrap(),
                READ_WEIGHT,
                "{path}"
            );
        }
        assert_eq!(
            profile
                .raw_score(&window(vec![open("/run/secrets/zz", false)]))
                .unwrap(),
            READ_WEIGHT * SENSITIVE_FACTOR
        );
        assert_eq!(
            profile
                .raw_score(&window(vec![open("/run/secrets/a", false)]))
                .unwrap(),
            0.0
        );
        // Children of an open group are not stored one by one.
        assert_eq!(profile.seen(ItemKind::Read, "/var/cache/app/a"), 0);
    }

    #[test]
    fn a_new_peer_container_is_an_unauthorised_connection() {
        let profile = fitted();
        let finding = profile
            .score(&with(
                normal(40),
                vec![
                    connect_container("postgres:16", "db", 5432, false),
                    accept(4444),
                ],
            ))
            .unwrap();
        assert!(finding.anomalous, "{finding:?}");
        assert_eq!(finding.score, CONTAINER_PEER_WEIGHT + LISTEN_WEIGHT);
        let peer = &finding.contributions[0];
        assert_eq!(peer.feature, "connect postgres:16 tcp/5432");
        assert_eq!(peer.class, Some(AlertClass::UnauthorizedConnection));
        assert_eq!(peer.detail.as_deref(), Some("peer db, by nginx (failed)"));
        let port = &finding.contributions[1];
        assert_eq!(port.feature, "accept on port 4444");
        assert_eq!(port.class, Some(AlertClass::UnauthorizedConnection));
        // A new address on a port never used for many addresses is novel too.
        let address = window(vec![connect_address("203.0.113.7", 4444)]);
        assert_eq!(profile.raw_score(&address).unwrap(), ADDRESS_PEER_WEIGHT);
    }

    #[test]
    fn a_policy_allows_or_denies_container_connections() {
        let mut profile = fitted();
        let postgres = window(vec![connect_container("postgres:16", "db", 5432, true)]);
        let redis = window(vec![connect_container("redis:7", "cache-0", 6379, true)]);
        let learn = "[[allow]]\nfrom = \"web:*\"\nto = \"postgres:*\"\nports = [5432]\n";
        profile.set_policy("web:2", Some(Policy::from_toml(learn).unwrap()));
        assert_eq!(profile.raw_score(&postgres).unwrap(), 0.0, "allowed");
        assert_eq!(profile.raw_score(&redis).unwrap(), 0.0, "learnt");
        profile.set_policy("worker:1", Some(Policy::from_toml(learn).unwrap()));
        assert_eq!(profile.raw_score(&postgres).unwrap(), CONTAINER_PEER_WEIGHT);
        let deny = format!("default = \"deny\"\n{learn}");
        profile.set_policy("web:2", Some(Policy::from_toml(&deny).unwrap()));
        assert_eq!(profile.raw_score(&postgres).unwrap(), 0.0);
        let finding = profile.score(&redis).unwrap();
        assert!(finding.anomalous, "denied although learnt: {finding:?}");
        let c = &finding.contributions[0];
        assert_eq!(c.feature, "connect redis:7 tcp/6379 (denied by policy)");
        assert_eq!(c.baseline, 90.0, "30 windows, 3 times each");
        // Addresses are not the policy's business.
        assert_eq!(
            profile
                .raw_score(&window(vec![connect_address("10.0.0.3", 53)]))
                .unwrap(),
            0.0
        );
        // The policy is configuration: never serialised.
        let without = {
            let mut p = profile.clone();
            p.set_policy("web:2", None);
            p
        };
        assert_eq!(to_json(&profile).unwrap(), to_json(&without).unwrap());
    }

    #[test]
    fn a_churning_profile_raises_the_threshold_above_the_floor() {
        // Every window runs a program never seen in any other: held-out windows are all novel.
        let windows: Vec<FeatureWindow> = PAGES
            .iter()
            .map(|name| window(vec![exec(&format!("/opt/jobs/{name}"), "cron")]))
            .collect();
        let mut profile = BehaviourProfile::new(BehaviourConfig::default());
        let threshold = profile.fit(&windows, &Calibration::default()).unwrap();
        assert_eq!(threshold, NORMALISED_THRESHOLD);
        assert_eq!(
            profile.class_threshold(AlertClass::UnexpectedProcess),
            EXEC_WEIGHT
        );
        assert_eq!(
            profile.class_threshold(AlertClass::UnexpectedFile),
            MIN_THRESHOLD
        );
        let one_more = window(vec![exec("/opt/jobs/extra", "cron")]);
        assert!(!profile.score(&one_more).unwrap().anomalous);
    }

    #[test]
    fn file_churn_raises_the_file_threshold_only() {
        // Every window reads a few files never read in any other: held-out windows show file
        // novelty, never a new program.
        let windows = file_churn_windows(&[exec("/usr/sbin/nginx", "runc")]);
        let mut profile = BehaviourProfile::new(BehaviourConfig::default());
        profile.fit(&windows, &Calibration::default()).unwrap();
        assert_eq!(
            profile.class_threshold(AlertClass::UnexpectedFile),
            6.0 * READ_WEIGHT
        );
        assert_eq!(
            profile.class_threshold(AlertClass::UnexpectedProcess),
            MIN_THRESHOLD
        );
        // As much file novelty as normal: quiet. One new program among it: an alarm about the
        // program alone.
        let files = |dir: &str| -> Vec<Activity> {
            (0..6)
                .map(|i| open(&format!("/srv/{dir}/part{i}.dat"), false))
                .collect()
        };
        assert!(!profile.score(&window(files("new"))).unwrap().anomalous);
        let mut attack = files("other");
        attack.push(exec("/usr/bin/id", "sh"));
        let attack = window(attack);
        let finding = profile.score(&attack).unwrap();
        assert!(finding.anomalous, "{finding:?}");
        let classes: BTreeSet<Option<AlertClass>> =
            finding.contributions.iter().map(|c| c.class).collect();
        assert_eq!(
            classes,
            BTreeSet::from([Some(AlertClass::UnexpectedProcess)])
        );
    }

    #[test]
    fn the_cap_keeps_the_most_seen_and_state_round_trips() {
        let mut profile = BehaviourProfile::new(BehaviourConfig {
            max_items: 2,
            ..BehaviourConfig::default()
        });
        let mut windows = training();
        windows.push(window(vec![
            exec("/bin/rare", "sh"),
            exec("/bin/rarer", "sh"),
        ]));
        profile.learn(&windows).unwrap();
        assert_eq!(profile.seen(ItemKind::Exec, "/usr/bin/curl"), 30);
        assert!(profile.dropped() > 0);
        assert!(profile.items() <= 2 * 6);
        profile
            .calibrate(&windows, &Calibration::default())
            .unwrap();
        let text = to_json(&profile).unwrap();
        let back: BehaviourProfile = from_json(&text).unwrap();
        assert_eq!(back, profile);
        assert_eq!(to_json(&back).unwrap(), text);
        let probe = with(
            normal(3),
            vec![exec("/bin/sh", "nginx"), open("/etc/shadow", false)],
        );
        assert_eq!(back.score(&probe).unwrap(), profile.score(&probe).unwrap());
    }

    #[test]
    fn bad_settings_state_and_input_are_refused() {
        let fresh = BehaviourProfile::new(BehaviourConfig::default());
        assert!(matches!(
            fresh.raw_score(&normal(0)),
            Err(DetectError::NotTrained("behaviour"))
        ));
        let mut empty = fresh.clone();
        assert!(matches!(
            empty.learn(&[]),
            Err(DetectError::EmptyTraining(_))
        ));
        empty.learn(&[FeatureWindow::default()]).unwrap();
        assert_eq!(
            empty
                .raw_score(&window(vec![exec("/bin/sh", "x")]))
                .unwrap(),
            EXEC_WEIGHT,
            "a profile of a quiet container finds anything new"
        );
        for config in [
            BehaviourConfig {
                max_items: 0,
                ..BehaviourConfig::default()
            },
            BehaviourConfig {
                open_group_size: 1,
                ..BehaviourConfig::default()
            },
        ] {
            let mut bad = BehaviourProfile::new(config);
            assert!(matches!(
                bad.learn(&training()),
                Err(DetectError::Config(_))
            ));
        }
        let text = to_json(&fitted()).unwrap();
        let old = text.replace(
            &format!("\"format_version\":{FORMAT_VERSION}"),
            "\"format_version\":0",
        );
        assert!(matches!(
            from_json::<BehaviourProfile>(&old),
            Err(DetectError::State(_))
        ));
        let broken = text.replace("\"counts\":{", "\"counts\":{\"x\":\"many\",");
        assert!(matches!(
            from_json::<BehaviourProfile>(&broken),
            Err(DetectError::State(_))
        ));
    }
}
