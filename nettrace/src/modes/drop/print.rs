//! `--drop`'s lines and records: the packet, the drop reason named from BTF,
//! the location symbolized from kallsyms (as the C nettrace's droptrace).

use colored::Colorize as _;
use nettrace_common::DropEvent;

use crate::{
    decode::decode,
    kernel::reasons::DropReasons,
    output::{
        Clock, cstr, json,
        stack::{self, Symbolizer},
    },
};

/// Turns drop events into lines.
pub struct Printer {
    reasons: DropReasons,
    clock: Clock,
    pub symbols: Symbolizer,
}

impl Printer {
    pub fn new(reasons: DropReasons, clock: Clock, symbols: Symbolizer) -> Self {
        Self {
            reasons,
            clock,
            symbols,
        }
    }

    /// Reads an event from ring-buffer bytes; `None` if it is too short
    /// (an object/binary mismatch, which would be a bug).
    pub fn parse(bytes: &[u8]) -> Option<DropEvent> {
        (bytes.len() >= size_of::<DropEvent>())
            // SAFETY: DropEvent is plain data; length checked; unaligned read.
            .then(|| unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<DropEvent>()) })
    }

    /// `[142.097193] TCP: … flags:S, reason: NO_SOCKET, tcp_v4_rcv+0x81`
    pub fn line(&self, ev: &DropEvent) -> String {
        let len = usize::from(ev.hdr_len).min(ev.hdr.len());
        let packet = decode(ev.l3_proto, &ev.hdr[..len]);
        let location = self.symbols.symbolize(ev.location);
        if self.reasons.is_empty() {
            format!("[{}] {packet}, {location}", self.clock.format(ev.ts_ns))
        } else {
            let reason = self.reasons.name(ev.reason);
            format!(
                "[{}] {packet}, reason: {}, {location}",
                self.clock.format(ev.ts_ns),
                reason.red()
            )
        }
    }

    /// The `--json` record: `{"v":1,"type":"drop","ts_ns":…,"time":…,
    /// packet fields…,"reason":…,"location":…,"skb":…,"netns":…,
    /// "ifindex":…,"pid":…,"comm":…}`, plus `"stack":[{"addr":…,"sym":…}…]` with `--drop-stack`.
    pub fn json(&self, ev: &DropEvent, stack: bool) -> String {
        use serde_json::json;
        let mut m = json::record("drop");
        m.insert("ts_ns".into(), json!(ev.ts_ns));
        m.insert("time".into(), json!(self.clock.format(ev.ts_ns)));
        let len = usize::from(ev.hdr_len).min(ev.hdr.len());
        json::packet_fields(&decode(ev.l3_proto, &ev.hdr[..len]), &mut m);
        if !self.reasons.is_empty() {
            m.insert("reason".into(), json!(self.reasons.name(ev.reason)));
        }
        m.insert("location".into(), json!(self.symbols.symbolize(ev.location)));
        m.insert("skb".into(), json!(format!("{:x}", ev.skb)));
        m.insert("netns".into(), json!(ev.netns));
        m.insert("ifindex".into(), json!(ev.ifindex));
        m.insert("pid".into(), json!(ev.pid));
        m.insert("comm".into(), json!(cstr(&ev.comm)));
        if stack {
            m.insert(
                "stack".into(),
                stack::json(&self.symbols.frames(ev.stack_id).unwrap_or_default()),
            );
        }
        json::line(m)
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

    /// `Call Stack:` and one `    -> [address]func+0xoff` per frame, innermost first.
    pub fn stack(&self, ev: &DropEvent) -> Vec<String> {
        self.symbols.stack(ev.stack_id)
    }
}

#[cfg(test)]
pub(super) mod tests {
    use nettrace_common::{PKT_HDR_LEN, ethertype};

    use super::*;
    use crate::kernel::kallsyms::Symbols;

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
            p.line(&event(&SYN)),
            "[142.097193] TCP: 127.0.0.1:43582 -> 127.0.0.1:9999 seq:3819454691, ack:0, flags:S, reason: NO_SOCKET, tcp_v4_rcv+0x81"
        );
    }

    #[test]
    fn kernel_without_reasons_omits_the_field() {
        let p = printer(&[]);
        let line = p.line(&event(&SYN));
        assert!(!line.contains("reason"), "{line}");
        assert!(line.ends_with("flags:S, tcp_v4_rcv+0x81"), "{line}");
    }

    #[test]
    fn parse_checks_length() {
        let ev = event(&SYN);
        // SAFETY: viewing a plain-data struct as bytes.
        let bytes =
            unsafe { std::slice::from_raw_parts((&raw const ev).cast::<u8>(), size_of::<DropEvent>()) };
        assert_eq!(Printer::parse(bytes), Some(ev));
        assert_eq!(Printer::parse(&bytes[..100]), None);
        assert_eq!(size_of::<DropEvent>(), 64 + PKT_HDR_LEN);
    }

    #[test]
    fn stack_without_map_says_so() {
        let p = printer(&[]);
        assert_eq!(p.stack(&event(&SYN)), ["Call Stack:", "    (stack not recorded)"]);
    }
}
