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

use std::borrow::Cow;

use aya::Ebpf;
use nettrace_common::{
    KernelLayout,
    tcp::{SockEvent, SockModeConfig, sock_fn, sock_source, tp},
};
use serde_json::json;

use super::{Names, Tracepoint, ms, tracepoint, tuple_json, tuple_text};
use crate::{
    attach::{self, Backend, Means, Target},
    cli::BackendChoice,
    kernel::btf::KernelBtf,
    output::{Clock, cstr, json},
};

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

/// Fills in where the socket facts live (BTF) and where each function
/// keeps its socket. Returns what this kernel lacks, for `--debug`: each
/// missing fact is shown as 0, a function without a usable socket argument
/// is not hooked.
pub fn configure(btf: &KernelBtf, m: &mut SockModeConfig) -> Vec<String> {
    let mut missing = Vec::new();
    let mut offset = |ty: &str, path: &[&str]| {
        btf.member_offset(ty, path).unwrap_or_else(|e| {
            missing.push(e.to_string());
            KernelLayout::NONE
        })
    };
    const ICSK: &str = "inet_connection_sock";
    m.pending = offset(ICSK, &["icsk_pending"]);
    m.packets_out = offset("tcp_sock", &["packets_out"]);
    m.retrans_out = offset("tcp_sock", &["retrans_out"]);
    m.wmem_queued = offset("sock", &["sk_wmem_queued"]);
    // `sk_rmem_alloc` is a macro for this member.
    m.rmem_alloc = offset("sock", &["sk_backlog", "rmem_alloc", "counter"]);
    m.socket_sk = offset("socket", &["sk"]);
    // 6.14 dropped `icsk_timeout`; the retransmit timer's own expiry is
    // what it mirrored (`icsk_timeout()` reads it there).
    m.timeout = btf
        .member_offset(ICSK, &["icsk_timeout"])
        .or_else(|_| btf.member_offset(ICSK, &["icsk_retransmit_timer", "expires"]))
        .unwrap_or_else(|e| {
            missing.push(format!("timer expiry: {e}"));
            KernelLayout::NONE
        });
    match btf.member_bits(ICSK, &["icsk_ca_state"]) {
        // The eBPF side reads a u16 at the byte holding the first bit.
        Ok((bit, width)) if bit % 8 + width <= 16 => {
            m.ca_state_byte = bit / 8;
            m.ca_state_shift = bit % 8;
            m.ca_state_mask = (1 << width) - 1;
        }
        Ok((bit, width)) => missing.push(format!("{ICSK}.icsk_ca_state: {width} bits at bit {bit}")),
        Err(e) => missing.push(e.to_string()),
    }
    // `inet_sport` and the TIME_WAIT/NEW_SYN_RECV values: `tcp::prepare`.
    for f in &FUNCTIONS {
        match socket_arg(btf, f.name, m.socket_sk != KernelLayout::NONE) {
            Ok((pos, deref)) => {
                m.fn_arg[usize::from(f.hook)] = pos;
                m.fn_deref[usize::from(f.hook)] = deref as u32;
            }
            Err(why) => missing.push(format!("{}: {why}", f.name)),
        }
    }
    // Its lines carry the sample: `seq_rtt_us`, found as `--rtt` finds it.
    let rtt = usize::from(sock_fn::ACK_UPDATE_RTT);
    if m.fn_arg[rtt] != KernelLayout::NONE && super::rtt::positions(btf).is_none() {
        m.fn_arg[rtt] = KernelLayout::NONE;
        missing.push(format!(
            "{ACK_UPDATE_RTT}: no `struct sock *sk` and `long seq_rtt_us` arguments in BTF"
        ));
    }
    missing
}

/// Position of a function's socket argument (BTF): the first `struct sock *`,
/// else (`deref`) the first `struct socket *`, whose `sk` is read.
pub fn socket_arg(btf: &KernelBtf, func: &str, can_deref: bool) -> Result<(u32, bool), String> {
    let params = btf
        .function_params(func)
        .ok_or_else(|| "not in this kernel's BTF".to_string())?;
    let at = |ty: &str| params.iter().position(|p| p.ty == ty);
    let (pos, deref) = match (at("struct sock *"), at("struct socket *")) {
        (Some(i), _) => (i, false),
        (None, Some(i)) if can_deref => (i, true),
        _ => return Err("no struct sock * or struct socket * argument".into()),
    };
    // Both readers of arguments (`args.rs`) stop at the fifth register.
    if pos > 4 {
        return Err(format!("socket is argument {pos}, too far to read"));
    }
    Ok((pos as u32, deref))
}

/// Hooks every usable function `-t` selects (`hooks`, `None`: all), each
/// by fentry, else kprobe (or only the mechanism `--backend` forces; none
/// for `--backend tracepoint`). Returns each selected function's outcome;
/// a failure is a reason, not an error.
pub fn attach_functions(
    ebpf: &mut Ebpf,
    m: &SockModeConfig,
    hooks: Option<&[&str]>,
    backend: BackendChoice,
    means: Means<'_>,
) -> Vec<(&'static str, Result<Backend, String>)> {
    let (try_fentry, try_kprobe) = match backend {
        BackendChoice::Auto => (true, true),
        BackendChoice::Fentry => (true, false),
        BackendChoice::Kprobe => (false, true),
        BackendChoice::Tracepoint | BackendChoice::TpBtf => return Vec::new(),
    };
    let mut out = Vec::new();
    for f in FUNCTIONS.iter().filter(|f| selected(hooks, f.name)) {
        if m.fn_arg[usize::from(f.hook)] == KernelLayout::NONE {
            out.push((f.name, Err("no usable socket argument in BTF".into())));
            continue;
        }
        let fentry = Target::function(Backend::Fentry, f.fentry, f.name);
        let kprobe = Target::function(Backend::Kprobe, f.kprobe, f.name);
        let targets: Vec<Target<'_>> = [(try_fentry, fentry), (try_kprobe, kprobe)]
            .into_iter()
            .filter_map(|(wanted, t)| wanted.then_some(t))
            .collect();
        let attempt = attach::first(ebpf, means, &targets);
        out.push((f.name, attempt.used.ok_or_else(|| attempt.why())));
    }
    out
}

/// The pending-timer kinds, `ICSK_TIME_*` of the kernel's
/// `include/net/inet_connection_sock.h`. They are `#define`s, so BTF cannot
/// name them; the values have been stable since they were introduced
/// (4, `ICSK_TIME_KEEPOPEN`, is no longer set by current kernels). Any other
/// value is shown as its number.
pub fn timer_name(v: u8) -> Cow<'static, str> {
    match v {
        1 => "retrans".into(),
        2 => "delack".into(),
        3 => "probe0".into(),
        4 => "keepalive".into(),
        5 => "loss_probe".into(),
        6 => "reo_timeout".into(),
        n => n.to_string().into(),
    }
}

/// Jiffies as time at `hz` ticks per second: `1.000s`, `-0.004s`
/// (overdue); plain jiffies when the tick rate is unknown.
pub fn timer_left(jiffies: i64, hz: Option<u32>) -> String {
    match hz {
        Some(hz) => {
            let ms = jiffies.saturating_mul(1000) / i64::from(hz);
            let sign = if ms < 0 { "-" } else { "" };
            format!(
                "{sign}{}.{:03}s",
                ms.unsigned_abs() / 1000,
                ms.unsigned_abs() % 1000
            )
        }
        None => format!("{jiffies} jiffies"),
    }
}

pub struct Printer {
    pub clock: Clock,
    pub names: Names,
    /// The kernel's tick rate (`kernel::hz`), `None` when unknown.
    pub hz: Option<u32>,
}

impl Printer {
    /// `ESTABLISHED`, or `SYN_SENT->ESTABLISHED` for a state change.
    fn state(&self, ev: &SockEvent) -> String {
        if ev.old_state == SockEvent::NO_STATE {
            self.names.state(ev.state)
        } else {
            format!(
                "{}->{}",
                self.names.state(ev.old_state),
                self.names.state(ev.state)
            )
        }
    }

    pub fn line(&self, ev: &SockEvent) -> String {
        let mut s = format!(
            "[{}] [{:<21}] TCP: {}",
            self.clock.format(ev.ts_ns),
            hook_name(ev.source, ev.hook),
            tuple_text(&ev.tuple)
        );
        if ev.sk != 0 {
            s += " ";
            s += &self.state(ev);
        }
        if ev.full != 0 {
            s += &format!(
                " CA_{} out:(p{} r{}) unack:{} mem:(w{} r{})",
                self.names.ca_state(ev.ca_state.into()),
                ev.packets_out,
                ev.retrans_out,
                ev.snd_una,
                ev.wmem_queued,
                ev.rmem_alloc
            );
            if ev.timer != 0 {
                s += &format!(
                    " timer:({}, {})",
                    timer_name(ev.timer),
                    timer_left(ev.timer_left, self.hz)
                );
            }
        }
        if is_rtt_sample(ev) {
            // As `--rtt-detail` (and the C nettrace's sock mode) show it.
            s += &format!(
                " *rtt:{}, rtt_min:{}* srtt:{}",
                ms(ev.rtt_us.into()),
                ms(ev.rtt_min_us.into()),
                ms(ev.srtt_us.into())
            );
        }
        s += &format!(" netns:{}", ev.netns);
        if ev.pid != 0 {
            s += &format!(" task:{}/{}", ev.pid, cstr(&ev.comm));
        }
        s
    }

    pub fn json(&self, ev: &SockEvent) -> String {
        let mut m = json::record("sock");
        m.insert("ts_ns".into(), json!(ev.ts_ns));
        m.insert("time".into(), json!(self.clock.format(ev.ts_ns)));
        m.insert("hook".into(), json!(hook_name(ev.source, ev.hook)));
        m.insert(
            "hook_type".into(),
            json!(if ev.source == sock_source::FUNCTION {
                "function"
            } else {
                "tracepoint"
            }),
        );
        tuple_json(&ev.tuple, &mut m);
        if ev.sk != 0 {
            m.insert("state".into(), json!(self.names.state(ev.state)));
            if ev.old_state != SockEvent::NO_STATE {
                m.insert("old_state".into(), json!(self.names.state(ev.old_state)));
            }
        }
        if ev.full != 0 {
            m.insert("ca_state".into(), json!(self.names.ca_state(ev.ca_state.into())));
            m.insert("packets_out".into(), json!(ev.packets_out));
            m.insert("retrans_out".into(), json!(ev.retrans_out));
            m.insert("snd_una".into(), json!(ev.snd_una));
            m.insert("wmem_queued".into(), json!(ev.wmem_queued));
            m.insert("rmem_alloc".into(), json!(ev.rmem_alloc));
            if ev.timer != 0 {
                m.insert("timer".into(), json!(timer_name(ev.timer)));
                m.insert("timer_jiffies".into(), json!(ev.timer_left));
                if let Some(hz) = self.hz {
                    m.insert(
                        "timer_ns".into(),
                        json!(ev.timer_left.saturating_mul(1_000_000_000) / i64::from(hz)),
                    );
                }
            }
        }
        if is_rtt_sample(ev) {
            // The names of `--rtt-detail`'s `rtt` record.
            m.insert("rtt_ns".into(), json!(u64::from(ev.rtt_us) * 1000));
            m.insert("rtt_min_ns".into(), json!(u64::from(ev.rtt_min_us) * 1000));
            m.insert("srtt_ns".into(), json!(u64::from(ev.srtt_us) * 1000));
        }
        m.insert("netns".into(), json!(ev.netns));
        if ev.pid != 0 {
            m.insert("pid".into(), json!(ev.pid));
            m.insert("comm".into(), json!(cstr(&ev.comm)));
        }
        m.insert("sk".into(), json!(format!("{:x}", ev.sk)));
        json::line(m)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use nettrace_common::{
        filter::family,
        tcp::{RtEvent, RttEvent, TcpEvent, Tuple},
    };

    use super::*;
    use crate::kernel::btf::VMLINUX_BTF;

    fn names() -> Names {
        let states = [
            (1, "ESTABLISHED"),
            (2, "SYN_SENT"),
            (7, "CLOSE"),
            (12, "NEW_SYN_RECV"),
        ];
        Names {
            states: states.iter().map(|(v, n)| (*v, n.to_string())).collect(),
            ca_states: HashMap::from([(0, "Open".to_string()), (4, "Loss".to_string())]),
        }
    }

    fn event() -> SockEvent {
        let mut t = Tuple {
            family: family::V4,
            sport: 36562,
            dport: 9999,
            ..Tuple::default()
        };
        t.saddr[..4].copy_from_slice(&[127, 0, 0, 1]);
        t.daddr[..4].copy_from_slice(&[127, 0, 0, 1]);
        let mut comm = [0; 16];
        comm[..4].copy_from_slice(b"curl");
        SockEvent {
            ts_ns: 2_157_958_364_890_000,
            sk: 0xffff_8881_0000_1000,
            timer_left: 250,
            tuple: t,
            source: sock_source::FUNCTION,
            hook: sock_fn::RCV_STATE_PROCESS,
            state: 1,
            old_state: SockEvent::NO_STATE,
            ca_state: 0,
            timer: 1,
            full: 1,
            _pad: 0,
            netns: 4026531840,
            packets_out: 1,
            retrans_out: 0,
            snd_una: 196997740,
            wmem_queued: 0,
            rmem_alloc: 0,
            pid: 0,
            rtt_us: 0,
            rtt_min_us: 0,
            srtt_us: 0,
            comm,
        }
    }

    fn printer(hz: Option<u32>) -> Printer {
        Printer {
            clock: Clock::new(false),
            names: names(),
            hz,
        }
    }

    #[test]
    fn the_issue_line() {
        let p = printer(Some(250));
        let line = p.line(&event());
        let (_, rest) = line.split_once("] ").unwrap();
        assert_eq!(
            rest,
            "[tcp_rcv_state_process] TCP: 127.0.0.1:36562 -> 127.0.0.1:9999 ESTABLISHED CA_Open out:(p1 r0) unack:196997740 mem:(w0 r0) timer:(retrans, 1.000s) netns:4026531840"
        );
    }

    #[test]
    fn state_changes_other_sockets_and_tasks() {
        let p = printer(None);
        let mut ev = event();
        ev.source = sock_source::TRACEPOINT;
        ev.hook = tp::SET_STATE;
        ev.old_state = 2;
        ev.timer = 9;
        ev.timer_left = -3;
        ev.pid = 4242;
        let line = p.line(&ev);
        assert!(line.contains("] [inet_sock_set_state  ] TCP: "), "{line}");
        assert!(line.contains(" SYN_SENT->ESTABLISHED CA_Open "), "{line}");
        assert!(
            line.contains(" timer:(9, -3 jiffies) netns:4026531840 task:4242/curl"),
            "{line}"
        );
        // A request socket: state only.
        ev.full = 0;
        ev.old_state = SockEvent::NO_STATE;
        ev.state = 12;
        let line = p.line(&ev);
        assert!(
            line.ends_with(":9999 NEW_SYN_RECV netns:4026531840 task:4242/curl"),
            "{line}"
        );
        // No socket at all (a reset sent for a closed port).
        ev.sk = 0;
        ev.pid = 0;
        ev.hook = tp::SEND_RESET;
        assert!(
            p.line(&ev)
                .ends_with("[tcp_send_reset       ] TCP: 127.0.0.1:36562 -> 127.0.0.1:9999 netns:4026531840")
        );
    }

    #[test]
    fn json_record_is_typed() {
        let p = printer(Some(1000));
        let v: serde_json::Value = serde_json::from_str(&p.json(&event())).unwrap();
        assert_eq!(v["type"], "sock");
        assert_eq!(v["hook"], "tcp_rcv_state_process");
        assert_eq!(v["hook_type"], "function");
        assert_eq!(v["sport"], 36562);
        assert_eq!(v["state"], "ESTABLISHED");
        assert_eq!(v["ca_state"], "Open");
        assert_eq!(v["packets_out"], 1);
        assert_eq!(v["snd_una"], 196997740u32);
        assert_eq!(v["timer"], "retrans");
        assert_eq!(v["timer_jiffies"], 250);
        assert_eq!(v["timer_ns"], 250_000_000);
        assert!(v.get("old_state").is_none() && v.get("pid").is_none());
    }

    /// `tcp_ack_update_rtt` lines carry the sample as `--rtt-detail`
    /// prints it; other hooks do not.
    #[test]
    fn rtt_samples_in_text_and_json() {
        let p = printer(Some(250));
        let mut ev = event();
        ev.hook = sock_fn::ACK_UPDATE_RTT;
        ev.rtt_us = 152;
        ev.rtt_min_us = 100;
        ev.srtt_us = 1_160;
        ev.pid = 7;
        let line = p.line(&ev);
        let (_, rest) = line.split_once("] ").unwrap();
        assert_eq!(
            rest,
            "[tcp_ack_update_rtt   ] TCP: 127.0.0.1:36562 -> 127.0.0.1:9999 ESTABLISHED CA_Open out:(p1 r0) unack:196997740 mem:(w0 r0) timer:(retrans, 1.000s) *rtt:0.152ms, rtt_min:0.100ms* srtt:1.160ms netns:4026531840 task:7/curl"
        );
        let v: serde_json::Value = serde_json::from_str(&p.json(&ev)).unwrap();
        assert_eq!(v["hook"], "tcp_ack_update_rtt");
        assert_eq!(v["rtt_ns"], 152_000);
        assert_eq!(v["rtt_min_ns"], 100_000);
        assert_eq!(v["srtt_ns"], 1_160_000);
        // Another function, and a tracepoint with the same hook number.
        for (source, hook) in [
            (sock_source::FUNCTION, sock_fn::ACK),
            (sock_source::TRACEPOINT, sock_fn::ACK_UPDATE_RTT),
        ] {
            ev.source = source;
            ev.hook = hook;
            assert!(!p.line(&ev).contains("rtt"), "{}", p.line(&ev));
            let v: serde_json::Value = serde_json::from_str(&p.json(&ev)).unwrap();
            assert!(v.get("srtt_ns").is_none() && v.get("rtt_ns").is_none(), "{v}");
        }
    }

    #[test]
    fn hook_selection() {
        assert_eq!(
            parse_hooks("tcp_ack_update_rtt").unwrap(),
            vec!["tcp_ack_update_rtt"]
        );
        assert_eq!(
            parse_hooks("tcp_probe, tcp_close,tcp_probe").unwrap(),
            vec!["tcp_probe", "tcp_close"]
        );
        let all = parse_hooks("all").unwrap();
        assert_eq!(all.len(), TRACEPOINTS.len() + FUNCTIONS.len());
        assert_eq!(parse_hooks("tcp_close,all").unwrap().len(), all.len());
        for bad in ["ip_rcv", "", "tcp_probe,"] {
            let e = parse_hooks(bad).unwrap_err();
            assert!(
                e.contains("is not a --sock hook") && e.contains("tcp_ack_update_rtt"),
                "{e}"
            );
        }
        assert!(selected(None, "tcp_close"));
        assert!(selected(Some(&["tcp_close"]), "tcp_close"));
        assert!(!selected(Some(&["tcp_close"]), "tcp_probe"));
        assert!(is_tracepoint("tcp_probe") && !is_tracepoint(ACK_UPDATE_RTT));
    }

    #[test]
    fn timers() {
        assert_eq!(timer_left(250, Some(250)), "1.000s");
        assert_eq!(timer_left(51, Some(1000)), "0.051s");
        assert_eq!(timer_left(-1, Some(250)), "-0.004s");
        assert_eq!(timer_left(7, None), "7 jiffies");
        assert_eq!(timer_name(5), "loss_probe");
        assert_eq!(timer_name(42), "42");
    }

    /// Events of this object are told apart by size.
    #[test]
    fn event_size_is_its_own() {
        let n = size_of::<SockEvent>();
        assert_eq!(n, 128);
        for other in [size_of::<TcpEvent>(), size_of::<RtEvent>(), size_of::<RttEvent>()] {
            assert_ne!(n, other);
        }
    }

    #[test]
    fn hook_names() {
        for (i, f) in FUNCTIONS.iter().enumerate() {
            assert_eq!(usize::from(f.hook), i);
            assert_eq!(hook_name(sock_source::FUNCTION, f.hook), f.name);
        }
        assert_eq!(
            hook_name(sock_source::TRACEPOINT, tp::SET_STATE),
            "inet_sock_set_state"
        );
        assert_eq!(hook_name(sock_source::TRACEPOINT, tp::PROBE), "tcp_probe");
        // A name longer than the column is printed whole.
        let mut ev = event();
        ev.hook = sock_fn::WRITE_TIMER;
        assert!(
            printer(None)
                .line(&ev)
                .contains("] [tcp_write_timer_handler] TCP: ")
        );
    }

    /// The kprobe entry points pass the running kernel's verifier, loaded
    /// with the configuration `--sock --filter-srtt` gives them (also where
    /// kprobes cannot be attached, as on this project's CI host: loading
    /// needs only the program type). Root only.
    #[test]
    fn kprobe_programs_load_on_the_running_kernel() {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("skipped: loading eBPF needs root");
            return;
        }
        let btf = KernelBtf::from_file(VMLINUX_BTF).unwrap();
        let layout = crate::kernel::layout::resolve(&btf).unwrap();
        let root = crate::kernel::tracefs::ensure_mounted().unwrap().0;
        let mut p = super::super::prepare(&btf, &layout, &root, &TRACEPOINTS).unwrap();
        assert!(configure(&btf, &mut p.config.sock_mode).is_empty());
        let (sk, sample) = super::super::rtt::positions(&btf).unwrap();
        p.config.rtt.sk_arg = sk;
        p.config.rtt.rtt_arg = sample;
        p.config.rtt.min_srtt_us = 10_000;
        p.config.rtt.min_rtt_min_us = 1_000;
        let aya_btf = Btf::from_sys_fs().unwrap();
        let mut ebpf = crate::load::load_tcp(&p.config, Some(&aya_btf)).unwrap();
        // `--rtt`'s own entry point reads the sample the same way.
        for name in FUNCTIONS.iter().map(|f| f.kprobe).chain(["rtt_kprobe"]) {
            let prog: &mut KProbe = program(&mut ebpf, name).unwrap();
            prog.load()
                .unwrap_or_else(|e| panic!("{name}: {:#}", anyhow::Error::new(e)));
        }
    }

    /// The layout of the running kernel, from its BTF.
    #[test]
    fn layout_of_the_running_kernel() {
        let btf = KernelBtf::from_file(VMLINUX_BTF).unwrap();
        let mut m = SockModeConfig::default();
        let missing = configure(&btf, &mut m);
        assert!(missing.is_empty(), "{missing:?}");
        assert_eq!(m.ca_state_mask, 0x1f, "a 5-bit bitfield");
        assert!(m.ca_state_shift + 5 <= 16);
        // inet_sock, inet_connection_sock and tcp_sock extend struct sock.
        let sock_size = btf.struct_size("sock").unwrap();
        for off in [
            m.ca_state_byte,
            m.pending,
            m.timeout,
            m.packets_out,
            m.retrans_out,
        ] {
            assert!(off >= sock_size && off != KernelLayout::NONE, "{off} {m:?}");
        }
        for off in [m.wmem_queued, m.rmem_alloc] {
            assert!(off < sock_size, "{off}");
        }
        // inet_listen(struct socket *sock, int backlog); the others take
        // the struct sock * first.
        assert_eq!(m.fn_arg[usize::from(sock_fn::INET_LISTEN)], 0);
        assert_eq!(m.fn_deref[usize::from(sock_fn::INET_LISTEN)], 1);
        for f in &FUNCTIONS[1..] {
            assert_eq!(m.fn_arg[usize::from(f.hook)], 0, "{}", f.name);
            assert_eq!(m.fn_deref[usize::from(f.hook)], 0, "{}", f.name);
        }
    }
}
