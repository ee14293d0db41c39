//! Maps shared by all programs.

use aya_ebpf::{
    macros::map,
    maps::{HashMap, PerCpuArray, RingBuf, StackTrace},
};
use nettrace_common::{Record, RecordHeader, trace::lost};

/// Events to userspace. 4 MiB holds ~26k drop events: enough to ride out a
/// burst while userspace is descheduled; overflow is counted in `LOST`.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(4 * 1024 * 1024, 0);

/// Loss counters per CPU, indexed by `nettrace_common::trace::lost`.
#[map]
pub static LOST: PerCpuArray<u64> = PerCpuArray::with_max_entries(lost::KINDS, 0);

/// Kernel stacks for `--drop-stack`.
#[map]
pub static STACKS: StackTrace = StackTrace::with_max_entries(4096, 0);

/// `--container` / `--pod`: the network namespaces (inodes) whose packets
/// and sockets pass (`Filter::netns_set`). Userspace adds a container's
/// namespace when it sees it start, so it is a map, not a constant.
#[map]
pub static NETNS_ALLOWED: HashMap<u32, u8> = HashMap::with_max_entries(1024, 0);

/// True when namespace `netns` passes `--netns`, `--netns-current`,
/// `--container` and `--pod` (a map lookup only for the last two).
#[inline(always)]
pub fn netns_allowed(f: &nettrace_common::Filter, netns: u32) -> bool {
    if f.netns_set != 0 {
        // SAFETY: a plain lookup; the value is not read.
        return unsafe { NETNS_ALLOWED.get(&netns) }.is_some();
    }
    f.netns == 0 || f.netns == netns
}

/// Bytes waiting in `EVENTS` at which a record wakes the reader. Below
/// it, records go in without a wake-up and the reader collects them on its
/// own short timer (`nettrace::events`): a wake-up is an interrupt-work
/// self-IPI, and one per record (what the kernel does while the reader
/// keeps up) costs more than the record itself. An eighth of the buffer
/// leaves room for a burst while the reader gets going.
const WAKE_AT: u64 = 512 * 1024;

/// `BPF_RB_NO_WAKEUP`, `BPF_RB_FORCE_WAKEUP`, `BPF_RB_AVAIL_DATA`.
const NO_WAKEUP: u64 = 1;
const FORCE_WAKEUP: u64 = 2;
const AVAIL_DATA: u64 = 0;

/// The flags to submit a record to `EVENTS` with (see `WAKE_AT`).
#[inline(always)]
pub fn wake_flags() -> u64 {
    if EVENTS.query(AVAIL_DATA) >= WAKE_AT {
        FORCE_WAKEUP
    } else {
        NO_WAKEUP
    }
}

/// Counts a loss of kind `index` (see `nettrace_common::trace::lost`).
#[inline(always)]
pub fn count_lost_at(index: u32) {
    if let Some(n) = LOST.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, programs do not nest on one CPU for our hooks
        // (a tracepoint program is not re-entered while it runs).
        unsafe { *n += 1 };
    }
}

/// Sends a record built in a scratch map (not on the stack: records are
/// too large for it) after writing its header, or counts it lost. The
/// scratch starts zeroed and every record field is written by its program
/// or never (padding), so only the program's own bytes go out.
#[inline(always)]
pub fn send<T: Record>(record: &mut T) {
    // SAFETY: every record starts with its header (asserted in
    // nettrace-common); writing a constant through it.
    unsafe {
        core::ptr::from_mut(record)
            .cast::<RecordHeader>()
            .write(T::HEADER)
    };
    if EVENTS.output(record, wake_flags()).is_err() {
        count_lost_at(lost::RING);
    }
}
