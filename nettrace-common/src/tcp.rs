//! `--tcp-monitor` and `--rt`: socket-level events from the TCP and socket
//! tracepoints, one eBPF object (`nettrace-tcp`) for both.
//!
//! The programs are classic tracepoints: their records are described by
//! tracefs `format` files on every kernel that has them, so userspace hands
//! each program the offsets of the record fields it reads ([`TpFields`]).
//! Socket facts the records lack (state, namespace, srtt, cwnd, sequence
//! numbers) are read from `struct sock`/`struct tcp_sock` at offsets from BTF
//! ([`SockLayout`]).

mod rt;

pub use self::rt::*;
use crate::{COMM_LEN, filter::Filter, record::RecordHeader};

/// Offsets from a `struct sock *` (`tcp_sock` starts with `sock`, and
/// `request_sock` with the same `sock_common`), from BTF.
/// `KernelLayout::NONE` for what this kernel lacks.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SockLayout {
    /// `sock_common.skc_family` (`unsigned short`).
    pub family: u32,
    /// `sock_common.skc_state` (`unsigned char`).
    pub state: u32,
    /// `sock_common.skc_num`: local port, host order.
    pub num: u32,
    /// `sock_common.skc_dport`: remote port, network order.
    pub dport: u32,
    /// `sock_common.skc_rcv_saddr` / `skc_daddr` (`__be32`).
    pub rcv_saddr: u32,
    pub daddr: u32,
    /// `sock_common.skc_v6_rcv_saddr` / `skc_v6_daddr` (`struct in6_addr`).
    pub v6_rcv_saddr: u32,
    pub v6_daddr: u32,
    /// `sock_common.skc_net.net` and `net.ns.inum`.
    pub net: u32,
    pub net_inum: u32,
    /// `tcp_sock.srtt_us` (smoothed RTT in µs, shifted left by 3).
    pub srtt_us: u32,
    /// `tcp_sock.snd_cwnd`.
    pub snd_cwnd: u32,
    /// `tcp_sock.total_retrans`.
    pub total_retrans: u32,
    /// `tcp_sock.snd_una` and `tcp_sock.write_seq`.
    pub snd_una: u32,
    pub write_seq: u32,
    /// `sk_buff.data`: at `tcp:tcp_probe` it points at the TCP header.
    pub skb_data: u32,
    /// `tcp_sock.rtt_min.s[0].v`: the windowed minimum RTT, µs.
    pub rtt_min: u32,
    /// `tcp_sock.rcv_nxt`: the next sequence number expected, and
    /// `tcp_sock.copied_seq`: the next the application will read.
    pub rcv_nxt: u32,
    pub copied_seq: u32,
}

/// Where one tracepoint's record keeps what its program reads: byte offsets
/// from tracefs, `KernelLayout::NONE` when the record has no such field.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TpFields {
    /// `skaddr` / `sk`: the socket (may be NULL in the record).
    pub sk: u32,
    /// `req`: the request socket of a SYN-ACK retransmit.
    pub req: u32,
    /// `skbaddr`.
    pub skb: u32,
    /// A 4-byte value: the reset reason, the `ret` of `sock_send_length`.
    pub value: u32,
    /// A 1-byte value: the new congestion state, …
    pub value8: u32,
    /// A 2-byte value: `data_len` of `tcp_probe`, `protocol` of `sock_*`.
    pub value16: u32,
    /// `saddr`/`daddr` as `struct sockaddr_in6`-sized `__u8[28]` (the
    /// tuple of events without a socket: resets sent with none, bad csum).
    pub saddr: u32,
    pub daddr: u32,
    /// `oldstate` / `newstate` (`int`) of `sock:inet_sock_set_state`.
    pub old_state: u32,
    pub new_state: u32,
}

impl TpFields {
    pub const NONE: Self = Self {
        sk: u32::MAX,
        req: u32::MAX,
        skb: u32::MAX,
        value: u32::MAX,
        value8: u32::MAX,
        value16: u32::MAX,
        saddr: u32::MAX,
        daddr: u32::MAX,
        old_state: u32::MAX,
        new_state: u32::MAX,
    };
}

impl Default for TpFields {
    fn default() -> Self {
        Self::NONE
    }
}

/// The tracepoints of this object, as indices into `TcpConfig::tps` and as
/// `TcpEvent::kind`.
pub mod tp {
    pub const RETRANSMIT: u8 = 0;
    pub const RETRANSMIT_SYNACK: u8 = 1;
    pub const SEND_RESET: u8 = 2;
    pub const RECEIVE_RESET: u8 = 3;
    pub const BAD_CSUM: u8 = 4;
    pub const CONG_STATE: u8 = 5;
    pub const PROBE: u8 = 6;
    pub const SEND_LENGTH: u8 = 7;
    pub const DESTROY_SOCK: u8 = 8;
    /// `--sock` only.
    pub const SET_STATE: u8 = 9;
    pub const RCV_SPACE: u8 = 10;
    pub const COUNT: usize = 11;
}

/// Everything the TCP programs need, one read-only global.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpConfig {
    /// Local end = source, remote end = destination.
    pub filter: Filter,
    pub sock: SockLayout,
    pub tps: [TpFields; tp::COUNT],
    /// `enum tcp_ca_state` values of TCP_CA_Recovery and TCP_CA_Loss (BTF):
    /// the congestion-state changes `--tcp-monitor` reports.
    pub ca_recovery: u32,
    pub ca_loss: u32,
    /// `AF_INET` / `AF_INET6` as the kernel numbers them (uapi).
    pub af_inet: u16,
    pub af_inet6: u16,
    /// `sk_buff.dev`, `net_device.nd_net.net`: the namespace of socketless
    /// events (bad checksum, resets without a socket).
    pub skb_dev: u32,
    pub dev_net: u32,
    /// `--rate-limit`: events per second, 0 = unlimited.
    pub rate_limit: u32,
    pub rtt: RttConfig,
    pub sock_mode: SockModeConfig,
    pub rt: RtConfig,
}

/// `--rtt`, `--rtt-detail`, `--filter-srtt`, `--filter-minrtt` (also
/// with `--sock`, for its `tcp_ack_update_rtt` hook).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RttConfig {
    /// Only sockets whose smoothed / minimum RTT is at least this (µs).
    pub min_srtt_us: u32,
    pub min_rtt_min_us: u32,
    /// Non-zero: one event per sample (`--rtt-detail`).
    pub detail: u32,
    /// Argument positions in `tcp_ack_update_rtt` (BTF): the socket and
    /// `seq_rtt_us`, the sample itself.
    pub sk_arg: u32,
    pub rtt_arg: u32,
    pub _pad: u32,
}

/// Buckets of the in-kernel RTT histogram: log2 of milliseconds.
pub const RTT_BUCKETS: u32 = 32;

impl Default for TcpConfig {
    fn default() -> Self {
        Self {
            filter: Filter::default(),
            sock: SockLayout::default(),
            tps: [TpFields::NONE; tp::COUNT],
            ca_recovery: u32::MAX,
            ca_loss: u32::MAX,
            af_inet: 2,
            af_inet6: 10,
            skb_dev: u32::MAX,
            dev_net: u32::MAX,
            rate_limit: 0,
            rtt: RttConfig::default(),
            sock_mode: SockModeConfig::default(),
            rt: RtConfig::default(),
        }
    }
}

/// The connection an event is about. Addresses as on the wire; IPv4 in
/// the first 4 bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tuple {
    pub saddr: [u8; 16],
    pub daddr: [u8; 16],
    /// Host order.
    pub sport: u16,
    pub dport: u16,
    /// `filter::family::V4` / `V6`, 0 when unknown.
    pub family: u8,
    pub _pad: [u8; 3],
}

/// One `--tcp-monitor` anomaly.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TcpEvent {
    pub header: RecordHeader,
    /// One of [`tp`].
    pub kind: u8,
    /// `sk_state` (`TCP_*`, names from BTF), 0 when there is no socket.
    pub state: u8,
    pub _pad: [u8; 2],
    pub ts_ns: u64,
    pub sk: u64,
    pub tuple: Tuple,
    /// Reset reason (`enum sk_rst_reason`) or new congestion state
    /// (`enum tcp_ca_state`), depending on `kind`.
    pub value: u32,
    pub netns: u32,
    /// Smoothed RTT in µs and congestion window, 0 when unknown.
    pub srtt_us: u32,
    pub cwnd: u32,
    pub total_retrans: u32,
    /// tgid of the task running when the event fired, 0 for none (idle).
    pub pid: u32,
    pub comm: [u8; COMM_LEN],
}

/// One RTT sample (`--rtt-detail`).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RttEvent {
    pub header: RecordHeader,
    pub netns: u32,
    pub ts_ns: u64,
    pub tuple: Tuple,
    /// The sample (from `tcp_ack_update_rtt`), or the smoothed RTT where
    /// only `tcp:tcp_probe` can be used.
    pub rtt_us: u32,
    pub rtt_min_us: u32,
    pub srtt_us: u32,
    /// Non-zero: `rtt_us` is a true sample, not the smoothed RTT.
    pub sampled: u32,
}

/// The kernel functions `--sock` hooks where functions can be hooked
/// (fentry, else kprobe), as indices into `SockModeConfig::fn_arg` and as
/// `SockEvent::hook` of function events.
pub mod sock_fn {
    pub const INET_LISTEN: u8 = 0;
    pub const RCV_STATE_PROCESS: u8 = 1;
    pub const TRANSMIT_SKB: u8 = 2;
    pub const ACK: u8 = 3;
    pub const WRITE_TIMER: u8 = 4;
    pub const ACK_UPDATE_RTT: u8 = 5;
    pub const CLOSE: u8 = 6;
    pub const COUNT: usize = 7;
}

/// `--sock`: where the socket facts of a line live (BTF offsets from a
/// `struct sock *`, which is also the start of `inet_connection_sock` and
/// `tcp_sock`), and where each hooked function keeps its socket.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockModeConfig {
    /// `inet_connection_sock.icsk_ca_state`, a 5-bit bitfield: a `u16` is
    /// read at `ca_state_byte`, shifted right by `ca_state_shift` and
    /// masked with `ca_state_mask` (bit numbering of a little-endian
    /// target, as BTF gives it there).
    pub ca_state_byte: u32,
    pub ca_state_shift: u32,
    pub ca_state_mask: u32,
    /// `inet_connection_sock.icsk_pending` (`__u8`): the pending
    /// retransmit-timer kind (`ICSK_TIME_*`), 0 for none.
    pub pending: u32,
    /// The jiffies at which that timer fires: `icsk_timeout` on older
    /// kernels, `icsk_retransmit_timer.expires` where that was removed.
    pub timeout: u32,
    /// `tcp_sock.packets_out` / `retrans_out` (`u32`).
    pub packets_out: u32,
    pub retrans_out: u32,
    /// `sock.sk_wmem_queued` (`int`) and `sock.sk_backlog.rmem_alloc`
    /// (`atomic_t`, what the kernel calls `sk_rmem_alloc`).
    pub wmem_queued: u32,
    pub rmem_alloc: u32,
    /// `TCP_TIME_WAIT` and `TCP_NEW_SYN_RECV` as this kernel numbers them
    /// (tracefs): sockets in these states are not full `tcp_sock`s, so only
    /// their `sock_common` is read.
    pub state_time_wait: u32,
    pub state_new_syn_recv: u32,
    /// `socket.sk`: `inet_listen` receives a `struct socket *`.
    pub socket_sk: u32,
    /// Per [`sock_fn`]: the position of the function's socket argument
    /// (BTF), `u32::MAX` when the function cannot be used.
    pub fn_arg: [u32; sock_fn::COUNT],
    /// Per [`sock_fn`]: non-zero when that argument is a `struct socket *`
    /// whose `sk` member is the socket.
    pub fn_deref: [u32; sock_fn::COUNT],
    /// `inet_sock.inet_sport` (`__be16`): a full socket's local port,
    /// which outlives `skc_num` (cleared when the port is released, before
    /// `tcp_destroy_sock` and the last state changes).
    pub inet_sport: u32,
}

impl Default for SockModeConfig {
    fn default() -> Self {
        Self {
            ca_state_byte: u32::MAX,
            ca_state_shift: 0,
            ca_state_mask: 0,
            pending: u32::MAX,
            timeout: u32::MAX,
            packets_out: u32::MAX,
            retrans_out: u32::MAX,
            wmem_queued: u32::MAX,
            rmem_alloc: u32::MAX,
            state_time_wait: u32::MAX,
            state_new_syn_recv: u32::MAX,
            socket_sk: u32::MAX,
            fn_arg: [u32::MAX; sock_fn::COUNT],
            fn_deref: [0; sock_fn::COUNT],
            inet_sport: u32::MAX,
        }
    }
}

/// Where a `--sock` event came from.
pub mod sock_source {
    /// A tracepoint: `SockEvent::hook` is one of [`super::tp`].
    pub const TRACEPOINT: u8 = 0;
    /// A kernel function: `SockEvent::hook` is one of [`super::sock_fn`].
    pub const FUNCTION: u8 = 1;
}

/// One `--sock` line: a socket as one hook saw it.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SockEvent {
    pub header: RecordHeader,
    /// tgid of the task running when the event fired, 0 for none (idle).
    pub pid: u32,
    pub ts_ns: u64,
    /// The socket (0: a reset sent without one); for a SYN-ACK
    /// retransmit, the request socket.
    pub sk: u64,
    /// Jiffies until the pending timer fires (negative: overdue); only
    /// meaningful when `timer` is non-zero.
    pub timer_left: i64,
    pub tuple: Tuple,
    /// One of [`sock_source`], and the hook within it.
    pub source: u8,
    pub hook: u8,
    /// `sk_state` (`TCP_*`); for `inet_sock_set_state` the new state.
    pub state: u8,
    /// The state left, for `inet_sock_set_state`; [`SockEvent::NO_STATE`]
    /// otherwise.
    pub old_state: u8,
    /// `enum tcp_ca_state`.
    pub ca_state: u8,
    /// `icsk_pending` (`ICSK_TIME_*`), 0 for no pending timer.
    pub timer: u8,
    /// Non-zero: a full TCP socket, whose counters below were read;
    /// request and time-wait sockets have only their addresses and state.
    pub full: u8,
    pub _pad: u8,
    pub netns: u32,
    pub packets_out: u32,
    pub retrans_out: u32,
    pub snd_una: u32,
    pub wmem_queued: u32,
    pub rmem_alloc: u32,
    /// `tcp_ack_update_rtt` only (0 elsewhere), in µs: the sample
    /// (`seq_rtt_us`), and the socket's minimum (`rtt_min`) and smoothed
    /// RTT as the sample arrives (both 0 before the socket's first sample).
    pub rtt_us: u32,
    pub rtt_min_us: u32,
    pub srtt_us: u32,
    pub _pad2: u32,
    pub comm: [u8; COMM_LEN],
}

impl SockEvent {
    /// `old_state` of events that are not a state change.
    pub const NO_STATE: u8 = u8::MAX;
}
