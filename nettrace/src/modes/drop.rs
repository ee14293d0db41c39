//! `--drop`: every packet the kernel frees as dropped (`skb:kfree_skb`), with
//! the drop reason named from BTF and the location symbolized from kallsyms.
//! Replaces dropwatch and the C nettrace's droptrace.

use std::path::Path;

use anyhow::{Context as _, bail};
use aya::{
    Btf, Ebpf,
    programs::{BtfTracePoint, TracePoint},
};
use colored::Colorize as _;
use nettrace_common::{DropEvent, KernelLayout, drop::DropArgs};

use crate::load::Logged as _;
use crate::{
    cli::BackendChoice,
    decode::decode,
    kernel::{btf::KernelBtf, caps::Capabilities, reasons::DropReasons, tracefs},
    output::{
        Clock, cstr, json,
        stack::{self, Symbolizer},
    },
};

const TP: (&str, &str) = ("skb", "kfree_skb");

/// Argument positions for both backends: (tp_btf indices, classic offsets).
/// A backend whose description cannot be read gets `None`.
pub fn args(btf: &KernelBtf, tracefs: Option<&Path>) -> (Option<DropArgs>, Option<DropArgs>) {
    let btf_args = btf.tracepoint_args(TP.1).ok().and_then(|args| {
        // By name where BTF has names, else by type: the skb is the only
        // `struct sk_buff *`, the reason the only `enum skb_drop_reason`,
        // the location the first `void *`.
        let find = |name: &str, ty: &str| {
            let pos = args.iter().position(|a| a.name == name);
            pos.or_else(|| args.iter().position(|a| a.ty == ty))
                .map(|i| i as u32)
        };
        Some(DropArgs {
            skb: find("skb", "struct sk_buff *")?,
            location: find("location", "void *")?,
            reason: find("reason", "enum skb_drop_reason").unwrap_or(KernelLayout::NONE),
            _pad: 0,
        })
    });
    let tp_args = tracefs
        .and_then(|root| tracefs::format(root, TP.0, TP.1).ok())
        .and_then(|f| {
            Some(DropArgs {
                skb: f.get("skbaddr")?.offset,
                location: f.get("location")?.offset,
                reason: f.get("reason").map(|r| r.offset).unwrap_or(KernelLayout::NONE),
                _pad: 0,
            })
        });
    (btf_args, tp_args)
}

/// Loads and attaches the drop program with the backend `choice` allows and
/// the kernel supports; returns a description for `--debug`.
pub fn attach(
    ebpf: &mut Ebpf,
    choice: BackendChoice,
    caps: &Capabilities,
    btf: Option<&Btf>,
    have_btf_args: bool,
    have_tp_args: bool,
) -> anyhow::Result<&'static str> {
    let try_btf = matches!(choice, BackendChoice::Auto | BackendChoice::TpBtf);
    let mut why_not_btf = String::new();
    if try_btf {
        match (btf, caps.tp_btf.as_ref(), have_btf_args) {
            (Some(btf), Ok(()), true) => {
                let p: &mut BtfTracePoint = ebpf
                    .program_mut("drop_tp_btf")
                    .context("drop_tp_btf missing")?
                    .try_into()?;
                p.load(TP.1, btf)
                    .logged("program drop_tp_btf")
                    .context("load tp_btf/kfree_skb")?;
                p.attach().context("attach tp_btf/kfree_skb")?;
                return Ok("tp_btf/kfree_skb");
            }
            (_, Err(e), _) => why_not_btf = e.clone(),
            (_, _, false) => why_not_btf = "BTF does not describe kfree_skb's arguments".into(),
            (None, ..) => why_not_btf = "no kernel BTF".into(),
        }
        if choice == BackendChoice::TpBtf {
            bail!("--backend tp-btf: not available here: {why_not_btf}");
        }
    }
    if !have_tp_args {
        bail!("cannot attach skb:kfree_skb: tp_btf unusable ({why_not_btf}) and no tracefs format for it");
    }
    let p: &mut TracePoint = ebpf
        .program_mut("drop_tracepoint")
        .context("drop_tracepoint missing")?
        .try_into()?;
    p.load()
        .logged("program drop_tracepoint")
        .context("load tracepoint skb:kfree_skb")?;
    p.attach(TP.0, TP.1).context("attach tracepoint skb:kfree_skb")?;
    Ok("tracepoint skb:kfree_skb")
}

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
mod tests {
    use nettrace_common::ethertype;

    use super::*;
    use crate::{
        events::{Record, record},
        kernel::kallsyms::Symbols,
    };

    fn event(hdr: &[u8]) -> DropEvent {
        let mut ev = DropEvent::zeroed();
        ev.ts_ns = 142_097_193_000;
        ev.location = 0xffffffff81c6f0b1;
        ev.reason = 3;
        ev.l3_proto = ethertype::IPV4;
        ev.hdr[..hdr.len()].copy_from_slice(hdr);
        ev.hdr_len = hdr.len() as u16;
        ev
    }

    fn printer(reasons: &[(u64, &str)]) -> Printer {
        colored::control::set_override(false);
        let reasons = DropReasons::from_values(reasons.iter().map(|(v, n)| (*v, n.to_string())));
        let syms = Symbols::parse("ffffffff81c6f030 T tcp_v4_rcv\n");
        Printer::new(reasons, Clock::new(false), Symbolizer::with_symbols(syms))
    }

    const SYN: [u8; 40] = [
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
        assert_eq!(p.stack(&event(&SYN)), ["Call Stack:", "    (stack not recorded)"]);
    }
}
