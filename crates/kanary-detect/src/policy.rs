//! An explicit container-to-container connection policy, for the behaviour profile.
//!
//! A learnt baseline says what an image did; a policy says what it may do. The file is TOML:
//!
//! ```toml
//! default = "learn"          # or "deny"
//!
//! [[allow]]
//! from = "web:*"             # the connecting container's image
//! to = "redis:*"             # the peer container's image
//! ports = [6379]             # optional: any port when absent
//! ```
//!
//! Images are matched as the agent reports them (the image reference the container was created
//! from) by globs where `*` stands for any text, including none; no other wildcard exists, so
//! `?`, `[` or `{` are refused rather than taken literally. With `default = "learn"` an allowed
//! connection is never novel and any other is judged by the baseline; with `default = "deny"`
//! any container-to-container connection no rule allows is unauthorised, even one the baseline
//! saw. Connections to addresses outside the host's containers are not the policy's business.
//!
//! A policy is configuration, not learnt state: the behaviour profile holds it for scoring only
//! and never stores it in a baseline.

use serde::Deserialize;

use crate::error::{DetectError, Result};

/// A container-to-container connection policy (see the module documentation).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Policy {
    /// What a container-to-container connection no rule allows gets.
    #[serde(default)]
    pub default: PolicyDefault,
    /// The allowed connections.
    #[serde(default)]
    pub allow: Vec<Allow>,
}

/// What a policy does with a connection no rule allows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PolicyDefault {
    /// The baseline judges it.
    #[default]
    Learn,
    /// It is unauthorised.
    Deny,
}

/// One allowed connection: from containers of one image pattern to another, on some ports.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Allow {
    /// The connecting container's image.
    pub from: Glob,
    /// The peer container's image.
    pub to: Glob,
    /// The allowed peer ports; any port when absent.
    #[serde(default)]
    pub ports: Option<Ports>,
}

/// An image pattern where `*` stands for any text.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct Glob(String);

/// A non-empty list of non-zero ports.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Vec<u16>")]
pub struct Ports(Vec<u16>);

/// What a policy says of one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// A rule allows it.
    Allowed,
    /// No rule allows it and the default is deny.
    Denied,
    /// No rule allows it and the default is to learn: the baseline judges.
    Unlisted,
}

impl Policy {
    /// Parses a policy file's text. Errors name the line and the key at fault.
    pub fn from_toml(text: &str) -> Result<Policy> {
        let deserializer = toml::Deserializer::new(text);
        serde_path_to_error::deserialize(deserializer).map_err(|error| {
            let key = error.path().to_string();
            let inner = error.into_inner();
            let line = inner.span().map_or_else(
                || "?".to_string(),
                |span| (text[..span.start.min(text.len())].matches('\n').count() + 1).to_string(),
            );
            DetectError::Config(format!(
                "policy line {line}, key `{key}`: {}",
                inner.message().trim()
            ))
        })
    }

    /// The verdict on a connection from a container of image `from` to one of image `to` on
    /// `port`.
    pub fn verdict(&self, from: &str, to: &str, port: u16) -> Verdict {
        let allowed = self.allow.iter().any(|rule| {
            rule.from.matches(from)
                && rule.to.matches(to)
                && rule
                    .ports
                    .as_ref()
                    .is_none_or(|ports| ports.0.contains(&port))
        });
        match (allowed, self.default) {
            (true, _) => Verdict::Allowed,
            (false, PolicyDefault::Deny) => Verdict::Denied,
            (false, PolicyDefault::Learn) => Verdict::Unlisted,
        }
    }
}

impl Glob {
    /// Whether `text` matches the pattern as a whole.
    pub fn matches(&self, text: &str) -> bool {
        let mut parts = self.0.split('*');
        let Some(mut rest) = parts.next().and_then(|head| text.strip_prefix(head)) else {
            return false;
        };
        let tail: Vec<&str> = parts.collect();
        let Some((last, middle)) = tail.split_last() else {
            return rest.is_empty();
        };
        for part in middle {
            match rest.find(part) {
                Some(at) => rest = &rest[at + part.len()..],
                None => return false,
            }
        }
        rest.ends_with(last)
    }
}

impl TryFrom<String> for Glob {
    type Error = String;

    fn try_from(pattern: String) -> Result<Self, String> {
        if pattern.is_empty() {
            return Err("an empty image pattern matches nothing: use `*` for any image".into());
        }
        if let Some(bad) = pattern
            .chars()
            .find(|c| matches!(c, '?' | '[' | ']' | '{' | '}' | '!' | '\\') || c.is_whitespace())
        {
            return Err(format!(
                "image pattern `{pattern}` holds {bad:?}: only `*` is a wildcard"
            ));
        }
        Ok(Glob(pattern))
    }
}

impl TryFrom<Vec<u16>> for Ports {
    type Error = String;

    fn try_from(ports: Vec<u16>) -> Result<Self, String> {
        if ports.is_empty() {
            return Err("an empty port list allows nothing: leave `ports` out for any port".into());
        }
        if ports.contains(&0) {
            return Err("port 0 is not a port a connection can reach".into());
        }
        Ok(Ports(ports))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn error_of(text: &str) -> String {
        match Policy::from_toml(text) {
            Err(DetectError::Config(message)) => message,
            other => panic!("expected a config error, got {other:?}"),
        }
    }

    #[test]
    fn globs_match_with_star_only() {
        let glob = |p: &str| Glob::try_from(p.to_string()).unwrap();
        assert!(glob("web:*").matches("web:1.2"));
        assert!(glob("web:*").matches("web:"));
        assert!(!glob("web:*").matches("webapp:1"));
        assert!(glob("*redis*").matches("docker.io/library/redis:7"));
        assert!(glob("a*b*c").matches("abbc"));
        assert!(!glob("a*b*c").matches("acb"));
        assert!(glob("redis:7").matches("redis:7"));
        assert!(!glob("redis:7").matches("redis:7.2"));
        assert!(glob("*").matches(""));
        assert!(
            !glob("ab*ba").matches("aba"),
            "prefix and suffix may not overlap"
        );
    }

    #[test]
    fn parses_rules_and_judges_connections() {
        let policy = Policy::from_toml(
            r#"
            default = "deny"
            [[allow]]
            from = "web:*"
            to = "redis:*"
            ports = [6379]
            [[allow]]
            from = "*"
            to = "dns:*"
            "#,
        )
        .unwrap();
        assert_eq!(policy.default, PolicyDefault::Deny);
        assert_eq!(policy.verdict("web:1", "redis:7", 6379), Verdict::Allowed);
        assert_eq!(policy.verdict("web:1", "redis:7", 6380), Verdict::Denied);
        assert_eq!(policy.verdict("worker:1", "redis:7", 6379), Verdict::Denied);
        assert_eq!(policy.verdict("worker:1", "dns:2", 53), Verdict::Allowed);
        let learn = Policy::from_toml("[[allow]]\nfrom = \"a\"\nto = \"b\"\n").unwrap();
        assert_eq!(learn.default, PolicyDefault::Learn);
        assert_eq!(learn.verdict("a", "c", 1), Verdict::Unlisted);
        assert_eq!(Policy::from_toml("").unwrap().allow.len(), 0);
    }

    #[test]
    fn errors_name_the_line_and_key() {
        let unknown = error_of("default = \"learn\"\n[[allow]]\nfrom = \"a\"\nform = \"b\"\n");
        assert!(unknown.contains("line 4"), "{unknown}");
        assert!(unknown.contains("unknown field `form`"), "{unknown}");
        let glob = error_of("[[allow]]\nfrom = \"web:?\"\nto = \"b\"\n");
        assert!(glob.contains("line 2"), "{glob}");
        assert!(glob.contains("allow[0].from"), "{glob}");
        assert!(glob.contains("only `*` is a wildcard"), "{glob}");
        let default = error_of("\n\ndefault = \"allow\"\n");
        assert!(default.contains("line 3"), "{default}");
        assert!(default.contains("unknown variant `allow`"), "{default}");
        let ports = error_of("[[allow]]\nfrom = \"a\"\nto = \"b\"\nports = []\n");
        assert!(
            ports.contains("line 4") && ports.contains("any port"),
            "{ports}"
        );
        let range = error_of("[[allow]]\nfrom = \"a\"\nto = \"b\"\nports = [70000]\n");
        assert!(
            range.contains("line 4") && range.contains("ports"),
            "{range}"
        );
        let missing = error_of("[[allow]]\nfrom = \"a\"\n");
        assert!(missing.contains("missing field `to`"), "{missing}");
    }
}
