//! Reading a packet out of a `struct sk_buff`.
//!
//! The L3 header is found at `skb->head + skb->network_header` (the kernel's
//! `skb_network_header()`), which is valid on both receive and transmit paths
//! once the IP layer has seen the packet, unlike `skb->data` which moves as
//! layers are pulled and pushed.

use aya_ebpf::helpers::bpf_probe_read_kernel_buf;
use nettrace_common::{DropEvent, KernelLayout, PKT_HDR_LEN, ethertype};

use crate::read::field;

/// `skb->network_header` when it was never set (`(typeof(header))~0U`).
const HEADER_UNSET: u16 = 0xffff;

/// Fills the packet part of `ev` from `skb`: device, namespace, L3 protocol
/// and the first `PKT_HDR_LEN` bytes from the network header.
#[inline(always)]
pub fn read_packet(layout: &KernelLayout, skb: u64, ev: &mut DropEvent) {
    let dev: u64 = field(skb, layout.skb_dev).unwrap_or(0);
    ev.ifindex = field::<u32>(dev, layout.dev_ifindex).unwrap_or(0);
    let mut net: u64 = field(dev, layout.dev_net).unwrap_or(0);
    if net == 0 {
        // Locally generated packets may not have a device yet; their socket
        // knows the namespace.
        let sk: u64 = field(skb, layout.skb_sk).unwrap_or(0);
        net = field(sk, layout.sk_net).unwrap_or(0);
    }
    ev.netns = field::<u32>(net, layout.net_inum).unwrap_or(0);

    ev.l3_proto = u16::from_be(field::<u16>(skb, layout.skb_protocol).unwrap_or(0));
    ev.hdr_len = 0;
    let Some(nh) = field::<u16>(skb, layout.skb_network_header) else {
        return;
    };
    if nh == HEADER_UNSET {
        return;
    }
    let (Some(head), Some(data), Some(len)) = (
        field::<u64>(skb, layout.skb_head),
        field::<u64>(skb, layout.skb_data),
        field::<u32>(skb, layout.skb_len),
    ) else {
        return;
    };
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
    if unsafe { bpf_probe_read_kernel_buf(l3 as *const u8, &mut ev.hdr) }.is_err() {
        return;
    }
    ev.hdr_len = if avail < PKT_HDR_LEN as u64 {
        avail as u16
    } else {
        PKT_HDR_LEN as u16
    };
    if ev.l3_proto == 0 {
        // Locally generated packets get skb->protocol only in ip_output() /
        // ip6_output(); the IP version nibble is reliable before that.
        ev.l3_proto = match ev.hdr[0] >> 4 {
            4 => ethertype::IPV4,
            6 => ethertype::IPV6,
            _ => 0,
        };
    }
}
