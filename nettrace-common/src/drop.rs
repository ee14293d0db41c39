//! `--drop` mode: one event per `skb:kfree_skb`.

use crate::{
    COMM_LEN, PKT_HDR_LEN,
    filter::Filter,
    layout::KernelLayout,
    record::{Record, RecordHeader},
};

/// Which arguments of the tracepoint hold what. For `tp_btf` these are
/// argument indices from the BTF prototype of `btf_trace_kfree_skb`; for the
/// classic tracepoint they are byte offsets into the record, from tracefs's
/// `format` file. `u32::MAX` means "this kernel's tracepoint has no such field".
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropArgs {
    pub skb: u32,
    pub location: u32,
    pub reason: u32,
    pub _pad: u32,
}

/// Everything the drop programs need, passed as one read-only global.
///
/// Both argument maps are filled because the backend is chosen after the
/// object is loaded (the capability probes live in the same object).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DropConfig {
    pub layout: KernelLayout,
    pub filter: Filter,
    /// Argument indices for the `tp_btf` program.
    pub btf_args: DropArgs,
    /// Record offsets for the classic tracepoint program.
    pub tp_args: DropArgs,
    /// Non-zero: record the kernel stack (`--drop-stack`).
    pub stack: u32,
    /// `--rate-limit`: events per second, 0 = unlimited.
    pub rate_limit: u32,
    /// `-w`'s `--snaplen`: bytes of packet to send in a `PacketBytes`
    /// after each event; 0 (no `-w`) sends none.
    pub snaplen: u32,
    pub _pad: u32,
}

/// One dropped packet, as written to the ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DropEvent {
    pub header: RecordHeader,
    /// `enum skb_drop_reason` value (0 when the kernel has none).
    pub reason: u32,
    /// Stack id in the stack-trace map, or negative when not recorded.
    pub stack_id: i32,
    /// Network namespace inode of the device or socket, 0 if unknown.
    pub netns: u32,
    /// tgid of the task that was running.
    pub pid: u32,
    /// `skb->dev->ifindex`, 0 if no device.
    pub ifindex: u32,
    /// L3 protocol (ethertype, host order), 0 if the network header is unset.
    pub l3_proto: u16,
    /// Valid bytes in `hdr`.
    pub hdr_len: u16,
    pub _pad: u32,
    /// `bpf_ktime_get_ns()`: CLOCK_MONOTONIC, nanoseconds.
    pub ts_ns: u64,
    /// Address of the `sk_buff`.
    pub skb: u64,
    /// Return address inside the function that freed the packet.
    pub location: u64,
    pub comm: [u8; COMM_LEN],
    /// `skb->dev->name` with `-w` (zeros without it, or without a device).
    pub ifname: [u8; crate::trace::IFNAME_LEN],
    /// Packet bytes from the network header on.
    pub hdr: [u8; PKT_HDR_LEN],
}

impl DropEvent {
    /// An event with its header and nothing else (no stack).
    pub const fn zeroed() -> Self {
        Self {
            header: <Self as Record>::HEADER,
            reason: 0,
            stack_id: -1,
            netns: 0,
            pid: 0,
            ifindex: 0,
            l3_proto: 0,
            hdr_len: 0,
            _pad: 0,
            ts_ns: 0,
            skb: 0,
            location: 0,
            comm: [0; COMM_LEN],
            ifname: [0; crate::trace::IFNAME_LEN],
            hdr: [0; PKT_HDR_LEN],
        }
    }
}
