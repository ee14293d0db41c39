//! `--tcp-monitor` and `--rt`: socket-level modes built on the TCP and
//! socket tracepoints (the `nettrace-tcp` object).
//!
//! Classic tracepoints only: they exist wherever TCP does, their records
//! are described by tracefs, and the hooks these modes need (retransmit,
//! reset, probe, sendmsg length) are tracepoints on every kernel that has
//! them. What the records lack is read from the socket at BTF offsets.

mod fields;
mod mode;
pub mod monitor;
#[cfg(test)]
mod print_tests;
pub mod rt;
pub mod rtt;
mod sink;
pub mod sock;

pub use self::mode::Tcp;

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    path::Path,
};

use aya::Ebpf;
use nettrace_common::{
    KernelLayout,
    filter::family,
    tcp::{SockLayout, TcpConfig, TpFields, Tuple, tp},
};

use crate::{
    attach::{Backend, Target},
    kernel::{btf::KernelBtf, tracefs},
};

/// A tracepoint of the object: its index ([`tp`]), where it lives in
/// tracefs, and the program attached to it.
pub struct Tracepoint {
    pub kind: u8,
    pub group: &'static str,
    pub name: &'static str,
    pub program: &'static str,
}

const fn tracepoint(kind: u8, group: &'static str, name: &'static str, program: &'static str) -> Tracepoint {
    Tracepoint {
        kind,
        group,
        name,
        program,
    }
}

/// What `--tcp-monitor` attaches; each is optional (older kernels lack
/// some), at least one must exist.
pub const MONITOR: [Tracepoint; 6] = [
    tracepoint(tp::RETRANSMIT, "tcp", "tcp_retransmit_skb", "tcp_retransmit_skb"),
    tracepoint(
        tp::RETRANSMIT_SYNACK,
        "tcp",
        "tcp_retransmit_synack",
        "tcp_retransmit_synack",
    ),
    tracepoint(tp::SEND_RESET, "tcp", "tcp_send_reset", "tcp_send_reset"),
    tracepoint(tp::RECEIVE_RESET, "tcp", "tcp_receive_reset", "tcp_receive_reset"),
    tracepoint(tp::BAD_CSUM, "tcp", "tcp_bad_csum", "tcp_bad_csum"),
    tracepoint(tp::CONG_STATE, "tcp", "tcp_cong_state_set", "tcp_cong_state_set"),
];

/// `--rtt` where `tcp_ack_update_rtt` cannot be hooked.
pub const RTT: [Tracepoint; 1] = [tracepoint(tp::PROBE, "tcp", "tcp_probe", "rtt_tcp_probe")];

/// The record fields a program reads, found by name in the format file.
pub fn fields(format: &HashMap<String, tracefs::Field>) -> TpFields {
    let at = |names: &[&str], size: Option<u32>| {
        names
            .iter()
            .find_map(|n| format.get(*n))
            .filter(|f| size.is_none_or(|s| f.size == s))
            .map_or(KernelLayout::NONE, |f| f.offset)
    };
    TpFields {
        sk: at(&["skaddr", "sk"], Some(8)),
        req: at(&["req"], Some(8)),
        skb: at(&["skbaddr"], Some(8)),
        value: at(&["reason", "ret"], Some(4)),
        value8: at(&["cong_state"], Some(1)),
        value16: at(&["data_len", "protocol"], Some(2)),
        // Only the sockaddr form (28 bytes); the 4-byte form comes with a
        // socket, whose own fields are read instead.
        saddr: at(&["saddr"], Some(28)),
        daddr: at(&["daddr"], Some(28)),
        old_state: at(&["oldstate"], Some(4)),
        new_state: at(&["newstate"], Some(4)),
    }
}

/// Socket offsets from BTF. The tuple and namespace are required; the rest
/// degrade to "unknown".
pub fn sock_layout(btf: &KernelBtf, layout: &KernelLayout) -> Result<SockLayout, String> {
    let required = |ty: &str, path: &[&str]| btf.member_offset(ty, path).map_err(|e| e.to_string());
    let optional = |ty: &str, path: &[&str]| btf.member_offset(ty, path).unwrap_or(KernelLayout::NONE);
    let common = |m: &str| required("sock_common", &[m]);
    Ok(SockLayout {
        family: common("skc_family")?,
        state: common("skc_state")?,
        num: common("skc_num")?,
        dport: common("skc_dport")?,
        rcv_saddr: common("skc_rcv_saddr")?,
        daddr: common("skc_daddr")?,
        // Without IPv6 the kernel has no such members.
        v6_rcv_saddr: optional("sock_common", &["skc_v6_rcv_saddr"]),
        v6_daddr: optional("sock_common", &["skc_v6_daddr"]),
        net: layout.sk_net,
        net_inum: layout.net_inum,
        srtt_us: optional("tcp_sock", &["srtt_us"]),
        snd_cwnd: optional("tcp_sock", &["snd_cwnd"]),
        total_retrans: optional("tcp_sock", &["total_retrans"]),
        snd_una: optional("tcp_sock", &["snd_una"]),
        write_seq: optional("tcp_sock", &["write_seq"]),
        rcv_nxt: optional("tcp_sock", &["rcv_nxt"]),
        copied_seq: optional("tcp_sock", &["copied_seq"]),
        skb_data: layout.skb_data,
        rtt_min: match (
            btf.member_offset("tcp_sock", &["rtt_min", "s"]),
            btf.member_offset("minmax_sample", &["v"]),
        ) {
            // s[0].v: the first sample is the current minimum.
            (Ok(s), Ok(v)) => s + v,
            _ => KernelLayout::NONE,
        },
    })
}

/// Names of the running kernel's values for one session.
#[derive(Clone)]
pub struct Names {
    /// TCP states (`TCP_ESTABLISHED` → `ESTABLISHED`), from tracefs.
    pub states: HashMap<u64, String>,
    /// `enum tcp_ca_state` (`TCP_CA_Loss` → `Loss`), from BTF.
    pub ca_states: HashMap<u64, String>,
}

impl Names {
    pub fn state(&self, v: u8) -> String {
        name_or_number(&self.states, v.into())
    }

    pub fn ca_state(&self, v: u32) -> String {
        name_or_number(&self.ca_states, v.into())
    }
}

fn name_or_number(names: &HashMap<u64, String>, v: u64) -> String {
    names.get(&v).cloned().unwrap_or_else(|| v.to_string())
}

/// Everything the TCP object needs from this kernel.
pub struct Prepared {
    pub config: TcpConfig,
    pub names: Names,
    /// Tracepoints of the mode this kernel has.
    pub present: Vec<&'static Tracepoint>,
    /// Those it lacks.
    pub missing: Vec<&'static Tracepoint>,
}

/// Reads record layouts from tracefs and socket layout and value names
/// from BTF for the given tracepoints.
pub fn prepare(
    btf: &KernelBtf,
    layout: &KernelLayout,
    root: &Path,
    wanted: &'static [Tracepoint],
) -> Result<Prepared, String> {
    let mut config = TcpConfig {
        sock: sock_layout(btf, layout)?,
        skb_dev: layout.skb_dev,
        dev_net: layout.dev_net,
        ..TcpConfig::default()
    };
    let (mut present, mut missing) = (Vec::new(), Vec::new());
    for t in wanted {
        match tracefs::format(root, t.group, t.name) {
            Ok(format) => {
                config.tps[t.kind as usize] = fields(&format);
                present.push(t);
            }
            Err(_) => missing.push(t),
        }
    }
    let set_state = tracefs::format_text(root, "sock", "inet_sock_set_state").unwrap_or_default();
    let families = tracefs::symbols(&set_state, "family");
    for (v, n) in &families {
        match n.as_str() {
            "AF_INET" => config.af_inet = *v as u16,
            "AF_INET6" => config.af_inet6 = *v as u16,
            _ => {}
        }
    }
    let states: HashMap<u64, String> = tracefs::symbols(&set_state, "newstate")
        .into_iter()
        .map(|(v, n)| (v, n.strip_prefix("TCP_").unwrap_or(&n).to_string()))
        .collect();
    let ca_states: HashMap<u64, String> = btf
        .enum_values("tcp_ca_state")
        .unwrap_or_default()
        .into_iter()
        .map(|(v, n)| (v, n.strip_prefix("TCP_CA_").unwrap_or(&n).to_string()))
        .collect();
    for (v, n) in &ca_states {
        match n.as_str() {
            "Recovery" => config.ca_recovery = *v as u32,
            "Loss" => config.ca_loss = *v as u32,
            _ => {}
        }
    }
    // Every mode reads a closing socket's port from `inet_sport` (see
    // `tuple_of_sock` in nettrace-ebpf/src/sock.rs).
    let state = |name: &str| {
        states
            .iter()
            .find(|(_, n)| n.as_str() == name)
            .map_or(KernelLayout::NONE, |(v, _)| *v as u32)
    };
    config.sock_mode.state_time_wait = state("TIME_WAIT");
    config.sock_mode.state_new_syn_recv = state("NEW_SYN_RECV");
    config.sock_mode.inet_sport = btf
        .member_offset("inet_sock", &["inet_sport"])
        .unwrap_or(KernelLayout::NONE);
    Ok(Prepared {
        config,
        names: Names { states, ca_states },
        present,
        missing,
    })
}

/// Loads and attaches the programs of the present tracepoints.
pub fn attach(ebpf: &mut Ebpf, present: &[&'static Tracepoint]) -> anyhow::Result<()> {
    for t in present {
        let target = Target::tracepoint(Backend::Tracepoint, t.program, t.group, t.name);
        crate::attach::attach(ebpf, None, &target)
            .map_err(|why| anyhow::anyhow!("attaching to {}:{}: {why}", t.group, t.name))?;
    }
    Ok(())
}

/// A tuple's two ends, `None` when the family is unknown.
pub fn ends(t: &Tuple) -> Option<(SocketAddr, SocketAddr)> {
    let ip = |a: &[u8; 16]| -> Option<IpAddr> {
        match t.family {
            family::V4 => Some(Ipv4Addr::new(a[0], a[1], a[2], a[3]).into()),
            family::V6 => Some(Ipv6Addr::from(*a).into()),
            _ => None,
        }
    };
    Some((
        SocketAddr::new(ip(&t.saddr)?, t.sport),
        SocketAddr::new(ip(&t.daddr)?, t.dport),
    ))
}

/// `10.0.0.1:80 -> 10.0.0.2:5000` (IPv6 in brackets), or `?` when unknown.
pub fn tuple_text(t: &Tuple) -> String {
    match ends(t) {
        Some((s, d)) => format!("{s} -> {d}"),
        None => "?".into(),
    }
}

/// Milliseconds with µs precision: `0.123ms`.
pub fn ms(us: u64) -> String {
    format!("{}.{:03}ms", us / 1000, us % 1000)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::btf::VMLINUX_BTF;

    #[test]
    fn fields_by_name_and_size() {
        let text = "\tfield:const void * skbaddr;\toffset:8;\tsize:8;\tsigned:0;\n\
                    \tfield:const void * skaddr;\toffset:16;\tsize:8;\tsigned:0;\n\
                    \tfield:enum sk_rst_reason reason;\toffset:28;\tsize:4;\tsigned:0;\n\
                    \tfield:__u8 saddr[28];\toffset:32;\tsize:28;\tsigned:0;\n\
                    \tfield:__u8 daddr[28];\toffset:60;\tsize:28;\tsigned:0;\n";
        let f = fields(&tracefs::parse_format(text));
        assert_eq!((f.skb, f.sk, f.value, f.saddr, f.daddr), (8, 16, 28, 32, 60));
        assert_eq!((f.req, f.value8, f.value16), (u32::MAX, u32::MAX, u32::MAX));
        // The 4-byte address form is not the sockaddr form.
        let f = fields(&tracefs::parse_format(
            "\tfield:__u8 saddr[4];\toffset:34;\tsize:4;\tsigned:0;\n",
        ));
        assert_eq!(f.saddr, u32::MAX);
    }

    #[test]
    fn socket_layout_of_the_running_kernel() {
        let btf = KernelBtf::from_file(VMLINUX_BTF).unwrap();
        let layout = crate::kernel::layout::resolve(&btf).unwrap();
        let s = sock_layout(&btf, &layout).unwrap();
        // sock_common starts with the address pair, then the ports.
        assert_eq!((s.daddr, s.rcv_saddr), (0, 4));
        assert_eq!(s.dport + 2, s.num);
        for v in [
            s.srtt_us,
            s.snd_cwnd,
            s.total_retrans,
            s.snd_una,
            s.write_seq,
            s.v6_daddr,
        ] {
            assert_ne!(v, KernelLayout::NONE);
        }
    }

    /// Every mode learns where a closing socket keeps its port, and which
    /// states have no such member, from BTF and tracefs.
    #[test]
    fn port_fallback_of_the_running_kernel() {
        let btf = KernelBtf::from_file(VMLINUX_BTF).unwrap();
        let layout = crate::kernel::layout::resolve(&btf).unwrap();
        let root = crate::kernel::tracefs::ensure_mounted().unwrap().0;
        let p = prepare(&btf, &layout, &root, &MONITOR).unwrap();
        let m = &p.config.sock_mode;
        assert_eq!((m.state_time_wait, m.state_new_syn_recv), (6, 12));
        // inet_sock extends struct sock.
        assert!(m.inet_sport >= btf.struct_size("sock").unwrap() && m.inet_sport != KernelLayout::NONE);
    }

    #[test]
    fn tuple_formats() {
        let mut t = Tuple {
            family: family::V4,
            sport: 80,
            dport: 5000,
            ..Tuple::default()
        };
        t.saddr[..4].copy_from_slice(&[10, 0, 0, 1]);
        t.daddr[..4].copy_from_slice(&[10, 0, 0, 2]);
        assert_eq!(tuple_text(&t), "10.0.0.1:80 -> 10.0.0.2:5000");
        t.family = family::V6;
        t.saddr = Ipv6Addr::LOCALHOST.octets();
        assert!(tuple_text(&t).starts_with("[::1]:80 -> "));
        t.family = 0;
        assert_eq!(tuple_text(&t), "?");
        assert_eq!(ms(152_007), "152.007ms");
    }
}
