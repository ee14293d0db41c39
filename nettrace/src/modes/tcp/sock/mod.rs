//! `--sock`: trace sockets instead of packets. One line per socket hook,
//! with the socket as the hook saw it:
//!
//! `[2157958.364890] [tcp_rcv_state_process] TCP: 127.0.0.1:36562 -> 127.0.0.1:9999 ESTABLISHED CA_Open out:(p1 r0) unack:196997740 mem:(w0 r0) timer:(retrans, 1.000s) netns:4026531840`
//!
//! Hooks: the TCP and socket tracepoints wherever they exist, and where
//! kernel functions can be hooked (fentry, else kprobe) `inet_listen`,
//! `tcp_rcv_state_process`, `__tcp_transmit_skb`, `tcp_ack`,
//! `tcp_write_timer_handler`, `tcp_ack_update_rtt` and `tcp_close`. A
//! function that cannot be hooked is left out (said with `--debug`); the
//! tracepoints alone still make the mode. `-t` picks hooks by name.
//!
//! `tcp_ack_update_rtt` lines also carry the RTT sample, as `--rtt-detail`
//! prints it (`*rtt:0.152ms, rtt_min:0.100ms* srtt:0.160ms`), and
//! `--filter-srtt`/`--filter-minrtt` filter those samples in the kernel
//! (they select that hook; without `-t` it is the only one).

mod attach;
mod print;
#[cfg(test)]
mod tests;

use nettrace_common::tcp::{SockEvent, sock_fn, sock_source, tp};

pub use self::{
    attach::{attach_functions, configure},
    print::Printer,
};
use super::{Tracepoint, tracepoint};

/// The tracepoints `--sock` attaches; each is optional, at least one must
/// exist (functions aside).
pub const TRACEPOINTS: [Tracepoint; 9] = [
    tracepoint(tp::SET_STATE, "sock", "inet_sock_set_state", "sock_set_state"),
    tracepoint(tp::PROBE, "tcp", "tcp_probe", "sock_tcp_probe"),
    tracepoint(tp::RETRANSMIT, "tcp", "tcp_retransmit_skb", "sock_retransmit_skb"),
    tracepoint(
        tp::RETRANSMIT_SYNACK,
        "tcp",
        "tcp_retransmit_synack",
        "sock_retransmit_synack",
    ),
    tracepoint(tp::SEND_RESET, "tcp", "tcp_send_reset", "sock_send_reset"),
    tracepoint(
        tp::RECEIVE_RESET,
        "tcp",
        "tcp_receive_reset",
        "sock_receive_reset",
    ),
    tracepoint(tp::DESTROY_SOCK, "tcp", "tcp_destroy_sock", "sock_destroy_sock"),
    tracepoint(
        tp::RCV_SPACE,
        "tcp",
        "tcp_rcv_space_adjust",
        "sock_rcv_space_adjust",
    ),
    tracepoint(tp::CONG_STATE, "tcp", "tcp_cong_state_set", "sock_cong_state_set"),
];

/// A kernel function `--sock` hooks, and its two entry points in the
/// object (`nettrace-ebpf/src/sock_events.rs`).
pub struct Function {
    pub hook: u8,
    pub name: &'static str,
    pub fentry: &'static str,
    pub kprobe: &'static str,
}

const fn function(hook: u8, name: &'static str, fentry: &'static str, kprobe: &'static str) -> Function {
    Function {
        hook,
        name,
        fentry,
        kprobe,
    }
}

/// Indexed by [`sock_fn`].
pub const FUNCTIONS: [Function; sock_fn::COUNT] = [
    function(
        sock_fn::INET_LISTEN,
        "inet_listen",
        "sock_fentry_inet_listen",
        "sock_kprobe_inet_listen",
    ),
    function(
        sock_fn::RCV_STATE_PROCESS,
        "tcp_rcv_state_process",
        "sock_fentry_rcv_state_process",
        "sock_kprobe_rcv_state_process",
    ),
    function(
        sock_fn::TRANSMIT_SKB,
        "__tcp_transmit_skb",
        "sock_fentry_transmit_skb",
        "sock_kprobe_transmit_skb",
    ),
    function(sock_fn::ACK, "tcp_ack", "sock_fentry_ack", "sock_kprobe_ack"),
    function(
        sock_fn::WRITE_TIMER,
        "tcp_write_timer_handler",
        "sock_fentry_write_timer",
        "sock_kprobe_write_timer",
    ),
    function(
        sock_fn::ACK_UPDATE_RTT,
        "tcp_ack_update_rtt",
        "sock_fentry_ack_update_rtt",
        "sock_kprobe_ack_update_rtt",
    ),
    function(
        sock_fn::CLOSE,
        "tcp_close",
        "sock_fentry_close",
        "sock_kprobe_close",
    ),
];

/// The function whose samples `--filter-srtt`/`--filter-minrtt` filter.
pub const ACK_UPDATE_RTT: &str = "tcp_ack_update_rtt";

/// Every hook name `-t` accepts with `--sock`: tracepoints, then functions.
pub fn hook_names() -> impl Iterator<Item = &'static str> {
    TRACEPOINTS
        .iter()
        .map(|t| t.name)
        .chain(FUNCTIONS.iter().map(|f| f.name))
}

pub fn is_tracepoint(name: &str) -> bool {
    TRACEPOINTS.iter().any(|t| t.name == name)
}

/// `-t` with `--sock`: hook names, comma separated, or `all`. Each name
/// once, in the order given.
pub fn parse_hooks(list: &str) -> Result<Vec<&'static str>, String> {
    let mut out: Vec<&'static str> = Vec::new();
    for name in list.split(',').map(str::trim) {
        let found: Vec<&'static str> = if name == "all" {
            hook_names().collect()
        } else {
            let n = hook_names().find(|n| *n == name).ok_or_else(|| {
                format!(
                    "'{name}' is not a --sock hook (those are: all, {})",
                    hook_names().collect::<Vec<_>>().join(", ")
                )
            })?;
            vec![n]
        };
        for n in found {
            if !out.contains(&n) {
                out.push(n);
            }
        }
    }
    Ok(out)
}

/// Whether the hook `name` is wanted: all are without `-t`.
pub fn selected(hooks: Option<&[&str]>, name: &str) -> bool {
    hooks.is_none_or(|h| h.contains(&name))
}

/// Whether an event is a `tcp_ack_update_rtt` sample (it carries the
/// sample, `srtt` and `rtt_min`).
pub fn is_rtt_sample(ev: &SockEvent) -> bool {
    ev.source == sock_source::FUNCTION && ev.hook == sock_fn::ACK_UPDATE_RTT && ev.full != 0
}

/// The name of an event's hook: its tracepoint's or function's.
pub fn hook_name(source: u8, hook: u8) -> &'static str {
    if source == sock_source::FUNCTION {
        FUNCTIONS.get(usize::from(hook)).map_or("function", |f| f.name)
    } else {
        TRACEPOINTS
            .iter()
            .find(|t| t.kind == hook)
            .map_or("tracepoint", |t| t.name)
    }
}

/// One number per hook, for `--metrics` counters.
pub fn hook_slot(ev: &SockEvent) -> u32 {
    u32::from(ev.source) << 8 | u32::from(ev.hook)
}
