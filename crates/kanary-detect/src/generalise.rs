//! Generalisation of the names the behaviour profile learns (paths, command names), so that
//! what changes on every run of a normal program (process ids, hashes, temporary names,
//! counters) does not make each run look new.
//!
//! A path is generalised component by component, and each component token by token (a token is
//! a run of letters, digits and `_`; the separators `.`, `-`, `+`, … are kept):
//!
//! | looks like                                              | becomes | example                                   |
//! |---------------------------------------------------------|---------|-------------------------------------------|
//! | a UUID (`8-4-4-4-12` hex digits)                        | `<id>`  | `/run/3f2b…-…/x` → `/run/<id>/x`          |
//! | 16+ hex digits, or 16+ random-looking characters        | `<id>`  | a container id, a base64 session key      |
//! | `tmp` followed by 6+ characters, not all lower-case letters (mktemp, Python, Rust) | `tmp<tmp>` | `/tmp/tmp.Xk3pQ9aZ1b` → `/tmp/tmp.<tmp>` |
//! | 6+ random-looking characters under `/tmp`, `/var/tmp`, `/dev/shm` | `<tmp>` | `/tmp/ccAbC123.o` → `/tmp/<tmp>.o` |
//! | a run of digits                                         | `<n>`   | `/proc/4242/stat` → `/proc/<n>/stat`      |
//!
//! A run of one or two digits right after letters is part of a name, not a number (`python3`,
//! `sda1`, `tty12` stay as they are): programs and devices are told apart by such suffixes.
//! "Random-looking" means mixing letters with digits or lower with upper case often: at least
//! 2 and at least a quarter of its characters start a digit↔letter or lower→upper change. Words
//! and CamelCase names change class rarely (`ReadMeFirstVersion12` has 4 changes in 20), random
//! base62 about every second character.
//!
//! [`is_sensitive`] names paths that must never be generalised away: reading them is a step of
//! many attacks, so the behaviour profile keeps them verbatim and weighs their novelty more.

/// Directories whose children are commonly temporary names.
const TEMP_DIRS: &[&str] = &["/tmp/", "/var/tmp/", "/dev/shm/"];

/// Shortest token taken for a temporary name's random part.
const MIN_TMP_LEN: usize = 6;

/// Shortest token taken for a hash or an identifier.
const MIN_ID_LEN: usize = 16;

/// Exact paths whose reading or writing is security-relevant.
const SENSITIVE_PATHS: &[&str] = &[
    "/etc/shadow",
    "/etc/gshadow",
    "/etc/sudoers",
    "/etc/ld.so.preload",
    "/proc/sysrq-trigger",
    "/proc/kcore",
];

/// Directories everything under which is security-relevant (`/var/run` is read as `/run`).
const SENSITIVE_DIRS: &[&str] = &[
    "/etc/sudoers.d/",
    "/root/.ssh/",
    "/run/secrets/",
    "/proc/sys/",
];

/// Substrings that make any path security-relevant: SSH keys of any user, and the cgroup v1
/// release hooks a container escape writes.
const SENSITIVE_PARTS: &[&str] = &["/.ssh/", "release_agent", "notify_on_release"];

/// `path` with its variable parts replaced (see the module documentation); sensitive paths are
/// returned unchanged.
pub fn generalise_path(path: &str) -> String {
    if is_sensitive(path) {
        return path.to_string();
    }
    let in_temp_dir = TEMP_DIRS.iter().any(|dir| path.starts_with(dir));
    path.split('/')
        .map(|component| generalise_tokens(component, in_temp_dir))
        .collect::<Vec<_>>()
        .join("/")
}

/// A command name (or any short name) with its variable parts replaced, as for a path
/// component outside the temporary directories (`worker-12` → `worker-<n>`).
pub fn generalise_name(name: &str) -> String {
    generalise_tokens(name, false)
}

/// Whether `path` is one whose reading or writing matters whatever the baseline: password and
/// sudo files, SSH keys, mounted secrets, the dynamic loader's preload list, kernel tunables
/// and cgroup release hooks.
pub fn is_sensitive(path: &str) -> bool {
    let path = match path.strip_prefix("/var/run/") {
        Some(rest) => format!("/run/{rest}"),
        None => path.to_string(),
    };
    SENSITIVE_PATHS.contains(&path.as_str())
        || SENSITIVE_DIRS.iter().any(|dir| path.starts_with(dir))
        || SENSITIVE_PARTS.iter().any(|part| path.contains(part))
}

/// A character of a token: letters, digits and `_` (Python's temporary names use it).
fn is_token_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

fn generalise_tokens(text: &str, in_temp_dir: bool) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut previous_token = "";
    while let Some(first) = rest.chars().next() {
        if let Some(after) = strip_uuid(rest) {
            out.push_str("<id>");
            rest = after;
            previous_token = "";
        } else if is_token_char(first) {
            let end = rest.find(|c| !is_token_char(c)).unwrap_or(rest.len());
            let token = &rest[..end];
            // `tmp.Xk3pQ9aZ1b`: the random part is its own token after a bare `tmp`.
            if previous_token.eq_ignore_ascii_case("tmp") && is_random_suffix(token) {
                out.push_str("<tmp>");
            } else {
                out.push_str(&generalise_token(token, in_temp_dir));
            }
            previous_token = token;
            rest = &rest[end..];
        } else {
            out.push(first);
            rest = &rest[first.len_utf8()..];
        }
    }
    out
}

/// The rest of `text` after a UUID at its start, if it starts with one that is not glued to
/// further token characters.
fn strip_uuid(text: &str) -> Option<&str> {
    const GROUPS: [usize; 5] = [8, 4, 4, 4, 12];
    let bytes = text.as_bytes();
    let mut at = 0;
    for (i, &len) in GROUPS.iter().enumerate() {
        if i > 0 {
            if bytes.get(at) != Some(&b'-') {
                return None;
            }
            at += 1;
        }
        let group = bytes.get(at..at + len)?;
        if !group.iter().all(u8::is_ascii_hexdigit) {
            return None;
        }
        at += len;
    }
    match text[at..].chars().next() {
        Some(c) if is_token_char(c) => None,
        _ => Some(&text[at..]),
    }
}

fn generalise_token(token: &str, in_temp_dir: bool) -> String {
    let len = token.len();
    let is_hex_id = len >= MIN_ID_LEN
        && token.chars().all(|c| c.is_ascii_hexdigit())
        && token.chars().any(|c| c.is_ascii_alphabetic());
    if is_hex_id || (len >= MIN_ID_LEN && looks_random(token)) {
        return "<id>".into();
    }
    let tmp_prefix = token.get(..3).filter(|p| p.eq_ignore_ascii_case("tmp"));
    if let Some(prefix) = tmp_prefix {
        if is_random_suffix(&token[3..]) {
            return format!("{prefix}<tmp>");
        }
    }
    if in_temp_dir && len >= MIN_TMP_LEN && looks_random(token) {
        return "<tmp>".into();
    }
    replace_numbers(token)
}

/// Whether `suffix`, following a `tmp`, is a temporary name's random part: long enough and not
/// a plain lower-case word (`tmpreaper` is a program, `tmpa8x_3kq1` a temporary name).
fn is_random_suffix(suffix: &str) -> bool {
    suffix.len() >= MIN_TMP_LEN && !suffix.bytes().all(|b| b.is_ascii_lowercase())
}

/// Whether `token` changes between digits and letters, or from lower to upper case, as often as
/// random characters do (see the module documentation).
fn looks_random(token: &str) -> bool {
    let changes = token
        .as_bytes()
        .windows(2)
        .filter(|pair| {
            let (a, b) = (pair[0], pair[1]);
            (a.is_ascii_digit() && b.is_ascii_alphabetic())
                || (a.is_ascii_alphabetic() && b.is_ascii_digit())
                || (a.is_ascii_lowercase() && b.is_ascii_uppercase())
        })
        .count();
    changes >= 2 && changes * 4 >= token.len()
}

/// `token` with its runs of digits replaced by `<n>`, except a run of one or two digits right
/// after a letter (`python3`, `sda1`).
fn replace_numbers(token: &str) -> String {
    let mut out = String::with_capacity(token.len());
    let mut rest = token;
    let mut after_letter = false;
    while let Some(first) = rest.chars().next() {
        if first.is_ascii_digit() {
            let end = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if after_letter && end <= 2 {
                out.push_str(&rest[..end]);
            } else {
                out.push_str("<n>");
            }
            rest = &rest[end..];
            after_letter = false;
        } else {
            out.push(first);
            after_letter = first.is_ascii_alphabetic();
            rest = &rest[first.len_utf8()..];
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_become_n_but_name_suffixes_stay() {
        assert_eq!(generalise_path("/proc/4242/stat"), "/proc/<n>/stat");
        assert_eq!(generalise_path("/proc/self/fd/17"), "/proc/self/fd/<n>");
        assert_eq!(
            generalise_path("/var/log/app/access-2024-01-31.log"),
            "/var/log/app/access-<n>-<n>-<n>.log"
        );
        assert_eq!(
            generalise_path("/usr/lib/libssl.so.3"),
            "/usr/lib/libssl.so.<n>"
        );
        assert_eq!(generalise_path("/usr/bin/python3"), "/usr/bin/python3");
        assert_eq!(generalise_path("/dev/sda1"), "/dev/sda1");
        assert_eq!(generalise_path("/data/core12345"), "/data/core<n>");
        assert_eq!(generalise_name("worker_17"), "worker_<n>");
        assert_eq!(generalise_name("php-fpm7.4"), "php-fpm7.<n>");
    }

    #[test]
    fn hashes_and_uuids_become_id() {
        let container = "4f1c0a7b9e2d4c6a8b0f1e3d5c7a9b2e4f6a8c0e2d4b6f8a0c2e4d6b8f0a2c4e";
        assert_eq!(
            generalise_path(&format!("/var/lib/docker/containers/{container}/hostname")),
            "/var/lib/docker/containers/<id>/hostname"
        );
        assert_eq!(
            generalise_path("/run/user/550e8400-e29b-41d4-a716-446655440000.lock"),
            "/run/user/<id>.lock"
        );
        assert_eq!(
            generalise_path("/cache/dGhpcyBpcyBhIHNlY3JldDE2.bin"),
            "/cache/<id>.bin"
        );
        // Words, CamelCase and a 15-digit hex are names, not identifiers.
        assert_eq!(
            generalise_path("/srv/ReadMeFirstVersion12.txt"),
            "/srv/ReadMeFirstVersion12.txt"
        );
        assert_eq!(
            generalise_path("/srv/deadbeefcafebab"),
            "/srv/deadbeefcafebab"
        );
        // A UUID glued to more token characters is not a UUID.
        assert!(!generalise_path("/x/550e8400-e29b-41d4-a716-446655440000a").contains("<id>"));
    }

    #[test]
    fn temporary_names_become_tmp() {
        assert_eq!(generalise_path("/tmp/tmp.Xk3pQ9aZ1b"), "/tmp/tmp.<tmp>");
        assert_eq!(generalise_path("/tmp/tmpa8x_3kq1"), "/tmp/tmp<tmp>");
        assert_eq!(generalise_path("/app/.tmpAbC123/out"), "/app/.tmp<tmp>/out");
        assert_eq!(generalise_path("/tmp/ccAbC123.o"), "/tmp/<tmp>.o");
        assert_eq!(generalise_path("/dev/shm/sem.Zq81Kp"), "/dev/shm/sem.<tmp>");
        // Outside the temporary directories a short mixed name is a name.
        assert_eq!(
            generalise_path("/usr/lib/libQt5Core.so"),
            "/usr/lib/libQt5Core.so"
        );
        // A temporary directory holds plain names too.
        assert_eq!(generalise_path("/tmp/nginx.pid"), "/tmp/nginx.pid");
        assert_eq!(generalise_path("/tmp/tmp.ab"), "/tmp/tmp.ab");
        assert_eq!(
            generalise_path("/usr/sbin/tmpreaper"),
            "/usr/sbin/tmpreaper"
        );
    }

    #[test]
    fn sensitive_paths_are_never_generalised() {
        for path in [
            "/etc/shadow",
            "/etc/sudoers",
            "/etc/sudoers.d/90-cloud",
            "/root/.ssh/id_rsa",
            "/home/alice/.ssh/authorized_keys",
            "/var/run/secrets/kubernetes.io/serviceaccount/token",
            "/run/secrets/db_password_2024",
            "/etc/ld.so.preload",
            "/proc/sys/kernel/core_pattern",
            "/sys/fs/cgroup/rdma/x/release_agent",
            "/tmp/cg/notify_on_release",
        ] {
            assert!(is_sensitive(path), "{path}");
            assert_eq!(generalise_path(path), path);
        }
        for path in [
            "/etc/passwd",
            "/etc/shadow.bak",
            "/proc/self/status",
            "/sys/kernel/mm",
        ] {
            assert!(!is_sensitive(path), "{path}");
        }
    }
}
