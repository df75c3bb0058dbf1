//! The container registry: slot -> container, with enrichment and the address book that
//! resolves a connection's peer address to another container.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use kanary_collectors::Slot;
use kanary_model::cgroup::{CgroupContainer, Runtime};
use kanary_model::record::{ContainerRef, ContainerStart};

use crate::enrich::Enrichment;

/// How many intervals the agent keeps asking the runtime for a container's addresses (a
/// container's network is set up after its cgroup is created).
const ADDRESS_RETRIES: u32 = 12;

/// How long a stopped container's addresses still name it as a peer. Clients keep using a
/// removed replica's address for a while (DNS caches, keep-alive pools, retries): those
/// connections go to that service, not to an unknown address.
const DEPARTED_GRACE: Duration = Duration::from_secs(600);

/// A watched container.
#[derive(Debug, Clone)]
pub struct Container {
    /// Its slot in the kernel maps.
    pub slot: Slot,
    /// Its own cgroup's id.
    pub cgroup_id: u64,
    /// Its cgroup path relative to the v2 mount.
    pub cgroup_path: String,
    /// id, name, image as put on every record.
    pub reference: ContainerRef,
    /// Runtime from the path.
    pub runtime: Runtime,
    /// Kubernetes pod uid.
    pub pod_uid: Option<String>,
    /// What the runtime API told.
    pub enrichment: Enrichment,
    /// When the agent started watching it.
    pub since: Instant,
    /// Address look-ups left while it has none.
    pub address_retries: u32,
    /// It was running before the agent started (found by the start-up scan), so the agent
    /// never saw its start-up.
    pub existing: bool,
}

impl Container {
    /// A container found from its cgroup, with whatever enrichment the runtime gave.
    pub fn new(
        slot: Slot,
        cgroup_id: u64,
        cgroup_path: &str,
        found: CgroupContainer,
        enrichment: Option<Enrichment>,
    ) -> Self {
        let enrichment = enrichment.unwrap_or_default();
        let reference = ContainerRef {
            name: enrichment
                .name
                .clone()
                .unwrap_or_else(|| found.id.get(..12).unwrap_or(&found.id).to_string()),
            image: enrichment.image.clone(),
            id: found.id,
        };
        Container {
            slot,
            cgroup_id,
            cgroup_path: cgroup_path.to_string(),
            reference,
            runtime: found.runtime,
            pod_uid: found.pod_uid,
            enrichment,
            since: Instant::now(),
            address_retries: ADDRESS_RETRIES,
            existing: false,
        }
    }

    /// The pseudo-container standing for host processes (`agent.include_host`).
    pub fn host() -> Self {
        let found = CgroupContainer {
            id: "host".into(),
            runtime: Runtime::Host,
            pod_uid: None,
        };
        let mut host = Container::new(0, 1, "/", found, None);
        host.reference.name = "host".into();
        host.address_retries = 0;
        host
    }

    /// The `container_start` record body.
    pub fn start_record(&self, existing: bool) -> ContainerStart {
        ContainerStart {
            container: self.reference.clone(),
            runtime: self.runtime,
            cgroup_id: self.cgroup_id,
            cgroup_path: self.cgroup_path.clone(),
            image_id: self.enrichment.image_id.clone(),
            pod_uid: self.pod_uid.clone(),
            labels: self.enrichment.labels.clone(),
            addresses: self.enrichment.addresses.clone(),
            existing,
        }
    }

    /// Whether `pattern` (a name, or a prefix of the id) names this container.
    pub fn matches(&self, pattern: &str) -> bool {
        self.reference.name == pattern
            || (pattern.len() >= 4 && self.reference.id.starts_with(pattern))
    }
}

/// All watched containers.
#[derive(Debug, Default)]
pub struct Registry {
    by_slot: BTreeMap<Slot, Container>,
    by_address: HashMap<IpAddr, Slot>,
    /// Addresses of containers that stopped less than [`DEPARTED_GRACE`] ago.
    departed: HashMap<IpAddr, (ContainerRef, Instant)>,
}

impl Registry {
    /// Adds a container; returns `false` when its slot is already taken (a duplicate report).
    pub fn insert(&mut self, container: Container) -> bool {
        if self.by_slot.contains_key(&container.slot) {
            return false;
        }
        for address in &container.enrichment.addresses {
            self.by_address.insert(*address, container.slot);
            self.departed.remove(address);
        }
        self.by_slot.insert(container.slot, container);
        true
    }

    /// Removes a container; its addresses keep naming it as a peer for [`DEPARTED_GRACE`].
    pub fn remove(&mut self, slot: Slot) -> Option<Container> {
        let container = self.by_slot.remove(&slot)?;
        self.by_address.retain(|_, owner| *owner != slot);
        let now = Instant::now();
        self.departed
            .retain(|_, (_, since)| now.duration_since(*since) < DEPARTED_GRACE);
        for address in &container.enrichment.addresses {
            self.departed
                .insert(*address, (container.reference.clone(), now));
        }
        Some(container)
    }

    /// The container in `slot`.
    pub fn get(&self, slot: Slot) -> Option<&Container> {
        self.by_slot.get(&slot)
    }

    /// Whether a container's own cgroup is `cgroup_id`.
    pub fn has_cgroup(&self, cgroup_id: u64) -> bool {
        self.by_slot.values().any(|c| c.cgroup_id == cgroup_id)
    }

    /// Every watched slot.
    pub fn slots(&self) -> impl Iterator<Item = Slot> + '_ {
        self.by_slot.keys().copied()
    }

    /// The container a connection to `address` reaches: the one owning it, or the one that
    /// owned it until it stopped less than [`DEPARTED_GRACE`] ago.
    pub fn peer_of(&self, address: &IpAddr) -> Option<ContainerRef> {
        if let Some(container) = self
            .by_address
            .get(address)
            .and_then(|slot| self.by_slot.get(slot))
        {
            return Some(container.reference.clone());
        }
        self.departed
            .get(address)
            .filter(|(_, since)| since.elapsed() < DEPARTED_GRACE)
            .map(|(reference, _)| reference.clone())
    }

    /// Containers whose addresses are still unknown, counting one retry each.
    pub fn take_address_retries(&mut self) -> Vec<(Slot, String)> {
        self.by_slot
            .values_mut()
            .filter(|c| c.enrichment.addresses.is_empty() && c.address_retries > 0)
            .map(|c| {
                c.address_retries -= 1;
                (c.slot, c.reference.id.clone())
            })
            .collect()
    }

    /// Records addresses learnt after the container started.
    pub fn set_addresses(&mut self, slot: Slot, addresses: Vec<IpAddr>) {
        let Some(container) = self.by_slot.get_mut(&slot) else {
            return;
        };
        for address in &addresses {
            self.by_address.insert(*address, slot);
            self.departed.remove(address);
        }
        container.enrichment.addresses = addresses;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(slot: Slot, id_byte: &str, address: Option<&str>) -> Container {
        let found = CgroupContainer {
            id: id_byte.repeat(64),
            runtime: Runtime::Docker,
            pod_uid: None,
        };
        let enrichment = address.map(|a| Enrichment {
            name: Some(format!("c{slot}")),
            addresses: vec![a.parse().unwrap()],
            ..Enrichment::default()
        });
        Container::new(slot, 100 + u64::from(slot), "/docker/x", found, enrichment)
    }

    #[test]
    fn names_fall_back_to_the_short_id() {
        let c = container(1, "a", None);
        assert_eq!(c.reference.name, "aaaaaaaaaaaa");
        assert!(c.matches("aaaaaaaaaaaa"));
        assert!(c.matches("aaaa"));
        assert!(!c.matches("aa"));
    }

    #[test]
    fn addresses_resolve_to_containers_and_to_departed_ones_until_reused() {
        let mut registry = Registry::default();
        assert!(registry.insert(container(1, "a", Some("172.17.0.2"))));
        assert!(!registry.insert(container(1, "a", None)), "duplicate slot");
        registry.insert(container(2, "b", None));
        let ip: IpAddr = "172.17.0.2".parse().unwrap();
        assert_eq!(registry.peer_of(&ip).unwrap().name, "c1");
        assert_eq!(registry.take_address_retries().len(), 1);
        registry.set_addresses(2, vec!["172.17.0.3".parse().unwrap()]);
        assert!(registry.take_address_retries().is_empty());
        registry.remove(1);
        assert_eq!(registry.slots().count(), 1);
        // A client still reaching the removed replica's address reaches that service.
        assert_eq!(registry.peer_of(&ip).unwrap().name, "c1");
        // Until a new container takes the address.
        registry.set_addresses(2, vec![ip]);
        assert_eq!(registry.peer_of(&ip).unwrap().name, "bbbbbbbbbbbb");
        registry.remove(2);
        assert_eq!(registry.peer_of(&ip).unwrap().name, "bbbbbbbbbbbb");
        assert!(registry.peer_of(&"10.9.9.9".parse().unwrap()).is_none());
    }
}
