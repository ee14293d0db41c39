//! Ring-buffer bytes → one typed [`Record`], for every mode.
//!
//! Every record starts with a `RecordHeader` (`nettrace-common/src/record.rs`):
//! its kind says which type follows, its version which layout, its length how
//! many bytes. Records are decoded once, here, so that sinks match on a type
//! instead of guessing from sizes. A record whose header this binary does not
//! know is rejected with the reason, never misread: only an eBPF object built
//! from other sources than this binary could send one.

use aya::Pod;
use nettrace_common::{
    DropEvent, TraceEvent,
    record::{Record as RecordType, RecordHeader, kind},
    snap::{PACKET_BYTES_HEAD, PacketBytes, link},
    tcp::{RtCloseEvent, RtEvent, RttEvent, SockEvent, TcpEvent},
    trace::{NfContextEvent, NfHooksEvent},
};

/// One ring-buffer record; `Packet` borrows the ring buffer's bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Record<'a> {
    /// A packet at a hook (lifecycle mode).
    Trace(TraceEvent),
    /// The netfilter context of the next `Trace` of the same skb.
    NfContext(NfContextEvent),
    /// The netfilter hook functions of a packet about to be dropped.
    NfHooks(NfHooksEvent),
    /// `--drop`.
    Drop(DropEvent),
    /// `--tcp-monitor`.
    Tcp(TcpEvent),
    /// `--rtt-detail`.
    Rtt(RttEvent),
    /// `--rt`: one task.
    Rt(RtEvent),
    /// `--rt`: a timed connection's end.
    RtClose(RtCloseEvent),
    /// `--sock`.
    Sock(SockEvent),
    /// `-w`: the packet of the next `Trace` or `Drop` of the same skb.
    Packet(Snap<'a>),
}

/// A `PacketBytes` record: its fixed fields, and its bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Snap<'a> {
    pub skb: u64,
    pub ts_ns: u64,
    /// The packet's length from where `data` starts.
    pub orig_len: u32,
    /// `data` starts with an Ethernet header (`--pcap-l2`), not the
    /// network header.
    pub ethernet: bool,
    /// From the network (or Ethernet) header, at most the snap length.
    pub data: &'a [u8],
}

/// Why a record was not decoded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Rejected {
    #[error("{len} bytes, shorter than a record header")]
    Short { len: usize },
    #[error("unknown record kind {kind}")]
    UnknownKind { kind: u8 },
    #[error("record kind {kind} where kind {expected} was expected")]
    Kind { kind: u8, expected: u8 },
    #[error("record kind {kind} of version {version}; this binary reads version {expected}")]
    Version { kind: u8, version: u8, expected: u8 },
    #[error("record kind {kind} of {len} bytes (its header says {header_len}); this binary reads {expected}")]
    Length {
        kind: u8,
        len: usize,
        header_len: u16,
        expected: usize,
    },
}

impl<'a> Record<'a> {
    /// Decodes one record from the ring buffer's bytes.
    pub fn decode(bytes: &'a [u8]) -> Result<Self, Rejected> {
        Ok(match header(bytes)?.kind {
            kind::TRACE => Self::Trace(read(bytes)?),
            kind::NF_CONTEXT => Self::NfContext(read(bytes)?),
            kind::NF_HOOKS => Self::NfHooks(read(bytes)?),
            kind::DROP => Self::Drop(read(bytes)?),
            kind::TCP => Self::Tcp(read(bytes)?),
            kind::RTT => Self::Rtt(read(bytes)?),
            kind::RT => Self::Rt(read(bytes)?),
            kind::RT_CLOSE => Self::RtClose(read(bytes)?),
            kind::SOCK => Self::Sock(read(bytes)?),
            kind::PACKET => Self::Packet(snap(bytes)?),
            kind => return Err(Rejected::UnknownKind { kind }),
        })
    }
}

fn header(bytes: &[u8]) -> Result<RecordHeader, Rejected> {
    match *bytes {
        [kind, version, len0, len1, ..] => Ok(RecordHeader {
            kind,
            version,
            len: u16::from_ne_bytes([len0, len1]),
        }),
        _ => Err(Rejected::Short { len: bytes.len() }),
    }
}

/// Reads a variable-length `PacketBytes`: its header's length must be what
/// came, and its `cap_len` what follows the fixed part.
fn snap(bytes: &[u8]) -> Result<Snap<'_>, Rejected> {
    let h = header(bytes)?;
    let wrong = || Rejected::Length {
        kind: h.kind,
        len: bytes.len(),
        header_len: h.len,
        expected: size_of::<PacketBytes>(),
    };
    if h.version != PacketBytes::VERSION {
        return Err(Rejected::Version {
            kind: h.kind,
            version: h.version,
            expected: PacketBytes::VERSION,
        });
    }
    if usize::from(h.len) != bytes.len()
        || bytes.len() < PACKET_BYTES_HEAD
        || bytes.len() > size_of::<PacketBytes>()
    {
        return Err(wrong());
    }
    let u16_at = |i: usize| u16::from_ne_bytes([bytes[i], bytes[i + 1]]);
    let u32_at = |i: usize| u32::from_ne_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
    let u64_at = |i: usize| u64::from_ne_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
    let data = &bytes[PACKET_BYTES_HEAD..];
    if usize::from(u16_at(4)) != data.len() {
        return Err(wrong());
    }
    Ok(Snap {
        orig_len: u32_at(8),
        ethernet: u16_at(6) == link::ETHERNET,
        skb: u64_at(16),
        ts_ns: u64_at(24),
        data,
    })
}

/// Reads a `T` from bytes whose header says they are exactly one `T` of the
/// layout this binary was built with. Only record types can be read (the
/// trait is sealed), and only plain data (`Pod`).
pub fn read<T: RecordType + Pod>(bytes: &[u8]) -> Result<T, Rejected> {
    let h = header(bytes)?;
    if h.kind != T::KIND {
        return Err(Rejected::Kind {
            kind: h.kind,
            expected: T::KIND,
        });
    }
    if h.version != T::VERSION {
        return Err(Rejected::Version {
            kind: h.kind,
            version: h.version,
            expected: T::VERSION,
        });
    }
    if usize::from(h.len) != bytes.len() || bytes.len() != size_of::<T>() {
        return Err(Rejected::Length {
            kind: h.kind,
            len: bytes.len(),
            header_len: h.len,
            expected: size_of::<T>(),
        });
    }
    // SAFETY: `T: Pod` is plain data (any bit pattern is a value) and
    // `bytes` holds exactly one `T`; the read does not assume alignment.
    Ok(unsafe { std::ptr::read_unaligned(bytes.as_ptr().cast::<T>()) })
}

/// A record's bytes as the eBPF side sends them (for tests).
#[cfg(test)]
pub fn bytes_of<T: RecordType + Pod>(record: &T) -> Vec<u8> {
    // SAFETY: plain data viewed as bytes.
    unsafe { std::slice::from_raw_parts(std::ptr::from_ref(record).cast::<u8>(), size_of::<T>()) }.to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record of type `T` with its header and zeros.
    fn blank<T: RecordType + Pod>() -> T {
        // SAFETY: plain data; all zeros is a value.
        let mut r: T = unsafe { std::mem::zeroed() };
        // SAFETY: every record starts with its header.
        unsafe { std::ptr::from_mut(&mut r).cast::<RecordHeader>().write(T::HEADER) };
        r
    }

    #[test]
    fn every_kind_decodes_to_its_variant() {
        let t: TraceEvent = blank();
        assert_eq!(Record::decode(&bytes_of(&t)), Ok(Record::Trace(t)));
        let c: NfContextEvent = blank();
        assert_eq!(Record::decode(&bytes_of(&c)), Ok(Record::NfContext(c)));
        let h: NfHooksEvent = blank();
        assert_eq!(Record::decode(&bytes_of(&h)), Ok(Record::NfHooks(h)));
        let d = DropEvent::zeroed();
        assert_eq!(Record::decode(&bytes_of(&d)), Ok(Record::Drop(d)));
        let tcp: TcpEvent = blank();
        assert_eq!(Record::decode(&bytes_of(&tcp)), Ok(Record::Tcp(tcp)));
        let rtt: RttEvent = blank();
        assert_eq!(Record::decode(&bytes_of(&rtt)), Ok(Record::Rtt(rtt)));
        let rt: RtEvent = blank();
        assert_eq!(Record::decode(&bytes_of(&rt)), Ok(Record::Rt(rt)));
        let close: RtCloseEvent = blank();
        assert_eq!(Record::decode(&bytes_of(&close)), Ok(Record::RtClose(close)));
        let s: SockEvent = blank();
        assert_eq!(Record::decode(&bytes_of(&s)), Ok(Record::Sock(s)));
    }

    #[test]
    fn wrong_kind_is_rejected() {
        let mut bytes = bytes_of(&blank::<RttEvent>());
        bytes[0] = 0;
        assert_eq!(Record::decode(&bytes), Err(Rejected::UnknownKind { kind: 0 }));
        bytes[0] = 200;
        assert_eq!(Record::decode(&bytes), Err(Rejected::UnknownKind { kind: 200 }));
        // Zeroed memory is no record.
        assert_eq!(Record::decode(&[0; 72]), Err(Rejected::UnknownKind { kind: 0 }));
        // Reading one type from another's bytes.
        let rt = bytes_of(&blank::<RtEvent>());
        assert_eq!(
            read::<TcpEvent>(&rt),
            Err(Rejected::Kind {
                kind: kind::RT,
                expected: kind::TCP
            })
        );
    }

    #[test]
    fn wrong_length_is_rejected() {
        let bytes = bytes_of(&blank::<TcpEvent>());
        let n = bytes.len();
        let length = |len, header_len| Rejected::Length {
            kind: kind::TCP,
            len,
            header_len,
            expected: n,
        };
        assert_eq!(Record::decode(&bytes[..n - 8]), Err(length(n - 8, n as u16)));
        let mut longer = bytes.clone();
        longer.extend([0; 8]);
        assert_eq!(Record::decode(&longer), Err(length(n + 8, n as u16)));
        // The header's own length must agree too.
        let mut lying = bytes.clone();
        lying[2..4].copy_from_slice(&(n as u16 + 8).to_ne_bytes());
        assert_eq!(Record::decode(&lying), Err(length(n, n as u16 + 8)));
        assert_eq!(Record::decode(&bytes[..3]), Err(Rejected::Short { len: 3 }));
        assert_eq!(Record::decode(&[]), Err(Rejected::Short { len: 0 }));
    }

    #[test]
    fn packet_bytes_are_as_long_as_their_header_says() {
        let mut rec: PacketBytes = blank();
        rec.orig_len = 1400;
        rec.skb = 0xffff_8880_0000_1000;
        rec.ts_ns = 42;
        rec.cap_len = 3;
        rec.data[..3].copy_from_slice(&[0x45, 0, 1]);
        rec.header.len = (PACKET_BYTES_HEAD + 3) as u16;
        let bytes = bytes_of(&rec)[..PACKET_BYTES_HEAD + 3].to_vec();
        let want = Snap {
            skb: 0xffff_8880_0000_1000,
            ts_ns: 42,
            orig_len: 1400,
            ethernet: false,
            data: &[0x45, 0, 1],
        };
        assert_eq!(Record::decode(&bytes), Ok(Record::Packet(want)));
        // `--pcap-l2`: the same bytes from an Ethernet header.
        let mut l2 = bytes.clone();
        l2[6..8].copy_from_slice(&link::ETHERNET.to_ne_bytes());
        let want_l2 = Snap {
            ethernet: true,
            ..want
        };
        assert_eq!(Record::decode(&l2), Ok(Record::Packet(want_l2)));
        // Cut short, or a `cap_len` that disagrees: rejected.
        assert!(matches!(
            Record::decode(&bytes[..PACKET_BYTES_HEAD + 2]),
            Err(Rejected::Length { .. })
        ));
        let mut lying = bytes.clone();
        lying[4] = 4;
        assert!(matches!(Record::decode(&lying), Err(Rejected::Length { .. })));
        let mut short = bytes[..PACKET_BYTES_HEAD - 8].to_vec();
        short[2..4].copy_from_slice(&((PACKET_BYTES_HEAD - 8) as u16).to_ne_bytes());
        assert!(matches!(Record::decode(&short), Err(Rejected::Length { .. })));
    }

    #[test]
    fn wrong_version_is_rejected() {
        let mut bytes = bytes_of(&blank::<SockEvent>());
        bytes[1] += 1;
        assert_eq!(
            Record::decode(&bytes),
            Err(Rejected::Version {
                kind: kind::SOCK,
                version: SockEvent::VERSION + 1,
                expected: SockEvent::VERSION
            })
        );
    }
}
