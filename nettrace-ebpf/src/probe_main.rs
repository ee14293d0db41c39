//! Tiny programs whose only job is to be loaded (and attached) at start-up to
//! learn what this kernel allows. Deciding by what loads, not by version
//! strings, is what lets one binary pick the right backend everywhere.
//!
//! A separate object from the tracing programs: it is parsed in a
//! millisecond, and the tracing object can then be configured (read-only
//! globals) with the probe results before it is loaded.
#![no_std]
#![no_main]

use aya_ebpf::{
    macros::{btf_tracepoint, fentry, kprobe, tracepoint},
    programs::{BtfTracePointContext, FEntryContext, ProbeContext, TracePointContext},
};

#[btf_tracepoint]
pub fn probe_tp_btf(_ctx: BtfTracePointContext) -> i32 {
    0
}

#[tracepoint]
pub fn probe_tracepoint(_ctx: TracePointContext) -> u32 {
    0
}

#[fentry]
pub fn probe_fentry(_ctx: FEntryContext) -> u32 {
    0
}

#[kprobe]
pub fn probe_kprobe(_ctx: ProbeContext) -> u32 {
    0
}

nettrace_ebpf::object_glue!();
