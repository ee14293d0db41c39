//! Reading kernel memory at offsets that userspace found in BTF.
//!
//! Two ways, for the same offsets. A helper read (`bpf_probe_read_kernel`)
//! works on any address. A plain load is several times cheaper, and the
//! verifier accepts it only through a pointer it knows the BTF type of: the
//! skb argument of tp_btf, fentry and fexit programs. The offset then has to
//! be a constant to it, which it is: offsets come from the read-only
//! configuration. The packet reader is generic over [`Read`] so that those
//! programs take the cheap way and the others (kprobes, classic tracepoints,
//! pointers read out of memory) the one that always works.

use aya_ebpf::helpers::bpf_probe_read_kernel;
use nettrace_common::KernelLayout;

/// Reads a `T` at `base + offset`; `None` when the field does not exist on
/// this kernel (`KernelLayout::NONE`), the base is NULL, or the read faults.
#[inline(always)]
pub fn field<T>(base: u64, offset: u32) -> Option<T> {
    if base == 0 || offset == KernelLayout::NONE {
        return None;
    }
    // SAFETY: bpf_probe_read_kernel never faults; a bad address is an error.
    unsafe { bpf_probe_read_kernel((base + offset as u64) as *const T) }.ok()
}

/// How fields of the skb are read.
pub trait Read {
    fn field<T: Copy>(base: u64, offset: u32) -> Option<T>;

    /// A field every supported kernel has (userspace refuses to start
    /// without it), of a base known not to be NULL: no checks, 0 if the
    /// read fails. The hot path of every hook run reads five of these.
    fn required<T: Copy + Default>(base: u64, offset: u32) -> T;
}

/// Through the helper ([`field`]): any address.
pub struct Probe;

impl Read for Probe {
    #[inline(always)]
    fn field<T: Copy>(base: u64, offset: u32) -> Option<T> {
        field(base, offset)
    }

    #[inline(always)]
    fn required<T: Copy + Default>(base: u64, offset: u32) -> T {
        // SAFETY: as in `field`.
        unsafe { bpf_probe_read_kernel((base + offset as u64) as *const T) }.unwrap_or_default()
    }
}

/// A plain load: only for a `base` the verifier knows as a BTF-typed
/// pointer (the program's own skb argument). Such loads are turned into
/// fault-safe ones by the kernel (`BPF_PROBE_MEM`): a bad pointer reads 0.
pub struct Direct;

impl Read for Direct {
    #[inline(always)]
    fn field<T: Copy>(base: u64, offset: u32) -> Option<T> {
        if base == 0 || offset == KernelLayout::NONE {
            return None;
        }
        // SAFETY: see the type's doc; the verifier checks the access against
        // the struct's BTF.
        Some(unsafe { core::ptr::read_volatile((base + offset as u64) as *const T) })
    }

    #[inline(always)]
    fn required<T: Copy + Default>(base: u64, offset: u32) -> T {
        // SAFETY: see the type's doc; the verifier checks the access against
        // the struct's BTF.
        unsafe { core::ptr::read_volatile((base + offset as u64) as *const T) }
    }
}
