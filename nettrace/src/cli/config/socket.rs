//! The TCP socket modes (`--tcp-monitor`, `--sock`, `--rt`, `--rtt`,
//! `--rtt-detail`, `--conn`): which one was asked for, the options only
//! they take, and their filter, which sees a socket's local end as the
//! source and refuses what only packets have.

use nettrace_common::{Filter, ipproto};

use super::{Mode, RttFilter, Sock, UsageError, lifecycle};
use crate::cli::args::{Args, BackendChoice, RtFormat, RtProto};

/// The socket mode asked for, or `None` for the packet modes. The modes
/// exclude each other and `--drop`; `lifecycle_given` (the lifecycle
/// flags given, `lifecycle::given`) must be empty but for `--sock`'s `-t`.
pub(super) fn mode(args: &Args, lifecycle_given: &[&str]) -> Result<Option<Mode>, UsageError> {
    let chosen: Vec<&str> = [
        ("--drop", args.drops.drop),
        ("--tcp-monitor", args.socket.tcp_monitor),
        ("--sock", args.socket.sock),
        ("--rt", args.rt.rt),
        ("--conn", args.socket.conn),
        ("--rtt", args.socket.rtt || args.socket.rtt_detail),
    ]
    .into_iter()
    .filter_map(|(f, set)| set.then_some(f))
    .collect();
    if let [a, b, ..] = chosen[..] {
        return Err(usage!("{a} and {b} are different modes: choose one"));
    }
    if args.rt.rt_summary && !args.rt.rt {
        return Err(usage!("--rt-summary needs --rt"));
    }
    if args.rt.rt_format == RtFormat::Tcprt {
        if !args.rt.rt {
            return Err(usage!("--rt-format needs --rt"));
        }
        if args.output.json {
            return Err(usage!(
                "--rt-format tcprt writes tcprt's text lines: it cannot be combined with --json"
            ));
        }
        if args.rt.rt_summary {
            return Err(usage!(
                "--rt-format tcprt writes one line per task: it cannot be combined with --rt-summary"
            ));
        }
    }
    if args.rt.rt_proto != RtProto::Tcp && !args.rt.rt {
        return Err(usage!("--rt-proto needs --rt"));
    }
    if args.rt.client && !args.rt.rt {
        return Err(usage!("--client needs --rt"));
    }
    let rtt_filter = args.socket.filter_srtt.is_some() || args.socket.filter_minrtt.is_some();
    if rtt_filter && !args.socket.rtt && !args.socket.rtt_detail && !args.socket.sock {
        return Err(usage!(
            "--filter-srtt and --filter-minrtt need --rtt, --rtt-detail or --sock"
        ));
    }
    if args.socket.interval.is_some() && !args.socket.conn && !args.rt.rt {
        return Err(usage!("--interval needs --conn or --rt"));
    }
    if args.socket.state.is_some() && !args.socket.conn {
        return Err(usage!("--state needs --conn"));
    }
    let Some(&flag) = chosen.first().filter(|f| **f != "--drop") else {
        return Ok(None);
    };
    // `--sock` takes `-t` too: its own hook names.
    if let Some(other) = lifecycle_given
        .iter()
        .find(|f| !(args.socket.sock && **f == lifecycle::TRACE))
    {
        return Err(usage!(
            "{other} is for lifecycle tracing and cannot be combined with {flag}"
        ));
    }
    if args.drops.drop_stack {
        return Err(usage!("--drop-stack needs --drop"));
    }
    if (args.socket.sock || args.rt.rt) && args.kernel.backend == BackendChoice::TpBtf {
        return Err(usage!(
            "{flag} attaches classic tracepoints and kernel functions: --backend must be auto, tracepoint, fentry or kprobe"
        ));
    }
    if !args.socket.sock
        && !args.rt.rt
        && !matches!(
            args.kernel.backend,
            BackendChoice::Auto | BackendChoice::Tracepoint
        )
    {
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
    Ok(Some(if args.socket.tcp_monitor {
        Mode::TcpMonitor
    } else if args.socket.sock {
        let rtt = rtt_filter
            .then(|| -> Result<RttFilter, UsageError> {
                Ok(RttFilter {
                    min_srtt_us: ms("--filter-srtt", &args.socket.filter_srtt)?,
                    min_rtt_min_us: ms("--filter-minrtt", &args.socket.filter_minrtt)?,
                })
            })
            .transpose()?;
        Mode::Sock(sock_hooks(args, rtt)?)
    } else if args.socket.rtt || args.socket.rtt_detail {
        Mode::Rtt {
            distribution: args.socket.rtt,
            detail: args.socket.rtt_detail,
            min_srtt_us: ms("--filter-srtt", &args.socket.filter_srtt)?,
            min_rtt_min_us: ms("--filter-minrtt", &args.socket.filter_minrtt)?,
        }
    } else if args.rt.rt {
        let client = rt_client(args);
        let f = &args.filters;
        if client && f.sport.is_some() {
            return Err(usage!(
                "--rt --client times this host's clients: their server's port is -P or -D, not -S"
            ));
        }
        if client && f.port.is_none() && f.dport.is_none() {
            return Err(usage!(
                "--rt --client needs the server's port: -P PORT or -D PORT"
            ));
        }
        if !client && f.port.is_none() && f.sport.is_none() {
            return Err(usage!(
                "--rt needs the server's port: -P PORT or -S PORT (or -D PORT to time this host's clients of it)"
            ));
        }
        Mode::Rt(super::Rt {
            summary: args.rt.rt_summary,
            client,
            tcprt: args.rt.rt_format == RtFormat::Tcprt,
            http: args.rt.rt_proto == RtProto::Http,
            interval: interval(args)?.unwrap_or(super::Rt::STATS_EVERY),
        })
    } else {
        let interval = interval(args)?;
        let states = crate::modes::conn::parse_states(args.socket.state.as_deref().unwrap_or("all"))
            .map_err(|e| usage!("--state: {e}"))?;
        Mode::Conn { interval, states }
    }))
}

/// `--sock`'s hooks: `-t` (names of its tracepoints and functions, or
/// `all`); the RTT filters add `tcp_ack_update_rtt`, and without `-t` it
/// is the only hook (they are about its samples).
fn sock_hooks(args: &Args, rtt: Option<RttFilter>) -> Result<Sock, UsageError> {
    use crate::modes::tcp::sock::{ACK_UPDATE_RTT, is_tracepoint, parse_hooks};
    let mut hooks = match &args.lifecycle.trace {
        Some(list) => Some(parse_hooks(list).map_err(|e| usage!("-t: {e}"))?),
        None => None,
    };
    if rtt.is_some() {
        let h = hooks.get_or_insert_with(Vec::new);
        if !h.contains(&ACK_UPDATE_RTT) {
            h.push(ACK_UPDATE_RTT);
        }
    }
    if args.kernel.backend == BackendChoice::Tracepoint {
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
pub(super) fn filter(args: &Args) -> Result<Filter, UsageError> {
    let mut f = super::filter::from_args(&args.filters)?;
    if f.l3_proto != 0 || f.l4_proto != 0 && f.l4_proto != ipproto::TCP {
        return Err(usage!(
            "these modes see TCP sockets only: -p must be tcp (an address filter picks IPv4 or IPv6)"
        ));
    }
    if f.len_max != 0 || f.tcp_flags != 0 {
        return Err(usage!("--pkt-len and --tcp-flags filter packets, not sockets"));
    }
    f.l4_proto = ipproto::TCP;
    if args.rt.rt && f.port != 0 {
        // The server's port is a server socket's own (local) port, a
        // client socket's remote one: the other side's sockets on the same
        // host must not count.
        if rt_client(args) {
            f.dport = f.port;
        } else {
            f.sport = f.port;
        }
        f.port = 0;
    }
    Ok(f)
}

/// `--interval SECS` (`--conn`, `--rt`).
fn interval(args: &Args) -> Result<Option<std::time::Duration>, UsageError> {
    match &args.socket.interval {
        Some(v) => Ok(Some(
            v.parse::<f64>()
                .ok()
                .filter(|s| s.is_finite() && *s >= 0.1)
                .map(std::time::Duration::from_secs_f64)
                .ok_or_else(|| usage!("--interval: '{v}' is not a number of seconds (0.1 or more)"))?,
        )),
        None => Ok(None),
    }
}

/// `--rt` times client sockets: `--client`, or `-D` without `-P`/`-S`.
fn rt_client(args: &Args) -> bool {
    let f = &args.filters;
    args.rt.client || f.dport.is_some() && f.port.is_none() && f.sport.is_none()
}
