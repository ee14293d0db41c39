//! `--sock`: one event per socket hook, carrying what the socket looks like
//! there (state, congestion state, packets in flight and retransmitted,
//! `snd_una`, queued memory, pending timer). Filters run here.
//!
//! Sources: the TCP and socket tracepoints everywhere, and where kernel
//! functions can be hooked, one fentry (else kprobe) entry point per
//! function: aya loads an fentry program against a single target, and the
//! hook's identity is then a constant of the program. Where each function
//! keeps its socket comes from BTF (`SockModeConfig::fn_arg`), and for
//! `tcp_ack_update_rtt` where it keeps the RTT sample (`RttConfig::rtt_arg`).

use aya_ebpf::{
    EbpfContext as _,
    helpers::{bpf_get_current_pid_tgid, bpf_jiffies64, bpf_ktime_get_ns},
    macros::{fentry, kprobe, map, tracepoint},
    maps::PerCpuArray,
    programs::{FEntryContext, ProbeContext, TracePointContext},
};
use nettrace_common::{
    ipproto,
    tcp::{SockEvent, TcpConfig, Tuple, sock_fn, sock_source, tp},
};

use crate::{
    args::{ctx_arg, kprobe_arg},
    maps::{netns_allowed, send},
    ratelimit,
    read::{current_comm, field},
    sock::{
        Connection, config, netns_of_sock, rec, record_connection, rtt_min_us, srtt_us, tuple_matches,
        tuple_of_sock,
    },
};

/// Scratch space to build an event in (off the 512-byte stack).
#[map]
static SOCK_SCRATCH: PerCpuArray<SockEvent> = PerCpuArray::with_max_entries(1, 0);

// ---- tracepoints ----

#[tracepoint(category = "sock", name = "inet_sock_set_state")]
pub fn sock_set_state(ctx: TracePointContext) -> u32 {
    from_tracepoint(&ctx, tp::SET_STATE);
    0
}

#[tracepoint(category = "tcp", name = "tcp_probe")]
pub fn sock_tcp_probe(ctx: TracePointContext) -> u32 {
    from_tracepoint(&ctx, tp::PROBE);
    0
}

#[tracepoint(category = "tcp", name = "tcp_retransmit_skb")]
pub fn sock_retransmit_skb(ctx: TracePointContext) -> u32 {
    from_tracepoint(&ctx, tp::RETRANSMIT);
    0
}

#[tracepoint(category = "tcp", name = "tcp_retransmit_synack")]
pub fn sock_retransmit_synack(ctx: TracePointContext) -> u32 {
    from_tracepoint(&ctx, tp::RETRANSMIT_SYNACK);
    0
}

#[tracepoint(category = "tcp", name = "tcp_send_reset")]
pub fn sock_send_reset(ctx: TracePointContext) -> u32 {
    from_tracepoint(&ctx, tp::SEND_RESET);
    0
}

#[tracepoint(category = "tcp", name = "tcp_receive_reset")]
pub fn sock_receive_reset(ctx: TracePointContext) -> u32 {
    from_tracepoint(&ctx, tp::RECEIVE_RESET);
    0
}

#[tracepoint(category = "tcp", name = "tcp_destroy_sock")]
pub fn sock_destroy_sock(ctx: TracePointContext) -> u32 {
    from_tracepoint(&ctx, tp::DESTROY_SOCK);
    0
}

#[tracepoint(category = "tcp", name = "tcp_rcv_space_adjust")]
pub fn sock_rcv_space_adjust(ctx: TracePointContext) -> u32 {
    from_tracepoint(&ctx, tp::RCV_SPACE);
    0
}

#[tracepoint(category = "tcp", name = "tcp_cong_state_set")]
pub fn sock_cong_state_set(ctx: TracePointContext) -> u32 {
    from_tracepoint(&ctx, tp::CONG_STATE);
    0
}

#[inline(always)]
fn from_tracepoint(ctx: &TracePointContext, kind: u8) {
    let cfg = config();
    let f = &cfg.tps[kind as usize];
    let (mut state, mut old_state) = (None, SockEvent::NO_STATE);
    if kind == tp::SET_STATE {
        // Other inet protocols change state through the same tracepoint.
        if rec::<u16>(ctx, f.value16) != Some(ipproto::TCP as u16) {
            return;
        }
        // It fires before `sk_state` is written: the record has both.
        old_state = rec::<i32>(ctx, f.old_state).unwrap_or(0) as u8;
        state = Some(rec::<i32>(ctx, f.new_state).unwrap_or(0) as u8);
    }
    let Some(ev) = start(cfg) else {
        return;
    };
    let Some(Connection { conn, netns, .. }) = record_connection(cfg, ctx, f, &mut ev.tuple, tuple_of_sock)
    else {
        return;
    };
    ev.netns = netns;
    ev.source = sock_source::TRACEPOINT;
    ev.hook = kind;
    finish(cfg, ev, conn, state, old_state);
}

// ---- functions: one fentry and one kprobe entry point each ----

#[inline(always)]
fn fentry_sk(ctx: &FEntryContext, hook: u8) -> u64 {
    let m = &config().sock_mode;
    ctx_arg(ctx.as_ptr(), m.fn_arg[hook as usize])
}

#[inline(always)]
fn kprobe_sk(ctx: &ProbeContext, hook: u8) -> u64 {
    let m = &config().sock_mode;
    kprobe_arg(ctx, m.fn_arg[hook as usize])
}

/// One fentry and one kprobe entry point for a function hook (an fentry
/// program is bound to its target when loaded, so each function needs its
/// own); userspace loads whichever attaches.
macro_rules! function_hook {
    ($function:literal, $hook:expr, $fentry:ident, $kprobe:ident) => {
        #[fentry(function = $function)]
        pub fn $fentry(ctx: FEntryContext) -> i32 {
            from_function($hook, fentry_sk(&ctx, $hook));
            0
        }

        #[kprobe]
        pub fn $kprobe(ctx: ProbeContext) -> u32 {
            from_function($hook, kprobe_sk(&ctx, $hook));
            0
        }
    };
}

function_hook!(
    "inet_listen",
    sock_fn::INET_LISTEN,
    sock_fentry_inet_listen,
    sock_kprobe_inet_listen
);
function_hook!(
    "tcp_rcv_state_process",
    sock_fn::RCV_STATE_PROCESS,
    sock_fentry_rcv_state_process,
    sock_kprobe_rcv_state_process
);
function_hook!(
    "__tcp_transmit_skb",
    sock_fn::TRANSMIT_SKB,
    sock_fentry_transmit_skb,
    sock_kprobe_transmit_skb
);
function_hook!("tcp_ack", sock_fn::ACK, sock_fentry_ack, sock_kprobe_ack);
function_hook!(
    "tcp_write_timer_handler",
    sock_fn::WRITE_TIMER,
    sock_fentry_write_timer,
    sock_kprobe_write_timer
);
function_hook!("tcp_close", sock_fn::CLOSE, sock_fentry_close, sock_kprobe_close);

// `tcp_ack_update_rtt` also hands over the RTT sample (`seq_rtt_us`, at a
// position from BTF like the socket's): its lines carry it, and the RTT
// filters run on it.
#[fentry(function = "tcp_ack_update_rtt")]
pub fn sock_fentry_ack_update_rtt(ctx: FEntryContext) -> i32 {
    let sample = ctx_arg(ctx.as_ptr(), config().rtt.rtt_arg) as i64;
    from_rtt_sample(fentry_sk(&ctx, sock_fn::ACK_UPDATE_RTT), sample);
    0
}

#[kprobe]
pub fn sock_kprobe_ack_update_rtt(ctx: ProbeContext) -> u32 {
    let sample = kprobe_arg(&ctx, config().rtt.rtt_arg) as i64;
    from_rtt_sample(kprobe_sk(&ctx, sock_fn::ACK_UPDATE_RTT), sample);
    0
}

/// `arg`: the function's socket argument, a `struct socket *` for hooks
/// with `fn_deref` set (`inet_listen`).
#[inline(always)]
fn from_function(hook: u8, arg: u64) {
    let cfg = config();
    let m = &cfg.sock_mode;
    let sk = if m.fn_deref[hook as usize] != 0 {
        field::<u64>(arg, m.socket_sk).unwrap_or(0)
    } else {
        arg
    };
    if sk == 0 {
        return;
    }
    let Some(ev) = start(cfg) else {
        return;
    };
    from_sock(cfg, ev, hook, sk);
}

/// One RTT sample of `tcp_ack_update_rtt` (`sample` < 0: the ACK gave
/// none, skipped as `--rtt` skips it). `--filter-srtt`/`--filter-minrtt`
/// run here, before anything else is read.
#[inline(always)]
fn from_rtt_sample(sk: u64, sample: i64) {
    let cfg = config();
    if sk == 0 || sample < 0 {
        return;
    }
    let srtt = srtt_us(cfg, sk);
    let rtt_min = rtt_min_us(cfg, sk);
    if srtt < cfg.rtt.min_srtt_us || rtt_min < cfg.rtt.min_rtt_min_us {
        return;
    }
    let Some(ev) = start(cfg) else {
        return;
    };
    ev.rtt_us = sample.min(u32::MAX as i64) as u32;
    ev.rtt_min_us = rtt_min;
    ev.srtt_us = srtt;
    from_sock(cfg, ev, sock_fn::ACK_UPDATE_RTT, sk);
}

/// A function event about socket `sk`: the address filters, then the
/// socket's facts.
#[inline(always)]
fn from_sock(cfg: &TcpConfig, ev: &mut SockEvent, hook: u8, sk: u64) {
    tuple_of_sock(cfg, sk, &mut ev.tuple);
    if !tuple_matches(cfg, &ev.tuple) {
        return;
    }
    ev.netns = netns_of_sock(cfg, sk);
    ev.source = sock_source::FUNCTION;
    ev.hook = hook;
    finish(cfg, ev, sk, None, SockEvent::NO_STATE);
}

// ---- shared ----

/// Whether a socket in `state` is a full `tcp_sock`: request and
/// time-wait sockets end after `sock_common`, and reading `tcp_sock`
/// members there would read another object.
#[inline(always)]
fn is_full(cfg: &TcpConfig, state: u8) -> bool {
    let m = &cfg.sock_mode;
    u32::from(state) != m.state_time_wait && u32::from(state) != m.state_new_syn_recv
}

/// The pid filter, then a cleared scratch event with the task filled in.
#[inline(always)]
fn start(cfg: &TcpConfig) -> Option<&'static mut SockEvent> {
    let pid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if cfg.filter.pid != 0 && cfg.filter.pid != pid {
        return None;
    }
    let ev = SOCK_SCRATCH.get_ptr_mut(0)?;
    // SAFETY: per-CPU scratch slot, not shared with a concurrent program.
    let ev = unsafe { &mut *ev };
    ev.tuple = Tuple::default();
    ev.pid = pid;
    // Set by `tcp_ack_update_rtt` only.
    ev.rtt_us = 0;
    ev.rtt_min_us = 0;
    ev.srtt_us = 0;
    Some(ev)
}

/// The namespace filter, the socket's state and counters, then out.
/// `state`: the state to report when the hook knows better than the
/// socket (a state change not yet written).
#[inline(always)]
fn finish(cfg: &TcpConfig, ev: &mut SockEvent, sk: u64, state: Option<u8>, old_state: u8) {
    if !netns_allowed(&cfg.filter, ev.netns) {
        return;
    }
    let now = unsafe { bpf_ktime_get_ns() };
    if !ratelimit::allow(cfg.rate_limit, now) {
        return;
    }
    let m = &cfg.sock_mode;
    ev.ts_ns = now;
    ev.sk = sk;
    let current = field::<u8>(sk, cfg.sock.state).unwrap_or(0);
    ev.state = state.unwrap_or(current);
    ev.old_state = old_state;
    let full = sk != 0 && is_full(cfg, current);
    ev.full = full as u8;
    ev._pad = 0;
    let s = if full { sk } else { 0 };
    ev.ca_state =
        ((field::<u16>(s, m.ca_state_byte).unwrap_or(0) >> m.ca_state_shift) & m.ca_state_mask as u16) as u8;
    ev.packets_out = field::<u32>(s, m.packets_out).unwrap_or(0);
    ev.retrans_out = field::<u32>(s, m.retrans_out).unwrap_or(0);
    ev.snd_una = field::<u32>(s, cfg.sock.snd_una).unwrap_or(0);
    ev.wmem_queued = field::<u32>(s, m.wmem_queued).unwrap_or(0);
    ev.rmem_alloc = field::<u32>(s, m.rmem_alloc).unwrap_or(0);
    ev.timer = field::<u8>(s, m.pending).unwrap_or(0);
    ev.timer_left = 0;
    if ev.timer != 0
        && let Some(expires) = field::<u64>(s, m.timeout)
    {
        // `timer_list.expires` and jiffies are both `unsigned long`
        // jiffies; the difference is what is left (negative: overdue).
        ev.timer_left = expires.wrapping_sub(unsafe { bpf_jiffies64() }) as i64;
    }
    current_comm(&mut ev.comm);
    send(ev);
}
