//! The overhead rows: iperf3 throughput traced ÷ untraced, and what the
//! BPF programs cost per run.
//!
//! Two measures that must not share a run. `kernel.bpf_stats_enabled`
//! makes the kernel time every program run (two clock reads each, ~40 ns
//! here: the floor row's whole cost), which would lower the throughput it
//! is meant to explain. So the A/B pairs run with it off, and one more
//! traced run with it on gives the time per run.
//!
//! The floor row attaches the default hook set with programs that return
//! at once (`--bench-floor`): what attaching alone costs, the limit of
//! this design. Every row is also shown against it.

use std::path::Path;

use serde_json::{Value, json};

use super::{
    IPERF_PORT, Options, median,
    net::{Net, iperf},
    tracer::{BpfStats, Tracer},
};

/// One row: a hook set and filter, with its target.
pub(super) struct Row {
    pub name: &'static str,
    pub args: Vec<String>,
    /// Minimum traced ÷ untraced throughput (per protocol), if the issue
    /// sets one.
    pub target_ratio: Option<f64>,
    /// Maximum BPF ns per run, if set.
    pub target_ns: Option<f64>,
    /// A command that is not nettrace (the reference tool): `args` are its.
    pub reference: bool,
}

/// TEST-NET-1: no packet here comes from it.
pub(super) const NOWHERE: &str = "192.0.2.1";

fn strings(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| (*s).to_string()).collect()
}

/// The host's rows, floor first.
pub(super) fn rows() -> Vec<Row> {
    let row = |name, args: &[&str], target_ratio, target_ns| Row {
        name,
        args: strings(args),
        target_ratio,
        target_ns,
        reference: false,
    };
    vec![
        row(
            "floor (default set, empty programs)",
            &["-s", NOWHERE, "--bench-floor"],
            None,
            None,
        ),
        row(
            "default, filter matches nothing",
            &["-s", NOWHERE],
            Some(0.95),
            Some(100.0),
        ),
        row("--drop", &["--drop"], Some(0.98), None),
        row("--monitor", &["--monitor"], Some(0.98), None),
        row("default, tracing the flow", &["-P", IPERF_PORT], Some(0.50), None),
        // The filter EXPRESSION's own cost: the same filter as flags and
        // as an expression (neither matches the benchmark's traffic); its
        // budget is 40 ns per run over the flags (`expression_cost`).
        row(
            "default, -p tcp -P 443 (flags)",
            &["-p", "tcp", "-P", "443"],
            None,
            None,
        ),
        row(
            "default, 'tcp port 443' (EXPRESSION)",
            &["tcp port 443"],
            None,
            None,
        ),
        row("--tcp-monitor", &["--tcp-monitor"], None, None),
        row(
            "--diag -p tcp --port P",
            &["--diag", "--diag-keep", "-p", "tcp", "--port", IPERF_PORT],
            None,
            None,
        ),
    ]
}

/// A row's throughput ratio (median of `pairs` A/B pairs, BPF stats off)
/// and its BPF time per run (one more traced run, stats on).
pub(super) fn measure(bin: &Path, net: &Net, row: &Row, udp: bool, o: &Options) -> anyhow::Result<Value> {
    let args: Vec<&str> = row.args.iter().map(String::as_str).collect();
    let start = || -> anyhow::Result<Tracer> {
        Ok(if row.reference {
            Tracer::start_reference(bin, &args)?.0
        } else {
            Tracer::start(bin, &args)?.0
        })
    };
    let (mut ratios, mut cpu, mut base, mut traced) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..o.pairs {
        let a = iperf(net, udp, o.secs)?;
        let t = start()?;
        let cpu0 = t.cpu_secs();
        let b = iperf(net, udp, o.secs)?;
        cpu.push(t.cpu_secs() - cpu0);
        t.stop()?;
        ratios.push(b / a);
        base.push(a);
        traced.push(b);
    }
    // The stats run: enabled while this tracer runs, off again after.
    let stats = BpfStats::enable();
    let t = start()?;
    let s0 = t.bpf_stats();
    iperf(net, udp, o.secs)?;
    let s1 = t.bpf_stats();
    t.stop()?;
    drop(stats);
    let (runs, ns) = (s1.0 - s0.0, s1.1 - s0.1);
    Ok(json!({
        "mode": row.name,
        "args": row.args,
        "reference": row.reference,
        "proto": if udp { "udp" } else { "tcp" },
        "median_ratio": median(ratios.clone()),
        "ratios": ratios,
        "untraced_bps": base,
        "traced_bps": traced,
        "median_tracer_cpu_s": median(cpu),
        "bpf_runs": runs,
        "bpf_ns_per_run": if runs > 0 { ns as f64 / runs as f64 } else { 0.0 },
        "target_ratio": row.target_ratio,
        "target_ns_per_run": row.target_ns,
    }))
}

/// `ratio` against the floor row's of the same protocol (1.0 = costs no
/// more than attaching empty programs).
pub(super) fn vs_floor(rows: &[Value], row: &Value) -> Option<f64> {
    let floor = rows
        .iter()
        .find(|r| r["proto"] == row["proto"] && r["mode"].as_str().is_some_and(|m| m.starts_with("floor")))?;
    Some(row["median_ratio"].as_f64()? / floor["median_ratio"].as_f64()?)
}

/// What the EXPRESSION row costs per run over the flags row of the same
/// protocol (ns), the budget being 40.
pub(super) fn expression_cost(rows: &[Value], proto: &str) -> Option<f64> {
    let ns = |suffix: &str| {
        rows.iter()
            .find(|r| r["proto"] == proto && r["mode"].as_str().is_some_and(|m| m.ends_with(suffix)))
            .and_then(|r| r["bpf_ns_per_run"].as_f64())
    };
    Some(ns("(EXPRESSION)")? - ns("(flags)")?)
}

/// A row's targets, `≥ 95%, ≤ 100 ns/run`; empty without one.
pub(super) fn target(r: &Value) -> String {
    match (r["target_ratio"].as_f64(), r["target_ns_per_run"].as_f64()) {
        (Some(t), Some(ns)) => format!("≥ {:.0}%, ≤ {ns:.0} ns/run", t * 100.0),
        (Some(t), None) => format!("≥ {:.0}%", t * 100.0),
        _ => String::new(),
    }
}

/// The line printed as a row finishes.
pub(super) fn line(r: &Value) -> String {
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let target = match target(r) {
        t if t.is_empty() => t,
        t => format!(" (target {t})"),
    };
    format!(
        "  {:<40} {}  throughput {:>6.1}%  tracer CPU {:.2} s  BPF {:.0} ns/run × {}{target}",
        r["mode"].as_str().unwrap_or(""),
        r["proto"].as_str().unwrap_or(""),
        f(&r["median_ratio"]) * 100.0,
        f(&r["median_tracer_cpu_s"]),
        f(&r["bpf_ns_per_run"]),
        r["bpf_runs"],
    )
}
