//! `-w`: the packet bytes of an event that goes out, as a `PacketBytes`
//! record sent right before the event (`nettrace_common::snap`).
//!
//! Out of line and called only once an event is certain to be sent, so a
//! hook run that ends at the filters never reaches it; without `-w` the
//! caller's snap length is 0 in the read-only configuration and the
//! verifier removes the call. The bytes are read from the skb's head
//! buffer only (what the kernel calls its linear part): past it, the rest
//! of the packet lies in page fragments this simple read cannot follow, so
//! a packet with paged payload is cut there, and its original length tells
//! the reader how much is missing.

use aya_ebpf::{helpers::generated::bpf_probe_read_kernel, macros::map, maps::PerCpuArray};
use nettrace_common::{
    KernelLayout, Record as _,
    record::RecordHeader,
    snap::{PACKET_BYTES_HEAD, PacketBytes, SNAP_L2, SNAPLEN_MAX, link},
    trace::lost,
};

use crate::{
    maps::{EVENTS, count_lost_at, wake_flags},
    read::field,
    skb::ethernet_header,
};

/// The record is built here: 1.5 KiB does not fit on the BPF stack.
#[map]
static SNAP_SCRATCH: PerCpuArray<PacketBytes> = PerCpuArray::with_max_entries(1, 0);

/// Sends up to `snaplen` bytes of `skb`'s packet from its network header
/// `l3` (0: unknown, nothing is sent and userspace falls back on the
/// event's own header copy), or from its Ethernet header when `snaplen`
/// has `SNAP_L2` and there is one, tagged with the event's `ts_ns`.
#[inline(never)]
pub fn emit_packet(layout: &KernelLayout, skb: u64, l3: u64, ts_ns: u64, snaplen: u32) {
    if l3 == 0 {
        return;
    }
    let mac = if snaplen & SNAP_L2 != 0 {
        ethernet_header(layout, skb, l3)
    } else {
        0
    };
    let (start, link) = if mac != 0 {
        (mac, link::ETHERNET)
    } else {
        (l3, link::RAW)
    };
    let snaplen = snaplen & !SNAP_L2;
    let (Some(data), Some(len)) = (
        field::<u64>(skb, layout.skb_data),
        field::<u32>(skb, layout.skb_len),
    ) else {
        return;
    };
    let paged = field::<u32>(skb, layout.skb_data_len).unwrap_or(0);
    let end = data + len as u64;
    let linear_end = data + len.saturating_sub(paged) as u64;
    if end <= l3 || linear_end <= l3 {
        return;
    }
    let orig_len = end - start;
    let mut n = linear_end - start;
    if n > snaplen as u64 {
        n = snaplen as u64;
    }
    if n > SNAPLEN_MAX as u64 {
        n = SNAPLEN_MAX as u64;
    }
    let Some(rec) = SNAP_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    // SAFETY: per-CPU scratch slot; programs do not nest on one CPU.
    let rec = unsafe { &mut *rec };
    // SAFETY: a probe read of kernel memory into our own buffer, at most
    // `SNAPLEN_MAX` bytes into `data` (which holds more).
    let read = unsafe {
        bpf_probe_read_kernel(
            rec.data.as_mut_ptr().cast(),
            n as u32,
            start as *const core::ffi::c_void,
        )
    };
    if read != 0 {
        return;
    }
    rec.header = RecordHeader {
        len: (PACKET_BYTES_HEAD as u64 + n) as u16,
        ..PacketBytes::HEADER
    };
    rec.cap_len = n as u16;
    rec.link = link;
    rec.orig_len = orig_len.min(u32::MAX as u64) as u32;
    rec.skb = skb;
    rec.ts_ns = ts_ns;
    // SAFETY: the first `PACKET_BYTES_HEAD + n` bytes of the record, all
    // written above.
    let bytes = unsafe {
        core::slice::from_raw_parts(
            core::ptr::from_ref(rec).cast::<u8>(),
            PACKET_BYTES_HEAD + n as usize,
        )
    };
    if EVENTS.output(bytes, wake_flags()).is_err() {
        count_lost_at(lost::RING);
    }
}
