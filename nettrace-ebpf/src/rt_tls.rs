//! `--rt-proto http` on a server's TLS connection: a task that begins with
//! control records (handshake, change cipher spec, alert) is followed
//! record by record as the application reads it (each record header's
//! length says where the next begins, whether the reads take a header and
//! its body apart, as OpenSSL does, or several records at once) until
//! either an application-data record comes (the task is that request:
//! the control bytes before it are taken off) or the server answers with
//! the request not here (the task was none and is taken back).
//!
//! TLS 1.3 encrypts the client's Finished as application data: the record
//! right after a change cipher spec is taken for it. A TLS 1.3 client that
//! sends no change cipher spec has its Finished timed as a task.

use aya_ebpf::helpers::bpf_probe_read_user;
use nettrace_common::tcp::{RtState, proto_flag, rt_phase};

use crate::{read::field, sock::config};

/// Record headers followed in one read.
const RECORDS: usize = 8;

/// The task's first read began with a control record: follow it.
#[inline(always)]
pub fn start(s: &mut RtState, buf: u64, got: i64) {
    s.proto |= proto_flag::TLS_PENDING;
    s.proto &= !(proto_flag::TLS_AFTER_CCS | proto_flag::TLS_FINISHED);
    s.tls_skip = 0;
    s.tls_control = 0;
    follow(s, buf, got);
}

/// Whether the task is still being followed.
#[inline(always)]
pub fn pending(s: &RtState) -> bool {
    s.proto & proto_flag::TLS_PENDING != 0
}

/// `got` more bytes read at `buf`.
#[inline(always)]
pub fn follow(s: &mut RtState, buf: u64, got: i64) {
    if got <= 0 {
        return;
    }
    let got = got as u64;
    let mut at = s.tls_skip as u64;
    for _ in 0..RECORDS {
        if at >= got {
            s.tls_skip = (at - got) as u32;
            s.tls_control = s.tls_control.wrapping_add(got as u32);
            return;
        }
        let h: Option<[u8; 5]> = (at + 5 <= got)
            .then(|| unsafe { bpf_probe_read_user((buf + at) as *const [u8; 5]) }.ok())
            .flatten();
        let Some(h) = h.filter(|h| matches!(h[0], 0x14..=0x17) && h[1] == 3) else {
            // Not TLS framing (or a header split over two reads): stop
            // following; the task stays.
            s.proto &= !proto_flag::TLS_PENDING;
            return;
        };
        let after_ccs = s.proto & proto_flag::TLS_AFTER_CCS != 0;
        let finished = s.proto & proto_flag::TLS_FINISHED != 0;
        if h[0] == 0x17 {
            if !after_ccs || finished {
                // The request: the task is its, without the handshake.
                s.proto &= !proto_flag::TLS_PENDING;
                s.proto |= proto_flag::TLS;
                let control = s.tls_control as u64 + at;
                s.req_bytes = s.req_bytes.saturating_sub(control);
                return;
            }
            s.proto |= proto_flag::TLS_FINISHED;
        }
        if h[0] == 0x14 {
            s.proto |= proto_flag::TLS_AFTER_CCS;
        } else {
            s.proto &= !proto_flag::TLS_AFTER_CCS;
        }
        at += 5 + ((h[3] as u64) << 8 | h[4] as u64);
    }
    s.proto &= !proto_flag::TLS_PENDING;
}

/// Where application data begins in a write of `len` bytes at `buf` that
/// begins with control records (TLS 1.3's change cipher spec, then its
/// Finished, encrypted as application data, then a request), if it does
/// within the first records: as `follow` reads them.
#[inline(always)]
pub fn data_after_control(buf: u64, len: u64) -> Option<u32> {
    let (mut at, mut after_ccs, mut finished) = (0u64, false, false);
    for _ in 0..RECORDS {
        if at + 5 > len {
            return None;
        }
        let h: [u8; 5] = unsafe { bpf_probe_read_user((buf + at) as *const [u8; 5]) }.ok()?;
        if !matches!(h[0], 0x14..=0x17) || h[1] != 3 {
            return None;
        }
        if h[0] == 0x17 {
            if !after_ccs || finished {
                return Some(at as u32);
            }
            finished = true;
        }
        after_ccs = h[0] == 0x14;
        at += 5 + ((h[3] as u64) << 8 | h[4] as u64);
    }
    None
}

/// The server answers (a control record, or TLS 1.3's session tickets)
/// while the task is followed: with nothing received unread, the task was
/// the handshake and is taken back; else the request is already here and
/// the task waits for its read. Either way this send is no response.
#[inline(always)]
pub fn answered(sk: u64, s: &mut RtState) {
    let cfg = config();
    let unread = field::<u32>(sk, cfg.sock.rcv_nxt) != field::<u32>(sk, cfg.sock.copied_seq);
    if !unread {
        take_back(s);
    }
}

/// The connection goes while a task is followed: it was no request.
#[inline(always)]
pub fn closing(s: &mut RtState) {
    if pending(s) {
        take_back(s);
    }
}

#[inline(always)]
fn take_back(s: &mut RtState) {
    if s.phase == rt_phase::REQUEST {
        s.phase = rt_phase::IDLE;
        s.tasks = s.tasks.wrapping_sub(1);
    }
    s.proto &= !proto_flag::TLS_PENDING;
}
