//! `network`: per-container traffic volume, and de-duplicated `connect` / `accept` records
//! (`bpf/network.bpf.c`).
//!
//! The packet and UDP-connect programs are attached once, to the root of the cgroup v2
//! hierarchy, where they run for every descendant cgroup: a container is covered from its first
//! packet, with no per-container attach to race against. TCP outcomes come from the
//! `inet_sock_set_state` tracepoint and are attributed to the socket's cgroup.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsRawFd;

use kanary_model::config::DedupStreamConfig;
use kanary_model::record::{Connection, ConnectionResult, RecordBody};
use kanary_model::stats::NetworkStats;
use libbpf_rs::skel::OpenSkel;
use libbpf_rs::{Link, MapHandle};

use crate::collector::{
    record_event, Collector, EventStream, KernelEvent, LoadContext, Loaded, Slot, StatsBatch,
};
use crate::error::{attach_error, load_error, Error, Result};
use crate::kernel::{
    c_string, forget_slot, handle, open_collector, read_pod, size_maps, DropsMap, SlotCounters,
};
use crate::skel::network::{types, NetworkSkel, NetworkSkelBuilder};

/// Collector name.
pub const NAME: &str = "network";
/// `EVENT_CONNECT` / `EVENT_ACCEPT` (`bpf/include/types.h`).
const EVENT_CONNECT: u32 = 8;
const EVENT_ACCEPT: u32 = 9;
/// `AF_INET` / `AF_INET6`.
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
/// `IPPROTO_TCP` / `IPPROTO_UDP`.
const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;
/// `KANARY_CONN_OK`.
const CONN_OK: u8 = 0;

// SAFETY: generated from C structs of integers and byte arrays only: every bit pattern is valid.
unsafe impl plain::Plain for types::connection_event {}
unsafe impl plain::Plain for types::connection_key {}

/// The loaded `network` collector.
pub struct NetworkCollector {
    _skel: NetworkSkel<'static>,
    _links: Vec<Link>,
    counts: SlotCounters,
    recent: MapHandle,
}

/// Opens, sizes, loads and attaches the collector.
pub fn load(ctx: &LoadContext<'_>) -> Result<Loaded> {
    let config: DedupStreamConfig = ctx.config.collectors.network.clone();
    // 1. Open: parse the object and set up what every collector shares (container filter,
    //    `drops`, `targ_include_host`); nothing is in the kernel yet.
    let mut open = open_collector!(NetworkSkelBuilder, ctx, NAME)?;
    // 2. Size this collector's maps: per-container ones get one entry per slot.
    size_maps(
        NAME,
        [
            (&mut open.maps.net_counts, ctx.slots),
            (&mut open.maps.recent_connections, config.dedup_entries),
            (&mut open.maps.events, config.ringbuf_bytes),
        ],
    )?;
    // 3. Its read-only tunables, fixed for the life of the program.
    if let Some(rodata) = open.maps.rodata_data.as_deref_mut() {
        rodata.targ_renotify_ns =
            u64::try_from(config.renotify_after.as_nanos()).unwrap_or(u64::MAX);
    }
    // 4. Load: the verifier runs here.
    let skel = open.load().map_err(load_error(NAME))?;
    // 5. Attach the TCP state tracepoint, then the packet and UDP-connect programs at the root
    //    of the cgroup hierarchy: attached there through a bpf_link, a program runs for every
    //    descendant cgroup, next to whatever else is attached below (links are multi-attach).
    let tcp_state = &skel.progs.kanary_inet_sock_set_state;
    let mut links = vec![tcp_state
        .attach()
        .map_err(attach_error(NAME, "tp_btf/inet_sock_set_state"))?];
    let root = File::open(ctx.cgroup2_mount).map_err(|source| Error::Cgroup {
        path: ctx.cgroup2_mount.to_path_buf(),
        source,
    })?;
    for program in [
        &skel.progs.kanary_skb_ingress,
        &skel.progs.kanary_skb_egress,
        &skel.progs.kanary_connect4,
        &skel.progs.kanary_connect6,
    ] {
        let hook = format!(
            "{} at {}",
            program.section().to_string_lossy(),
            ctx.cgroup2_mount.display()
        );
        let link = program.attach_cgroup(root.as_raw_fd());
        links.push(link.map_err(attach_error(NAME, hook))?);
    }
    // The links hold the cgroup; the directory need not stay open.
    drop(root);
    // 6. Hand over the ring buffer, the loss counters and the counter and dedup maps.
    let streams = vec![EventStream::new(NAME, &skel.maps.events, decode)?];
    let drops = DropsMap::new(NAME, &skel.maps.drops)?;
    let collector = NetworkCollector {
        counts: SlotCounters::new(NAME, "net_counts", &skel.maps.net_counts)?,
        recent: handle(&skel.maps.recent_connections, NAME, "recent_connections")?,
        _skel: skel,
        _links: links,
    };
    Ok(Loaded {
        collector: Box::new(collector),
        streams,
        drops: Some(drops),
    })
}

impl Collector for NetworkCollector {
    fn name(&self) -> &'static str {
        NAME
    }

    fn container_removed(&mut self, slot: Slot) -> Result<()> {
        self.counts.reset(slot)?;
        forget_slot(
            &self.recent,
            slot,
            |key: &types::connection_key| key.slot,
            NAME,
            "recent_connections",
        )
    }

    fn collect(&mut self, batch: &mut StatsBatch) -> Result<()> {
        for (&slot, stats) in batch.by_slot.iter_mut() {
            stats.network = Some(network_stats(&self.counts.deltas(slot)?));
        }
        Ok(())
    }
}

/// The stats section from interval deltas, in `struct net_counts` order.
fn network_stats(delta: &[u64]) -> NetworkStats {
    let at = |i: usize| delta.get(i).copied().unwrap_or(0);
    NetworkStats {
        rx_bytes: at(0),
        tx_bytes: at(1),
        rx_packets: at(2),
        tx_packets: at(3),
        connects: at(4),
        connect_failures: at(5),
        accepts: at(6),
    }
}

/// An address as the kernel wrote it (network byte order, IPv4 in the first 4 bytes). IPv4
/// addresses in IPv6 form (a dual-stack socket talking IPv4) become plain IPv4, so they match
/// the addresses the runtime reports for containers.
fn address(family: u16, bytes: &[u8; 16]) -> Option<IpAddr> {
    match family {
        AF_INET => Some(IpAddr::V4(Ipv4Addr::new(
            bytes[0], bytes[1], bytes[2], bytes[3],
        ))),
        AF_INET6 => Some(IpAddr::V6(Ipv6Addr::from(*bytes)).to_canonical()),
        _ => None,
    }
}

/// `tcp`, `udp`, or the protocol number.
fn protocol_name(protocol: u8) -> String {
    match protocol {
        IPPROTO_TCP => "tcp".into(),
        IPPROTO_UDP => "udp".into(),
        other => format!("ipproto_{other}"),
    }
}

fn decode(bytes: &[u8]) -> Option<KernelEvent> {
    let raw: types::connection_event = read_pod(bytes)?;
    let connection = Connection {
        container: Default::default(),
        pid: raw.hdr.pid,
        comm: c_string(&raw.comm.map(|c| c as u8)),
        protocol: protocol_name(raw.protocol),
        src_addr: address(raw.family, &raw.src_addr)?,
        src_port: raw.src_port,
        dst_addr: address(raw.family, &raw.dst_addr)?,
        dst_port: raw.dst_port,
        result: if raw.result == CONN_OK {
            ConnectionResult::Ok
        } else {
            ConnectionResult::Failed
        },
        peer: None,
        repeats: raw.repeats,
    };
    let body = match raw.hdr.kind {
        EVENT_CONNECT => RecordBody::Connect(connection),
        EVENT_ACCEPT => RecordBody::Accept(connection),
        _ => return None,
    };
    Some(record_event(
        raw.hdr.ts_boot_ns,
        raw.hdr.cgroup_id,
        raw.hdr.slot,
        body,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: u32, family: u16) -> types::connection_event {
        let mut raw = types::connection_event::default();
        raw.hdr.ts_boot_ns = 42;
        raw.hdr.cgroup_id = 7;
        raw.hdr.slot = 3;
        raw.hdr.kind = kind;
        raw.hdr.pid = 1234;
        raw.family = family;
        raw.protocol = IPPROTO_TCP;
        raw.src_port = 40000;
        raw.dst_port = 8080;
        raw.repeats = 5;
        for (i, c) in b"curl".iter().enumerate() {
            raw.comm[i] = *c as _;
        }
        raw
    }

    fn bytes(raw: &types::connection_event) -> Vec<u8> {
        // SAFETY: connection_event is a plain C struct of integers and arrays.
        unsafe { plain::as_bytes(raw) }.to_vec()
    }

    fn connection(event: KernelEvent) -> (RecordBody, Slot) {
        match event {
            KernelEvent::Record(record) => (record.body, record.slot),
            other => panic!("not a record: {other:?}"),
        }
    }

    #[test]
    fn decodes_an_ipv4_connect() {
        let mut raw = event(EVENT_CONNECT, AF_INET);
        raw.src_addr[..4].copy_from_slice(&[172, 17, 0, 3]);
        raw.dst_addr[..4].copy_from_slice(&[172, 17, 0, 2]);
        let (body, slot) = connection(decode(&bytes(&raw)).unwrap());
        assert_eq!(slot, 3);
        let RecordBody::Connect(c) = body else {
            panic!("{body:?}")
        };
        assert_eq!(c.pid, 1234);
        assert_eq!(c.comm, "curl");
        assert_eq!(c.protocol, "tcp");
        assert_eq!(c.src_addr, "172.17.0.3".parse::<IpAddr>().unwrap());
        assert_eq!(c.src_port, 40000);
        assert_eq!(c.dst_addr, "172.17.0.2".parse::<IpAddr>().unwrap());
        assert_eq!(c.dst_port, 8080);
        assert_eq!(c.result, ConnectionResult::Ok);
        assert_eq!(c.repeats, 5);
        assert!(c.peer.is_none());
    }

    #[test]
    fn decodes_an_ipv6_accept_and_a_failure() {
        let mut raw = event(EVENT_ACCEPT, AF_INET6);
        raw.dst_addr = "fd00::1".parse::<Ipv6Addr>().unwrap().octets();
        raw.src_addr = Ipv6Addr::LOCALHOST.octets();
        raw.result = 1;
        let (body, _) = connection(decode(&bytes(&raw)).unwrap());
        let RecordBody::Accept(c) = body else {
            panic!("{body:?}")
        };
        assert_eq!(c.dst_addr, "fd00::1".parse::<IpAddr>().unwrap());
        assert_eq!(c.src_addr, "::1".parse::<IpAddr>().unwrap());
        assert_eq!(c.result, ConnectionResult::Failed);
    }

    #[test]
    fn ipv4_mapped_addresses_become_ipv4() {
        let mut raw = event(EVENT_CONNECT, AF_INET6);
        raw.protocol = IPPROTO_UDP;
        raw.dst_addr = "::ffff:10.0.0.9".parse::<Ipv6Addr>().unwrap().octets();
        let (body, _) = connection(decode(&bytes(&raw)).unwrap());
        let RecordBody::Connect(c) = body else {
            panic!("{body:?}")
        };
        assert_eq!(c.dst_addr, "10.0.0.9".parse::<IpAddr>().unwrap());
        assert_eq!(c.src_addr, "::".parse::<IpAddr>().unwrap());
        assert_eq!(c.protocol, "udp");
    }

    #[test]
    fn rejects_unknown_kinds_families_and_short_buffers() {
        assert!(decode(&bytes(&event(99, AF_INET))).is_none());
        assert!(decode(&bytes(&event(EVENT_CONNECT, 1))).is_none());
        assert!(decode(&bytes(&event(EVENT_CONNECT, AF_INET))[..20]).is_none());
    }

    #[test]
    fn protocols_are_named() {
        assert_eq!(protocol_name(IPPROTO_TCP), "tcp");
        assert_eq!(protocol_name(IPPROTO_UDP), "udp");
        assert_eq!(protocol_name(132), "ipproto_132");
    }

    // SAFETY: generated from a C struct of u64s only: every bit pattern is valid.
    unsafe impl plain::Plain for types::net_counts {}

    #[test]
    fn counters_map_to_stats_fields() {
        // The kernel struct holding 1..=7 as `SlotCounters` reads it: consecutive u64 fields.
        let fields = [1u64, 2, 3, 4, 5, 6, 7];
        let counts: types::net_counts = read_pod(&fields.map(u64::to_ne_bytes).concat()).unwrap();
        let stats = network_stats(&fields);
        // Each kernel counter lands in the stats field of the same name.
        let kernel = format!("{counts:?}").replace("net_counts", "NetworkStats");
        assert_eq!(format!("{stats:?}"), kernel);
        assert_eq!(
            stats,
            NetworkStats {
                rx_bytes: 1,
                tx_bytes: 2,
                rx_packets: 3,
                tx_packets: 4,
                connects: 5,
                connect_failures: 6,
                accepts: 7,
            }
        );
        assert_eq!(network_stats(&[]), NetworkStats::default());
    }
}
