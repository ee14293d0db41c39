//! Packet bytes (from the network header on) to the one-line text nettrace
//! users know from the C tool:
//! `TCP: 127.0.0.1:43582 -> 127.0.0.1:9999 seq:3819454691, ack:0, flags:S`.
//!
//! The eBPF side copies a fixed-size header window and says how many bytes of
//! it are packet; nothing here trusts a length field beyond that window, so
//! truncated or garbage input decodes to something printable, never a panic.

use std::{
    fmt,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
};

use nettrace_common::{ethertype, ipproto};

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Packet {
    Ip {
        src: IpAddr,
        dst: IpAddr,
        l4: L4,
    },
    Arp {
        op: u16,
        sender: Ipv4Addr,
        target: Ipv4Addr,
    },
    /// A link-layer protocol nettrace does not decode (or none known).
    Other {
        ethertype: u16,
    },
    /// The L3 header is shorter than its fixed part.
    Truncated {
        ethertype: u16,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum L4 {
    Tcp {
        sport: u16,
        dport: u16,
        seq: u32,
        ack: u32,
        flags: u8,
    },
    Udp {
        sport: u16,
        dport: u16,
    },
    Icmp {
        v6: bool,
        ty: u8,
        code: u8,
        id: u16,
        seq: u16,
    },
    /// An IP protocol without a decoder here.
    Other {
        proto: u8,
    },
    /// The transport header is cut off.
    Truncated {
        proto: u8,
    },
}

fn be16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn be32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_be_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn v4(b: &[u8], at: usize) -> Option<Ipv4Addr> {
    Some(Ipv4Addr::from(<[u8; 4]>::try_from(b.get(at..at + 4)?).ok()?))
}

fn v6(b: &[u8], at: usize) -> Option<Ipv6Addr> {
    Some(Ipv6Addr::from(<[u8; 16]>::try_from(b.get(at..at + 16)?).ok()?))
}

/// Decodes `bytes` (starting at the network header) of link-layer protocol
/// `ethertype`.
pub fn decode(ethertype: u16, bytes: &[u8]) -> Packet {
    let truncated = Packet::Truncated { ethertype };
    match ethertype {
        ethertype::IPV4 => {
            let ihl = bytes.first().map_or(0, |b| usize::from(b & 0x0f) * 4);
            let (Some(src), Some(dst), Some(&proto)) = (v4(bytes, 12), v4(bytes, 16), bytes.get(9)) else {
                return truncated;
            };
            if ihl < 20 {
                return truncated;
            }
            Packet::Ip {
                src: src.into(),
                dst: dst.into(),
                l4: decode_l4(proto, bytes.get(ihl..).unwrap_or(&[])),
            }
        }
        ethertype::IPV6 => {
            let (Some(src), Some(dst), Some(&proto)) = (v6(bytes, 8), v6(bytes, 24), bytes.get(6)) else {
                return truncated;
            };
            Packet::Ip {
                src: src.into(),
                dst: dst.into(),
                l4: decode_l4(proto, bytes.get(40..).unwrap_or(&[])),
            }
        }
        ethertype::ARP => {
            // Only Ethernet/IPv4 ARP (hlen 6, plen 4) has fixed offsets.
            match (be16(bytes, 6), v4(bytes, 14), v4(bytes, 24), bytes.get(4..6)) {
                (Some(op), Some(sender), Some(target), Some([6, 4])) => Packet::Arp { op, sender, target },
                _ => truncated,
            }
        }
        _ => Packet::Other { ethertype },
    }
}

fn decode_l4(proto: u8, b: &[u8]) -> L4 {
    let truncated = L4::Truncated { proto };
    match proto {
        ipproto::TCP => match (be16(b, 0), be16(b, 2), be32(b, 4), be32(b, 8), b.get(13)) {
            (Some(sport), Some(dport), Some(seq), Some(ack), Some(&flags)) => L4::Tcp {
                sport,
                dport,
                seq,
                ack,
                flags,
            },
            _ => truncated,
        },
        ipproto::UDP => match (be16(b, 0), be16(b, 2)) {
            (Some(sport), Some(dport)) => L4::Udp { sport, dport },
            _ => truncated,
        },
        ipproto::ICMP | ipproto::ICMPV6 => match (b.first(), b.get(1), be16(b, 4), be16(b, 6)) {
            (Some(&ty), Some(&code), Some(id), Some(seq)) => L4::Icmp {
                v6: proto == ipproto::ICMPV6,
                ty,
                code,
                id,
                seq,
            },
            _ => truncated,
        },
        _ => L4::Other { proto },
    }
}

/// TCP flags as letters, in the C nettrace's order.
pub fn tcp_flags(flags: u8) -> String {
    const NAMES: [(u8, char); 8] = [
        (0x02, 'S'),
        (0x10, 'A'),
        (0x08, 'P'),
        (0x04, 'R'),
        (0x01, 'F'),
        (0x20, 'U'),
        (0x40, 'E'),
        (0x80, 'C'),
    ];
    NAMES
        .iter()
        .filter(|(bit, _)| flags & bit != 0)
        .map(|(_, c)| c)
        .collect()
}

/// `addr:port`, with IPv6 addresses bracketed so the port stays unambiguous.
struct Endpoint(IpAddr, u16);

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            IpAddr::V4(a) => write!(f, "{a}:{}", self.1),
            IpAddr::V6(a) => write!(f, "[{a}]:{}", self.1),
        }
    }
}

fn icmp_name(v6: bool, ty: u8) -> Option<&'static str> {
    Some(match (v6, ty) {
        (false, 8) | (true, 128) => "ping request",
        (false, 0) | (true, 129) => "ping reply",
        (false, 3) | (true, 1) => "destination unreachable",
        (false, 11) | (true, 3) => "time exceeded",
        (true, 2) => "packet too big",
        (true, 133) => "router solicitation",
        (true, 134) => "router advertisement",
        (true, 135) => "neighbour solicitation",
        (true, 136) => "neighbour advertisement",
        _ => return None,
    })
}

impl fmt::Display for Packet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Packet::Ip { src, dst, l4 } => {
                let family = if src.is_ipv4() { "IPv4" } else { "IPv6" };
                match *l4 {
                    L4::Tcp {
                        sport,
                        dport,
                        seq,
                        ack,
                        flags,
                    } => write!(
                        f,
                        "TCP: {} -> {} seq:{seq}, ack:{ack}, flags:{}",
                        Endpoint(*src, sport),
                        Endpoint(*dst, dport),
                        tcp_flags(flags)
                    ),
                    L4::Udp { sport, dport } => {
                        write!(f, "UDP: {} -> {}", Endpoint(*src, sport), Endpoint(*dst, dport))
                    }
                    L4::Icmp {
                        v6,
                        ty,
                        code,
                        id,
                        seq,
                    } => {
                        let proto = if v6 { "ICMPv6" } else { "ICMP" };
                        match icmp_name(v6, ty) {
                            Some(name @ ("ping request" | "ping reply")) => {
                                write!(f, "{proto}: {src} -> {dst} {name}, seq: {seq}, id: {id}")
                            }
                            Some(name) => write!(f, "{proto}: {src} -> {dst} {name}, code: {code}"),
                            None => write!(f, "{proto}: {src} -> {dst} type: {ty}, code: {code}"),
                        }
                    }
                    L4::Other { proto } => write!(f, "{family}: {src} -> {dst} protocol: {proto}"),
                    L4::Truncated { proto } => {
                        write!(f, "{family}: {src} -> {dst} protocol: {proto} (truncated)")
                    }
                }
            }
            Packet::Arp { op, sender, target } => {
                let what = match op {
                    1 => "request".to_string(),
                    2 => "reply".to_string(),
                    n => format!("op {n}"),
                };
                write!(f, "ARP: {sender} -> {target} {what}")
            }
            Packet::Other { ethertype } => write!(f, "ether protocol: {ethertype:#06x}"),
            Packet::Truncated { ethertype } => write!(f, "ether protocol: {ethertype:#06x} (truncated)"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ipv4(proto: u8, l4: &[u8]) -> Vec<u8> {
        let mut p = vec![
            0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, proto, 0, 0, 127, 0, 0, 1, 127, 0, 0, 1,
        ];
        p.extend_from_slice(l4);
        p
    }

    fn ipv6(next: u8, l4: &[u8]) -> Vec<u8> {
        let mut p = vec![0x60, 0, 0, 0, 0, 0, next, 64];
        p.extend_from_slice(&"fd00::1".parse::<Ipv6Addr>().unwrap().octets());
        p.extend_from_slice(&"fd00::2".parse::<Ipv6Addr>().unwrap().octets());
        p.extend_from_slice(l4);
        p
    }

    /// sport 43582, dport 9999, seq 3819454691, ack 0, data offset 5, SYN.
    const TCP_SYN: [u8; 20] = [
        0xaa, 0x3e, 0x27, 0x0f, 0xe3, 0xa8, 0x40, 0xe3, 0, 0, 0, 0, 0x50, 0x02, 0xff, 0xff, 0, 0, 0, 0,
    ];

    #[test]
    fn tcp_syn_like_c_nettrace() {
        let p = decode(ethertype::IPV4, &ipv4(6, &TCP_SYN));
        assert_eq!(
            p.to_string(),
            "TCP: 127.0.0.1:43582 -> 127.0.0.1:9999 seq:3819454691, ack:0, flags:S"
        );
    }

    #[test]
    fn tcp_flags_order() {
        assert_eq!(tcp_flags(0x12), "SA");
        assert_eq!(tcp_flags(0x18), "AP");
        assert_eq!(tcp_flags(0x14), "AR");
        assert_eq!(tcp_flags(0x11), "AF");
        assert_eq!(tcp_flags(0), "");
    }

    #[test]
    fn icmp_ping() {
        let icmp = [8, 0, 0, 0, 0x25, 0x65, 0, 3];
        let mut p = ipv4(1, &icmp);
        p[12..20].copy_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        assert_eq!(
            decode(ethertype::IPV4, &p).to_string(),
            "ICMP: 10.0.0.1 -> 10.0.0.2 ping request, seq: 3, id: 9573"
        );
        let unreach = decode(ethertype::IPV4, &ipv4(1, &[3, 3, 0, 0, 0, 0, 0, 0]));
        assert_eq!(
            unreach.to_string(),
            "ICMP: 127.0.0.1 -> 127.0.0.1 destination unreachable, code: 3"
        );
    }

    #[test]
    fn ipv6_tcp_udp_icmp6() {
        let tcp = decode(ethertype::IPV6, &ipv6(6, &TCP_SYN));
        assert_eq!(
            tcp.to_string(),
            "TCP: [fd00::1]:43582 -> [fd00::2]:9999 seq:3819454691, ack:0, flags:S"
        );
        let udp = decode(ethertype::IPV6, &ipv6(17, &[0, 53, 0x13, 0x88, 0, 8, 0, 0]));
        assert_eq!(udp.to_string(), "UDP: [fd00::1]:53 -> [fd00::2]:5000");
        let ping = decode(ethertype::IPV6, &ipv6(58, &[128, 0, 0, 0, 0, 7, 0, 1]));
        assert_eq!(
            ping.to_string(),
            "ICMPv6: fd00::1 -> fd00::2 ping request, seq: 1, id: 7"
        );
        let ns = decode(ethertype::IPV6, &ipv6(58, &[135, 0, 0, 0, 0, 0, 0, 0]));
        assert_eq!(
            ns.to_string(),
            "ICMPv6: fd00::1 -> fd00::2 neighbour solicitation, code: 0"
        );
    }

    #[test]
    fn udp_and_other_protocols() {
        assert_eq!(
            decode(ethertype::IPV4, &ipv4(17, &[0x30, 0x39, 0, 53, 0, 8, 0, 0])).to_string(),
            "UDP: 127.0.0.1:12345 -> 127.0.0.1:53"
        );
        assert_eq!(
            decode(ethertype::IPV4, &ipv4(47, &[])).to_string(),
            "IPv4: 127.0.0.1 -> 127.0.0.1 protocol: 47"
        );
        assert_eq!(decode(0x88cc, &[1, 2, 3]).to_string(), "ether protocol: 0x88cc");
        assert_eq!(decode(0, &[]).to_string(), "ether protocol: 0x0000");
    }

    #[test]
    fn arp() {
        let arp = [
            0, 1, 8, 0, 6, 4, 0, 1, 1, 2, 3, 4, 5, 6, 10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 10, 0, 0, 2,
        ];
        assert_eq!(
            decode(ethertype::ARP, &arp).to_string(),
            "ARP: 10.0.0.1 -> 10.0.0.2 request"
        );
        let mut reply = arp;
        reply[7] = 2;
        assert_eq!(
            decode(ethertype::ARP, &reply).to_string(),
            "ARP: 10.0.0.1 -> 10.0.0.2 reply"
        );
    }

    #[test]
    fn truncated_input_never_panics() {
        let full = ipv4(6, &TCP_SYN);
        for n in 0..full.len() {
            let s = decode(ethertype::IPV4, &full[..n]).to_string();
            assert!(!s.is_empty());
            if n < 20 {
                assert!(s.contains("truncated"), "{n}: {s}");
            } else if n < 34 {
                assert!(s.ends_with("protocol: 6 (truncated)"), "{n}: {s}");
            }
        }
        let v6 = ipv6(6, &TCP_SYN);
        for n in 0..v6.len() {
            decode(ethertype::IPV6, &v6[..n]).to_string();
        }
        for n in 0..28 {
            decode(ethertype::ARP, &[0xff; 28][..n]).to_string();
        }
    }

    #[test]
    fn garbage_never_panics() {
        // A small deterministic xorshift: no dependency for test noise.
        let mut x: u64 = 0x9e3779b97f4a7c15;
        for _ in 0..20_000 {
            let mut buf = [0u8; 96];
            for b in &mut buf {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = x as u8;
            }
            let len = (x % 97) as usize;
            for et in [ethertype::IPV4, ethertype::IPV6, ethertype::ARP, 0x1234] {
                decode(et, &buf[..len]).to_string();
            }
        }
    }
}
