//! `--tcp-monitor` lines: one per TCP anomaly, as it happens.
//!
//! `[12.345678] [tcp_send_reset       ] TCP: 10.0.0.2:80 -> 10.0.0.1:5000 state:CLOSE netns:4026531840 reason: NO_SOCKET`

use colored::Colorize as _;
use nettrace_common::tcp::{TcpEvent, tp};
use serde_json::json;

use super::{Names, ms, tuple_json, tuple_text};
use crate::{
    kernel::reasons::DropReasons,
    output::{Clock, cstr, json},
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

    pub fn line(&self, ev: &TcpEvent) -> String {
        let mut s = format!(
            "[{}] [{:<21}] TCP: {}",
            self.clock.format(ev.ts_ns),
            event_name(ev.kind),
            tuple_text(&ev.tuple)
        );
        if ev.sk != 0 || ev.kind == tp::RETRANSMIT_SYNACK {
            s += &format!(" state:{}", self.names.state(ev.state));
        }
        if ev.srtt_us != 0 {
            s += &format!(
                " srtt:{} cwnd:{} retrans:{}",
                ms(ev.srtt_us.into()),
                ev.cwnd,
                ev.total_retrans
            );
        }
        s += &format!(" netns:{}", ev.netns);
        if ev.pid != 0 {
            s += &format!(" task:{}/{}", ev.pid, cstr(&ev.comm));
        }
        match self.why(ev) {
            Some(("reason", r)) => s += &format!(" reason: {}", r.red()),
            Some((_, state)) => s += &format!(" cong: {}", state.yellow()),
            None => {}
        }
        s
    }

    pub fn json(&self, ev: &TcpEvent) -> String {
        let mut m = json::legacy::record("tcp");
        m.insert("ts_ns".into(), json!(ev.ts_ns));
        m.insert("time".into(), json!(self.clock.format(ev.ts_ns)));
        m.insert("event".into(), json!(event_name(ev.kind)));
        tuple_json(&ev.tuple, &mut m);
        if ev.sk != 0 || ev.kind == tp::RETRANSMIT_SYNACK {
            m.insert("state".into(), json!(self.names.state(ev.state)));
        }
        if ev.srtt_us != 0 {
            m.insert("srtt_ns".into(), json!(u64::from(ev.srtt_us) * 1000));
            m.insert("cwnd".into(), json!(ev.cwnd));
            m.insert("total_retrans".into(), json!(ev.total_retrans));
        }
        m.insert("netns".into(), json!(ev.netns));
        if ev.pid != 0 {
            m.insert("pid".into(), json!(ev.pid));
            m.insert("comm".into(), json!(cstr(&ev.comm)));
        }
        if let Some((k, v)) = self.why(ev) {
            m.insert(k.into(), json!(v));
        }
        m.insert("sk".into(), json!(format!("{:x}", ev.sk)));
        json::legacy::line(m)
    }
}
