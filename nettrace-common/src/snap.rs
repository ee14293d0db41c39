//! `-w FILE` (pcapng): the packet bytes of an event, beyond the fixed
//! header copy every event carries for the filters and the decoder.
//!
//! Only when `-w` is given do the programs send one: a [`PacketBytes`]
//! record right before the event it belongs to, holding up to the snap
//! length of packet from the network header, read from the skb's head
//! buffer. Sent only for events that go out (after every filter and the
//! rate limit), so the filtered-out hot path pays nothing; without `-w` the
//! snap length in the read-only configuration is 0 and the verifier drops
//! the code. The record is variable-length: its header's `len` says how
//! many of `data`'s bytes came (`PACKET_BYTES_HEAD + cap_len`), so a
//! 60-byte packet costs 60 bytes of ring buffer, not `SNAPLEN_MAX`.
//! Userspace pairs it with its event by skb address and timestamp.
//!
//! `--pcap-l2` sets [`SNAP_L2`] in the snap length the programs get: a
//! packet whose skb has an Ethernet header in front of its network header
//! is then sent from that header ([`link::ETHERNET`]); the others still
//! from their network header.

use crate::record::RecordHeader;

/// `--snaplen`'s default: headers and the start of the payload.
pub const SNAPLEN_DEFAULT: u32 = 256;
/// `--snaplen`'s largest value: an Ethernet MTU of packet.
pub const SNAPLEN_MAX: usize = 1500;

/// In the programs' snap length: `--pcap-l2`, send the Ethernet header too
/// where there is one. Above any snap length.
pub const SNAP_L2: u32 = 1 << 31;

/// What [`PacketBytes::link`] says the bytes start with.
pub mod link {
    /// The network header (pcap's LINKTYPE_RAW).
    pub const RAW: u16 = 0;
    /// An Ethernet header (LINKTYPE_ETHERNET), then the network header.
    pub const ETHERNET: u16 = 1;
}

/// Bytes of [`PacketBytes`] before `data`.
pub const PACKET_BYTES_HEAD: usize = 32;

/// Up to `--snaplen` bytes of one event's packet, from its network header
/// (or, with `--pcap-l2`, its Ethernet header).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PacketBytes {
    /// `len` is `PACKET_BYTES_HEAD + cap_len`, not the size of this type.
    pub header: RecordHeader,
    /// Bytes of `data` sent.
    pub cap_len: u16,
    /// Where `data` starts ([`link`]).
    pub link: u16,
    /// Bytes of packet from where `data` starts to its end (paged
    /// fragments included): pcapng's original length.
    pub orig_len: u32,
    pub _pad2: u32,
    /// The event's skb and timestamp, which pair the two.
    pub skb: u64,
    pub ts_ns: u64,
    /// `SNAPLEN_MAX` rounded up to the 8-byte alignment of records.
    pub data: [u8; SNAPLEN_MAX + 4],
}

const _: () = assert!(core::mem::offset_of!(PacketBytes, data) == PACKET_BYTES_HEAD);
