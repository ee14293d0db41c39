//! Function and tracepoint arguments at positions userspace found in BTF.

use core::ffi::c_void;

use aya_ebpf::{EbpfContext as _, helpers::bpf_probe_read_kernel, programs::ProbeContext};

/// Argument `n` of a BTF-typed context (fentry, fexit, tp_btf: an array of
/// u64). Read through a helper at a constant offset from the context:
/// a plain `ctx[n]` lets LLVM fold the per-index loads into one load at a
/// computed offset, which the verifier rejects ("modified ctx ptr"; seen on
/// 6.1 for every hook whose skb is not the first argument). `n` comes from
/// the read-only config, so the verifier sees the offset as a constant.
/// The first argument (where most hooks have their skb) is a plain load
/// at offset 0, which cannot be folded with anything: no helper call on the
/// common path.
#[inline(always)]
pub fn ctx_arg(ctx: *mut c_void, n: u32) -> u64 {
    match n {
        // SAFETY: a BTF context always has its first argument at offset 0.
        0 => unsafe { *(ctx as *const u64) },
        // SAFETY: probe read of our own context's argument slot.
        1..=5 => unsafe { bpf_probe_read_kernel((ctx as usize + n as usize * 8) as *const u64) }.unwrap_or(0),
        _ => 0,
    }
}

/// Offset in `struct pt_regs` of the register carrying argument `n` (the
/// x86-64 calling convention; `pt_regs` is uapi, from aya's bindings).
#[inline(always)]
fn arg_register_offset(n: u32) -> Option<usize> {
    use core::mem::offset_of;

    use aya_ebpf::bindings::pt_regs;
    Some(match n {
        0 => offset_of!(pt_regs, rdi),
        1 => offset_of!(pt_regs, rsi),
        2 => offset_of!(pt_regs, rdx),
        3 => offset_of!(pt_regs, rcx),
        4 => offset_of!(pt_regs, r8),
        _ => return None,
    })
}

/// Argument `n` of a kprobe. Read through a helper: LLVM folds the
/// per-register loads into one load at a computed offset, and the verifier
/// rejects direct context reads at a modified offset (seen on 6.1).
#[inline(always)]
pub fn kprobe_arg(ctx: &ProbeContext, n: u32) -> u64 {
    arg_register_offset(n)
        .and_then(|off| {
            // SAFETY: probe read from our own pt_regs.
            unsafe { bpf_probe_read_kernel((ctx.as_ptr() as usize + off) as *const u64) }.ok()
        })
        .unwrap_or(0)
}
