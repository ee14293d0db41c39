//! What every mode starts from: the user's config, `--debug` logging, the
//! `--metrics` server, and the kernel facts (BTF, struct layout, tracefs,
//! which program types load) gathered once before planning.

use std::{path::PathBuf, sync::Arc, time::Instant};

use aya::Btf;
use nettrace_common::KernelLayout;

use crate::{
    attach::Means,
    attribution::{Attribution, runtimes::Roots, select::Gate},
    cli::Config,
    error::Error,
    kernel::{
        btf::{KernelBtf, VMLINUX_BTF},
        caps::{self, Capabilities},
        layout, tracefs,
    },
    load,
    output::{
        Format, Out,
        metrics::{Counts, Metrics},
        pcap::PcapOut,
    },
};

/// Start-up state shared by every mode.
pub struct Kernel {
    pub btf: KernelBtf,
    pub aya_btf: Option<Btf>,
    pub layout: KernelLayout,
    pub tracefs: Option<PathBuf>,
    pub caps: Capabilities,
}

pub struct Session<'a> {
    pub config: &'a Config,
    start: Instant,
    /// `--metrics`: counters being served.
    pub metrics: Option<Arc<Metrics>>,
    /// Container and pod names of namespaces, when something shows them.
    pub attribution: Option<Attribution>,
    /// `--container` / `--pod`: the namespaces the kernel lets through.
    pub gate: Option<Arc<Gate>>,
}

/// `--debug`'s log on stderr: each line with the time since start-up and
/// the resident memory, to see where time and memory go.
#[derive(Clone, Copy, Debug)]
pub struct DebugLog {
    on: bool,
    start: Instant,
}

impl DebugLog {
    pub fn log(&self, msg: impl std::fmt::Display) {
        if self.on {
            eprintln!(
                "nettrace: [{:6.1} ms, {:4} MiB] {msg}",
                self.start.elapsed().as_secs_f64() * 1e3,
                resident_mib()
            );
        }
    }
}

impl Session<'_> {
    pub fn debug(&self, msg: impl std::fmt::Display) {
        self.log().log(msg);
    }

    /// The debug log, for sinks that outlive the session's borrow.
    pub fn log(&self) -> DebugLog {
        DebugLog {
            on: self.config.debug,
            start: self.start,
        }
    }

    /// `functions`: probe fentry and kprobes too (see
    /// [`crate::modes::Mode::hooks_functions`]); `typedefs`: all that
    /// attaching needs of the kernel BTF, if the mode knows (see
    /// [`crate::modes::Mode::attach_typedefs`]).
    pub fn kernel(
        &self,
        many_lookups: bool,
        functions: bool,
        typedefs: Option<&[&str]>,
    ) -> Result<Kernel, Error> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(Error::Unsupported(
                "must run as root: loading eBPF programs needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN)"
                    .into(),
            ));
        }
        let from_file = self.config.kernel.btf_path.as_deref();
        let path = from_file.unwrap_or(std::path::Path::new(VMLINUX_BTF));
        let btf = if many_lookups {
            KernelBtf::from_file(path)
        } else {
            KernelBtf::from_file_lazy(path)
        };
        let btf = btf.map_err(|e| match from_file {
            Some(p) => Error::Unsupported(format!("--btf-path {}: not valid BTF: {e}", p.display())),
            None => Error::Unsupported(format!(
                "{e}: nettrace needs a kernel built with CONFIG_DEBUG_INFO_BTF=y (or --btf-path FILE)"
            )),
        })?;
        if from_file.is_some() {
            self.debug(format_args!("kernel BTF from {}", path.display()));
        }
        let layout =
            layout::resolve(&btf).map_err(|e| Error::Unsupported(format!("unsupported kernel: {e}")))?;
        self.debug(format_args!("kernel layout from BTF: {layout:?}"));
        let tracefs = match tracefs::ensure_mounted() {
            Ok((root, mounted)) => {
                if mounted {
                    eprintln!("nettrace: mounted tracefs at {}", root.display());
                }
                Some(root)
            }
            Err(e) => {
                self.debug(format_args!(
                    "tracefs unavailable ({e}): classic tracepoints disabled"
                ));
                None
            }
        };
        // aya's loader gets the same BTF: with --btf-path it must never
        // look for /sys/kernel/btf/vmlinux itself.
        let aya_btf = match from_file {
            Some(p) => Some(Btf::parse_file(p, aya::Endianness::default()).map_err(|e| {
                Error::Unsupported(format!("--btf-path {}: not valid BTF: {e}", p.display()))
            })?),
            None => typedefs
                .and_then(|names| {
                    let stub = btf.aya_stub(names)?;
                    self.debug(format_args!("kernel BTF for attaching: only {names:?}"));
                    Some(stub)
                })
                .or_else(|| Btf::from_sys_fs().ok()),
        };
        let mut probes = load::load_probes(aya_btf.as_ref())?;
        let caps = caps::probe(&mut probes, aya_btf.as_ref(), &btf, functions);
        drop(probes);
        self.debug(format_args!("{caps}"));
        Ok(Kernel {
            btf,
            aya_btf,
            layout,
            tracefs,
            caps,
        })
    }
}

impl Kernel {
    /// What attaching needs from these facts.
    pub fn means(&self) -> Means<'_> {
        Means {
            caps: &self.caps,
            btf: self.aya_btf.as_ref(),
        }
    }
}

impl Session<'_> {
    pub fn new(config: &Config) -> Session<'_> {
        Session {
            config,
            start: Instant::now(),
            metrics: None,
            attribution: None,
            gate: None,
        }
    }

    /// Starts naming containers when the output shows them (`--json`,
    /// `--detail`, `--conn`, `--metrics-labels`, `-w`'s comments) or `--container`/`--pod`
    /// asks for them; resolves those to namespaces (a usage error when none
    /// match, unless `--wait-container`).
    pub fn attribute(&mut self) -> Result<(), Error> {
        let c = self.config;
        let detail = match &c.mode {
            crate::cli::Mode::Drop { detail, .. } => *detail,
            crate::cli::Mode::Lifecycle(l) => l.detail,
            crate::cli::Mode::Conn { .. } => true,
            _ => false,
        };
        let labels = c.metrics_labels != crate::cli::MetricsLabels::default();
        if !(c.json || detail || labels || c.pcap.is_some() || c.containers.is_some()) {
            return Ok(());
        }
        let attribution = Attribution::start(Roots::host());
        if let Some(selection) = &c.containers {
            self.gate = Some(Gate::new(selection.clone(), attribution.clone()).map_err(Error::Usage)?);
        }
        self.debug("containers named");
        self.attribution = Some(attribution);
        Ok(())
    }

    /// Hands a loaded object's namespace map to `--container`/`--pod`.
    pub fn admit(&self, ebpf: &mut aya::Ebpf) -> Result<(), Error> {
        if let Some(gate) = &self.gate {
            gate.add(ebpf)?;
        }
        Ok(())
    }

    /// Stdout in the format the flags chose (text or `--json`); stderr
    /// when stdout carries the pcapng file (`-w -`).
    pub fn out(&self) -> Out {
        let pcap_on_stdout = matches!(
            &self.config.pcap,
            Some(crate::cli::Pcap {
                to: crate::cli::PcapTo::Stdout,
                ..
            })
        );
        Out::new(Format::from_json_flag(self.config.json), pcap_on_stdout)
    }

    /// `-w`: the pcapng file, created now, or `None` without `-w`.
    pub fn pcap(&self) -> Result<Option<PcapOut>, Error> {
        Ok(self.config.pcap.as_ref().map(PcapOut::create).transpose()?)
    }

    /// A sink's `--metrics` counters, when metrics are served.
    pub fn counts(&self) -> Option<Counts> {
        let counts = Counts::new(self.metrics.clone()?);
        Some(match &self.attribution {
            Some(a) => counts.with_owners(a.clone(), self.config.metrics_labels),
            None => counts,
        })
    }
}

/// `--metrics`: starts serving, or `None` when not asked for.
pub async fn serve_metrics(s: &Session<'_>) -> Result<Option<Arc<Metrics>>, Error> {
    let Some(addr) = s.config.metrics else {
        return Ok(None);
    };
    let m = Arc::new(Metrics::default());
    let bound = crate::output::scrape::serve(m.clone(), addr)
        .await
        .map_err(|e| Error::Usage(format!("--metrics {addr}: cannot listen: {e}")))?;
    s.debug(format_args!("metrics at http://{bound}/metrics"));
    Ok(Some(m))
}

/// Resident memory now (`VmRSS`), for `--debug`: where memory goes.
fn resident_mib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))?
                .split_whitespace()
                .next()?
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib / 1024)
}
