//! Root integration tests of the socket modes `--tcp-monitor`,
//! `--rt-summary` and `--rtt`: real TCP between two namespaces the test
//! creates, real retransmits (an iptables rule drops a transfer's packets
//! for a moment), real resets, and a request/response server whose
//! processing time the test sets. `--rt`'s own tests are in `rt.rs`.

use std::time::Duration;

use crate::util::{self, Background, Pair, Tracer, sample, scrape, start_timeout};

/// Accepts connections and answers each request `N …` with N bytes after
/// sleeping DELAY seconds; a connection ends when the client closes.
const SERVER: &str = r#"
import socket, sys, time
host, port, delay = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((host, port)); s.listen(8)
while True:
    c, _ = s.accept()
    while True:
        d = c.recv(65536)
        if not d: break
        time.sleep(delay)
        c.sendall(b'x' * int(d.split()[0]))
    c.close()
"#;

/// Sends COUNT requests for SIZE bytes back to back, reading each answer.
const CLIENT: &str = r#"
import socket, sys, time
host, port, count, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
for attempt in range(50):
    try:
        s = socket.create_connection((host, port), timeout=5); break
    except OSError:
        time.sleep(0.1)
for i in range(count):
    s.sendall(b'%d request\n' % size); got = 0
    while got < size: got += len(s.recv(65536))
s.close()
"#;

/// Reads everything sent to it.
const SINK: &str = r#"
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind((sys.argv[1], int(sys.argv[2]))); s.listen(1)
c, _ = s.accept()
while c.recv(1 << 20): pass
"#;

/// Writes to the sink for SECS seconds.
const SOURCE: &str = r#"
import socket, sys, time
for attempt in range(50):
    try:
        s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=10); break
    except OSError:
        time.sleep(0.1)
end = time.time() + float(sys.argv[3]); chunk = b'x' * 65536
while time.time() < end: s.sendall(chunk)
s.close()
"#;

fn port(base: u16) -> u16 {
    base + (std::process::id() % 500) as u16
}

/// The kernel names reset reasons (6.10+): `tcp:tcp_send_reset` has them.
fn reset_reasons() -> bool {
    std::fs::read_to_string("/sys/kernel/tracing/events/tcp/tcp_send_reset/format")
        .is_ok_and(|f| f.contains("sk_rst_reason"))
}

#[test]
fn reset_to_closed_port_shows_both_ends_with_reason_text_and_json() {
    let net = Pair::new();
    let p = port(31000);
    let filter = ["--tcp-monitor", "-P", &p.to_string()];
    let mut text = Tracer::start(&filter);
    let mut json = Tracer::start(&[&filter[..], &["--json"]].concat());
    net.syn(p);
    let sent = text.wait_for("[tcp_send_reset", start_timeout());
    let received = text.wait_for("[tcp_receive_reset", start_timeout());
    // The reset goes from b's closed port back to a.
    let b_end = format!("TCP: {}:{p} -> {}:", net.b4, net.a4);
    assert!(sent.contains(&b_end), "{sent}");
    assert!(
        sent.contains(&format!("netns:{}", net.netns_inode(&net.b))),
        "{sent}"
    );
    if reset_reasons() {
        assert!(sent.ends_with("reason: NO_SOCKET"), "{sent}");
    }
    // a's socket, still connecting, receives it.
    assert!(received.contains(&format!("TCP: {}:", net.a4)), "{received}");
    assert!(received.contains(&format!(" -> {}:{p} ", net.b4)), "{received}");
    assert!(received.contains("state:SYN_SENT"), "{received}");
    assert!(
        received.contains(&format!("netns:{}", net.netns_inode(&net.a))),
        "{received}"
    );

    json.wait_for("tcp_receive_reset", start_timeout());
    let records = json.json_records();
    let sent_json = records
        .iter()
        .find(|r| r["event"] == "tcp_send_reset")
        .unwrap_or_else(|| panic!("{records:#?}"));
    assert_eq!(sent_json["v"], 1);
    assert_eq!(sent_json["type"], "tcp");
    assert_eq!(sent_json["saddr"], net.b4.as_str());
    assert_eq!(sent_json["sport"], p);
    assert_eq!(sent_json["daddr"], net.a4.as_str());
    assert_eq!(sent_json["netns"], net.netns_inode(&net.b));
    // Same client port in both outputs.
    let client_port = sent_json["dport"].as_u64().unwrap();
    assert!(
        sent.contains(&format!("{}:{client_port} ", net.a4)),
        "{sent} vs {sent_json}"
    );
    if reset_reasons() {
        assert_eq!(sent_json["reason"], "NO_SOCKET");
    }
    let recv_json = records
        .iter()
        .find(|r| r["event"] == "tcp_receive_reset")
        .unwrap();
    assert_eq!(recv_json["state"], "SYN_SENT");
    assert_eq!(recv_json["sport"], client_port);
    for t in [&text, &json] {
        t.signal(libc::SIGINT);
    }
    assert!(text.wait_exit(start_timeout()).success());
    assert!(json.wait_exit(start_timeout()).success());
}

#[test]
fn retransmits_while_a_firewall_rule_drops_the_transfer() {
    let net = Pair::new();
    let p = port(32000);
    let ps = p.to_string();
    let mut t = Tracer::start(&["--tcp-monitor", "-P", &ps, "-s", &net.a4]);
    let _sink = Background::start(&net.b, &["python3", "-c", SINK, &net.b4, &ps]);
    let source = Background::start(&net.a, &["python3", "-c", SOURCE, &net.b4, &ps, "3"]);
    std::thread::sleep(Duration::from_millis(800));
    // b stops taking the transfer's segments for a while: a retransmits.
    let rule = ["INPUT", "-p", "tcp", "--dport", &ps, "-j", "DROP"];
    util::sh(&[&["ip", "netns", "exec", &net.b, "iptables", "-I"], &rule[..]].concat());
    std::thread::sleep(Duration::from_millis(700));
    util::sh(&[&["ip", "netns", "exec", &net.b, "iptables", "-D"], &rule[..]].concat());
    let line = t.wait_for("[tcp_retransmit_skb", Duration::from_secs(10));
    assert!(line.contains(&format!("TCP: {}:", net.a4)), "{line}");
    assert!(line.contains(&format!(" -> {}:{p} ", net.b4)), "{line}");
    assert!(line.contains("state:ESTABLISHED"), "{line}");
    assert!(
        line.contains(&format!("netns:{}", net.netns_inode(&net.a))),
        "{line}"
    );
    // An established socket has an RTT estimate and a window.
    assert!(line.contains(" srtt:") && line.contains(" cwnd:"), "{line}");
    source.finish(Duration::from_secs(20));
    // Nothing from other connections passed the filter.
    for l in t.lines().iter().filter(|l| l.starts_with('[')) {
        assert!(
            l.contains(&format!(":{p} ")) || l.contains(&format!(":{p} ->")),
            "{l}"
        );
    }
    t.signal(libc::SIGINT);
    assert!(t.wait_exit(start_timeout()).success());
}

#[test]
fn rt_summary_prints_histograms_and_tcp_monitor_counts_resets() {
    let net = Pair::new();
    let p = port(35000);
    let ps = p.to_string();
    let mut summary = Tracer::start(&["--rt", "-P", &ps, "--rt-summary"]);
    let metrics_port = port(36000) + 1000;
    let metrics = format!("127.0.0.1:{metrics_port}");
    let monitor = Tracer::start(&["--tcp-monitor", "-P", &(p + 1).to_string(), "--metrics", &metrics]);
    let _server = Background::start(&net.b, &["python3", "-c", SERVER, &net.b4, &ps, "0.02"]);
    Background::start(&net.a, &["python3", "-c", CLIENT, &net.b4, &ps, "5", "100"])
        .finish(Duration::from_secs(20));
    let line = summary.wait_for("process distribution:", Duration::from_secs(10));
    // At least one second had all five tasks… or they spread over two.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    let total = loop {
        let total: u64 = summary
            .lines()
            .iter()
            .filter_map(|l| l.strip_prefix("process distribution:"))
            .filter_map(|n| n.trim().parse::<u64>().ok())
            .sum();
        if total >= 5 || std::time::Instant::now() > deadline {
            break total;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(total, 5, "{line}\n{:#?}", summary.lines());
    // 20 ms = 20000 µs: the 16384-32767 µs bucket.
    assert!(
        summary
            .lines()
            .iter()
            .any(|l| l.contains("16384 - 32767us: ") && !l.contains(": 0 ")),
        "{:#?}",
        summary.lines()
    );
    assert_eq!(
        sample(&scrape(metrics_port), "nettrace_tcp_resets_sent_total"),
        0.0
    );
    net.syn(p + 1);
    net.syn(p + 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while sample(&scrape(metrics_port), "nettrace_tcp_resets_sent_total") < 2.0
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let m = scrape(metrics_port);
    assert_eq!(sample(&m, "nettrace_tcp_resets_sent_total"), 2.0, "{m}");
    assert_eq!(
        sample(&m, "nettrace_events_total{hook=\"tcp_receive_reset\"}"),
        2.0,
        "{m}"
    );
    drop(monitor);
}

/// The last `rtt distribution:` total printed.
fn last_rtt_total(t: &Tracer) -> Option<u64> {
    t.lines()
        .iter()
        .filter_map(|l| l.strip_prefix("rtt distribution:"))
        .filter_map(|n| n.trim().parse().ok())
        .next_back()
}

#[test]
fn rtt_distribution_and_samples_of_an_iperf3_transfer() {
    let net = Pair::new();
    let p = port(37000);
    let ps = p.to_string();
    let mut dist = Tracer::start(&["--rtt", "-P", &ps]);
    let mut detail = Tracer::start(&["--rtt-detail", "-P", &ps, "-s", &net.a4]);
    // No connection here has a 5-second RTT: the kernel filters all out.
    let mut slow = Tracer::start(&["--rtt", "-P", &ps, "--filter-srtt", "5000"]);
    let _server = Background::start(&net.b, &["iperf3", "-s", "-1", "-p", &ps]);
    std::thread::sleep(Duration::from_millis(300));
    Background::start(&net.a, &["iperf3", "-c", &net.b4, "-p", &ps, "-t", "2"])
        .finish(Duration::from_secs(30));
    // The distribution is printed each second: wait for one after the transfer.
    std::thread::sleep(Duration::from_millis(1500));
    let total = last_rtt_total(&dist).unwrap_or_else(|| panic!("{:#?}", dist.lines()));
    assert!(total > 0, "{:#?}", dist.lines());
    // On veth RTTs are well below a millisecond: the first bucket fills.
    let first: Vec<u64> = dist
        .lines()
        .iter()
        .filter_map(|l| l.strip_prefix("                     0 -     1ms: "))
        .filter_map(|rest| rest.split_whitespace().next()?.parse().ok())
        .collect();
    assert!(
        first.last().is_some_and(|&n| n > 0 && n <= total),
        "{:#?}",
        dist.lines()
    );
    let line = detail.wait_for("*rtt:", start_timeout());
    // Where functions can be hooked, samples come from tcp_ack_update_rtt
    // itself; otherwise the smoothed RTT from the tcp_probe tracepoint.
    let source = if util::function_hooks().0 {
        "[tcp_ack_update_rtt"
    } else {
        "[tcp_probe"
    };
    assert!(line.starts_with('[') && line.contains(source), "{line}");
    // -s selects the client end (the socket whose local address it is).
    assert!(line.contains(&format!("TCP: {}:", net.a4)), "{line}");
    assert!(line.contains(&format!(" -> {}:{p} ", net.b4)), "{line}");
    assert!(
        line.contains(", rtt_min:") && line.contains(&format!("netns:{}", net.netns_inode(&net.a))),
        "{line}"
    );
    assert!(
        detail
            .lines()
            .iter()
            .filter(|l| l.starts_with('['))
            .all(|l| l.contains(&format!("TCP: {}:", net.a4)))
    );
    assert_eq!(last_rtt_total(&slow), Some(0), "{:#?}", slow.lines());
    for t in [&dist, &detail, &slow] {
        t.signal(libc::SIGINT);
    }
    for t in [&mut dist, &mut detail, &mut slow] {
        assert!(t.wait_exit(start_timeout()).success());
    }
}
