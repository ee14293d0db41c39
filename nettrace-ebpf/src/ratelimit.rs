//! `--rate-limit N`: at most N events per second leave the kernel, across
//! all CPUs; the rest are counted (`lost::RATE_LIMITED`) and reported.
//!
//! Each second has a window `{second, taken}` (two windows, by the
//! second's parity). An event atomically adds one to `taken` and then reads
//! it back: it may go out only if the value read is at most N. Every add is
//! counted, so the value an event reads is at least its own position in the
//! second: no more than N events ever pass, whatever the CPUs interleave
//! (a race can only turn one away early). BPF's plain atomic add (no fetch)
//! is used because it works on every kernel with BPF, and the Rust BPF
//! toolchain here cannot emit compare-and-swap.
//!
//! The window of the next second is cleared during the current one, so
//! a busy stream never clears a window in use; userspace clears both before
//! attaching.

use core::intrinsics::{AtomicOrdering::Relaxed, atomic_xadd};

use aya_ebpf::{macros::map, maps::Array};
use nettrace_common::trace::{RateWindow, lost};

use crate::maps::count_lost_at;

#[map]
static RATE_WINDOWS: Array<RateWindow> = Array::with_max_entries(2, 0);

/// Whether one more event may go out now (`now_ns`: ktime). `limit` 0 =
/// unlimited.
#[inline(always)]
pub fn allow(limit: u32, now_ns: u64) -> bool {
    if limit == 0 {
        return true;
    }
    let second = now_ns / 1_000_000_000;
    let (Some(w), Some(next)) = (
        RATE_WINDOWS.get_ptr_mut((second & 1) as u32),
        RATE_WINDOWS.get_ptr_mut(((second + 1) & 1) as u32),
    ) else {
        return true;
    };
    // SAFETY: map values live as long as the map; `taken` is only changed
    // by atomic adds and the resets below.
    unsafe {
        if (*w).second != second {
            // Nothing prepared this window (an idle second before).
            (*w).second = second;
            (*w).taken = 0;
        }
        if (*next).second != second + 1 {
            (*next).second = second + 1;
            (*next).taken = 0;
        }
        let _ = atomic_xadd::<u64, u64, { Relaxed }>(&raw mut (*w).taken, 1);
        if core::ptr::read_volatile(&raw const (*w).taken) <= limit as u64 {
            return true;
        }
    }
    count_lost_at(lost::RATE_LIMITED);
    false
}
