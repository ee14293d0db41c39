//! `--sock`'s lines and records: the socket as the hook saw it.

use std::borrow::Cow;

use nettrace_common::tcp::{SockEvent, sock_source};
use serde_json::json;

use super::{hook_name, is_rtt_sample};
use crate::{
    modes::tcp::{Names, ms, tuple_json, tuple_text},
    output::{Clock, cstr, json},
};

/// The pending-timer kinds, `ICSK_TIME_*` of the kernel's
/// `include/net/inet_connection_sock.h`. They are `#define`s, so BTF cannot
/// name them; the values have been stable since they were introduced
/// (4, `ICSK_TIME_KEEPOPEN`, is no longer set by current kernels). Any other
/// value is shown as its number.
pub fn timer_name(v: u8) -> Cow<'static, str> {
    match v {
        1 => "retrans".into(),
        2 => "delack".into(),
        3 => "probe0".into(),
        4 => "keepalive".into(),
        5 => "loss_probe".into(),
        6 => "reo_timeout".into(),
        n => n.to_string().into(),
    }
}

/// Jiffies as time at `hz` ticks per second: `1.000s`, `-0.004s`
/// (overdue); plain jiffies when the tick rate is unknown.
pub fn timer_left(jiffies: i64, hz: Option<u32>) -> String {
    match hz {
        Some(hz) => {
            let ms = jiffies.saturating_mul(1000) / i64::from(hz);
            let sign = if ms < 0 { "-" } else { "" };
            format!(
                "{sign}{}.{:03}s",
                ms.unsigned_abs() / 1000,
                ms.unsigned_abs() % 1000
            )
        }
        None => format!("{jiffies} jiffies"),
    }
}

pub struct Printer {
    pub clock: Clock,
    pub names: Names,
    /// The kernel's tick rate (`kernel::hz`), `None` when unknown.
    pub hz: Option<u32>,
}

impl Printer {
    /// `ESTABLISHED`, or `SYN_SENT->ESTABLISHED` for a state change.
    fn state(&self, ev: &SockEvent) -> String {
        if ev.old_state == SockEvent::NO_STATE {
            self.names.state(ev.state)
        } else {
            format!(
                "{}->{}",
                self.names.state(ev.old_state),
                self.names.state(ev.state)
            )
        }
    }

    pub fn line(&self, ev: &SockEvent) -> String {
        let mut s = format!(
            "[{}] [{:<21}] TCP: {}",
            self.clock.format(ev.ts_ns),
            hook_name(ev.source, ev.hook),
            tuple_text(&ev.tuple)
        );
        if ev.sk != 0 {
            s += " ";
            s += &self.state(ev);
        }
        if ev.full != 0 {
            s += &format!(
                " CA_{} out:(p{} r{}) unack:{} mem:(w{} r{})",
                self.names.ca_state(ev.ca_state.into()),
                ev.packets_out,
                ev.retrans_out,
                ev.snd_una,
                ev.wmem_queued,
                ev.rmem_alloc
            );
            if ev.timer != 0 {
                s += &format!(
                    " timer:({}, {})",
                    timer_name(ev.timer),
                    timer_left(ev.timer_left, self.hz)
                );
            }
        }
        if is_rtt_sample(ev) {
            // As `--rtt-detail` (and the C nettrace's sock mode) show it.
            s += &format!(
                " *rtt:{}, rtt_min:{}* srtt:{}",
                ms(ev.rtt_us.into()),
                ms(ev.rtt_min_us.into()),
                ms(ev.srtt_us.into())
            );
        }
        s += &format!(" netns:{}", ev.netns);
        if ev.pid != 0 {
            s += &format!(" task:{}/{}", ev.pid, cstr(&ev.comm));
        }
        s
    }

    pub fn json(&self, ev: &SockEvent) -> String {
        let mut m = json::legacy::record("sock");
        m.insert("ts_ns".into(), json!(ev.ts_ns));
        m.insert("time".into(), json!(self.clock.format(ev.ts_ns)));
        m.insert("hook".into(), json!(hook_name(ev.source, ev.hook)));
        m.insert(
            "hook_type".into(),
            json!(if ev.source == sock_source::FUNCTION {
                "function"
            } else {
                "tracepoint"
            }),
        );
        tuple_json(&ev.tuple, &mut m);
        if ev.sk != 0 {
            m.insert("state".into(), json!(self.names.state(ev.state)));
            if ev.old_state != SockEvent::NO_STATE {
                m.insert("old_state".into(), json!(self.names.state(ev.old_state)));
            }
        }
        if ev.full != 0 {
            m.insert("ca_state".into(), json!(self.names.ca_state(ev.ca_state.into())));
            m.insert("packets_out".into(), json!(ev.packets_out));
            m.insert("retrans_out".into(), json!(ev.retrans_out));
            m.insert("snd_una".into(), json!(ev.snd_una));
            m.insert("wmem_queued".into(), json!(ev.wmem_queued));
            m.insert("rmem_alloc".into(), json!(ev.rmem_alloc));
            if ev.timer != 0 {
                m.insert("timer".into(), json!(timer_name(ev.timer)));
                m.insert("timer_jiffies".into(), json!(ev.timer_left));
                if let Some(hz) = self.hz {
                    m.insert(
                        "timer_ns".into(),
                        json!(ev.timer_left.saturating_mul(1_000_000_000) / i64::from(hz)),
                    );
                }
            }
        }
        if is_rtt_sample(ev) {
            // The names of `--rtt-detail`'s `rtt` record.
            m.insert("rtt_ns".into(), json!(u64::from(ev.rtt_us) * 1000));
            m.insert("rtt_min_ns".into(), json!(u64::from(ev.rtt_min_us) * 1000));
            m.insert("srtt_ns".into(), json!(u64::from(ev.srtt_us) * 1000));
        }
        m.insert("netns".into(), json!(ev.netns));
        if ev.pid != 0 {
            m.insert("pid".into(), json!(ev.pid));
            m.insert("comm".into(), json!(cstr(&ev.comm)));
        }
        m.insert("sk".into(), json!(format!("{:x}", ev.sk)));
        json::legacy::line(m)
    }
}
