//! `--drop`: one event per freed-with-a-reason packet, from `skb:kfree_skb`.
//!
//! Two entry points reach the same handler: `tp_btf` (typed arguments, the
//! preferred backend) and the classic tracepoint (record at offsets read from
//! tracefs's `format` file) for kernels where `tp_btf` does not load.

use aya_ebpf::{
    EbpfContext,
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::{btf_tracepoint, map, tracepoint},
    maps::PerCpuArray,
    programs::{BtfTracePointContext, TracePointContext, tracing::StackIdContext},
};
use nettrace_common::{DropConfig, DropEvent, KernelLayout, PKT_HDR_LEN};

use crate::{
    filter::{expression_matches, packet_matches},
    maps::{STACKS, netns_allowed, send},
    ratelimit,
    read::current_comm,
    skb::{Direct, Meta, Probe, Read, read_ifname, read_l3, read_where},
    snap::emit_packet,
};

/// Scratch space to build an event in: 160 bytes is too much for comfort on
/// the 512-byte BPF stack once helpers' frames are added.
#[map]
static SCRATCH: PerCpuArray<DropEvent> = PerCpuArray::with_max_entries(1, 0);

/// Set by userspace before load (`EbpfLoader::override_global`).
#[unsafe(no_mangle)]
static DROP_CONFIG: DropConfig = unsafe { core::mem::zeroed() };

/// The configuration, read through a volatile load of its address so the
/// compiler cannot fold the all-zero initialiser into the code.
#[inline(always)]
fn config() -> &'static DropConfig {
    let p: *const DropConfig = &raw const DROP_CONFIG;
    // SAFETY: reading a local; the result is the address of a static.
    unsafe { &*core::ptr::read_volatile(&p) }
}

/// `BtfTracePointContext::arg` needs a constant index (the verifier rejects
/// variable-offset context reads), so dispatch on the index userspace chose.
#[inline(always)]
fn btf_arg(ctx: &BtfTracePointContext, index: u32) -> u64 {
    match index {
        0 => ctx.arg(0),
        1 => ctx.arg(1),
        2 => ctx.arg(2),
        3 => ctx.arg(3),
        4 => ctx.arg(4),
        5 => ctx.arg(5),
        _ => 0,
    }
}

#[btf_tracepoint(function = "kfree_skb")]
pub fn drop_tp_btf(ctx: BtfTracePointContext) -> i32 {
    let args = &config().btf_args;
    let skb = btf_arg(&ctx, args.skb);
    let location = btf_arg(&ctx, args.location);
    let reason = btf_arg(&ctx, args.reason) as u32;
    // The skb is a BTF-typed argument here: its fields load directly.
    handle::<_, Direct>(&ctx, skb, location, reason);
    0
}

#[tracepoint(category = "skb", name = "kfree_skb")]
pub fn drop_tracepoint(ctx: TracePointContext) -> u32 {
    let args = &config().tp_args;
    let at = |off: u32| -> Option<u64> {
        if off == KernelLayout::NONE {
            return None;
        }
        // SAFETY: offsets come from this tracepoint's own format file.
        unsafe { ctx.read_at::<u64>(off as usize) }.ok()
    };
    let skb = at(args.skb).unwrap_or(0);
    let location = at(args.location).unwrap_or(0);
    // The reason field is a 4-byte enum.
    let reason = if args.reason == KernelLayout::NONE {
        0
    } else {
        // SAFETY: as above.
        unsafe { ctx.read_at::<u32>(args.reason as usize) }.unwrap_or(0)
    };
    handle::<_, Probe>(&ctx, skb, location, reason);
    0
}

/// Filters first (the cheapest criteria first), then reads what the event
/// needs besides.
#[inline(always)]
fn handle<C: EbpfContext + StackIdContext, R: Read>(ctx: &C, skb: u64, location: u64, reason: u32) {
    let cfg = config();
    if skb == 0 {
        return;
    }
    let pid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if cfg.filter.pid != 0 && cfg.filter.pid != pid {
        return;
    }
    let Some(ev) = SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU scratch slot, not shared with a concurrent program.
    let ev = unsafe { &mut *ev };
    let mut m = Meta::default();
    read_l3::<R>(&cfg.layout, skb, &mut ev.hdr, &mut m, PKT_HDR_LEN);
    if !(packet_matches(&cfg.filter, m.l3_proto, &ev.hdr, m.len)
        && expression_matches(&cfg.filter, &cfg.layout, skb, &ev.hdr, &m))
    {
        return;
    }
    read_where::<R>(&cfg.layout, skb, &mut m);
    if !netns_allowed(&cfg.filter, m.netns) {
        return;
    }
    ev.ifindex = m.ifindex;
    ev.netns = m.netns;
    ev.l3_proto = m.l3_proto;
    ev.hdr_len = m.hdr_len;
    ev.ts_ns = unsafe { bpf_ktime_get_ns() };
    if !ratelimit::allow(cfg.rate_limit, ev.ts_ns) {
        return;
    }
    ev.skb = skb;
    ev.location = location;
    ev.reason = reason;
    ev.pid = pid;
    current_comm(&mut ev.comm);
    if cfg.snaplen != 0 {
        // `-w` names its interfaces `ifname@netns`; the text does not.
        read_ifname::<R>(&cfg.layout, m.dev, &mut ev.ifname);
    }
    ev.stack_id = if cfg.stack != 0 {
        ctx.get_stackid(&STACKS, 0).map(|id| id as i32).unwrap_or(-1)
    } else {
        -1
    };
    if cfg.snaplen != 0 {
        // `-w`: the packet's bytes, just before its event.
        emit_packet(&cfg.layout, skb, m.l3, ev.ts_ns, cfg.snaplen);
    }
    send(ev);
}
