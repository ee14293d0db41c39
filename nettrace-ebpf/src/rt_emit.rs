//! `--rt`'s records, built from a socket's timing state (`rt.rs`): one
//! per task, one per connection at its end. Apart so that the state
//! machine reads on its own.

use aya_ebpf::{helpers::bpf_ktime_get_ns, macros::map, maps::PerCpuArray};
use nettrace_common::tcp::{RtCloseEvent, RtEvent, RtState, proto_flag, rt_flag, rt_phase};

use crate::{
    maps::send,
    ratelimit,
    read::field,
    rt::seq_geq,
    sock::{config, rtt_min_us, srtt_us},
};

#[map]
static RT_SCRATCH: PerCpuArray<RtEvent> = PerCpuArray::with_max_entries(1, 0);

#[map]
static RT_CLOSE_SCRATCH: PerCpuArray<RtCloseEvent> = PerCpuArray::with_max_entries(1, 0);

/// A task's record.
#[inline(always)]
pub fn emit(sk: u64, s: &RtState) {
    let cfg = config();
    if !ratelimit::allow(cfg.rate_limit, unsafe { bpf_ktime_get_ns() }) {
        return;
    }
    let Some(ev) = RT_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU scratch slot.
    let ev = unsafe { &mut *ev };
    ev.ts_ns = s.req_first_ns;
    ev.sk = sk;
    ev.upload_ns = s.req_last_ns - s.req_first_ns;
    ev.process_ns = s.resp_first_ns.saturating_sub(s.req_last_ns);
    let done_ns = if cfg.rt.client != 0 {
        s.resp_last_ns
    } else {
        s.acked_ns
    };
    ev.download_ns = if done_ns == 0 {
        u64::MAX
    } else {
        done_ns.saturating_sub(s.resp_first_ns)
    };
    ev.flags = s.flags | if cfg.rt.client != 0 { rt_flag::CLIENT } else { 0 };
    ev.req_bytes = s.req_bytes;
    ev.resp_bytes = s.resp_bytes;
    ev.tuple = s.tuple;
    ev.netns = s.netns;
    ev.srtt_us = srtt_us(cfg, sk);
    ev.rtt_min_us = rtt_min_us(cfg, sk);
    ev.task = s.tasks;
    ev.method = s.method;
    ev.status = s.status;
    ev.proto = s.proto & proto_flag::TLS;
    ev.retrans = field::<u32>(sk, cfg.sock.total_retrans)
        .unwrap_or(0)
        .wrapping_sub(s.retrans_start);
    ev.mss = field::<u32>(sk, cfg.rt.mss_cache).unwrap_or(0) as u16;
    send(ev);
}

/// The connection's summary. Not rate-limited: one per connection, and
/// a lost close would leave a connection without its end.
#[inline(always)]
pub fn emit_close(sk: u64, s: &RtState) {
    let cfg = config();
    let Some(ev) = RT_CLOSE_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU scratch slot.
    let ev = unsafe { &mut *ev };
    ev.ts_ns = unsafe { bpf_ktime_get_ns() };
    ev.sk = sk;
    ev.netns = s.netns;
    ev.tuple = s.tuple;
    ev.sent_bytes = s.sent_total;
    let una = field::<u32>(sk, cfg.sock.snd_una).unwrap_or(s.snd_start_seq);
    // Bytes queued before timing started and still unacknowledged keep
    // `snd_una` behind the start: none of the counted bytes is acked.
    let acked = if seq_geq(una, s.snd_start_seq) {
        (una.wrapping_sub(s.snd_start_seq) as u64).min(s.sent_total)
    } else {
        0
    };
    ev.unacked_bytes = s.sent_total - acked;
    ev.received_bytes = s.rcv_end_seq.wrapping_sub(s.rcv_start_seq) as u64;
    ev.tasks = s.tasks;
    ev.retrans = field::<u32>(sk, cfg.sock.total_retrans).unwrap_or(0);
    ev.rtt_min_us = rtt_min_us(cfg, sk);
    ev.srtt_us = srtt_us(cfg, sk);
    ev.phase = s.phase;
    // The last ACK may have come after our side's FIN, outside
    // `tcp_rcv_established`: `snd_una` still says whether it came.
    ev.acked = (s.acked_ns != 0 || seq_geq(una, s.resp_end_seq)) as u8;
    ev.client = (cfg.rt.client != 0) as u8;
    ev.mss = field::<u32>(sk, cfg.rt.mss_cache).unwrap_or(0) as u16;
    ev.task_start_ns = if s.phase == rt_phase::IDLE {
        0
    } else {
        s.req_first_ns
    };
    send(ev);
}
