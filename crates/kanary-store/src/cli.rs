//! `kanary baseline list|export|import|reset`: the commands that manage the stored baselines.
//! `main.rs` only parses them and calls [`run`].

use std::collections::HashSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use kanary_detect::baseline::{Baseline, BaselineKey, State};
use serde_json::json;

use crate::{read_file, QuarantineEntry, Result, Selector, Store, StoreError, Summary};

/// The data directory argument every command takes.
#[derive(Debug, Clone, clap::Args)]
pub struct StoreArgs {
    /// The agent's data directory (the store is `<data-dir>/kanary.db`).
    #[arg(long, default_value = "/var/lib/kanary")]
    pub data_dir: PathBuf,
}

/// Which baselines: one image, or all.
#[derive(Debug, Clone, clap::Args)]
#[group(required = true, multiple = false)]
pub struct Which {
    /// The image: its name (`nginx:1.25`), its id, or an id prefix of at least 4 characters.
    #[arg(long, value_name = "NAME")]
    pub image: Option<String>,
    /// Every baseline.
    #[arg(long)]
    pub all: bool,
}

impl Which {
    /// The selector.
    pub fn selector(&self) -> Selector {
        match &self.image {
            Some(image) if !self.all => Selector::Image(image.clone()),
            _ => Selector::All,
        }
    }
}

/// `kanary baseline` subcommands.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum BaselineCommand {
    /// Show every baseline (image, learning or detecting, windows and events seen, time left
    /// and estimated end of learning) and the quarantined ones.
    List {
        /// Store location.
        #[command(flatten)]
        store: StoreArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Write baselines to files (one JSON file each), to import on other hosts.
    Export {
        /// Store location.
        #[command(flatten)]
        store: StoreArgs,
        /// What to export.
        #[command(flatten)]
        which: Which,
        /// The file to write (`-`: standard output); with --all, a directory (created if
        /// needed) that gets one `<image>-<id>.json` per baseline.
        #[arg(long, value_name = "PATH")]
        out: PathBuf,
    },
    /// Store baseline files written by `export`, replacing the baselines of the same images.
    /// Every file is checked first; a refused one changes nothing.
    Import {
        /// Store location.
        #[command(flatten)]
        store: StoreArgs,
        /// The files.
        #[arg(required = true, value_name = "FILE")]
        files: Vec<PathBuf>,
    },
    /// Forget baselines (and their quarantined entries), so their images learn again from
    /// scratch. `--image NAME` resets every baseline of that name.
    Reset {
        /// Store location.
        #[command(flatten)]
        store: StoreArgs,
        /// What to reset.
        #[command(flatten)]
        which: Which,
    },
}

/// Runs `command`: results on `out`, notes and per-item errors on `err`, `now` for the time left.
pub fn run(
    command: &BaselineCommand,
    out: &mut dyn Write,
    err: &mut dyn Write,
    now: SystemTime,
) -> Result<()> {
    match command {
        BaselineCommand::List { store, json } => list(&store.data_dir, *json, out, err, now),
        BaselineCommand::Export {
            store,
            which,
            out: path,
        } => export(&store.data_dir, &which.selector(), path, out, err),
        BaselineCommand::Import { store, files } => import(&store.data_dir, files, out, err),
        BaselineCommand::Reset { store, which } => reset(&store.data_dir, &which.selector(), out),
    }
}

/// Writes `text` to a stream, naming it on failure.
pub(crate) fn emit(stream: &mut dyn Write, name: &str, text: &str) -> Result<()> {
    stream
        .write_all(text.as_bytes())
        .and_then(|()| stream.flush())
        .map_err(|e| StoreError::io(name, e))
}

fn report(err: &mut dyn Write, error: &StoreError) -> Result<()> {
    emit(err, "<stderr>", &format!("kanary: error: {error}\n"))
}

fn list(
    dir: &Path,
    json: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
    now: SystemTime,
) -> Result<()> {
    let (path, summaries, quarantined) = match Store::open_existing(dir) {
        Ok(mut store) => {
            let summaries = store.list()?;
            (store.path().to_path_buf(), summaries, store.quarantined()?)
        }
        Err(StoreError::Missing { path }) => {
            // Nothing learnt yet is a normal state, not a failure; say where we looked.
            emit(
                err,
                "<stderr>",
                &format!("kanary: no baseline store at {} yet\n", path.display()),
            )?;
            (path, Vec::new(), Vec::new())
        }
        Err(e) => return Err(e),
    };
    let text = if json {
        let mut text = listing_json(&path, &summaries, &quarantined, now).to_string();
        text.push('\n');
        text
    } else {
        listing_table(&summaries, &quarantined, now)
    };
    emit(out, "<stdout>", &text)
}

/// The image id as `docker images` shows it: 12 hex digits without the scheme.
fn short_id(key: &BaselineKey) -> String {
    key.image_id.as_deref().map_or_else(
        || "-".to_string(),
        |id| {
            let bare = id.split_once(':').map_or(id, |(_, hex)| hex);
            bare.chars().take(12).collect()
        },
    )
}

pub(crate) fn rfc3339(time: SystemTime) -> String {
    humantime::format_rfc3339_seconds(time).to_string()
}

/// A duration rounded up to whole seconds (a second left is not "0s").
fn seconds_up(duration: Duration) -> Duration {
    Duration::from_secs(duration.as_secs() + u64::from(duration.subsec_nanos() > 0))
}

/// What the PROGRESS column says.
fn progress_text(summary: &Summary, now: SystemTime) -> String {
    let progress = summary.state.progress(now);
    match summary.state {
        State::Detecting { since, .. } => format!("detecting since {}", rfc3339(since)),
        State::Learning { .. } => {
            let mut parts = Vec::new();
            if !progress.time_left.is_zero() {
                parts.push(format!(
                    "{} left",
                    humantime::format_duration(seconds_up(progress.time_left))
                ));
            }
            if progress.windows_missing > 0 {
                parts.push(format!("needs {} more windows", progress.windows_missing));
            }
            if parts.is_empty() {
                "done, detects from the next window".to_string()
            } else {
                parts.join(", ")
            }
        }
    }
}

/// When a learning baseline should start detecting, estimated at `now`: the end of its
/// learning period, or later if the windows it still needs will take longer at the rate it has
/// seen them so far. `None` when detecting, or when no window was seen yet to estimate from.
pub fn learning_eta(state: &State, now: SystemTime) -> Option<SystemTime> {
    let State::Learning {
        since,
        windows_seen,
        ..
    } = *state
    else {
        return None;
    };
    let progress = state.progress(now);
    let period_end = now + progress.time_left;
    if progress.windows_missing == 0 {
        return Some(period_end);
    }
    let elapsed = now.duration_since(since).unwrap_or_default();
    if windows_seen == 0 || elapsed.is_zero() {
        return None;
    }
    // Windows arrive one per container per interval: the rate so far is the best guess.
    let per_window = elapsed.as_secs_f64() / windows_seen as f64;
    let needed = Duration::try_from_secs_f64(per_window * progress.windows_missing as f64).ok()?;
    Some(period_end.max(now + needed))
}

/// What the ETA column says.
fn eta_text(summary: &Summary, now: SystemTime) -> String {
    match (&summary.state, learning_eta(&summary.state, now)) {
        (State::Detecting { .. }, _) => "-".to_string(),
        (State::Learning { .. }, Some(eta)) => rfc3339(seconds_up_time(eta)),
        (State::Learning { .. }, None) => "waiting for windows".to_string(),
    }
}

/// A time rounded up to the whole second (an ETA is not earlier than the truth).
fn seconds_up_time(time: SystemTime) -> SystemTime {
    match time.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(since_epoch) => SystemTime::UNIX_EPOCH + seconds_up(since_epoch),
        Err(_) => time,
    }
}

/// Lays out rows under a header, columns padded to their widest cell.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut text = String::new();
    let header: Vec<String> = header.iter().map(|h| h.to_string()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, (cell, width)) in row.iter().zip(&widths).enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(&format!("{cell:<width$}  "));
            }
        }
        text.push_str(line.trim_end());
        text.push('\n');
    }
    text
}

/// The table `kanary baseline list` prints.
pub fn listing_table(
    summaries: &[Summary],
    quarantined: &[QuarantineEntry],
    now: SystemTime,
) -> String {
    let mut text = if summaries.is_empty() {
        "no baselines\n".to_string()
    } else {
        let rows: Vec<Vec<String>> = summaries
            .iter()
            .map(|s| {
                let progress = s.state.progress(now);
                vec![
                    s.key.image.clone(),
                    short_id(&s.key),
                    s.state.phase().to_string(),
                    progress.windows.to_string(),
                    progress.events.to_string(),
                    progress_text(s, now),
                    eta_text(s, now),
                    rfc3339(s.updated_at),
                ]
            })
            .collect();
        table(
            &[
                "IMAGE", "IMAGE ID", "STATE", "WINDOWS", "EVENTS", "PROGRESS", "ETA", "UPDATED",
            ],
            &rows,
        )
    };
    if !quarantined.is_empty() {
        text.push_str(
            "\nQUARANTINED (could not be read; kept for inspection, these images learn again \
             from scratch)\n",
        );
        let rows: Vec<Vec<String>> = quarantined
            .iter()
            .map(|q| {
                vec![
                    q.key.image.clone(),
                    short_id(&q.key),
                    rfc3339(q.quarantined_at),
                    q.reason.clone(),
                ]
            })
            .collect();
        text.push_str(&table(&["IMAGE", "IMAGE ID", "SINCE", "REASON"], &rows));
    }
    text
}

/// The JSON `kanary baseline list --json` prints: `{store, baselines: [...], quarantined: [...]}`
/// with times in RFC 3339, `time_left_secs` null unless learning, and `eta` (when a learning
/// baseline should start detecting, [`learning_eta`]) null when detecting or not yet known.
pub fn listing_json(
    store: &Path,
    summaries: &[Summary],
    quarantined: &[QuarantineEntry],
    now: SystemTime,
) -> serde_json::Value {
    let baselines: Vec<serde_json::Value> = summaries
        .iter()
        .map(|s| {
            let progress = s.state.progress(now);
            json!({
                "key": s.key.id(),
                "image": s.key.image,
                "image_id": s.key.image_id,
                "phase": s.state.phase(),
                "since": humantime::format_rfc3339(s.state.since()).to_string(),
                "windows": progress.windows,
                "events": progress.events,
                "time_left_secs": progress
                    .learning
                    .then(|| seconds_up(progress.time_left).as_secs()),
                "windows_missing": progress.windows_missing,
                "eta": learning_eta(&s.state, now)
                    .map(|eta| humantime::format_rfc3339(seconds_up_time(eta)).to_string()),
                "created_at": humantime::format_rfc3339(s.created_at).to_string(),
                "updated_at": humantime::format_rfc3339(s.updated_at).to_string(),
                "kanary_version": s.kanary_version,
                "format_version": s.format_version,
                "models_bytes": s.models_bytes,
            })
        })
        .collect();
    let quarantined: Vec<serde_json::Value> = quarantined
        .iter()
        .map(|q| {
            json!({
                "key": q.key.id(),
                "image": q.key.image,
                "image_id": q.key.image_id,
                "quarantined_at": humantime::format_rfc3339(q.quarantined_at).to_string(),
                "reason": q.reason,
                "models_bytes": q.models_bytes,
            })
        })
        .collect();
    json!({
        "store": store.display().to_string(),
        "baselines": baselines,
        "quarantined": quarantined,
    })
}

/// The file name `export --all` gives a baseline: the image name made safe, then the short id.
pub fn export_file_name(key: &BaselineKey) -> String {
    let mut name: String = key
        .image
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    // A name made of dots only would be a directory reference, not a file.
    if name.trim_matches('.').is_empty() {
        name = "image".to_string();
    }
    if key.image_id.is_some() {
        name.push('-');
        name.push_str(&short_id(key));
    }
    name
}

fn describe(baseline: &Baseline) -> String {
    format!("{} ({})", baseline.key, baseline.state.phase())
}

fn export(
    dir: &Path,
    selector: &Selector,
    path: &Path,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<()> {
    let mut store = Store::open_existing(dir)?;
    match selector {
        Selector::Image(image) => {
            let key = store.find_one(image)?;
            let baseline = store
                .get(&key)?
                .ok_or_else(|| StoreError::NotFound(image.clone()))?;
            if path == Path::new("-") {
                let mut text = baseline.to_json()?;
                text.push('\n');
                return emit(out, "<stdout>", &text);
            }
            crate::write_file(&baseline, path)?;
            emit(
                out,
                "<stdout>",
                &format!("exported {} to {}\n", describe(&baseline), path.display()),
            )
        }
        Selector::All => {
            let summaries = store.list()?;
            if summaries.is_empty() {
                return emit(out, "<stdout>", "no baselines to export\n");
            }
            std::fs::create_dir_all(path).map_err(|e| StoreError::io(path, e))?;
            let mut used = HashSet::new();
            let mut failed = 0;
            for summary in &summaries {
                let stem = export_file_name(&summary.key);
                let mut name = format!("{stem}.json");
                let mut n = 1;
                while !used.insert(name.clone()) {
                    n += 1;
                    name = format!("{stem}-{n}.json");
                }
                let file = path.join(name);
                let result = store
                    .get(&summary.key)
                    .and_then(|b| b.ok_or_else(|| StoreError::NotFound(summary.key.to_string())))
                    .and_then(|b| crate::write_file(&b, &file).map(|()| b));
                match result {
                    Ok(baseline) => emit(
                        out,
                        "<stdout>",
                        &format!("exported {} to {}\n", describe(&baseline), file.display()),
                    )?,
                    Err(error) => {
                        failed += 1;
                        report(err, &error)?;
                    }
                }
            }
            if failed > 0 {
                return Err(StoreError::Partial {
                    what: "exports",
                    failed,
                    total: summaries.len(),
                });
            }
            Ok(())
        }
    }
}

fn import(dir: &Path, files: &[PathBuf], out: &mut dyn Write, err: &mut dyn Write) -> Result<()> {
    // Every file is read and checked before the store is touched: a refused file never leaves
    // anything behind, not even a new empty store.
    let mut failed = 0;
    let mut good = Vec::new();
    for file in files {
        match read_file(file) {
            Ok(baseline) => good.push((file, baseline)),
            Err(error) => {
                failed += 1;
                report(err, &error)?;
            }
        }
    }
    if !good.is_empty() {
        let mut store = Store::open(dir)?;
        for (file, baseline) in good {
            match store.put(&baseline) {
                Ok(replaced) => emit(
                    out,
                    "<stdout>",
                    &format!(
                        "imported {} from {}{}\n",
                        describe(&baseline),
                        file.display(),
                        if replaced {
                            ", replacing the stored baseline"
                        } else {
                            ""
                        }
                    ),
                )?,
                Err(error) => {
                    failed += 1;
                    report(err, &error)?;
                }
            }
        }
    }
    if failed > 0 {
        return Err(StoreError::Partial {
            what: "imports",
            failed,
            total: files.len(),
        });
    }
    Ok(())
}

fn reset(dir: &Path, selector: &Selector, out: &mut dyn Write) -> Result<()> {
    let mut store = Store::open_existing(dir)?;
    let removed = store.reset(selector)?;
    let mut text = String::new();
    for key in &removed.baselines {
        text.push_str(&format!("reset {key}: it learns again from scratch\n"));
    }
    for key in &removed.quarantined {
        text.push_str(&format!("removed the quarantined baseline of {key}\n"));
    }
    if text.is_empty() {
        text.push_str("no baselines to reset\n");
    }
    emit(out, "<stdout>", &text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use kanary_detect::baseline::State;

    fn at(seconds: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + seconds)
    }

    fn summary(image_id: Option<&str>, image: &str, state: State) -> Summary {
        Summary {
            key: BaselineKey::new(image_id, image),
            state,
            created_at: at(0),
            updated_at: at(5),
            kanary_version: "0.1.0".into(),
            format_version: 1,
            models_bytes: 10,
        }
    }

    fn learning(windows_seen: u64) -> State {
        State::Learning {
            since: at(0),
            learn_for: Duration::from_secs(900),
            min_windows: 10,
            windows_seen,
            events_seen: 1234,
        }
    }

    #[test]
    fn the_table_shows_progress_and_the_quarantine() {
        let summaries = [
            summary(Some("sha256:0123456789abcdef0123"), "nginx:1", learning(3)),
            summary(None, "redis:7", learning(12)),
            summary(
                None,
                "busybox:1",
                State::Detecting {
                    since: at(900),
                    windows_learnt: 180,
                    events_learnt: 99,
                },
            ),
        ];
        let quarantine = [QuarantineEntry {
            key: BaselineKey::new(None, "broken:1"),
            quarantined_at: at(7),
            reason: "the models blob does not match its checksum".into(),
            models_bytes: 3,
        }];
        // 100.5 s in: 799.5 s left, shown rounded up.
        let now = at(100) + Duration::from_millis(500);
        let text = listing_table(&summaries, &quarantine, now);
        let lines: Vec<&str> = text.lines().collect();
        assert!(lines[0].starts_with("IMAGE"), "{text}");
        assert!(lines[0].contains("PROGRESS"), "{text}");
        assert!(lines[1].starts_with("nginx:1"), "{text}");
        assert!(lines[1].contains("0123456789ab "), "{text}");
        assert!(
            lines[1].contains("13m 20s left, needs 7 more windows"),
            "{text}"
        );
        assert!(lines[1].contains(" 3 "), "{text}");
        assert!(lines[1].contains("1234"), "{text}");
        assert!(lines[2].contains("13m 20s left") && !lines[2].contains("needs"));
        assert!(
            lines[3].contains("detecting since 2023-11-14T22:28:20Z"),
            "{text}"
        );
        assert!(lines[3].contains("180"), "{text}");
        // ETA: both learning ones end with their period (enough windows come in time).
        let eta = lines[0].find("ETA").unwrap();
        for line in &lines[1..3] {
            assert!(line[eta..].starts_with("2023-11-14T22:28:20Z "), "{text}");
        }
        assert!(lines[3][eta..].starts_with("- "), "{text}");
        assert!(text.contains("QUARANTINED"), "{text}");
        assert!(text.contains("broken:1"), "{text}");
        assert!(text.contains("checksum"), "{text}");
        // Columns line up: STATE starts at the same offset on every line of the first table.
        let column = lines[0].find("STATE").unwrap();
        for line in &lines[1..4] {
            assert!(
                ["learning", "detecting"].contains(&line[column..].split(' ').next().unwrap()),
                "{text}"
            );
        }
        assert_eq!(listing_table(&[], &[], now), "no baselines\n");
        let done = listing_table(&summaries[1..2], &[], at(901));
        assert!(done.contains("done"), "{done}");
    }

    #[test]
    fn the_eta_is_the_period_end_or_later_at_the_window_rate() {
        let now = at(100) + Duration::from_millis(500);
        // 3 windows in 100.5 s, 7 missing: 234.5 s more, within the 799.5 s left.
        assert_eq!(learning_eta(&learning(3), now), Some(at(900)));
        // 1 window in 100.5 s, 9 missing: 904.5 s more, past the period's end.
        assert_eq!(learning_eta(&learning(1), now), Some(at(1005)));
        // No window yet: nothing to estimate from.
        assert_eq!(learning_eta(&learning(0), now), None);
        // Period over and windows enough: now.
        assert_eq!(learning_eta(&learning(12), at(1000)), Some(at(1000)));
        let detecting = State::Detecting {
            since: at(900),
            windows_learnt: 180,
            events_learnt: 99,
        };
        assert_eq!(learning_eta(&detecting, now), None);
        let waiting = listing_table(&[summary(None, "idle:1", learning(0))], &[], now);
        assert!(waiting.contains("waiting for windows"), "{waiting}");
        let late = listing_table(&[summary(None, "slow:1", learning(1))], &[], now);
        assert!(late.contains("2023-11-14T22:30:05Z"), "{late}");
    }

    #[test]
    fn the_json_listing_is_complete() {
        let summaries = [
            summary(Some("sha256:ab12"), "nginx:1", learning(3)),
            summary(
                None,
                "busybox:1",
                State::Detecting {
                    since: at(900),
                    windows_learnt: 180,
                    events_learnt: 99,
                },
            ),
        ];
        let value = listing_json(Path::new("/x/kanary.db"), &summaries, &[], at(100));
        assert_eq!(value["store"], "/x/kanary.db");
        let first = &value["baselines"][0];
        assert_eq!(first["key"], "sha256:ab12");
        assert_eq!(first["image"], "nginx:1");
        assert_eq!(first["phase"], "learning");
        assert_eq!(first["windows"], 3);
        assert_eq!(first["events"], 1234);
        assert_eq!(first["time_left_secs"], 800);
        assert_eq!(first["windows_missing"], 7);
        assert_eq!(first["eta"], "2023-11-14T22:28:20Z");
        let second = &value["baselines"][1];
        assert_eq!(second["image_id"], serde_json::Value::Null);
        assert_eq!(second["time_left_secs"], serde_json::Value::Null);
        assert_eq!(second["since"], "2023-11-14T22:28:20Z");
        assert_eq!(second["eta"], serde_json::Value::Null);
        assert_eq!(value["quarantined"].as_array().map(Vec::len), Some(0));
    }

    #[test]
    fn export_names_are_safe() {
        assert_eq!(
            export_file_name(&BaselineKey::new(
                Some("sha256:0123456789abcdef"),
                "registry:5000/team/nginx:1.25"
            )),
            "registry_5000_team_nginx_1.25-0123456789ab"
        );
        assert_eq!(export_file_name(&BaselineKey::new(None, "..")), "image");
        assert_eq!(export_file_name(&BaselineKey::new(None, "a b")), "a_b");
    }
}
