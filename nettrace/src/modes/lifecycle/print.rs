//! Lifecycle output, compatible with the C nettrace:
//!
//! ```text
//! ***************** e8fbc700,e8fbdc00 ***************
//! [1273445.360831] [ip_rcv              ] ICMP: 169.254.128.15 -> 172.27.0.6 ping request, seq: 54754, id: 1
//! ```
//! `--detail` inserts `[skb][func][cpu:N][dev][ns:inode][pid:N][comm]`.

use nettrace_common::{TraceEvent, trace::event_kind};

use super::track::Packet;
use crate::{
    decode::decode,
    kernel::reasons::DropReasons,
    output::{Clock, cstr},
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

    fn name(&self, ev: &TraceEvent) -> &str {
        self.names
            .get(ev.slot as usize)
            .map(String::as_str)
            .unwrap_or("?")
    }

    /// One event. `prev_ts`: the previous event of the same packet, for
    /// `--latency-show`; `show_packet`: false for `--tiny-show` followers.
    pub fn event(&self, ev: &TraceEvent, show_packet: bool, prev_ts: Option<u64>) -> String {
        let name = self.name(ev);
        let mut parts = vec![format!("[{}]", self.clock.format(ev.ts_ns))];
        if self.style.detail {
            parts.push(format!(
                "[{:08x}][{name:<20}][cpu:{:<3}][{:<6}][ns:{}][pid:{:<7}][{:<12}]",
                ev.skb as u32,
                ev.cpu,
                cstr(&ev.ifname),
                ev.netns,
                ev.pid,
                cstr(&ev.comm)
            ));
        } else {
            parts.push(format!("[{name:<20}]"));
        }
        if show_packet {
            let len = usize::from(ev.hdr_len).min(ev.hdr.len());
            parts.push(decode(ev.l3_proto, &ev.hdr[..len]).to_string());
        }
        if ev.has_extra != 0 {
            match ev.kind {
                event_kind::CLONE => parts.push(format!("clone: {:08x}", ev.extra as u32)),
                event_kind::EXIT => parts.push(format!("ret: {}", ret_value(ev.extra))),
                _ => match self.reason(ev) {
                    Some(Reason::Drop(r)) => parts.push(format!("reason: {r}")),
                    Some(Reason::Reset(r)) => parts.push(format!("reset reason: {r}")),
                    None => {}
                },
            }
        }
        if self.style.latency
            && let Some(prev) = prev_ts
        {
            parts.push(format!(
                "latency: {:.3}ms",
                ev.ts_ns.saturating_sub(prev) as f64 / 1e6
            ));
        }
        parts.join(" ")
    }

    /// One event as a `--json` object (without `v`/`type`: events sit in a
    /// packet record; `--basic` adds them): time, hook, where, who, the
    /// packet's fields, and what the hook reported.
    pub fn event_json(&self, ev: &TraceEvent) -> serde_json::Map<String, serde_json::Value> {
        use serde_json::json;
        let mut m = serde_json::Map::new();
        m.insert("ts_ns".into(), json!(ev.ts_ns));
        m.insert("time".into(), json!(self.clock.format(ev.ts_ns)));
        m.insert("hook".into(), json!(self.name(ev)));
        m.insert("skb".into(), json!(format!("{:x}", ev.skb)));
        m.insert("cpu".into(), json!(ev.cpu));
        m.insert("ifname".into(), json!(cstr(&ev.ifname)));
        m.insert("ifindex".into(), json!(ev.ifindex));
        m.insert("netns".into(), json!(ev.netns));
        m.insert("pid".into(), json!(ev.pid));
        m.insert("comm".into(), json!(cstr(&ev.comm)));
        m.insert("len".into(), json!(ev.pkt_len));
        let len = usize::from(ev.hdr_len).min(ev.hdr.len());
        crate::output::json::legacy::packet_fields(&decode(ev.l3_proto, &ev.hdr[..len]), &mut m);
        if ev.has_extra != 0 {
            match ev.kind {
                event_kind::CLONE => m.insert("clone".into(), json!(format!("{:x}", ev.extra))),
                event_kind::EXIT => m.insert("ret".into(), json!(super::diag::signed(ev.extra))),
                _ => match self.reason(ev) {
                    Some(Reason::Drop(r)) => m.insert("reason".into(), json!(r)),
                    Some(Reason::Reset(r)) => m.insert("reset_reason".into(), json!(r)),
                    None => None,
                },
            };
        }
        m
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

#[cfg(test)]
mod tests {
    use nettrace_common::ethertype;

    use super::*;

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
