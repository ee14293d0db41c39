//! Plans, loads and attaches the TCP object for `--tcp-monitor`, `--sock`,
//! `--rt` and `--rtt`: which of the mode's tracepoints this kernel has,
//! their record layouts from tracefs, socket offsets from BTF, and (for
//! `--sock` and `--rtt`) the kernel functions hooked beside them.

use aya::Ebpf;
use nettrace_common::{KernelLayout, tcp::RttConfig};

use super::{monitor, rt, rtt, sink::TcpSink, sock};
use crate::{
    cli::{self, BackendChoice},
    error::Error,
    kernel::reasons::DropReasons,
    load,
    modes::{Lookups, Mode, Started},
    output::{Clock, histogram::KernelHistogram, progress::Progress},
    session::{Kernel, Session},
};

/// `--tcp-monitor`, `--sock`, `--rt` or `--rtt`.
pub struct Tcp {
    mode: SocketMode,
}

/// The modes of the TCP object.
enum SocketMode {
    Monitor,
    Sock(cli::Sock),
    Rt(cli::Rt),
    Rtt {
        rtt: RttConfig,
        /// `--rtt`: print the distribution every second.
        distribution: bool,
    },
}

impl Tcp {
    pub fn new(mode: &cli::Mode) -> Self {
        let mode = match mode {
            cli::Mode::TcpMonitor => SocketMode::Monitor,
            cli::Mode::Sock(sock) => SocketMode::Sock(sock.clone()),
            cli::Mode::Rt(rt) => SocketMode::Rt(rt.clone()),
            cli::Mode::Rtt {
                distribution,
                detail,
                min_srtt_us,
                min_rtt_min_us,
            } => SocketMode::Rtt {
                rtt: RttConfig {
                    min_srtt_us: *min_srtt_us,
                    min_rtt_min_us: *min_rtt_min_us,
                    detail: *detail as u32,
                    ..Default::default()
                },
                distribution: *distribution,
            },
            other => unreachable!("not a mode of the TCP object: {other:?}"),
        };
        Self { mode }
    }
}

impl Mode for Tcp {
    fn kernel(&self) -> Option<Lookups> {
        Some(Lookups::Few)
    }

    fn start(self: Box<Self>, s: &Session<'_>, k: Option<&Kernel>) -> Result<Started, Error> {
        let k = k.expect("the TCP modes ask for kernel facts");
        start(s, k, self.mode)
    }
}

/// Plans, loads and attaches the TCP object for `mode`.
fn start(s: &Session<'_>, k: &Kernel, mode: SocketMode) -> Result<Started, Error> {
    let config = s.config;
    let (flag, wanted, all_needed): (_, &'static [super::Tracepoint], _) = match mode {
        SocketMode::Monitor => ("--tcp-monitor", &super::MONITOR, false),
        SocketMode::Sock(_) => ("--sock", &super::sock::TRACEPOINTS, false),
        // Each of its tracepoints may be replaced by a function: decided
        // when attaching (`rt::hooks`).
        SocketMode::Rt(_) => ("--rt", &rt::hooks::TRACEPOINTS, false),
        SocketMode::Rtt { .. } => ("--rtt", &super::RTT, false),
    };
    let root = k.tracefs.as_deref().ok_or_else(|| {
        Error::Unsupported(format!(
            "{flag} attaches classic tracepoints, and tracefs cannot be mounted"
        ))
    })?;
    let mut p = super::prepare(&k.btf, &k.layout, root, wanted)
        .map_err(|e| Error::Unsupported(format!("unsupported kernel: {e}")))?;
    let rtt_positions = rtt::positions(&k.btf);
    match &mode {
        SocketMode::Rtt { rtt, .. } => p.config.rtt = *rtt,
        SocketMode::Sock(sock) => {
            // `-t`: only the tracepoints asked for.
            let hooks = sock.hooks.as_deref();
            p.present.retain(|t| sock::selected(hooks, t.name));
            p.missing.retain(|t| sock::selected(hooks, t.name));
            if let Some(f) = sock.rtt {
                p.config.rtt.min_srtt_us = f.min_srtt_us;
                p.config.rtt.min_rtt_min_us = f.min_rtt_min_us;
            }
        }
        _ => {}
    }
    if let Some((sk, sample)) = rtt_positions {
        (p.config.rtt.sk_arg, p.config.rtt.rtt_arg) = (sk, sample);
    }
    let missing: Vec<String> = p
        .missing
        .iter()
        .map(|t| format!("{}:{}", t.group, t.name))
        .collect();
    // `--sock`: socket facts and function arguments from BTF. The tick
    // rate may have to be measured (a few hundred ms): meanwhile, load.
    let hz = matches!(mode, SocketMode::Sock(_)).then(|| std::thread::spawn(crate::kernel::hz::find));
    if let SocketMode::Sock(_) = mode {
        for m in sock::configure(&k.btf, &mut p.config.sock_mode) {
            s.debug(format_args!("--sock: not on this kernel: {m}"));
        }
    }
    let sock_functions = match &mode {
        SocketMode::Sock(sock) => {
            config.backend != BackendChoice::Tracepoint
                && sock::FUNCTIONS.iter().any(|f| {
                    sock::selected(sock.hooks.as_deref(), f.name)
                        && p.config.sock_mode.fn_arg[usize::from(f.hook)] != KernelLayout::NONE
                })
        }
        _ => false,
    };
    if let SocketMode::Rt(opts) = &mode {
        for why in rt::hooks::configure(&k.btf, &k.layout, &mut p.config.rt) {
            s.debug(format_args!("--rt: not usable on this kernel: {why}"));
        }
        p.config.rt.client = opts.client.into();
        if opts.http {
            rt::proto::configure(&k.btf, root, &mut p.config.rt)
                .map_err(|e| Error::Unsupported(format!("--rt-proto http: {e}")))?;
        }
        let state = |name: &str| {
            p.names
                .states
                .iter()
                .find(|(_, n)| n.as_str() == name)
                .map_or(u32::MAX, |(v, _)| *v as u32)
        };
        p.config.rt.state_established = state("ESTABLISHED");
        p.config.rt.state_syn_recv = state("SYN_RECV");
    }
    let function_source = matches!(mode, SocketMode::Rtt { .. }) && rtt_positions.is_some()
        || sock_functions
        || matches!(mode, SocketMode::Rt(_));
    if let SocketMode::Sock(sock) = &mode
        && sock.hooks.is_some()
        && p.present.is_empty()
        && !function_source
    {
        return Err(Error::Unsupported(format!(
            "--sock: none of the hooks -t names can be attached on this kernel{}",
            if missing.is_empty() {
                " (--debug says why)".to_string()
            } else {
                format!(": no tracepoint {}", missing.join(", "))
            }
        )));
    }
    if all_needed && !missing.is_empty() || p.present.is_empty() && !function_source {
        return Err(Error::Unsupported(format!(
            "{flag} needs tracepoints this kernel lacks: {}",
            missing.join(", ")
        )));
    }
    for m in missing.iter().filter(|_| !matches!(mode, SocketMode::Rt(_))) {
        // Said once, so that an absent kind of event is not mistaken for
        // a healthy network.
        eprintln!("nettrace: this kernel has no tracepoint {m}: those events cannot be reported");
    }
    p.config.filter = config.filter;
    p.config.rate_limit = config.rate_limit;
    s.debug(format_args!("tcp config: {:?}", p.config));
    let mut ebpf = load::load_tcp(&p.config, k.aya_btf.as_ref())?;
    load::prime_rate_limit(&mut ebpf, config.rate_limit)?;
    s.admit(&mut ebpf)?;
    let mut rtt = None;
    if let SocketMode::Rtt { distribution, .. } = mode {
        let (source, why) = rtt::attach(&mut ebpf, rtt_positions.is_some(), k.means())?;
        for w in why {
            s.debug(format_args!("rtt source not used: {w}"));
        }
        s.debug(format_args!("rtt samples from {source:?}"));
        let hist = distribution
            .then(|| KernelHistogram::take(&mut ebpf, "RTT_HIST", nettrace_common::tcp::RTT_BUCKETS))
            .transpose()?;
        rtt = Some((source, hist));
    } else if let SocketMode::Rt(_) = mode {
        let used = rt::hooks::attach(&mut ebpf, &p, config.backend, k.means())
            .map_err(|e| Error::Unsupported(format!("--rt: {e}")))?;
        s.debug(format_args!("--rt: timed by {used}"));
        if p.config.rt.proto != 0 {
            rt::proto::attach(&mut ebpf, k.means())
                .map_err(|e| Error::Unsupported(format!("--rt-proto http: {e}")))?;
            s.debug("--rt-proto http: syscalls read/recvfrom/write/sendto");
        }
    } else {
        super::attach(&mut ebpf, &p.present)?;
        s.debug(format_args!("attached {} tracepoints", p.present.len()));
    }
    if let SocketMode::Sock(sock) = &mode {
        attach_sock_functions(s, k, &mut ebpf, &p, sock)?;
    }
    let sock = match hz {
        Some(finding) => {
            let hz = finding.join().ok().flatten();
            match hz {
                Some((hz, from)) => s.debug(format_args!("--sock: HZ {hz} ({from:?})")),
                None => s.debug("--sock: tick rate unknown: timers shown in jiffies"),
            }
            Some(sock::Printer {
                clock: Clock::new(config.date),
                names: p.names.clone(),
                hz: hz.map(|(hz, _)| hz),
            })
        }
        None => None,
    };
    let clock = Clock::new(config.date);
    let sink = TcpSink {
        monitor: matches!(mode, SocketMode::Monitor).then(|| monitor::Printer {
            clock,
            names: p.names,
            resets: DropReasons::resets_from_btf(&k.btf).unwrap_or_default(),
        }),
        summary: matches!(&mode, SocketMode::Rt(o) if o.summary).then(rt::Summary::default),
        rt_stats: match &mode {
            SocketMode::Rt(o) => Some(rt::stats::Stats::new(o.interval, crate::events::monotonic_ns())),
            _ => None,
        },
        tcprt: matches!(&mode, SocketMode::Rt(o) if o.tcprt)
            .then(|| rt::tcprt::Tcprt::new(crate::output::realtime_offset_ns())),
        rtt,
        sock,
        clock,
        out: s.out(),
        metrics: s.counts(),
        owners: s.attribution.clone(),
        progress: Progress::new(config.count),
    };
    Ok(Started {
        ebpf: Some(ebpf),
        sink: Box::new(sink),
    })
}

/// `--sock`: hooks the kernel functions, each by the best mechanism that
/// works; those that cannot be hooked are said with `--debug`. Only a
/// mechanism forced with `--backend` that hooks nothing is an error.
fn attach_sock_functions(
    s: &Session<'_>,
    k: &Kernel,
    ebpf: &mut Ebpf,
    p: &super::Prepared,
    sock: &cli::Sock,
) -> Result<(), Error> {
    let backend = s.config.backend;
    let results = sock::attach_functions(
        ebpf,
        &p.config.sock_mode,
        sock.hooks.as_deref(),
        backend,
        k.means(),
    );
    for (name, r) in &results {
        match r {
            Ok(how) => s.debug(format_args!("--sock: {name:<24} {how:?}")),
            Err(why) => s.debug(format_args!("--sock: {name:<24} not hooked: {why}")),
        }
    }
    let hooked = results.iter().filter(|(_, r)| r.is_ok()).count();
    let forced = match backend {
        BackendChoice::Fentry => Some("fentry"),
        BackendChoice::Kprobe => Some("kprobe"),
        _ => None,
    };
    // Why, on the same line: the first function's reasons.
    let first_why = results
        .iter()
        .find_map(|(name, r)| r.as_ref().err().map(|why| format!("{name}: {why}")))
        .unwrap_or_default();
    // Only when functions were asked for: `-t` naming tracepoints alone
    // wants none, whatever the backend.
    if let (0, Some(forced), false) = (hooked, forced, results.is_empty()) {
        if s.config.kernel.force {
            eprintln!(
                "nettrace: skipping --sock's kernel functions: none could be hooked with --backend {forced} ({first_why})"
            );
        } else {
            return Err(Error::Unsupported(format!(
                "--sock --backend {forced}: no kernel function could be hooked that way ({first_why})"
            )));
        }
    }
    if hooked == 0 && p.present.is_empty() {
        // Said in full: with `-t` naming functions only (or the RTT
        // filters), this is the common way for a kernel to refuse.
        let why: Vec<String> = results
            .iter()
            .map(|(name, r)| match r {
                Ok(_) => unreachable!("none hooked"),
                Err(why) => format!("{name}: {why}"),
            })
            .collect();
        return Err(Error::Unsupported(if why.is_empty() {
            "--sock: no tracepoint and no kernel function could be attached".into()
        } else {
            format!("--sock: nothing could be attached: {}", why.join("; "))
        }));
    }
    s.debug(format_args!(
        "--sock: {} tracepoints, {hooked} functions",
        p.present.len()
    ));
    Ok(())
}
