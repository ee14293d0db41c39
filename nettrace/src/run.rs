//! One tracing session, start to end: check the system, learn the kernel,
//! plan, load and attach, print `begin trace...`, stream events until done,
//! detach, print `end trace...`.

use std::{path::PathBuf, sync::Arc, time::Instant};

use aya::{Btf, Ebpf};
use nettrace_common::{DropConfig, KernelLayout, TraceConfig, drop::DropArgs, trace::HookSlot};

use crate::{
    catalogue::Selection,
    cli::{BackendChoice, Config, Lifecycle, Mode},
    events::{Events, Flow, Record, Sink},
    kernel::{
        btf::{KernelBtf, VMLINUX_BTF},
        caps::{self, Capabilities},
        layout,
        reasons::DropReasons,
        tracefs,
    },
    load,
    modes::{
        drop,
        lifecycle::{self, LifecycleSink, print::LinePrinter, track::Tracker},
        tcp,
    },
    output::{
        Clock, Closed, Out,
        histogram::KernelHistogram,
        metrics::{Counts, Metrics},
        stack::Symbolizer,
    },
    plan::{self, Backend},
};

/// How a session failed.
#[derive(Debug)]
pub enum Failure {
    /// Bad usage found late (hook names, --rules) or a system that cannot
    /// run nettrace (not root, no BTF): exit code 2.
    Unusable(String),
    /// Something broke while running: exit code 1.
    Runtime(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::Runtime(e.into())
    }
}

/// Start-up state shared by every mode.
struct Kernel {
    btf: KernelBtf,
    aya_btf: Option<Btf>,
    layout: KernelLayout,
    tracefs: Option<PathBuf>,
    caps: Capabilities,
}

struct Session<'a> {
    config: &'a Config,
    start: Instant,
    /// `--metrics`: counters being served.
    metrics: Option<Arc<Metrics>>,
}

impl Session<'_> {
    fn debug(&self, msg: impl std::fmt::Display) {
        if self.config.debug {
            eprintln!(
                "nettrace: [{:6.1} ms, {:4} MiB] {msg}",
                self.start.elapsed().as_secs_f64() * 1e3,
                resident_mib()
            );
        }
    }

    fn kernel(&self, many_lookups: bool) -> Result<Kernel, Failure> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(Failure::Unusable(
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
            Some(p) => Failure::Unusable(format!("--btf-path {}: not valid BTF: {e}", p.display())),
            None => Failure::Unusable(format!(
                "{e}: nettrace needs a kernel built with CONFIG_DEBUG_INFO_BTF=y (or --btf-path FILE)"
            )),
        })?;
        if from_file.is_some() {
            self.debug(format_args!("kernel BTF from {}", path.display()));
        }
        let layout =
            layout::resolve(&btf).map_err(|e| Failure::Unusable(format!("unsupported kernel: {e}")))?;
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
        let aya_btf =
            match from_file {
                Some(p) => Some(Btf::parse_file(p, aya::Endianness::default()).map_err(|e| {
                    Failure::Unusable(format!("--btf-path {}: not valid BTF: {e}", p.display()))
                })?),
                None => Btf::from_sys_fs().ok(),
            };
        let mut probes = load::load_probes(aya_btf.as_ref())?;
        let caps = caps::probe(&mut probes, aya_btf.as_ref(), &btf);
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

fn none_args() -> DropArgs {
    DropArgs {
        skb: KernelLayout::NONE,
        location: KernelLayout::NONE,
        reason: KernelLayout::NONE,
        _pad: 0,
    }
}

fn trace_config(k: &Kernel, config: &Config, track: bool) -> TraceConfig {
    TraceConfig {
        layout: k.layout,
        filter: config.filter,
        track: track as u32,
        _pad: 0,
        nf: nettrace_common::trace::NfLayout::OFF,
        opts: nettrace_common::trace::TraceOpts {
            rate_limit: config.rate_limit,
            ..Default::default()
        },
        slots: [HookSlot::default(); nettrace_common::trace::MAX_SLOTS],
    }
}

pub async fn run(config: &Config) -> Result<(), Failure> {
    load::set_libbpf_debug(config.kernel.libbpf_debug);
    let mut s = Session {
        config,
        start: Instant::now(),
        metrics: None,
    };
    // Lifecycle hook names are checked before touching the kernel: a typo
    // is a usage error even without root.
    let prepared = match &config.mode {
        Mode::Lifecycle(l) => Some(lifecycle::prepare(l).map_err(Failure::Unusable)?),
        Mode::Conn { interval, states } => {
            // No eBPF: netlink only, so no kernel facts to gather.
            s.metrics = serve_metrics(&s).await?;
            return run_conn(&s, *interval, *states).await;
        }
        _ => None,
    };
    let k = s.kernel(prepared.is_some())?;
    s.metrics = serve_metrics(&s).await?;
    match (&config.mode, prepared) {
        (Mode::Drop { stack }, _) => run_drop(&s, &k, *stack).await,
        (Mode::Lifecycle(l), Some(p)) => run_lifecycle(&s, &k, l, p).await,
        (Mode::TcpMonitor, _) => run_tcp(&s, &k, SocketMode::Monitor).await,
        (Mode::Sock(sock), _) => run_tcp(&s, &k, SocketMode::Sock(sock.clone())).await,
        (Mode::Rt { summary }, _) => run_tcp(&s, &k, SocketMode::Rt { summary: *summary }).await,
        (
            Mode::Rtt {
                distribution,
                detail,
                min_srtt_us,
                min_rtt_min_us,
            },
            _,
        ) => {
            let rtt = nettrace_common::tcp::RttConfig {
                min_srtt_us: *min_srtt_us,
                min_rtt_min_us: *min_rtt_min_us,
                detail: *detail as u32,
                ..Default::default()
            };
            let distribution = *distribution;
            run_tcp(&s, &k, SocketMode::Rtt { rtt, distribution }).await
        }
        (Mode::Lifecycle(_) | Mode::Conn { .. }, _) => unreachable!("handled above"),
    }
}

/// `--metrics`: starts serving, or `None` when not asked for.
async fn serve_metrics(s: &Session<'_>) -> Result<Option<Arc<Metrics>>, Failure> {
    let Some(addr) = s.config.metrics else {
        return Ok(None);
    };
    let m = Arc::new(Metrics::default());
    let bound = m
        .clone()
        .serve(addr)
        .await
        .map_err(|e| Failure::Unusable(format!("--metrics {addr}: cannot listen: {e}")))?;
    s.debug(format_args!("metrics at http://{bound}/metrics"));
    Ok(Some(m))
}

/// The modes of the TCP object.
enum SocketMode {
    Monitor,
    Sock(crate::cli::Sock),
    Rt {
        summary: bool,
    },
    Rtt {
        rtt: nettrace_common::tcp::RttConfig,
        /// `--rtt`: print the distribution every second.
        distribution: bool,
    },
}

/// `--tcp-monitor`, `--sock`, `--rt` or `--rtt`.
async fn run_tcp(s: &Session<'_>, k: &Kernel, mode: SocketMode) -> Result<(), Failure> {
    let config = s.config;
    let (flag, wanted, all_needed): (_, &'static [tcp::Tracepoint], _) = match mode {
        SocketMode::Monitor => ("--tcp-monitor", &tcp::MONITOR, false),
        SocketMode::Sock(_) => ("--sock", &tcp::sock::TRACEPOINTS, false),
        SocketMode::Rt { .. } => ("--rt", &tcp::RT, true),
        SocketMode::Rtt { .. } => ("--rtt", &tcp::RTT, false),
    };
    let root = k.tracefs.as_deref().ok_or_else(|| {
        Failure::Unusable(format!(
            "{flag} attaches classic tracepoints, and tracefs cannot be mounted"
        ))
    })?;
    let mut p = tcp::prepare(&k.btf, &k.layout, root, wanted)
        .map_err(|e| Failure::Unusable(format!("unsupported kernel: {e}")))?;
    let rtt_positions = tcp::rtt::positions(&k.btf);
    match &mode {
        SocketMode::Rtt { rtt, .. } => p.config.rtt = *rtt,
        SocketMode::Sock(sock) => {
            // `-t`: only the tracepoints asked for.
            let hooks = sock.hooks.as_deref();
            p.present.retain(|t| tcp::sock::selected(hooks, t.name));
            p.missing.retain(|t| tcp::sock::selected(hooks, t.name));
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
        for m in tcp::sock::configure(&k.btf, &mut p.config.sock_mode) {
            s.debug(format_args!("--sock: not on this kernel: {m}"));
        }
    }
    let sock_functions = match &mode {
        SocketMode::Sock(sock) => {
            config.backend != BackendChoice::Tracepoint
                && tcp::sock::FUNCTIONS.iter().any(|f| {
                    tcp::sock::selected(sock.hooks.as_deref(), f.name)
                        && p.config.sock_mode.fn_arg[usize::from(f.hook)] != KernelLayout::NONE
                })
        }
        _ => false,
    };
    let function_source = matches!(mode, SocketMode::Rtt { .. }) && rtt_positions.is_some() || sock_functions;
    if let SocketMode::Sock(sock) = &mode
        && sock.hooks.is_some()
        && p.present.is_empty()
        && !function_source
    {
        return Err(Failure::Unusable(format!(
            "--sock: none of the hooks -t names can be attached on this kernel{}",
            if missing.is_empty() {
                " (--debug says why)".to_string()
            } else {
                format!(": no tracepoint {}", missing.join(", "))
            }
        )));
    }
    if all_needed && !missing.is_empty() || p.present.is_empty() && !function_source {
        return Err(Failure::Unusable(format!(
            "{flag} needs tracepoints this kernel lacks: {}",
            missing.join(", ")
        )));
    }
    for m in &missing {
        // Said once, so that an absent kind of event is not mistaken for
        // a healthy network.
        eprintln!("nettrace: this kernel has no tracepoint {m}: those events cannot be reported");
    }
    p.config.filter = config.filter;
    p.config.rate_limit = config.rate_limit;
    s.debug(format_args!("tcp config: {:?}", p.config));
    let mut ebpf = load::load_tcp(&p.config, k.aya_btf.as_ref())?;
    load::prime_rate_limit(&mut ebpf, config.rate_limit)?;
    let mut rtt = None;
    if let SocketMode::Rtt { distribution, .. } = mode {
        let (source, why) =
            tcp::rtt::attach(&mut ebpf, rtt_positions.is_some(), &k.caps, k.aya_btf.as_ref())?;
        for w in why {
            s.debug(format_args!("rtt source not used: {w}"));
        }
        s.debug(format_args!("rtt samples from {source:?}"));
        let hist = distribution
            .then(|| KernelHistogram::take(&mut ebpf, "RTT_HIST", nettrace_common::tcp::RTT_BUCKETS))
            .transpose()?;
        rtt = Some((source, hist));
    } else {
        tcp::attach(&mut ebpf, &p.present)?;
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
            Some(tcp::sock::Printer {
                clock: Clock::new(config.date),
                names: p.names.clone(),
                hz: hz.map(|(hz, _)| hz),
            })
        }
        None => None,
    };
    let clock = Clock::new(config.date);
    let mut out = Out::new();
    let mut sink = TcpSink {
        monitor: matches!(mode, SocketMode::Monitor).then(|| tcp::monitor::Printer {
            clock,
            names: p.names,
            resets: DropReasons::resets_from_btf(&k.btf).unwrap_or_default(),
        }),
        summary: matches!(mode, SocketMode::Rt { summary: true }).then(tcp::rt::Summary::default),
        rtt,
        sock,
        clock,
        out: &mut out,
        json: config.json,
        metrics: s.metrics.clone().map(Counts::new),
        progress: Progress::new(config.count),
    };
    stream(s, ebpf, &mut sink, |sink| {
        (sink.progress.seen, sink.progress.closed)
    })
    .await
}

/// `--sock`: hooks the kernel functions, each by the best mechanism that
/// works; those that cannot be hooked are said with `--debug`. Only a
/// mechanism forced with `--backend` that hooks nothing is an error.
fn attach_sock_functions(
    s: &Session<'_>,
    k: &Kernel,
    ebpf: &mut Ebpf,
    p: &tcp::Prepared,
    sock: &crate::cli::Sock,
) -> Result<(), Failure> {
    let backend = s.config.backend;
    let results = tcp::sock::attach_functions(
        ebpf,
        &p.config.sock_mode,
        sock.hooks.as_deref(),
        backend,
        &k.caps,
        k.aya_btf.as_ref(),
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
            return Err(Failure::Unusable(format!(
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
        return Err(Failure::Unusable(if why.is_empty() {
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

/// `--conn`: one snapshot, or one every `interval` until interrupted.
async fn run_conn(
    s: &Session<'_>,
    interval: Option<std::time::Duration>,
    states: u32,
) -> Result<(), Failure> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(Failure::Unusable(
            "must run as root: --conn enters every network namespace (CAP_SYS_ADMIN)".into(),
        ));
    }
    let config = s.config;
    let clock = Clock::new(config.date);
    let mut out = Out::new();
    let mut sigint = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())?;
    let mut sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut printed = 0u64;
    loop {
        let filter = config.filter;
        let snap = tokio::task::spawn_blocking(move || crate::modes::conn::snapshot(&filter, states))
            .await
            .map_err(anyhow::Error::from)??;
        for e in &snap.errors {
            eprintln!("nettrace: --conn: {e}");
        }
        s.debug(format_args!(
            "{} connections in {} namespaces",
            snap.conns.len(),
            snap.namespaces
        ));
        let now = crate::events::monotonic_ns();
        let mut lines = Vec::new();
        if interval.is_some() && !config.json {
            lines.push(format!(
                "[{}] {} connections",
                clock.format(now),
                snap.conns.len()
            ));
        }
        for c in &snap.conns {
            if let (Some(m), Some(info)) = (&s.metrics, &c.info)
                && info.rtt_us != 0
            {
                m.rtt(info.rtt_us.into());
            }
            lines.push(if config.json {
                let mut m = c.json();
                m.insert("ts_ns".into(), now.into());
                crate::output::json::line(m)
            } else {
                c.line()
            });
        }
        for l in &lines {
            if out.line(l).is_err() {
                return Ok(());
            }
            printed += 1;
            if config.count.is_some_and(|n| printed >= n) {
                let _ = out.flush();
                return Ok(());
            }
        }
        if out.flush().is_err() {
            return Ok(());
        }
        let Some(every) = interval else {
            return Ok(());
        };
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = sigint.recv() => return Ok(()),
            _ = sigterm.recv() => return Ok(()),
        }
    }
}

async fn run_drop(s: &Session<'_>, k: &Kernel, stack: bool) -> Result<(), Failure> {
    let config = s.config;
    let (btf_args, tp_args) = drop::args(&k.btf, k.tracefs.as_deref());
    let drop_config = DropConfig {
        layout: k.layout,
        filter: config.filter,
        btf_args: btf_args.unwrap_or_else(none_args),
        tp_args: tp_args.unwrap_or_else(none_args),
        stack: stack as u32,
        rate_limit: config.rate_limit,
    };
    let mut ebpf = load::load_drop(&drop_config, k.aya_btf.as_ref())?;
    load::prime_rate_limit(&mut ebpf, config.rate_limit)?;
    s.debug("object loaded");
    let how = drop::attach(
        &mut ebpf,
        config.backend,
        &k.caps,
        k.aya_btf.as_ref(),
        btf_args.is_some(),
        tp_args.is_some(),
    )?;
    s.debug(format_args!("drop monitor attached via {how}"));
    let reasons = DropReasons::from_btf(&k.btf).map_err(anyhow::Error::from)?;
    let printer = drop::Printer::new(
        reasons,
        Clock::new(config.date),
        Symbolizer::new(stack.then_some(&mut ebpf))?,
    );
    let mut out = Out::new();
    let mut sink = DropSink {
        printer: &printer,
        metrics: s.metrics.clone().map(Counts::new),
        out: &mut out,
        stack,
        json: config.json,
        progress: Progress::new(config.count),
    };
    stream(s, ebpf, &mut sink, |sink| {
        (sink.progress.seen, sink.progress.closed)
    })
    .await
}

async fn run_lifecycle(
    s: &Session<'_>,
    k: &Kernel,
    l: &Lifecycle,
    mut prepared: lifecycle::Prepared,
) -> Result<(), Failure> {
    let config = s.config;
    let aya_btf = k
        .aya_btf
        .as_ref()
        .ok_or_else(|| Failure::Unusable("no kernel BTF for aya".into()))?;
    prepared.opts.backend = Some(config.backend).filter(|b| *b != BackendChoice::Auto);
    prepared.force = config.kernel.force;
    let reasons = DropReasons::from_btf(&k.btf).map_err(anyhow::Error::from)?;
    prepared.opts.nf_hooks_by_location = prepared.opts.nf_hooks && reasons.value("NETFILTER_DROP").is_none();
    let plan = plan::build(
        &prepared.catalogue,
        &prepared.selected,
        &k.btf,
        &k.caps,
        k.tracefs.as_deref(),
        &prepared.opts,
    );
    s.debug(format_args!(
        "plan: {} hooks to attach, {} skipped",
        plan.hooks.len(),
        plan.skipped.len()
    ));
    if plan.hooks.is_empty() {
        return Err(Failure::Unusable(lifecycle::nothing_attached(
            &plan.skipped,
            &prepared,
        )));
    }
    // Tracking by skb address only matters when some packets are filtered out.
    // Tracking by skb address only matters when some packets are filtered
    // out, or when the kernel times each packet's life.
    let track = config.filter != nettrace_common::Filter::default()
        || prepared.opts.matchers.is_some()
        || l.latency.is_some();
    let mut trace = trace_config(k, config, track);
    {
        use nettrace_common::trace::trace_opts;
        let o = &mut trace.opts;
        if let Some(lat) = l.latency {
            o.flags |= trace_opts::LATENCY;
            o.flags |= if lat.free { trace_opts::LATENCY_FREE } else { 0 };
            o.flags |= if lat.summary {
                trace_opts::LATENCY_SUMMARY
            } else {
                0
            };
            o.min_latency_ns = l.min_latency_ns;
        }
        if l.func_stats.is_some() {
            o.flags |= trace_opts::FUNC_STATS;
        }
    }
    lifecycle::configure(&mut trace, &plan);
    if l.diag.is_some() {
        trace.nf = crate::kernel::layout::nf_context(&k.btf);
    }
    // Kernels without drop reasons (before 5.17): netfilter's drops are the
    // frees inside nf_hook_slow, found by address.
    let netfilter_drop_at = if l.diag.is_some() && reasons.value("NETFILTER_DROP").is_none() {
        crate::kernel::kallsyms::Symbols::load(crate::kernel::kallsyms::KALLSYMS)
            .ok()
            .and_then(|s| s.function(crate::kernel::layout::NF_HOOK_SLOW))
    } else {
        None
    };
    let nf_hooks = match prepared
        .opts
        .nf_hooks
        .then(|| crate::kernel::layout::nf_hooks(&k.btf, &reasons, netfilter_drop_at, &mut trace.nf))
    {
        None => None,
        Some(Ok(())) => Some(lifecycle::netfilter::NfHooks::from_btf(&k.btf).map_err(anyhow::Error::from)?),
        Some(Err(why)) if config.kernel.force => {
            eprintln!("nettrace: skipping --hooks: it cannot work on this kernel: {why}");
            None
        }
        Some(Err(why)) => {
            return Err(Failure::Unusable(format!(
                "--hooks cannot work on this kernel: {why} (--force runs --diag without it)"
            )));
        }
    };
    let functions = plan
        .hooks
        .iter()
        .any(|p| matches!(p.backend, Backend::Fentry | Backend::Fexit | Backend::Kprobe));
    let mut ebpf = load::load(&trace, Some(aya_btf), functions)?;
    load::prime_rate_limit(&mut ebpf, config.rate_limit)?;
    s.debug("object loaded");
    let kprobe_fallback = k.caps.kprobe.is_ok() && config.backend != BackendChoice::Fentry;
    let attached = lifecycle::attach(
        &mut ebpf,
        &plan,
        aya_btf,
        kprobe_fallback,
        k.tracefs.as_deref(),
        &prepared,
    )?;
    if config.debug {
        for (name, r) in &attached.report {
            match r {
                Ok(b) => s.debug(format_args!("hook {name:<28} {b}")),
                Err(why) => s.debug(format_args!("hook {name:<28} skipped: {why}")),
            }
        }
        for (name, why) in &attached.fallbacks {
            // A verifier log is many lines; its end says why.
            let lines: Vec<&str> = why.lines().filter(|l| !l.trim().is_empty()).collect();
            let tail = lines[lines.len().saturating_sub(4)..].join(" | ");
            s.debug(format_args!(
                "hook {name:<28} kprobe, because fentry failed: {tail}"
            ));
        }
    }
    let total: usize = attached.counts.values().sum();
    s.debug(format_args!("attached {total} hooks: {:?}", attached.counts));
    if total == 0 {
        let failed: Vec<(String, String)> = attached
            .report
            .iter()
            .filter_map(|(n, r)| Some((n.clone(), r.clone().err()?)))
            .collect();
        return Err(Failure::Unusable(lifecycle::nothing_attached(&failed, &prepared)));
    }
    if attached.matchers_attached == 0 {
        return Err(Failure::Unusable(
            "--trace-matcher: none of its hooks could be attached, so no packet would ever be followed"
                .into(),
        ));
    }
    for w in &attached.warnings {
        eprintln!("nettrace: {w}");
    }
    let stacks_wanted = !prepared.opts.stacks.is_empty() || nf_hooks.is_some();
    let printer = LinePrinter {
        clock: Clock::new(config.date),
        names: attached.names_by_slot,
        reasons,
        resets: DropReasons::resets_from_btf(&k.btf).map_err(anyhow::Error::from)?,
        reset_by_slot: attached.reset_by_slot,
        style: lifecycle::print::Style {
            detail: l.detail,
            tiny: l.tiny,
            latency: l.latency_show,
        },
    };
    let mut out = Out::new();
    let diag = l.diag.map(|opts| lifecycle::DiagState {
        opts,
        netfilter_drop_at,
        rules_by_slot: attached
            .hook_by_slot
            .iter()
            .map(|&i| prepared.catalogue.hooks[i].hook.rules.clone())
            .collect(),
        group_by_slot: attached
            .hook_by_slot
            .iter()
            .map(|&i| {
                prepared.catalogue.hooks[i]
                    .path
                    .first()
                    .cloned()
                    .unwrap_or_default()
            })
            .collect(),
        nf_hooks,
        nf_notes: lifecycle::netfilter::NfNotes::new(
            lifecycle::netfilter::hook_points(&k.btf).unwrap_or_default(),
        ),
        flags_by_slot: attached.flags_by_slot.clone(),
    });
    let mut sink = LifecycleSink {
        printer,
        diag,
        symbols: Symbolizer::new(stacks_wanted.then_some(&mut ebpf))?,
        tracker: Tracker::default(),
        out: &mut out,
        print_stack_by_slot: attached
            .hook_by_slot
            .iter()
            .map(|i| prepared.opts.stacks.contains(i))
            .collect(),
        free_by_slot: attached.free_by_slot,
        // --latency: one event per packet, at its free.
        basic: l.basic || l.latency.is_some(),
        json: config.json,
        metrics: s.metrics.clone().map(Counts::new),
        // With --latency the kernel applied it already.
        min_latency_ns: if l.latency.is_some() { 0 } else { l.min_latency_ns },
        latency: l.latency.is_some_and(|lat| !lat.summary),
        latency_hist: l
            .latency
            .filter(|lat| lat.summary)
            .map(|_| {
                KernelHistogram::take(&mut ebpf, "LATENCY_HIST", nettrace_common::trace::LATENCY_BUCKETS)
            })
            .transpose()?,
        func_stats: l
            .func_stats
            .map(|verbose| lifecycle::FuncStats::take(&mut ebpf).map(|f| (f, verbose)))
            .transpose()?,
        count: config.count,
        printed: 0,
        closed: false,
        diagnosed: false,
    };
    let _: &Selection = &prepared.selected;
    stream(s, ebpf, &mut sink, |sink| {
        sink.finish();
        (sink.printed, sink.closed)
    })
    .await
}

/// Prints `begin trace...`, runs the event loop, detaches, prints
/// `end trace...` and the loss counts.
async fn stream<S: Sink + HasOut>(
    s: &Session<'_>,
    mut ebpf: Ebpf,
    sink: &mut S,
    finish: impl FnOnce(&mut S) -> (u64, bool),
) -> Result<(), Failure> {
    let mut events = Events::new(&mut ebpf)?;
    events.metrics = s.metrics.clone();
    s.debug("ready");
    let json = s.config.json;
    let marker = |kind: &str, text: &str| {
        if json {
            crate::output::json::line(crate::output::json::record(kind))
        } else {
            text.to_string()
        }
    };
    if sink
        .out()
        .line(&marker("begin", "begin trace..."))
        .and_then(|()| sink.out().flush())
        .is_err()
    {
        return Ok(());
    }
    let ended = events.run(sink).await;
    s.debug(format_args!("stream: {}", events.stats()));
    let lost = events.lost().unwrap_or(0);
    let untracked = events.untracked().unwrap_or(0);
    let rate_limited = events.rate_limited().unwrap_or(0);
    // Detach before saying so: dropping the object closes every link.
    drop(events);
    drop(ebpf);
    let (seen, closed) = finish(sink);
    let ended = ended?;
    s.debug(format_args!("ended by {ended:?} after {seen} events/packets"));
    if json && !closed {
        // Losses as records too, so a consumer of the stream sees them.
        for (kind, n) in [
            ("ring_buffer_full", lost),
            ("tracking_table_full", untracked),
            ("rate_limited", rate_limited),
        ] {
            if n > 0 {
                let mut m = crate::output::json::record("lost");
                m.insert("reason".into(), kind.into());
                m.insert("count".into(), n.into());
                let _ = sink.out().line(&crate::output::json::line(m));
            }
        }
    }
    if !closed {
        let _ = sink
            .out()
            .line(&marker("end", "end trace..."))
            .and_then(|()| sink.out().flush());
    }
    if lost > 0 {
        eprintln!("nettrace: {lost} events lost (ring buffer full)");
    }
    if rate_limited > 0 {
        eprintln!(
            "nettrace: {rate_limited} events held back by --rate-limit {}",
            s.config.rate_limit
        );
    }
    if untracked > 0 {
        eprintln!("nettrace: {untracked} packets could not be followed (tracking table full)");
    }
    Ok(())
}

/// Sinks own (a borrow of) stdout; `stream` writes the markers through it.
trait HasOut {
    fn out(&mut self) -> &mut Out;
}

impl HasOut for DropSink<'_> {
    fn out(&mut self) -> &mut Out {
        self.out
    }
}

impl HasOut for TcpSink<'_> {
    fn out(&mut self) -> &mut Out {
        self.out
    }
}

impl HasOut for LifecycleSink<'_> {
    fn out(&mut self) -> &mut Out {
        self.out
    }
}

/// Prints drop events as they arrive and stops at `-c N` or a closed pipe.
struct DropSink<'a> {
    printer: &'a drop::Printer,
    metrics: Option<Counts>,
    out: &'a mut Out,
    stack: bool,
    json: bool,
    progress: Progress,
}

impl DropSink<'_> {
    fn write(&mut self, ev: &nettrace_common::DropEvent) -> Result<(), Closed> {
        if let Some(c) = &mut self.metrics {
            let printer = self.printer;
            c.dropped(ev.reason, ev.location, || printer.reason_and_location(ev));
            c.hook(0, || "kfree_skb".into());
        }
        if self.json {
            return self.out.line(&self.printer.json(ev, self.stack));
        }
        self.out.line(&self.printer.line(ev))?;
        if self.stack {
            for l in self.printer.stack(ev) {
                self.out.line(&l)?;
            }
        }
        Ok(())
    }
}

impl Sink for DropSink<'_> {
    fn event(&mut self, record: Record) -> Flow {
        let Record::Drop(ev) = record else {
            return Flow::Continue;
        };
        let r = self.write(&ev).map(|()| 1);
        self.progress.after(r)
    }

    fn batch_done(&mut self) -> Flow {
        let r = self.out.flush().map(|()| 0);
        self.progress.after(r)
    }
}

/// What a sink of events has printed, against `-c N`, and whether the
/// reader of the output went away: when to stop.
struct Progress {
    count: Option<u64>,
    seen: u64,
    closed: bool,
}

impl Progress {
    fn new(count: Option<u64>) -> Self {
        Self {
            count,
            seen: 0,
            closed: false,
        }
    }

    /// After writing `Ok(n)` more events (or failing to write).
    fn after(&mut self, r: Result<u64, Closed>) -> Flow {
        match r {
            Err(Closed) => {
                self.closed = true;
                Flow::Stop
            }
            Ok(n) => {
                self.seen += n;
                if self.count.is_some_and(|c| self.seen >= c) {
                    Flow::Stop
                } else {
                    Flow::Continue
                }
            }
        }
    }
}

/// Prints `--tcp-monitor` events and `--rt` tasks (or, with `--rt-summary`,
/// their histograms once a second).
struct TcpSink<'a> {
    /// `--tcp-monitor`'s printer; `None` for `--rt`.
    monitor: Option<tcp::monitor::Printer>,
    /// `--rt-summary`: the current second's histograms.
    summary: Option<tcp::rt::Summary>,
    /// `--rtt`: the sample source, and the kernel's histogram when the
    /// distribution is printed.
    rtt: Option<(tcp::rtt::Source, Option<KernelHistogram>)>,
    /// `--sock`'s printer.
    sock: Option<tcp::sock::Printer>,
    clock: Clock,
    out: &'a mut Out,
    json: bool,
    metrics: Option<Counts>,
    progress: Progress,
}

impl TcpSink<'_> {
    fn write(&mut self, record: &Record) -> Result<bool, Closed> {
        use nettrace_common::tcp::tp;
        if let (Record::Sock(ev), Some(p)) = (record, &self.sock) {
            if let Some(c) = &mut self.metrics {
                c.hook(tcp::sock::hook_slot(ev), || {
                    tcp::sock::hook_name(ev.source, ev.hook).into()
                });
                if tcp::sock::is_rtt_sample(ev) {
                    c.rtt_sample(ev.rtt_us.into());
                }
            }
            let l = if self.json { p.json(ev) } else { p.line(ev) };
            self.out.line(&l)?;
            return Ok(true);
        }
        if let (Record::Tcp(ev), Some(p)) = (record, &self.monitor) {
            if let Some(c) = &mut self.metrics {
                c.hook(ev.kind.into(), || tcp::monitor::event_name(ev.kind).into());
                if ev.kind == tp::SEND_RESET
                    && let Some((_, name)) = p.why(ev)
                {
                    c.reset(ev.value, || name);
                }
            }
            let l = if self.json { p.json(ev) } else { p.line(ev) };
            self.out.line(&l)?;
            return Ok(true);
        }
        if let (Record::Rtt(ev), Some((source, _))) = (record, &self.rtt) {
            if let Some(c) = &self.metrics {
                c.rtt_sample(ev.rtt_us.into());
            }
            let l = if self.json {
                tcp::rtt::json(&self.clock, *source, ev)
            } else {
                tcp::rtt::line(&self.clock, *source, ev)
            };
            self.out.line(&l)?;
            return Ok(true);
        }
        if let Record::Rt(ev) = record {
            if let Some(c) = &mut self.metrics {
                c.task(ev);
            }
            if let Some(sum) = &mut self.summary {
                sum.add(ev);
                return Ok(false);
            }
            let l = if self.json {
                tcp::rt::json(&self.clock, ev)
            } else {
                tcp::rt::line(&self.clock, ev)
            };
            self.out.line(&l)?;
            return Ok(true);
        }
        Ok(false)
    }
}

impl Sink for TcpSink<'_> {
    fn event(&mut self, record: Record) -> Flow {
        let r = self.write(&record).map(u64::from);
        self.progress.after(r)
    }

    fn batch_done(&mut self) -> Flow {
        let r = self.out.flush().map(|()| 0);
        self.progress.after(r)
    }

    fn tick(&mut self, now_ns: u64) -> Flow {
        let lines = if let Some(sum) = &mut self.summary {
            if self.json {
                vec![sum.take_json(now_ns)]
            } else {
                sum.take(&self.clock, now_ns)
            }
        } else if let Some((_, Some(hist))) = &self.rtt {
            match hist.read() {
                Ok(h) => tcp::rtt::summary(&h, self.json, now_ns),
                Err(e) => {
                    eprintln!("nettrace: cannot read the RTT histogram: {e}");
                    return Flow::Stop;
                }
            }
        } else {
            return Flow::Continue;
        };
        // A summary counts as one event for `-c`.
        let r = lines
            .iter()
            .try_for_each(|l| self.out.line(l))
            .and_then(|()| self.out.flush())
            .map(|()| 1);
        self.progress.after(r)
    }
}
