//! `--sock`'s records: the socket as the hook saw it.

use std::{
    borrow::Cow,
    io::{self, Write},
};

use nettrace_common::tcp::{SockEvent, sock_source};
use serde::Serialize;

use super::{hook_name, is_rtt_sample};
use crate::{
    modes::tcp::{
        Names,
        fields::{Task, TupleFields, Us},
    },
    output::{Clock, Record, json},
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
    pub fn record(&self, ev: &SockEvent) -> Sock {
        let sock = (ev.sk != 0).then(|| States {
            state: self.names.state(ev.state),
            old_state: (ev.old_state != SockEvent::NO_STATE).then(|| self.names.state(ev.old_state)),
        });
        let full = (ev.full != 0).then(|| Full {
            ca_state: self.names.ca_state(ev.ca_state.into()),
            packets_out: ev.packets_out,
            retrans_out: ev.retrans_out,
            snd_una: ev.snd_una,
            wmem_queued: ev.wmem_queued,
            rmem_alloc: ev.rmem_alloc,
            timer: (ev.timer != 0).then(|| Timer {
                timer: timer_name(ev.timer),
                timer_jiffies: ev.timer_left,
                timer_ns: self
                    .hz
                    .map(|hz| ev.timer_left.saturating_mul(1_000_000_000) / i64::from(hz)),
                hz: self.hz,
            }),
        });
        Sock {
            ts_ns: ev.ts_ns,
            time: self.clock.format(ev.ts_ns),
            hook: hook_name(ev.source, ev.hook),
            hook_type: if ev.source == sock_source::FUNCTION {
                "function"
            } else {
                "tracepoint"
            },
            tuple: TupleFields(ev.tuple),
            sock,
            full,
            rtt: is_rtt_sample(ev).then_some(RttSample {
                rtt_ns: Us(ev.rtt_us),
                rtt_min_ns: Us(ev.rtt_min_us),
                srtt_ns: Us(ev.srtt_us),
            }),
            netns: ev.netns,
            task: Task::of(ev.pid, &ev.comm),
            sk: ev.sk,
        }
    }
}

/// The socket as one hook saw it. Text: `[time] [hook] TCP: ends STATE
/// CA_Open out:(p1 r0) unack:… mem:(w0 r0) timer:(retrans, 1.000s)
/// *rtt:…, rtt_min:…* srtt:… netns:… task:PID/COMM`, the parts present.
#[derive(Serialize)]
pub struct Sock {
    ts_ns: u64,
    time: String,
    hook: &'static str,
    hook_type: &'static str,
    #[serde(flatten)]
    tuple: TupleFields,
    /// When the hook had a socket.
    #[serde(flatten)]
    sock: Option<States>,
    /// A full socket (not a request socket).
    #[serde(flatten)]
    full: Option<Full>,
    /// `tcp_ack_update_rtt`'s sample, named as `--rtt-detail`'s record.
    #[serde(flatten)]
    rtt: Option<RttSample>,
    netns: u32,
    #[serde(flatten)]
    task: Option<Task>,
    #[serde(serialize_with = "json::hex")]
    sk: u64,
}

#[derive(Serialize)]
struct States {
    state: String,
    /// On a state change.
    #[serde(skip_serializing_if = "Option::is_none")]
    old_state: Option<String>,
}

#[derive(Serialize)]
struct Full {
    ca_state: String,
    packets_out: u32,
    retrans_out: u32,
    snd_una: u32,
    wmem_queued: u32,
    rmem_alloc: u32,
    #[serde(flatten)]
    timer: Option<Timer>,
}

/// A pending timer.
#[derive(Serialize)]
struct Timer {
    timer: Cow<'static, str>,
    timer_jiffies: i64,
    /// When the tick rate is known.
    #[serde(skip_serializing_if = "Option::is_none")]
    timer_ns: Option<i64>,
    #[serde(skip)]
    hz: Option<u32>,
}

#[derive(Serialize)]
struct RttSample {
    rtt_ns: Us,
    rtt_min_ns: Us,
    srtt_ns: Us,
}

impl Record for Sock {
    fn kind(&self) -> &'static str {
        "sock"
    }

    fn text(&self, w: &mut dyn Write) -> io::Result<()> {
        write!(w, "[{}] [{:<21}] TCP: {}", self.time, self.hook, self.tuple)?;
        match &self.sock {
            Some(States {
                state,
                old_state: Some(old),
            }) => write!(w, " {old}->{state}")?,
            Some(States { state, .. }) => write!(w, " {state}")?,
            None => {}
        }
        if let Some(f) = &self.full {
            write!(
                w,
                " CA_{} out:(p{} r{}) unack:{} mem:(w{} r{})",
                f.ca_state, f.packets_out, f.retrans_out, f.snd_una, f.wmem_queued, f.rmem_alloc
            )?;
            if let Some(t) = &f.timer {
                write!(w, " timer:({}, {})", t.timer, timer_left(t.timer_jiffies, t.hz))?;
            }
        }
        if let Some(r) = &self.rtt {
            // As `--rtt-detail` (and the C nettrace's sock mode) show it.
            write!(
                w,
                " *rtt:{}, rtt_min:{}* srtt:{}",
                r.rtt_ns, r.rtt_min_ns, r.srtt_ns
            )?;
        }
        write!(w, " netns:{}", self.netns)?;
        if let Some(t) = &self.task {
            write!(w, "{t}")?;
        }
        writeln!(w)
    }
}
