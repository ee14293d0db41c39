//! The tp_btf entry points only, for the tracepoint-only object.

use aya_ebpf::{macros::btf_tracepoint, programs::BtfTracePointContext};

use crate::trace;

include!(concat!(env!("OUT_DIR"), "/slots_tracepoints.rs"));
