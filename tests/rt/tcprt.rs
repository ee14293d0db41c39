//! `--rt --rt-format tcprt`: the lines parsed back as a tcprt log parser
//! would, from the fields tcprt's documentation lists (cloud-kernel's
//! `Documentation/networking/tcprt.rst`, section 5), and checked against
//! the test's known traffic.

use std::{
    io::Write as _,
    net::SocketAddr,
    process::Command,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use super::{forced_kprobe, in_vm, port, serve, slack, wait_lines};
use crate::util::{
    BIN, Tracer, start_timeout,
    tasks::{client, request_len, requests},
};

/// One tcprt log line, split into its documented fields.
#[derive(Debug)]
struct Record {
    kind: char,
    start_s: u64,
    peer: SocketAddr,
    local: SocketAddr,
    /// The fields after the 8 common ones, in tcprt's order.
    values: Vec<u64>,
}

/// How many fields follow the 8 common ones, per record type.
fn specific_fields(kind: char) -> usize {
    match kind {
        'R' | 'P' | 'W' => 10,
        'N' => 5,
        'E' => 6,
        _ => panic!("record type {kind}"),
    }
}

/// `V6 X <s> <us> <peer ip:port> <local ip:port> <n> ... <n> ` (each
/// field followed by one space).
fn parse(line: &str) -> Record {
    let body = line
        .strip_suffix(' ')
        .unwrap_or_else(|| panic!("no trailing space: {line:?}"));
    let f: Vec<&str> = body.split(' ').collect();
    assert_eq!(f[0], "V6", "{line}");
    let kind = f[1].chars().next().unwrap();
    assert_eq!(f[1].len(), 1, "{line}");
    assert_eq!(f.len(), 6 + specific_fields(kind), "field count: {line}");
    let num = |s: &str| -> u64 { s.parse().unwrap_or_else(|_| panic!("{s} in {line}")) };
    let us = num(f[3]);
    assert!(us < 1_000_000, "{line}");
    Record {
        kind,
        start_s: num(f[2]),
        peer: f[4].parse().unwrap_or_else(|_| panic!("{} in {line}", f[4])),
        local: f[5].parse().unwrap_or_else(|_| panic!("{} in {line}", f[5])),
        values: f[6..].iter().map(|s| num(s)).collect(),
    }
}

/// The tcprt records in a tracer's output (its other lines, `begin
/// trace...` and the statistics table, do not start with `V6 `).
fn records(t: &Tracer) -> Vec<Record> {
    t.lines()
        .iter()
        .filter(|l| l.starts_with("V6 "))
        .map(|l| parse(l))
        .collect()
}

fn now_s() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_secs()
}

/// Server side (R, then E; N and W when a connection closes mid-task) and
/// client side (P, then E) of the same traffic.
#[test]
fn tcprt_lines_parse_back_to_the_traffic() {
    let (net, p) = (crate::util::Pair::new(), port(43000));
    let ps = p.to_string();
    let begin = now_s();
    let server = Tracer::start(&["--rt", "-P", &ps, "--rt-format", "tcprt"]);
    let clients = Tracer::start(&["--rt", "-D", &ps, "--rt-format", "tcprt"]);
    let (addr, _server) = serve(&net, &net.b4, p, 50);
    client(&net.a, addr, |c| requests(c, 3, 3000));
    let ends = wait_lines(&server, "V6 E ", 1);
    assert_eq!(ends.len(), 1, "{:#?}\n{}", server.lines(), server.stderr());
    wait_lines(&clients, "V6 E ", 1);
    let req = request_len(3000) as u64;

    let r = records(&server);
    let kinds: String = r.iter().map(|r| r.kind).collect();
    assert_eq!(kinds, "RRRE", "{r:#?}");
    for (i, t) in r[..3].iter().enumerate() {
        assert!((begin..=now_s()).contains(&t.start_s), "{t:?}");
        assert_eq!(t.local, addr, "{t:?}");
        assert_eq!(t.peer.ip().to_string(), net.a4, "{t:?}");
        let [
            sent,
            total,
            mrtt,
            retrans,
            task,
            service,
            recv,
            received,
            _reorder,
            mss,
        ] = t.values[..]
        else {
            unreachable!()
        };
        assert_eq!((sent, received, task), (3000, req, i as u64 + 1), "{t:?}");
        // The veth's MTU is 1500: 1460 less TCP options.
        assert!((1400..=1460).contains(&mss), "{t:?}");
        // The server sleeps 50 ms: service delay, in µs (0, unknown, for
        // a request the kernel did not let kprobes see: `rt_flag::UNSEEN`).
        assert!(
            (49_500..=(slack(80.0) * 1000.0) as u64).contains(&service) || (service == 0 && forced_kprobe()),
            "{t:?}"
        );
        assert!(recv < (slack(10.0) * 1000.0) as u64, "{t:?}");
        assert!(total >= service + recv && total < service + (slack(10.0) * 1000.0) as u64);
        assert!(mrtt > 0 && mrtt < (slack(10.0) * 1000.0) as u64, "{t:?}");
        assert!(in_vm() || retrans == 0, "{t:?}");
    }
    let e = &r[3];
    assert_eq!((e.local, e.peer), (r[0].local, r[0].peer), "{e:?}");
    // Last task, sent, unacked, received, retransmits, min RTT.
    assert_eq!(e.values[..4], [3, 9000, 0, 3 * req], "{e:?}");
    assert!(e.values[5] > 0, "{e:?}");

    let c = records(&clients);
    let kinds: String = c.iter().map(|r| r.kind).collect();
    assert_eq!(kinds, "PPPE", "{c:#?}");
    for (i, t) in c[..3].iter().enumerate() {
        // This host is the client: the server is the peer.
        assert_eq!(t.peer, addr, "{t:?}");
        assert_eq!(t.local.ip().to_string(), net.a4, "{t:?}");
        let [sent, total, _mrtt, _retrans, task, service, receive, size, ..] = t.values[..] else {
            unreachable!()
        };
        assert_eq!((sent, size, task), (req, 3000, i as u64 + 1), "{t:?}");
        let low = if in_vm() { 40_000 } else { 48_500 };
        assert!((low..=(slack(80.0) * 1000.0) as u64).contains(&service), "{t:?}");
        assert!(total >= service + receive, "{t:?}");
        assert!(receive < (slack(10.0) * 1000.0) as u64, "{t:?}");
    }
    assert_eq!(c[3].values[..4], [3, 3 * req, 0, 9000], "{:?}", c[3]);

    // N: a request never answered, then the client leaves.
    client(&net.a, addr, |mut c| {
        c.write_all(b"0 request\n").unwrap();
        std::thread::sleep(Duration::from_millis(100));
    });
    // W: 8 MB asked for, the client leaves without reading.
    client(&net.a, addr, |mut c| {
        c.write_all(b"8000000 request\n").unwrap();
        std::thread::sleep(Duration::from_millis(300));
    });
    wait_lines(&server, "V6 E ", 3);
    let r = records(&server);
    let kinds: String = r.iter().map(|r| r.kind).collect();
    assert_eq!(kinds, "RRRENEWE", "{r:#?}");
    let n = &r[4];
    // Last task, time (the request came 100 ms before the client left),
    // received, reorder, mss.
    let [task, time, received, reorder, mss] = n.values[..] else {
        unreachable!()
    };
    assert_eq!((task, received, reorder), (1, request_len(0) as u64, 0), "{n:?}");
    assert!((99_000..(slack(300.0) * 1000.0) as u64).contains(&time), "{n:?}");
    assert!((1400..=1460).contains(&mss), "{n:?}");
    let w = &r[6];
    let [sent, time, _, _, task, service, _, unacked, ..] = w.values[..] else {
        unreachable!()
    };
    assert_eq!(task, 1, "{w:?}");
    assert!(unacked > 0 && unacked <= sent, "{w:?}");
    assert!(time >= service, "{w:?}");
    assert!(service >= 49_500 || (service == 0 && forced_kprobe()), "{w:?}");
    assert_eq!(
        r[7].values[2], unacked,
        "E and W agree on the unacked bytes: {r:#?}"
    );
    let (mut server, mut clients) = (server, clients);
    for t in [&mut server, &mut clients] {
        t.signal(libc::SIGINT);
        assert!(t.wait_exit(start_timeout()).success());
    }
    // The statistics (`--interval`'s default is 60 s: the last interval's,
    // at exit) as tcprt's stats file has them: the server's port, its 4
    // tasks (R, R, R and the one closed while sending: 1 failure of 4);
    // the client side's under `P<port>` (the same 4, from the client: its
    // own close is no failure).
    let stats = |t: &Tracer, port: &str| -> Vec<Vec<u64>> {
        t.lines()
            .iter()
            .map(|l| l.split(' ').collect::<Vec<_>>())
            .filter(|f| f.get(1) == Some(&"all") && f.get(2) == Some(&port))
            .map(|f| {
                assert_eq!(f.len(), 12, "{f:?}");
                f.iter()
                    .enumerate()
                    .filter(|(i, _)| ![1, 2].contains(i))
                    .map(|(_, v)| v.parse().unwrap_or_else(|_| panic!("{v} in {f:?}")))
                    .collect()
            })
            .collect()
    };
    let s = stats(&server, &ps);
    assert_eq!(s.len(), 1, "{:#?}", server.lines());
    // Time, total, service, retrans‰, min RTT, fail‰, sent, receive time,
    // received, tasks.
    let [time, total, service, _, mrtt, fail, _, _, received, tasks] = s[0][..] else {
        unreachable!()
    };
    assert!((begin..=now_s()).contains(&time), "{s:?}");
    assert_eq!((tasks, fail), (4, 250), "{s:?}");
    assert!(service >= 49_500 || forced_kprobe(), "{s:?}");
    assert!(total >= service && mrtt > 0, "{s:?}");
    assert_eq!(received, (3 * req + request_len(8000000) as u64) / 4, "{s:?}");
    let c = stats(&clients, &format!("P{p}"));
    assert_eq!(c.len(), 1, "{:#?}", clients.lines());
    let [_, _, service, _, _, fail, sent, _, _, tasks] = c[0][..] else {
        unreachable!()
    };
    let sent_avg = (3 * req + request_len(8000000) as u64) / 4;
    assert_eq!((tasks, fail, sent), (4, 0, sent_avg), "{c:?}");
    assert!(service >= 40_000, "{c:?}");
    // Shown (README's example lines, the VM tier's log).
    for l in [&server, &clients].iter().flat_map(|t| t.lines()) {
        println!("{l}");
    }
}

/// The format is for `--rt`'s lines: one line and exit 2 otherwise.
#[test]
fn tcprt_format_refused_with_json_or_without_rt() {
    for argv in [
        &["--rt", "-P", "80", "--rt-format", "tcprt", "--json"][..],
        &["--rt-format", "tcprt", "-P", "80"][..],
    ] {
        let out = Command::new(BIN).args(argv).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{argv:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{argv:?}: {err}");
    }
}
