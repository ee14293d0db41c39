//! `--rt-proto http`'s hooks (see `nettrace-ebpf/src/rt_proto.rs`): the
//! `read`/`recvfrom`/`readv`/`recvmsg` and `write`/`sendto`/`writev`/
//! `sendmsg` syscall tracepoints, whose records give the descriptor and
//! the buffer (or the vector, or the message header, that leads to it),
//! and the chain from a descriptor to its socket, from BTF. The same on every backend and
//! kernel: the payload of a segment is in page fragments a tracing
//! program cannot read, the application's buffer is plain user memory.

use std::path::Path;

use aya::Ebpf;
use nettrace_common::{KernelLayout, tcp::RtConfig};

use crate::{
    attach::{self, Backend, Means, Target},
    kernel::{btf::KernelBtf, tracefs},
};

/// Each syscall tracepoint and its program; all enter records keep the
/// descriptor and buffer (vector, message) at the same place (checked).
const ENTER: [(&str, &str); 8] = [
    ("sys_enter_read", "rt_sys_enter_read"),
    ("sys_enter_recvfrom", "rt_sys_enter_recvfrom"),
    ("sys_enter_readv", "rt_sys_enter_readv"),
    ("sys_enter_recvmsg", "rt_sys_enter_recvmsg"),
    ("sys_enter_write", "rt_sys_enter_write"),
    ("sys_enter_sendto", "rt_sys_enter_sendto"),
    ("sys_enter_writev", "rt_sys_enter_writev"),
    ("sys_enter_sendmsg", "rt_sys_enter_sendmsg"),
];
const EXIT: [(&str, &str); 4] = [
    ("sys_exit_read", "rt_sys_exit_read"),
    ("sys_exit_recvfrom", "rt_sys_exit_recvfrom"),
    ("sys_exit_readv", "rt_sys_exit_readv"),
    ("sys_exit_recvmsg", "rt_sys_exit_recvmsg"),
];

/// Fills `rt`'s record and BTF offsets; an error says what this kernel
/// lacks.
pub fn configure(btf: &KernelBtf, root: &Path, rt: &mut RtConfig) -> Result<(), String> {
    let enter = ENTER.map(|(name, _)| name);
    rt.sys_fd = common_field(root, &enter, &["fd"])?;
    rt.sys_buf = common_field(root, &enter, &["buf", "ubuf", "buff", "vec", "msg"])?;
    // How much a plain buffer holds (a vector's first buffer says its own).
    let plain = [
        "sys_enter_read",
        "sys_enter_recvfrom",
        "sys_enter_write",
        "sys_enter_sendto",
    ];
    rt.sys_len = common_field(root, &plain, &["count", "size", "len"])?;
    rt.sys_ret = common_field(root, &EXIT.map(|(name, _)| name), &["ret"])?;
    let off = |ty: &str, path: &[&str]| btf.member_offset(ty, path).map_err(|e| format!("BTF: {e}"));
    rt.task_files = off("task_struct", &["files"])?;
    rt.files_fdt = off("files_struct", &["fdt"])?;
    rt.fdt_max_fds = off("fdtable", &["max_fds"])?;
    rt.fdt_fd = off("fdtable", &["fd"])?;
    rt.file_private = off("file", &["private_data"])?;
    rt.socket_sk = off("socket", &["sk"])?;
    rt.msg_iov = off("user_msghdr", &["msg_iov"])?;
    rt.iov_base = off("iovec", &["iov_base"])?;
    rt.iov_len = off("iovec", &["iov_len"])?;
    rt.proto = nettrace_common::tcp::rt_proto::HTTP;
    Ok(())
}

/// Where the records of all `syscalls` keep the first of `fields` (an
/// argument or the return value: 8 bytes); the programs read them all at
/// one offset, so they must agree.
fn common_field(root: &Path, syscalls: &[&str], fields: &[&str]) -> Result<u32, String> {
    let mut at = None;
    for name in syscalls {
        let f = tracefs::format(root, "syscalls", name).map_err(|e| {
            format!("no tracepoint syscalls:{name} ({e}): the kernel lacks CONFIG_FTRACE_SYSCALLS")
        })?;
        let here = fields
            .iter()
            .find_map(|n| f.get(*n))
            .filter(|f| f.size == 8)
            .map(|f| f.offset)
            .ok_or_else(|| format!("syscalls:{name}: no 8-byte {} field", fields.join("/")))?;
        if at.is_some_and(|seen| seen != here) {
            return Err(format!(
                "syscalls:{name}: its {} is not where the others have it",
                fields[0]
            ));
        }
        at = Some(here);
    }
    Ok(at.unwrap_or(KernelLayout::NONE))
}

/// Attaches the twelve syscall tracepoints.
pub fn attach(ebpf: &mut Ebpf, means: Means<'_>) -> Result<(), String> {
    for (name, program) in ENTER.iter().chain(&EXIT) {
        let target = Target::tracepoint(Backend::Tracepoint, program, "syscalls", name);
        attach::attach(ebpf, means.btf, &target).map_err(|e| format!("syscalls:{name}: {e}"))?;
    }
    Ok(())
}
