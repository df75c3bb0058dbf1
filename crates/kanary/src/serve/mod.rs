//! The HTTP endpoint (`kanary run --listen`): `/metrics` and the read-only JSON API of
//! `docs/api.md`.
//!
//! The server is a sink (ADR 0009): a [`StateSink`] in the agent's fan-out feeds a
//! [`HostState`] with every record the agent writes, and the handlers read that state (and the
//! alert store) on their own thread with their own tokio runtime, since the agent's loop is
//! synchronous. Nothing the server does can slow the agent more than a mutex held for the
//! length of one record's update or one response's rendering.

pub mod api;
pub mod metrics;
pub mod state;
mod ui;

use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::{bail, Context, Result};
use kanary_model::config::HttpConfig;

pub use state::{HostState, Shared, StateSink};

/// Where and how to serve, from `[http]`, `--listen`, `--token` and `KANARY_TOKEN`.
#[derive(Debug, Clone, PartialEq)]
pub struct Listen {
    /// The address.
    pub addr: SocketAddr,
    /// The bearer token, when one is required.
    pub token: Option<String>,
    /// `true` when the address was asked for (flag or configuration), not the default: then
    /// failing to bind it stops the agent, while a busy default only loses the endpoint.
    pub explicit: bool,
}

/// What to serve on, or `None` for `none`. A non-loopback address without a token is an error:
/// the API shows what runs on the host to whoever reaches it.
pub fn resolve(
    config: &HttpConfig,
    listen_flag: Option<&str>,
    token_flag: Option<&str>,
    env_token: Option<&str>,
) -> Result<Option<Listen>> {
    let explicit = listen_flag.is_some() || config.listen != HttpConfig::default().listen;
    let text = listen_flag.unwrap_or(&config.listen).trim();
    if text.eq_ignore_ascii_case("none") || text.is_empty() {
        return Ok(None);
    }
    let addr: SocketAddr = text.parse().with_context(|| {
        format!("--listen {text:?}: not an address like 127.0.0.1:9750 (or none)")
    })?;
    let token = token_flag
        .or(env_token)
        .or(config.token.as_deref())
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string);
    if !addr.ip().is_loopback() && token.is_none() {
        bail!(
            "--listen {addr} is not a loopback address: set a token with --token, KANARY_TOKEN or \
             [http] token, so that only those who know it can read the host's containers and alerts"
        );
    }
    Ok(Some(Listen {
        addr,
        token,
        explicit,
    }))
}

/// Binds `listen` now (so a bad address is reported at start-up) and serves on a thread of its
/// own until the process ends; returns the bound address. `Ok(None)` when the default address
/// is busy (the agent runs without the endpoint).
pub fn start(
    listen: &Listen,
    state: Shared,
    data_dir: PathBuf,
    top_syscalls: usize,
) -> Result<Option<SocketAddr>> {
    let listener = match TcpListener::bind(listen.addr) {
        Ok(listener) => listener,
        Err(error) if !listen.explicit => {
            tracing::warn!(addr = %listen.addr, %error, "cannot serve /metrics and the API on the default address; running without them (use --listen)");
            return Ok(None);
        }
        Err(error) => return Err(error).with_context(|| format!("--listen {}", listen.addr)),
    };
    listener
        .set_nonblocking(true)
        .context("making the listener non-blocking")?;
    let addr = listener.local_addr().context("reading the bound address")?;
    let app = api::App::new(state, data_dir, listen.token.clone(), top_syscalls);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the HTTP runtime")?;
    std::thread::Builder::new()
        .name("kanary-http".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match tokio::net::TcpListener::from_std(listener) {
                    Ok(listener) => listener,
                    Err(error) => {
                        tracing::error!(%error, "HTTP listener unusable; serving nothing");
                        return;
                    }
                };
                if let Err(error) = axum::serve(listener, api::router(app)).await {
                    tracing::error!(%error, "HTTP server stopped");
                }
            });
        })
        .context("starting the HTTP thread")?;
    tracing::info!(%addr, token = listen.token.is_some(), "serving /metrics and /api");
    Ok(Some(addr))
}

/// A fresh shared state.
pub fn shared() -> Shared {
    Arc::new(Mutex::new(HostState::new()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_defaults_to_loopback_and_needs_a_token_elsewhere() {
        let config = HttpConfig::default();
        let listen = resolve(&config, None, None, None).unwrap().unwrap();
        assert_eq!(listen.addr.to_string(), "127.0.0.1:9750");
        assert!(!listen.explicit && listen.token.is_none());
        assert_eq!(resolve(&config, Some("none"), None, None).unwrap(), None);
        let error = resolve(&config, Some("0.0.0.0:9750"), None, None)
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("--token") && error.contains("loopback"),
            "{error}"
        );
        let listen = resolve(&config, Some("0.0.0.0:9750"), None, Some("t"))
            .unwrap()
            .unwrap();
        assert_eq!(listen.token.as_deref(), Some("t"));
        assert!(listen.explicit);
        let listen = resolve(&config, Some("[::1]:1"), Some("flag"), Some("env"))
            .unwrap()
            .unwrap();
        assert_eq!(listen.token.as_deref(), Some("flag"), "the flag wins");
        assert!(resolve(&config, Some("localhost"), None, None).is_err());
        let off = HttpConfig {
            listen: "none".into(),
            ..HttpConfig::default()
        };
        assert_eq!(resolve(&off, None, None, None).unwrap(), None);
    }

    #[test]
    fn a_busy_default_address_is_not_fatal_but_an_asked_one_is() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut listen = Listen {
            addr: taken.local_addr().unwrap(),
            token: None,
            explicit: false,
        };
        let dir = tempfile::tempdir().unwrap();
        let none = start(&listen, shared(), dir.path().into(), 10).unwrap();
        assert!(none.is_none());
        listen.explicit = true;
        assert!(start(&listen, shared(), dir.path().into(), 10).is_err());
    }
}
