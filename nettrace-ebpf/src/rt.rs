//! `--rt`: request/response timing of server sockets, computed here so
//! that one event per task (not per segment) reaches userspace.
//!
//! Sources, all tracepoints:
//! - `tcp:tcp_probe` runs for every segment received on an established
//!   socket, before it is processed: its `data_len` marks request bytes
//!   arriving, and the ACK number in the TCP header (`skb->data` points at
//!   it there) says how much of the response the client has.
//! - `sock:sock_send_length` runs when `sendmsg` returns: the application
//!   queued response bytes; `write_seq` then is the response's end.
//! - `tcp:tcp_destroy_sock` ends the last task of a connection.
//!
//! A task is: request bytes (upload), the application's processing, the
//! response until acknowledged (download); the next request ends it.

use aya_ebpf::{
    helpers::bpf_ktime_get_ns,
    macros::{map, tracepoint},
    maps::{HashMap, PerCpuArray},
    programs::TracePointContext,
};
use nettrace_common::{
    ipproto,
    tcp::{RtEvent, RtState, rt_phase, tp},
    trace::lost,
};

use crate::{
    maps::{count_lost_at, netns_allowed, send},
    ratelimit,
    read::field,
    sock::{config, netns_of_sock, rec, sk_of, srtt_us, tuple_matches, tuple_of_sock},
};

/// Sockets being timed, by `struct sock *`. Entries go at
/// `tcp_destroy_sock`; a full table is counted as lost (tracking).
#[map]
static RT_SOCKS: HashMap<u64, RtState> = HashMap::with_max_entries(16384, 0);

#[map]
static RT_SCRATCH: PerCpuArray<RtEvent> = PerCpuArray::with_max_entries(1, 0);

/// `a` is at or after `b` in sequence space.
#[inline(always)]
fn seq_geq(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) >= 0
}

#[tracepoint(category = "tcp", name = "tcp_probe")]
pub fn rt_tcp_probe(ctx: TracePointContext) -> u32 {
    let cfg = config();
    let f = &cfg.tps[tp::PROBE as usize];
    let sk = sk_of(&ctx, f);
    if sk == 0 {
        return 0;
    }
    let now = unsafe { bpf_ktime_get_ns() };
    let data_len = rec::<u16>(&ctx, f.value16).unwrap_or(0) as u64;
    let state = match RT_SOCKS.get_ptr_mut(&sk) {
        Some(s) => s,
        None => {
            if data_len == 0 {
                return 0;
            }
            let mut fresh = RtState::default();
            if !wanted(sk, &mut fresh) {
                return 0;
            }
            if RT_SOCKS.insert(&sk, &fresh, 0).is_err() {
                count_lost_at(lost::TRACK_FULL);
                return 0;
            }
            match RT_SOCKS.get_ptr_mut(&sk) {
                Some(s) => s,
                None => return 0,
            }
        }
    };
    // SAFETY: the map value lives while the socket's entry does; only this
    // socket's events (serialised by the socket lock or softirq) touch it.
    let s = unsafe { &mut *state };
    if s.phase == rt_phase::RESPONSE && s.acked_ns == 0 {
        let skb = rec::<u64>(&ctx, f.skb).unwrap_or(0);
        let th = field::<u64>(skb, cfg.sock.skb_data).unwrap_or(0);
        // tcphdr (wire format): ack_seq at byte 8.
        if let Some(ack) = field::<[u8; 4]>(th, 8)
            && seq_geq(u32::from_be_bytes(ack), s.resp_end_seq)
        {
            s.acked_ns = now;
        }
    }
    if data_len == 0 {
        return 0;
    }
    if s.phase == rt_phase::RESPONSE {
        emit(sk, s);
        s.phase = rt_phase::IDLE;
    }
    if s.phase == rt_phase::IDLE {
        s.phase = rt_phase::REQUEST;
        s.req_first_ns = now;
        s.req_bytes = 0;
        s.resp_bytes = 0;
        s.acked_ns = 0;
        s.retrans_start = field::<u32>(sk, cfg.sock.total_retrans).unwrap_or(0);
    }
    s.req_last_ns = now;
    s.req_bytes += data_len;
    0
}

#[tracepoint(category = "sock", name = "sock_send_length")]
pub fn rt_sock_send_length(ctx: TracePointContext) -> u32 {
    let cfg = config();
    let f = &cfg.tps[tp::SEND_LENGTH as usize];
    let sk = sk_of(&ctx, f);
    let sent = rec::<i32>(&ctx, f.value).unwrap_or(0);
    if sk == 0 || sent <= 0 || rec::<u16>(&ctx, f.value16) != Some(ipproto::TCP as u16) {
        return 0;
    }
    let Some(state) = RT_SOCKS.get_ptr_mut(&sk) else {
        return 0;
    };
    // SAFETY: as in `rt_tcp_probe`.
    let s = unsafe { &mut *state };
    if s.phase == rt_phase::IDLE {
        // Data nobody asked for (a server greeting): not a task.
        return 0;
    }
    let now = unsafe { bpf_ktime_get_ns() };
    if s.phase == rt_phase::REQUEST {
        s.phase = rt_phase::RESPONSE;
        s.resp_first_ns = now;
    }
    s.resp_bytes += sent as u64;
    s.resp_end_seq = field::<u32>(sk, cfg.sock.write_seq).unwrap_or(0);
    // On a fast path the ACK may already have come while sendmsg ran.
    let una = field::<u32>(sk, cfg.sock.snd_una).unwrap_or(0);
    s.acked_ns = if seq_geq(una, s.resp_end_seq) { now } else { 0 };
    0
}

#[tracepoint(category = "tcp", name = "tcp_destroy_sock")]
pub fn rt_tcp_destroy_sock(ctx: TracePointContext) -> u32 {
    let cfg = config();
    let sk = sk_of(&ctx, &cfg.tps[tp::DESTROY_SOCK as usize]);
    if let Some(state) = RT_SOCKS.get_ptr_mut(&sk) {
        // SAFETY: as in `rt_tcp_probe`.
        let s = unsafe { &mut *state };
        if s.phase == rt_phase::RESPONSE {
            emit(sk, s);
        }
        let _ = RT_SOCKS.remove(&sk);
    }
    0
}

/// Whether a socket not yet timed passes the filters; fills in its tuple
/// and namespace.
#[inline(always)]
fn wanted(sk: u64, s: &mut RtState) -> bool {
    let cfg = config();
    tuple_of_sock(cfg, sk, &mut s.tuple);
    if !tuple_matches(cfg, &s.tuple) {
        return false;
    }
    s.netns = netns_of_sock(cfg, sk);
    netns_allowed(&cfg.filter, s.netns)
}

#[inline(always)]
fn emit(sk: u64, s: &RtState) {
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
    ev.download_ns = if s.acked_ns == 0 {
        u64::MAX
    } else {
        s.acked_ns.saturating_sub(s.resp_first_ns)
    };
    ev.req_bytes = s.req_bytes;
    ev.resp_bytes = s.resp_bytes;
    ev.tuple = s.tuple;
    ev.netns = s.netns;
    ev.srtt_us = srtt_us(cfg, sk);
    ev.retrans = field::<u32>(sk, cfg.sock.total_retrans)
        .unwrap_or(0)
        .wrapping_sub(s.retrans_start);
    send(ev);
}
