//! tcprt's lines byte for byte (the field order of its documentation,
//! trailing space included): parsers written for tcprt split on spaces
//! and index the fields.

use nettrace_common::{
    filter::family,
    tcp::{RtCloseEvent, RtEvent, rt_flag, rt_phase},
};

use super::{Line, Tcprt};
use crate::modes::tcp::print_tests::{rt_event, tuple};

/// 1_700_000_000 s of wall clock at monotonic 0.
const WALL: i128 = 1_700_000_000_000_000_000;

/// `print_tests`' task, with a socket.
fn task(download_ns: u64) -> RtEvent {
    let mut ev = rt_event(download_ns);
    ev.sk = 0xffff_8880_0000_1000;
    ev.mss = 1448;
    ev
}

fn close(phase: u32, acked: u8) -> RtCloseEvent {
    // SAFETY: plain data; zero is valid.
    let mut ev: RtCloseEvent = unsafe { std::mem::zeroed() };
    ev.sk = 0xffff_8880_0000_1000;
    ev.ts_ns = 12_445_678_000;
    ev.tuple = tuple();
    ev.tasks = 3;
    ev.sent_bytes = 24_000;
    ev.unacked_bytes = if acked == 0 { 1000 } else { 0 };
    ev.received_bytes = 96;
    ev.retrans = 2;
    ev.rtt_min_us = 31;
    ev.phase = phase;
    ev.acked = acked;
    ev.mss = 1448;
    ev
}

fn text(lines: Vec<Line>) -> String {
    lines.into_iter().map(|l| l.0).collect()
}

#[test]
fn server_task_is_r() {
    let mut f = Tcprt::new(WALL);
    let line = f.task(&task(31_000)).unwrap();
    assert_eq!(
        line.0,
        "V6 R 1700000012 345678 10.0.0.1:51000 10.0.0.2:8080 2048 50147 31 1 3 50104 12 12 0 1448 \n"
    );
}

#[test]
fn client_task_is_p() {
    let mut f = Tcprt::new(WALL);
    let mut ev = task(83_000);
    ev.flags = rt_flag::CLIENT;
    ev.tuple.sport = 51000;
    ev.tuple.dport = 8080;
    ev.tuple.saddr[..4].copy_from_slice(&[10, 0, 0, 1]);
    ev.tuple.daddr[..4].copy_from_slice(&[10, 0, 0, 2]);
    (ev.upload_ns, ev.process_ns) = (4_000, 50_287_000);
    (ev.req_bytes, ev.resp_bytes) = (13, 3000);
    assert_eq!(
        f.task(&ev).unwrap().0,
        "V6 P 1700000012 345678 10.0.0.2:8080 10.0.0.1:51000 13 50374 31 1 3 50287 83 3000 0 1448 \n"
    );
}

/// E carries the last task's start, as tcprt's does.
#[test]
fn close_between_tasks_is_e() {
    let mut f = Tcprt::new(WALL);
    f.task(&task(31_000)).unwrap();
    assert_eq!(
        text(f.close(&close(rt_phase::IDLE, 1))),
        "V6 E 1700000012 345678 10.0.0.1:51000 10.0.0.2:8080 3 24000 0 96 2 31 \n"
    );
}

/// A task not acknowledged when its connection closed is W, not R, then E.
#[test]
fn close_while_sending_is_w_then_e() {
    let mut f = Tcprt::new(WALL);
    assert_eq!(f.task(&task(u64::MAX)), None);
    assert_eq!(
        text(f.close(&close(rt_phase::RESPONSE, 0))),
        "V6 W 1700000012 345678 10.0.0.1:51000 10.0.0.2:8080 2048 100000 31 1 3 50104 12 1000 0 1448 \n\
         V6 E 1700000012 345678 10.0.0.1:51000 10.0.0.2:8080 3 24000 1000 96 2 31 \n"
    );
    assert!(f.finish().is_empty());
}

/// N: its start is the unanswered task's (0.1 s before the close), its
/// time runs to the close; E's start is the same task's.
#[test]
fn close_while_receiving_is_n_then_e() {
    let mut f = Tcprt::new(WALL);
    let mut c = close(rt_phase::REQUEST, 1);
    c.task_start_ns = 12_345_678_000;
    assert_eq!(
        text(f.close(&c)),
        "V6 N 1700000012 345678 10.0.0.1:51000 10.0.0.2:8080 3 100000 96 0 1448 \n\
         V6 E 1700000012 345678 10.0.0.1:51000 10.0.0.2:8080 3 24000 0 96 2 31 \n"
    );
    // A close between tasks has no task start: the close's time.
    let lines = text(f.close(&close(rt_phase::REQUEST, 1)));
    assert!(lines.starts_with("V6 N 1700000012 445678 "), "{lines}");
}

/// A held task whose connection ended otherwise, or never in the trace,
/// is still printed, as R.
#[test]
fn held_tasks_are_not_lost() {
    let mut f = Tcprt::new(WALL);
    f.task(&task(u64::MAX));
    let lines = text(f.close(&close(rt_phase::IDLE, 1)));
    assert!(lines.starts_with("V6 R 1700000012 345678 "), "{lines}");
    assert!(lines.contains("\nV6 E "), "{lines}");
    f.task(&task(u64::MAX));
    let mut other = task(u64::MAX);
    other.sk += 1;
    other.ts_ns += 1_000;
    assert!(f.task(&other).is_none());
    let rest = text(f.finish());
    assert_eq!(rest.matches("V6 R ").count(), 2, "{rest}");
}

/// IPv6 in brackets; IPv4-mapped as IPv4.
#[test]
fn ipv6_and_mapped_addresses() {
    let mut f = Tcprt::new(WALL);
    let mut ev = task(31_000);
    ev.tuple.family = family::V6;
    ev.tuple.saddr = "2001:db8::2".parse::<std::net::Ipv6Addr>().unwrap().octets();
    ev.tuple.daddr = "::ffff:10.0.0.1".parse::<std::net::Ipv6Addr>().unwrap().octets();
    let line = f.task(&ev).unwrap().0;
    assert!(
        line.starts_with("V6 R 1700000012 345678 10.0.0.1:51000 [2001:db8::2]:8080 "),
        "{line}"
    );
}

/// The stats file's line per port (the local port bare, a client side's
/// peer port as `P<port>`): averages over the interval's tasks, segments
/// retransmitted per thousand sent (bytes / MSS + 1 per task), closes
/// while sending per thousand tasks.
#[test]
fn statistics_are_tcprt_stats_lines() {
    use crate::{modes::tcp::rt::stats::Stats, output::Clock};
    let f = Tcprt::new(WALL);
    let mut s = Stats::new(std::time::Duration::from_secs(60), 0);
    // 2048 B at MSS 1448: 2 segments; 1 retransmitted of 4.
    s.task(&task(31_000));
    let mut second = task(31_000);
    second.retrans = 0;
    second.process_ns = 30_104_000;
    s.task(&second);
    s.close(&close(rt_phase::RESPONSE, 0));
    let mut client = task(83_000);
    client.flags = rt_flag::CLIENT;
    client.tuple.dport = 443;
    s.task(&client);
    let t = s.take(&Clock::new(false), 60_000_000_000, false).unwrap();
    assert_eq!(
        text(f.stats(&t)),
        "1700000060 all P443 50199 50104 1000 31 0 12 83 2048 1\n\
         1700000060 all 8080 40147 40104 250 31 500 2048 12 12 2\n"
    );
}
