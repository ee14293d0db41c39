//! Plans, loads and attaches the lifecycle object: the catalogue's selected
//! hooks planned against this kernel (`crate::plan`), the per-slot
//! programs attached (`super::attach`), and the sink set up for `--diag`,
//! `--hooks`, `--latency`, `--func-stats` and the stack options.

use nettrace_common::{
    TraceConfig,
    trace::{HookSlot, slot_flags},
};

use super::{LifecycleSink, print::LinePrinter, track::Tracker};
use crate::{
    cli::{self, BackendChoice, Config},
    error::Error,
    kernel::reasons::DropReasons,
    load,
    modes::{Lookups, Mode, Started},
    output::{Clock, histogram::KernelHistogram, progress::Progress, stack::Symbolizer},
    plan::{self, Backend},
    session::{Kernel, Session},
};

/// The default mode and `--diag`, `--monitor`, `--latency`, `--func-stats`.
pub struct Lifecycle {
    l: cli::Lifecycle,
    prepared: super::Prepared,
}

impl Lifecycle {
    /// Resolves the hook names (usage errors, before touching the kernel).
    pub fn new(l: &cli::Lifecycle) -> Result<Self, Error> {
        Ok(Self {
            prepared: super::prepare(l).map_err(Error::Usage)?,
            l: l.clone(),
        })
    }
}

impl Mode for Lifecycle {
    fn kernel(&self) -> Option<Lookups> {
        Some(Lookups::Many)
    }

    fn start(self: Box<Self>, s: &Session<'_>, k: Option<&Kernel>) -> Result<Started, Error> {
        let k = k.expect("lifecycle asks for kernel facts");
        let Lifecycle { l, mut prepared } = *self;
        let l = &l;
        let config = s.config;
        let aya_btf = k
            .aya_btf
            .as_ref()
            .ok_or_else(|| Error::Unsupported("no kernel BTF for aya".into()))?;
        prepared.opts.backend = Some(config.backend).filter(|b| *b != BackendChoice::Auto);
        prepared.force = config.kernel.force;
        let reasons = DropReasons::from_btf(&k.btf).map_err(anyhow::Error::from)?;
        prepared.opts.nf_hooks_by_location =
            prepared.opts.nf_hooks && reasons.value("NETFILTER_DROP").is_none();
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
            return Err(Error::Unsupported(super::nothing_attached(
                &plan.skipped,
                &prepared,
            )));
        }
        // Tracking by skb address only matters when some packets are filtered
        // out, or when the kernel times each packet's life; and it needs a
        // hook that frees: without one (`-t netif_receive_skb`) an entry
        // would outlive its packet, and the next packet at a recycled
        // address would pass the filter as if it were the same one.
        let frees = plan.hooks.iter().any(|h| h.config.flags & slot_flags::FREE != 0);
        let track = frees
            && (config.filter != nettrace_common::Filter::default()
                || prepared.opts.matchers.is_some()
                || l.latency.is_some());
        let mut trace = trace_config(k, config, l, track, &plan);
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
            Some(Ok(())) => Some(super::netfilter::NfHooks::from_btf(&k.btf).map_err(anyhow::Error::from)?),
            Some(Err(why)) if config.kernel.force => {
                eprintln!("nettrace: skipping --hooks: it cannot work on this kernel: {why}");
                None
            }
            Some(Err(why)) => {
                return Err(Error::Unsupported(format!(
                    "--hooks cannot work on this kernel: {why} (--force runs --diag without it)"
                )));
            }
        };
        let functions = plan
            .hooks
            .iter()
            .any(|p| matches!(p.backend, Backend::Fentry | Backend::Fexit | Backend::Kprobe));
        let mut ebpf = load::load(&trace, Some(aya_btf), functions, config.expression.as_ref())?;
        load::prime_rate_limit(&mut ebpf, config.rate_limit)?;
        s.admit(&mut ebpf)?;
        s.debug("object loaded");
        let kprobe_fallback = k.caps.kprobe.is_ok() && config.backend != BackendChoice::Fentry;
        let attached = super::attach(
            &mut ebpf,
            &plan,
            aya_btf,
            kprobe_fallback,
            k.tracefs.as_deref(),
            &prepared,
        )?;
        report(s, &attached, &prepared)?;
        let stacks_wanted = !prepared.opts.stacks.is_empty() || nf_hooks.is_some();
        let diag = diag_state(l, k, &prepared, &attached, netfilter_drop_at, nf_hooks);
        let names_by_slot = attached.names_by_slot.clone();
        let printer = LinePrinter {
            clock: Clock::new(config.date),
            names: attached.names_by_slot,
            reasons,
            resets: DropReasons::resets_from_btf(&k.btf).map_err(anyhow::Error::from)?,
            reset_by_slot: attached.reset_by_slot,
            style: super::print::Style {
                detail: l.detail,
                tiny: l.tiny,
                latency: l.latency_show,
            },
            owners: s.attribution.clone(),
        };
        let sink = LifecycleSink {
            printer,
            diag,
            symbols: Symbolizer::new(stacks_wanted.then_some(&mut ebpf))?,
            tracker: Tracker::default(),
            out: s.out(),
            print_stack_by_slot: attached
                .hook_by_slot
                .iter()
                .map(|i| prepared.opts.stacks.contains(i))
                .collect(),
            free_by_slot: attached.free_by_slot,
            // --latency: one event per packet, at its free.
            basic: l.basic || l.latency.is_some(),
            metrics: s.counts(),
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
                .map(|verbose| super::FuncStats::take(&mut ebpf).map(|f| (f, verbose)))
                .transpose()?,
            progress: Progress::new(config.count),
            diagnosed: false,
            pcap: s
                .pcap()?
                .map(|out| super::frame::LifecyclePcap::new(out, &names_by_slot, &attached.report)),
        };
        Ok(Started {
            ebpf: Some(ebpf),
            sink: Box::new(sink),
        })
    }
}

/// The object's configuration: layout, filter, tracking, the mode's
/// options and the planned slots.
fn trace_config(
    k: &Kernel,
    config: &Config,
    l: &cli::Lifecycle,
    track: bool,
    plan: &plan::Plan,
) -> TraceConfig {
    use nettrace_common::trace::trace_opts;
    let mut trace = TraceConfig {
        layout: k.layout,
        filter: config.filter,
        track: track as u32,
        _pad: 0,
        nf: nettrace_common::trace::NfLayout::OFF,
        opts: nettrace_common::trace::TraceOpts {
            rate_limit: config.rate_limit,
            snaplen: config.pcap.as_ref().map_or(0, crate::cli::Pcap::kernel_snaplen),
            ..Default::default()
        },
        slots: [HookSlot::default(); nettrace_common::trace::MAX_SLOTS],
    };
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
    if config.bench.floor {
        o.flags |= trace_opts::FLOOR;
    }
    super::configure(&mut trace, plan);
    if l.diag.is_some() {
        trace.nf = crate::kernel::layout::nf_context(&k.btf);
    }
    trace
}

/// `--debug`'s per-hook lines, the errors when nothing useful attached,
/// and the warning lines about skipped hooks.
fn report(
    s: &Session<'_>,
    attached: &super::attach::Attached,
    prepared: &super::Prepared,
) -> Result<(), Error> {
    if s.config.debug {
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
        return Err(Error::Unsupported(super::nothing_attached(&failed, prepared)));
    }
    if attached.matchers_attached == 0 {
        return Err(Error::Unsupported(
            "--trace-matcher: none of its hooks could be attached, so no packet would ever be followed"
                .into(),
        ));
    }
    for w in &attached.warnings {
        eprintln!("nettrace: {w}");
    }
    Ok(())
}

/// What `--diag` needs per slot: the rules of each slot's hook, its group,
/// the netfilter notes and `--hooks`.
fn diag_state(
    l: &cli::Lifecycle,
    k: &Kernel,
    prepared: &super::Prepared,
    attached: &super::attach::Attached,
    netfilter_drop_at: Option<(u64, u64)>,
    nf_hooks: Option<super::netfilter::NfHooks>,
) -> Option<super::DiagState> {
    l.diag.map(|opts| super::DiagState {
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
        nf_notes: super::netfilter::NfNotes::new(super::netfilter::hook_points(&k.btf).unwrap_or_default()),
        flags_by_slot: attached.flags_by_slot.clone(),
    })
}
