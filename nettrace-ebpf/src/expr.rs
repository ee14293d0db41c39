//! The slot a filter EXPRESSION (`nettrace 'tcp port 443'`) is written into.
//!
//! libpcap compiles the expression to classic BPF in userspace; nettrace
//! translates that to eBPF and, before loading, writes it over this
//! function's placeholder in the object (as pwru does; `nettrace::expr`).
//! The placeholder is exactly [`expr::SLOT_INSNS`] instructions, so
//! userspace can find it by its shape and knows how much room it has: "match"
//! (`r0 = 1`), then `goto +0` no-ops. The translation fills the front and
//! jumps to the first unused no-op to return; the verifier removes
//! no-ops (`opt_remove_nops`, privileged loads) before the program runs, so
//! the unused room costs nothing per run.
//!
//! Called only when an expression was given (a read-only flag, so without
//! one the verifier drops the call), after the cheap flag filters and
//! before anything is emitted or tracked.
//!
//! A link-layer expression (`ether host …`, `arp`, `vlan`: what libpcap
//! compiles only for Ethernet) gets a copy from the packet's Ethernet
//! header instead ([`ethernet_verdict`]); the slot is the same, only its
//! inputs differ, and the translation was made for that buffer's size.
//!
//! [`expr::SLOT_INSNS`]: nettrace_common::expr::SLOT_INSNS

use aya_ebpf::{helpers::generated::bpf_probe_read_kernel, macros::map, maps::PerCpuArray};
use nettrace_common::{
    ETH_HLEN, KernelLayout,
    expr::{self, L2_COPY_LEN, verdict},
};

use crate::skb::ethernet_header;

/// A link-layer expression's buffer: the Ethernet header and what follows
/// (`L2_COPY_LEN` bytes, rounded up to 8). Apart from the event's network
/// header copy, which the decoder reads.
#[map]
static L2_COPY: PerCpuArray<[u8; L2_COPY_LEN.next_multiple_of(8)]> = PerCpuArray::with_max_entries(1, 0);

/// What the slot says about a packet (`nettrace_common::expr::verdict`).
/// `hdr` points at the copied network header (a map value: the verifier
/// checks the translated loads against its bounds), `hdr_len` is how many
/// of its bytes are valid, `l3_len` the packet's length from the network
/// header (libpcap's `len`).
///
/// The slot is an `asm!` block with its inputs pinned to registers (r1
/// `hdr`, r2 `hdr_len`, r3 `l3_len`, r4 a 16-word scratch area on this
/// function's stack for classic BPF's `M[]`) and r0 its result; r5-r9 are
/// the translation's to use. Out of line and never inlined: the one copy
/// in the object is the one userspace rewrites. Not `pub`/`no_mangle`: a
/// static function, verified with its caller's knowledge of the arguments
/// (a global one would be verified alone, with `hdr` an unknown pointer).
#[inline(never)]
fn expr_slot(hdr: *const u8, hdr_len: u32, l3_len: u32) -> u32 {
    let mut scratch = core::mem::MaybeUninit::<[u32; expr::SCRATCH_WORDS]>::uninit();
    let verdict: u64;
    // SAFETY: the placeholder only sets r0; what userspace writes in its
    // place reads `hdr` within `hdr_len` (and the verifier checks it
    // against the map value's bounds), writes only `scratch`, and keeps to
    // the registers declared here.
    unsafe {
        core::arch::asm!(
            "r0 = 1",
            ".rept {padding}",
            "goto +0",
            ".endr",
            padding = const expr::SLOT_INSNS - 1,
            in("r1") hdr,
            in("r2") u64::from(hdr_len),
            in("r3") u64::from(l3_len),
            in("r4") scratch.as_mut_ptr(),
            out("r0") verdict,
            out("r5") _,
            out("r6") _,
            out("r7") _,
            out("r8") _,
            out("r9") _,
        );
    }
    verdict as u32
}

/// The slot's verdict on a packet for a link-layer expression: run on a
/// copy from its Ethernet header (`skb::ethernet_header`). A packet without
/// one (not on an Ethernet device, or still being built above it) does not
/// match. `l3` and `l3_len` are `skb::Meta`'s. Out of line: only a
/// link-layer expression reaches it, and the hot path's frame stays small.
#[inline(never)]
pub fn ethernet_verdict(layout: &KernelLayout, skb: u64, l3: u64, l3_len: u32) -> u32 {
    let mac = ethernet_header(layout, skb, l3);
    if mac == 0 {
        return verdict::NO_MATCH;
    }
    let Some(buf) = L2_COPY.get_ptr_mut(0) else {
        return verdict::NO_MATCH;
    };
    // SAFETY: a probe read of kernel memory into our per-CPU buffer, which
    // holds `L2_COPY_LEN` bytes. As for the network header copy, it may run
    // past the packet's end but stays in the skb's head buffer.
    let read =
        unsafe { bpf_probe_read_kernel(buf.cast(), L2_COPY_LEN as u32, mac as *const core::ffi::c_void) };
    if read != 0 {
        return verdict::NO_MATCH;
    }
    let len = l3_len + ETH_HLEN as u32;
    let valid = if len < L2_COPY_LEN as u32 {
        len
    } else {
        L2_COPY_LEN as u32
    };
    expr_slot(buf.cast::<u8>(), valid, len)
}

/// The slot's verdict on a packet (see [`expr_slot`]).
#[inline(always)]
pub fn verdict(hdr: &[u8], hdr_len: u16, l3_len: u32) -> u32 {
    expr_slot(hdr.as_ptr(), u32::from(hdr_len), l3_len)
}
