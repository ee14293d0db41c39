//! `--conn`'s state names, filters and lines.

use std::{
    io::{Read as _, Write as _},
    net::{TcpListener, TcpStream},
};

use serde_json::Value;

use super::*;
use crate::{
    attribution::OwnerFields,
    output::record::{json_of, text_of},
};

/// An address criterion as the CLI builds it.
fn addr(s: &str) -> AddrMatch {
    let mut m = AddrMatch::default();
    match s.parse::<IpAddr>().unwrap() {
        IpAddr::V4(a) => {
            m.family = family::V4;
            m.addr[..4].copy_from_slice(&a.octets());
        }
        IpAddr::V6(a) => {
            m.family = family::V6;
            m.addr = a.octets();
        }
    }
    m
}

/// A connection's text line, without its `\n`.
fn line(c: &Conn) -> String {
    text_of(&ConnRecord {
        conn: c,
        ts_ns: 0,
        container: OwnerFields::default(),
    })
    .trim_end_matches('\n')
    .to_string()
}

/// A connection's JSON record, as an object.
fn json(c: &Conn) -> Value {
    serde_json::from_str(&json_of(&ConnRecord {
        conn: c,
        ts_ns: 0,
        container: OwnerFields::default(),
    }))
    .unwrap()
}

fn conn() -> Conn {
    Conn {
        netns: 4026531840,
        family: AF_INET,
        local: "10.0.0.1:22".parse().unwrap(),
        remote: "10.0.0.2:51000".parse().unwrap(),
        state: 1,
        info: Some(TcpInfoFields {
            rtt_us: 123,
            rttvar_us: 50,
            rto_us: 201_000,
            total_retrans: 3,
            snd_cwnd: 10,
            snd_ssthresh: 7,
            bytes_acked: Some(1234),
            bytes_received: Some(5678),
            min_rtt_us: Some(40),
            ..TcpInfoFields::default()
        }),
        inode: 98765,
        owner: Some((1234, "sshd".into())),
    }
}

#[test]
fn states_as_ss_spells_them() {
    assert_eq!(parse_states("established"), Ok(1 << 1));
    assert_eq!(parse_states("ESTABLISHED, listen"), Ok(1 << 1 | 1 << 10));
    assert_eq!(parse_states("listening,closed"), Ok(1 << 10 | 1 << 7));
    assert_eq!(parse_states("syn-recv"), Ok(1 << 3 | 1 << 12));
    assert_eq!(parse_states("fin-wait-1,fin-wait-2"), Ok(1 << 4 | 1 << 5));
    assert_eq!(parse_states("all"), Ok(0x1ffe));
    // established, syn-sent, fin-wait-1/2, close-wait, last-ack, closing.
    assert_eq!(parse_states("connected"), Ok(0x0b36));
    for (w, _) in STATE_WORDS {
        assert!(parse_states(w).unwrap() != 0, "{w}");
    }
}

#[test]
fn bad_state_names_the_word_and_the_choices() {
    let e = parse_states("established,estab").unwrap_err();
    assert!(
        e.starts_with("unknown TCP state 'estab' (known: all, connected, established,"),
        "{e}"
    );
    assert!(e.contains("time-wait") && !e.contains('\n'), "{e}");
    let e = parse_states("established,").unwrap_err();
    assert!(e.starts_with("empty TCP state in 'established,'"), "{e}");
}

#[test]
fn state_names_are_the_kernels() {
    assert_eq!(state_name(1), "ESTABLISHED");
    assert_eq!(state_name(6), "TIME_WAIT");
    assert_eq!(state_name(10), "LISTEN");
    assert_eq!(state_name(200), "UNKNOWN");
}

#[test]
fn line_format() {
    assert_eq!(
        line(&conn()),
        "netns:4026531840 ESTABLISHED 10.0.0.1:22 -> 10.0.0.2:51000 rtt:0.123ms rttvar:0.050ms \
         retrans:0/3 lost:0 cwnd:10 acked:1234 received:5678 pid:1234/sshd"
    );
    let tw = Conn {
        state: 6,
        info: None,
        owner: None,
        inode: 0,
        local: "[fd31::1]:443".parse().unwrap(),
        remote: "[fd31::2]:40000".parse().unwrap(),
        ..conn()
    };
    assert_eq!(
        line(&tw),
        "netns:4026531840 TIME_WAIT [fd31::1]:443 -> [fd31::2]:40000"
    );
}

#[test]
fn json_record() {
    let v = json(&conn());
    assert_eq!(v["v"], 1);
    assert_eq!(v["type"], "conn");
    assert_eq!(v["netns"], 4026531840u64);
    assert_eq!(v["state"], "ESTABLISHED");
    assert_eq!(v["l3"], "ipv4");
    assert_eq!(v["saddr"], "10.0.0.1");
    assert_eq!(v["sport"], 22);
    assert_eq!(v["daddr"], "10.0.0.2");
    assert_eq!(v["dport"], 51000);
    assert_eq!(v["rtt_ns"], 123_000);
    assert_eq!(v["rttvar_ns"], 50_000);
    assert_eq!(v["min_rtt_ns"], 40_000);
    assert_eq!(v["total_retrans"], 3);
    assert_eq!(v["cwnd"], 10);
    assert_eq!(v["bytes_acked"], 1234);
    assert_eq!(v["bytes_received"], 5678);
    assert_eq!(v["pid"], 1234);
    assert_eq!(v["comm"], "sshd");
    assert!(v.get("bytes_sent").is_none());
    let bare = json(&Conn {
        info: None,
        owner: None,
        ..conn()
    });
    assert!(bare.get("rtt_ns").is_none() && bare.get("pid").is_none());
}

fn filter(set: impl FnOnce(&mut Filter)) -> Filter {
    let mut f = Filter::default();
    set(&mut f);
    f
}

#[test]
fn filter_local_is_source_remote_is_destination() {
    let c = conn();
    let yes = |f: Filter| assert!(c.matches_socket(&f), "{f:?}");
    let no = |f: Filter| assert!(!c.matches_socket(&f), "{f:?}");
    yes(Filter::default());
    yes(filter(|f| f.saddr = addr("10.0.0.1")));
    no(filter(|f| f.saddr = addr("10.0.0.2")));
    yes(filter(|f| f.daddr = addr("10.0.0.2")));
    no(filter(|f| f.daddr = addr("10.0.0.1")));
    yes(filter(|f| f.addr = addr("10.0.0.2")));
    yes(filter(|f| f.addr = addr("10.0.0.1")));
    no(filter(|f| f.addr = addr("10.0.0.3")));
    no(filter(|f| f.addr = addr("::ffff:10.0.0.1")));
    yes(filter(|f| f.sport = 22));
    no(filter(|f| f.sport = 51000));
    yes(filter(|f| f.dport = 51000));
    yes(filter(|f| f.port = 51000));
    yes(filter(|f| f.port = 22));
    no(filter(|f| f.port = 80));
    yes(filter(|f| f.netns = 4026531840));
    no(filter(|f| f.netns = 4026531841));
    // -p tcp, ip, ip6, udp, arp.
    yes(filter(|f| f.l4_proto = ipproto::TCP));
    yes(filter(|f| f.l3_proto = ethertype::IPV4));
    no(filter(|f| f.l3_proto = ethertype::IPV6));
    no(filter(|f| f.l4_proto = ipproto::UDP));
    no(filter(|f| f.l3_proto = ethertype::ARP));
}

#[test]
fn families_to_dump() {
    assert_eq!(families(&Filter::default()), [AF_INET, AF_INET6]);
    assert_eq!(families(&filter(|f| f.l3_proto = ethertype::IPV6)), [AF_INET6]);
    assert!(families(&filter(|f| f.l4_proto = ipproto::UDP)).is_empty());
    assert!(families(&filter(|f| f.l3_proto = ethertype::ARP)).is_empty());
}

/// The whole pipeline on a loopback connection of this process, in its
/// own namespace (no privilege needed there).
#[test]
fn snapshot_finds_our_loopback_connection() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = l.local_addr().unwrap().port();
    let mut client = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let (mut server, _) = l.accept().unwrap();
    client.write_all(b"ping").unwrap();
    let mut buf = [0; 4];
    server.read_exact(&mut buf).unwrap();
    let me = std::process::id();
    let own = netns::own().unwrap();
    let f = filter(|f| {
        f.port = port;
        f.netns = own as u32;
    });
    let snap = snapshot(&f, parse_states("established").unwrap()).unwrap();
    assert_eq!(snap.namespaces, 1, "{snap:?}");
    // Processes we may not inspect (e.g. with more capabilities) are
    // reported, but the namespace itself was listed without error.
    assert!(!snap.errors.iter().any(|e| e.starts_with("netns")), "{snap:?}");
    let client_addr = client.local_addr().unwrap();
    let ends: Vec<_> = snap.conns.iter().map(|c| (c.local, c.remote)).collect();
    let server_addr = server.local_addr().unwrap();
    let mut want = vec![(client_addr, server_addr), (server_addr, client_addr)];
    want.sort();
    assert_eq!(ends, want, "{snap:?}");
    for c in &snap.conns {
        assert_eq!(c.netns, own);
        assert_eq!(c.state, 1);
        assert_ne!(c.inode, 0);
        assert_eq!(c.owner.as_ref().map(|(p, _)| *p), Some(me), "{c:?}");
        assert!(c.info.is_some(), "{c:?}");
    }
    // Counted when queued, so already when read.
    let receiver = snap.conns.iter().find(|c| c.local == server_addr).unwrap();
    assert_eq!(receiver.info.unwrap().bytes_received, Some(4), "{receiver:?}");
    // The listener is not ESTABLISHED; --pid of another process hides all.
    let listen = snapshot(&f, parse_states("listen").unwrap()).unwrap();
    assert_eq!(listen.conns.len(), 1, "{listen:?}");
    assert_eq!(listen.conns[0].local.port(), port);
    let other = filter(|g| {
        *g = f;
        g.pid = 1;
    });
    assert!(snapshot(&other, 0).unwrap().conns.is_empty());
}

/// The exact text and JSON of `--conn` lines, with and without `tcp_info`
/// and an owner, IPv4 and IPv6.
#[test]
fn golden_lines_and_records() {
    // As the sink writes them: the snapshot's time last.
    let both = |c: &Conn| {
        let r = ConnRecord {
            conn: c,
            ts_ns: 5_000_000_000,
            container: OwnerFields::default(),
        };
        text_of(&r) + &json_of(&r)
    };
    let mut out = both(&conn());
    let full = Conn {
        info: Some(TcpInfoFields {
            unacked: 2,
            retrans: 1,
            lost: 1,
            bytes_sent: Some(99),
            bytes_retrans: Some(7),
            min_rtt_us: None,
            ..conn().info.unwrap()
        }),
        ..conn()
    };
    out += &both(&full);
    out += &both(&Conn {
        state: 6,
        info: None,
        owner: None,
        inode: 0,
        local: "[fd31::1]:443".parse().unwrap(),
        remote: "[fd31::2]:40000".parse().unwrap(),
        ..conn()
    });
    crate::output::golden::check("conn/lines", &out);
}
