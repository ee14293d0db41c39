//! One `SOCK_DIAG_BY_FAMILY` dump of TCP sockets over `NETLINK_SOCK_DIAG`
//! (what `ss -ti` asks), in the network namespace of the calling thread: a
//! netlink socket talks to the namespace it was created in.
//!
//! Messages are built and decoded by the rust-netlink crates. `tcp_info` is
//! decoded here rather than with the crate's `rich_nlas` feature because
//! that one rejects any `INET_DIAG_INFO` shorter than the newest struct it
//! knows, while the kernel sends its own `sizeof(struct tcp_info)`: shorter
//! on old kernels, longer on new ones.

use std::{io, net::SocketAddr};

use netlink_packet_core::{
    NLM_F_DUMP, NLM_F_REQUEST, NetlinkBuffer, NetlinkHeader, NetlinkMessage, NetlinkPayload,
};
use netlink_packet_sock_diag::{
    AF_INET, IPPROTO_TCP, SockDiagMessage,
    inet::{ExtensionFlags, InetRequest, InetResponse, SocketId, StateFlags, nlas::Nla},
};
use netlink_sys::{Socket, protocols::NETLINK_SOCK_DIAG};

#[derive(Debug, thiserror::Error)]
pub enum DiagError {
    /// The netlink socket could not be opened or bound (no `sock_diag`).
    #[error("cannot open a NETLINK_SOCK_DIAG socket: {0}")]
    Socket(#[source] io::Error),
    /// Sending the request or reading the answer failed.
    #[error("sock_diag {what}: {source}")]
    Io {
        what: &'static str,
        #[source]
        source: io::Error,
    },
    /// The kernel answered the dump with an error (e.g. `tcp_diag` missing).
    #[error("sock_diag dump refused by the kernel: {0}")]
    Kernel(#[source] io::Error),
    /// The answer was not a well-formed netlink message.
    #[error("sock_diag: malformed netlink message: {0}")]
    Malformed(String),
}

/// One socket as `inet_diag` describes it (`struct inet_diag_msg`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DiagSocket {
    /// `AF_INET` or `AF_INET6`: the socket's family, not the traffic's (an
    /// IPv6 socket may talk IPv4 through mapped addresses).
    pub family: u8,
    pub state: u8,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// sockfs inode; 0 for sockets no file refers to (TIME_WAIT, requests).
    pub inode: u32,
    /// From `INET_DIAG_INFO`; absent for TIME_WAIT and request sockets.
    pub info: Option<TcpInfoFields>,
}

/// What one dump returned.
#[derive(Debug, Default)]
pub struct Dump {
    pub sockets: Vec<DiagSocket>,
    /// Messages the netlink crate could not decode (skipped), and why the
    /// first one failed.
    pub undecodable: usize,
    pub first_decode_error: Option<String>,
}

/// Dumps the TCP sockets of `family` whose state bit is set in `states`
/// (`1 << TCP_*`), with `tcp_info`. The kernel filters by state.
pub fn dump(family: u8, states: u32) -> Result<Dump, DiagError> {
    let mut socket = Socket::new(NETLINK_SOCK_DIAG).map_err(DiagError::Socket)?;
    socket.bind_auto().map_err(DiagError::Socket)?;
    socket
        .connect(&netlink_sys::SocketAddr::new(0, 0))
        .map_err(DiagError::Socket)?;

    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST | NLM_F_DUMP;
    header.sequence_number = 1;
    let request = InetRequest {
        family,
        protocol: IPPROTO_TCP,
        extensions: ExtensionFlags::INFO,
        states: StateFlags::from_bits_retain(states),
        socket_id: if family == AF_INET {
            SocketId::new_v4()
        } else {
            SocketId::new_v6()
        },
    };
    let mut msg = NetlinkMessage::new(header, SockDiagMessage::InetRequest(request).into());
    msg.finalize();
    let mut buf = vec![0; msg.buffer_len()];
    msg.serialize(&mut buf);
    socket
        .send(&buf, 0)
        .map_err(|source| DiagError::Io { what: "send", source })?;

    let mut dump = Dump::default();
    loop {
        let data = match socket.recv_from_full() {
            Ok((data, _)) => data,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(DiagError::Io { what: "recv", source }),
        };
        if data.is_empty() {
            return Err(DiagError::Malformed("empty datagram before NLMSG_DONE".into()));
        }
        let mut rest = &data[..];
        while !rest.is_empty() {
            // The header alone says how far the next message is, so one
            // message the crate cannot decode does not lose the others.
            let len = NetlinkBuffer::new_checked(rest)
                .map_err(|e| DiagError::Malformed(e.to_string()))?
                .length() as usize;
            let this = &rest[..len];
            rest = &rest[align4(len).min(rest.len())..];
            match NetlinkMessage::<SockDiagMessage>::deserialize(this) {
                Ok(m) => match m.payload {
                    NetlinkPayload::Done(_) => return Ok(dump),
                    NetlinkPayload::Error(e) => return Err(DiagError::Kernel(e.to_io())),
                    NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(r)) => {
                        dump.sockets.push(from_response(&r));
                    }
                    _ => {}
                },
                Err(e) => {
                    dump.undecodable += 1;
                    dump.first_decode_error.get_or_insert_with(|| e.to_string());
                }
            }
        }
    }
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

fn from_response(r: &InetResponse) -> DiagSocket {
    let id = &r.header.socket_id;
    let info = r.nlas.iter().find_map(|nla| match nla {
        Nla::TcpInfo(bytes) => TcpInfoFields::parse(bytes),
        _ => None,
    });
    DiagSocket {
        family: r.header.family,
        state: r.header.state,
        local: SocketAddr::new(id.source_address.to_canonical(), id.source_port),
        remote: SocketAddr::new(id.destination_address.to_canonical(), id.destination_port),
        inode: r.header.inode,
        info,
    }
}

/// The `tcp_info` fields `--conn` shows and filters on. Times are in
/// microseconds, as the kernel reports them. Fields the kernel's struct is
/// too short for are `None`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TcpInfoFields {
    /// `tcpi_ca_state`: `TCP_CA_Open`, `Disorder`, `CWR`, `Recovery`, `Loss`.
    pub ca_state: u8,
    pub rto_us: u32,
    /// Segments sent and not yet acknowledged.
    pub unacked: u32,
    /// Segments currently considered lost.
    pub lost: u32,
    /// Segments currently retransmitted and not yet acknowledged.
    pub retrans: u32,
    /// Smoothed round-trip time and its mean deviation.
    pub rtt_us: u32,
    pub rttvar_us: u32,
    pub snd_ssthresh: u32,
    pub snd_cwnd: u32,
    /// Retransmissions over the connection's lifetime.
    pub total_retrans: u32,
    /// Linux 4.1+ (`tcpi_bytes_acked`, `tcpi_bytes_received`).
    pub bytes_acked: Option<u64>,
    pub bytes_received: Option<u64>,
    /// Linux 4.6+.
    pub min_rtt_us: Option<u32>,
    /// Linux 4.19+.
    pub bytes_sent: Option<u64>,
    pub bytes_retrans: Option<u64>,
}

/// Byte offsets in uapi `struct tcp_info` (include/uapi/linux/tcp.h), a
/// stable ABI that only ever grows at the end. Checked against libc's copy
/// of the struct in the tests.
mod off {
    pub const CA_STATE: usize = 1;
    pub const RTO: usize = 8;
    pub const UNACKED: usize = 24;
    pub const LOST: usize = 32;
    pub const RETRANS: usize = 36;
    pub const RTT: usize = 68;
    pub const RTTVAR: usize = 72;
    pub const SND_SSTHRESH: usize = 76;
    pub const SND_CWND: usize = 80;
    pub const TOTAL_RETRANS: usize = 100;
    pub const BYTES_ACKED: usize = 120;
    pub const BYTES_RECEIVED: usize = 128;
    pub const MIN_RTT: usize = 148;
    pub const BYTES_SENT: usize = 200;
    pub const BYTES_RETRANS: usize = 208;
}

impl TcpInfoFields {
    /// Decodes an `INET_DIAG_INFO` payload. The kernel copies its own
    /// `sizeof(struct tcp_info)` (`tcp_diag_get_info` via
    /// `inet_sk_diag_fill`), so only fields inside `bytes` are read; `None`
    /// if even the fields every kernel has (up to `tcpi_total_retrans`) are
    /// missing.
    pub fn parse(bytes: &[u8]) -> Option<Self> {
        // Host byte order: the kernel fills the struct natively.
        let u32_at = |o: usize| Some(u32::from_ne_bytes(bytes.get(o..o + 4)?.try_into().ok()?));
        let u64_at = |o: usize| Some(u64::from_ne_bytes(bytes.get(o..o + 8)?.try_into().ok()?));
        Some(Self {
            ca_state: *bytes.get(off::CA_STATE)?,
            rto_us: u32_at(off::RTO)?,
            unacked: u32_at(off::UNACKED)?,
            lost: u32_at(off::LOST)?,
            retrans: u32_at(off::RETRANS)?,
            rtt_us: u32_at(off::RTT)?,
            rttvar_us: u32_at(off::RTTVAR)?,
            snd_ssthresh: u32_at(off::SND_SSTHRESH)?,
            snd_cwnd: u32_at(off::SND_CWND)?,
            total_retrans: u32_at(off::TOTAL_RETRANS)?,
            bytes_acked: u64_at(off::BYTES_ACKED),
            bytes_received: u64_at(off::BYTES_RECEIVED),
            min_rtt_us: u32_at(off::MIN_RTT),
            bytes_sent: u64_at(off::BYTES_SENT),
            bytes_retrans: u64_at(off::BYTES_RETRANS),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::mem::offset_of;

    use super::*;

    /// A `struct tcp_info` of `len` bytes with recognisable values.
    fn tcp_info(len: usize) -> Vec<u8> {
        let mut b = vec![0u8; 232];
        let mut put32 = |o: usize, v: u32| b[o..o + 4].copy_from_slice(&v.to_ne_bytes());
        put32(off::RTO, 204_000);
        put32(off::UNACKED, 2);
        put32(off::LOST, 1);
        put32(off::RETRANS, 1);
        put32(off::RTT, 123);
        put32(off::RTTVAR, 50);
        put32(off::SND_SSTHRESH, 7);
        put32(off::SND_CWND, 10);
        put32(off::TOTAL_RETRANS, 3);
        put32(off::MIN_RTT, 40);
        let mut put64 = |o: usize, v: u64| b[o..o + 8].copy_from_slice(&v.to_ne_bytes());
        put64(off::BYTES_ACKED, 1234);
        put64(off::BYTES_RECEIVED, 5678);
        put64(off::BYTES_SENT, 1300);
        put64(off::BYTES_RETRANS, 66);
        b[off::CA_STATE] = 4;
        b.truncate(len);
        b
    }

    #[test]
    fn offsets_match_libc() {
        assert_eq!(offset_of!(libc::tcp_info, tcpi_ca_state), off::CA_STATE);
        assert_eq!(offset_of!(libc::tcp_info, tcpi_rto), off::RTO);
        assert_eq!(offset_of!(libc::tcp_info, tcpi_unacked), off::UNACKED);
        assert_eq!(offset_of!(libc::tcp_info, tcpi_lost), off::LOST);
        assert_eq!(offset_of!(libc::tcp_info, tcpi_retrans), off::RETRANS);
        assert_eq!(offset_of!(libc::tcp_info, tcpi_rtt), off::RTT);
        assert_eq!(offset_of!(libc::tcp_info, tcpi_rttvar), off::RTTVAR);
        assert_eq!(offset_of!(libc::tcp_info, tcpi_snd_ssthresh), off::SND_SSTHRESH);
        assert_eq!(offset_of!(libc::tcp_info, tcpi_snd_cwnd), off::SND_CWND);
        assert_eq!(offset_of!(libc::tcp_info, tcpi_total_retrans), off::TOTAL_RETRANS);
        assert_eq!(offset_of!(libc::tcp_info, tcpi_bytes_acked), off::BYTES_ACKED);
        assert_eq!(
            offset_of!(libc::tcp_info, tcpi_bytes_received),
            off::BYTES_RECEIVED
        );
        assert_eq!(offset_of!(libc::tcp_info, tcpi_min_rtt), off::MIN_RTT);
    }

    #[test]
    fn full_struct() {
        let i = TcpInfoFields::parse(&tcp_info(232)).unwrap();
        assert_eq!(
            i,
            TcpInfoFields {
                ca_state: 4,
                rto_us: 204_000,
                unacked: 2,
                lost: 1,
                retrans: 1,
                rtt_us: 123,
                rttvar_us: 50,
                snd_ssthresh: 7,
                snd_cwnd: 10,
                total_retrans: 3,
                bytes_acked: Some(1234),
                bytes_received: Some(5678),
                min_rtt_us: Some(40),
                bytes_sent: Some(1300),
                bytes_retrans: Some(66),
            }
        );
    }

    #[test]
    fn shorter_struct_of_an_old_kernel() {
        // Linux 4.1-4.5: up to tcpi_bytes_received (136 bytes).
        let i = TcpInfoFields::parse(&tcp_info(136)).unwrap();
        assert_eq!((i.rtt_us, i.total_retrans), (123, 3));
        assert_eq!((i.bytes_acked, i.bytes_received), (Some(1234), Some(5678)));
        assert_eq!((i.min_rtt_us, i.bytes_sent), (None, None));
        // Before 4.1: ends at tcpi_total_retrans.
        let i = TcpInfoFields::parse(&tcp_info(104)).unwrap();
        assert_eq!((i.snd_cwnd, i.bytes_acked), (10, None));
        // Cut inside the base fields: not a tcp_info.
        assert_eq!(TcpInfoFields::parse(&tcp_info(100)), None);
        assert_eq!(TcpInfoFields::parse(&[]), None);
    }

    #[test]
    fn longer_struct_of_a_newer_kernel() {
        let mut b = tcp_info(232);
        b.extend_from_slice(&[0xff; 64]);
        assert_eq!(TcpInfoFields::parse(&b), TcpInfoFields::parse(&tcp_info(232)));
    }
}
