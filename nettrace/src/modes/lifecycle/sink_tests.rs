//! Pins the exact text and JSON the lifecycle sink writes: grouped packets
//! (with `--diag` notes and findings, `--trace-stack`, events not kept,
//! `--latency-show`), `--basic` and `--latency` events.

use nettrace_common::{TraceEvent, ethertype, trace::event_kind};

use super::*;
use crate::{
    catalogue::Rule,
    kernel::{kallsyms::Symbols, reasons::DropReasons},
    modes::lifecycle::{netfilter::NfNotes, print::Style},
    output::{Clock, golden},
};

fn ev(slot: u32, ts: u64) -> TraceEvent {
    // SAFETY: plain data; zero is valid.
    let mut e: TraceEvent = unsafe { std::mem::zeroed() };
    e.slot = slot;
    e.ts_ns = ts;
    e.skb = 0xffff_8880_e8fb_c700;
    e.l3_proto = ethertype::IPV4;
    let ping = [
        0x45, 0, 0, 84, 0, 0, 0x40, 0, 64, 1, 0, 0, 169, 254, 128, 15, 172, 27, 0, 6, 8, 0, 0, 0, 0, 1, 0xd5,
        0xe2,
    ];
    e.hdr[..ping.len()].copy_from_slice(&ping);
    e.hdr_len = ping.len() as u16;
    e.pkt_len = 84;
    e.cpu = 3;
    e.pid = 42;
    e.ifindex = 2;
    e.netns = 4026531840;
    e.ifname[..4].copy_from_slice(b"eth0");
    e.comm[..4].copy_from_slice(b"ping");
    e.stack_id = -1;
    e
}

/// Slots: 0 `ip_rcv`, 1 `kfree_skb` (frees; stack shown), 2 `ip_output`
/// (a function: exit events carry its return value), 3 `tcp_send_reset`.
fn sink(json: bool, basic: bool, diag: bool, style: Style) -> LifecycleSink<Vec<u8>> {
    colored::control::set_override(false);
    let rule = |yaml: &str| -> Rule { serde_yaml::from_str(yaml).unwrap() };
    let diag = diag.then(|| DiagState {
        opts: crate::cli::Diag {
            keep: true,
            ..Default::default()
        },
        rules_by_slot: vec![
            vec![rule("{level: info, msg: packet received}")],
            vec![rule(
                "{level: error, msg: packet is dropped by kernel, reason: NO_SOCKET, adv: check the port}",
            )],
            vec![rule("{level: warn, msg: output failed, ret: {lt: 0}}")],
            vec![],
        ],
        group_by_slot: vec!["ip".into(), "life".into(), "ip".into(), "tcp".into()],
        netfilter_drop_at: None,
        nf_hooks: None,
        nf_notes: NfNotes::new(Default::default()),
        flags_by_slot: vec![0; 4],
    });
    LifecycleSink {
        printer: LinePrinter {
            clock: Clock::new(false),
            names: ["ip_rcv", "kfree_skb", "ip_output", "tcp_send_reset"]
                .map(String::from)
                .to_vec(),
            reasons: DropReasons::from_values([(3, "SKB_DROP_REASON_NO_SOCKET".to_string())]),
            resets: DropReasons::from_values([(2, "SK_RST_REASON_NO_SOCKET".to_string())]),
            reset_by_slot: vec![false, false, false, true],
            style,
            owners: None,
        },
        diag,
        symbols: Symbolizer::with_symbols(Symbols::parse("ffffffff81c6f030 T tcp_v4_rcv\n")),
        tracker: Tracker::default(),
        out: Out::to(Vec::new()).with_format(crate::output::Format::from_json_flag(json)),
        free_by_slot: vec![false, true, false, false],
        print_stack_by_slot: vec![false, true, false, false],
        basic,
        metrics: None,
        min_latency_ns: 0,
        latency: false,
        latency_hist: None,
        func_stats: None,
        progress: Progress::new(None),
        diagnosed: false,
        pcap: None,
    }
}

/// A ping received, sent through a function that failed (exit -1), cloned,
/// a reset sent for it, then dropped with NO_SOCKET.
fn packet_events() -> Vec<TraceEvent> {
    let mut out = ev(2, 2_000_004_000);
    out.kind = event_kind::EXIT;
    out.has_extra = 1;
    out.extra = (-1i64) as u64;
    let mut clone = ev(0, 2_000_005_000);
    clone.kind = event_kind::CLONE;
    clone.has_extra = 1;
    clone.extra = 0xffff_8880_e8fb_dc00;
    let mut reset = ev(3, 2_000_006_000);
    reset.has_extra = 1;
    reset.extra = 2;
    let mut drop = ev(1, 2_000_016_000);
    drop.has_extra = 1;
    drop.extra = 3;
    drop.location = 0xffffffff81c6f0b1;
    drop.stack_id = 4;
    vec![ev(0, 2_000_000_000), out, clone, reset, drop]
}

/// Everything the sink writes for these events, then at exit.
fn output(mut s: LifecycleSink<Vec<u8>>, events: &[TraceEvent]) -> String {
    for e in events {
        s.event(Record::Trace(*e));
    }
    s.finish().unwrap();
    String::from_utf8(s.out.into_inner()).unwrap()
}

#[test]
fn golden_packets() {
    let mut out = String::new();
    for json in [false, true] {
        out += &output(sink(json, false, false, Style::default()), &packet_events());
        out += &output(sink(json, false, true, Style::default()), &packet_events());
        let style = Style {
            detail: true,
            tiny: true,
            latency: true,
        };
        out += &output(sink(json, false, true, style), &packet_events());
    }
    golden::check("lifecycle/packets", &out);
}

#[test]
fn golden_events_not_kept() {
    let mut events: Vec<TraceEvent> = (0..tracking_limit())
        .map(|i| ev(0, 1_000_000_000 + i as u64))
        .collect();
    events.push(ev(1, 3_000_000_000));
    let text = output(sink(false, false, false, Style::default()), &events);
    let tail: Vec<&str> = text.lines().rev().take(3).collect();
    let json = output(sink(true, false, false, Style::default()), &events);
    let end = &json[json.rfind("}]").unwrap()..];
    golden::check("lifecycle/not_kept", &format!("{tail:?}\n{end}"));
}

fn tracking_limit() -> usize {
    track::MAX_EVENTS_PER_PACKET + 2
}

#[test]
fn golden_basic_and_latency() {
    let mut out = String::new();
    for json in [false, true] {
        out += &output(sink(json, true, false, Style::default()), &packet_events());
        let mut s = sink(json, true, false, Style::default());
        s.latency = true;
        let mut free = ev(1, 2_000_016_000);
        free.life_ns = 16_123_456;
        free.stack_id = 4;
        out += &output(s, &[free]);
    }
    golden::check("lifecycle/basic", &out);
}
