//! Root integration tests of the measuring and throttling options:
//! `--latency`, `--latency-summary`, `--monitor`, `--func-stats` and
//! `--rate-limit`, with real packets between namespaces the test creates.

use std::{collections::BTreeMap, time::Duration};

use crate::util::{self, Background, Pair, Tracer, start_timeout};

fn port(base: u16) -> u16 {
    base + (std::process::id() % 500) as u16
}

/// Sends UDP datagrams to HOST:PORT (nobody listens: each is dropped with
/// NO_SOCKET) for SECS seconds, at most RATE per second.
const UDP_FLOOD: &str = r#"
import socket, sys, time
host, port, secs, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
end = time.time() + secs
while time.time() < end:
    for _ in range(rate // 100):
        s.sendto(b'x', (host, port))
    time.sleep(0.01)
"#;

#[test]
fn latency_reports_each_packets_life_at_its_free() {
    let net = Pair::new();
    let p = port(38000);
    let ps = p.to_string();
    let mut t = Tracer::start(&["--latency", "--min-latency", "0", "-p", "tcp", "--port", &ps]);
    net.syn(p);
    let line = t.wait_for("latency: ", start_timeout());
    // One line per packet, at the hook that freed it.
    assert!(line.contains(&format!(":{p}")), "{line}");
    assert!(
        line.contains("[kfree_skb") || line.contains("[consume_skb"),
        "{line}"
    );
    let ms: f64 = line
        .rsplit("latency: ")
        .next()
        .and_then(|v| v.strip_suffix("ms"))
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    assert!((0.0..1000.0).contains(&ms), "{line}");
    // Only frees are reported: no line of a hook on the way.
    for l in t.lines().iter().filter(|l| l.starts_with('[')) {
        assert!(l.contains(" latency: "), "{l}");
    }
    t.signal(libc::SIGINT);
    assert!(t.wait_exit(start_timeout()).success());
    // A minimum no packet here reaches: the kernel reports nothing.
    let mut slow = Tracer::start(&[
        "--latency",
        "--min-latency",
        "5000000",
        "-p",
        "tcp",
        "--port",
        &ps,
    ]);
    net.syn(p);
    std::thread::sleep(Duration::from_millis(500));
    slow.signal(libc::SIGINT);
    assert!(slow.wait_exit(start_timeout()).success());
    assert!(
        !slow.lines().iter().any(|l| l.contains("latency: ")),
        "{:#?}",
        slow.lines()
    );
}

#[test]
fn latency_summary_counts_lives_in_the_kernel() {
    let net = Pair::new();
    let p = port(38600);
    let mut t = Tracer::start(&["--latency-summary", "-p", "tcp", "--port", &p.to_string()]);
    for _ in 0..3 {
        net.syn(p);
    }
    std::thread::sleep(Duration::from_millis(1500));
    let totals: Vec<u64> = t
        .lines()
        .iter()
        .filter_map(|l| l.strip_prefix("latency distribution:"))
        .filter_map(|n| n.trim().parse().ok())
        .collect();
    // Each SYN and each RST is a packet whose life ends.
    assert!(totals.last().is_some_and(|&n| n >= 3), "{:#?}", t.lines());
    t.signal(libc::SIGINT);
    assert!(t.wait_exit(start_timeout()).success());
}

#[test]
fn monitor_reports_a_drop_with_its_reason() {
    let net = Pair::new();
    let p = port(39000);
    let metrics_port = port(40000) + 1000;
    let addr = format!("127.0.0.1:{metrics_port}");
    let mut t = Tracer::start(&[
        "--monitor",
        "-p",
        "tcp",
        "--dport",
        &p.to_string(),
        "--metrics",
        &addr,
    ]);
    let drops = |m: &str| util::sample(m, "nettrace_packets_dropped_total{reason=\"NO_SOCKET\"");
    assert_eq!(drops(&util::scrape(metrics_port)), 0.0);
    net.syn(p);
    let line = t.wait_for("[kfree_skb", start_timeout());
    assert!(
        line.contains(&format!("{}:", net.a4)) && line.contains(&format!("{}:{p}", net.b4)),
        "{line}"
    );
    assert!(line.contains("reason: NO_SOCKET"), "{line}");
    // The endpoint serves the monitor's counters as they move.
    let m = util::scrape(metrics_port);
    assert_eq!(drops(&m), 1.0, "{m}");
    t.signal(libc::SIGINT);
    assert!(t.wait_exit(start_timeout()).success());
}

/// `hook -> count` from a `--func-stats` table.
fn func_stats(lines: &[String]) -> BTreeMap<String, u64> {
    let start = lines
        .iter()
        .rposition(|l| l.starts_with("hook ") && l.ends_with("count"))
        .unwrap_or_else(|| panic!("no table in {lines:#?}"));
    lines[start + 1..]
        .iter()
        .map_while(|l| {
            let mut w = l.split_whitespace();
            Some((w.next()?.to_string(), w.next()?.parse().ok()?))
        })
        .collect()
}

#[test]
fn func_stats_counts_the_hooks_the_traffic_crosses() {
    let net = Pair::new();
    let mut t = Tracer::start(&[
        "--func-stats",
        "-t",
        "netif_receive_skb,net_dev_xmit,tcp_retransmit_skb,tcp_send_reset",
        "-p",
        "icmp",
        "-s",
        &net.a4,
    ]);
    net.exec(&net.a, &["ping", "-c", "3", "-i", "0.2", &net.b4]);
    std::thread::sleep(Duration::from_millis(300));
    t.signal(libc::SIGINT);
    assert!(t.wait_exit(start_timeout()).success());
    let stats = func_stats(&t.lines());
    // The requests leave a's device and enter b's.
    assert!(stats["net_dev_xmit"] >= 3, "{stats:?}");
    assert!(stats["netif_receive_skb"] >= 3, "{stats:?}");
    // Pings are no TCP: those hooks are attached but see nothing of ours.
    assert_eq!(stats["tcp_retransmit_skb"], 0, "{stats:?}");
    assert_eq!(stats["tcp_send_reset"], 0, "{stats:?}");
    // No per-packet output.
    assert!(!t.lines().iter().any(|l| l.contains("ICMP:")), "{:#?}", t.lines());
}

/// Events per second (of their kernel timestamps) in `[sec.usec] …` lines.
fn per_second(lines: &[String]) -> BTreeMap<u64, u64> {
    let mut counts = BTreeMap::new();
    for l in lines {
        if let Some(sec) = l
            .strip_prefix('[')
            .and_then(|r| r.split('.').next())
            .and_then(|s| s.parse().ok())
        {
            *counts.entry(sec).or_insert(0) += 1;
        }
    }
    counts
}

#[test]
fn rate_limit_never_exceeds_its_budget_and_counts_the_rest() {
    let net = Pair::new();
    let p = port(39600);
    let ps = p.to_string();
    let mut drop = Tracer::start(&["--drop", "--rate-limit", "5", "-p", "udp", "-D", &ps]);
    let mut basic = Tracer::start(&[
        "--basic",
        "-t",
        "kfree_skb",
        "--rate-limit",
        "7",
        "-p",
        "udp",
        "-D",
        &ps,
    ]);
    Background::start(&net.a, &["python3", "-c", UDP_FLOOD, &net.b4, &ps, "3.5", "2000"])
        .finish(Duration::from_secs(20));
    for t in [&drop, &basic] {
        t.signal(libc::SIGINT);
    }
    for (t, limit) in [(&mut drop, 5), (&mut basic, 7)] {
        assert!(t.wait_exit(start_timeout()).success());
        let counts = per_second(&t.lines());
        assert!(counts.len() >= 3, "{counts:?}");
        assert!(counts.values().all(|&n| n <= limit), "over {limit}/s: {counts:?}");
        // A full second of flood used the whole budget.
        assert!(counts.values().any(|&n| n == limit), "{counts:?}");
        let err = t.stderr();
        let held: u64 = err
            .lines()
            .find_map(|l| {
                l.strip_prefix("nettrace: ")?
                    .split(" events held back by --rate-limit")
                    .next()?
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no held-back count in {err}"));
        assert!(held > 1000, "{err}");
    }
}

/// 128 KiB over TCP from `a` to a one-shot iperf3 server on `b`'s port `p`;
/// the client retries while the server starts.
fn tcp_transfer(net: &Pair, p: u16) {
    let ps = p.to_string();
    let _server = Background::start(&net.b, &["iperf3", "-s", "-1", "-B", &net.b4, "-p", &ps]);
    for _ in 0..100 {
        let sent = std::process::Command::new("ip")
            .args([
                "netns", "exec", &net.a, "iperf3", "-c", &net.b4, "-p", &ps, "-n", "128K",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if sent {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("no iperf3 transfer to {}:{p}", net.b4);
}

/// Needs function hooks (the VM tier). TCP segments at `__ip_queue_xmit`
/// have no IP header yet: they are matched by their socket's addresses and
/// followed to the driver, where their life ends, as the C nettrace shows
/// them.
#[test]
fn latency_from_ip_queue_xmit_to_the_driver() {
    if util::skip_without_function_hooks() {
        return;
    }
    let net = Pair::new();
    let p = port(41000);
    let ps = p.to_string();
    let mut t = Tracer::start(&[
        "--latency",
        "-p",
        "tcp",
        "--port",
        &ps,
        "-t",
        "__ip_queue_xmit,dev_hard_start_xmit",
        "--trace-matcher",
        "__ip_queue_xmit",
        "--trace-free",
        "dev_hard_start_xmit",
        "--min-latency",
        "0",
        "-c",
        "4",
    ]);
    tcp_transfer(&net, p);
    assert!(t.wait_exit(start_timeout()).success(), "{}", t.stderr());
    let lines: Vec<String> = t.lines().into_iter().filter(|l| l.starts_with('[')).collect();
    assert_eq!(lines.len(), 4, "{lines:#?}");
    for l in &lines {
        assert!(l.contains("[dev_hard_start_xmit"), "{l}");
        assert!(l.contains("TCP: ") && l.contains(&format!(":{p}")), "{l}");
        assert!(l.contains(&net.a4) && l.contains(&net.b4), "{l}");
        assert!(l.contains(" latency: "), "{l}");
    }
}

/// Needs function hooks (the VM tier). A named hook the kernel lacks
/// (`tcp_data_queue_ofo` is inlined in 6.12 and 6.18) is skipped with one
/// line and the rest traces; with no free among the named hooks, the
/// default frees end the lives.
#[test]
fn latency_skips_a_missing_hook_and_traces_the_rest() {
    if util::skip_without_function_hooks() {
        return;
    }
    let net = Pair::new();
    let p = port(41600);
    let ps = p.to_string();
    let mut t = Tracer::start(&[
        "--latency",
        "-t",
        "tcp_queue_rcv,tcp_data_queue_ofo",
        "--trace-matcher",
        "tcp_queue_rcv,tcp_data_queue_ofo",
        "--latency-free",
        "--min-latency",
        "0",
        "-p",
        "tcp",
        "--port",
        &ps,
        "-c",
        "2",
    ]);
    tcp_transfer(&net, p);
    assert!(t.wait_exit(start_timeout()).success(), "{}", t.stderr());
    let lines: Vec<String> = t.lines().into_iter().filter(|l| l.starts_with('[')).collect();
    assert_eq!(lines.len(), 2, "{lines:#?}\n{}", t.stderr());
    for l in &lines {
        assert!(l.contains("TCP: ") && l.contains(&format!(":{p}")), "{l}");
        assert!(l.contains(" latency: "), "{l}");
    }
    let kernel_has_ofo = std::fs::read_to_string("/proc/kallsyms")
        .is_ok_and(|k| k.lines().any(|l| l.ends_with(" tcp_data_queue_ofo")));
    if !kernel_has_ofo {
        assert!(
            t.stderr()
                .contains("skipping tcp_data_queue_ofo: not in this kernel"),
            "{}",
            t.stderr()
        );
    }
}
