//! `--rt`'s fourth moment: a server socket becomes established
//! (`sock:inet_sock_set_state`, `SYN_RECV` → `ESTABLISHED`, 4.16+) and is
//! timed from then. A segment that completes the handshake is processed
//! by `tcp_rcv_state_process`, never by `tcp_rcv_established` where
//! `rt.rs` sees segments: a TCP Fast Open request (in the SYN), and a first
//! data segment that overtakes the handshake's last ACK (seen under
//! emulation). Their bytes are found in sequence space later (`rt.rs`'s
//! `missed` and unseen paths), and the connection's first request starts
//! at the handshake's end.

use aya_ebpf::{helpers::bpf_ktime_get_ns, macros::tracepoint, programs::TracePointContext};
use nettrace_common::{
    ipproto,
    tcp::{RtState, tp},
};

use crate::{
    read::field,
    rt::{RT_SOCKS, track},
    sock::{config, rec, sk_of},
};

#[tracepoint(category = "sock", name = "inet_sock_set_state")]
pub fn rt_set_state(ctx: TracePointContext) -> u32 {
    let cfg = config();
    let f = &cfg.tps[tp::SET_STATE as usize];
    // Other inet protocols change state through the same tracepoint.
    if cfg.rt.client != 0 || rec::<u16>(&ctx, f.value16) != Some(ipproto::TCP as u16) {
        return 0;
    }
    // (Options are not compared: the verifier refuses reading a `None`'s
    // undefined payload.)
    let state = |at: u32| rec::<i32>(&ctx, at).map_or(u32::MAX, |v| v as u32);
    if state(f.old_state) != cfg.rt.state_syn_recv || state(f.new_state) != cfg.rt.state_established {
        return 0;
    }
    let sk = sk_of(&ctx, f);
    if sk == 0 || unsafe { RT_SOCKS.get(&sk) }.is_some() {
        return 0;
    }
    // Payload received before (a Fast Open request) is the first
    // request's, unless a response was queued already (Fast Open lets the
    // server answer before the handshake ends): that task was not seen.
    let seq = |at: u32| field::<u32>(sk, at).unwrap_or(0);
    let nxt = seq(cfg.sock.rcv_nxt);
    let before = field::<u64>(sk, cfg.rt.bytes_received).unwrap_or(0) as u32;
    let answered = seq(cfg.sock.write_seq) != seq(cfg.sock.snd_una);
    let first = if answered { nxt } else { nxt.wrapping_sub(before) };
    if let Some(s) = track(sk, first) {
        // SAFETY: as in `rt.rs`'s `on_segment`.
        unsafe { (*s).established_ns = bpf_ktime_get_ns() };
    }
    0
}

/// The start of a request no program saw arrive, when it is the
/// connection's first and the socket was timed from the handshake's end
/// (call after `start_task`): it came with that end.
#[inline(always)]
pub fn first_request_start(s: &RtState) -> Option<u64> {
    (s.tasks == 1 && s.established_ns != 0).then_some(s.established_ns)
}
