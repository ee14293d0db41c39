//! `--rt-proto http`: what the first bytes of a task say. HTTP/1.x's
//! request line gives the method, its status line the status; TLS record
//! headers (content type, version 3.x) tell handshake, change cipher spec
//! and alert records, which are no request or response, from application
//! data, which is timed per exchange.
//!
//! The bytes are read where the application passes them, not from the
//! segment: TCP payload sits in page fragments of the `sk_buff` (on
//! loopback and veth as on NICs), which a tracing program cannot map to
//! an address. The `read`/`recvfrom`/`readv`/`recvmsg` and
//! `write`/`sendto`/`writev`/`sendmsg` syscall tracepoints exist on every
//! kernel of the matrix and every backend (of a vector, the first buffer
//! is looked at: nginx writes a response's head as `writev`'s first); the
//! descriptor leads to the socket (`task->files->fdt->fd[fd]->private_data
//! ->sk`, offsets from BTF), and only timed sockets are looked at. The
//! receive side classifies after the segment started the task: a request
//! that turns out to be a handshake flight is taken back (the application
//! reads before it answers, so before the response could start). The send
//! side classifies at the write's entry and applies it when `sendmsg`
//! returns (`rt.rs`'s `on_sent`): TLS control records then are no request
//! or response.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_get_current_task, bpf_probe_read_user},
    macros::{map, tracepoint},
    maps::LruHashMap,
    programs::TracePointContext,
};
use nettrace_common::tcp::{RtState, Tuple, http_method, proto_flag, rt_phase};

use crate::{
    read::field,
    rt::RT_SOCKS,
    rt_tls,
    sock::{config, rec, tuple_matches, tuple_of_sock},
};

/// Bytes looked at: `HTTP/1.1 200` is 12, a TLS record header 5.
const PEEK: usize = 16;

/// A read on a socket `--rt` times (or would) in flight, by `pid_tgid`:
/// the socket, the (first) buffer and its size, until the syscall returns
/// what it read (a thread killed in between leaves its entry: least
/// recently used go).
#[repr(C)]
#[derive(Clone, Copy)]
struct Reading {
    sk: u64,
    buf: u64,
    len: u64,
}

/// How a syscall passes its buffer (the record's second argument).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Buffer {
    /// `read`, `recvfrom`, `write`, `sendto`: the buffer.
    Plain,
    /// `readv`, `writev`: an array of `struct iovec`.
    Vector,
    /// `recvmsg`, `sendmsg`: a `struct user_msghdr` and its `msg_iov`.
    Message,
}

#[map]
static RT_READING: LruHashMap<u64, Reading> = LruHashMap::with_max_entries(4096, 0);

#[tracepoint(category = "syscalls", name = "sys_enter_read")]
pub fn rt_sys_enter_read(ctx: TracePointContext) -> u32 {
    enter_read(&ctx, Buffer::Plain);
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_recvfrom")]
pub fn rt_sys_enter_recvfrom(ctx: TracePointContext) -> u32 {
    enter_read(&ctx, Buffer::Plain);
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_readv")]
pub fn rt_sys_enter_readv(ctx: TracePointContext) -> u32 {
    enter_read(&ctx, Buffer::Vector);
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_recvmsg")]
pub fn rt_sys_enter_recvmsg(ctx: TracePointContext) -> u32 {
    enter_read(&ctx, Buffer::Message);
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_readv")]
pub fn rt_sys_exit_readv(ctx: TracePointContext) -> u32 {
    exit_read(&ctx);
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_recvmsg")]
pub fn rt_sys_exit_recvmsg(ctx: TracePointContext) -> u32 {
    exit_read(&ctx);
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_read")]
pub fn rt_sys_exit_read(ctx: TracePointContext) -> u32 {
    exit_read(&ctx);
    0
}

#[tracepoint(category = "syscalls", name = "sys_exit_recvfrom")]
pub fn rt_sys_exit_recvfrom(ctx: TracePointContext) -> u32 {
    exit_read(&ctx);
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_write")]
pub fn rt_sys_enter_write(ctx: TracePointContext) -> u32 {
    enter_write(&ctx, Buffer::Plain);
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_sendto")]
pub fn rt_sys_enter_sendto(ctx: TracePointContext) -> u32 {
    enter_write(&ctx, Buffer::Plain);
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_writev")]
pub fn rt_sys_enter_writev(ctx: TracePointContext) -> u32 {
    enter_write(&ctx, Buffer::Vector);
    0
}

#[tracepoint(category = "syscalls", name = "sys_enter_sendmsg")]
pub fn rt_sys_enter_sendmsg(ctx: TracePointContext) -> u32 {
    enter_write(&ctx, Buffer::Message);
    0
}

/// The buffer a syscall record names and its size (`u64::MAX`: as much
/// as the call moves); for a vector its first element's.
#[inline(always)]
fn buffer(ctx: &TracePointContext, how: Buffer) -> Option<(u64, u64)> {
    let r = &config().rt;
    let arg = rec::<u64>(ctx, r.sys_buf)?;
    let user = |at: u64| unsafe { bpf_probe_read_user(at as *const u64) }.ok();
    let iov = match how {
        Buffer::Plain => return Some((arg, rec::<u64>(ctx, r.sys_len).unwrap_or(u64::MAX))),
        Buffer::Vector => arg,
        Buffer::Message => user(arg + r.msg_iov as u64)?,
    };
    Some((user(iov + r.iov_base as u64)?, user(iov + r.iov_len as u64)?))
}

/// The socket behind the record's descriptor if `--rt` times it or would
/// (its tuple passes the filters), else 0. A server blocks in `read`
/// before the first request byte makes its socket timed, a client writes
/// before its first send does.
#[inline(always)]
fn wanted_sock(ctx: &TracePointContext) -> u64 {
    let sk = sock_of_fd(ctx);
    if sk == 0 || unsafe { RT_SOCKS.get(&sk) }.is_some() {
        return sk;
    }
    // Any other file's private data reads as no socket of the filters'
    // ports (`--rt` needs one).
    let cfg = config();
    let mut t = Tuple::default();
    tuple_of_sock(cfg, sk, &mut t);
    if tuple_matches(cfg, &t) { sk } else { 0 }
}

/// What the record's descriptor's `file->private_data->sk` holds: the
/// socket if the file is one.
#[inline(always)]
fn sock_of_fd(ctx: &TracePointContext) -> u64 {
    let r = &config().rt;
    let Some(fd) = rec::<u64>(ctx, r.sys_fd) else {
        return 0;
    };
    let task = unsafe { bpf_get_current_task() };
    let fdt = field::<u64>(task, r.task_files).and_then(|files| field::<u64>(files, r.files_fdt));
    let Some(fdt) = fdt else {
        return 0;
    };
    let max = field::<u32>(fdt, r.fdt_max_fds).unwrap_or(0) as u64;
    if fd >= max {
        return 0;
    }
    field::<u64>(fdt, r.fdt_fd)
        .and_then(|fds| field::<u64>(fds + fd * 8, 0))
        .and_then(|file| field::<u64>(file, r.file_private))
        .and_then(|sock| field::<u64>(sock, r.socket_sk))
        .unwrap_or(0)
}

#[inline(always)]
fn enter_read(ctx: &TracePointContext, how: Buffer) {
    let sk = wanted_sock(ctx);
    if sk == 0 {
        return;
    }
    let Some((buf, len)) = buffer(ctx, how) else {
        return;
    };
    let id = bpf_get_current_pid_tgid();
    let _ = RT_READING.insert(&id, &Reading { sk, buf, len }, 0);
}

#[inline(always)]
fn exit_read(ctx: &TracePointContext) {
    let id = bpf_get_current_pid_tgid();
    let Some(r) = (unsafe { RT_READING.get(&id) }).copied() else {
        return;
    };
    let _ = RT_READING.remove(&id);
    // What the (first) buffer holds.
    let got = rec::<i64>(ctx, config().rt.sys_ret)
        .unwrap_or(0)
        .min(r.len.min(i64::MAX as u64) as i64);
    let (Some(bytes), Some(state)) = (peek(r.buf, got), RT_SOCKS.get_ptr_mut(&r.sk)) else {
        return;
    };
    // SAFETY: as in `rt.rs`'s `on_segment`.
    let s = unsafe { &mut *state };
    let client = config().rt.client != 0;
    // The received side's first bytes of a task: a server's request, a
    // client's response.
    let phase = if client {
        rt_phase::RESPONSE
    } else {
        rt_phase::REQUEST
    };
    if s.phase != phase {
        return;
    }
    if !client && rt_tls::pending(s) {
        rt_tls::follow(s, r.buf, got);
        return;
    }
    if s.proto & proto_flag::READ_SEEN != 0 {
        return;
    }
    s.proto |= proto_flag::READ_SEEN;
    match tls_type(&bytes) {
        Some(0x17) => s.proto |= proto_flag::TLS,
        // A handshake flight, change cipher spec or alert: a request
        // only if application data follows.
        Some(_) if !client => rt_tls::start(s, r.buf, got),
        Some(_) => {}
        None if client => s.status = status(&bytes),
        None => s.method = method(&bytes),
    }
}

/// What a write says, kept from its syscall's entry to `sendmsg`'s
/// return (`rt.rs`'s `on_sent`, the same thread) by `pid_tgid`.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Written {
    pub sk: u64,
    /// [`NONE`], [`HTTP`], [`TLS_DATA`] or [`TLS_CONTROL`].
    pub kind: u8,
    /// A client's method code, a server's status.
    pub code: u16,
    /// [`TLS_DATA`]: the bytes of control records before it in the write.
    pub control: u32,
}

pub const NONE: u8 = 0;
pub const HTTP: u8 = 1;
pub const TLS_DATA: u8 = 2;
/// Handshake, change cipher spec or alert records: no request or response.
pub const TLS_CONTROL: u8 = 3;

/// Least recently used entries go: a write that never reaches
/// `tcp_sendmsg` (an error) leaves its entry behind.
#[map]
static RT_WRITING: LruHashMap<u64, Written> = LruHashMap::with_max_entries(4096, 0);

#[inline(always)]
fn enter_write(ctx: &TracePointContext, how: Buffer) {
    let client = config().rt.client != 0;
    let sk = wanted_sock(ctx);
    if sk == 0 {
        return;
    }
    let Some((buf, len)) = buffer(ctx, how) else {
        return;
    };
    let Some(bytes) = peek(buf, len.min(PEEK as u64) as i64) else {
        return;
    };
    let (kind, code, control) = match tls_type(&bytes) {
        Some(0x17) => (TLS_DATA, 0, 0),
        // Control records, and application data after them in the same
        // write (TLS 1.3's Finished and a first request)?
        Some(_) => match rt_tls::data_after_control(buf, len) {
            Some(at) => (TLS_DATA, 0, at),
            None => (TLS_CONTROL, 0, 0),
        },
        None if client => (HTTP, method(&bytes) as u16, 0),
        None => (HTTP, status(&bytes), 0),
    };
    if code == 0 && kind == HTTP {
        return;
    }
    let id = bpf_get_current_pid_tgid();
    let w = Written {
        sk,
        kind,
        code,
        control,
    };
    let _ = RT_WRITING.insert(&id, &w, 0);
}

/// What this thread's write to `sk` said (`kind` [`NONE`] if nothing).
#[inline(always)]
pub fn take_written(sk: u64) -> Written {
    let none = Written {
        sk,
        kind: NONE,
        code: 0,
        control: 0,
    };
    if config().rt.proto == 0 {
        return none;
    }
    let id = bpf_get_current_pid_tgid();
    let Some(w) = (unsafe { RT_WRITING.get(&id) }).copied() else {
        return none;
    };
    let _ = RT_WRITING.remove(&id);
    if w.sk == sk { w } else { none }
}

/// After `on_sent` counted the bytes: a client's request line names the
/// task's method, a server's status line the status of the response.
#[inline(always)]
pub fn apply_written(s: &mut RtState, w: &Written) {
    let client = config().rt.client != 0;
    if w.kind == TLS_DATA {
        s.proto |= proto_flag::TLS;
        // The control records sent with it are no request or response.
        let control = u64::from(w.control);
        if client && s.phase == rt_phase::REQUEST {
            s.req_bytes = s.req_bytes.saturating_sub(control);
        } else if !client && s.phase == rt_phase::RESPONSE {
            s.resp_bytes = s.resp_bytes.saturating_sub(control);
        }
        return;
    }
    if client {
        if s.phase == rt_phase::REQUEST && s.method == 0 {
            s.method = w.code as u8;
        }
    } else if s.phase == rt_phase::RESPONSE && s.status == 0 {
        s.status = w.code;
    }
}

/// The first `PEEK` bytes of a user buffer `got` bytes of which are
/// data; the rest zeroed.
#[inline(always)]
fn peek(buf: u64, got: i64) -> Option<[u8; PEEK]> {
    if buf == 0 || got <= 0 {
        return None;
    }
    let mut b: [u8; PEEK] = unsafe { bpf_probe_read_user(buf as *const [u8; PEEK]) }.ok()?;
    let mut i = 0;
    while i < PEEK {
        if i as i64 >= got {
            b[i] = 0;
        }
        i += 1;
    }
    Some(b)
}

/// A TLS record header's content type: change cipher spec (0x14), alert
/// (0x15), handshake (0x16) or application data (0x17), version 3.0–3.4.
#[inline(always)]
fn tls_type(b: &[u8; PEEK]) -> Option<u8> {
    (matches!(b[0], 0x14..=0x17) && b[1] == 3 && b[2] <= 4).then_some(b[0])
}

/// `METHOD ` at the start of a request line.
#[inline(always)]
fn method(b: &[u8; PEEK]) -> u8 {
    let word = |w: &[u8]| {
        let mut i = 0;
        while i < w.len() {
            if b[i] != w[i] {
                return false;
            }
            i += 1;
        }
        b[w.len()] == b' '
    };
    if word(b"GET") {
        http_method::GET
    } else if word(b"POST") {
        http_method::POST
    } else if word(b"PUT") {
        http_method::PUT
    } else if word(b"HEAD") {
        http_method::HEAD
    } else if word(b"DELETE") {
        http_method::DELETE
    } else if word(b"OPTIONS") {
        http_method::OPTIONS
    } else if word(b"PATCH") {
        http_method::PATCH
    } else if word(b"CONNECT") {
        http_method::CONNECT
    } else if word(b"TRACE") {
        http_method::TRACE
    } else {
        0
    }
}

/// `HTTP/1.x NNN` at the start of a status line: NNN, else 0.
#[inline(always)]
fn status(b: &[u8; PEEK]) -> u16 {
    let prefix = b"HTTP/1.";
    let mut i = 0;
    while i < prefix.len() {
        if b[i] != prefix[i] {
            return 0;
        }
        i += 1;
    }
    let d = |c: u8| c.is_ascii_digit().then_some((c - b'0') as u16);
    match (b[8], d(b[9]), d(b[10]), d(b[11]), b[12]) {
        (b' ', Some(x), Some(y), Some(z), b' ' | b'\r' | 0) => x * 100 + y * 10 + z,
        _ => 0,
    }
}
