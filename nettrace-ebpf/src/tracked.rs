//! The tracking table: packets (skb addresses) that matched the filters
//! once, so later hooks report them even after NAT rewrote their addresses.
//!
//! Most hook runs see a packet that is not ours, and a hash lookup is the
//! dearest thing such a run would do. So the table keeps a count of its
//! entries beside it: while nothing is tracked (a filter that matches
//! nothing, or between flows) the lookup is skipped. The count is exact:
//! an entry is counted only when an insert created it (`BPF_NOEXIST`) and
//! uncounted only when a delete removed it, with BPF's plain atomic add
//! (no fetch; every kernel has it).

use core::intrinsics::{AtomicOrdering::Relaxed, atomic_xadd};

use aya_ebpf::{
    macros::map,
    maps::{Array, HashMap},
};
use nettrace_common::trace::{MAX_TRACKED, Tracked, lost};

use crate::maps::count_lost_at;

/// skb address → first-seen (and, for `--latency`, last-seen) time.
#[map]
static TRACKED: HashMap<u64, Tracked> = HashMap::with_max_entries(MAX_TRACKED, 0);

/// Entries in `TRACKED` (one u64).
#[map]
static TRACKED_COUNT: Array<u64> = Array::with_max_entries(1, 0);

/// `BPF_NOEXIST` / `BPF_EXIST`: create only / replace only.
const NOEXIST: u64 = 1;
const EXIST: u64 = 2;
/// `-EEXIST`, what an insert of a present key returns with `NOEXIST`.
const EEXIST: i32 = -17;

#[inline(always)]
fn add(delta: u64) {
    if let Some(n) = TRACKED_COUNT.get_ptr_mut(0) {
        // SAFETY: map value; only changed by atomic adds.
        let _ = unsafe { atomic_xadd::<u64, u64, { Relaxed }>(n, delta) };
    }
}

/// Whether `skb` is tracked. No lookup while the table is empty.
#[inline(always)]
pub fn contains(skb: u64) -> bool {
    let any = match TRACKED_COUNT.get_ptr(0) {
        // SAFETY: map value, read once.
        Some(n) => (unsafe { core::ptr::read_volatile(n) }) != 0,
        None => true,
    };
    // SAFETY: plain lookup; the value is not kept.
    any && unsafe { TRACKED.get(&skb) }.is_some()
}

/// Tracks `skb` from `t` on (replacing what was kept for it, if anything);
/// a full table is counted as a loss (`lost::TRACK_FULL`).
#[inline(always)]
pub fn insert(skb: u64, t: &Tracked) {
    match TRACKED.insert(&skb, t, NOEXIST) {
        Ok(()) => add(1),
        // An skb address seen before (a clone at a reused address): start
        // it afresh, as a new packet.
        Err(e) if e == EEXIST => {
            let _ = TRACKED.insert(&skb, t, EXIST);
        }
        Err(_) => count_lost_at(lost::TRACK_FULL),
    }
}

/// Stops tracking `skb` (if it was).
#[inline(always)]
pub fn remove(skb: u64) {
    if TRACKED.remove(&skb).is_ok() {
        add(u64::MAX);
    }
}

/// A copy of what is kept for `skb`.
#[inline(always)]
pub fn get(skb: u64) -> Option<Tracked> {
    // SAFETY: plain lookup, copied out.
    unsafe { TRACKED.get(&skb) }.copied()
}

/// `--latency`: the packet's latest hook was at `now`.
#[inline(always)]
pub fn touch(skb: u64, now: u64) {
    if let Some(t) = TRACKED.get_ptr_mut(&skb) {
        // SAFETY: map value of this packet; only its own hooks write it.
        unsafe { (*t).last_ns = now };
    }
}
