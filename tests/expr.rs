//! Filter EXPRESSIONs (tcpdump syntax, run in the kernel) against real
//! traffic between two namespaces: each expression of a table keeps
//! exactly the packets it names, of a mix that has one of each kind.

use std::{process::Command, time::Duration};

use crate::util::{self, BIN, Pair, Tracer};

/// The packets every run sends, from `a` to `b`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Packet {
    Ping,
    Syn7001,
    Syn7002,
    Udp7001,
    Syn6To7001,
}

use Packet::*;

const ALL: [Packet; 5] = [Ping, Syn7001, Syn7002, Udp7001, Syn6To7001];

fn send(net: &Pair) {
    net.exec(&net.a, &["ping", "-c", "1", "-W", "1", &net.b4]);
    net.syn(7001);
    net.syn(7002);
    net.udp(7001);
    net.syn6(7001);
}

/// Whether a line of `lines` shows `p` (a to b; replies are other packets).
fn seen(lines: &[String], net: &Pair, p: Packet) -> bool {
    let (from, to) = match p {
        Ping => (
            format!("ICMP: {} -> {} ping request", net.a4, net.b4),
            String::new(),
        ),
        Syn7001 => (format!("TCP: {}:", net.a4), format!(" -> {}:7001 ", net.b4)),
        Syn7002 => (format!("TCP: {}:", net.a4), format!(" -> {}:7002 ", net.b4)),
        Udp7001 => (format!("UDP: {}:", net.a4), format!(" -> {}:7001", net.b4)),
        Syn6To7001 => (format!("TCP: [{}]:", net.a6), format!(" -> [{}]:7001 ", net.b6)),
    };
    lines.iter().any(|l| l.contains(&from) && l.contains(&to))
}

/// The hooks every packet of the mix passes in `b`: a function where
/// function hooks load (the VM: the fentry/kprobe object), else the
/// tracepoint (the tracepoint object), so both objects' slots are tested.
fn receive_hooks() -> &'static str {
    if util::function_hooks() != (false, false) {
        "ip_rcv,ipv6_rcv"
    } else {
        "netif_receive_skb"
    }
}

/// Runs nettrace with `args`, sends the mix, stops it with SIGINT, and
/// returns which packets it showed.
fn shown(net: &Pair, args: &[&str]) -> Vec<Packet> {
    let mut t = Tracer::start(args);
    send(net);
    std::thread::sleep(Duration::from_millis(300));
    t.signal(libc::SIGINT);
    let st = t.wait_exit(Duration::from_secs(30));
    assert!(st.success(), "{args:?}: exit {st}; stderr: {}", t.stderr());
    let lines = t.lines();
    assert_eq!(lines.last().map(String::as_str), Some("end trace..."), "{args:?}");
    ALL.into_iter().filter(|p| seen(&lines, net, *p)).collect()
}

#[test]
fn each_expression_keeps_exactly_the_packets_it_names() {
    let net = Pair::new();
    let subnet = format!("{}/24", net.host(0));
    let rows: Vec<(String, Vec<Packet>)> = vec![
        ("tcp dst port 7001".into(), vec![Syn7001, Syn6To7001]),
        ("ip proto 17 or icmp".into(), vec![Ping, Udp7001]),
        ("ip6 and tcp".into(), vec![Syn6To7001]),
        (
            format!(
                "src host {} and tcp[tcpflags] & tcp-syn != 0 and not port 7002",
                net.a4
            ),
            vec![Syn7001],
        ),
        (
            "portrange 7000-7001 and not udp".into(),
            vec![Syn7001, Syn6To7001],
        ),
        ("icmp[icmptype] = icmp-echo".into(), vec![Ping]),
        // SYNs carry 20 bytes of options: 60 bytes over IPv4, 80 over IPv6.
        ("tcp and len > 70".into(), vec![Syn6To7001]),
        (
            format!("net {subnet} and not (host {} and port 7001)", net.b4),
            vec![Ping, Syn7002],
        ),
    ];
    let hooks = receive_hooks();
    for (expr, want) in rows {
        let got = shown(&net, &["--basic", "-t", hooks, &expr]);
        assert_eq!(got, want, "'{expr}'");
    }
}

#[test]
fn drops_are_filtered_by_expression_in_the_kernel() {
    let net = Pair::new();
    let expr = format!("dst host {} and tcp dst port 7001", net.b4);
    assert_eq!(shown(&net, &["--drop", &expr]), vec![Syn7001]);
}

#[test]
fn expression_and_flags_must_both_match() {
    let net = Pair::new();
    let hooks = receive_hooks();
    // The flag keeps UDP, the expression port 7001: only the UDP datagram.
    let got = shown(&net, &["--basic", "-t", hooks, "-p", "udp", "port", "7001"]);
    assert_eq!(got, vec![Udp7001]);
}

#[test]
fn bad_expressions_exit_2_with_libpcaps_message() {
    for (args, message) in [
        (
            &["tcp", "port"][..],
            "nettrace: filter: can't parse filter expression: syntax error",
        ),
        (
            &["vlan 5000"],
            "nettrace: filter: VLAN tag 5000 greater than maximum 4095",
        ),
        (
            &["ip[200] = 1"],
            "nettrace: filter: the expression reads packet bytes up to offset 201 from the IP header; nettrace copies the first 96",
        ),
        (
            &["--tcp-monitor", "tcp"],
            "nettrace: filter: 'tcp': an expression matches packets; the socket modes",
        ),
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with(message), "{args:?}: {stderr}");
    }
}

/// The MAC address of the Ethernet device in namespace `ns` (`ip -j link`).
pub fn mac(ns: &str) -> String {
    let out = Command::new("ip")
        .args(["-n", ns, "-j", "link", "show"])
        .output()
        .expect("run ip");
    let links: serde_json::Value = serde_json::from_slice(&out.stdout).expect("ip -j link: JSON");
    links
        .as_array()
        .into_iter()
        .flatten()
        .find(|l| l["link_type"] == "ether")
        .and_then(|l| l["address"].as_str())
        .unwrap_or_else(|| panic!("no Ethernet device in {ns}: {links}"))
        .to_string()
}

#[test]
fn link_layer_expressions_match_on_the_ethernet_header() {
    let net = Pair::new();
    let (mac_a, mac_b) = (mac(&net.a), mac(&net.b));
    // Every packet of the mix goes from a's MAC to b's; what b sends back
    // (replies) is not in the mix.
    let rows: Vec<(String, Vec<Packet>)> = vec![
        (format!("ether host {mac_b}"), ALL.to_vec()),
        (format!("ether src {mac_a} and ether dst {mac_b}"), ALL.to_vec()),
        (format!("ether src {mac_b}"), vec![]),
        (
            format!("ether dst {mac_b} and tcp dst port 7001"),
            vec![Syn7001, Syn6To7001],
        ),
        ("ether host 02:00:5e:00:53:01".into(), vec![]),
        ("ether proto 0x86dd".into(), vec![Syn6To7001]),
    ];
    let hooks = receive_hooks();
    for (expr, want) in rows {
        let got = shown(&net, &["--basic", "-t", hooks, &expr]);
        assert_eq!(got, want, "'{expr}'");
    }
}

#[test]
fn arp_shows_the_arp_request_and_nothing_else() {
    let net = Pair::new();
    // ARP is seen at the device layer: `netif_receive_skb` (a tracepoint,
    // so the same on every kernel); it never reaches ip_rcv.
    let mut t = Tracer::start(&["--basic", "-t", "netif_receive_skb", "arp"]);
    net.exec(&net.a, &["ip", "neigh", "flush", "all"]);
    send(&net);
    std::thread::sleep(Duration::from_millis(300));
    t.signal(libc::SIGINT);
    let st = t.wait_exit(Duration::from_secs(30));
    assert!(st.success(), "exit {st}; stderr: {}", t.stderr());
    let lines = t.lines();
    let request = format!("ARP: {} -> {} request", net.a4, net.b4);
    assert!(lines.iter().any(|l| l.contains(&request)), "{lines:?}");
    assert!(
        !lines
            .iter()
            .any(|l| l.contains("TCP:") || l.contains("UDP:") || l.contains("ICMP")),
        "{lines:?}"
    );
}
