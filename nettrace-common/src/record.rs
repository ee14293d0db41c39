//! The header every ring-buffer record starts with, and the list of records.
//!
//! The eBPF objects send several kinds of record through one ring buffer
//! (a `TraceEvent` and the netfilter records before it; the TCP object's
//! four). Telling them apart by size made every new record a puzzle of
//! distinct sizes; a 4-byte header saying what the record is, which layout
//! it has and how long it is lets userspace decode each record once and
//! reject what it does not know instead of misreading it.
//!
//! Each record type embeds a [`RecordHeader`] as its first field and is
//! registered below with [`Record`]: its kind, its layout version and its
//! size, which is asserted at compile time (on both sides, as both build this
//! crate). A record's header is filled from [`Record::HEADER`], a constant.

use crate::{
    DropEvent, TraceEvent,
    snap::PacketBytes,
    tcp::{RtCloseEvent, RtEvent, RttEvent, SockEvent, TcpEvent},
    trace::{NfContextEvent, NfHooksEvent},
};

/// The first 4 bytes of every ring-buffer record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordHeader {
    /// One of [`kind`].
    pub kind: u8,
    /// The layout of this kind the sender used: bumped whenever the
    /// record's fields change, so a stale object is rejected, not misread.
    pub version: u8,
    /// Bytes of the whole record, header included.
    pub len: u16,
}

/// `RecordHeader::kind`. 0 is no kind: zeroed memory is never a record.
pub mod kind {
    /// `TraceEvent`: a packet at a hook (lifecycle mode).
    pub const TRACE: u8 = 1;
    /// `NfContextEvent`: the netfilter context of the next `TraceEvent`.
    pub const NF_CONTEXT: u8 = 2;
    /// `NfHooksEvent`: the netfilter hook functions of a dropped packet.
    pub const NF_HOOKS: u8 = 3;
    /// `DropEvent` (`--drop`).
    pub const DROP: u8 = 4;
    /// `TcpEvent` (`--tcp-monitor`).
    pub const TCP: u8 = 5;
    /// `RttEvent` (`--rtt-detail`).
    pub const RTT: u8 = 6;
    /// `RtEvent` (`--rt`).
    pub const RT: u8 = 7;
    /// `SockEvent` (`--sock`).
    pub const SOCK: u8 = 8;
    /// `PacketBytes` (`-w`): the packet of the next `TRACE` or `DROP` of
    /// the same skb. Variable-length: see `crate::snap`.
    pub const PACKET: u8 = 9;
    /// `RtCloseEvent` (`--rt`): a timed connection's end.
    pub const RT_CLOSE: u8 = 10;
}

mod sealed {
    pub trait Sealed {}
}

/// A type that travels through the ring buffer as one record. Sealed: only
/// the types registered in this module are records, so a reader generic
/// over `Record` can never be asked to read anything else.
pub trait Record: Copy + sealed::Sealed {
    /// One of [`kind`].
    const KIND: u8;
    /// The layout version (see [`RecordHeader::version`]).
    const VERSION: u8;
    /// The header a record of this type carries.
    const HEADER: RecordHeader = RecordHeader {
        kind: Self::KIND,
        version: Self::VERSION,
        len: size_of::<Self>() as u16,
    };
}

/// Registers a record type: its kind, version and size (asserted), and that
/// it starts with its header.
macro_rules! record {
    ($t:ty, $kind:expr, version $version:literal, size $size:expr) => {
        impl sealed::Sealed for $t {}
        impl Record for $t {
            const KIND: u8 = $kind;
            const VERSION: u8 = $version;
        }
        const _: () = assert!(size_of::<$t>() == $size);
        const _: () = assert!(size_of::<$t>() <= u16::MAX as usize);
        const _: () = assert!(core::mem::offset_of!($t, header) == 0);
        // Ring-buffer records are 8-byte aligned: so are the types.
        const _: () = assert!(align_of::<$t>() == 8 && size_of::<$t>() % 8 == 0);
    };
}

record!(TraceEvent, kind::TRACE, version 1, size 80 + 2 * 16 + crate::PKT_HDR_LEN);
record!(NfContextEvent, kind::NF_CONTEXT, version 1, size 80);
record!(NfHooksEvent, kind::NF_HOOKS, version 1, size 344);
record!(DropEvent, kind::DROP, version 2, size 88 + crate::PKT_HDR_LEN);
record!(TcpEvent, kind::TCP, version 1, size 104);
record!(RttEvent, kind::RTT, version 1, size 72);
record!(RtEvent, kind::RT, version 3, size 128);
record!(RtCloseEvent, kind::RT_CLOSE, version 2, size 120);
record!(SockEvent, kind::SOCK, version 1, size 136);
// The largest size: what is sent is `PACKET_BYTES_HEAD` plus the bytes read.
record!(PacketBytes, kind::PACKET, version 1, size crate::snap::PACKET_BYTES_HEAD + crate::snap::SNAPLEN_MAX + 4);

const _: () = assert!(size_of::<RecordHeader>() == 4);
