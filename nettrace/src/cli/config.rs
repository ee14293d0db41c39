//! What was meant: validates `Args` into a `Config` the rest of nettrace
//! trusts. Every flag error is found here, once, as a one-line message.

use std::{net::IpAddr, os::unix::fs::MetadataExt as _};

use nettrace_common::{
    Filter, ethertype,
    filter::{AddrMatch, family},
    ipproto,
};

use super::args::{Args, BackendChoice};

/// A flag's value or combination is wrong; the message is one line.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("{0}")]
pub struct UsageError(pub String);

macro_rules! usage {
    ($($t:tt)*) => { UsageError(format!($($t)*)) };
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Mode {
    /// `--drop`.
    Drop { stack: bool },
    /// The default: follow packets hook by hook.
    Lifecycle(Lifecycle),
    /// `--tcp-monitor`.
    TcpMonitor,
    /// `--sock`: socket hooks, one line each.
    Sock(Sock),
    /// `--rt`, `--rt-summary`.
    Rt { summary: bool },
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
    pub count: Option<u64>,
    pub date: bool,
    /// `--json`: NDJSON records instead of text lines.
    pub json: bool,
    /// `--metrics`: where to serve Prometheus metrics.
    pub metrics: Option<std::net::SocketAddr>,
    /// `--rate-limit`: events per second, 0 = unlimited.
    pub rate_limit: u32,
    pub debug: bool,
    pub backend: BackendChoice,
    /// `--force`, `--btf-path`, `--libbpf-debug`.
    pub kernel: KernelOpts,
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

/// `--btf-path`: the file must be a readable regular file (whether it is
/// BTF is found when it is parsed, also exit 2).
fn kernel_opts(args: &Args) -> Result<KernelOpts, UsageError> {
    if let Some(path) = &args.btf_path {
        let shown = path.display();
        let meta = std::fs::metadata(path).map_err(|e| usage!("--btf-path {shown}: cannot read: {e}"))?;
        if !meta.is_file() {
            return Err(usage!("--btf-path {shown}: cannot read: not a regular file"));
        }
        std::fs::File::open(path).map_err(|e| usage!("--btf-path {shown}: cannot read: {e}"))?;
    }
    Ok(KernelOpts {
        force: args.force,
        btf_path: args.btf_path.clone(),
        libbpf_debug: args.libbpf_debug,
    })
}

impl Config {
    pub fn from_args(args: &Args) -> Result<Self, UsageError> {
        let lifecycle_flags = [
            ("-t/--trace", args.trace.is_some()),
            ("--rules", args.rules.is_some()),
            ("--trace-matcher", args.trace_matcher.is_some()),
            ("--trace-exclude", args.trace_exclude.is_some()),
            ("--trace-free", args.trace_free.is_some()),
            ("--trace-stack", args.trace_stack.is_some()),
            ("--trace-noclone", args.trace_noclone),
            ("--basic", args.basic),
            ("--detail", args.detail),
            ("--ret", args.ret),
            ("--tiny-show", args.tiny_show),
            ("--latency-show", args.latency_show),
            ("--min-latency", args.min_latency.is_some()),
            ("--diag", args.diag),
            ("--latency", args.latency),
            ("--latency-summary", args.latency_summary),
            ("--latency-free", args.latency_free),
            ("--func-stats", args.func_stats),
            ("--monitor", args.monitor),
        ];
        let rate_limit = match &args.rate_limit {
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
        if args.verbose && !args.func_stats {
            return Err(usage!("-v/--verbose needs --func-stats"));
        }
        if args.latency_free && !args.latency && !args.latency_summary {
            return Err(usage!("--latency-free needs --latency or --latency-summary"));
        }
        let special = [
            ("--latency", args.latency || args.latency_summary),
            ("--func-stats", args.func_stats),
            ("--monitor", args.monitor),
            ("--diag", args.diag),
            ("--basic", args.basic),
        ];
        let on: Vec<&str> = special.iter().filter(|(_, set)| *set).map(|(f, _)| *f).collect();
        if let [a, b, ..] = on[..] {
            return Err(usage!("{a} and {b} cannot be combined"));
        }
        if args.monitor && args.trace.is_some() {
            return Err(usage!(
                "--monitor chooses its own hooks (those marked monitor): drop -t"
            ));
        }
        if (args.diag_quiet || args.diag_keep || args.hooks) && !args.diag {
            return Err(usage!("--diag-quiet, --diag-keep and --hooks need --diag"));
        }
        if args.diag && args.basic {
            return Err(usage!("--diag analyses whole packets: drop --basic"));
        }
        if let Some(mode) = socket_mode(args, &lifecycle_flags)? {
            return Ok(Config {
                mode,
                filter: socket_filter(args)?,
                count: args.count.as_deref().map(parse_count).transpose()?,
                date: args.date,
                json: args.json,
                metrics: metrics_addr(args)?,
                rate_limit,
                debug: args.debug,
                backend: args.backend,
                kernel: kernel_opts(args)?,
            });
        }
        let mode = if args.drop {
            if let Some((flag, _)) = lifecycle_flags.iter().find(|(_, set)| *set) {
                return Err(usage!(
                    "{flag} is for lifecycle tracing and cannot be combined with --drop"
                ));
            }
            if matches!(args.backend, BackendChoice::Fentry | BackendChoice::Kprobe) {
                return Err(usage!(
                    "--drop attaches a tracepoint: --backend must be auto, tp-btf or tracepoint"
                ));
            }
            Mode::Drop {
                stack: args.drop_stack,
            }
        } else if args.drop_stack {
            return Err(usage!("--drop-stack needs --drop"));
        } else {
            if (args.basic || args.monitor) && (args.latency_show || args.min_latency.is_some()) {
                return Err(usage!(
                    "--latency-show and --min-latency need packets grouped: drop --basic"
                ));
            }
            let min_latency_ns = match &args.min_latency {
                Some(v) => v
                    .parse::<u64>()
                    .map_err(|_| usage!("--min-latency: '{v}' is not a number of microseconds"))?
                    .saturating_mul(1000),
                None => 0,
            };
            Mode::Lifecycle(Lifecycle {
                rules: args.rules.clone(),
                trace: args.trace.clone(),
                matcher: args.trace_matcher.clone(),
                exclude: args.trace_exclude.clone(),
                free: args.trace_free.clone(),
                stack: args.trace_stack.clone(),
                noclone: args.trace_noclone,
                basic: args.basic || args.monitor,
                detail: args.detail,
                ret: args.ret,
                tiny: args.tiny_show,
                latency_show: args.latency_show,
                min_latency_ns,
                diag: args.diag.then_some(Diag {
                    quiet: args.diag_quiet,
                    keep: args.diag_keep,
                    hooks: args.hooks,
                }),
                latency: (args.latency || args.latency_summary).then_some(Latency {
                    summary: args.latency_summary,
                    free: args.latency_free,
                }),
                func_stats: args.func_stats.then_some(args.verbose),
                monitor: args.monitor,
            })
        };
        Ok(Config {
            mode,
            filter: filter_from_args(args)?,
            count: args.count.as_deref().map(|c| parse_count(c)).transpose()?,
            date: args.date,
            json: args.json,
            metrics: metrics_addr(args)?,
            // `--monitor` is meant to run for hours: bounded output.
            rate_limit: if rate_limit == 0 && args.monitor {
                100
            } else {
                rate_limit
            },
            debug: args.debug,
            backend: args.backend,
            kernel: kernel_opts(args)?,
        })
    }
}

fn metrics_addr(args: &Args) -> Result<Option<std::net::SocketAddr>, UsageError> {
    args.metrics
        .as_deref()
        .map(crate::output::metrics::parse_addr)
        .transpose()
        .map_err(UsageError)
}

/// The socket modes (`--tcp-monitor`, `--sock`, `--rt`, `--rtt`, `--conn`), or `None` for the
/// packet modes. They exclude each other, `--drop` and lifecycle flags.
fn socket_mode(args: &Args, lifecycle_flags: &[(&str, bool)]) -> Result<Option<Mode>, UsageError> {
    let chosen: Vec<&str> = [
        ("--drop", args.drop),
        ("--tcp-monitor", args.tcp_monitor),
        ("--sock", args.sock),
        ("--rt", args.rt),
        ("--conn", args.conn),
        ("--rtt", args.rtt || args.rtt_detail),
    ]
    .into_iter()
    .filter_map(|(f, set)| set.then_some(f))
    .collect();
    if let [a, b, ..] = chosen[..] {
        return Err(usage!("{a} and {b} are different modes: choose one"));
    }
    if args.rt_summary && !args.rt {
        return Err(usage!("--rt-summary needs --rt"));
    }
    let rtt_filter = args.filter_srtt.is_some() || args.filter_minrtt.is_some();
    if rtt_filter && !args.rtt && !args.rtt_detail && !args.sock {
        return Err(usage!(
            "--filter-srtt and --filter-minrtt need --rtt, --rtt-detail or --sock"
        ));
    }
    if (args.interval.is_some() || args.state.is_some()) && !args.conn {
        return Err(usage!("--interval and --state need --conn"));
    }
    let Some(&flag) = chosen.first().filter(|f| **f != "--drop") else {
        return Ok(None);
    };
    // `--sock` takes `-t` too: its own hook names.
    if let Some((other, _)) = lifecycle_flags
        .iter()
        .find(|(f, set)| *set && !(args.sock && *f == "-t/--trace"))
    {
        return Err(usage!(
            "{other} is for lifecycle tracing and cannot be combined with {flag}"
        ));
    }
    if args.drop_stack {
        return Err(usage!("--drop-stack needs --drop"));
    }
    if args.sock && args.backend == BackendChoice::TpBtf {
        return Err(usage!(
            "--sock attaches classic tracepoints and kernel functions: --backend must be auto, tracepoint, fentry or kprobe"
        ));
    }
    if !args.sock && !matches!(args.backend, BackendChoice::Auto | BackendChoice::Tracepoint) {
        return Err(usage!(
            "{flag} attaches classic tracepoints: --backend must be auto or tracepoint"
        ));
    }
    let ms = |flag: &str, v: &Option<String>| -> Result<u32, UsageError> {
        match v {
            Some(v) => v
                .parse::<u32>()
                .ok()
                .and_then(|ms| ms.checked_mul(1000))
                .ok_or_else(|| usage!("{flag}: '{v}' is not a number of milliseconds")),
            None => Ok(0),
        }
    };
    Ok(Some(if args.tcp_monitor {
        Mode::TcpMonitor
    } else if args.sock {
        let rtt = rtt_filter
            .then(|| -> Result<RttFilter, UsageError> {
                Ok(RttFilter {
                    min_srtt_us: ms("--filter-srtt", &args.filter_srtt)?,
                    min_rtt_min_us: ms("--filter-minrtt", &args.filter_minrtt)?,
                })
            })
            .transpose()?;
        Mode::Sock(sock_hooks(args, rtt)?)
    } else if args.rtt || args.rtt_detail {
        Mode::Rtt {
            distribution: args.rtt,
            detail: args.rtt_detail,
            min_srtt_us: ms("--filter-srtt", &args.filter_srtt)?,
            min_rtt_min_us: ms("--filter-minrtt", &args.filter_minrtt)?,
        }
    } else if args.rt {
        if args.port.is_none() && args.sport.is_none() {
            return Err(usage!("--rt needs the server's port: -P PORT or -S PORT"));
        }
        Mode::Rt {
            summary: args.rt_summary,
        }
    } else {
        let interval = match &args.interval {
            Some(v) => Some(
                v.parse::<f64>()
                    .ok()
                    .filter(|s| s.is_finite() && *s >= 0.1)
                    .map(std::time::Duration::from_secs_f64)
                    .ok_or_else(|| usage!("--interval: '{v}' is not a number of seconds (0.1 or more)"))?,
            ),
            None => None,
        };
        let states = crate::modes::conn::parse_states(args.state.as_deref().unwrap_or("all"))
            .map_err(|e| usage!("--state: {e}"))?;
        Mode::Conn { interval, states }
    }))
}

/// `--sock`'s hooks: `-t` (names of its tracepoints and functions, or
/// `all`); the RTT filters add `tcp_ack_update_rtt`, and without `-t` it
/// is the only hook (they are about its samples).
fn sock_hooks(args: &Args, rtt: Option<RttFilter>) -> Result<Sock, UsageError> {
    use crate::modes::tcp::sock::{ACK_UPDATE_RTT, is_tracepoint, parse_hooks};
    let mut hooks = match &args.trace {
        Some(list) => Some(parse_hooks(list).map_err(|e| usage!("-t: {e}"))?),
        None => None,
    };
    if rtt.is_some() {
        let h = hooks.get_or_insert_with(Vec::new);
        if !h.contains(&ACK_UPDATE_RTT) {
            h.push(ACK_UPDATE_RTT);
        }
    }
    if args.backend == BackendChoice::Tracepoint {
        if rtt.is_some() {
            return Err(usage!(
                "--filter-srtt and --filter-minrtt with --sock take their samples from {ACK_UPDATE_RTT}, a kernel function: not with --backend tracepoint"
            ));
        }
        if let Some(h) = &hooks
            && !h.iter().any(|n| is_tracepoint(n))
        {
            return Err(usage!(
                "-t names kernel functions only, and --backend tracepoint hooks none"
            ));
        }
    }
    Ok(Sock { hooks, rtt })
}

/// Filters of the socket modes: the local end is the source, and the
/// packet-only criteria do not apply.
fn socket_filter(args: &Args) -> Result<Filter, UsageError> {
    let mut f = filter_from_args(args)?;
    if f.l3_proto != 0 || f.l4_proto != 0 && f.l4_proto != ipproto::TCP {
        return Err(usage!(
            "these modes see TCP sockets only: -p must be tcp (an address filter picks IPv4 or IPv6)"
        ));
    }
    if f.len_max != 0 || f.tcp_flags != 0 {
        return Err(usage!("--pkt-len and --tcp-flags filter packets, not sockets"));
    }
    f.l4_proto = ipproto::TCP;
    if args.rt {
        // The server's port is the socket's own (local) port: a client
        // socket of the same host must not count as a server.
        if f.port != 0 {
            f.sport = f.port;
            f.port = 0;
        }
    }
    Ok(f)
}

fn filter_from_args(args: &Args) -> Result<Filter, UsageError> {
    let mut f = Filter::default();
    if let Some(a) = &args.saddr {
        f.saddr = parse_addr("--saddr", a)?;
    }
    if let Some(a) = &args.daddr {
        f.daddr = parse_addr("--daddr", a)?;
    }
    if let Some(a) = &args.addr {
        f.addr = parse_addr("--addr", a)?;
    }
    if let Some(p) = &args.sport {
        f.sport = parse_port("--sport", p)?;
    }
    if let Some(p) = &args.dport {
        f.dport = parse_port("--dport", p)?;
    }
    if let Some(p) = &args.port {
        f.port = parse_port("--port", p)?;
    }
    if let Some(p) = &args.proto {
        (f.l3_proto, f.l4_proto) = parse_proto(p)?;
    }
    check_families(&f)?;
    if (f.sport != 0 || f.dport != 0 || f.port != 0)
        && f.l4_proto != 0
        && f.l4_proto != ipproto::TCP
        && f.l4_proto != ipproto::UDP
    {
        return Err(usage!(
            "port filters need a TCP or UDP protocol, not -p {}",
            args.proto.as_deref().unwrap_or("")
        ));
    }
    if let Some(n) = &args.netns {
        f.netns = parse_u32("--netns", n)?;
    }
    if args.netns_current {
        f.netns = std::fs::metadata("/proc/self/ns/net")
            .map_err(|e| usage!("--netns-current: cannot read /proc/self/ns/net: {e}"))?
            .ino() as u32;
    }
    if let Some(p) = &args.pid {
        f.pid = parse_u32("--pid", p)?;
    }
    if let Some(r) = &args.pkt_len {
        (f.len_min, f.len_max) = parse_len_range(r)?;
    }
    if let Some(flags) = &args.tcp_flags {
        f.tcp_flags = parse_tcp_flags(flags)?;
        if f.l4_proto != 0 && f.l4_proto != ipproto::TCP {
            return Err(usage!(
                "--tcp-flags needs TCP, not -p {}",
                args.proto.as_deref().unwrap_or("")
            ));
        }
    }
    Ok(f)
}

/// Address criteria of both families can never match one packet, and an IPv6
/// address with `-p icmp` (or v4 with icmp6/ip6) is a typo worth reporting.
fn check_families(f: &Filter) -> Result<(), UsageError> {
    let fams: Vec<u8> = [f.saddr.family, f.daddr.family, f.addr.family]
        .into_iter()
        .filter(|&x| x != family::NONE)
        .collect();
    if fams.windows(2).any(|w| w[0] != w[1]) {
        return Err(usage!("address filters mix IPv4 and IPv6: no packet can match"));
    }
    let proto_fam = match f.l3_proto {
        ethertype::IPV4 | ethertype::ARP => Some(family::V4),
        ethertype::IPV6 => Some(family::V6),
        _ => None,
    };
    if let (Some(pf), Some(&af)) = (proto_fam, fams.first())
        && pf != af
    {
        return Err(usage!(
            "address family does not match the -p protocol: no packet can match"
        ));
    }
    Ok(())
}

pub fn parse_addr(flag: &str, s: &str) -> Result<AddrMatch, UsageError> {
    let ip: IpAddr = s
        .parse()
        .map_err(|_| usage!("{flag}: '{s}' is not an IPv4 or IPv6 address"))?;
    let mut m = AddrMatch::default();
    match ip {
        IpAddr::V4(v4) => {
            m.family = family::V4;
            m.addr[..4].copy_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            m.family = family::V6;
            m.addr.copy_from_slice(&v6.octets());
        }
    }
    Ok(m)
}

pub fn parse_port(flag: &str, s: &str) -> Result<u16, UsageError> {
    match s.parse::<u32>() {
        Ok(p) if (1..=65535).contains(&p) => Ok(p as u16),
        Ok(_) => Err(usage!("{flag}: port {s} is out of range 1-65535")),
        Err(_) => Err(usage!("{flag}: '{s}' is not a port number")),
    }
}

/// `-p`: returns (ethertype, IP protocol); 0 means "any".
pub fn parse_proto(s: &str) -> Result<(u16, u8), UsageError> {
    Ok(match s.to_ascii_lowercase().as_str() {
        "tcp" => (0, ipproto::TCP),
        "udp" => (0, ipproto::UDP),
        "icmp" => (ethertype::IPV4, ipproto::ICMP),
        "icmp6" | "icmpv6" => (ethertype::IPV6, ipproto::ICMPV6),
        "ip" | "ipv4" => (ethertype::IPV4, 0),
        "ip6" | "ipv6" => (ethertype::IPV6, 0),
        "arp" => (ethertype::ARP, 0),
        _ => {
            return Err(usage!(
                "--proto: unknown protocol '{s}' (known: tcp, udp, icmp, icmp6, ip, ip6, arp)"
            ));
        }
    })
}

/// `--pkt-len`: `N` or `MIN-MAX`, inclusive.
pub fn parse_len_range(s: &str) -> Result<(u32, u32), UsageError> {
    let bad = || usage!("--pkt-len: '{s}' is not a length or MIN-MAX range");
    let (lo, hi) = match s.split_once('-') {
        Some((a, b)) => (
            a.trim().parse::<u32>().map_err(|_| bad())?,
            b.trim().parse::<u32>().map_err(|_| bad())?,
        ),
        None => {
            let n = s.trim().parse::<u32>().map_err(|_| bad())?;
            (n, n)
        }
    };
    if hi == 0 || lo > hi {
        return Err(usage!("--pkt-len: range '{s}' is empty"));
    }
    Ok((lo, hi))
}

/// `--tcp-flags`: letters S A P R F U E C, in any order.
pub fn parse_tcp_flags(s: &str) -> Result<u8, UsageError> {
    let mut bits = 0u8;
    for c in s.chars() {
        bits |= match c.to_ascii_uppercase() {
            'F' => 0x01,
            'S' => 0x02,
            'R' => 0x04,
            'P' => 0x08,
            'A' => 0x10,
            'U' => 0x20,
            'E' => 0x40,
            'C' => 0x80,
            _ => return Err(usage!("--tcp-flags: '{c}' is not one of S A P R F U E C")),
        };
    }
    if bits == 0 {
        return Err(usage!("--tcp-flags: no flag given"));
    }
    Ok(bits)
}

fn parse_u32(flag: &str, s: &str) -> Result<u32, UsageError> {
    match s.parse::<u32>() {
        Ok(0) => Err(usage!("{flag}: must not be 0")),
        Ok(v) => Ok(v),
        Err(_) => Err(usage!("{flag}: '{s}' is not a positive number")),
    }
}

fn parse_count(s: &str) -> Result<u64, UsageError> {
    match s.parse::<u64>() {
        Ok(0) | Err(_) => Err(usage!("--count: '{s}' is not a positive number")),
        Ok(v) => Ok(v),
    }
}

#[cfg(test)]
#[path = "config_tests.rs"]
mod tests;
