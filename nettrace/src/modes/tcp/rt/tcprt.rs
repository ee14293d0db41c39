//! `--rt --rt-format tcprt`: the tasks and connection ends as Alibaba's
//! TCP-RT writes them to `/sys/kernel/debug/tcp-rt/rt-network-log*`, so
//! that log parsers written for tcprt read ours unchanged.
//!
//! The format is tcprt's V6 log line, as documented in Alibaba's
//! cloud-kernel, `Documentation/networking/tcprt.rst` (commit
//! 11172d69ed0591dc69b5b8c5bf41b2ab99086587, "Last updated: 9 July 2020",
//! sections 5.1–5.6). Separators and the P layout were checked against the
//! module's output code that follows that document (`net/ipv4/tcp_rt/output.c`
//! in plantegg/linux, commit 4ed3ef256fc819606699761bc5d46132c0e848eb); an
//! older module (alibaba/cloud-kernel 7d838e307d85…) wrote a shorter P record
//! of 7 fields, which we do not follow. This formatter is our own.
//!
//! Every field is a decimal number followed by one space, addresses are
//! `A.B.C.D:PORT` followed by a space, the line ends in `" \n"`:
//!
//! ```text
//! V6 R <start s> <start µs> <peer ip>:<port> <local ip>:<port> <sent B> <total µs> <min rtt µs> <retrans> <task> <service µs> <recv µs> <received B> <reorder> <mss>
//! V6 P <start s> <start µs> <peer>:<port> <local>:<port> <sent B> <total µs> <min rtt µs> <retrans> <task> <service µs> <response µs> <response B> <reorder> <mss>
//! V6 W <start s> <start µs> <peer>:<port> <local>:<port> <sent B> <time µs> <min rtt µs> <retrans> <task> <service µs> <recv µs> <unacked B> <reorder> <mss>
//! V6 N <start s> <start µs> <peer>:<port> <local>:<port> <task> <time µs> <received B> <reorder> <mss>
//! V6 E <start s> <start µs> <peer>:<port> <local>:<port> <task> <sent B> <unacked B> <received B> <retrans> <min rtt µs>
//! ```
//!
//! Where we do not measure what tcprt has, the field is 0 (tcprt's
//! documentation names no "unknown" value): reorder (out-of-order
//! reception) always, mss where BTF has no `tcp_sock.mss_cache`. The
//! start time is the wall clock of the task's first request byte (R; P:
//! its first request byte sent; N and W: of the task the connection
//! closed in, N's time running to the close); for E the start of the
//! connection's last task (as tcprt), or the close when no task was seen.
//! tcprt writes W instead of R for a task
//! whose response was not fully acknowledged when the connection closed:
//! so do we, holding such a task until its connection's end arrives.
//! tcprt knows IPv4 only; an IPv4-mapped address is written as IPv4, an
//! IPv6 address in brackets (`[2001:db8::1]:8080`).
//!
//! The per-port statistics (`--interval`) are written as the lines of
//! tcprt's stats file (`rt-network-stats`; its documentation's section 6,
//! the layout from the same `output.c`), one per port, between the log
//! lines (`grep '^V6 '` keeps the log, `grep ' all '` the stats):
//!
//! ```text
//! <now s> all <port> <total µs> <service µs> <retrans‰> <min rtt µs> <fail‰> <sent B> <recv µs> <received B> <tasks>
//! ```
//!
//! `port` is a server's own port, `P<port>` the peer port of client tasks
//! (see `stats::TcprtRow` for each average).

use std::{
    collections::HashMap,
    fmt::Write as _,
    io::{self, Write},
    net::{IpAddr, SocketAddr},
};

use nettrace_common::tcp::{RtCloseEvent, RtEvent, Tuple};
use serde::Serialize;

use super::{
    close::End,
    download_ns, is_client,
    stats::{RtStats, Side},
};
use crate::{modes::tcp::ends, output::Record};

/// One tcprt log line.
#[derive(Debug, PartialEq, Eq, Serialize)]
pub struct Line(pub String);

impl Record for Line {
    fn kind(&self) -> &'static str {
        "tcprt"
    }

    fn text(&self, w: &mut dyn Write) -> io::Result<()> {
        w.write_all(self.0.as_bytes())
    }
}

/// Turns `--rt`'s events into tcprt lines, keeping what a later line
/// needs: each open connection's last task start, and a task that may
/// become a W record.
pub struct Tcprt {
    /// CLOCK_REALTIME minus CLOCK_MONOTONIC, ns: tcprt's times are wall
    /// clock.
    wall_offset_ns: i128,
    last_start_ns: HashMap<u64, u64>,
    unacked: HashMap<u64, RtEvent>,
}

impl Tcprt {
    pub fn new(wall_offset_ns: i128) -> Self {
        Self {
            wall_offset_ns,
            last_start_ns: HashMap::new(),
            unacked: HashMap::new(),
        }
    }

    /// A task's line: R for a server's, P for a client's; nothing yet for
    /// a server task whose response was not acknowledged (see `close`).
    pub fn task(&mut self, ev: &RtEvent) -> Option<Line> {
        self.last_start_ns.insert(ev.sk, ev.ts_ns);
        if is_client(ev) {
            return Some(self.p(ev));
        }
        if download_ns(ev).is_none() {
            // A second one means the first was not the connection's last.
            return self.unacked.insert(ev.sk, *ev).map(|t| self.r(&t));
        }
        Some(self.r(ev))
    }

    /// A connection's end: W or N when it closed mid-task, then E (as
    /// tcprt); a held task that did not end in W as its R.
    pub fn close(&mut self, ev: &RtCloseEvent) -> Vec<Line> {
        let last_start = self.last_start_ns.remove(&ev.sk);
        let held = self.unacked.remove(&ev.sk);
        let mut lines = Vec::with_capacity(2);
        match (End::of(ev), held) {
            (End::ClosedWhileSending, held) => lines.push(self.w(ev, held.as_ref())),
            (end, held) => {
                lines.extend(held.map(|t| self.r(&t)));
                if end == End::ClosedWhileReceiving {
                    lines.push(self.n(ev));
                }
            }
        }
        // The last task's start: one reported, else the one it closed in.
        lines.push(self.e(ev, last_start.unwrap_or(task_start(ev))));
        lines
    }

    /// When tracing ends: the held tasks as R (their connections' ends
    /// were not seen).
    pub fn finish(&mut self) -> Vec<Line> {
        let mut held: Vec<RtEvent> = self.unacked.drain().map(|(_, t)| t).collect();
        held.sort_by_key(|t| t.ts_ns);
        held.iter().map(|t| self.r(t)).collect()
    }

    /// R: the response is what the server sent, the request what it
    /// received; the 7th field its receive delay (the request's upload).
    fn r(&self, t: &RtEvent) -> Line {
        self.task_line('R', t, t.resp_bytes, t.upload_ns, t.req_bytes)
    }

    /// P: the request is what the client sent, the response what it
    /// received; the 7th field the response's receive time.
    fn p(&self, t: &RtEvent) -> Line {
        let receive = download_ns(t).unwrap_or(0);
        self.task_line('P', t, t.req_bytes, receive, t.resp_bytes)
    }

    /// R and P share their layout: sent, total, min RTT, retransmits,
    /// task, service (process), `seventh_ns`, received, reorder, mss.
    fn task_line(&self, letter: char, t: &RtEvent, sent: u64, seventh_ns: u64, received: u64) -> Line {
        let total = t.upload_ns + t.process_ns + download_ns(t).unwrap_or(0);
        let mut s = self.header(letter, t.ts_ns, &t.tuple);
        fields(
            &mut s,
            &[
                sent,
                total / 1000,
                t.rtt_min_us.into(),
                t.retrans.into(),
                t.task.into(),
                t.process_ns / 1000,
                seventh_ns / 1000,
                received,
                0,
                t.mss.into(),
            ],
        );
        Line(s)
    }

    /// W: the task being sent when the connection closed (`t`, when its
    /// event was seen).
    fn w(&self, c: &RtCloseEvent, t: Option<&RtEvent>) -> Line {
        let start = t.map_or(task_start(c), |t| t.ts_ns);
        let mut s = self.header('W', start, &c.tuple);
        fields(
            &mut s,
            &[
                t.map_or(0, |t| t.resp_bytes),
                c.ts_ns.saturating_sub(start) / 1000,
                c.rtt_min_us.into(),
                t.map_or(0, |t| t.retrans.into()),
                t.map_or(c.tasks, |t| t.task).into(),
                t.map_or(0, |t| t.process_ns / 1000),
                t.map_or(0, |t| t.upload_ns / 1000),
                c.unacked_bytes,
                0,
                c.mss.into(),
            ],
        );
        Line(s)
    }

    /// N: the unanswered request's task, from its start to the close.
    fn n(&self, c: &RtCloseEvent) -> Line {
        let start = task_start(c);
        let mut s = self.header('N', start, &c.tuple);
        let time_us = c.ts_ns.saturating_sub(start) / 1000;
        fields(
            &mut s,
            &[c.tasks.into(), time_us, c.received_bytes, 0, c.mss.into()],
        );
        Line(s)
    }

    fn e(&self, c: &RtCloseEvent, start_ns: u64) -> Line {
        let mut s = self.header('E', start_ns, &c.tuple);
        fields(
            &mut s,
            &[
                c.tasks.into(),
                c.sent_bytes,
                c.unacked_bytes,
                c.received_bytes,
                c.retrans.into(),
                c.rtt_min_us.into(),
            ],
        );
        Line(s)
    }

    /// The stats file's lines of one interval.
    pub fn stats(&self, t: &RtStats) -> Vec<Line> {
        let wall_s = ((t.ts_ns as i128 + self.wall_offset_ns).max(0) / 1_000_000_000) as u64;
        t.ports
            .iter()
            .map(|p| {
                let r = &p.tcprt;
                let peer = if r.side == Side::Client { "P" } else { "" };
                Line(format!(
                    "{wall_s} all {peer}{} {} {} {} {} {} {} {} {} {}\n",
                    r.port,
                    r.total_us,
                    r.service_us,
                    r.retrans_permille,
                    r.rtt_min_us,
                    r.fail_permille,
                    r.sent_bytes,
                    r.receive_us,
                    r.received_bytes,
                    r.tasks
                ))
            })
            .collect()
    }

    /// `V6 X <s> <µs> <peer> <local> `: our tuples put this host's end
    /// first.
    fn header(&self, letter: char, mono_ns: u64, tuple: &Tuple) -> String {
        let wall = (mono_ns as i128 + self.wall_offset_ns).max(0);
        let (local, peer) = match ends(tuple) {
            Some((l, p)) => (address(l), address(p)),
            None => ("0.0.0.0:0".into(), "0.0.0.0:0".into()),
        };
        format!(
            "V6 {letter} {} {} {peer} {local} ",
            wall / 1_000_000_000,
            (wall % 1_000_000_000) / 1000
        )
    }
}

/// When the task a connection closed in began, else the close.
fn task_start(c: &RtCloseEvent) -> u64 {
    if c.task_start_ns != 0 {
        c.task_start_ns
    } else {
        c.ts_ns
    }
}

/// `A.B.C.D:PORT` (IPv4-mapped too), `[v6]:PORT`.
fn address(a: SocketAddr) -> String {
    match a.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => format!("{v4}:{}", a.port()),
            None => a.to_string(),
        },
        IpAddr::V4(_) => a.to_string(),
    }
}

/// Each value and a space, then the newline.
fn fields(s: &mut String, values: &[u64]) {
    for v in values {
        let _ = write!(s, "{v} ");
    }
    s.push('\n');
}

#[cfg(test)]
#[path = "tcprt_tests.rs"]
mod tests;
