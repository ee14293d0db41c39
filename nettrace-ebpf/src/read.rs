//! Reading kernel memory at offsets that userspace found in BTF, through
//! the helper that works on any address (`skb::Read` has the cheaper way
//! for BTF-typed pointers).

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

/// The current task's name into `dst`, by the helper directly: aya's
/// `bpf_get_current_comm()` zeroes an array of its own with a byte-by-byte
/// `memset` call and copies it, on every event. The helper itself fills
/// `dst` with zeros when it fails.
#[inline(always)]
pub fn current_comm(dst: &mut [u8; 16]) {
    // SAFETY: `dst` is writable for its 16 bytes.
    unsafe { aya_ebpf::helpers::generated::bpf_get_current_comm(dst.as_mut_ptr().cast(), 16) };
}
