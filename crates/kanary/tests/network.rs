//! The `network` collector against real containers: a client container talking to a server
//! container over the default bridge. Checks connect/accept records with their peers, failed
//! connects, UDP connects, kernel de-duplication and the traffic counters.

mod common;

use std::time::{Duration, Instant};

use common::{Agent, Container, DEBIAN};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);
/// Size of the file the server serves, and how often the client fetches it.
const BLOB_BYTES: u64 = 1 << 20;
const FETCHES: u64 = 10;

/// A UDP connect (and one datagram) from inside `from` to `ip:port`.
fn udp_connect(from: &Container, ip: &str, port: u16) {
    let script = format!(
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.connect(('{ip}', {port}))\ns.send(b'kanary')\n"
    );
    from.exec(&["python3", "-c", &script]);
}

/// Waits until the agent resolves `to_ip` to container `to` in records of `from`.
///
/// The agent learns a container's address from Docker only once its network is up, retrying
/// every interval. Each probe is a UDP connect to a port not used before, so no probe is
/// folded into an earlier one by the kernel's de-duplication; the first probe whose record
/// names `to` as its peer proves the address is known. Returns the probe ports used.
fn wait_until_peer_known(
    agent: &mut Agent,
    from: &Container,
    to: &Container,
    to_ip: &str,
    first_port: u16,
) -> u16 {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut port = first_port;
    loop {
        udp_connect(from, to_ip, port);
        let record = agent.wait_for_container("connect", &from.name, WAIT, |r| {
            r["dst_port"] == port && r["protocol"] == "udp"
        });
        assert_eq!(record["dst_addr"], to_ip, "{record}");
        assert_eq!(record["result"], "ok", "{record}");
        if record["peer"]["name"] == to.name.as_str() {
            return port - first_port + 1;
        }
        assert!(
            Instant::now() < deadline,
            "the agent never learnt the address {to_ip} of {}",
            to.name
        );
        port += 1;
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Sum of `network.<field>` over every `stats` record of `name` so far.
fn network_total(agent: &mut Agent, name: &str, field: &str) -> u64 {
    agent
        .records_of("stats", name)
        .iter()
        .map(|r| r["network"][field].as_u64().unwrap_or(0))
        .sum()
}

/// Waits until `network.<field>` of `name`, summed over its stats records, reaches `at_least`.
fn wait_for_total(agent: &mut Agent, name: &str, field: &str, at_least: u64) -> u64 {
    let deadline = Instant::now() + WAIT;
    loop {
        let total = network_total(agent, name, field);
        if total >= at_least {
            return total;
        }
        assert!(
            Instant::now() < deadline,
            "network.{field} of {name} reached only {total}, expected at least {at_least}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn matching<'a>(records: &'a [Value], predicate: impl Fn(&Value) -> bool + 'a) -> Vec<&'a Value> {
    records.iter().filter(|r| predicate(r)).collect()
}

#[test]
fn connects_and_accepts_carry_peers_outcomes_and_traffic() {
    require_docker!();
    let mut agent = Agent::start();
    let server = Container::run(
        "netsrv",
        &[],
        DEBIAN,
        &[
            "sh",
            "-c",
            &format!(
                "head -c {BLOB_BYTES} /dev/urandom > /tmp/blob && cd /tmp && exec python3 -m http.server 8080"
            ),
        ],
    );
    let client = Container::run("netcli", &[], DEBIAN, &["sleep", "infinity"]);
    for container in [&server, &client] {
        agent.wait_for_container("container_start", &container.name, WAIT, |_| true);
    }
    let server_ip = server.ip();
    let client_ip = client.ip();
    assert!(!server_ip.is_empty() && !client_ip.is_empty());
    server.exec(&[
        "sh",
        "-c",
        "until ss -ltn | grep -q ':8080 '; do sleep 0.2; done",
    ]);

    // Both addresses known to the agent: peers resolve both ways. The probes are UDP connects.
    let probes = wait_until_peer_known(&mut agent, &client, &server, &server_ip, 20000);
    wait_until_peer_known(&mut agent, &server, &client, &client_ip, 21000);

    // Many identical connects: one record, every one counted.
    client.exec(&[
        "sh",
        "-c",
        &format!(
            "for i in $(seq {FETCHES}); do curl -sf -o /dev/null http://{server_ip}:8080/blob || exit 1; done"
        ),
    ]);
    let connect = agent.wait_for_container("connect", &client.name, WAIT, |r| {
        r["protocol"] == "tcp" && r["dst_port"] == 8080
    });
    assert_eq!(connect["dst_addr"], server_ip.as_str(), "{connect}");
    assert_eq!(connect["src_addr"], client_ip.as_str(), "{connect}");
    assert!(connect["src_port"].as_u64().unwrap() > 0, "{connect}");
    assert_eq!(connect["result"], "ok", "{connect}");
    assert_eq!(connect["peer"]["name"], server.name.as_str(), "{connect}");
    assert_eq!(connect["comm"], "curl", "{connect}");
    assert!(connect["pid"].as_u64().unwrap() > 0, "{connect}");
    assert_eq!(connect["repeats"], 0, "{connect}");

    let accept = agent.wait_for_container("accept", &server.name, WAIT, |r| {
        r["protocol"] == "tcp" && r["src_port"] == 8080
    });
    assert_eq!(accept["dst_addr"], client_ip.as_str(), "{accept}");
    assert_eq!(accept["src_addr"], server_ip.as_str(), "{accept}");
    assert_eq!(accept["result"], "ok", "{accept}");
    assert_eq!(accept["peer"]["name"], client.name.as_str(), "{accept}");

    // A connect to a port nobody listens on is refused.
    client.exec(&[
        "sh",
        "-c",
        &format!("! curl -s -o /dev/null http://{server_ip}:9999/"),
    ]);
    let failed = agent.wait_for_container("connect", &client.name, WAIT, |r| {
        r["protocol"] == "tcp" && r["dst_port"] == 9999
    });
    assert_eq!(failed["result"], "failed", "{failed}");
    assert_eq!(failed["dst_addr"], server_ip.as_str(), "{failed}");
    assert_eq!(failed["peer"]["name"], server.name.as_str(), "{failed}");
    assert_eq!(failed["comm"], "curl", "{failed}");

    // UDP: connect + send from Python.
    udp_connect(&client, &server_ip, 5353);
    let udp = agent.wait_for_container("connect", &client.name, WAIT, |r| {
        r["protocol"] == "udp" && r["dst_port"] == 5353
    });
    assert_eq!(udp["dst_addr"], server_ip.as_str(), "{udp}");
    assert_eq!(udp["result"], "ok", "{udp}");
    assert_eq!(udp["peer"]["name"], server.name.as_str(), "{udp}");
    assert_eq!(udp["comm"], "python3", "{udp}");

    // The counters saw every connection and every byte.
    // Every fetch, every probe and the UDP connect above.
    wait_for_total(
        &mut agent,
        &client.name,
        "connects",
        FETCHES + u64::from(probes) + 1,
    );
    wait_for_total(&mut agent, &client.name, "connect_failures", 1);
    wait_for_total(&mut agent, &client.name, "rx_bytes", FETCHES * BLOB_BYTES);
    wait_for_total(&mut agent, &client.name, "tx_packets", FETCHES);
    wait_for_total(&mut agent, &server.name, "accepts", FETCHES);
    wait_for_total(&mut agent, &server.name, "tx_bytes", FETCHES * BLOB_BYTES);
    wait_for_total(&mut agent, &server.name, "rx_packets", FETCHES);

    // De-duplication: the kernel streamed one connect and one accept for all the fetches.
    let client_connects = agent.records_of("connect", &client.name);
    let to_server = matching(&client_connects, |r| {
        r["protocol"] == "tcp" && r["dst_port"] == 8080 && r["result"] == "ok"
    });
    assert_eq!(to_server.len(), 1, "{to_server:#?}");
    let server_accepts = agent.records_of("accept", &server.name);
    let from_client = matching(&server_accepts, |r| {
        r["src_port"] == 8080 && r["dst_addr"] == client_ip.as_str()
    });
    assert_eq!(from_client.len(), 1, "{from_client:#?}");

    // Traffic is attributed to the right container: the server sent the bulk.
    let client_tx = network_total(&mut agent, &client.name, "tx_bytes");
    assert!(
        client_tx < FETCHES * BLOB_BYTES,
        "client tx_bytes {client_tx}: the download was counted as upload"
    );
}

#[test]
fn repeats_are_reported_again_after_renotify_after() {
    require_docker!();
    let mut agent = Agent::start_with(
        "[agent]\ninterval = \"1s\"\n[collectors.network]\nrenotify_after = \"2s\"\n",
    );
    let client = Container::run("netrepeat", &[], DEBIAN, &["sleep", "infinity"]);
    agent.wait_for_container("container_start", &client.name, WAIT, |_| true);
    // Three UDP connects in one go: the first is reported, the other two are folded into it.
    client.exec(&[
        "python3",
        "-c",
        "import socket\nfor _ in range(3):\n    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n    s.connect(('192.0.2.1', 7777))\n",
    ]);
    let first = agent.wait_for_container("connect", &client.name, WAIT, |r| r["dst_port"] == 7777);
    assert_eq!(first["repeats"], 0, "{first}");
    assert_eq!(first["protocol"], "udp", "{first}");
    assert_eq!(first["dst_addr"], "192.0.2.1", "{first}");
    std::thread::sleep(Duration::from_secs(3));
    // After renotify_after the next one is streamed, carrying the two folded repeats.
    udp_connect(&client, "192.0.2.1", 7777);
    let again = agent.wait_for_container("connect", &client.name, WAIT, |r| {
        r["dst_port"] == 7777 && r["repeats"] != 0
    });
    assert_eq!(again["repeats"], 2, "{again}");
    assert!(again["peer"].is_null(), "{again}");
    assert_eq!(
        agent
            .records_of("connect", &client.name)
            .iter()
            .filter(|r| r["dst_port"] == 7777)
            .count(),
        2
    );
    wait_for_total(&mut agent, &client.name, "connects", 4);
}
