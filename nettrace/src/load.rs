//! The embedded eBPF objects and how they are loaded.

use std::sync::atomic::{AtomicBool, Ordering};

use aya::{Btf, Ebpf, EbpfLoader, programs::ProgramError};
use nettrace_common::{DropConfig, TraceConfig, tcp::TcpConfig};

use crate::expr::Expression;

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
/// `expr`: the filter EXPRESSION, written into the object's slot first.
pub fn load(
    trace: &TraceConfig,
    btf: Option<&Btf>,
    functions: bool,
    expr: Option<&Expression>,
) -> anyhow::Result<Ebpf> {
    let mut loader = EbpfLoader::new();
    if let Some(btf) = btf {
        loader.btf(btf);
    }
    loader.override_global("TRACE_CONFIG", trace, true);
    with_expression(if functions { OBJECT } else { TP_OBJECT }, expr, |o| {
        loader.load(o)
    })
}

/// Runs `load` on `object`, or on a copy with `expr` in its slot.
fn with_expression(
    object: &[u8],
    expr: Option<&Expression>,
    load: impl FnOnce(&[u8]) -> Result<Ebpf, aya::EbpfError>,
) -> anyhow::Result<Ebpf> {
    Ok(match expr {
        None => load(object)?,
        Some(e) => load(crate::expr::slot::fill(object, &e.slot)?.bytes())?,
    })
}

/// The drop monitor's object, configured like `load`'s.
pub fn load_drop(drop: &DropConfig, btf: Option<&Btf>, expr: Option<&Expression>) -> anyhow::Result<Ebpf> {
    let mut loader = EbpfLoader::new();
    if let Some(btf) = btf {
        loader.btf(btf);
    }
    loader.override_global("DROP_CONFIG", drop, true);
    with_expression(DROP_OBJECT, expr, |o| loader.load(o))
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

/// `--libbpf-debug` (the C nettrace's name): print verifier logs. A
/// process-wide switch, like a log level: every mode's load sites read it.
static LIBBPF_DEBUG: AtomicBool = AtomicBool::new(false);

pub fn set_libbpf_debug(on: bool) {
    LIBBPF_DEBUG.store(on, Ordering::Relaxed);
}

/// A program that failed to load or attach, in one line: for a load the
/// kernel refused, the syscall's error and the verifier log's last
/// meaningful line (the whole log goes to stderr with `--libbpf-debug`).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct LoadFailed(String);

pub trait Logged<T> {
    /// `what` names the program and its target in the `--libbpf-debug` output.
    fn logged(self, what: &str) -> Result<T, LoadFailed>;
}

impl<T> Logged<T> for Result<T, ProgramError> {
    fn logged(self, what: &str) -> Result<T, LoadFailed> {
        self.map_err(|e| match e {
            ProgramError::LoadError {
                io_error,
                verifier_log,
            } => {
                let log = verifier_log.to_string();
                if LIBBPF_DEBUG.load(Ordering::Relaxed) {
                    print_log(what, &io_error, &log);
                }
                LoadFailed(match last_log_line(&log) {
                    Some(l) => format!("the kernel refused to load it ({io_error}); verifier: {l}"),
                    None => format!("the kernel refused to load it ({io_error})"),
                })
            }
            other => LoadFailed(format!("{:#}", anyhow::Error::new(other))),
        })
    }
}

fn print_log(what: &str, io_error: &std::io::Error, log: &str) {
    use std::io::Write as _;
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "nettrace: {what}: the kernel refused to load it ({io_error}); verifier log:"
    );
    if log.trim().is_empty() {
        let _ = writeln!(err, "    (empty)");
    }
    for l in log.lines() {
        let _ = writeln!(err, "    {l}");
    }
}

/// The verifier's verdict: the last line of its log that is not a
/// statistic (`processed N insns …`, `verification time …`, `stack depth …`).
fn last_log_line(log: &str) -> Option<&str> {
    log.lines().map(str::trim).rev().find(|l| {
        !l.is_empty()
            && !l.starts_with("processed ")
            && !l.starts_with("verification time")
            && !l.starts_with("stack depth")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_is_the_last_line_before_the_statistics() {
        let log = "0: R1=ctx() R10=fp0\n; 0: (79) r2 = *(u64 *)(r1 +8)\n\
                   invalid bpf_context access off=8 size=8\n\
                   processed 1 insns (limit 1000000) max_states_per_insn 0 total_states 0 peak_states 0 mark_read 0\n\
                   verification time 12 usec\nstack depth 0\n";
        assert_eq!(
            last_log_line(log),
            Some("invalid bpf_context access off=8 size=8")
        );
        assert_eq!(last_log_line(""), None);
    }
}
