//! The in-kernel packet filter: events that do not match never reach
//! userspace.
//!
//! Criteria come from a read-only global, so the verifier knows unset ones are
//! zero and prunes their branches.

use nettrace_common::{
    Filter, KernelLayout, PKT_HDR_LEN, ethertype,
    expr::verdict,
    filter::{AddrMatch, family},
    ipproto,
    trace::lost,
};

use crate::{expr, maps::count_lost_at, skb::Meta};

/// True when there is no filter EXPRESSION or the packet matches it. A
/// packet it cannot decide (it reads past the copied header) is counted as
/// such and left out: never silently. A link-layer expression reads the
/// packet from its Ethernet header (`expr::ethernet_verdict`), the others
/// the network header copy `hdr`.
#[inline(always)]
pub fn expression_matches(
    f: &Filter,
    layout: &KernelLayout,
    skb: u64,
    hdr: &[u8; PKT_HDR_LEN],
    m: &Meta,
) -> bool {
    if f.expr_bytes == 0 {
        return true;
    }
    let v = if f.expr_l2 != 0 {
        expr::ethernet_verdict(layout, skb, m.l3, m.l3_len)
    } else {
        expr::verdict(hdr, m.hdr_len, m.l3_len)
    };
    match v {
        verdict::MATCH => true,
        verdict::BEYOND_COPY => {
            count_lost_at(lost::EXPR_BEYOND_COPY);
            false
        }
        _ => false,
    }
}

/// Addresses, IP protocol and ports found in the header bytes.
struct Flow<'a> {
    family: u8,
    saddr: &'a [u8],
    daddr: &'a [u8],
    l4_proto: u8,
    sport: u16,
    dport: u16,
    tcp_flags: u8,
}

#[inline(always)]
fn be16(b: &[u8], at: usize) -> u16 {
    match (b.get(at), b.get(at + 1)) {
        (Some(hi), Some(lo)) => u16::from_be_bytes([*hi, *lo]),
        _ => 0,
    }
}

#[inline(always)]
fn flow(l3_proto: u16, h: &[u8; PKT_HDR_LEN]) -> Option<Flow<'_>> {
    let (family, saddr, daddr, l4_proto, l4) = match l3_proto {
        ethertype::IPV4 => {
            let ihl = ((h[0] & 0x0f) as usize) * 4;
            if ihl < 20 {
                return None;
            }
            (family::V4, &h[12..16], &h[16..20], h[9], ihl)
        }
        // Extension headers are not walked: the filter sees the first
        // next-header value, as the C nettrace does.
        ethertype::IPV6 => (family::V6, &h[8..24], &h[24..40], h[6], 40),
        // ARP: sender/target protocol addresses (Ethernet + IPv4 layout).
        ethertype::ARP => (family::V4, &h[14..18], &h[24..28], 0, 0),
        _ => return None,
    };
    let (sport, dport) = if l4_proto == ipproto::TCP || l4_proto == ipproto::UDP {
        (be16(h, l4), be16(h, l4 + 2))
    } else {
        (0, 0)
    };
    let tcp_flags = if l4_proto == ipproto::TCP {
        h.get(l4 + 13).copied().unwrap_or(0)
    } else {
        0
    };
    Some(Flow {
        family,
        saddr,
        daddr,
        l4_proto,
        sport,
        dport,
        tcp_flags,
    })
}

#[inline(always)]
fn addr_is(want: &AddrMatch, family: u8, got: &[u8]) -> bool {
    if want.family != family {
        return false;
    }
    let n = if family == family::V4 { 4 } else { 16 };
    let mut i = 0;
    while i < n {
        if got.get(i) != Some(&want.addr[i]) {
            return false;
        }
        i += 1;
    }
    true
}

/// True when the packet (L3 protocol, header bytes, `skb->len`) satisfies
/// every set criterion of `f`. (`--pid` and `--netns` are checked by the
/// caller before reading the packet.)
#[inline(always)]
pub fn packet_matches(f: &Filter, l3_proto: u16, hdr: &[u8; PKT_HDR_LEN], len: u32) -> bool {
    if f.l3_proto != 0 && f.l3_proto != l3_proto {
        return false;
    }
    if f.len_max != 0 && (len < f.len_min || len > f.len_max) {
        return false;
    }
    let needs_flow = f.l4_proto != 0
        || f.saddr.family != family::NONE
        || f.daddr.family != family::NONE
        || f.addr.family != family::NONE
        || f.sport != 0
        || f.dport != 0
        || f.port != 0
        || f.tcp_flags != 0;
    if !needs_flow {
        return true;
    }
    let Some(fl) = flow(l3_proto, hdr) else {
        return false;
    };
    if f.l4_proto != 0 && f.l4_proto != fl.l4_proto {
        return false;
    }
    if f.saddr.family != family::NONE && !addr_is(&f.saddr, fl.family, fl.saddr) {
        return false;
    }
    if f.daddr.family != family::NONE && !addr_is(&f.daddr, fl.family, fl.daddr) {
        return false;
    }
    if f.addr.family != family::NONE
        && !addr_is(&f.addr, fl.family, fl.saddr)
        && !addr_is(&f.addr, fl.family, fl.daddr)
    {
        return false;
    }
    if f.sport != 0 && f.sport != fl.sport {
        return false;
    }
    if f.dport != 0 && f.dport != fl.dport {
        return false;
    }
    if f.port != 0 && f.port != fl.sport && f.port != fl.dport {
        return false;
    }
    if f.tcp_flags != 0 && (fl.l4_proto != ipproto::TCP || fl.tcp_flags & f.tcp_flags != f.tcp_flags) {
        return false;
    }
    true
}
