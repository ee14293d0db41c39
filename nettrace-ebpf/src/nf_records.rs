//! The netfilter records of the lifecycle programs, each sent just before
//! the hook's `TraceEvent`: `--hooks`'s hook functions of a dropped packet's
//! namespace (`NfHooksEvent`), and the hook point, table and chain a
//! netfilter function is about to run (`NfContextEvent`).
//!
//! Both are built in reserved ring-buffer memory, not on the stack: the
//! lifecycle handler's deepest call chain (entry, handler, `emit_nf_hooks`)
//! is at the 6.1 verifier's 512-byte stack limit. That memory holds what
//! earlier records left there, so `reserve` zeroes it first.

use core::ffi::c_void;

use aya_ebpf::{helpers::bpf_probe_read_kernel_str_bytes, maps::ring_buf::RingBufEntry};
use nettrace_common::{
    KernelLayout, Record, RecordHeader, ethertype,
    trace::{NF_HOOK_POINTS, NF_HOOKS_KEPT, NfContextEvent, NfHooksEvent, NfLayout, lost, slot_flags},
};

use crate::{
    maps::{EVENTS, count_lost_at, wake_flags},
    read::field,
};

/// Reserves a `T` in the ring buffer with every byte zeroed and its header
/// written, or counts it lost. Reserved memory is not cleared by the kernel:
/// it holds whatever earlier records left there, and a field a program
/// forgets or a string shorter than its array would pass that on.
#[inline(always)]
fn reserve<T: Record>() -> Option<RingBufEntry<T>> {
    let Some(mut entry) = EVENTS.reserve::<T>(0) else {
        count_lost_at(lost::RING);
        return None;
    };
    let out = entry.as_mut_ptr();
    // SAFETY: `out` is our reservation, 8-byte aligned and `size_of::<T>()`
    // long; every record starts with its header (asserted in
    // nettrace-common). Stores straight into the ring, no stack.
    unsafe {
        core::ptr::write_bytes(out, 0, 1);
        out.cast::<RecordHeader>().write(T::HEADER);
    }
    Some(entry)
}

/// Reads a `T` at `base + offset` into `dst` (record memory), leaving it as
/// it is when the base is NULL or the read faults.
#[inline(always)]
unsafe fn read_into<T>(dst: *mut T, base: u64, offset: u32) {
    if base != 0 {
        // SAFETY: the helper never faults; `dst` is writable record memory.
        unsafe {
            aya_ebpf::helpers::generated::bpf_probe_read_kernel(
                dst.cast(),
                size_of::<T>() as u32,
                (base + offset as u64) as *const c_void,
            );
        }
    }
}

/// `--hooks`: the netfilter hook functions of the namespace `net` for the
/// packet's family, at every hook point (see `NfHooksEvent`).
#[inline(never)]
pub fn emit_nf_hooks(nf: &NfLayout, net: u64, skb: u64, l3_proto: u16) {
    let (version, table) = match l3_proto {
        ethertype::IPV4 => (4, nf.net_hooks_ipv4),
        ethertype::IPV6 => (6, nf.net_hooks_ipv6),
        _ => return,
    };
    if net == 0 {
        return;
    }
    let Some(mut entry) = reserve::<NfHooksEvent>() else {
        return;
    };
    let out = entry.as_mut_ptr();
    // SAFETY: `out` is our reserved, zeroed record.
    unsafe {
        (*out).skb = skb;
        (*out).ip_version = version;
        // Read straight into the record: one stack slot per unrolled read
        // would put this function over the 6.1 verifier's stack budget for
        // the lifecycle program's call chain.
        for p in 0..NF_HOOK_POINTS {
            let entries: u64 = if (p as u32) < nf.points {
                field(net, table + (p * 8) as u32).unwrap_or(0)
            } else {
                0
            };
            read_into(&raw mut (*out).counts[p], entries, nf.entries_num);
            let count = (*out).counts[p];
            for i in 0..NF_HOOKS_KEPT {
                let at = nf.entries_hooks + i as u32 * nf.entry_size + nf.entry_hook;
                if (i as u16) < count {
                    read_into(&raw mut (*out).funcs[p][i], entries, at);
                }
            }
        }
    }
    entry.submit(wake_flags());
}

/// Reads a NUL-terminated string at `src` into `dest`, which is zeroed:
/// it stays empty on failure and zero after the NUL.
#[inline(always)]
fn read_name(src: u64, dest: &mut [u8; nettrace_common::trace::NF_NAME_LEN]) {
    if src != 0 {
        // SAFETY: the helper bounds the read by `dest` and never faults.
        let _ = unsafe { bpf_probe_read_kernel_str_bytes(src as *const u8, dest) };
    }
}

/// Netfilter context of a hook (see `NfContextEvent`): the hook point and
/// family from the `nf_hook_state`, and the iptables table or nftables
/// table and chain the function is about to run.
#[inline(never)]
pub fn emit_nf_context(nf: &NfLayout, flags: u32, args: &[u64; 2], skb: u64) {
    let Some(mut entry) = reserve::<NfContextEvent>() else {
        return;
    };
    // SAFETY: our reserved, zeroed record: names not read stay empty, and
    // the bytes after a name's NUL stay zero.
    let out = unsafe { &mut *entry.as_mut_ptr() };
    out.skb = skb;
    let state: u64 = if flags & slot_flags::NF_STATE != 0 {
        args[0]
    } else if flags & slot_flags::NF_XT_TABLE != 0 {
        if args[0] != 0 && nf.xt_table_name != KernelLayout::NONE {
            read_name(args[0] + nf.xt_table_name as u64, &mut out.table);
        }
        args[1]
    } else {
        let chain = args[1];
        read_name(field(chain, nf.nft_chain_name).unwrap_or(0), &mut out.chain);
        let table: u64 = field(chain, nf.nft_chain_table).unwrap_or(0);
        read_name(field(table, nf.nft_table_name).unwrap_or(0), &mut out.table);
        field(args[0], nf.nft_pktinfo_state).unwrap_or(0)
    };
    out.hook = field(state, nf.state_hook).unwrap_or(0xff);
    out.pf = field(state, nf.state_pf).unwrap_or(0xff);
    entry.submit(wake_flags());
}
