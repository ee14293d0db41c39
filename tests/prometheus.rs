//! A real Prometheus server (Debian's `prometheus`) scrapes a running
//! `nettrace --monitor --metrics` every second, and the test reads the
//! series back through Prometheus's HTTP API: what a fleet's dashboards and
//! alerts would see, not just our own exposition text.
//!
//! The traffic is real and stays inside a namespace pair the test creates:
//! SYNs to a closed port (drops with NO_SOCKET, resets sent with NO_SOCKET)
//! and a connection whose SYNs an iptables rule drops (NETFILTER_DROP, and
//! the SYN's retransmits). `--monitor` runs unfiltered, as on a fleet node
//! (its retransmit events carry no packet headers yet, so an address filter
//! would keep them out): other traffic of the machine may add to the
//! counters. So each value is checked from both sides: at least what the
//! test caused, at most what nettrace printed (every counted event is also
//! printed).

use std::process::{Command, Stdio};

use crate::util::{self, Pair, Prometheus, Tracer, free_port, http_get, start_timeout};

/// Removes an iptables rule from a namespace on drop (the namespace goes
/// too, but not before the test's end).
struct Rule<'a> {
    ns: &'a str,
    rule: Vec<String>,
}

impl<'a> Rule<'a> {
    fn insert(ns: &'a str, rule: &[&str]) -> Self {
        let r = Rule {
            ns,
            rule: rule.iter().map(ToString::to_string).collect(),
        };
        r.iptables("-I");
        r
    }

    fn iptables(&self, op: &str) {
        let mut args = vec!["ip", "netns", "exec", self.ns, "iptables", op];
        args.extend(self.rule.iter().map(String::as_str));
        util::sh(&args);
    }
}

impl Drop for Rule<'_> {
    fn drop(&mut self) {
        let mut args = vec!["netns", "exec", self.ns, "iptables", "-D"];
        args.extend(self.rule.iter().map(String::as_str));
        let _ = Command::new("ip").args(args).stderr(Stdio::null()).status();
    }
}

/// How many printed lines of hook `hook` contain `text`.
fn printed(t: &Tracer, hook: &str, text: &str) -> f64 {
    t.lines()
        .iter()
        .filter(|l| {
            (l.contains(&format!("[{hook} ")) || l.contains(&format!("[{hook}]"))) && l.contains(text)
        })
        .count() as f64
}

#[test]
fn prometheus_scrapes_drops_retransmits_and_resets() {
    if !util::have_tool("prometheus", "prometheus") {
        return;
    }
    let net = Pair::new();
    let metrics_port = free_port();
    let target = format!("127.0.0.1:{metrics_port}");
    let mut t = Tracer::start(&["--monitor", "--metrics", &target]);
    let prom = Prometheus::scraping(&target);
    // The target is scraped and healthy before the traffic starts.
    prom.query_until(r#"up{job="nettrace"}"#, |r| r.values().any(|&v| v == 1.0));
    prom.query_until("nettrace_attached", |r| r.values().any(|&v| v == 1.0));

    let (closed, filtered) = (free_port(), free_port());
    for _ in 0..3 {
        net.syn(closed);
    }
    let _rule = Rule::insert(
        &net.b,
        &[
            "INPUT",
            "-p",
            "tcp",
            "--dport",
            &filtered.to_string(),
            "-j",
            "DROP",
        ],
    );
    // The SYN and its retransmits (after 1 s and 3 s) are dropped.
    net.exec(&net.a, &["nc", "-z", "-w", "4", &net.b4, &filtered.to_string()]);

    let no_socket = util::metric_reason("NO_SOCKET");
    let netfilter = util::metric_reason("NETFILTER_DROP");
    let drops = prom.query_until("sum by (reason) (nettrace_packets_dropped_total)", |r| {
        r.get(&format!("reason={no_socket}")).is_some_and(|&v| v >= 3.0)
            && r.get(&format!("reason={netfilter}")).is_some_and(|&v| v >= 3.0)
    });
    let retransmits = prom.query_until("nettrace_tcp_retransmits_total", |r| {
        r.values().any(|&v| v >= 2.0)
    });
    let resets = prom.query_until("sum by (reason) (nettrace_tcp_resets_sent_total)", |r| {
        r.values().sum::<f64>() >= 3.0
    });
    // The drop counter keeps its code location as a label, and the series
    // carry the scrape's job and instance.
    let by_location = prom.query(&format!(
        r#"nettrace_packets_dropped_total{{reason="{no_socket}",location=~"tcp_v4_rcv.*",job="nettrace",instance="{target}"}}"#
    ));
    assert!(by_location.values().sum::<f64>() >= 3.0, "{by_location:?}");
    let rate = prom.query("sum by (reason) (rate(nettrace_packets_dropped_total[1m]))");
    eprintln!("prometheus: drops {drops:?}\nretransmits {retransmits:?}\nresets {resets:?}\nrate {rate:?}");

    // At most what nettrace printed: the counters count the printed events,
    // nothing else.
    t.signal(libc::SIGINT);
    assert!(t.wait_exit(start_timeout()).success(), "{}", t.stderr());
    let reason_text = |r: &str| {
        if util::drop_reasons_reported() {
            format!("reason: {r}")
        } else {
            String::new()
        }
    };
    let printed_no_socket = printed(&t, "kfree_skb", &reason_text("NO_SOCKET"));
    let printed_netfilter = printed(&t, "kfree_skb", &reason_text("NETFILTER_DROP"));
    assert!(
        drops[&format!("reason={no_socket}")] <= printed_no_socket,
        "{drops:?}"
    );
    assert!(
        drops[&format!("reason={netfilter}")] <= printed_netfilter,
        "{drops:?}"
    );
    let printed_retransmits = printed(&t, "tcp_retransmit_skb", "");
    assert!(
        retransmits.values().sum::<f64>() <= printed_retransmits,
        "{retransmits:?} > {printed_retransmits}"
    );
    let printed_resets = printed(&t, "tcp_send_reset", "reset reason");
    assert!(resets.values().sum::<f64>() <= printed_resets, "{resets:?}");
    if util::drop_reasons_reported() {
        assert!(resets.contains_key("reason=NO_SOCKET"), "{resets:?}");
    }
    // The rate over a minute is positive for both reasons just caused.
    for reason in [no_socket, netfilter] {
        assert!(
            rate.get(&format!("reason={reason}")).is_some_and(|&v| v > 0.0),
            "{rate:?}"
        );
    }
}

#[test]
fn metrics_endpoint_answers_kubernetes_probes() {
    let metrics_port = free_port();
    let addr = format!("127.0.0.1:{metrics_port}");
    let mut t = Tracer::start(&["--drop", "--metrics", &addr, "-P", "1"]);
    // `begin trace...` is printed once attached: ready from then on.
    assert_eq!(http_get(metrics_port, "/healthz"), Some((200, "ok\n".into())));
    assert_eq!(http_get(metrics_port, "/readyz"), Some((200, "tracing\n".into())));
    assert_eq!(http_get(metrics_port, "/nope").map(|r| r.0), Some(404));
    let (status, body) = http_get(metrics_port, "/metrics").expect("metrics");
    assert_eq!(status, 200);
    assert!(body.contains("nettrace_attached 1"), "{body}");
    t.signal(libc::SIGINT);
    assert!(t.wait_exit(start_timeout()).success());
}
