//! The embedded eBPF objects and how they are loaded.

use aya::{Ebpf, EbpfLoader};
use nettrace_common::{DropConfig, TraceConfig};

/// Built by `build.rs` (aya-build) from the `nettrace-ebpf` crate.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/nettrace"));

/// The capability probes (`nettrace-ebpf/src/probe_main.rs`).
static PROBES: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/nettrace-probe"));

/// Parses the tracing object and creates its maps, with the configuration
/// globals written into `.rodata` first: the verifier then treats them as
/// constants. Programs are loaded one by one afterwards (see `modes`).
pub fn load(drop: &DropConfig, trace: &TraceConfig) -> Result<Ebpf, aya::EbpfError> {
    EbpfLoader::new()
        .override_global("DROP_CONFIG", drop, true)
        .override_global("TRACE_CONFIG", trace, true)
        .load(OBJECT)
}

/// The small object holding only the capability probes: parsed in a
/// moment, so the tracing object can be configured from what they find.
pub fn load_probes() -> Result<Ebpf, aya::EbpfError> {
    EbpfLoader::new().load(PROBES)
}
