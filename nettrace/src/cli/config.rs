//! What was meant: validates `Args` into a `Config` the rest of nettrace
//! trusts (ripgrep's "high-level args"). Every flag error is found here,
//! once, as a one-line message.
//!
//! This file holds what the rest of nettrace reads (`Config` and its
//! parts) and the order of the checks, which decides the error a user
//! sees when several flags are wrong; each group of flags is checked in
//! its own module: `lifecycle` (the default mode and its variants),
//! `socket` (the TCP socket modes), `filter` (the in-kernel filter).

use nettrace_common::Filter;

pub use self::{
    containers::MetricsLabels,
    pcap::{Pcap, PcapTo},
};
use super::args::{Args, BackendChoice};

/// A flag's value or combination is wrong; the message is one line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct UsageError(pub String);

macro_rules! usage {
    ($($t:tt)*) => { UsageError(format!($($t)*)) };
}

mod containers;
mod filter;
mod lifecycle;
mod pcap;
mod socket;

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `--drop` (`detail`: `--detail`).
    Drop { stack: bool, detail: bool },
    /// The default: follow packets hook by hook.
    Lifecycle(Lifecycle),
    /// `--tcp-monitor`.
    TcpMonitor,
    /// `--sock`: socket hooks, one line each.
    Sock(Sock),
    /// `--rt` and its options.
    Rt(Rt),
    /// `--rtt` (the distribution) and/or `--rtt-detail` (each sample),
    /// with the RTT filters in µs.
    Rtt {
        distribution: bool,
        detail: bool,
        min_srtt_us: u32,
        min_rtt_min_us: u32,
    },
    /// `--conn`: `states` is the sock_diag state mask.
    Conn {
        interval: Option<std::time::Duration>,
        states: u32,
    },
}

/// `--rt` options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rt {
    /// `--rt-summary`: histograms each second instead of lines.
    pub summary: bool,
    /// `--client` (or `-D` alone): time client sockets.
    pub client: bool,
    /// `--rt-format tcprt`: Alibaba TCP-RT's log lines.
    pub tcprt: bool,
    /// `--rt-proto http`: HTTP method and status, TLS records.
    pub http: bool,
    /// `--interval`: how often the per-port statistics are printed.
    pub interval: std::time::Duration,
}

impl Rt {
    /// `--interval`'s default with `--rt`, as tcprt's stats file.
    pub const STATS_EVERY: std::time::Duration = std::time::Duration::from_secs(60);
}

/// `--sock` options.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sock {
    /// `-t`: the hooks to attach (tracepoint and function names, checked
    /// against `modes::tcp::sock`), `None` for all of them.
    pub hooks: Option<Vec<&'static str>>,
    /// `--filter-srtt` / `--filter-minrtt`: `tcp_ack_update_rtt` is
    /// attached and reports only the samples that pass.
    pub rtt: Option<RttFilter>,
}

/// `--filter-srtt` and `--filter-minrtt`, in µs (0: no limit).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RttFilter {
    pub min_srtt_us: u32,
    pub min_rtt_min_us: u32,
}

/// Lifecycle options as typed; hook names are resolved against the
/// catalogue later (it may come from `--rules`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lifecycle {
    pub rules: Option<String>,
    pub trace: Option<String>,
    pub matcher: Option<String>,
    pub exclude: Option<String>,
    pub free: Option<String>,
    pub stack: Option<String>,
    pub noclone: bool,
    pub basic: bool,
    pub detail: bool,
    pub ret: bool,
    pub tiny: bool,
    pub latency_show: bool,
    /// Nanoseconds.
    pub min_latency_ns: u64,
    /// `--diag`.
    pub diag: Option<Diag>,
    /// `--latency` / `--latency-summary`.
    pub latency: Option<Latency>,
    /// `--func-stats` (with `-v`: every second too).
    pub func_stats: Option<bool>,
    /// `--monitor`: only the catalogue's monitor hooks, events as they come.
    pub monitor: bool,
}

/// `--latency`: lives are measured in the kernel.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Latency {
    /// `--latency-summary`: a histogram each second instead of packets.
    pub summary: bool,
    /// `--latency-free`: the free hook ends the life.
    pub free: bool,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Diag {
    /// `--diag-quiet`: only packets with a problem.
    pub quiet: bool,
    /// `--diag-keep`: do not stop after the first problem.
    pub keep: bool,
    /// `--hooks`: blame netfilter hook functions on NETFILTER_DROP.
    pub hooks: bool,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    pub mode: Mode,
    pub filter: Filter,
    /// The filter EXPRESSION, translated (its byte count is in `filter`).
    pub expression: Option<crate::expr::Expression>,
    pub count: Option<u64>,
    pub date: bool,
    /// `--json`: NDJSON records instead of text lines.
    pub json: bool,
    /// `-w`: the reported packets also go to a pcapng file.
    pub pcap: Option<Pcap>,
    /// `--metrics`: where to serve Prometheus metrics.
    pub metrics: Option<std::net::SocketAddr>,
    /// `--metrics-labels`.
    pub metrics_labels: MetricsLabels,
    /// `--container` / `--pod` (`filter.netns_set` is then on).
    pub containers: Option<crate::attribution::select::Selection>,
    /// `--rate-limit`: events per second, 0 = unlimited.
    pub rate_limit: u32,
    pub debug: bool,
    pub backend: BackendChoice,
    /// `--force`, `--btf-path`, `--libbpf-debug`.
    pub kernel: KernelOpts,
    /// Hidden flags of `cargo xtask bench`.
    pub bench: BenchOpts,
}

/// How nettrace deals with the kernel: where its BTF comes from, and what
/// to do with what cannot be attached or loaded.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelOpts {
    /// `--force`: skip (with a warning) what cannot be attached.
    pub force: bool,
    /// `--btf-path`: kernel BTF from this file, checked readable.
    pub btf_path: Option<std::path::PathBuf>,
    /// `--libbpf-debug`: verifier logs of programs that fail to load.
    pub libbpf_debug: bool,
}

/// The benchmark's hidden flags (`cli::args::BenchArgs`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct BenchOpts {
    /// `--bench-floor`: lifecycle programs return at once.
    pub floor: bool,
    /// `--capture-records`: received records are also written here.
    pub capture: Option<std::path::PathBuf>,
    /// `--replay-records`: records come from here, not the ring buffer.
    pub replay: Option<std::path::PathBuf>,
}

impl Config {
    pub fn from_args(args: &Args) -> Result<Self, UsageError> {
        let rate_limit = match &args.output.rate_limit {
            Some(v) => match v.parse::<u32>() {
                Ok(n) if n > 0 => n,
                _ => {
                    return Err(usage!(
                        "--rate-limit: '{v}' is not a positive number of events per second"
                    ));
                }
            },
            None => 0,
        };
        lifecycle::check(args)?;
        let lifecycle_given = lifecycle::given(args);
        let (mode, mut filter) = match socket::mode(args, &lifecycle_given)? {
            Some(mode) => {
                filter::no_expression(&args.filters)?;
                (mode, socket::filter(args)?)
            }
            None => (
                packet_mode(args, &lifecycle_given)?,
                filter::from_args(&args.filters)?,
            ),
        };
        let expression = filter::expression(&args.filters)?;
        if let Some(e) = &expression {
            filter.expr_bytes = e.bytes;
            filter.expr_l2 = u8::from(e.link == crate::expr::Link::Ethernet);
        }
        // `--monitor` is meant to run for hours: bounded output.
        let rate_limit = if rate_limit == 0 && args.lifecycle.monitor {
            100
        } else {
            rate_limit
        };
        let pcap = pcap::from_args(args, &mode)?;
        let containers = containers::selection(args, &mut filter)?;
        Ok(Config {
            pcap,
            mode,
            filter,
            expression,
            count: args.output.count.as_deref().map(parse_count).transpose()?,
            date: args.output.date,
            json: args.output.json,
            metrics: metrics_addr(args)?,
            metrics_labels: containers::metrics_labels(args)?,
            containers,
            rate_limit,
            debug: args.output.debug,
            backend: args.kernel.backend,
            kernel: kernel_opts(args)?,
            bench: BenchOpts {
                floor: args.bench.bench_floor,
                capture: args.bench.capture_records.clone(),
                replay: args.bench.replay_records.clone(),
            },
        })
    }
}

/// `--drop`, or else the default lifecycle mode; `lifecycle_given`: the
/// lifecycle flags given, which `--drop` takes none of.
fn packet_mode(args: &Args, lifecycle_given: &[&str]) -> Result<Mode, UsageError> {
    if !args.drops.drop {
        if args.drops.drop_stack {
            return Err(usage!("--drop-stack needs --drop"));
        }
        return lifecycle::mode(args);
    }
    // `--detail` adds where and whose to a drop line too.
    if let Some(flag) = lifecycle_given.iter().find(|f| **f != "--detail") {
        return Err(usage!(
            "{flag} is for lifecycle tracing and cannot be combined with --drop"
        ));
    }
    if matches!(args.kernel.backend, BackendChoice::Fentry | BackendChoice::Kprobe) {
        return Err(usage!(
            "--drop attaches a tracepoint: --backend must be auto, tp-btf or tracepoint"
        ));
    }
    Ok(Mode::Drop {
        stack: args.drops.drop_stack,
        detail: args.lifecycle.detail,
    })
}

fn metrics_addr(args: &Args) -> Result<Option<std::net::SocketAddr>, UsageError> {
    args.output
        .metrics
        .as_deref()
        .map(crate::output::metrics::parse_addr)
        .transpose()
        .map_err(UsageError)
}

fn parse_count(s: &str) -> Result<u64, UsageError> {
    match s.parse::<u64>() {
        Ok(0) | Err(_) => Err(usage!("--count: '{s}' is not a positive number")),
        Ok(v) => Ok(v),
    }
}

/// `--btf-path`: the file must be a readable regular file (whether it is
/// BTF is found when it is parsed, also exit 2).
fn kernel_opts(args: &Args) -> Result<KernelOpts, UsageError> {
    if let Some(path) = &args.kernel.btf_path {
        let shown = path.display();
        let meta = std::fs::metadata(path).map_err(|e| usage!("--btf-path {shown}: cannot read: {e}"))?;
        if !meta.is_file() {
            return Err(usage!("--btf-path {shown}: cannot read: not a regular file"));
        }
        std::fs::File::open(path).map_err(|e| usage!("--btf-path {shown}: cannot read: {e}"))?;
    }
    Ok(KernelOpts {
        force: args.kernel.force,
        btf_path: args.kernel.btf_path.clone(),
        libbpf_debug: args.kernel.libbpf_debug,
    })
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
