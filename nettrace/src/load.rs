//! The embedded eBPF object and how it is loaded.

use aya::{Ebpf, EbpfLoader};
use nettrace_common::DropConfig;

/// Built by `build.rs` (aya-build) from the `nettrace-ebpf` crate.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/nettrace"));

/// Parses the object and creates its maps, with the configuration globals
/// written into `.rodata` first: the verifier then treats them as constants.
/// Programs are loaded one by one afterwards (see `kernel::caps` and `modes`).
pub fn load(drop: &DropConfig) -> Result<Ebpf, aya::EbpfError> {
    EbpfLoader::new()
        .override_global("DROP_CONFIG", drop, true)
        .load(OBJECT)
}
