//! The embedded eBPF objects and how they are loaded.

use aya::{Btf, Ebpf, EbpfLoader};
use nettrace_common::{DropConfig, TraceConfig, tcp::TcpConfig};

/// Built by `build.rs` (aya-build) from the `nettrace-ebpf` crate.
static OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/nettrace"));

/// The lifecycle object with tracepoint entry points only (`tp_main.rs`).
static TP_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/nettrace-tp"));

/// The `--drop` monitor (`nettrace-ebpf/src/drop_main.rs`).
static DROP_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/nettrace-drop"));

/// The `--tcp-monitor` / `--rt` object (`nettrace-ebpf/src/tcp_main.rs`).
static TCP_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/nettrace-tcp"));

/// The capability probes (`nettrace-ebpf/src/probe_main.rs`).
static PROBES: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/nettrace-probe"));

/// Parses the tracing object and creates its maps, with the configuration
/// globals written into `.rodata` first: the verifier then treats them as
/// constants. Programs are loaded one by one afterwards (see `modes`).
/// `btf`: the kernel BTF already parsed for attaching. Without it aya parses
/// its own copy, which costs ~100 ms and tens of MiB each time.
/// `functions`: the plan hooks kernel functions (or may fall back to
/// kprobes); otherwise the much smaller tracepoint-only object is enough.
pub fn load(trace: &TraceConfig, btf: Option<&Btf>, functions: bool) -> Result<Ebpf, aya::EbpfError> {
    let mut loader = EbpfLoader::new();
    if let Some(btf) = btf {
        loader.btf(btf);
    }
    loader
        .override_global("TRACE_CONFIG", trace, true)
        .load(if functions { OBJECT } else { TP_OBJECT })
}

/// The drop monitor's object, configured like `load`'s.
pub fn load_drop(drop: &DropConfig, btf: Option<&Btf>) -> Result<Ebpf, aya::EbpfError> {
    let mut loader = EbpfLoader::new();
    if let Some(btf) = btf {
        loader.btf(btf);
    }
    loader
        .override_global("DROP_CONFIG", drop, true)
        .load(DROP_OBJECT)
}

/// The TCP socket object, configured like `load`'s.
pub fn load_tcp(tcp: &TcpConfig, btf: Option<&Btf>) -> Result<Ebpf, aya::EbpfError> {
    let mut loader = EbpfLoader::new();
    if let Some(btf) = btf {
        loader.btf(btf);
    }
    loader.override_global("TCP_CONFIG", tcp, true).load(TCP_OBJECT)
}

/// `--rate-limit`: sets the kernel's windows of this second and the next
/// to empty before anything is attached, so the first events of a busy
/// start never clear a window in use (see `nettrace-ebpf/src/ratelimit.rs`).
pub fn prime_rate_limit(ebpf: &mut Ebpf, limit: u32) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use nettrace_common::trace::RateWindow;
    if limit == 0 {
        return Ok(());
    }
    let mut windows: aya::maps::Array<_, RateWindow> =
        aya::maps::Array::try_from(ebpf.map_mut("RATE_WINDOWS").context("map RATE_WINDOWS missing")?)?;
    let second = crate::events::monotonic_ns() / 1_000_000_000;
    for s in [second, second + 1] {
        windows.set((s & 1) as u32, &RateWindow { second: s, taken: 0 }, 0)?;
    }
    Ok(())
}

/// The small object holding only the capability probes: parsed in a
/// moment, so the tracing object can be configured from what they find.
pub fn load_probes(btf: Option<&Btf>) -> Result<Ebpf, aya::EbpfError> {
    let mut loader = EbpfLoader::new();
    if let Some(btf) = btf {
        loader.btf(btf);
    }
    loader.load(PROBES)
}
