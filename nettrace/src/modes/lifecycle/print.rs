//! Lifecycle output, compatible with the C nettrace:
//!
//! ```text
//! ***************** e8fbc700,e8fbdc00 ***************
//! [1273445.360831] [ip_rcv              ] ICMP: 169.254.128.15 -> 172.27.0.6 ping request, seq: 54754, id: 1
//! ```
//! `--detail` inserts `[skb][func][cpu:N][dev][ns:inode][pid:N][comm]`, and
//! `[ctr:NAME]` or `[pod:NAMESPACE/NAME]` after `[ns:inode]` when a
//! container owns the namespace.

use std::io::{self, Write};

use nettrace_common::{TraceEvent, trace::event_kind};
use serde::Serialize;

use super::track::Packet;
use crate::{
    attribution::{Attribution, OwnerFields},
    decode::decode,
    kernel::reasons::DropReasons,
    output::{
        Clock, cstr,
        json::{self, PacketFields},
    },
};

#[derive(Clone, Copy, Debug, Default)]
pub struct Style {
    pub detail: bool,
    pub tiny: bool,
    pub latency: bool,
}

/// What an entry event's extra value names.
#[derive(Clone, Debug, PartialEq)]
pub enum Reason {
    Drop(String),
    Reset(String),
}

pub struct LinePrinter {
    pub clock: Clock,
    /// Hook name per slot.
    pub names: Vec<String>,
    pub reasons: DropReasons,
    /// `enum sk_rst_reason` names, and the slots whose extra value is one.
    pub resets: DropReasons,
    pub reset_by_slot: Vec<bool>,
    pub style: Style,
    /// Container names, when shown (`--detail`, `--json`).
    pub owners: Option<Attribution>,
}

/// A return value: small ints (errno, verdicts) as signed decimals, pointers in hex.
fn ret_value(v: u64) -> String {
    let hi = v >> 32;
    if hi == 0 || hi == 0xffff_ffff {
        (v as u32 as i32).to_string()
    } else {
        format!("{v:#x}")
    }
}

impl LinePrinter {
    /// Whether an entry event carries a reason: `Some(true)` for a TCP reset
    /// reason, `Some(false)` for a drop reason (its value is `ev.extra`).
    pub fn reason_kind(&self, ev: &TraceEvent) -> Option<bool> {
        if ev.has_extra == 0 || ev.kind != event_kind::ENTRY {
            return None;
        }
        let reset = self.reset_by_slot.get(ev.slot as usize).copied().unwrap_or(false);
        let names = if reset { &self.resets } else { &self.reasons };
        (!names.is_empty()).then_some(reset)
    }

    /// The drop or reset reason an entry event carries, by name.
    pub fn reason(&self, ev: &TraceEvent) -> Option<Reason> {
        Some(match self.reason_kind(ev)? {
            true => Reason::Reset(self.resets.name(ev.extra as u32)),
            false => Reason::Drop(self.reasons.name(ev.extra as u32)),
        })
    }

    /// The container or pod owning the event's namespace, when known.
    pub fn owner(&self, ev: &TraceEvent) -> OwnerFields {
        OwnerFields::of(
            self.owners
                .as_ref()
                .and_then(|a| a.owner(u64::from(ev.netns)))
                .as_ref(),
        )
    }

    fn name(&self, ev: &TraceEvent) -> &str {
        self.names.get(ev.slot as usize).map_or("?", String::as_str)
    }

    /// One event's line, without its end. `prev_ts`: the previous event of
    /// the same packet, for `--latency-show`; `show_packet`: false for
    /// `--tiny-show` followers.
    pub fn write_event(
        &self,
        w: &mut dyn Write,
        ev: &TraceEvent,
        show_packet: bool,
        prev_ts: Option<u64>,
    ) -> io::Result<()> {
        let name = self.name(ev);
        write!(w, "[{}]", self.clock.format(ev.ts_ns))?;
        if self.style.detail {
            write!(
                w,
                " [{:08x}][{name:<20}][cpu:{:<3}][{:<6}][ns:{}]",
                ev.skb as u32,
                ev.cpu,
                cstr(&ev.ifname),
                ev.netns,
            )?;
            if let Some(tag) = self.owner(ev).tag() {
                w.write_all(tag.as_bytes())?;
            }
            write!(w, "[pid:{:<7}][{:<12}]", ev.pid, cstr(&ev.comm))?;
        } else {
            write!(w, " [{name:<20}]")?;
        }
        if show_packet {
            let len = usize::from(ev.hdr_len).min(ev.hdr.len());
            write!(w, " {}", decode(ev.l3_proto, &ev.hdr[..len]))?;
        }
        if ev.has_extra != 0 {
            match ev.kind {
                event_kind::CLONE => write!(w, " clone: {:08x}", ev.extra as u32)?,
                event_kind::EXIT => write!(w, " ret: {}", ret_value(ev.extra))?,
                _ => match self.reason(ev) {
                    Some(Reason::Drop(r)) => write!(w, " reason: {r}")?,
                    Some(Reason::Reset(r)) => write!(w, " reset reason: {r}")?,
                    None => {}
                },
            }
        }
        if self.style.latency
            && let Some(prev) = prev_ts
        {
            let ms = ev.ts_ns.saturating_sub(prev) as f64 / 1e6;
            write!(w, " latency: {ms:.3}ms")?;
        }
        Ok(())
    }

    /// One event's `--json` fields: time, hook, where, who, the packet's
    /// fields, and what the hook reported.
    pub fn event_fields(&self, ev: &TraceEvent) -> EventFields {
        let len = usize::from(ev.hdr_len).min(ev.hdr.len());
        let (mut clone, mut ret, mut reason, mut reset_reason) = (None, None, None, None);
        if ev.has_extra != 0 {
            match ev.kind {
                event_kind::CLONE => clone = Some(format!("{:x}", ev.extra)),
                event_kind::EXIT => ret = Some(super::diag::signed(ev.extra)),
                _ => match self.reason(ev) {
                    Some(Reason::Drop(r)) => reason = Some(r),
                    Some(Reason::Reset(r)) => reset_reason = Some(r),
                    None => {}
                },
            }
        }
        EventFields {
            ts_ns: ev.ts_ns,
            time: self.clock.format(ev.ts_ns),
            hook: self.name(ev).to_string(),
            skb: ev.skb,
            cpu: ev.cpu,
            ifname: cstr(&ev.ifname),
            ifindex: ev.ifindex,
            netns: ev.netns,
            pid: ev.pid,
            comm: cstr(&ev.comm),
            owner: self.owner(ev),
            len: ev.pkt_len,
            packet: PacketFields(decode(ev.l3_proto, &ev.hdr[..len])),
            clone,
            ret,
            reason,
            reset_reason,
        }
    }

    /// `***************** e8fbc700,e8fbdc00 ***************`
    pub fn header(&self, p: &Packet) -> String {
        let skbs: Vec<String> = p.skbs.iter().map(|s| format!("{:08x}", *s as u32)).collect();
        format!("***************** {} ***************", skbs.join(","))
    }

    /// Total life of a packet, ns.
    pub fn life(p: &Packet) -> u64 {
        match (p.events.first(), p.events.last()) {
            (Some(a), Some(b)) => b.ts_ns.saturating_sub(a.ts_ns),
            _ => 0,
        }
    }
}

/// An event's `--json` fields (inside a `packet` record, or an `event`
/// record of its own with `--basic`).
#[derive(Serialize)]
pub struct EventFields {
    ts_ns: u64,
    time: String,
    hook: String,
    #[serde(serialize_with = "json::hex")]
    skb: u64,
    cpu: u32,
    ifname: String,
    ifindex: u32,
    netns: u32,
    pid: u32,
    comm: String,
    #[serde(flatten)]
    owner: OwnerFields,
    len: u32,
    #[serde(flatten)]
    packet: PacketFields,
    /// The clone's skb (clone events).
    #[serde(skip_serializing_if = "Option::is_none")]
    clone: Option<String>,
    /// The return value (exit events).
    #[serde(skip_serializing_if = "Option::is_none")]
    ret: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reset_reason: Option<String>,
}

#[cfg(test)]
mod tests {
    use nettrace_common::ethertype;

    use super::*;

    /// What [`LinePrinter::write_event`] writes, as a string.
    trait Line {
        fn event(&self, ev: &TraceEvent, show_packet: bool, prev_ts: Option<u64>) -> String;
    }

    impl Line for LinePrinter {
        fn event(&self, ev: &TraceEvent, show_packet: bool, prev_ts: Option<u64>) -> String {
            let mut out = Vec::new();
            self.write_event(&mut out, ev, show_packet, prev_ts).unwrap();
            String::from_utf8(out).unwrap()
        }
    }

    fn ev(slot: u32, ts: u64) -> TraceEvent {
        // SAFETY: plain data; zero is valid.
        let mut e: TraceEvent = unsafe { std::mem::zeroed() };
        e.slot = slot;
        e.ts_ns = ts;
        e.skb = 0xffff_8880_e8fb_c700;
        e.l3_proto = ethertype::IPV4;
        let ping = [
            0x45, 0, 0, 84, 0, 0, 0x40, 0, 64, 1, 0, 0, 169, 254, 128, 15, 172, 27, 0, 6, 8, 0, 0, 0, 0, 1,
            0xd5, 0xe2,
        ];
        e.hdr[..ping.len()].copy_from_slice(&ping);
        e.hdr_len = ping.len() as u16;
        e.cpu = 3;
        e.pid = 42;
        e.netns = 4026531840;
        e.ifname[..4].copy_from_slice(b"eth0");
        e.comm[..4].copy_from_slice(b"ping");
        e
    }

    fn printer(style: Style) -> LinePrinter {
        LinePrinter {
            clock: Clock::new(false),
            names: vec!["ip_rcv".into(), "kfree_skb".into()],
            reasons: DropReasons::from_values([(3, "SKB_DROP_REASON_NO_SOCKET".to_string())]),
            resets: DropReasons::default(),
            reset_by_slot: Vec::new(),
            style,
            owners: None,
        }
    }

    #[test]
    fn default_line_like_c_nettrace() {
        let p = printer(Style::default());
        assert_eq!(
            p.event(&ev(0, 1_273_445_360_831_000), true, None),
            "[1273445.360831] [ip_rcv              ] ICMP: 169.254.128.15 -> 172.27.0.6 ping request, seq: 54754, id: 1"
        );
    }

    #[test]
    fn detail_tiny_latency_and_reason() {
        let p = printer(Style {
            detail: true,
            tiny: true,
            latency: true,
        });
        let mut e = ev(1, 2_000_016_000);
        e.has_extra = 1;
        e.extra = 3;
        let line = p.event(&e, false, Some(2_000_000_000));
        assert_eq!(
            line,
            "[2.000016] [e8fbc700][kfree_skb           ][cpu:3  ][eth0  ][ns:4026531840][pid:42     ][ping        ] reason: NO_SOCKET latency: 0.016ms"
        );
    }

    #[test]
    fn return_values_and_header() {
        assert_eq!(ret_value(0), "0");
        assert_eq!(ret_value((-1i64) as u64), "-1");
        assert_eq!(ret_value(0xffff_8880_0000_1000), "0xffff888000001000");
        let p = printer(Style::default());
        let pkt = Packet {
            skbs: vec![0xffff_8880_e8fb_c700, 0xe8fb_dc00],
            events: vec![],
            dropped_events: 0,
            live: 0,
            last_ts: 0,
        };
        assert_eq!(
            p.header(&pkt),
            "***************** e8fbc700,e8fbdc00 ***************"
        );
    }
}
