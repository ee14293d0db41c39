//! Reading a packet out of a `struct sk_buff`.
//!
//! The L3 header is found at `skb->head + skb->network_header` (the kernel's
//! `skb_network_header()`), which is valid on both receive and transmit paths
//! once the IP layer has seen the packet, unlike `skb->data` which moves as
//! layers are pulled and pushed.

use aya_ebpf::helpers::bpf_probe_read_kernel_buf;
use nettrace_common::{KernelLayout, PKT_HDR_LEN, ethertype};

use crate::read::field;

/// `skb->network_header` when it was never set (`(typeof(header))~0U`).
const HEADER_UNSET: u16 = 0xffff;

/// What `read_packet` learns besides the header bytes.
#[derive(Default)]
pub struct Meta {
    /// `struct net_device *`, 0 if none.
    pub dev: u64,
    /// `struct net *` of the packet's namespace, 0 if unknown.
    pub net: u64,
    pub ifindex: u32,
    pub netns: u32,
    /// Ethertype, host order; 0 if unknown.
    pub l3_proto: u16,
    /// Valid bytes in the header buffer.
    pub hdr_len: u16,
    /// `skb->len`.
    pub len: u32,
}

/// Reads device, namespace, L3 protocol and the first `PKT_HDR_LEN` bytes
/// from the network header into `hdr`.
#[inline(always)]
#[allow(
    dead_code,
    reason = "the drop object uses it; the lifecycle objects read in two steps"
)]
pub fn read_packet(layout: &KernelLayout, skb: u64, hdr: &mut [u8; PKT_HDR_LEN]) -> Meta {
    let mut m = Meta::default();
    read_where(layout, skb, &mut m);
    read_l3(layout, skb, hdr, &mut m);
    m
}

/// Device and namespace: only needed for packets that pass the filters
/// (or to check a namespace filter), so kept apart from `read_l3`.
#[inline(always)]
pub fn read_where(layout: &KernelLayout, skb: u64, m: &mut Meta) {
    m.dev = field(skb, layout.skb_dev).unwrap_or(0);
    m.ifindex = field::<u32>(m.dev, layout.dev_ifindex).unwrap_or(0);
    let mut net: u64 = field(m.dev, layout.dev_net).unwrap_or(0);
    if net == 0 {
        // Locally generated packets may not have a device yet; their socket
        // knows the namespace.
        let sk: u64 = field(skb, layout.skb_sk).unwrap_or(0);
        net = field(sk, layout.sk_net).unwrap_or(0);
    }
    m.net = net;
    m.netns = field::<u32>(net, layout.net_inum).unwrap_or(0);
}

/// L3 protocol, length and the first `PKT_HDR_LEN` bytes from the network
/// header into `hdr`: what the packet filters look at.
#[inline(always)]
pub fn read_l3(layout: &KernelLayout, skb: u64, hdr: &mut [u8; PKT_HDR_LEN], m: &mut Meta) {
    m.l3_proto = u16::from_be(field::<u16>(skb, layout.skb_protocol).unwrap_or(0));
    let (Some(nh), Some(head), Some(data), Some(len)) = (
        field::<u16>(skb, layout.skb_network_header),
        field::<u64>(skb, layout.skb_head),
        field::<u64>(skb, layout.skb_data),
        field::<u32>(skb, layout.skb_len),
    ) else {
        return;
    };
    m.len = len;
    if m.l3_proto == 0 && sock_built(layout, skb, head, data) {
        read_from_sock(layout, skb, hdr, m);
        return;
    }
    if nh == HEADER_UNSET {
        return;
    }
    let l3 = head + nh as u64;
    // Bytes of packet from the network header to the end: the network header
    // may lie before `data` (already pulled on receive) or after it.
    let end = data + len as u64;
    if end <= l3 {
        return;
    }
    let avail = end - l3;
    // Always copy a fixed size (the verifier wants a constant), then record
    // how much of it is packet. The copy stays inside the skb's head buffer,
    // which is followed by `skb_shared_info`, so it does not fault.
    // SAFETY: probe read of kernel memory into our own buffer.
    if unsafe { bpf_probe_read_kernel_buf(l3 as *const u8, hdr) }.is_err() {
        return;
    }
    m.hdr_len = if avail < PKT_HDR_LEN as u64 {
        avail as u16
    } else {
        PKT_HDR_LEN as u16
    };
    if m.l3_proto == 0 {
        // Locally generated packets get skb->protocol only in ip_output() /
        // ip6_output(); the IP version nibble is reliable before that.
        m.l3_proto = match hdr[0] >> 4 {
            4 => ethertype::IPV4,
            6 => ethertype::IPV6,
            _ => 0,
        };
    }
}

/// `AF_INET` and `AF_INET6` (uapi constants, `skc_family`'s values).
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// A packet the local stack is building above the IP layer (TCP's
/// `__ip_queue_xmit`, `ip6_xmit`): no protocol yet, a socket, and `data` at
/// the transport header, so nothing below it was written. Its network
/// header offset is then whatever the allocation left (0), not a header.
#[inline(always)]
fn sock_built(layout: &KernelLayout, skb: u64, head: u64, data: u64) -> bool {
    let (Some(th), Some(sk)) = (
        field::<u16>(skb, layout.skb_transport_header),
        field::<u64>(skb, layout.skb_sk),
    ) else {
        return false;
    };
    th != HEADER_UNSET && sk != 0 && data == head + th as u64
}

/// Writes the IP header the socket will get (addresses, protocol, length)
/// and then the transport header, so filters and the decoder see such a
/// packet as they see it after the IP layer (the C nettrace reads these
/// hooks from the socket too). Out of line: only this rare path pays for it.
#[inline(never)]
fn read_from_sock(layout: &KernelLayout, skb: u64, hdr: &mut [u8; PKT_HDR_LEN], m: &mut Meta) {
    // At most five arguments to a BPF function: read these again.
    let (Some(sk), Some(th), Some(head), Some(data)) = (
        field::<u64>(skb, layout.skb_sk),
        field::<u16>(skb, layout.skb_transport_header),
        field::<u64>(skb, layout.skb_head),
        field::<u64>(skb, layout.skb_data),
    ) else {
        return;
    };
    let end = data + m.len as u64;
    let l4 = head + th as u64;
    if end <= l4 {
        return;
    }
    let avail = end - l4;
    let protocol = field::<u16>(sk, layout.sk_protocol).unwrap_or(0) as u8;
    // Payload length as the IP header will say it.
    let payload = (avail as u16).to_be_bytes();
    let mut family = field::<u16>(sk, layout.sk_family).unwrap_or(0);
    if family == AF_INET6 {
        // A v4-mapped peer (`::ffff:a.b.c.d`) talks IPv4 on the wire.
        let daddr = field::<[u8; 16]>(sk, layout.sk_v6_daddr).unwrap_or([0; 16]);
        if daddr[..10] == [0; 10] && daddr[10] == 0xff && daddr[11] == 0xff {
            family = AF_INET;
        }
    }
    match family {
        AF_INET => {
            const IP: usize = 20;
            let (Some(saddr), Some(daddr)) = (
                field::<[u8; 4]>(sk, layout.sk_saddr),
                field::<[u8; 4]>(sk, layout.sk_daddr),
            ) else {
                return;
            };
            *hdr = [0; PKT_HDR_LEN];
            hdr[0] = 0x45;
            let total = (avail as u16).wrapping_add(IP as u16).to_be_bytes();
            hdr[2] = total[0];
            hdr[3] = total[1];
            hdr[8] = 64;
            hdr[9] = protocol;
            hdr[12..16].copy_from_slice(&saddr);
            hdr[16..20].copy_from_slice(&daddr);
            // SAFETY: probe read of kernel memory into our own buffer.
            if unsafe { bpf_probe_read_kernel_buf(l4 as *const u8, &mut hdr[IP..]) }.is_err() {
                return;
            }
            m.l3_proto = ethertype::IPV4;
            m.hdr_len = (IP as u64 + avail.min((PKT_HDR_LEN - IP) as u64)) as u16;
        }
        AF_INET6 => {
            const IP6: usize = 40;
            let (Some(saddr), Some(daddr)) = (
                field::<[u8; 16]>(sk, layout.sk_v6_saddr),
                field::<[u8; 16]>(sk, layout.sk_v6_daddr),
            ) else {
                return;
            };
            *hdr = [0; PKT_HDR_LEN];
            hdr[0] = 0x60;
            hdr[4] = payload[0];
            hdr[5] = payload[1];
            hdr[6] = protocol;
            hdr[7] = 64;
            hdr[8..24].copy_from_slice(&saddr);
            hdr[24..40].copy_from_slice(&daddr);
            // SAFETY: as above.
            if unsafe { bpf_probe_read_kernel_buf(l4 as *const u8, &mut hdr[IP6..]) }.is_err() {
                return;
            }
            m.l3_proto = ethertype::IPV6;
            m.hdr_len = (IP6 as u64 + avail.min((PKT_HDR_LEN - IP6) as u64)) as u16;
        }
        _ => {}
    }
}
