//! `--rt`'s connection summaries: one line when a timed connection is
//! destroyed, what tcprt logs as its E record, or W / N when the
//! connection went while a response was being sent (not all of it
//! acknowledged) or while a request was being received (no response yet).
//!
//! `[12.345678] TCP: 10.0.0.2:8080 -> 10.0.0.1:51000 closed tasks:8 sent:24000B unacked:0B received:96B retrans:0 rtt_min:0.031ms srtt:0.040ms netns:4026531840`

use std::io::{self, Write};

use nettrace_common::tcp::{RtCloseEvent, rt_phase};
use serde::Serialize;

use super::super::fields::{TupleFields, Us};
use crate::output::{Clock, Record};

/// How a timed connection ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum End {
    /// Between tasks, or after the last response was acknowledged (E).
    Closed,
    /// With a response not fully acknowledged (W).
    ClosedWhileSending,
    /// With a request received and no response sent (N).
    ClosedWhileReceiving,
}

impl End {
    /// A server is sending in a task's response phase and receiving in
    /// its request phase; a client sends the request and then receives
    /// (once the request is acknowledged, until the response begins: a
    /// response cut short is not told from a complete one without the
    /// protocol).
    pub fn of(ev: &RtCloseEvent) -> Self {
        match (ev.client != 0, ev.phase, ev.acked != 0) {
            (false, rt_phase::REQUEST, _) => End::ClosedWhileReceiving,
            (false, rt_phase::RESPONSE, false) => End::ClosedWhileSending,
            (true, rt_phase::REQUEST, false) => End::ClosedWhileSending,
            (true, rt_phase::REQUEST, true) => End::ClosedWhileReceiving,
            _ => End::Closed,
        }
    }

    /// The text token.
    pub fn text(self) -> &'static str {
        match self {
            End::Closed => "closed",
            End::ClosedWhileSending => "closed-while-sending",
            End::ClosedWhileReceiving => "closed-while-receiving",
        }
    }

    /// Its JSON (and metrics label) name.
    pub fn name(self) -> &'static str {
        match self {
            End::Closed => "closed",
            End::ClosedWhileSending => "closed_while_sending",
            End::ClosedWhileReceiving => "closed_while_receiving",
        }
    }

    /// tcprt's record letter.
    pub fn tcprt(self) -> &'static str {
        match self {
            End::Closed => "E",
            End::ClosedWhileSending => "W",
            End::ClosedWhileReceiving => "N",
        }
    }
}

pub fn record(clock: &Clock, ev: &RtCloseEvent) -> RtClose {
    let end = End::of(ev);
    RtClose {
        ts_ns: ev.ts_ns,
        time: clock.format(ev.ts_ns),
        tuple: TupleFields(ev.tuple),
        end,
        tcprt: end.tcprt(),
        tasks: ev.tasks,
        sent_bytes: ev.sent_bytes,
        unacked_bytes: ev.unacked_bytes,
        received_bytes: ev.received_bytes,
        retrans: ev.retrans,
        rtt_min_ns: Us(ev.rtt_min_us),
        srtt_ns: Us(ev.srtt_us),
        netns: ev.netns,
    }
}

/// One connection's end (see the module's doc for the text).
#[derive(Serialize)]
pub struct RtClose {
    ts_ns: u64,
    time: String,
    #[serde(flatten)]
    tuple: TupleFields,
    end: End,
    /// tcprt's letter for `end`: E, W or N.
    tcprt: &'static str,
    /// Tasks on the connection: the last one's number.
    tasks: u32,
    /// Payload the application sent while the connection was timed, and
    /// the part of it the peer had not acknowledged.
    sent_bytes: u64,
    unacked_bytes: u64,
    /// Payload received while timed, each byte once.
    received_bytes: u64,
    /// Retransmitted segments over the connection's life.
    retrans: u32,
    rtt_min_ns: Us,
    srtt_ns: Us,
    netns: u32,
}

impl Record for RtClose {
    fn kind(&self) -> &'static str {
        "rt_close"
    }

    fn text(&self, w: &mut dyn Write) -> io::Result<()> {
        writeln!(
            w,
            "[{}] TCP: {} {} tasks:{} sent:{}B unacked:{}B received:{}B retrans:{} rtt_min:{} srtt:{} netns:{}",
            self.time,
            self.tuple,
            self.end.text(),
            self.tasks,
            self.sent_bytes,
            self.unacked_bytes,
            self.received_bytes,
            self.retrans,
            self.rtt_min_ns,
            self.srtt_ns,
            self.netns,
        )
    }
}
