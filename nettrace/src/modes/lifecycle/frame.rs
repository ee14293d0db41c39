//! `-w`: a lifecycle event as a pcapng packet, the event in its comments
//! (what its line says, and what `--detail` would add).

use nettrace_common::{TraceEvent, trace::event_kind};

use super::print::{LinePrinter, Reason};
use crate::{
    attach::Backend,
    output::{
        cstr_ref,
        pcap::{Comments, Frame, PcapOut},
        stack::Symbolizer,
    },
};

/// `-w` in lifecycle tracing: the file, and how each slot's hook is
/// attached (`tracepoint, tp_btf`, `function, fentry`, …).
pub struct LifecyclePcap {
    pub out: PcapOut,
    pub attach_by_slot: Vec<String>,
}

impl LifecyclePcap {
    /// `names_by_slot` and `report` as attaching left them.
    pub fn new(out: PcapOut, names_by_slot: &[String], report: &[(String, Result<Backend, String>)]) -> Self {
        let attach_by_slot = names_by_slot
            .iter()
            .map(|name| {
                let used = report
                    .iter()
                    .find_map(|(n, r)| (n == name).then_some(r.as_ref().ok()).flatten());
                match used {
                    Some(b @ (Backend::TpBtf | Backend::Tracepoint)) => format!("tracepoint, {b}"),
                    Some(b) => format!("function, {b}"),
                    None => String::new(),
                }
            })
            .collect();
        Self { out, attach_by_slot }
    }
}

/// `notes`: `--diag`'s on this event; `latency_ns`: `--latency`'s life;
/// `attach`: how its hook is attached (may be empty).
pub fn frame<'a>(
    printer: &LinePrinter,
    symbols: &Symbolizer,
    ev: &'a TraceEvent,
    notes: &[String],
    latency_ns: Option<u64>,
    attach: &str,
) -> Frame<'a> {
    let name = printer.names.get(ev.slot as usize).map_or("?", String::as_str);
    let hook = if attach.is_empty() {
        name.to_string()
    } else {
        format!("{name} ({attach})")
    };
    let kind = match ev.kind {
        event_kind::EXIT => "exit",
        event_kind::CLONE => "clone",
        _ => "entry",
    };
    let mut c = Comments::default().add("hook", hook).add("event", kind);
    if ev.has_extra != 0 {
        c = match ev.kind {
            event_kind::CLONE => c.add("clone", format_args!("{:#x}", ev.extra)),
            event_kind::EXIT => c.add("ret", super::diag::signed(ev.extra)),
            _ => match printer.reason(ev) {
                Some(Reason::Drop(r)) => c.add("reason", r),
                Some(Reason::Reset(r)) => c.add("reset reason", r),
                None => c,
            },
        };
    }
    let c = c
        .opt(
            "location",
            (ev.location != 0).then(|| symbols.symbolize(ev.location)),
        )
        .add("netns", ev.netns);
    let (container, pod) = printer.owner(ev).comments();
    let mut c = c
        .opt("container", container)
        .opt("pod", pod)
        .add(
            "interface",
            format_args!("{} (ifindex {})", cstr_ref(&ev.ifname), ev.ifindex),
        )
        .add("pid", format_args!("{} ({})", ev.pid, cstr_ref(&ev.comm)))
        .add("skb", format_args!("{:#x}", ev.skb))
        .add("cpu", ev.cpu)
        .opt(
            "latency",
            latency_ns.map(|ns| format!("{:.3}ms", ns as f64 / 1e6)),
        );
    for n in notes {
        c = c.add("diag", n);
    }
    let len = usize::from(ev.hdr_len).min(ev.hdr.len());
    Frame {
        ts_ns: ev.ts_ns,
        skb: ev.skb,
        netns: ev.netns,
        ifindex: ev.ifindex,
        ifname: cstr_ref(&ev.ifname),
        l3_proto: ev.l3_proto,
        hdr: &ev.hdr[..len],
        comments: c.0,
    }
}
