//! How `--rt` reaches its three moments on the running kernel (see
//! `nettrace-ebpf/src/rt.rs`): a segment arriving, `sendmsg` returning, the
//! socket going. A segment by its tracepoint where the kernel has one whose
//! record carries the socket, else by the kernel function behind it
//! (fentry, else kprobe), probed in that order like every other hook; a
//! send by the function first (fexit, else kprobe + kretprobe, under the
//! socket lock), its tracepoint (after the lock) where no function can be
//! hooked, as on this project's host. Argument positions come from BTF.
//!
//! On the kernels of the matrix: the host's 6.18 and the VM's 6.12 have
//! `tcp:tcp_probe` with `skaddr` and `sock:sock_send_length` (6.3+); 5.10
//! and 6.1 have `tcp_probe` without the socket and no `sock_send_length`,
//! so both are functions there. `tcp:tcp_destroy_sock` exists from 5.3.
//!
//! A fourth, `sock:inet_sock_set_state` (4.16+), times a server socket
//! from the handshake's end, so that a request processed with it is not
//! lost (see `nettrace-ebpf/src/rt.rs`); without it such a request is.

use std::fmt;

use aya::Ebpf;
use nettrace_common::{
    KernelLayout,
    tcp::{RtConfig, tp},
};

use super::super::{Prepared, Tracepoint, tracepoint};
use crate::{
    attach::{self, Backend, Means, Target},
    cli::BackendChoice,
    kernel::btf::KernelBtf,
};

/// The tracepoints `--rt` attaches where they serve.
pub const TRACEPOINTS: [Tracepoint; 4] = [PROBE, SEND_LENGTH, DESTROY, SET_STATE];
const PROBE: Tracepoint = tracepoint(tp::PROBE, "tcp", "tcp_probe", "rt_tcp_probe");
const SEND_LENGTH: Tracepoint =
    tracepoint(tp::SEND_LENGTH, "sock", "sock_send_length", "rt_sock_send_length");
const DESTROY: Tracepoint = tracepoint(tp::DESTROY_SOCK, "tcp", "tcp_destroy_sock", "rt_tcp_destroy_sock");
const SET_STATE: Tracepoint = tracepoint(tp::SET_STATE, "sock", "inet_sock_set_state", "rt_set_state");

/// Where `tcp_probe` fires, and the function behind `sock_send_length`:
/// `tcp_sendmsg_locked`, not `tcp_sendmsg`, whose return comes after
/// `release_sock`: there a segment of the socket may be processed on
/// another CPU at the same time, and both would update the socket's
/// timing state at once. Under the socket lock, segments wait in the
/// backlog until the send is counted (seen under emulation on 6.1).
pub const RECEIVE_FUNCTION: &str = "tcp_rcv_established";
pub const SEND_FUNCTION: &str = "tcp_sendmsg_locked";

/// Argument positions of the two functions from BTF, into `config.rt`;
/// returns why a function cannot be used, for `--debug`.
pub fn configure(btf: &KernelBtf, layout: &KernelLayout, rt: &mut RtConfig) -> Vec<String> {
    let mut why = Vec::new();
    rt.skb_len = layout.skb_len;
    for (name, at) in [
        ("bytes_received", &mut rt.bytes_received),
        ("mss_cache", &mut rt.mss_cache),
    ] {
        match btf.member_offset("tcp_sock", &[name]) {
            Ok(offset) => *at = offset,
            Err(e) => why.push(format!("tcp_sock.{name}: {e}")),
        }
    }
    match params(btf, RECEIVE_FUNCTION, &["struct sock *", "struct sk_buff *"]) {
        Ok((at, _)) => (rt.rcv_sk_arg, rt.rcv_skb_arg) = (at[0], at[1]),
        Err(e) => why.push(e),
    }
    match params(btf, SEND_FUNCTION, &["struct sock *"]) {
        // fexit's context: the arguments, then the return value.
        Ok((at, count)) => (rt.send_sk_arg, rt.send_ret_slot) = (at[0], count),
        Err(e) => why.push(e),
    }
    why
}

/// The positions of the first parameter of each type, and how many
/// parameters the function has.
fn params(btf: &KernelBtf, func: &str, types: &[&str]) -> Result<(Vec<u32>, u32), String> {
    let params = btf
        .function_params(func)
        .ok_or_else(|| format!("{func}: not in this kernel's BTF"))?;
    let mut at = Vec::new();
    for ty in types {
        // Both readers of arguments (`args.rs`) stop at the fifth register.
        match params.iter().position(|p| p.ty == *ty) {
            Some(i) if i <= 4 && params.len() <= 6 => at.push(i as u32),
            Some(i) => {
                return Err(format!(
                    "{func}: {ty} is argument {i} of {}, too far to read",
                    params.len()
                ));
            }
            None => return Err(format!("{func}: no {ty} argument in BTF")),
        }
    }
    Ok((at, params.len() as u32))
}

/// What timed each moment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Used {
    pub receive: Backend,
    pub send: Backend,
    /// Whether server sockets are timed from the handshake's end (else
    /// why not); `None` for client sockets (timed from their first send).
    pub handshake: Option<Result<(), String>>,
}

impl fmt::Display for Used {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = |b: Backend, tp: &str, func: &str| match b {
            Backend::Tracepoint | Backend::TpBtf => format!("{tp} (tracepoint)"),
            Backend::Kprobe if func == SEND_FUNCTION => format!("{func} (kprobe+kretprobe)"),
            other => format!("{func} ({other})"),
        };
        write!(
            f,
            "receive: {}, send: {}, close: tcp:tcp_destroy_sock (tracepoint), handshake: {}",
            name(self.receive, "tcp:tcp_probe", RECEIVE_FUNCTION),
            name(self.send, "sock:sock_send_length", SEND_FUNCTION),
            match &self.handshake {
                Some(Ok(())) => "sock:inet_sock_set_state (tracepoint)".to_string(),
                Some(Err(why)) => format!("not seen, a request completing it is lost ({why})"),
                None => "not needed (client sockets)".to_string(),
            }
        )
    }
}

/// Attaches the three moments, each by the first way that works (only
/// the mechanism `--backend` names, when it names one).
pub fn attach(
    ebpf: &mut Ebpf,
    p: &Prepared,
    backend: BackendChoice,
    means: Means<'_>,
) -> Result<Used, String> {
    let present = |t: &Tracepoint| p.present.iter().any(|x| x.kind == t.kind);
    let f = |t: &Tracepoint| &p.config.tps[usize::from(t.kind)];
    let rt = &p.config.rt;
    let none = KernelLayout::NONE;
    let (tracepoints, fentry, kprobe) = match backend {
        BackendChoice::Fentry => (false, true, false),
        BackendChoice::Kprobe => (false, false, true),
        BackendChoice::Tracepoint => (true, false, false),
        BackendChoice::Auto | BackendChoice::TpBtf => (true, true, true),
    };
    let allowed = Allowed {
        tracepoint: tracepoints,
        fentry,
        kprobe,
    };
    let mut failed = Vec::new();
    // Receive.
    let probe = if !present(&PROBE) {
        Err("not on this kernel")
    } else if f(&PROBE).sk == none || f(&PROBE).skb == none {
        Err("its record has no socket on this kernel")
    } else {
        Ok(())
    };
    let targets = allowed.ways(
        (&PROBE, probe),
        Function {
            name: RECEIVE_FUNCTION,
            usable: rt.rcv_sk_arg != none,
            typed: (Backend::Fentry, "rt_fentry_rcv"),
            kprobe: "rt_kprobe_rcv",
        },
        false,
        &mut failed,
    );
    let receive = first(ebpf, means, &targets, "receive", &mut failed)?;
    // Send.
    let send_length = f(&SEND_LENGTH);
    let send_usable = present(&SEND_LENGTH)
        && send_length.sk != none
        && send_length.value != none
        && send_length.value16 != none;
    let targets = allowed.ways(
        (
            &SEND_LENGTH,
            if send_usable {
                Ok(())
            } else {
                Err("not on this kernel (6.3+)")
            },
        ),
        Function {
            name: SEND_FUNCTION,
            usable: rt.send_sk_arg != none,
            typed: (Backend::Fexit, "rt_fexit_sendmsg"),
            kprobe: "rt_kprobe_sendmsg",
        },
        // `sock_send_length` fires after the socket lock is released
        // (see `SEND_FUNCTION`): the last resort.
        true,
        &mut failed,
    );
    let send = first(ebpf, means, &targets, "send", &mut failed)?;
    if send == Backend::Kprobe {
        let ret = Target::function(Backend::Kprobe, "rt_kretprobe_sendmsg", SEND_FUNCTION);
        attach::attach(ebpf, means.btf, &ret).map_err(|e| format!("kretprobe {SEND_FUNCTION}: {e}"))?;
    }
    // Close.
    if !present(&DESTROY) || f(&DESTROY).sk == none {
        return Err("no tracepoint tcp:tcp_destroy_sock with its socket on this kernel".into());
    }
    attach::attach(
        ebpf,
        means.btf,
        &Target::tracepoint(Backend::Tracepoint, DESTROY.program, DESTROY.group, DESTROY.name),
    )
    .map_err(|e| format!("tcp:tcp_destroy_sock: {e}"))?;
    // Handshake (client sockets are timed from their first send).
    let handshake = (rt.client == 0).then(|| {
        let set_state = f(&SET_STATE);
        let fields = [
            set_state.sk,
            set_state.old_state,
            set_state.new_state,
            set_state.value16,
        ];
        if !present(&SET_STATE) {
            Err("no tracepoint sock:inet_sock_set_state".to_string())
        } else if fields.contains(&none) || rt.state_syn_recv == none {
            Err("sock:inet_sock_set_state: its record lacks a field".to_string())
        } else {
            let t = Target::tracepoint(
                Backend::Tracepoint,
                SET_STATE.program,
                SET_STATE.group,
                SET_STATE.name,
            );
            attach::attach(ebpf, means.btf, &t).map_err(|e| format!("sock:inet_sock_set_state: {e}"))
        }
    });
    Ok(Used {
        receive,
        send,
        handshake,
    })
}

/// The kernel function behind a moment: its name, whether BTF gave its
/// arguments, its BTF-typed program (fentry or fexit) and its kprobe.
struct Function {
    name: &'static str,
    usable: bool,
    typed: (Backend, &'static str),
    kprobe: &'static str,
}

/// The mechanisms `--backend` allows.
struct Allowed {
    tracepoint: bool,
    fentry: bool,
    kprobe: bool,
}

impl Allowed {
    /// The ways to reach one moment, best first: its tracepoint if it
    /// serves here (else why not, into `failed`), then the function by
    /// its BTF-typed program (`typed`: fentry or fexit) and by kprobe;
    /// `function_first`: the tracepoint last.
    fn ways(
        &self,
        (t, serves): (&'static Tracepoint, Result<(), &str>),
        f: Function,
        function_first: bool,
        failed: &mut Vec<String>,
    ) -> Vec<Target<'static>> {
        let Function {
            name: func,
            usable: func_usable,
            typed,
            kprobe,
        } = f;
        let mut targets = Vec::new();
        match serves {
            Ok(()) if self.tracepoint => targets.push(Target::tracepoint(
                Backend::Tracepoint,
                t.program,
                t.group,
                t.name,
            )),
            Ok(()) => {}
            Err(why) => failed.push(format!("{}:{}: {why}", t.group, t.name)),
        }
        if func_usable {
            if self.fentry {
                targets.push(Target::function(typed.0, typed.1, func));
            }
            if self.kprobe {
                targets.push(Target::function(Backend::Kprobe, kprobe, func));
            }
        }
        if function_first && !targets.is_empty() && targets[0].backend == Backend::Tracepoint {
            targets.rotate_left(1);
        }
        targets
    }
}

/// The first of `targets` that attaches; all reasons in the error.
fn first(
    ebpf: &mut Ebpf,
    means: Means<'_>,
    targets: &[Target<'_>],
    what: &str,
    failed: &mut Vec<String>,
) -> Result<Backend, String> {
    let attempt = attach::first(ebpf, means, targets);
    failed.extend(attempt.failed.iter().map(|(b, w)| {
        let t = targets.iter().find(|t| t.backend == *b).map_or("", |t| t.name);
        format!("{b} {t}: {w}")
    }));
    attempt
        .used
        .ok_or_else(|| format!("cannot time the {what} side: {}", failed.join("; ")))
}
