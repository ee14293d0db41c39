//! `--tcp-monitor` lines: one per TCP anomaly, as it happens.
//!
//! `[12.345678] [tcp_send_reset       ] TCP: 10.0.0.2:80 -> 10.0.0.1:5000 state:CLOSE netns:4026531840 reason: NO_SOCKET`

use std::io::{self, Write};

use colored::Colorize as _;
use nettrace_common::tcp::{TcpEvent, tp};
use serde::Serialize;

use super::{
    Names,
    fields::{Task, TupleFields, Us},
};
use crate::{
    kernel::reasons::DropReasons,
    output::{Clock, Record, json},
};

/// The event's name: its tracepoint's.
pub fn event_name(kind: u8) -> &'static str {
    super::MONITOR
        .iter()
        .find(|t| t.kind == kind)
        .map_or("tcp", |t| t.name)
}

pub struct Printer {
    pub clock: Clock,
    pub names: Names,
    /// `enum sk_rst_reason` names, empty before 6.10.
    pub resets: DropReasons,
}

impl Printer {
    /// Why: the reset reason or the new congestion state, when the event
    /// has one.
    pub fn why(&self, ev: &TcpEvent) -> Option<(&'static str, String)> {
        match ev.kind {
            tp::SEND_RESET if !self.resets.is_empty() => Some(("reason", self.resets.name(ev.value))),
            tp::CONG_STATE => Some(("cong_state", self.names.ca_state(ev.value))),
            _ => None,
        }
    }

    pub fn record(&self, ev: &TcpEvent) -> Tcp {
        let (reason, cong_state) = match self.why(ev) {
            Some(("reason", r)) => (Some(r), None),
            Some((_, state)) => (None, Some(state)),
            None => (None, None),
        };
        Tcp {
            ts_ns: ev.ts_ns,
            time: self.clock.format(ev.ts_ns),
            event: event_name(ev.kind),
            tuple: TupleFields(ev.tuple),
            state: (ev.sk != 0 || ev.kind == tp::RETRANSMIT_SYNACK).then(|| self.names.state(ev.state)),
            congestion: (ev.srtt_us != 0).then_some(Congestion {
                srtt_ns: Us(ev.srtt_us),
                cwnd: ev.cwnd,
                total_retrans: ev.total_retrans,
            }),
            netns: ev.netns,
            task: Task::of(ev.pid, &ev.comm),
            reason,
            cong_state,
            sk: ev.sk,
        }
    }
}

/// One `--tcp-monitor` event (see the module's doc for the text).
#[derive(Serialize)]
pub struct Tcp {
    ts_ns: u64,
    time: String,
    event: &'static str,
    #[serde(flatten)]
    tuple: TupleFields,
    /// When the event has a socket.
    #[serde(skip_serializing_if = "Option::is_none")]
    state: Option<String>,
    #[serde(flatten)]
    congestion: Option<Congestion>,
    netns: u32,
    #[serde(flatten)]
    task: Option<Task>,
    /// The reset reason, for `tcp_send_reset` on kernels that have them.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// The new congestion state, for `tcp_cong_state_set`.
    #[serde(skip_serializing_if = "Option::is_none")]
    cong_state: Option<String>,
    #[serde(serialize_with = "json::hex")]
    sk: u64,
}

/// The socket's congestion control, when it has a smoothed RTT.
#[derive(Serialize)]
struct Congestion {
    srtt_ns: Us,
    cwnd: u32,
    total_retrans: u32,
}

impl Record for Tcp {
    fn kind(&self) -> &'static str {
        "tcp"
    }

    fn text(&self, w: &mut dyn Write) -> io::Result<()> {
        write!(w, "[{}] [{:<21}] TCP: {}", self.time, self.event, self.tuple)?;
        if let Some(state) = &self.state {
            write!(w, " state:{state}")?;
        }
        if let Some(c) = &self.congestion {
            write!(
                w,
                " srtt:{} cwnd:{} retrans:{}",
                c.srtt_ns, c.cwnd, c.total_retrans
            )?;
        }
        write!(w, " netns:{}", self.netns)?;
        if let Some(t) = &self.task {
            write!(w, "{t}")?;
        }
        if let Some(r) = &self.reason {
            write!(w, " reason: {}", r.red())?;
        }
        if let Some(state) = &self.cong_state {
            write!(w, " cong: {}", state.yellow())?;
        }
        writeln!(w)
    }
}
