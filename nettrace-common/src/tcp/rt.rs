//! `--rt`'s shared types: where its function hooks keep their arguments,
//! its two records (a task, a connection's end), and the per-socket state
//! the eBPF side keeps between events. Apart from the other socket modes'
//! types because `--rt` alone has this many.

use super::Tuple;
use crate::record::RecordHeader;

/// `--rt` where its tracepoints cannot serve (kernels before 6.3 have no
/// `sock:sock_send_length`, and their `tcp:tcp_probe` record carries no
/// socket): where the kernel functions hooked instead keep their
/// arguments (BTF), `u32::MAX` when unused.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtConfig {
    /// `tcp_rcv_established(struct sock *sk, struct sk_buff *skb)`: where
    /// `tcp:tcp_probe` fires, at its entry.
    pub rcv_sk_arg: u32,
    pub rcv_skb_arg: u32,
    /// `tcp_sendmsg_locked(struct sock *sk, struct msghdr *msg, size_t size)`: the
    /// socket, and the slot of its return value in an fexit context (the
    /// slot after the last argument).
    pub send_sk_arg: u32,
    pub send_ret_slot: u32,
    /// `sk_buff.len`: with the TCP header's length, the segment's payload.
    pub skb_len: u32,
    /// Non-zero: time client sockets (`--rt --client`): a task starts when
    /// the socket sends, its response is what comes back.
    pub client: u32,
    /// `TCP_ESTABLISHED` and `TCP_SYN_RECV` as this kernel numbers them
    /// (tracefs): a server socket established from `SYN_RECV` starts
    /// being timed then (see `rt_set_state` in nettrace-ebpf).
    pub state_established: u32,
    pub state_syn_recv: u32,
    /// `tcp_sock.bytes_received` (BTF): payload received before timing
    /// started (a TCP Fast Open request, in the SYN).
    pub bytes_received: u32,
    /// `tcp_sock.mss_cache` (BTF): the sending MSS, for tcprt's records.
    pub mss_cache: u32,
    /// Non-zero: `--rt-proto http` (see [`rt_proto`]).
    pub proto: u32,
    /// `--rt-proto http`: where the `syscalls:sys_enter_{read,recvfrom,
    /// write,sendto}` records keep the descriptor and the buffer, and
    /// `sys_exit_*` the return value (tracefs).
    pub sys_fd: u32,
    pub sys_buf: u32,
    pub sys_ret: u32,
    /// The byte count of `write`/`sendto` (their third argument).
    pub sys_len: u32,
    /// The descriptor to socket chain, from BTF: `task_struct.files`,
    /// `files_struct.fdt`, `fdtable.max_fds`, `fdtable.fd`,
    /// `file.private_data` (a `struct socket *`), `socket.sk`.
    pub task_files: u32,
    pub files_fdt: u32,
    pub fdt_max_fds: u32,
    pub fdt_fd: u32,
    pub file_private: u32,
    pub socket_sk: u32,
    /// `--rt-proto http`'s vectors (BTF): `user_msghdr.msg_iov`,
    /// `iovec.iov_base` and `iovec.iov_len`.
    pub msg_iov: u32,
    pub iov_base: u32,
    pub iov_len: u32,
}

impl Default for RtConfig {
    fn default() -> Self {
        Self {
            rcv_sk_arg: u32::MAX,
            rcv_skb_arg: u32::MAX,
            send_sk_arg: u32::MAX,
            send_ret_slot: u32::MAX,
            skb_len: u32::MAX,
            client: 0,
            state_established: u32::MAX,
            state_syn_recv: u32::MAX,
            bytes_received: u32::MAX,
            mss_cache: u32::MAX,
            proto: 0,
            sys_fd: u32::MAX,
            sys_buf: u32::MAX,
            sys_ret: u32::MAX,
            sys_len: u32::MAX,
            task_files: u32::MAX,
            files_fdt: u32::MAX,
            fdt_max_fds: u32::MAX,
            fdt_fd: u32::MAX,
            file_private: u32::MAX,
            socket_sk: u32::MAX,
            msg_iov: u32::MAX,
            iov_base: u32::MAX,
            iov_len: u32::MAX,
        }
    }
}

/// One `--rt` task on a server socket: request received, processed,
/// response sent and acknowledged. Times in ns.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtEvent {
    pub header: RecordHeader,
    pub netns: u32,
    /// When the request's first byte arrived.
    pub ts_ns: u64,
    pub sk: u64,
    /// First → last request byte received.
    pub upload_ns: u64,
    /// Last request byte received → first response byte sent.
    pub process_ns: u64,
    /// First response byte sent → last response byte acknowledged;
    /// `u64::MAX` when the response was not acknowledged before the task
    /// ended (connection closed).
    pub download_ns: u64,
    pub req_bytes: u64,
    pub resp_bytes: u64,
    pub tuple: Tuple,
    pub srtt_us: u32,
    /// Segments retransmitted during the task.
    pub retrans: u32,
    /// The task's number on its connection, from 1.
    pub task: u32,
    /// `tcp_sock.rtt_min` when the task ended, µs (0: no sample yet).
    pub rtt_min_us: u32,
    /// [`rt_flag`]s.
    pub flags: u16,
    /// The sending MSS when the task ended (`tcp_sock.mss_cache`; 0:
    /// unknown).
    pub mss: u16,
    /// `--rt-proto http`: the request's method ([`http_method`], 0 =
    /// unknown), [`proto_flag`]s, the response's status (0 = unknown).
    pub method: u8,
    pub proto: u8,
    pub status: u16,
}

/// `RtConfig::proto`.
pub mod rt_proto {
    pub const HTTP: u32 = 1;
}

/// `RtEvent::method`: HTTP/1.x request methods, by the request line's
/// first word.
pub mod http_method {
    pub const GET: u8 = 1;
    pub const POST: u8 = 2;
    pub const PUT: u8 = 3;
    pub const HEAD: u8 = 4;
    pub const DELETE: u8 = 5;
    pub const OPTIONS: u8 = 6;
    pub const PATCH: u8 = 7;
    pub const CONNECT: u8 = 8;
    pub const TRACE: u8 = 9;
    /// The names, by code (index 0: unknown).
    pub const NAMES: [&str; 10] = [
        "", "GET", "POST", "PUT", "HEAD", "DELETE", "OPTIONS", "PATCH", "CONNECT", "TRACE",
    ];
}

/// `RtEvent::proto` and `RtState::proto`.
pub mod proto_flag {
    /// The connection carries TLS records (application data seen).
    pub const TLS: u8 = 1;
    /// State only: the task's first bytes were read by the application
    /// (classified once per task).
    pub const READ_SEEN: u8 = 2;
    /// State only: the task began with TLS control records (handshake,
    /// change cipher spec, alert); the records read are followed until an
    /// application-data record (the task is a request) or this side
    /// answers (it was none).
    pub const TLS_PENDING: u8 = 4;
    /// State only: the last record header followed was a change cipher
    /// spec: an application-data record next is TLS 1.3's encrypted
    /// Finished, still the handshake.
    pub const TLS_AFTER_CCS: u8 = 8;
    /// State only: that Finished was seen.
    pub const TLS_FINISHED: u8 = 16;
}

/// `RtEvent::flags`.
pub mod rt_flag {
    /// A client socket's task: upload is the request being sent, process
    /// the wait for the first response byte, download the response
    /// arriving (first → last byte received).
    pub const CLIENT: u16 = 1;
    /// Requests did not wait for responses (pipelining), seen one of two
    /// ways: the next request arrived before the client had acknowledged
    /// all of this task's response, or when the response began the server
    /// had received bytes it had not read yet (the next request, counted
    /// in this task's). The task may hold several requests.
    pub const PIPELINED: u16 = 2;
    /// The request's arrival was not seen: the kernel skipped the program
    /// (with kprobes, a BPF program does not run while another one runs on
    /// the same CPU, e.g. when a softirq delivering the segment interrupts
    /// one). Its bytes were found in sequence space when the response
    /// began; upload and process times are unknown (0).
    pub const UNSEEN: u16 = 4;
}

/// The end of a connection `--rt` timed (tcprt's E, W and N records): what
/// it carried over its life, read when the kernel destroys the socket.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RtCloseEvent {
    pub header: RecordHeader,
    pub netns: u32,
    /// When the socket was destroyed.
    pub ts_ns: u64,
    pub sk: u64,
    /// Payload the application queued (`sendmsg` returns) since timing
    /// started, and how much of it the peer had not acknowledged.
    pub sent_bytes: u64,
    pub unacked_bytes: u64,
    /// Payload received in sequence space since timing started (each byte
    /// once, retransmitted copies not counted again; no SYN or FIN).
    pub received_bytes: u64,
    pub tuple: Tuple,
    /// Tasks started on the connection (the last task's number).
    pub tasks: u32,
    /// `tcp_sock.total_retrans` (the connection's life) and `rtt_min`, µs.
    pub retrans: u32,
    pub rtt_min_us: u32,
    pub srtt_us: u32,
    /// The task phase the connection was in ([`rt_phase`]): `REQUEST` is
    /// a close while receiving a request (tcprt's N), `RESPONSE` with the
    /// response not acknowledged a close while sending (W).
    pub phase: u32,
    /// Non-zero: everything this side sent was acknowledged.
    pub acked: u8,
    /// Non-zero: a client socket (`--rt --client`).
    pub client: u8,
    /// As in [`RtEvent`].
    pub mss: u16,
    /// When the task the connection closed in began (its first request
    /// byte; 0: it closed between tasks).
    pub task_start_ns: u64,
}

/// Per-socket `--rt` state, kept in the kernel between events.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RtState {
    pub req_first_ns: u64,
    pub req_last_ns: u64,
    pub resp_first_ns: u64,
    /// Client side: the last response byte received.
    pub resp_last_ns: u64,
    /// When the handshake completed, for sockets timed from then (0:
    /// timed from their first request byte): the first request's start
    /// when that request completed the handshake itself.
    pub established_ns: u64,
    /// When an ACK first covered everything sent so far; 0 = not yet.
    pub acked_ns: u64,
    pub req_bytes: u64,
    pub resp_bytes: u64,
    /// Over the connection since timing started: `sendmsg` returns.
    pub sent_total: u64,
    /// `write_seq` after this side last queued bytes (the response's end
    /// on a server, the request's on a client).
    pub resp_end_seq: u32,
    pub retrans_start: u32,
    /// One of [`rt_phase`].
    pub phase: u32,
    /// The socket's namespace inode.
    pub netns: u32,
    /// Tasks started so far.
    pub tasks: u32,
    /// [`rt_flag`]s of the current task.
    pub flags: u16,
    /// As in [`RtEvent`].
    pub method: u8,
    pub proto: u8,
    pub status: u16,
    /// `--rt-proto http`, while [`proto_flag::TLS_PENDING`]: bytes of the
    /// current record the application has yet to read, and the control
    /// records' bytes read so far (not the request's).
    pub tls_skip: u32,
    pub tls_control: u32,
    /// `write_seq` when timing started: `snd_una` past it is acknowledged
    /// payload (plus a FIN, which the clamp to `sent_total` drops).
    pub snd_start_seq: u32,
    /// Sequence numbers of the first byte received while timed and just
    /// past the highest byte received.
    pub rcv_start_seq: u32,
    pub rcv_end_seq: u32,
    /// Kept from when timing started: a closing socket has lost its port.
    pub tuple: Tuple,
}

pub mod rt_phase {
    /// No request seen yet (or the last task was reported).
    pub const IDLE: u32 = 0;
    /// Request bytes arriving.
    pub const REQUEST: u32 = 1;
    /// Response bytes sent; waiting for their ACK or the next request.
    pub const RESPONSE: u32 = 2;
}
