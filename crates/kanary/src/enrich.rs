//! Container names, images, labels and addresses from the Docker API.
//!
//! Asked synchronously (with a timeout) when a container appears, so its very first records
//! already carry its name; when the API is absent or slow the container is reported with its
//! short id instead and nothing waits.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::Duration;

use bollard::Docker;
use kanary_model::config::DockerConfig;
use tokio::runtime::Runtime;

/// What the runtime knows about a container.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Enrichment {
    /// Name without Docker's leading `/`.
    pub name: Option<String>,
    /// Image reference as the container was started with.
    pub image: Option<String>,
    /// Image id (content digest).
    pub image_id: Option<String>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// IP addresses on its networks.
    pub addresses: Vec<IpAddr>,
}

/// A Docker API client with its own small runtime.
pub struct DockerEnricher {
    docker: Docker,
    runtime: Runtime,
    timeout: Duration,
}

impl DockerEnricher {
    /// Connects lazily to the socket in `config`; `None` when Docker enrichment is off or the
    /// socket does not exist.
    pub fn new(config: &DockerConfig) -> Option<Self> {
        if !config.enabled || !config.socket.exists() {
            return None;
        }
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .ok()?;
        let socket = config.socket.to_string_lossy().into_owned();
        let docker = Docker::connect_with_unix(&socket, config.timeout.as_secs().max(1), bollard::API_DEFAULT_VERSION)
            .map_err(|error| tracing::warn!(%error, socket, "Docker API unavailable; containers are reported by id"))
            .ok()?;
        Some(DockerEnricher {
            docker,
            runtime,
            timeout: config.timeout,
        })
    }

    /// Inspects container `id`; `None` when Docker does not know it or did not answer in time.
    pub fn inspect(&self, id: &str) -> Option<Enrichment> {
        let request = self
            .docker
            .inspect_container(id, None::<bollard::container::InspectContainerOptions>);
        // The timer must be created inside the runtime, hence the async block.
        let response = match self
            .runtime
            .block_on(async { tokio::time::timeout(self.timeout, request).await })
        {
            Ok(Ok(response)) => response,
            Ok(Err(error)) => {
                tracing::debug!(%error, id, "docker inspect failed");
                return None;
            }
            Err(_) => {
                tracing::warn!(id, timeout = ?self.timeout, "docker inspect timed out");
                return None;
            }
        };
        let config = response.config.unwrap_or_default();
        let addresses = response
            .network_settings
            .and_then(|settings| settings.networks)
            .unwrap_or_default()
            .into_values()
            .flat_map(|endpoint| [endpoint.ip_address, endpoint.global_ipv6_address])
            .flatten()
            .filter_map(|address| address.parse().ok())
            .collect();
        Some(Enrichment {
            name: response
                .name
                .map(|name| name.trim_start_matches('/').to_string()),
            image: config.image,
            image_id: response.image,
            labels: config.labels.unwrap_or_default().into_iter().collect(),
            addresses,
        })
    }
}
