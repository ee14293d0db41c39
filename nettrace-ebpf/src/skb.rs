//! Reading a packet out of a `struct sk_buff`.
//!
//! The L3 header is found at `skb->head + skb->network_header` (the kernel's
//! `skb_network_header()`), which is valid on both receive and transmit paths
//! once the IP layer has seen the packet, unlike `skb->data` which moves as
//! layers are pulled and pushed.

use aya_ebpf::helpers::{bpf_probe_read_kernel, bpf_probe_read_kernel_buf};
use nettrace_common::{ARPHRD_ETHER, ETH_HLEN, KernelLayout, PKT_HDR_LEN, ethertype};

use crate::read::field;

/// How fields of the skb are read. Two ways, for the same offsets: a
/// helper read (`bpf_probe_read_kernel`) works on any address; a plain load
/// is several times cheaper (measured: ~100 ns per helper read on the test
/// host, about the cost of the rest of a hook run that ends at the filter),
/// and the verifier accepts it only through a pointer it knows the BTF type
/// of: the skb argument of tp_btf, fentry and fexit programs. The offset
/// then has to be a constant to it, which it is: offsets come from the
/// read-only configuration. The packet reader is generic over this so that
/// those programs take the cheap way and the others (kprobes, classic
/// tracepoints, pointers read out of memory) the one that always works.
pub trait Read {
    /// A field of `base` (0 if the kernel lacks it, `KernelLayout::NONE`,
    /// or `base` is NULL). Through a BTF-typed base, a pointer member
    /// read this way is BTF-typed too, so the reads can chain
    /// (`skb->dev->nd_net.net->ns.inum`).
    #[inline(always)]
    fn field<T: Copy + Default>(base: u64, offset: u32) -> T {
        if base == 0 || offset == KernelLayout::NONE {
            return T::default();
        }
        Self::required(base, offset)
    }

    /// A field every supported kernel has (userspace refuses to start
    /// without it), of a base known not to be NULL: no checks, 0 if the
    /// read fails. The hot path of every hook run reads five of these.
    fn required<T: Copy + Default>(base: u64, offset: u32) -> T;
}

/// Through the helper ([`field`]): any address.
pub struct Probe;

impl Read for Probe {
    #[inline(always)]
    fn required<T: Copy + Default>(base: u64, offset: u32) -> T {
        // SAFETY: as in `field`.
        unsafe { bpf_probe_read_kernel((base + offset as u64) as *const T) }.unwrap_or_default()
    }
}

/// A plain load: only for a `base` the verifier knows as a BTF-typed
/// pointer (the program's own skb argument). Such loads are turned into
/// fault-safe ones by the kernel (`BPF_PROBE_MEM`): a bad pointer reads 0.
pub struct Direct;

impl Read for Direct {
    #[inline(always)]
    fn required<T: Copy + Default>(base: u64, offset: u32) -> T {
        // SAFETY: see the type's doc; the verifier checks the access against
        // the struct's BTF.
        unsafe { core::ptr::read_volatile((base + offset as u64) as *const T) }
    }
}

/// `skb->network_header` when it was never set (`(typeof(header))~0U`).
const HEADER_UNSET: u16 = 0xffff;

/// What `read_l3` and `read_where` learn besides the header bytes.
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
    /// Bytes of packet from the network header to the end (libpcap's `len`
    /// for a raw IP packet); 0 when there is no network header.
    pub l3_len: u32,
    /// Where the network header starts in kernel memory; 0 when unknown or
    /// when the header was built from the socket (`read_from_sock`).
    pub l3: u64,
}

/// Device and namespace: only needed for packets that pass the filters
/// (or to check a namespace filter), so kept apart from `read_l3`.
#[inline(always)]
pub fn read_where<R: Read>(layout: &KernelLayout, skb: u64, m: &mut Meta) {
    m.dev = R::field(skb, layout.skb_dev);
    m.ifindex = R::field::<u32>(m.dev, layout.dev_ifindex);
    let mut net: u64 = R::field(m.dev, layout.dev_net);
    if net == 0 {
        // Locally generated packets may not have a device yet; their socket
        // knows the namespace.
        let sk: u64 = R::field(skb, layout.skb_sk);
        net = R::field(sk, layout.sk_net);
    }
    m.net = net;
    m.netns = R::field::<u32>(net, layout.net_inum);
}

/// The device's name (`IFNAMSIZ` bytes) into `name`; zeros without one.
#[inline(always)]
pub fn read_ifname<R: Read>(layout: &KernelLayout, dev: u64, name: &mut [u8; 16]) {
    let (a, b) = if dev == 0 || layout.dev_name == KernelLayout::NONE {
        (0, 0)
    } else {
        (
            R::required::<u64>(dev, layout.dev_name),
            R::required::<u64>(dev, layout.dev_name + 8),
        )
    };
    // Two plain stores: a `[0; 16]` would become a byte-by-byte memset call.
    let (lo, hi) = name.split_at_mut(8);
    lo.copy_from_slice(&a.to_ne_bytes());
    hi.copy_from_slice(&b.to_ne_bytes());
}

/// L3 protocol, length, and the first `bytes` bytes (at most
/// `PKT_HDR_LEN`) from the network header into `hdr`: what the packet
/// filters look at. `m.hdr_len` says how many bytes the packet has for
/// `hdr`, whatever `bytes` was; `copy_header` fetches more later.
#[inline(always)]
pub fn read_l3<R: Read>(
    layout: &KernelLayout,
    skb: u64,
    hdr: &mut [u8; PKT_HDR_LEN],
    m: &mut Meta,
    bytes: usize,
) {
    m.l3_proto = u16::from_be(R::required::<u16>(skb, layout.skb_protocol));
    let nh = R::required::<u16>(skb, layout.skb_network_header);
    let head = R::required::<u64>(skb, layout.skb_head);
    let data = R::required::<u64>(skb, layout.skb_data);
    let len = R::required::<u32>(skb, layout.skb_len);
    m.len = len;
    if m.l3_proto == 0 {
        // Packed (ethertype << 16 | bytes): `m` stays out of the call, so
        // the caller keeps it in registers.
        let from_sock = read_from_sock(layout, skb, hdr, len);
        if from_sock != 0 {
            m.l3_proto = (from_sock >> 16) as u16;
            m.hdr_len = from_sock as u16;
            // The length the IP header written for it says.
            m.l3_len = if m.l3_proto == ethertype::IPV4 {
                u32::from(u16::from_be_bytes([hdr[2], hdr[3]]))
            } else {
                40 + u32::from(u16::from_be_bytes([hdr[4], hdr[5]]))
            };
            return;
        }
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
    m.l3 = l3;
    m.l3_len = avail as u32;
    m.hdr_len = if avail < PKT_HDR_LEN as u64 {
        avail as u16
    } else {
        PKT_HDR_LEN as u16
    };
    copy_header(m, hdr, bytes);
}

/// Copies the first `bytes` bytes of the network header `read_l3` found
/// into `hdr`, and learns the L3 protocol from them if the skb did not say.
/// `bytes` is a constant to the verifier (from the read-only filter), which
/// wants a known size; the copy may run past the packet's end (`hdr_len`
/// says where it ends) but stays inside the skb's head buffer, which is
/// followed by `skb_shared_info`, so it does not fault.
#[inline(always)]
pub fn copy_header(m: &mut Meta, hdr: &mut [u8; PKT_HDR_LEN], bytes: usize) {
    if m.l3 == 0 || bytes == 0 {
        return;
    }
    let n = if bytes < PKT_HDR_LEN { bytes } else { PKT_HDR_LEN };
    // SAFETY: probe read of kernel memory into our own buffer.
    if unsafe { bpf_probe_read_kernel_buf(m.l3 as *const u8, &mut hdr[..n]) }.is_err() {
        return;
    }
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

/// Where `skb`'s Ethernet header starts in kernel memory, or 0 when it has
/// none right in front of its network header `l3`: its MAC header is set,
/// ends where the network header starts (`mac_len` is `ETH_HLEN`), and its
/// device is an Ethernet one (`ARPHRD_ETHER`; a tunnel's or loopback's
/// "MAC header" is not Ethernet to a reader). Packets the stack is still
/// building have none yet (it is written at the device layer), nor do
/// packets on a device of another type. Helper reads: it runs only for
/// `--pcap-l2` and link-layer filter expressions.
#[inline(always)]
pub fn ethernet_header(layout: &KernelLayout, skb: u64, l3: u64) -> u64 {
    if l3 == 0 {
        return 0;
    }
    let (Some(mac), Some(head), Some(dev)) = (
        field::<u16>(skb, layout.skb_mac_header),
        field::<u64>(skb, layout.skb_head),
        field::<u64>(skb, layout.skb_dev),
    ) else {
        return 0;
    };
    if mac == HEADER_UNSET || head + mac as u64 + ETH_HLEN as u64 != l3 {
        return 0;
    }
    if field::<u16>(dev, layout.dev_type) != Some(ARPHRD_ETHER) {
        return 0;
    }
    l3 - ETH_HLEN as u64
}

/// `AF_INET` and `AF_INET6` (uapi constants, `skc_family`'s values).
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;

/// A packet the local stack is still building above the IP layer (TCP's
/// `__ip_queue_xmit`, `ip6_xmit`) has no protocol yet, a socket, and `data`
/// at the transport header: nothing below it was written, and its network
/// header offset is whatever the allocation left (0), not a header. For
/// such a packet this writes the IP header the socket will get (addresses,
/// protocol, length) and then the transport header, so filters and the
/// decoder see it as after the IP layer (the C nettrace reads these hooks
/// from the socket too), and returns the ethertype and the valid bytes of
/// `hdr` as `ethertype << 16 | bytes` (0: not such a packet).
///
/// Out of line, so only packets without a protocol pay for it, and kept off
/// the lifecycle program's deepest call chain: the 6.1 verifier allows 512
/// bytes of stack for a chain (each frame rounded up to 32), and that chain
/// (entry, handler, `emit_nf_hooks`) is at the limit. Addresses are read
/// straight into `hdr`, so no arrays sit on the stack.
#[inline(never)]
fn read_from_sock(layout: &KernelLayout, skb: u64, hdr: &mut [u8; PKT_HDR_LEN], len: u32) -> u32 {
    // At most five arguments to a BPF function: read these again.
    let (Some(sk), Some(th), Some(head), Some(data)) = (
        field::<u64>(skb, layout.skb_sk),
        field::<u16>(skb, layout.skb_transport_header),
        field::<u64>(skb, layout.skb_head),
        field::<u64>(skb, layout.skb_data),
    ) else {
        return 0;
    };
    if th == HEADER_UNSET || sk == 0 || data != head + th as u64 {
        return 0;
    }
    let end = data + len as u64;
    let l4 = head + th as u64;
    if end <= l4 {
        return 0;
    }
    let avail = end - l4;
    let protocol = field::<u16>(sk, layout.sk_protocol).unwrap_or(0) as u8;
    let family = field::<u16>(sk, layout.sk_family).unwrap_or(0);
    if family != AF_INET && family != AF_INET6 {
        return 0;
    }
    // SAFETY (every read below): probe reads of kernel memory into our own
    // buffer; a failed read leaves zeros.
    let read = |src: u64, off: u32, dst: &mut [u8]| {
        if off != KernelLayout::NONE {
            let _ = unsafe { bpf_probe_read_kernel_buf((src + off as u64) as *const u8, dst) };
        }
    };
    // An IPv6 socket whose peer is v4-mapped (`::ffff:a.b.c.d`) talks IPv4
    // on the wire: look at its peer address first (where IPv6 keeps it).
    let mut v4 = family == AF_INET;
    if !v4 {
        read(sk, layout.sk_v6_daddr, &mut hdr[24..40]);
        v4 = hdr[24..34] == [0; 10] && hdr[34] == 0xff && hdr[35] == 0xff;
    }
    if v4 {
        const IP: usize = 20;
        // Every header byte written one by one: a zeroed array would be
        // built on the stack and copied.
        let total = (avail as u16).wrapping_add(IP as u16).to_be_bytes();
        let fixed = [0x45, 0, total[0], total[1], 0, 0, 0, 0, 64, protocol, 0, 0];
        for (i, b) in fixed.into_iter().enumerate() {
            hdr[i] = b;
        }
        read(sk, layout.sk_saddr, &mut hdr[12..16]);
        read(sk, layout.sk_daddr, &mut hdr[16..20]);
        read(l4, 0, &mut hdr[IP..]);
        (u32::from(ethertype::IPV4) << 16) | (IP as u64 + avail.min((PKT_HDR_LEN - IP) as u64)) as u32
    } else {
        const IP6: usize = 40;
        let payload = (avail as u16).to_be_bytes();
        let fixed = [0x60, 0, 0, 0, payload[0], payload[1], protocol, 64];
        for (i, b) in fixed.into_iter().enumerate() {
            hdr[i] = b;
        }
        read(sk, layout.sk_v6_saddr, &mut hdr[8..24]);
        read(l4, 0, &mut hdr[IP6..]);
        (u32::from(ethertype::IPV6) << 16) | (IP6 as u64 + avail.min((PKT_HDR_LEN - IP6) as u64)) as u32
    }
}
