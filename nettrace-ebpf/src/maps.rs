//! Maps shared by all programs.

use aya_ebpf::{
    macros::map,
    maps::{PerCpuArray, RingBuf, StackTrace},
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
    if EVENTS.output(record, 0).is_err() {
        count_lost_at(lost::RING);
    }
}
