//! The lifecycle flags (`LifecycleArgs`, and `DiagArgs` for `--diag`):
//! which of them were given — the one list every "is for lifecycle
//! tracing" error reads —, how they may be combined, and the
//! `Mode::Lifecycle` they make.

use super::{Diag, Latency, Lifecycle, Mode, UsageError};
use crate::cli::args::{Args, DiagArgs, LifecycleArgs};

/// `-t`, the one lifecycle flag `--sock` takes too (its own hook names).
pub(super) const TRACE: &str = "-t/--trace";

/// The lifecycle flags given, by the names errors use, in the order errors
/// pick the first of them: every flag of `LifecycleArgs` and `DiagArgs`.
/// Both are destructured without `..`, so a flag added to either group
/// does not compile until it has its place here, and no other mode can
/// take it silently.
pub(super) fn given(args: &Args) -> Vec<&'static str> {
    let LifecycleArgs {
        trace,
        rules,
        trace_matcher,
        trace_exclude,
        trace_free,
        trace_stack,
        trace_noclone,
        basic,
        detail,
        ret,
        tiny_show,
        latency_show,
        latency,
        latency_summary,
        latency_free,
        func_stats,
        verbose,
        monitor,
        min_latency,
    } = &args.lifecycle;
    let DiagArgs {
        diag,
        diag_quiet,
        diag_keep,
        hooks,
    } = &args.diagnosis;
    // A flag that needs another one comes after it (`check` has made sure
    // the other is there), so it is never the one named.
    [
        (TRACE, trace.is_some()),
        ("--rules", rules.is_some()),
        ("--trace-matcher", trace_matcher.is_some()),
        ("--trace-exclude", trace_exclude.is_some()),
        ("--trace-free", trace_free.is_some()),
        ("--trace-stack", trace_stack.is_some()),
        ("--trace-noclone", *trace_noclone),
        ("--basic", *basic),
        ("--detail", *detail),
        ("--ret", *ret),
        ("--tiny-show", *tiny_show),
        ("--latency-show", *latency_show),
        ("--min-latency", min_latency.is_some()),
        ("--diag", *diag),
        ("--diag-quiet", *diag_quiet),
        ("--diag-keep", *diag_keep),
        ("--hooks", *hooks),
        ("--latency", *latency),
        ("--latency-summary", *latency_summary),
        ("--latency-free", *latency_free),
        ("--func-stats", *func_stats),
        ("-v/--verbose", *verbose),
        ("--monitor", *monitor),
    ]
    .into_iter()
    .filter_map(|(flag, set)| set.then_some(flag))
    .collect()
}

/// How the lifecycle flags combine among themselves; checked before the
/// mode is known, so these errors come first whatever the mode.
pub(super) fn check(args: &Args) -> Result<(), UsageError> {
    let (l, d) = (&args.lifecycle, &args.diagnosis);
    if l.verbose && !l.func_stats {
        return Err(usage!("-v/--verbose needs --func-stats"));
    }
    if l.latency_free && !l.latency && !l.latency_summary {
        return Err(usage!("--latency-free needs --latency or --latency-summary"));
    }
    // The ways of reporting packets that exclude each other, in the order
    // the error names them.
    let reports = [
        ("--latency", l.latency || l.latency_summary),
        ("--func-stats", l.func_stats),
        ("--monitor", l.monitor),
        ("--diag", d.diag),
        ("--basic", l.basic),
    ];
    let on: Vec<&str> = reports.iter().filter(|(_, set)| *set).map(|(f, _)| *f).collect();
    if let [a, b, ..] = on[..] {
        return Err(usage!("{a} and {b} cannot be combined"));
    }
    if l.monitor && l.trace.is_some() {
        return Err(usage!(
            "--monitor chooses its own hooks (those marked monitor): drop -t"
        ));
    }
    if (d.diag_quiet || d.diag_keep || d.hooks) && !d.diag {
        return Err(usage!("--diag-quiet, --diag-keep and --hooks need --diag"));
    }
    if d.diag && l.basic {
        return Err(usage!("--diag analyses whole packets: drop --basic"));
    }
    Ok(())
}

/// The default mode, once no other was asked for.
pub(super) fn mode(args: &Args) -> Result<Mode, UsageError> {
    let (l, d) = (&args.lifecycle, &args.diagnosis);
    if (l.basic || l.monitor) && (l.latency_show || l.min_latency.is_some()) {
        return Err(usage!(
            "--latency-show and --min-latency need packets grouped: drop --basic"
        ));
    }
    let min_latency_ns = match &l.min_latency {
        Some(v) => v
            .parse::<u64>()
            .map_err(|_| usage!("--min-latency: '{v}' is not a number of microseconds"))?
            .saturating_mul(1000),
        None => 0,
    };
    Ok(Mode::Lifecycle(Lifecycle {
        rules: l.rules.clone(),
        trace: l.trace.clone(),
        matcher: l.trace_matcher.clone(),
        exclude: l.trace_exclude.clone(),
        free: l.trace_free.clone(),
        stack: l.trace_stack.clone(),
        noclone: l.trace_noclone,
        basic: l.basic || l.monitor,
        detail: l.detail,
        ret: l.ret,
        tiny: l.tiny_show,
        latency_show: l.latency_show,
        min_latency_ns,
        diag: d.diag.then_some(Diag {
            quiet: d.diag_quiet,
            keep: d.diag_keep,
            hooks: d.hooks,
        }),
        latency: (l.latency || l.latency_summary).then_some(Latency {
            summary: l.latency_summary,
            free: l.latency_free,
        }),
        func_stats: l.func_stats.then_some(l.verbose),
        monitor: l.monitor,
    }))
}
