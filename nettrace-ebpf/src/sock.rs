//! Reading a TCP socket and a tracepoint record at offsets userspace found
//! (BTF for the socket, tracefs for the record), shared by `--tcp-monitor`
//! and `--rt`.

use aya_ebpf::programs::TracePointContext;
use nettrace_common::{
    KernelLayout,
    filter::{AddrMatch, family},
    ipproto,
    tcp::{SockLayout, TcpConfig, TpFields, Tuple},
};

use crate::{maps::netns_allowed, read::field};

/// Set by userspace before load (`EbpfLoader::override_global`).
#[unsafe(no_mangle)]
static TCP_CONFIG: TcpConfig = unsafe { core::mem::zeroed() };

/// The configuration, through a volatile load of its address so the
/// compiler cannot fold the all-zero initialiser into the code.
#[inline(always)]
pub fn config() -> &'static TcpConfig {
    let p: *const TcpConfig = &raw const TCP_CONFIG;
    // SAFETY: reading a local; the result is the address of a static.
    unsafe { &*core::ptr::read_volatile(&p) }
}

/// A record field of type `T` at `offset`, `None` when the record has no
/// such field.
#[inline(always)]
pub fn rec<T>(ctx: &TracePointContext, offset: u32) -> Option<T> {
    if offset == KernelLayout::NONE {
        return None;
    }
    // SAFETY: offsets come from this tracepoint's own format file.
    unsafe { ctx.read_at::<T>(offset as usize) }.ok()
}

/// The socket pointer of the record (0 when absent or NULL).
#[inline(always)]
pub fn sk_of(ctx: &TracePointContext, f: &TpFields) -> u64 {
    rec::<u64>(ctx, f.sk).unwrap_or(0)
}

/// The 4-tuple of a `sock_common` (a full socket or a request socket):
/// local end as source.
#[inline(always)]
pub fn tuple_of_sock(cfg: &TcpConfig, sk: u64, t: &mut Tuple) {
    let l: &SockLayout = &cfg.sock;
    let fam = field::<u16>(sk, l.family).unwrap_or(0);
    t.sport = field::<u16>(sk, l.num).unwrap_or(0);
    t.dport = u16::from_be(field::<u16>(sk, l.dport).unwrap_or(0));
    if fam == cfg.af_inet {
        t.family = family::V4;
        t.saddr[..4].copy_from_slice(&field::<[u8; 4]>(sk, l.rcv_saddr).unwrap_or([0; 4]));
        t.daddr[..4].copy_from_slice(&field::<[u8; 4]>(sk, l.daddr).unwrap_or([0; 4]));
    } else if fam == cfg.af_inet6 {
        t.family = family::V6;
        t.saddr = field::<[u8; 16]>(sk, l.v6_rcv_saddr).unwrap_or([0; 16]);
        t.daddr = field::<[u8; 16]>(sk, l.v6_daddr).unwrap_or([0; 16]);
        unmap_v4(t);
    }
    // A socket whose port was released (closing, just destroyed) has
    // `skc_num` 0 but still its `inet_sport`; only full sockets have that
    // member (request and time-wait sockets keep `skc_num`).
    let m = &cfg.sock_mode;
    if t.sport == 0 {
        let state = u32::from(field::<u8>(sk, l.state).unwrap_or(0));
        if state != m.state_time_wait && state != m.state_new_syn_recv {
            t.sport = u16::from_be(field::<u16>(sk, m.inet_sport).unwrap_or(0));
        }
    }
}

/// An IPv6 socket talking IPv4 has `::ffff:a.b.c.d` addresses: show and
/// filter them as the IPv4 connection they are (`-s 10.0.0.1` matches).
#[inline(always)]
fn unmap_v4(t: &mut Tuple) {
    let mapped = |a: &[u8; 16]| a[..10].iter().all(|&b| b == 0) && a[10] == 0xff && a[11] == 0xff;
    if mapped(&t.saddr) && mapped(&t.daddr) {
        t.family = family::V4;
        let (s, d) = (
            [t.saddr[12], t.saddr[13], t.saddr[14], t.saddr[15]],
            [t.daddr[12], t.daddr[13], t.daddr[14], t.daddr[15]],
        );
        t.saddr = [0; 16];
        t.daddr = [0; 16];
        t.saddr[..4].copy_from_slice(&s);
        t.daddr[..4].copy_from_slice(&d);
    }
}

/// The tuple from a record's `saddr`/`daddr` (`struct sockaddr_in` or
/// `sockaddr_in6` in 28 bytes, uapi layout: family, port, address).
#[inline(always)]
pub fn tuple_of_record(cfg: &TcpConfig, ctx: &TracePointContext, f: &TpFields, t: &mut Tuple) {
    let (Some(src), Some(dst)) = (rec::<[u8; 28]>(ctx, f.saddr), rec::<[u8; 28]>(ctx, f.daddr)) else {
        return;
    };
    let fam = u16::from_ne_bytes([src[0], src[1]]);
    t.sport = u16::from_be_bytes([src[2], src[3]]);
    t.dport = u16::from_be_bytes([dst[2], dst[3]]);
    if fam == cfg.af_inet {
        t.family = family::V4;
        t.saddr[..4].copy_from_slice(&src[4..8]);
        t.daddr[..4].copy_from_slice(&dst[4..8]);
    } else if fam == cfg.af_inet6 {
        t.family = family::V6;
        t.saddr.copy_from_slice(&src[8..24]);
        t.daddr.copy_from_slice(&dst[8..24]);
    }
}

/// Whether the tuple passes the address/port/protocol filter. (The packet
/// filter's code is kept as it is rather than shared: the lifecycle
/// programs are near the 6.1 verifier's limits, and a shared helper
/// changed their code generation.)
#[inline(always)]
pub fn tuple_matches(cfg: &TcpConfig, t: &Tuple) -> bool {
    let f = &cfg.filter;
    if f.l4_proto != 0 && f.l4_proto != ipproto::TCP {
        return false;
    }
    let addr = |want: &AddrMatch, got: &[u8; 16]| -> bool {
        if want.family != t.family {
            return false;
        }
        let n = if t.family == family::V4 { 4 } else { 16 };
        let mut i = 0;
        while i < n {
            if got[i] != want.addr[i] {
                return false;
            }
            i += 1;
        }
        true
    };
    if f.saddr.family != family::NONE && !addr(&f.saddr, &t.saddr) {
        return false;
    }
    if f.daddr.family != family::NONE && !addr(&f.daddr, &t.daddr) {
        return false;
    }
    if f.addr.family != family::NONE && !addr(&f.addr, &t.saddr) && !addr(&f.addr, &t.daddr) {
        return false;
    }
    (f.sport == 0 || f.sport == t.sport)
        && (f.dport == 0 || f.dport == t.dport)
        && (f.port == 0 || f.port == t.sport || f.port == t.dport)
}

/// The connection a TCP tracepoint record is about.
pub struct Connection {
    /// The record's socket (0 when it has none).
    pub sk: u64,
    /// The socket the tuple came from: the request socket of a SYN-ACK
    /// retransmit (not its listener), else `sk`; 0 when socketless.
    pub conn: u64,
    pub netns: u32,
}

/// Fills `t` with the record's connection (from its socket through
/// `sock_tuple`, else from the record's own address fields) and returns it,
/// or `None` when the address, port or namespace filter rejects it.
#[inline(always)]
pub fn record_connection(
    cfg: &TcpConfig,
    ctx: &TracePointContext,
    f: &TpFields,
    t: &mut Tuple,
    sock_tuple: impl Fn(&TcpConfig, u64, &mut Tuple),
) -> Option<Connection> {
    let sk = sk_of(ctx, f);
    let req = rec::<u64>(ctx, f.req).unwrap_or(0);
    let conn = if req != 0 { req } else { sk };
    if conn != 0 {
        sock_tuple(cfg, conn, t);
    } else {
        tuple_of_record(cfg, ctx, f, t);
    }
    if !tuple_matches(cfg, t) {
        return None;
    }
    let netns = if conn != 0 {
        netns_of_sock(cfg, conn)
    } else {
        netns_of_skb(cfg, rec::<u64>(ctx, f.skb).unwrap_or(0))
    };
    if !netns_allowed(&cfg.filter, netns) {
        return None;
    }
    Some(Connection { sk, conn, netns })
}

/// The namespace inode of a socket.
#[inline(always)]
pub fn netns_of_sock(cfg: &TcpConfig, sk: u64) -> u32 {
    let net = field::<u64>(sk, cfg.sock.net).unwrap_or(0);
    field::<u32>(net, cfg.sock.net_inum).unwrap_or(0)
}

/// The namespace inode of a packet's device (socketless events).
#[inline(always)]
pub fn netns_of_skb(cfg: &TcpConfig, skb: u64) -> u32 {
    let dev = field::<u64>(skb, cfg.skb_dev).unwrap_or(0);
    let net = field::<u64>(dev, cfg.dev_net).unwrap_or(0);
    field::<u32>(net, cfg.sock.net_inum).unwrap_or(0)
}

/// Smoothed RTT in µs (`srtt_us` keeps it shifted left by 3).
#[inline(always)]
pub fn srtt_us(cfg: &TcpConfig, sk: u64) -> u32 {
    field::<u32>(sk, cfg.sock.srtt_us).unwrap_or(0) >> 3
}

/// Minimum RTT in µs (`rtt_min.s[0].v`), 0 before the first sample: the
/// kernel starts the windowed minimum at `~0U`.
#[inline(always)]
pub fn rtt_min_us(cfg: &TcpConfig, sk: u64) -> u32 {
    // `unwrap_or` first: matching on the `Option` let LLVM read the
    // payload of `None` on one path, which the verifier refuses.
    let v = field::<u32>(sk, cfg.sock.rtt_min).unwrap_or(0);
    if v == u32::MAX { 0 } else { v }
}
