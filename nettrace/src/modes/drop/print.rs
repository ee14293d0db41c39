//! `--drop`'s lines and records: the packet, the drop reason named from BTF,
//! the location symbolized from kallsyms (as the C nettrace's droptrace).

use std::io::{self, Write};

use colored::Colorize as _;
use nettrace_common::DropEvent;
use serde::Serialize;

use crate::{
    attribution::{Attribution, OwnerFields},
    decode::decode,
    kernel::reasons::DropReasons,
    output::{
        Clock, Record, cstr, cstr_ref,
        json::{self, PacketFields},
        pcap::{Comments, Frame},
        stack::{Stack, Symbolizer},
    },
};

/// Turns drop events into records.
pub struct Printer {
    reasons: DropReasons,
    clock: Clock,
    pub symbols: Symbolizer,
    /// Container names, when shown (`--detail`, `--json`).
    pub owners: Option<Attribution>,
    /// `--detail`: the text line ends with netns, pid, comm and owner.
    pub detail: bool,
}

impl Printer {
    pub fn new(reasons: DropReasons, clock: Clock, symbols: Symbolizer) -> Self {
        Self {
            reasons,
            clock,
            symbols,
            owners: None,
            detail: false,
        }
    }

    /// The record of one drop; `stack`: `--drop-stack`.
    pub fn record(&self, ev: &DropEvent, stack: bool) -> Drop {
        let len = usize::from(ev.hdr_len).min(ev.hdr.len());
        Drop {
            ts_ns: ev.ts_ns,
            time: self.clock.format(ev.ts_ns),
            packet: PacketFields(decode(ev.l3_proto, &ev.hdr[..len])),
            reason: (!self.reasons.is_empty()).then(|| self.reasons.name(ev.reason)),
            location: self.symbols.symbolize(ev.location),
            skb: ev.skb,
            netns: ev.netns,
            ifindex: ev.ifindex,
            pid: ev.pid,
            comm: cstr(&ev.comm),
            owner: self.owner(ev),
            stack: stack.then(|| self.symbols.stack(ev.stack_id)),
            detail: self.detail,
        }
    }

    /// The drop for `-w`: its packet, and the event in comments.
    pub fn frame<'a>(&self, ev: &'a DropEvent) -> Frame<'a> {
        let (reason, location) = self.reason_and_location(ev);
        let (container, pod) = self.owner(ev).comments();
        let comments = Comments::default()
            .add("hook", "kfree_skb (tracepoint skb:kfree_skb)")
            .add("event", "drop")
            .opt("reason", (!self.reasons.is_empty()).then_some(reason))
            .add("location", location)
            .add("netns", ev.netns)
            .opt("container", container)
            .opt("pod", pod)
            .add(
                "interface",
                format_args!("{} (ifindex {})", cstr(&ev.ifname), ev.ifindex),
            )
            .add("pid", format_args!("{} ({})", ev.pid, cstr(&ev.comm)))
            .add("skb", format_args!("{:#x}", ev.skb));
        let len = usize::from(ev.hdr_len).min(ev.hdr.len());
        Frame {
            ts_ns: ev.ts_ns,
            skb: ev.skb,
            netns: ev.netns,
            ifindex: ev.ifindex,
            ifname: cstr_ref(&ev.ifname),
            l3_proto: ev.l3_proto,
            hdr: &ev.hdr[..len],
            comments: comments.0,
        }
    }

    fn owner(&self, ev: &DropEvent) -> OwnerFields {
        OwnerFields::of(
            self.owners
                .as_ref()
                .and_then(|a| a.owner(u64::from(ev.netns)))
                .as_ref(),
        )
    }

    /// The drop reason's name (`None` on kernels without drop reasons) and
    /// the symbolized location, for `--metrics`.
    pub fn reason_and_location(&self, ev: &DropEvent) -> (String, String) {
        let reason = if self.reasons.is_empty() {
            "unknown".to_string()
        } else {
            self.reasons.name(ev.reason)
        };
        (reason, self.symbols.symbolize(ev.location))
    }
}

/// One drop. Text: `[142.097193] TCP: … flags:S, reason: NO_SOCKET,
/// tcp_v4_rcv+0x81`, then the `Call Stack:` block with `--drop-stack`.
/// JSON: `{"v":1,"type":"drop","ts_ns":…,"time":…, packet fields…,
/// "reason":…,"location":…,"skb":…,"netns":…,"ifindex":…,"pid":…,
/// "comm":…}`, `"container":{"runtime":…,"id":…,"name":…}` and
/// `"pod":{"namespace":…,"name":…}` when known, plus
/// `"stack":[{"addr":…,"sym":…}…]` with `--drop-stack`. `--detail` ends
/// the text line with ` netns:N pid:N comm:NAME [ctr:NAME]`.
#[derive(Serialize)]
pub struct Drop {
    ts_ns: u64,
    time: String,
    #[serde(flatten)]
    packet: PacketFields,
    /// `None` on kernels without drop reasons.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    location: String,
    #[serde(serialize_with = "json::hex")]
    skb: u64,
    netns: u32,
    ifindex: u32,
    pid: u32,
    comm: String,
    #[serde(flatten)]
    owner: OwnerFields,
    #[serde(skip_serializing_if = "Option::is_none")]
    stack: Option<Stack>,
    #[serde(skip)]
    detail: bool,
}

impl Record for Drop {
    fn kind(&self) -> &'static str {
        "drop"
    }

    fn text(&self, w: &mut dyn Write) -> io::Result<()> {
        let (time, packet, location) = (&self.time, &self.packet.0, &self.location);
        match &self.reason {
            None => write!(w, "[{time}] {packet}, {location}")?,
            Some(r) => write!(w, "[{time}] {packet}, reason: {}, {location}", r.red())?,
        }
        if self.detail {
            write!(w, " netns:{} pid:{} comm:{}", self.netns, self.pid, self.comm)?;
            if let Some(tag) = self.owner.tag() {
                write!(w, " {tag}")?;
            }
        }
        writeln!(w)?;
        match &self.stack {
            Some(s) => s.text(w),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use nettrace_common::ethertype;

    use super::*;
    use crate::{
        events::{Record, record},
        kernel::kallsyms::Symbols,
        output::record::text_of,
    };

    /// The text line of a drop without its stack.
    fn line(p: &Printer, ev: &DropEvent) -> String {
        text_of(&p.record(ev, false)).trim_end().to_string()
    }

    pub fn event(hdr: &[u8]) -> DropEvent {
        let mut ev = DropEvent::zeroed();
        ev.ts_ns = 142_097_193_000;
        ev.location = 0xffffffff81c6f0b1;
        ev.reason = 3;
        ev.l3_proto = ethertype::IPV4;
        ev.hdr[..hdr.len()].copy_from_slice(hdr);
        ev.hdr_len = hdr.len() as u16;
        ev
    }

    pub fn printer(reasons: &[(u64, &str)]) -> Printer {
        colored::control::set_override(false);
        let reasons = DropReasons::from_values(reasons.iter().map(|(v, n)| (*v, n.to_string())));
        let syms = Symbols::parse("ffffffff81c6f030 T tcp_v4_rcv\n");
        Printer::new(reasons, Clock::new(false), Symbolizer::with_symbols(syms))
    }

    pub const SYN: [u8; 40] = [
        0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1, // IPv4
        0xaa, 0x3e, 0x27, 0x0f, 0xe3, 0xa8, 0x40, 0xe3, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0,
        0, // TCP
    ];

    #[test]
    fn line_matches_c_nettrace() {
        let p = printer(&[(3, "SKB_DROP_REASON_NO_SOCKET")]);
        assert_eq!(
            line(&p, &event(&SYN)),
            "[142.097193] TCP: 127.0.0.1:43582 -> 127.0.0.1:9999 seq:3819454691, ack:0, flags:S, reason: NO_SOCKET, tcp_v4_rcv+0x81"
        );
    }

    #[test]
    fn kernel_without_reasons_omits_the_field() {
        let p = printer(&[]);
        let line = line(&p, &event(&SYN));
        assert!(!line.contains("reason"), "{line}");
        assert!(line.ends_with("flags:S, tcp_v4_rcv+0x81"), "{line}");
    }

    /// The size itself is asserted where `DropEvent` is defined.
    #[test]
    fn decode_checks_length() {
        let ev = event(&SYN);
        let bytes = record::bytes_of(&ev);
        assert_eq!(Record::decode(&bytes), Ok(Record::Drop(ev)));
        assert!(Record::decode(&bytes[..100]).is_err());
    }

    #[test]
    fn stack_without_map_says_so() {
        let p = printer(&[]);
        assert_eq!(
            text_of(&p.record(&event(&SYN), true))
                .lines()
                .skip(1)
                .collect::<Vec<_>>(),
            ["Call Stack:", "    (stack not recorded)"]
        );
    }
}
