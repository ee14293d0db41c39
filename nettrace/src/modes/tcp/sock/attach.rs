//! Where `--sock`'s programs find the socket (BTF offsets and argument
//! positions), and hooking its kernel functions through `crate::attach`.

use aya::Ebpf;
use nettrace_common::{
    KernelLayout,
    tcp::{SockModeConfig, sock_fn},
};

use super::{ACK_UPDATE_RTT, FUNCTIONS, selected};
use crate::{
    attach::{self, Backend, Means, Target},
    cli::BackendChoice,
    kernel::btf::KernelBtf,
};

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
    if m.fn_arg[rtt] != KernelLayout::NONE && crate::modes::tcp::rtt::positions(btf).is_none() {
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
