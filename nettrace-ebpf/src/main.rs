//! nettrace's eBPF programs.
//!
//! Thin entry points per hook family live in their own modules (`drop`,
//! `probe`); packet reading and filtering shared by all of them is in `skb`
//! and `filter`; maps in `maps`. Kernel struct offsets are never compiled in:
//! userspace resolves them from BTF and passes them as read-only globals.
#![no_std]
#![no_main]

mod drop;
mod filter;
mod maps;
mod read;
mod skb;
mod slots;
mod trace;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

// GPL-compatible: the drop programs use GPL-only helpers (probe_read_kernel,
// get_stackid, ringbuf).
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
