//! Types shared by the eBPF programs and the userspace tool.
//!
//! Everything here is `#[repr(C)]` plain data: the eBPF side writes it into maps
//! and the ring buffer, userspace reads it back byte for byte, so both sides
//! must agree on layout without any serialisation. Padding is spelled out as
//! named fields so that no byte is ever uninitialised (the verifier rejects
//! reads of uninitialised stack, and userspace must never see garbage).
#![no_std]

pub mod drop;
pub mod expr;
pub mod filter;
pub mod layout;
pub mod record;
pub mod snap;
pub mod tcp;
pub mod trace;

pub use drop::{DropConfig, DropEvent};
pub use filter::Filter;
pub use layout::KernelLayout;
pub use record::{Record, RecordHeader};
pub use trace::{TraceConfig, TraceEvent};

/// How many bytes of the packet, counted from its network (L3) header, each
/// event carries. 96 covers an IPv6 header (40) plus a TCP header with options
/// (up to 60 are common-ish), or IPv4 with options plus TCP; userspace decodes
/// these bytes, the kernel only peeks into them to filter.
pub const PKT_HDR_LEN: usize = 96;

/// Length of `task_struct.comm` (TASK_COMM_LEN in the kernel).
pub const COMM_LEN: usize = 16;

/// Ethertypes the filters understand (host byte order).
pub mod ethertype {
    pub const IPV4: u16 = 0x0800;
    pub const IPV6: u16 = 0x86dd;
    pub const ARP: u16 = 0x0806;
}

/// An Ethernet header's length (`ETH_HLEN`): destination, source, type.
pub const ETH_HLEN: usize = 14;

/// `net_device.type` of an Ethernet device (`ARPHRD_ETHER`, uapi
/// `linux/if_arp.h`; veth, bridges and most NICs).
pub const ARPHRD_ETHER: u16 = 1;

/// Netfilter protocol families (`NFPROTO_*`, uapi `linux/netfilter.h`).
pub mod nfproto {
    pub const INET: u8 = 1;
    pub const IPV4: u8 = 2;
    pub const ARP: u8 = 3;
    pub const BRIDGE: u8 = 7;
    pub const IPV6: u8 = 10;
}

/// IP protocol numbers the filters understand.
pub mod ipproto {
    pub const ICMP: u8 = 1;
    pub const TCP: u8 = 6;
    pub const UDP: u8 = 17;
    pub const ICMPV6: u8 = 58;
}

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all these types are #[repr(C)], contain only integers and byte
    // arrays, and have their padding spelled out as fields.
    unsafe impl aya::Pod for crate::DropEvent {}
    unsafe impl aya::Pod for crate::DropConfig {}
    unsafe impl aya::Pod for crate::Filter {}
    unsafe impl aya::Pod for crate::KernelLayout {}
    unsafe impl aya::Pod for crate::TraceConfig {}
    unsafe impl aya::Pod for crate::TraceEvent {}
    unsafe impl aya::Pod for crate::trace::RateWindow {}
    unsafe impl aya::Pod for crate::snap::PacketBytes {}
    unsafe impl aya::Pod for crate::trace::NfContextEvent {}
    unsafe impl aya::Pod for crate::trace::NfHooksEvent {}
    unsafe impl aya::Pod for crate::tcp::TcpConfig {}
    unsafe impl aya::Pod for crate::tcp::TcpEvent {}
    unsafe impl aya::Pod for crate::tcp::RtEvent {}
    unsafe impl aya::Pod for crate::tcp::RtCloseEvent {}
    unsafe impl aya::Pod for crate::tcp::RttEvent {}
    unsafe impl aya::Pod for crate::tcp::SockEvent {}
}
