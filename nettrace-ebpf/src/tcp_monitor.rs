//! `--tcp-monitor`: one event per TCP anomaly (retransmit, SYN-ACK
//! retransmit, reset sent or received, bad checksum, congestion state into
//! Recovery or Loss), straight from the TCP tracepoints. Filters run here;
//! nothing else is sent.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::{map, tracepoint},
    maps::PerCpuArray,
    programs::TracePointContext,
};
use nettrace_common::tcp::{TcpEvent, Tuple, tp};

use crate::{
    maps::send,
    ratelimit,
    read::{current_comm, field},
    sock::{Connection, config, rec, record_connection, srtt_us, tuple_of_sock},
};

/// Scratch space to build an event in (off the 512-byte stack).
#[map]
static TCP_SCRATCH: PerCpuArray<TcpEvent> = PerCpuArray::with_max_entries(1, 0);

#[tracepoint(category = "tcp", name = "tcp_retransmit_skb")]
pub fn tcp_retransmit_skb(ctx: TracePointContext) -> u32 {
    report(&ctx, tp::RETRANSMIT);
    0
}

#[tracepoint(category = "tcp", name = "tcp_retransmit_synack")]
pub fn tcp_retransmit_synack(ctx: TracePointContext) -> u32 {
    report(&ctx, tp::RETRANSMIT_SYNACK);
    0
}

#[tracepoint(category = "tcp", name = "tcp_send_reset")]
pub fn tcp_send_reset(ctx: TracePointContext) -> u32 {
    report(&ctx, tp::SEND_RESET);
    0
}

#[tracepoint(category = "tcp", name = "tcp_receive_reset")]
pub fn tcp_receive_reset(ctx: TracePointContext) -> u32 {
    report(&ctx, tp::RECEIVE_RESET);
    0
}

#[tracepoint(category = "tcp", name = "tcp_bad_csum")]
pub fn tcp_bad_csum(ctx: TracePointContext) -> u32 {
    report(&ctx, tp::BAD_CSUM);
    0
}

#[tracepoint(category = "tcp", name = "tcp_cong_state_set")]
pub fn tcp_cong_state_set(ctx: TracePointContext) -> u32 {
    report(&ctx, tp::CONG_STATE);
    0
}

#[inline(always)]
fn report(ctx: &TracePointContext, kind: u8) {
    let cfg = config();
    let f = &cfg.tps[kind as usize];
    let mut value = 0u32;
    if kind == tp::CONG_STATE {
        // Only the states that mean loss: entering Recovery or Loss.
        let state = rec::<u8>(ctx, f.value8).unwrap_or(0) as u32;
        if state != cfg.ca_recovery && state != cfg.ca_loss {
            return;
        }
        value = state;
    } else if kind == tp::SEND_RESET {
        value = rec::<u32>(ctx, f.value).unwrap_or(0);
    }
    let pid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if cfg.filter.pid != 0 && cfg.filter.pid != pid {
        return;
    }
    let Some(ev) = TCP_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU scratch slot, not shared with a concurrent program.
    let ev = unsafe { &mut *ev };
    ev.tuple = Tuple::default();
    let Some(Connection { sk, conn, netns }) = record_connection(cfg, ctx, f, &mut ev.tuple, tuple_of_sock)
    else {
        return;
    };
    ev.netns = netns;
    ev.ts_ns = unsafe { bpf_ktime_get_ns() };
    if !ratelimit::allow(cfg.rate_limit, ev.ts_ns) {
        return;
    }
    ev.sk = sk;
    ev.kind = kind;
    ev.state = field::<u8>(conn, cfg.sock.state).unwrap_or(0);
    ev.value = value;
    // A listener's RTT and window say nothing about this connection.
    let full = if conn != sk { 0 } else { sk };
    ev.srtt_us = srtt_us(cfg, full);
    ev.cwnd = field::<u32>(full, cfg.sock.snd_cwnd).unwrap_or(0);
    ev.total_retrans = field::<u32>(full, cfg.sock.total_retrans).unwrap_or(0);
    ev.pid = pid;
    current_comm(&mut ev.comm);
    send(ev);
}
