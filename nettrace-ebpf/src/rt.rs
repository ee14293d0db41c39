//! `--rt`: request/response timing of server sockets, computed here so
//! that one event per task (not per segment) reaches userspace, and one
//! per connection when it closes.
//!
//! Three moments, each reachable two ways (userspace picks per kernel):
//! - a segment arrives on an established socket, before it is processed:
//!   `tcp:tcp_probe` where its record has the socket (6.12 does; 5.10 and
//!   6.1 lack `skaddr`), else `tcp_rcv_established` (fentry, else kprobe),
//!   the function that fires that tracepoint at its start. The payload
//!   length marks request bytes arriving; the ACK number in the TCP header
//!   (`skb->data` points at it there) says how much of the response the
//!   client has.
//! - `sendmsg` returns: the application queued response bytes, and
//!   `write_seq` then is the response's end. `sock:sock_send_length`
//!   (6.3+), else `tcp_sendmsg_locked` by fexit, else kprobe + kretprobe
//!   (under the socket lock: see `SEND_FUNCTION` in userspace).
//! - `tcp:tcp_destroy_sock` (5.3+) ends the last task of a connection and
//!   reports its close summary.
//!
//! And one more moment, so that a first request is not lost
//! (`rt_handshake.rs`): a server socket becoming established is timed from
//! then; bytes that arrived without passing the moments above are found
//! in sequence space (`missed` in `on_segment`, and `sent_bytes`).
//!
//! A task is: request bytes (upload), the application's processing, the
//! response until acknowledged (download); the next request ends it.

use aya_ebpf::{
    EbpfContext as _,
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_ns},
    macros::{fentry, fexit, kprobe, kretprobe, map, tracepoint},
    maps::HashMap,
    programs::{FEntryContext, FExitContext, ProbeContext, RetProbeContext, TracePointContext},
};
use nettrace_common::{
    ipproto,
    tcp::{RtState, proto_flag, rt_flag, rt_phase, tp},
    trace::lost,
};

use crate::{
    args::{ctx_arg, kprobe_arg, kretprobe_ret},
    maps::{count_lost_at, netns_allowed},
    read::field,
    rt_emit::{emit, emit_close},
    rt_handshake::first_request_start,
    rt_proto, rt_tls,
    sock::{config, netns_of_sock, rec, sk_of, tuple_matches, tuple_of_sock},
};

/// Sockets being timed, by `struct sock *`. Entries go at
/// `tcp_destroy_sock`; a full table is counted as lost (tracking).
#[map]
pub static RT_SOCKS: HashMap<u64, RtState> = HashMap::with_max_entries(16384, 0);

/// kprobe backend: the timed socket a thread is in `tcp_sendmsg_locked` for,
/// by `pid_tgid`, until its kretprobe reads the return value.
#[map]
static RT_SENDING: HashMap<u64, u64> = HashMap::with_max_entries(4096, 0);

/// `a` is at or after `b` in sequence space.
#[inline(always)]
pub fn seq_geq(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) >= 0
}

// ---- a segment arrives ----

#[tracepoint(category = "tcp", name = "tcp_probe")]
pub fn rt_tcp_probe(ctx: TracePointContext) -> u32 {
    let cfg = config();
    let f = &cfg.tps[tp::PROBE as usize];
    let sk = sk_of(&ctx, f);
    let skb = rec::<u64>(&ctx, f.skb).unwrap_or(0);
    let data_len = rec::<u16>(&ctx, f.value16).unwrap_or(0) as u32;
    on_segment(sk, field::<u64>(skb, cfg.sock.skb_data).unwrap_or(0), data_len);
    0
}

#[fentry(function = "tcp_rcv_established")]
pub fn rt_fentry_rcv(ctx: FEntryContext) -> i32 {
    let r = &config().rt;
    rcv_established(
        ctx_arg(ctx.as_ptr(), r.rcv_sk_arg),
        ctx_arg(ctx.as_ptr(), r.rcv_skb_arg),
    );
    0
}

#[kprobe]
pub fn rt_kprobe_rcv(ctx: ProbeContext) -> u32 {
    let r = &config().rt;
    rcv_established(kprobe_arg(&ctx, r.rcv_sk_arg), kprobe_arg(&ctx, r.rcv_skb_arg));
    0
}

/// `tcp_rcv_established(sk, skb)`: what `tcp_probe` computes there, the
/// payload length `skb->len - th->doff * 4` (`skb->data` is the header).
#[inline(always)]
fn rcv_established(sk: u64, skb: u64) {
    let cfg = config();
    let th = field::<u64>(skb, cfg.sock.skb_data).unwrap_or(0);
    let len = field::<u32>(skb, cfg.rt.skb_len).unwrap_or(0);
    // tcphdr (wire format): data offset in the high nibble of byte 12.
    let hdr = (field::<u8>(th, 12).unwrap_or(0) >> 4) as u32 * 4;
    on_segment(sk, th, len.saturating_sub(hdr));
}

/// One segment of `data_len` payload bytes on `sk`; `th` its TCP header.
#[inline(always)]
fn on_segment(sk: u64, th: u64, data_len: u32) {
    if sk == 0 {
        return;
    }
    let cfg = config();
    let client = cfg.rt.client != 0;
    let now = unsafe { bpf_ktime_get_ns() };
    // tcphdr (wire format): seq at byte 4, ack_seq at byte 8.
    let seq = u32::from_be_bytes(field::<[u8; 4]>(th, 4).unwrap_or([0; 4]));
    let ack = field::<[u8; 4]>(th, 8).map(u32::from_be_bytes);
    // A server socket is timed from its first request byte; a client
    // socket from its first send (`on_sent`).
    let Some(state) = (match RT_SOCKS.get_ptr_mut(&sk) {
        Some(s) => Some(s),
        None if data_len == 0 || client => None,
        None => track(sk, seq),
    }) else {
        return;
    };
    // SAFETY: the map value lives while the socket's entry does; only this
    // socket's events (serialised by the socket lock or softirq) touch it.
    let s = unsafe { &mut *state };
    let sent_phase = if client {
        rt_phase::REQUEST
    } else {
        rt_phase::RESPONSE
    };
    // Whether the segment acknowledges all this side has sent.
    let covers = |ack: Option<u32>, end: u32| ack.is_some_and(|a| seq_geq(a, end));
    if s.phase == sent_phase && s.acked_ns == 0 && covers(ack, s.resp_end_seq) {
        s.acked_ns = now;
    }
    if data_len == 0 {
        return;
    }
    let end = seq.wrapping_add(data_len);
    // `rcv_nxt` is the next byte expected, not yet moved for this segment.
    let nxt = field::<u32>(sk, cfg.sock.rcv_nxt);
    // Bytes the kernel took in order before this segment that no program
    // here saw (a request that completed the handshake, see the top; a
    // kprobe skipped): they came before this segment's.
    let missed = nxt.map_or(0, |n| (n.wrapping_sub(s.rcv_end_seq) as i32).max(0) as u32);
    if seq_geq(end, s.rcv_end_seq) {
        s.rcv_end_seq = end;
    }
    // Only bytes not received before count: a retransmitted copy (the
    // peer's tail-loss probe, say) is no new request.
    let data_len = match nxt {
        Some(nxt) if !seq_geq(seq, nxt) => {
            let past = end.wrapping_sub(nxt) as i32;
            past.max(0) as u32
        }
        _ => data_len,
    } + missed;
    if data_len == 0 {
        return;
    }
    if client {
        // The response arriving (bytes nobody asked for are not a task).
        if s.phase == rt_phase::REQUEST {
            s.phase = rt_phase::RESPONSE;
            s.resp_first_ns = now;
        }
        if s.phase == rt_phase::RESPONSE {
            s.resp_last_ns = now;
            s.resp_bytes += data_len as u64;
        }
        return;
    }
    // Bytes queued that no `sendmsg` return reported yet: a response
    // still in `tcp_sendmsg`, whose `release_sock` processes this segment
    // from the backlog before the call returns (seen under emulation), or
    // a send path without that hook (sendfile).
    let unreported = queued(sk, s);
    if unreported > 0 {
        if s.phase == rt_phase::REQUEST {
            s.phase = rt_phase::RESPONSE;
            s.resp_first_ns = now;
        }
        if s.phase == rt_phase::RESPONSE {
            s.resp_bytes += unreported;
            if s.acked_ns == 0 && covers(ack, s.resp_end_seq) {
                s.acked_ns = now;
            }
        }
    }
    if s.phase == rt_phase::RESPONSE {
        // The client sent this before it had all of the response.
        if ack.is_some() && !covers(ack, s.resp_end_seq) {
            s.flags |= rt_flag::PIPELINED;
        }
        emit(sk, s);
        s.phase = rt_phase::IDLE;
    }
    if s.phase == rt_phase::IDLE {
        start_task(sk, s, now);
        if missed > 0 {
            s.req_first_ns = first_request_start(s).unwrap_or(now);
        }
    }
    s.req_last_ns = now;
    s.req_bytes += data_len as u64;
}

/// Starts timing `sk` if it passes the filters; `seq` is the sequence
/// number of the first byte it receives from here on.
#[inline(always)]
pub fn track(sk: u64, seq: u32) -> Option<*mut RtState> {
    let cfg = config();
    let mut fresh = RtState::default();
    if !wanted(sk, &mut fresh) {
        return None;
    }
    fresh.snd_start_seq = field::<u32>(sk, cfg.sock.write_seq).unwrap_or(0);
    fresh.resp_end_seq = fresh.snd_start_seq;
    let rcv_nxt = field::<u32>(sk, cfg.sock.rcv_nxt).unwrap_or(seq);
    fresh.rcv_start_seq = if cfg.rt.client != 0 { rcv_nxt } else { seq };
    fresh.rcv_end_seq = fresh.rcv_start_seq;
    if RT_SOCKS.insert(&sk, &fresh, 0).is_err() {
        count_lost_at(lost::TRACK_FULL);
        return None;
    }
    RT_SOCKS.get_ptr_mut(&sk)
}

/// A new task: the request's first byte (a server's received, a client's
/// sent) is now.
#[inline(always)]
fn start_task(sk: u64, s: &mut RtState, now: u64) {
    s.phase = rt_phase::REQUEST;
    s.tasks += 1;
    s.flags = 0;
    s.req_first_ns = now;
    s.req_bytes = 0;
    s.resp_bytes = 0;
    s.acked_ns = 0;
    s.method = 0;
    s.status = 0;
    // `--rt-proto`: TLS is the connection's.
    s.proto &= proto_flag::TLS;
    s.retrans_start = field::<u32>(sk, config().sock.total_retrans).unwrap_or(0);
}

// ---- the application queued bytes ----

#[tracepoint(category = "sock", name = "sock_send_length")]
pub fn rt_sock_send_length(ctx: TracePointContext) -> u32 {
    let f = &config().tps[tp::SEND_LENGTH as usize];
    if rec::<u16>(&ctx, f.value16) == Some(ipproto::TCP as u16) {
        on_sent(sk_of(&ctx, f), rec::<i32>(&ctx, f.value).unwrap_or(0));
    }
    0
}

#[fexit(function = "tcp_sendmsg_locked")]
pub fn rt_fexit_sendmsg(ctx: FExitContext) -> i32 {
    let r = &config().rt;
    let sent = ctx_arg(ctx.as_ptr(), r.send_ret_slot) as i32;
    on_sent(ctx_arg(ctx.as_ptr(), r.send_sk_arg), sent);
    0
}

#[kprobe]
pub fn rt_kprobe_sendmsg(ctx: ProbeContext) -> u32 {
    let cfg = config();
    let sk = kprobe_arg(&ctx, cfg.rt.send_sk_arg);
    // Only timed sockets (the kretprobe of every other send finds
    // nothing); with `--client` a send may start the timing.
    if cfg.rt.client != 0 || unsafe { RT_SOCKS.get(&sk) }.is_some() {
        let id = bpf_get_current_pid_tgid();
        if RT_SENDING.insert(&id, &sk, 0).is_err() {
            count_lost_at(lost::TRACK_FULL);
        }
    }
    0
}

#[kretprobe]
pub fn rt_kretprobe_sendmsg(ctx: RetProbeContext) -> u32 {
    let id = bpf_get_current_pid_tgid();
    if let Some(sk) = unsafe { RT_SENDING.get(&id) }.copied() {
        let _ = RT_SENDING.remove(&id);
        on_sent(sk, kretprobe_ret(&ctx) as i32);
    }
    0
}

/// `sendmsg` on `sk` returned `sent`. The bytes counted are what
/// `write_seq` moved past the last count, so a send already accounted for
/// by `on_segment` (see `queued`) is not counted twice.
#[inline(always)]
fn on_sent(sk: u64, sent: i32) {
    if sk == 0 || sent <= 0 {
        return;
    }
    // `--rt-proto`: what the application's write said.
    let written = rt_proto::take_written(sk);
    let tls = matches!(written.kind, rt_proto::TLS_CONTROL | rt_proto::TLS_DATA);
    if written.kind == rt_proto::TLS_CONTROL && unsafe { RT_SOCKS.get(&sk) }.is_none() {
        // A client's handshake (ClientHello, its Finished flight) starts
        // no task; its first application data will.
        return;
    }
    if tls && let Some(state) = RT_SOCKS.get_ptr_mut(&sk) {
        // SAFETY: as in `on_segment`.
        let s = unsafe { &mut *state };
        let pending = rt_tls::pending(s);
        if pending {
            rt_tls::answered(sk, s);
        }
        if pending || written.kind == rt_proto::TLS_CONTROL {
            // No response: bytes only. A client's control records (a
            // close_notify alert) end its task: what answers them is no
            // response.
            if config().rt.client != 0 && s.phase == rt_phase::RESPONSE {
                emit(sk, s);
                s.phase = rt_phase::IDLE;
            }
            queued(sk, s);
            return;
        }
    }
    sent_bytes(sk, sent);
    if written.kind != rt_proto::NONE
        && let Some(s) = RT_SOCKS.get_ptr_mut(&sk)
    {
        // SAFETY: as in `on_segment`.
        rt_proto::apply_written(unsafe { &mut *s }, &written);
    }
}

/// `on_sent` for bytes that are a request or response.
#[inline(always)]
fn sent_bytes(sk: u64, sent: i32) {
    let cfg = config();
    let client = cfg.rt.client != 0;
    let mut fresh = false;
    let Some(state) = (match RT_SOCKS.get_ptr_mut(&sk) {
        Some(s) => Some(s),
        // A client's first request: the next byte it receives is the
        // response's first.
        None if client => {
            fresh = true;
            track(sk, 0)
        }
        None => None,
    }) else {
        return;
    };
    // SAFETY: as in `on_segment`.
    let s = unsafe { &mut *state };
    if fresh {
        // `write_seq` already counts the bytes this call queued.
        s.snd_start_seq = s.snd_start_seq.wrapping_sub(sent as u32);
        s.resp_end_seq = s.snd_start_seq;
    }
    let new = queued(sk, s);
    if new == 0 {
        return;
    }
    let now = unsafe { bpf_ktime_get_ns() };
    // On a fast path the ACK may already have come while sendmsg ran.
    let una = field::<u32>(sk, cfg.sock.snd_una).unwrap_or(0);
    let acked_ns = if seq_geq(una, s.resp_end_seq) { now } else { 0 };
    if client {
        if s.phase == rt_phase::RESPONSE {
            emit(sk, s);
            s.phase = rt_phase::IDLE;
        }
        if s.phase == rt_phase::IDLE {
            start_task(sk, s, now);
        }
        s.req_last_ns = now;
        s.req_bytes += new;
        s.acked_ns = acked_ns;
        return;
    }
    // Request bytes received that `on_segment` never saw (see
    // `rt_flag::UNSEEN`): a task the response belongs to.
    let unseen = match field::<u32>(sk, cfg.sock.rcv_nxt) {
        Some(nxt) if s.phase != rt_phase::REQUEST && established(sk) => {
            let n = nxt.wrapping_sub(s.rcv_end_seq) as i32;
            s.rcv_end_seq = nxt;
            n.max(0) as u64
        }
        _ => 0,
    };
    if unseen > 0 {
        if s.phase == rt_phase::RESPONSE {
            emit(sk, s);
        }
        start_task(sk, s, now);
        match first_request_start(s) {
            Some(at) => (s.req_first_ns, s.req_last_ns) = (at, at),
            None => {
                s.flags = rt_flag::UNSEEN;
                s.req_last_ns = now;
            }
        }
        s.req_bytes = unseen;
    }
    if s.phase == rt_phase::IDLE {
        // Data nobody asked for (a server greeting): not a task.
        return;
    }
    if s.phase == rt_phase::REQUEST {
        s.phase = rt_phase::RESPONSE;
        s.resp_first_ns = now;
        // Bytes received and not yet read: the next request is here before
        // this response (both unknown offsets read as equal).
        let unread = field::<u32>(sk, cfg.sock.rcv_nxt).unwrap_or(0)
            != field::<u32>(sk, cfg.sock.copied_seq).unwrap_or(0);
        if unread {
            s.flags |= rt_flag::PIPELINED;
        }
    }
    s.resp_bytes += new;
    s.acked_ns = acked_ns;
}

/// Whether the socket is still established: after the peer's FIN,
/// `rcv_nxt` counts the FIN too.
#[inline(always)]
fn established(sk: u64) -> bool {
    let cfg = config();
    u32::from(field::<u8>(sk, cfg.sock.state).unwrap_or(0)) == cfg.rt.state_established
}

/// Bytes this side queued (`write_seq`) since they were last counted:
/// moves the count's mark and adds them to the connection's total.
#[inline(always)]
fn queued(sk: u64, s: &mut RtState) -> u64 {
    let Some(ws) = field::<u32>(sk, config().sock.write_seq) else {
        return 0;
    };
    let new = ws.wrapping_sub(s.resp_end_seq) as i32;
    if new <= 0 {
        return 0;
    }
    s.resp_end_seq = ws;
    s.sent_total += new as u64;
    new as u64
}

// ---- the socket goes ----

#[tracepoint(category = "tcp", name = "tcp_destroy_sock")]
pub fn rt_tcp_destroy_sock(ctx: TracePointContext) -> u32 {
    let cfg = config();
    let sk = sk_of(&ctx, &cfg.tps[tp::DESTROY_SOCK as usize]);
    if let Some(state) = RT_SOCKS.get_ptr_mut(&sk) {
        // SAFETY: as in `on_segment`.
        let s = unsafe { &mut *state };
        if s.phase == rt_phase::RESPONSE {
            emit(sk, s);
        }
        rt_tls::closing(s);
        // Timed from the handshake and nothing received: no summary, as
        // for a connection never timed.
        if s.tasks != 0 || s.rcv_end_seq != s.rcv_start_seq {
            emit_close(sk, s);
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
