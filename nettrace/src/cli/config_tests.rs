//! Flag validation tests for `cli::config`.

use std::os::unix::fs::MetadataExt as _;

use clap::Parser as _;
use nettrace_common::{ethertype, filter::family, ipproto};

use super::{
    filter::{parse_len_range, parse_proto, parse_tcp_flags},
    *,
};

fn config(argv: &[&str]) -> Result<Config, UsageError> {
    let mut full = vec!["nettrace"];
    full.extend_from_slice(argv);
    Config::from_args(&Args::try_parse_from(full).expect("clap accepts the syntax"))
}

#[test]
fn drop_with_filters() {
    let c = config(&["--drop", "-s", "10.0.0.1", "-p", "tcp", "-D", "443", "-c", "3"]).unwrap();
    assert_eq!(
        c.mode,
        Mode::Drop {
            stack: false,
            detail: false
        }
    );
    assert_eq!(c.filter.saddr.family, family::V4);
    assert_eq!(&c.filter.saddr.addr[..4], &[10, 0, 0, 1]);
    assert_eq!(c.filter.saddr.addr[4..], [0; 12]);
    assert_eq!(c.filter.dport, 443);
    assert_eq!((c.filter.l3_proto, c.filter.l4_proto), (0, ipproto::TCP));
    assert_eq!(c.count, Some(3));
}

#[test]
fn ipv6_address() {
    let c = config(&["--drop", "--addr", "fd00::2"]).unwrap();
    assert_eq!(c.filter.addr.family, family::V6);
    assert_eq!(c.filter.addr.addr[0], 0xfd);
    assert_eq!(c.filter.addr.addr[15], 2);
}

#[test]
fn protocols() {
    assert_eq!(parse_proto("icmp").unwrap(), (ethertype::IPV4, ipproto::ICMP));
    assert_eq!(parse_proto("ICMP6").unwrap(), (ethertype::IPV6, ipproto::ICMPV6));
    assert_eq!(parse_proto("arp").unwrap(), (ethertype::ARP, 0));
    assert!(
        parse_proto("sctpx")
            .unwrap_err()
            .0
            .contains("unknown protocol 'sctpx'")
    );
}

#[test]
fn bad_input_is_one_line() {
    for (argv, needle) in [
        (&["--drop", "-s", "10.0.0.300"][..], "not an IPv4 or IPv6 address"),
        (&["--drop", "-D", "70000"], "out of range"),
        (&["--drop", "-D", "0"], "out of range"),
        (&["--drop", "-P", "http"], "not a port number"),
        (&["--drop", "-p", "foo"], "unknown protocol"),
        (&["--drop", "-s", "10.0.0.1", "-d", "::1"], "mix IPv4 and IPv6"),
        (&["--drop", "-p", "icmp6", "-s", "10.0.0.1"], "does not match"),
        (&["--drop", "-p", "icmp", "-D", "80"], "TCP or UDP"),
        (&["--drop", "-c", "0"], "--count"),
        (&["--drop", "--pid", "x"], "--pid"),
        (&["--drop-stack"], "needs --drop"),
        (&["--drop", "--basic"], "cannot be combined with --drop"),
        (&["--drop", "--backend", "kprobe"], "--backend must be"),
        (&["--basic", "--latency-show"], "drop --basic"),
        (&["--min-latency", "x"], "--min-latency"),
        (&["--pkt-len", "5-1"], "is empty"),
        (&["--pkt-len", "abc"], "--pkt-len"),
        (&["--drop", "--pod", "a/b/c"], "NAMESPACE/NAME"),
        (&["--drop", "--pod", "ns/"], "NAMESPACE/NAME"),
        (&["--drop", "--container", ""], "a container name or id"),
        (&["--drop", "--wait-container"], "needs --container or --pod"),
        (
            &["--drop", "--container", "web", "--netns", "4026531840"],
            "both pick namespaces",
        ),
        (
            &["--drop", "--container", "web", "--netns-current"],
            "both pick namespaces",
        ),
        (&["--drop", "--metrics-labels", "pod"], "needs --metrics"),
        (
            &["--drop", "--metrics", "9464", "--metrics-labels", "node"],
            "'node' is not a label",
        ),
        (&["--tcp-flags", "SX"], "'X' is not one of"),
        (&["--diag-quiet"], "need --diag"),
        (&["--hooks"], "need --diag"),
        (&["--metrics", "nohost"], "--metrics"),
        (&["--diag", "--basic"], "--basic"),
        (&["--drop", "--diag"], "cannot be combined with --drop"),
        (&["-p", "udp", "--tcp-flags", "S"], "needs TCP"),
        (
            &["--btf-path", "/nonexistent/btf"],
            "--btf-path /nonexistent/btf: cannot read",
        ),
        (&["--drop", "--btf-path", "/proc"], "not a regular file"),
        (&["--sock", "--btf-path", "/nonexistent/btf"], "cannot read"),
    ] {
        let err = config(argv).expect_err(needle);
        assert!(err.0.contains(needle), "{argv:?}: {err}");
        assert!(!err.0.contains('\n'), "{argv:?}: multi-line error");
    }
}

#[test]
fn lifecycle_is_the_default_mode() {
    let c = config(&[
        "-p",
        "icmp",
        "-t",
        "ip,life",
        "--latency-show",
        "--min-latency",
        "50",
    ])
    .unwrap();
    let Mode::Lifecycle(l) = c.mode else {
        panic!("{:?}", c.mode)
    };
    assert_eq!(l.trace.as_deref(), Some("ip,life"));
    assert!(l.latency_show);
    assert_eq!(l.min_latency_ns, 50_000);
}

#[test]
fn length_ranges_and_tcp_flags() {
    assert_eq!(parse_len_range("100-1500").unwrap(), (100, 1500));
    assert_eq!(parse_len_range("64").unwrap(), (64, 64));
    assert_eq!(parse_tcp_flags("SA").unwrap(), 0x12);
    assert_eq!(parse_tcp_flags("r").unwrap(), 0x04);
    let c = config(&["--pkt-len", "60-80", "--tcp-flags", "S"]).unwrap();
    assert_eq!(
        (c.filter.len_min, c.filter.len_max, c.filter.tcp_flags),
        (60, 80, 0x02)
    );
}

#[test]
fn sock_mode_filters_and_backends() {
    let c = config(&["--sock", "-p", "tcp", "--port", "5201"]).unwrap();
    assert_eq!(c.mode, Mode::Sock(Sock::default()));
    assert_eq!((c.filter.port, c.filter.l4_proto), (5201, ipproto::TCP));
    for b in ["auto", "tracepoint", "fentry", "kprobe"] {
        assert_eq!(
            config(&["--sock", "--backend", b]).unwrap().mode,
            Mode::Sock(Sock::default())
        );
    }
    for (argv, needle) in [
        (&["--sock", "--backend", "tp-btf"][..], "--backend must be"),
        (&["--sock", "--tcp-monitor"], "different modes"),
        (&["--sock", "-p", "udp"], "TCP sockets only"),
        (&["--sock", "--basic"], "cannot be combined with --sock"),
    ] {
        let err = config(argv).expect_err(needle);
        assert!(err.0.contains(needle), "{argv:?}: {err}");
    }
}

/// `-t` and the RTT filters with `--sock`.
#[test]
fn sock_hooks_and_rtt_filters() {
    let sock = |argv: &[&str]| match config(argv).unwrap().mode {
        Mode::Sock(s) => s,
        m => panic!("{m:?}"),
    };
    // The C nettrace's way: -t names the hook, the filter in ms.
    let s = sock(&["--sock", "-t", "tcp_ack_update_rtt", "--filter-srtt", "10"]);
    assert_eq!(s.hooks, Some(vec!["tcp_ack_update_rtt"]));
    assert_eq!(
        s.rtt,
        Some(RttFilter {
            min_srtt_us: 10_000,
            min_rtt_min_us: 0
        })
    );
    // The filters alone select the hook their samples come from; with
    // other hooks named, they add it.
    let s = sock(&["--sock", "--filter-minrtt", "0"]);
    assert_eq!(s.hooks, Some(vec!["tcp_ack_update_rtt"]));
    assert_eq!(s.rtt, Some(RttFilter::default()));
    let s = sock(&["--sock", "-t", "tcp_probe", "--filter-srtt", "1"]);
    assert_eq!(s.hooks, Some(vec!["tcp_probe", "tcp_ack_update_rtt"]));
    let s = sock(&["--sock", "-t", "tcp_probe,inet_listen"]);
    assert_eq!((s.hooks, s.rtt), (Some(vec!["tcp_probe", "inet_listen"]), None));
    assert_eq!(sock(&["--sock", "-t", "all"]).hooks.map(|h| h.len()), Some(16));
    for (argv, needle) in [
        (
            &["--sock", "--filter-srtt", "-1"][..],
            "--filter-srtt: '-1' is not a number",
        ),
        (&["--sock", "--filter-minrtt", "x"], "--filter-minrtt: 'x'"),
        (&["--sock", "--filter-srtt", "4294968"], "--filter-srtt"),
        (&["--sock", "-t", "ip_rcv"], "'ip_rcv' is not a --sock hook"),
        (
            &["--sock", "--filter-srtt", "5", "--backend", "tracepoint"],
            "kernel function",
        ),
        (
            &["--sock", "-t", "tcp_close", "--backend", "tracepoint"],
            "hooks none",
        ),
        (&["--filter-srtt", "5"], "need --rtt, --rtt-detail or --sock"),
        (
            &["--tcp-monitor", "-t", "tcp_probe"],
            "cannot be combined with --tcp-monitor",
        ),
        (
            &["--sock", "--trace-stack", "tcp_close"],
            "cannot be combined with --sock",
        ),
    ] {
        let err = config(argv).expect_err(needle);
        assert!(err.0.contains(needle), "{argv:?}: {err}");
    }
}

#[test]
fn netns_current_reads_own_namespace() {
    let c = config(&["--drop", "--netns-current"]).unwrap();
    let ino = std::fs::metadata("/proc/self/ns/net").unwrap().ino() as u32;
    assert_eq!(c.filter.netns, ino);
    assert_ne!(ino, 0);
}

#[test]
fn kernel_options() {
    let c = config(&[
        "--drop",
        "--force",
        "--libbpf-debug",
        "--btf-path",
        "/proc/self/status",
    ])
    .unwrap();
    assert_eq!(
        c.kernel,
        KernelOpts {
            force: true,
            btf_path: Some("/proc/self/status".into()),
            libbpf_debug: true,
        }
    );
    assert_eq!(config(&["--drop"]).unwrap().kernel, KernelOpts::default());
}

#[test]
fn pcap_file_stdout_and_snaplen() {
    let c = config(&["--drop", "-w", "d.pcapng"]).unwrap();
    assert_eq!(
        c.pcap,
        Some(Pcap {
            to: PcapTo::File("d.pcapng".into()),
            snaplen: 256,
            l2: false,
        })
    );
    let c = config(&["-p", "icmp", "--pcap", "-", "--snaplen", "1500"]).unwrap();
    assert_eq!(
        c.pcap,
        Some(Pcap {
            to: PcapTo::Stdout,
            snaplen: 1500,
            l2: false,
        })
    );
    assert_eq!(
        config(&["--latency", "-w", "l.pcapng"])
            .unwrap()
            .pcap
            .unwrap()
            .snaplen,
        256
    );
    assert_eq!(
        config(&["--monitor", "-w", "m.pcapng"])
            .unwrap()
            .pcap
            .unwrap()
            .snaplen,
        256
    );
    assert_eq!(config(&["--drop"]).unwrap().pcap, None);
    // `--pcap-l2`: the programs get the flag in the snap length.
    let l2 = config(&["--drop", "-w", "d.pcapng", "--pcap-l2", "--snaplen", "100"])
        .unwrap()
        .pcap
        .unwrap();
    assert!(l2.l2);
    assert_eq!(l2.kernel_snaplen(), 100 | nettrace_common::snap::SNAP_L2);
    assert_eq!(c.pcap.unwrap().kernel_snaplen(), 1500);
}

#[test]
fn pcap_refused_where_no_packets_are_reported_and_bad_snaplens() {
    for (argv, says) in [
        (&["--sock", "-w", "f"][..], "-w/--pcap: --sock reports no packets"),
        (&["--conn", "-w", "f"][..], "-w/--pcap: --conn reports no packets"),
        (&["--rtt", "-w", "f"][..], "-w/--pcap: --rtt reports no packets"),
        (
            &["--rt", "-P", "80", "-w", "f"][..],
            "-w/--pcap: --rt reports no packets",
        ),
        (
            &["--latency-summary", "-w", "f"][..],
            "-w/--pcap: --latency-summary reports no packets",
        ),
        (
            &["--drop", "--snaplen", "64"][..],
            "--snaplen needs -w/--pcap FILE",
        ),
        (&["--drop", "--pcap-l2"][..], "--pcap-l2 needs -w/--pcap FILE"),
        (
            &["--drop", "-w", "f", "--snaplen", "0"][..],
            "--snaplen: '0' is not a number of bytes from 1 to 1500",
        ),
        (
            &["--drop", "-w", "f", "--snaplen", "2000"][..],
            "--snaplen: '2000' is not",
        ),
        (
            &["--drop", "-w", "f", "--snaplen", "-1"][..],
            "--snaplen: '-1' is not",
        ),
    ] {
        let e = config(argv).unwrap_err().0;
        assert!(e.starts_with(says), "{argv:?}: {e}");
        assert!(!e.contains('\n'));
    }
}

#[test]
fn expression_words_and_flags_mix_in_any_order() {
    // As with tcpdump, flags may follow or interrupt the expression; its
    // words are joined with spaces.
    for argv in [
        &["--drop", "tcp", "port", "443", "-c", "2"][..],
        &["tcp", "port", "443", "--drop", "-c", "2"],
        &["tcp", "-c", "2", "port 443", "--drop"],
    ] {
        let c = config(argv).unwrap();
        assert_eq!(
            c.mode,
            Mode::Drop {
                stack: false,
                detail: false
            },
            "{argv:?}"
        );
        assert_eq!(c.count, Some(2), "{argv:?}");
        let e = c.expression.expect("an expression");
        assert_eq!(e.text, "tcp port 443", "{argv:?}");
        assert_eq!(c.filter.expr_bytes, e.bytes);
    }
    assert!(config(&[]).unwrap().expression.is_none());
}

#[test]
fn containers_select_namespaces_in_the_kernel() {
    let c = config(&[
        "--drop",
        "--container",
        "web-1",
        "--pod",
        "default/api",
        "--detail",
    ])
    .unwrap();
    assert_eq!(c.filter.netns_set, 1);
    assert_eq!(c.filter.netns, 0);
    let s = c.containers.expect("a selection");
    assert_eq!(s.selectors.len(), 2);
    assert!(!s.wait);
    assert_eq!(
        c.mode,
        Mode::Drop {
            stack: false,
            detail: true
        }
    );
    let plain = config(&["--drop"]).unwrap();
    assert_eq!((plain.filter.netns_set, plain.containers), (0, None));
}

/// `--rt`: the server's port is a server socket's own port and a client
/// socket's peer's; which side comes from `--client` or `-D` alone.
#[test]
fn rt_sides_and_their_ports() {
    let side = |argv: &[&str]| {
        let c = config(argv).unwrap();
        let Mode::Rt(rt) = c.mode else {
            panic!("{argv:?}: not --rt")
        };
        (rt.client, c.filter.sport, c.filter.dport, c.filter.port)
    };
    assert_eq!(side(&["--rt", "-P", "80"]), (false, 80, 0, 0));
    assert_eq!(side(&["--rt", "-S", "80"]), (false, 80, 0, 0));
    assert_eq!(side(&["--rt", "-D", "80"]), (true, 0, 80, 0));
    assert_eq!(side(&["--rt", "--client", "-P", "80"]), (true, 0, 80, 0));
    // -D with the server's port given: a filter on the clients' ports.
    assert_eq!(side(&["--rt", "-P", "80", "-D", "5000"]), (false, 80, 5000, 0));
    for (argv, says) in [
        (
            &["--rt", "--client"][..],
            "--rt --client needs the server's port: -P PORT or -D PORT",
        ),
        (&["--rt", "--client", "-S", "80"][..], "not -S"),
        (&["--client", "-P", "80"][..], "--client needs --rt"),
        (
            &["--rt", "-P", "80", "--backend", "tp-btf"][..],
            "--backend must be auto, tracepoint, fentry or kprobe",
        ),
    ] {
        let e = config(argv).unwrap_err().to_string();
        assert!(e.contains(says), "{argv:?}: {e}");
    }
    assert!(config(&["--rt", "-P", "80", "--backend", "kprobe"]).is_ok());
}

/// `--rt-format tcprt` is for `--rt`'s lines: not alone, not with JSON or
/// the histograms.
#[test]
fn rt_format_tcprt() {
    let tcprt = |argv: &[&str]| match config(argv).unwrap().mode {
        Mode::Rt(rt) => rt.tcprt,
        m => panic!("{argv:?}: {m:?}"),
    };
    assert!(tcprt(&["--rt", "-P", "80", "--rt-format", "tcprt"]));
    assert!(!tcprt(&["--rt", "-P", "80", "--rt-format", "text"]));
    assert!(!tcprt(&["--rt", "-P", "80"]));
    for (argv, says) in [
        (
            &["--rt-format", "tcprt", "-P", "80"][..],
            "--rt-format needs --rt",
        ),
        (
            &["--rt", "-P", "80", "--rt-format", "tcprt", "--json"][..],
            "cannot be combined with --json",
        ),
        (
            &["--rt", "-P", "80", "--rt-format", "tcprt", "--rt-summary"][..],
            "cannot be combined with --rt-summary",
        ),
    ] {
        let e = config(argv).unwrap_err().to_string();
        assert!(e.contains(says), "{argv:?}: {e}");
    }
}
