//! `--rt`'s per-port statistics, what tcprt writes to its stats file: every
//! `--interval SECS` (default 60), and for what is left when tracing ends,
//! one row per server port and side (a server's own port; the port its
//! clients on this host talk to):
//!
//! ```text
//! [12.345678] --rt statistics of the last 60.000s
//!  port side    tasks   total_avg process_avg  upload_avg upload_avg_bytes    rtt_avg retrans‰ fail‰
//!  8080 server      8    50.301ms    50.190ms     0.005ms               13    0.040ms        0     0
//! ```
//!
//! `total` is a task's upload, process and download together, `process`
//! the server's own time (on the client side: the wait for the first
//! response byte), `upload` the request's arrival (the client: its
//! sending); `rtt` the smoothed RTT at each task's end; `retrans‰` tasks
//! with a retransmission per thousand; `fail‰` tasks cut by their
//! connection's close (closed while sending or receiving) per thousand,
//! counting a request that never got a response as a task.
//!
//! With `--rt-format tcprt` the same intervals are written as tcprt's
//! stats file lines instead (see [`TcprtRow`] and `tcprt.rs`).

use std::{
    collections::BTreeMap,
    io::{self, Write},
};

use nettrace_common::tcp::{RtCloseEvent, RtEvent, rt_phase};
use serde::Serialize;

use super::{close::End, download_ns, is_client};
use crate::{
    modes::tcp::ms,
    output::{Clock, Record},
};

/// Which end of the connection the port belongs to.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    #[default]
    Server,
    Client,
}

impl Side {
    pub fn name(self) -> &'static str {
        match self {
            Side::Server => "server",
            Side::Client => "client",
        }
    }
}

/// The server's port of a task and the side it was timed on.
pub fn port_of(ev: &RtEvent) -> (u16, Side) {
    if is_client(ev) {
        (ev.tuple.dport, Side::Client)
    } else {
        (ev.tuple.sport, Side::Server)
    }
}

/// The same for a connection's end.
pub fn close_port_of(ev: &RtCloseEvent) -> (u16, Side) {
    if ev.client != 0 {
        (ev.tuple.dport, Side::Client)
    } else {
        (ev.tuple.sport, Side::Server)
    }
}

/// Sums of one port's interval.
#[derive(Clone, Copy, Debug, Default)]
struct Sums {
    tasks: u64,
    total_ns: u64,
    process_ns: u64,
    upload_ns: u64,
    upload_bytes: u64,
    rtt_us: u64,
    rtt_samples: u64,
    retransmitting: u64,
    /// Connections closed mid-task (W, N), and of those the N: requests
    /// without a task record.
    cut: u64,
    unanswered: u64,
    /// For tcprt's stats line: bytes this side sent and received, the
    /// receive time (a server's upload, a client's download), min RTTs,
    /// segments retransmitted and sent (bytes / MSS + 1, as tcprt counts),
    /// closes while sending.
    sent_bytes: u64,
    received_bytes: u64,
    receive_ns: u64,
    rtt_min_us: u64,
    retrans_segments: u64,
    segments: u64,
    cut_sending: u64,
}

/// The statistics being gathered.
pub struct Stats {
    interval_ns: u64,
    since_ns: u64,
    ports: BTreeMap<(u16, Side), Sums>,
}

impl Stats {
    pub fn new(interval: std::time::Duration, now_ns: u64) -> Self {
        Self {
            interval_ns: interval.as_nanos() as u64,
            since_ns: now_ns,
            ports: BTreeMap::new(),
        }
    }

    pub fn task(&mut self, ev: &RtEvent) {
        let s = self.ports.entry(port_of(ev)).or_default();
        s.tasks += 1;
        s.total_ns += ev.upload_ns + ev.process_ns + download_ns(ev).unwrap_or(0);
        s.process_ns += ev.process_ns;
        s.upload_ns += ev.upload_ns;
        s.upload_bytes += ev.req_bytes;
        if ev.srtt_us != 0 {
            s.rtt_us += u64::from(ev.srtt_us);
            s.rtt_samples += 1;
        }
        s.retransmitting += u64::from(ev.retrans != 0);
        let (sent, received, receive_ns) = if is_client(ev) {
            (ev.req_bytes, ev.resp_bytes, download_ns(ev).unwrap_or(0))
        } else {
            (ev.resp_bytes, ev.req_bytes, ev.upload_ns)
        };
        s.sent_bytes += sent;
        s.received_bytes += received;
        s.receive_ns += receive_ns;
        s.rtt_min_us += u64::from(ev.rtt_min_us);
        s.retrans_segments += u64::from(ev.retrans);
        s.segments += sent / u64::from(ev.mss.max(1)) + 1;
    }

    pub fn close(&mut self, ev: &RtCloseEvent) {
        let end = End::of(ev);
        if end == End::Closed {
            return;
        }
        let s = self.ports.entry(close_port_of(ev)).or_default();
        s.cut += 1;
        s.cut_sending += u64::from(end == End::ClosedWhileSending);
        // A request without a response has no task record (either side
        // reports a task once its response began).
        s.unanswered += u64::from(ev.phase == rt_phase::REQUEST);
    }

    /// The table of the interval that ended at `now_ns`, if it has ended
    /// (`force`: the rest at the end of tracing, if there is any); starts
    /// the next.
    pub fn take(&mut self, clock: &Clock, now_ns: u64, force: bool) -> Option<RtStats> {
        let elapsed = now_ns.saturating_sub(self.since_ns);
        if !(elapsed >= self.interval_ns || force && !self.ports.is_empty()) {
            return None;
        }
        let ports = std::mem::take(&mut self.ports)
            .into_iter()
            .map(|((port, side), s)| PortStats::of(port, side, &s))
            .collect();
        self.since_ns = now_ns;
        Some(RtStats {
            ts_ns: now_ns,
            time: clock.format(now_ns),
            interval_ns: elapsed,
            ports,
        })
    }
}

/// One port's averages (ns, bytes) and rates (per thousand).
#[derive(Debug, Serialize)]
pub struct PortStats {
    port: u16,
    side: Side,
    tasks: u64,
    total_avg_ns: u64,
    process_avg_ns: u64,
    upload_avg_ns: u64,
    upload_avg_bytes: u64,
    /// Smoothed RTT; 0 when no task had a sample.
    rtt_avg_ns: u64,
    retrans_permille: u64,
    fail_permille: u64,
    #[serde(skip)]
    pub tcprt: TcprtRow,
}

/// One port's line of tcprt's stats file (`rt-network-stats`), as its
/// module computes it: averages over the interval's tasks in µs and bytes
/// (sent and received by this side; the receive time is a server's
/// upload, a client's download), retransmitted segments per thousand sent
/// segments, closes while sending per thousand tasks, the task count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcprtRow {
    pub port: u16,
    pub side: Side,
    pub total_us: u64,
    pub service_us: u64,
    pub retrans_permille: u64,
    pub rtt_min_us: u64,
    pub fail_permille: u64,
    pub sent_bytes: u64,
    pub receive_us: u64,
    pub received_bytes: u64,
    pub tasks: u64,
}

impl PortStats {
    fn of(port: u16, side: Side, s: &Sums) -> Self {
        let avg = |sum: u64, n: u64| sum.checked_div(n).unwrap_or(0);
        Self {
            port,
            side,
            tasks: s.tasks,
            total_avg_ns: avg(s.total_ns, s.tasks),
            process_avg_ns: avg(s.process_ns, s.tasks),
            upload_avg_ns: avg(s.upload_ns, s.tasks),
            upload_avg_bytes: avg(s.upload_bytes, s.tasks),
            rtt_avg_ns: avg(s.rtt_us * 1000, s.rtt_samples),
            retrans_permille: avg(s.retransmitting * 1000, s.tasks),
            fail_permille: avg(s.cut * 1000, s.tasks + s.unanswered),
            tcprt: TcprtRow {
                port,
                side,
                total_us: avg(s.total_ns, s.tasks) / 1000,
                service_us: avg(s.process_ns, s.tasks) / 1000,
                retrans_permille: avg(s.retrans_segments * 1000, s.segments),
                rtt_min_us: avg(s.rtt_min_us, s.tasks),
                fail_permille: avg(s.cut_sending * 1000, s.tasks),
                sent_bytes: avg(s.sent_bytes, s.tasks),
                receive_us: avg(s.receive_ns, s.tasks) / 1000,
                received_bytes: avg(s.received_bytes, s.tasks),
                tasks: s.tasks,
            },
        }
    }
}

/// One interval's table (see the module's doc), or one JSON record with
/// a `ports` array.
#[derive(Debug, Serialize)]
pub struct RtStats {
    pub ts_ns: u64,
    #[serde(skip)]
    time: String,
    interval_ns: u64,
    pub ports: Vec<PortStats>,
}

impl Record for RtStats {
    fn kind(&self) -> &'static str {
        "rt_stats"
    }

    fn text(&self, w: &mut dyn Write) -> io::Result<()> {
        let secs = |ns: u64| format!("{}.{:03}s", ns / 1_000_000_000, ns / 1_000_000 % 1000);
        writeln!(
            w,
            "[{}] --rt statistics of the last {}",
            self.time,
            secs(self.interval_ns)
        )?;
        writeln!(
            w,
            "{:>5} {:<6} {:>7} {:>11} {:>11} {:>11} {:>16} {:>10} {:>8} {:>5}",
            "port",
            "side",
            "tasks",
            "total_avg",
            "process_avg",
            "upload_avg",
            "upload_avg_bytes",
            "rtt_avg",
            "retrans‰",
            "fail‰"
        )?;
        let t = |ns: u64| ms(ns / 1000);
        for p in &self.ports {
            writeln!(
                w,
                "{:>5} {:<6} {:>7} {:>11} {:>11} {:>11} {:>16} {:>10} {:>8} {:>5}",
                p.port,
                p.side.name(),
                p.tasks,
                t(p.total_avg_ns),
                t(p.process_avg_ns),
                t(p.upload_avg_ns),
                p.upload_avg_bytes,
                t(p.rtt_avg_ns),
                p.retrans_permille,
                p.fail_permille
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use nettrace_common::tcp::{Tuple, rt_flag};

    use super::*;

    fn task(sport: u16, process_ms: u64, retrans: u32) -> RtEvent {
        // SAFETY: plain data; zero is valid.
        let mut ev: RtEvent = unsafe { std::mem::zeroed() };
        ev.tuple = Tuple {
            sport,
            dport: 40000,
            ..Tuple::default()
        };
        ev.upload_ns = 1_000;
        ev.process_ns = process_ms * 1_000_000;
        ev.download_ns = 2_000;
        ev.req_bytes = 100;
        ev.srtt_us = 50;
        ev.retrans = retrans;
        ev
    }

    fn close(sport: u16, phase: u32, acked: u8) -> RtCloseEvent {
        // SAFETY: plain data; zero is valid.
        let mut ev: RtCloseEvent = unsafe { std::mem::zeroed() };
        ev.tuple.sport = sport;
        (ev.phase, ev.acked) = (phase, acked);
        ev
    }

    #[test]
    fn averages_and_rates_per_port_and_side() {
        let clock = Clock::new(false);
        let mut s = Stats::new(std::time::Duration::from_secs(60), 0);
        s.task(&task(80, 10, 0));
        s.task(&task(80, 30, 2));
        let mut client = task(5000, 40, 0);
        client.flags = rt_flag::CLIENT;
        client.tuple.dport = 443;
        s.task(&client);
        s.close(&close(80, rt_phase::IDLE, 0));
        // A request never answered: a task without a record, and a failure.
        s.close(&close(80, rt_phase::REQUEST, 0));
        assert!(s.take(&clock, 59_000_000_000, false).is_none());
        let t = s.take(&clock, 60_000_000_000, false).unwrap();
        assert_eq!(t.ports.len(), 2);
        let p = &t.ports[0];
        assert_eq!((p.port, p.side, p.tasks), (80, Side::Server, 2));
        assert_eq!(p.process_avg_ns, 20_000_000);
        assert_eq!(p.total_avg_ns, 20_003_000);
        assert_eq!((p.upload_avg_bytes, p.rtt_avg_ns), (100, 50_000));
        assert_eq!((p.retrans_permille, p.fail_permille), (500, 333));
        assert_eq!((t.ports[1].port, t.ports[1].side), (443, Side::Client));
        // A new interval, empty: nothing at the end either.
        assert!(s.take(&clock, 61_000_000_000, true).is_none());
    }
}
