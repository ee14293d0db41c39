//! The in-kernel filter (`nettrace_common::Filter`) from the filter flags:
//! each value parsed with an error that names its flag, and combinations
//! that can never match (IPv4 with IPv6, ports with ICMP) refused, since a
//! typo there would otherwise trace nothing, silently.

use std::{net::IpAddr, os::unix::fs::MetadataExt as _};

use nettrace_common::{
    Filter, ethertype,
    filter::{AddrMatch, family},
    ipproto,
};

use super::UsageError;
use crate::{cli::args::FilterArgs, expr::Expression};

/// The filter `-s -d --addr -S -D -P -p --netns --netns-current --pid
/// --pkt-len --tcp-flags` ask for, checked for criteria no packet can meet.
pub(super) fn from_args(args: &FilterArgs) -> Result<Filter, UsageError> {
    let mut f = Filter::default();
    if let Some(a) = &args.saddr {
        f.saddr = parse_addr("--saddr", a)?;
    }
    if let Some(a) = &args.daddr {
        f.daddr = parse_addr("--daddr", a)?;
    }
    if let Some(a) = &args.addr {
        f.addr = parse_addr("--addr", a)?;
    }
    if let Some(p) = &args.sport {
        f.sport = parse_port("--sport", p)?;
    }
    if let Some(p) = &args.dport {
        f.dport = parse_port("--dport", p)?;
    }
    if let Some(p) = &args.port {
        f.port = parse_port("--port", p)?;
    }
    if let Some(p) = &args.proto {
        (f.l3_proto, f.l4_proto) = parse_proto(p)?;
    }
    check_families(&f)?;
    if (f.sport != 0 || f.dport != 0 || f.port != 0)
        && f.l4_proto != 0
        && f.l4_proto != ipproto::TCP
        && f.l4_proto != ipproto::UDP
    {
        return Err(usage!(
            "port filters need a TCP or UDP protocol, not -p {}",
            args.proto.as_deref().unwrap_or("")
        ));
    }
    if let Some(n) = &args.netns {
        f.netns = parse_u32("--netns", n)?;
    }
    if args.netns_current {
        f.netns = std::fs::metadata("/proc/self/ns/net")
            .map_err(|e| usage!("--netns-current: cannot read /proc/self/ns/net: {e}"))?
            .ino() as u32;
    }
    if let Some(p) = &args.pid {
        f.pid = parse_u32("--pid", p)?;
    }
    if let Some(r) = &args.pkt_len {
        (f.len_min, f.len_max) = parse_len_range(r)?;
    }
    if let Some(flags) = &args.tcp_flags {
        f.tcp_flags = parse_tcp_flags(flags)?;
        if f.l4_proto != 0 && f.l4_proto != ipproto::TCP {
            return Err(usage!(
                "--tcp-flags needs TCP, not -p {}",
                args.proto.as_deref().unwrap_or("")
            ));
        }
    }
    Ok(f)
}

/// The positional filter EXPRESSION, compiled by libpcap and translated for
/// the kernel; several words are one expression, as for tcpdump.
pub(super) fn expression(args: &FilterArgs) -> Result<Option<Expression>, UsageError> {
    if args.expression.is_empty() {
        return Ok(None);
    }
    let text = args.expression.join(" ");
    crate::expr::expression(&text)
        .map(Some)
        .map_err(|e| usage!("filter: {e}"))
}

/// The socket modes see sockets, not packets: an expression would have
/// nothing to match.
pub(super) fn no_expression(args: &FilterArgs) -> Result<(), UsageError> {
    if args.expression.is_empty() {
        return Ok(());
    }
    Err(usage!(
        "filter: '{}': an expression matches packets; the socket modes (--tcp-monitor, --sock, --conn, --rt, --rtt) take -s/-d/-S/-D/-P instead",
        args.expression.join(" ")
    ))
}

/// Address criteria of both families can never match one packet, and an IPv6
/// address with `-p icmp` (or v4 with icmp6/ip6) is a typo worth reporting.
fn check_families(f: &Filter) -> Result<(), UsageError> {
    let fams: Vec<u8> = [f.saddr.family, f.daddr.family, f.addr.family]
        .into_iter()
        .filter(|&x| x != family::NONE)
        .collect();
    if fams.windows(2).any(|w| w[0] != w[1]) {
        return Err(usage!("address filters mix IPv4 and IPv6: no packet can match"));
    }
    let proto_fam = match f.l3_proto {
        ethertype::IPV4 | ethertype::ARP => Some(family::V4),
        ethertype::IPV6 => Some(family::V6),
        _ => None,
    };
    if let (Some(pf), Some(&af)) = (proto_fam, fams.first())
        && pf != af
    {
        return Err(usage!(
            "address family does not match the -p protocol: no packet can match"
        ));
    }
    Ok(())
}

fn parse_addr(flag: &str, s: &str) -> Result<AddrMatch, UsageError> {
    let ip: IpAddr = s
        .parse()
        .map_err(|_| usage!("{flag}: '{s}' is not an IPv4 or IPv6 address"))?;
    let mut m = AddrMatch::default();
    match ip {
        IpAddr::V4(v4) => {
            m.family = family::V4;
            m.addr[..4].copy_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            m.family = family::V6;
            m.addr.copy_from_slice(&v6.octets());
        }
    }
    Ok(m)
}

fn parse_port(flag: &str, s: &str) -> Result<u16, UsageError> {
    match s.parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => Ok(p as u16),
        Ok(_) => Err(usage!("{flag}: port {s} is out of range 1-65535")),
        Err(_) => Err(usage!("{flag}: '{s}' is not a port number")),
    }
}

/// `-p`: returns (ethertype, IP protocol); 0 means "any".
pub(super) fn parse_proto(s: &str) -> Result<(u16, u8), UsageError> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "tcp" => (0, ipproto::TCP),
        "udp" => (0, ipproto::UDP),
        "icmp" => (ethertype::IPV4, ipproto::ICMP),
        "icmp6" | "icmpv6" => (ethertype::IPV6, ipproto::ICMPV6),
        "ip" | "ipv4" => (ethertype::IPV4, 0),
        "ip6" | "ipv6" => (ethertype::IPV6, 0),
        "arp" => (ethertype::ARP, 0),
        _ => {
            return Err(usage!(
                "--proto: unknown protocol '{s}' (known: tcp, udp, icmp, icmp6, ip, ip6, arp)"
            ));
        }
    })
}

/// `--pkt-len`: `N` or `MIN-MAX`, inclusive.
pub(super) fn parse_len_range(s: &str) -> Result<(u32, u32), UsageError> {
    let bad = || usage!("--pkt-len: '{s}' is not a length or MIN-MAX range");
    let (lo, hi) = match s.split_once('-') {
        Some((a, b)) => (
            a.trim().parse::<u32>().map_err(|_| bad())?,
            b.trim().parse::<u32>().map_err(|_| bad())?,
        ),
        None => {
            let n = s.trim().parse::<u32>().map_err(|_| bad())?;
            (n, n)
        }
    };
    if hi == 0 || lo > hi {
        return Err(usage!("--pkt-len: range '{s}' is empty"));
    }
    Ok((lo, hi))
}

/// `--tcp-flags`: letters S A P R F U E C, in any order.
pub(super) fn parse_tcp_flags(s: &str) -> Result<u8, UsageError> {
    let mut bits = 0u8;
    for c in s.chars() {
        bits |= match c.to_ascii_uppercase() {
            'F' => 0x01,
            'S' => 0x02,
            'R' => 0x04,
            'P' => 0x08,
            'A' => 0x10,
            'U' => 0x20,
            'E' => 0x40,
            'C' => 0x80,
            _ => return Err(usage!("--tcp-flags: '{c}' is not one of S A P R F U E C")),
        };
    }
    if bits == 0 {
        return Err(usage!("--tcp-flags: no flag given"));
    }
    Ok(bits)
}

fn parse_u32(flag: &str, s: &str) -> Result<u32, UsageError> {
    match s.parse::<u32>() {
        Ok(0) => Err(usage!("{flag}: must not be 0")),
        Ok(v) => Ok(v),
        Err(_) => Err(usage!("{flag}: '{s}' is not a positive number")),
    }
}
