//! `--rtt`: TCP round-trip times. The histogram is kept here (one per-CPU
//! counter per log2-ms bucket, read by userspace each second), so only
//! `--rtt-detail` sends an event per sample.
//!
//! Sources, best first: `tcp_ack_update_rtt` (fentry, else kprobe), which
//! receives each RTT sample (`seq_rtt_us`, -1 when the ACK gave none);
//! where functions cannot be hooked, `tcp:tcp_probe`, which fires for each
//! segment received on an established socket and gives its smoothed RTT.

use aya_ebpf::{
    EbpfContext as _,
    helpers::bpf_ktime_get_ns,
    macros::{fentry, kprobe, map, tracepoint},
    maps::PerCpuArray,
    programs::{FEntryContext, ProbeContext, TracePointContext},
};
use nettrace_common::tcp::{RTT_BUCKETS, RttEvent, Tuple, tp};

use crate::{
    args::{ctx_arg, kprobe_arg},
    maps::{netns_allowed, send},
    ratelimit,
    sock::{config, netns_of_sock, rtt_min_us, sk_of, srtt_us, tuple_matches, tuple_of_sock},
};

/// Samples per log2-ms bucket (bucket 0: 0–1 ms).
#[map]
static RTT_HIST: PerCpuArray<u64> = PerCpuArray::with_max_entries(RTT_BUCKETS, 0);

#[map]
static RTT_SCRATCH: PerCpuArray<RttEvent> = PerCpuArray::with_max_entries(1, 0);

#[fentry(function = "tcp_ack_update_rtt")]
pub fn rtt_fentry(ctx: FEntryContext) -> i32 {
    let r = &config().rtt;
    let sample = ctx_arg(ctx.as_ptr(), r.rtt_arg) as i64;
    if sample >= 0 {
        handle(ctx_arg(ctx.as_ptr(), r.sk_arg), Some(sample as u32));
    }
    0
}

#[kprobe]
pub fn rtt_kprobe(ctx: ProbeContext) -> u32 {
    let r = &config().rtt;
    let sample = kprobe_arg(&ctx, r.rtt_arg) as i64;
    if sample >= 0 {
        handle(kprobe_arg(&ctx, r.sk_arg), Some(sample as u32));
    }
    0
}

#[tracepoint(category = "tcp", name = "tcp_probe")]
pub fn rtt_tcp_probe(ctx: TracePointContext) -> u32 {
    handle(sk_of(&ctx, &config().tps[tp::PROBE as usize]), None);
    0
}

/// One sample on socket `sk`; `None`: use the smoothed RTT.
#[inline(always)]
fn handle(sk: u64, sample: Option<u32>) {
    let cfg = config();
    if sk == 0 {
        return;
    }
    let srtt = srtt_us(cfg, sk);
    let rtt = sample.unwrap_or(srtt);
    if rtt == 0 {
        // No estimate yet.
        return;
    }
    let rtt_min = rtt_min_us(cfg, sk);
    if srtt < cfg.rtt.min_srtt_us || rtt_min < cfg.rtt.min_rtt_min_us {
        return;
    }
    let mut t = Tuple::default();
    tuple_of_sock(cfg, sk, &mut t);
    if !tuple_matches(cfg, &t) {
        return;
    }
    let netns = netns_of_sock(cfg, sk);
    if !netns_allowed(&cfg.filter, netns) {
        return;
    }
    let ms = rtt / 1000;
    let bucket = if ms < 2 { 0 } else { 31 - ms.leading_zeros() };
    if let Some(n) = RTT_HIST.get_ptr_mut(bucket.min(RTT_BUCKETS - 1)) {
        // SAFETY: per-CPU slot; a program does not nest on one CPU.
        unsafe { *n += 1 };
    }
    if cfg.rtt.detail == 0 {
        return;
    }
    let now = unsafe { bpf_ktime_get_ns() };
    if !ratelimit::allow(cfg.rate_limit, now) {
        return;
    }
    let Some(ev) = RTT_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU scratch slot.
    let ev = unsafe { &mut *ev };
    ev.ts_ns = now;
    ev.tuple = t;
    ev.netns = netns;
    ev.rtt_us = rtt;
    ev.rtt_min_us = rtt_min;
    ev.srtt_us = srtt;
    ev.sampled = sample.is_some() as u32;
    send(ev);
}
