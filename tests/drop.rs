//! Root integration tests for `nettrace --drop`: real programs in the real
//! kernel, real packets between namespaces this test creates, assertions on
//! what the binary prints.

use std::{process::Command, time::Duration};

use crate::util::{self, BIN, Pair, Tracer, sh};

/// Lines that are events (not the begin/end markers).
fn events(t: &Tracer) -> Vec<String> {
    t.lines().into_iter().filter(|l| l.starts_with('[')).collect()
}

#[test]
fn syn_to_closed_port_is_no_socket_with_its_four_tuple() {
    let net = Pair::new();
    let mut t = Tracer::start(&[
        "--drop", "-p", "tcp", "-s", &net.a4, "-d", &net.b4, "-D", "9999", "-c", "1",
    ]);
    net.syn(9999);
    let st = t.wait_exit(util::start_timeout());
    assert!(st.success(), "exit {st}; stderr: {}", t.stderr());
    let ev = events(&t);
    assert_eq!(ev.len(), 1, "{ev:#?}");
    let line = &ev[0];
    assert!(line.contains(&format!("TCP: {}:", net.a4)), "{line}");
    assert!(line.contains(&format!(" -> {}:9999 ", net.b4)), "{line}");
    assert!(line.contains("flags:S,"), "{line}");
    util::assert_drop(line, "NO_SOCKET", "tcp_v4_rcv+0x");
    // The timestamp is seconds.microseconds since boot.
    let ts = &line[1..line.find(']').unwrap()];
    let (s, us) = ts.split_once('.').unwrap();
    assert!(s.parse::<u64>().unwrap() > 0 && us.len() == 6, "{line}");
    assert_eq!(t.lines().last().map(String::as_str), Some("end trace..."));
}

#[test]
fn iptables_drop_is_netfilter_drop() {
    let net = Pair::new();
    net.exec(
        &net.b,
        &[
            "iptables", "-A", "INPUT", "-p", "tcp", "--dport", "9998", "-j", "DROP",
        ],
    );
    let rules = Command::new("ip")
        .args(["netns", "exec", &net.b, "iptables", "-S", "INPUT"])
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&rules.stdout).contains("--dport 9998 -j DROP"),
        "rule not installed"
    );
    let mut t = Tracer::start(&["--drop", "-d", &net.b4, "-D", "9998", "-c", "1"]);
    net.syn(9998);
    assert!(t.wait_exit(util::start_timeout()).success());
    let ev = events(&t);
    assert_eq!(ev.len(), 1, "{ev:#?}");
    assert!(ev[0].contains(&format!("-> {}:9998 ", net.b4)), "{}", ev[0]);
    // Where netfilter frees it depends on the kernel (nf_hook_slow on older
    // ones, nft_do_chain on 6.18): check it is a symbolized location.
    util::assert_drop(&ev[0], "NETFILTER_DROP", "nf");
    let location = ev[0].rsplit(", ").next().unwrap();
    let (func, off) = location.split_once("+0x").unwrap_or_else(|| panic!("{}", ev[0]));
    assert!(
        func.starts_with("nf") && u64::from_str_radix(off, 16).is_ok(),
        "{}",
        ev[0]
    );
}

#[test]
fn filters_keep_out_what_does_not_match() {
    let net = Pair::new();
    let mut t = Tracer::start(&["--drop", "-p", "tcp", "-D", "9997", "-d", &net.b4, "-c", "1"]);
    // Drops that must not show: another port, and UDP to the same port.
    net.syn(9996);
    net.udp(9997);
    std::thread::sleep(Duration::from_millis(300));
    assert!(events(&t).is_empty(), "unfiltered: {:#?}", events(&t));
    net.syn(9997);
    assert!(t.wait_exit(util::start_timeout()).success());
    let ev = events(&t);
    assert_eq!(ev.len(), 1, "{ev:#?}");
    assert!(
        ev[0].contains(":9997 ") && ev[0].starts_with('[') && ev[0].contains("TCP: "),
        "{}",
        ev[0]
    );
}

#[test]
fn source_address_and_netns_filters() {
    let net = Pair::new();
    // Wrong source address: nothing; right namespace inode: the drop in b.
    let ns_b = net.netns_inode(&net.b).to_string();
    let mut wrong = Tracer::start(&["--drop", "-s", "10.231.255.254", "-D", "9995"]);
    let mut right = Tracer::start(&["--drop", "--netns", &ns_b, "-D", "9995", "-c", "1"]);
    net.syn(9995);
    assert!(right.wait_exit(util::start_timeout()).success());
    assert_eq!(events(&right).len(), 1, "{:#?}", right.lines());
    std::thread::sleep(Duration::from_millis(200));
    assert!(events(&wrong).is_empty(), "{:#?}", events(&wrong));
    wrong.signal(libc::SIGINT);
    assert!(wrong.wait_exit(util::start_timeout()).success());
}

#[test]
fn ipv6_syn_is_decoded_and_filtered() {
    let net = Pair::new();
    let mut t = Tracer::start(&["--drop", "-p", "tcp", "--addr", &net.b6, "-P", "9994", "-c", "1"]);
    net.syn6(9994);
    assert!(t.wait_exit(util::start_timeout()).success(), "{}", t.stderr());
    let ev = events(&t);
    assert_eq!(ev.len(), 1, "{ev:#?}");
    assert!(ev[0].contains(&format!("TCP: [{}]:", net.a6)), "{}", ev[0]);
    assert!(ev[0].contains(&format!("-> [{}]:9994 ", net.b6)), "{}", ev[0]);
    util::assert_drop(&ev[0], "NO_SOCKET", "tcp_v6_rcv+0x");
}

#[test]
fn classic_tracepoint_backend_and_drop_stack() {
    let net = Pair::new();
    let mut t = Tracer::start(&[
        "--drop",
        "--backend",
        "tracepoint",
        "--drop-stack",
        "-D",
        "9993",
        "-d",
        &net.b4,
        "-c",
        "1",
    ]);
    net.syn(9993);
    assert!(t.wait_exit(util::start_timeout()).success());
    let lines = t.lines();
    let at = lines
        .iter()
        .position(|l| l.contains(&util::drop_says("NO_SOCKET", "tcp_v4_rcv+0x")))
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert_eq!(lines[at + 1], "Call Stack:");
    // As the C nettrace prints them: `    -> [ffffffff81b2c3d4]consume_skb+0x7c`.
    let frames: Vec<(&str, &str)> = lines[at + 2..]
        .iter()
        .map_while(|l| util::stack_frame(l))
        .collect();
    assert!(!frames.is_empty(), "{lines:#?}");
    // The drop happened in tcp_v4_rcv; it must appear among the frames.
    assert!(
        frames.iter().any(|(_, sym)| sym.starts_with("tcp_v4_rcv+0x")),
        "{lines:#?}"
    );
}

#[test]
fn sigint_detaches_everything_and_ends_trace() {
    let net = Pair::new();
    let mut t = Tracer::start(&["--drop", "-d", &net.b4]);
    let held = util::bpf_objects_of(t.pid());
    for kind in ["prog", "map", "link"] {
        assert!(
            held.iter().any(|(k, _)| *k == kind),
            "no {kind} held while tracing: {held:?}"
        );
    }
    let names: Vec<String> = held
        .iter()
        .filter(|(k, _)| *k == "prog")
        .map(|(_, id)| sh(&["bpftool", "prog", "show", "id", &id.to_string()]))
        .collect();
    assert!(names.iter().any(|n| n.contains("name drop_tp_btf")), "{names:?}");
    // Probe programs are unloaded right after probing.
    assert!(!names.iter().any(|n| n.contains("name probe_")), "{names:?}");
    net.syn(9992);
    t.wait_for(
        &util::drop_says("NO_SOCKET", "tcp_v4_rcv+0x"),
        util::start_timeout(),
    );
    t.signal(libc::SIGINT);
    let st = t.wait_exit(util::start_timeout());
    assert!(st.success(), "exit {st}");
    assert_eq!(t.lines().last().map(String::as_str), Some("end trace..."));
    let left: Vec<_> = held.into_iter().filter(|o| util::bpf_object_exists(*o)).collect();
    assert!(left.is_empty(), "left in the kernel after exit: {left:?}");
}

#[test]
fn sigterm_also_ends_cleanly() {
    let mut t = Tracer::start(&["--drop", "-d", "10.231.255.253"]);
    t.signal(libc::SIGTERM);
    assert!(t.wait_exit(util::start_timeout()).success());
    assert_eq!(t.lines(), ["begin trace...", "end trace..."]);
}

#[test]
fn closed_output_pipe_ends_quietly() {
    use std::io::{BufRead as _, BufReader};
    let net = Pair::new();
    // `nettrace --drop | head -1`: head exits after the first line. The
    // timeout only guards against a hang; it kills (status 137), so it
    // cannot pass for a clean exit.
    let script = format!(
        "timeout -s KILL 120 {BIN} --drop -d {} -D 9991 | head -1; echo \"status=${{PIPESTATUS[0]}}\"",
        net.b4
    );
    let mut child = Command::new("bash")
        .args(["-c", &script])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert_eq!(first, "begin trace...\n");
    // head has exited: the next event hits a closed pipe. Keep making drops
    // until nettrace notices and the script reports its status.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut stdout, &mut rest);
        let _ = tx.send(rest);
    });
    let rest = loop {
        net.syn(9991);
        if let Ok(rest) = rx.recv_timeout(Duration::from_millis(500)) {
            break rest;
        }
    };
    let out = child.wait_with_output().unwrap();
    assert_eq!(
        rest,
        "status=0\n",
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "",
        "a closed pipe must not be reported"
    );
}

#[test]
fn bad_input_exits_2_with_one_line() {
    for args in [
        &["--drop", "-s", "10.0.0.256"][..],
        &["--drop", "-p", "nosuch"],
        &["--drop", "-D", "65536"],
        &["--drop", "--netns", "-1"],
        &["--drop", "--no-such-flag"],
        &["--drop", "--backend", "kprobe"],
        &["--drop", "--netns", "5", "--netns-current"],
        &["--drop", "--basic"],
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("nettrace: "), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn not_root_is_told_what_is_missing() {
    let out = Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            BIN,
            "--drop",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("must run as root") && stderr.contains("CAP_BPF"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1);
}

#[test]
fn debug_reports_kernel_capabilities() {
    let mut t = Tracer::start(&["--drop", "--debug", "-d", "10.231.255.252"]);
    t.signal(libc::SIGINT);
    assert!(t.wait_exit(util::start_timeout()).success());
    let err = t.stderr();
    for row in ["BTF ", "tp_btf ", "tracepoint ", "fentry/fexit ", "kprobe "] {
        let line = err
            .lines()
            .find(|l| l.trim_start().starts_with(row))
            .unwrap_or_else(|| panic!("{row}: {err}"));
        assert!(line.contains(" yes") || line.contains(" no ("), "{line}");
    }
    // What this host is known to offer (DESIGN.md): tracepoints yes.
    assert!(
        err.lines()
            .any(|l| l.trim_start().starts_with("tp_btf") && l.ends_with("yes")),
        "{err}"
    );
    assert!(err.contains("drop monitor attached via"), "{err}");
    let _ = sh(&["true"]);
}

/// Forces the ring buffer to overflow (nettrace is stopped while a flood of
/// drops arrives) and checks that every drop is either printed or counted as
/// lost: nothing disappears silently.
#[test]
fn ring_buffer_overflow_is_counted_exactly() {
    let net = Pair::new();
    let mut t = Tracer::start(&["--drop", "-p", "udp", "-d", &net.b4, "-D", "9990"]);
    t.signal(libc::SIGSTOP);
    // 40k datagrams to a closed port: each is dropped exactly once (at the
    // UDP layer, or earlier if a queue overflows), far more than the 4 MiB
    // ring holds (~25k events).
    let flood = format!(
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\nsent = 0\nfor _ in range(40000):\n    try:\n        s.sendto(b'x', ('{}', 9990)); sent += 1\n    except OSError:\n        pass\nprint(sent)",
        net.b4
    );
    let out = Command::new("ip")
        .args(["netns", "exec", &net.a, "python3", "-c", &flood])
        .output()
        .unwrap();
    let sent: u64 = String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("flood prints its count");
    assert!(sent > 30_000, "flood sent only {sent}");
    std::thread::sleep(Duration::from_millis(500));
    t.signal(libc::SIGCONT);
    // Wait until the backlog is printed: the count stops growing.
    let mut last = 0;
    for _ in 0..100 {
        std::thread::sleep(Duration::from_millis(200));
        let n = events(&t).len();
        if n == last && n > 0 {
            break;
        }
        last = n;
    }
    t.signal(libc::SIGINT);
    assert!(t.wait_exit(util::start_timeout()).success());
    let printed = events(&t)
        .iter()
        .filter(|l| l.contains(&format!("-> {}:9990", net.b4)))
        .count() as u64;
    let err = t.stderr();
    let lost: u64 = err
        .lines()
        .filter_map(|l| {
            l.strip_prefix("nettrace: ")?
                .strip_suffix(" events lost (ring buffer full)")?
                .parse()
                .ok()
        })
        .next_back()
        .unwrap_or_else(|| panic!("no lost-event total on stderr: {err}"));
    assert!(lost > 0, "the flood should have overflowed the ring: {err}");
    assert_eq!(
        printed + lost,
        sent,
        "printed {printed} + lost {lost} != sent {sent}\n{err}"
    );
    assert!(
        err.contains("events lost in the last second"),
        "growth not reported while running: {err}"
    );
}

#[test]
fn json_records_parse_and_carry_what_the_text_line_says() {
    let net = Pair::new();
    let mut t = Tracer::start(&[
        "--drop",
        "--json",
        "--drop-stack",
        "-d",
        &net.b4,
        "-D",
        "9958",
        "-c",
        "1",
    ]);
    net.syn(9958);
    assert!(t.wait_exit(util::start_timeout()).success(), "{}", t.stderr());
    let records = t.json_records();
    assert_eq!(records.first().unwrap()["type"], "begin");
    assert_eq!(records.last().unwrap()["type"], "end");
    assert!(records.iter().all(|r| r["v"] == 1), "{records:#?}");
    let drop = records
        .iter()
        .find(|r| r["type"] == "drop")
        .expect("a drop record");
    if util::drop_reasons_reported() {
        assert_eq!(drop["reason"], "NO_SOCKET");
    } else {
        assert!(drop.get("reason").is_none(), "{drop}");
    }
    assert_eq!(drop["proto"], "tcp");
    assert_eq!(drop["flags"], "S");
    assert_eq!(drop["saddr"], net.a4.as_str());
    assert_eq!(drop["daddr"], net.b4.as_str());
    assert_eq!(drop["dport"], 9958);
    assert_eq!(drop["netns"], net.netns_inode(&net.b));
    assert!(
        drop["location"].as_str().unwrap().starts_with("tcp_v4_rcv+0x"),
        "{drop}"
    );
    assert!(drop["ts_ns"].as_u64().unwrap() > 0);
    // Each frame keeps its address and its symbol.
    let stack = drop["stack"].as_array().expect("a stack");
    assert!(
        stack.iter().all(|f| f["addr"]
            .as_str()
            .is_some_and(|a| a.len() == 16 && u64::from_str_radix(a, 16).is_ok())),
        "{drop}"
    );
    assert!(
        stack
            .iter()
            .any(|f| f["sym"].as_str().is_some_and(|s| s.starts_with("tcp_v4_rcv+0x"))),
        "{drop}"
    );
}

/// The NO_SOCKET drops at tcp_v4_rcv counted in a scrape.
fn drop_count(metrics: &str) -> u64 {
    assert!(
        metrics.trim_end().ends_with("# EOF"),
        "not a complete exposition: {metrics}"
    );
    metrics
        .lines()
        .filter(|l| {
            l.starts_with(&format!(
                "nettrace_packets_dropped_total{{reason=\"{}\"",
                util::metric_reason("NO_SOCKET")
            )) && l.contains("tcp_v4_rcv+0x")
        })
        .filter_map(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
        .sum()
}

#[test]
fn metrics_endpoint_counts_drops_as_they_happen() {
    let net = Pair::new();
    let port = 20000 + (std::process::id() % 20000) as u16;
    let addr = format!("127.0.0.1:{port}");
    let mut t = Tracer::start(&["--drop", "--metrics", &addr, "-d", &net.b4, "-D", "9957"]);
    let first = util::scrape(port);
    assert!(first.starts_with("HTTP/1.1 200 OK"), "{first}");
    assert!(first.contains("application/openmetrics-text"), "{first}");
    assert_eq!(drop_count(&first), 0, "{first}");
    net.syn(9957);
    t.wait_for(":9957", util::start_timeout());
    assert_eq!(drop_count(&util::scrape(port)), 1);
    net.syn(9957);
    net.syn(9957);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while drop_count(&util::scrape(port)) < 3 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let last = util::scrape(port);
    assert_eq!(drop_count(&last), 3, "{last}");
    assert!(
        last.contains("nettrace_events_total{hook=\"kfree_skb\"} 3"),
        "{last}"
    );
    t.signal(libc::SIGINT);
    assert!(t.wait_exit(util::start_timeout()).success());
    // The endpoint closes with the session.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_err());
}
