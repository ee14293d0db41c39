//! Kernel struct layout, resolved from BTF by userspace at start-up.
//!
//! Rust eBPF has no CO-RE relocations, so the programs cannot name
//! `skb->network_header`; they add the offsets below to the object's address
//! and read with `bpf_probe_read_kernel`. Userspace fills this from the running
//! kernel's BTF, which keeps one binary correct across kernels.

/// Byte offsets of the fields the programs read. `NONE` marks a field the
/// running kernel does not have; the programs then skip what depends on it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelLayout {
    /// `sk_buff.head` (`unsigned char *`).
    pub skb_head: u32,
    /// `sk_buff.data` (`unsigned char *`).
    pub skb_data: u32,
    /// `sk_buff.len` (`unsigned int`).
    pub skb_len: u32,
    /// `sk_buff.network_header` (`__u16`, offset from `head`).
    pub skb_network_header: u32,
    /// `sk_buff.protocol` (`__be16` ethertype).
    pub skb_protocol: u32,
    /// `sk_buff.dev` (`struct net_device *`).
    pub skb_dev: u32,
    /// `sk_buff.sk` (`struct sock *`).
    pub skb_sk: u32,
    /// `net_device.ifindex` (`int`).
    pub dev_ifindex: u32,
    /// `net_device.nd_net.net` (`struct net *`).
    pub dev_net: u32,
    /// `sock.__sk_common.skc_net.net` (`struct net *`).
    pub sk_net: u32,
    /// `net.ns.inum` (`unsigned int`): the namespace inode number.
    pub net_inum: u32,
    /// `net_device.name` (`char[IFNAMSIZ]`).
    pub dev_name: u32,
    /// `sk_buff.transport_header` (`__u16`, offset from `head`).
    pub skb_transport_header: u32,
    /// For packets the local stack builds before the IP layer wrote their
    /// header (`__ip_queue_xmit`): the socket's `skc_family` (`u16`),
    /// `sk_protocol` (`u16`), `skc_rcv_saddr`/`skc_daddr` (IPv4) and
    /// `skc_v6_rcv_saddr`/`skc_v6_daddr` (IPv6).
    pub sk_family: u32,
    pub sk_protocol: u32,
    pub sk_saddr: u32,
    pub sk_daddr: u32,
    pub sk_v6_saddr: u32,
    pub sk_v6_daddr: u32,
    /// `sk_buff.data_len` (`unsigned int`): the bytes of `len` in paged
    /// fragments, not in the head buffer (`-w` copies only the head's).
    pub skb_data_len: u32,
    /// `--pcap-l2`: `sk_buff.mac_header` (`__u16`, offset from `head`) and
    /// `net_device.type` (`unsigned short`, an `ARPHRD_*`): whether the
    /// packet has an Ethernet header in front of its network header.
    pub skb_mac_header: u32,
    pub dev_type: u32,
}

impl KernelLayout {
    /// Marker for "this kernel has no such field".
    pub const NONE: u32 = u32::MAX;
}
