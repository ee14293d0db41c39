//! Function and tracepoint arguments at positions userspace found in BTF.
//!
//! Each argument is one load from the program's context at a constant
//! offset, written in assembly. Plain Rust loads do not survive: LLVM folds
//! the per-index loads of a `match` into one load at a computed offset,
//! which the verifier rejects ("modified ctx ptr"; seen on 6.1), and the
//! alternative, a helper read, costs more than the rest of a hook run that
//! ends at the filter (measured: ~100 ns per read on the test host). A load
//! at a constant offset also keeps what the verifier knows of the argument:
//! in tp_btf, fentry and fexit programs a pointer argument is BTF-typed,
//! so the packet reader may load its fields directly (`read::Direct`).
//! The index comes from the read-only configuration: a constant to the
//! verifier, which keeps one arm of the `match`.

use core::{arch::asm, ffi::c_void};

use aya_ebpf::{
    EbpfContext as _,
    programs::{ProbeContext, RetProbeContext},
};

/// One 8-byte load from `ctx + OFF`.
#[inline(always)]
fn load<const OFF: usize>(ctx: *mut c_void) -> u64 {
    let v: u64;
    // SAFETY: a load from the program's own context at a constant offset;
    // the verifier checks the offset against the context's type.
    unsafe {
        asm!(
            "{v} = *(u64 *)({ctx} + {off})",
            v = out(reg) v,
            ctx = in(reg) ctx,
            off = const OFF,
            options(readonly, nostack, preserves_flags)
        );
    }
    v
}

/// Argument `n` of a BTF-typed context (fentry, fexit, tp_btf: an array of
/// u64); fexit's return value is the slot after the last argument.
#[inline(always)]
pub fn ctx_arg(ctx: *mut c_void, n: u32) -> u64 {
    match n {
        0 => load::<0>(ctx),
        1 => load::<8>(ctx),
        2 => load::<16>(ctx),
        3 => load::<24>(ctx),
        4 => load::<32>(ctx),
        5 => load::<40>(ctx),
        6 => load::<48>(ctx),
        _ => 0,
    }
}

/// Argument `n` of a kprobe: the register the x86-64 calling convention
/// passes it in (`struct pt_regs` is uapi, from aya's bindings).
#[inline(always)]
pub fn kprobe_arg(ctx: &ProbeContext, n: u32) -> u64 {
    use core::mem::offset_of;

    use aya_ebpf::bindings::pt_regs;
    let ctx = ctx.as_ptr();
    match n {
        0 => load::<{ offset_of!(pt_regs, rdi) }>(ctx),
        1 => load::<{ offset_of!(pt_regs, rsi) }>(ctx),
        2 => load::<{ offset_of!(pt_regs, rdx) }>(ctx),
        3 => load::<{ offset_of!(pt_regs, rcx) }>(ctx),
        4 => load::<{ offset_of!(pt_regs, r8) }>(ctx),
        _ => 0,
    }
}

/// The return value of a kretprobe's function (`rax`).
#[allow(
    dead_code,
    reason = "only the TCP object has a kretprobe; every object builds this module"
)]
#[inline(always)]
pub fn kretprobe_ret(ctx: &RetProbeContext) -> u64 {
    use core::mem::offset_of;

    use aya_ebpf::bindings::pt_regs;
    load::<{ offset_of!(pt_regs, rax) }>(ctx.as_ptr())
}
