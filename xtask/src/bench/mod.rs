//! `cargo xtask bench`: what nettrace costs, measured on this machine.
//!
//! Overhead is a ratio measured within one run (traced ÷ untraced iperf3
//! throughput between two namespaces over veth, runs alternating A B A B so
//! drift hits both sides), never an absolute time; the floor row (empty
//! programs on the same hooks) says what attaching alone costs. Start-up
//! is exec → `begin trace...`; the event pipeline is a UDP drop flood into
//! `--drop`, and userspace alone is a replay of captured records. Every
//! figure is printed next to its target and written as JSON to
//! `target/bench/bench.json`. A benchmark, not a test: nothing here fails
//! on a miss.
//!
//! Here: the table. `overhead` has the throughput rows, `replay` the
//! userspace rows, `net` makes the traffic (namespaces, iperf3, the drop
//! flood), `tracer` runs and reads the measured tool, `vm` is `bench --vm`
//! (with `--reference`, the C nettrace side by side). The soak reuses `net`
//! and `tracer`.

mod net;
mod overhead;
mod replay;
mod tracer;
mod vm;

use std::{
    path::{Path, PathBuf},
    thread,
    time::Duration,
};

use anyhow::bail;
use serde_json::{Value, json};

use crate::{setup, workspace_root};

pub use net::flood;
pub(crate) use net::{B4, CLOSED_PORT, Guard, IPERF_PORT, Net, iperf_server};
pub(crate) use tracer::{Tracer, number_after};
pub use vm::inner as vm_inner;

pub struct Options {
    /// Seconds per iperf3 run.
    pub secs: u32,
    /// Untraced/traced pairs per mode.
    pub pairs: usize,
    /// `--vm`: the reference tool's binary (the C nettrace), run side by
    /// side with ours.
    pub reference: Option<PathBuf>,
    /// `--only`: the overhead rows whose name contains this, and the floor.
    pub only: Option<String>,
    /// Only the start-up and exit rows.
    pub startup_only: bool,
}

/// `cargo xtask bench [--vm]`: the prerequisites of the tiers it needs, a
/// release build, then the host's rows or the VM's.
pub fn cmd(o: &Options, in_vm: bool) -> anyhow::Result<()> {
    let env = setup::with(if in_vm {
        setup::Tiers::All
    } else {
        setup::Tiers::Host
    })?;
    crate::build(&env)?;
    let nettrace = workspace_root().join("target/release/nettrace");
    if in_vm {
        return vm::outer(&nettrace, o);
    }
    run(&nettrace, o)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Start-up of one hook set: median of 5 (exec → tracing), hooks attached,
/// and the time to exit after SIGINT. `reference`: the C nettrace.
fn startup(
    bin: &Path,
    name: &str,
    args: &[&str],
    target_s: Option<f64>,
    reference: bool,
) -> anyhow::Result<Value> {
    let (mut starts, mut exits, mut hooks) = (Vec::new(), Vec::new(), None);
    let mut phases = Vec::new();
    for _ in 0..5 {
        let (t, took) = if reference {
            Tracer::start_reference(bin, args)?
        } else {
            Tracer::start(bin, args)?
        };
        starts.push(took.as_secs_f64());
        let (exit, lines) = t.stop()?;
        exits.push(exit.as_secs_f64());
        hooks = number_after(&lines, "attached ").or(hooks);
        phases = lines
            .into_iter()
            .filter(|l| l.starts_with("nettrace: [") && !l.contains("] hook "))
            .collect();
    }
    Ok(json!({
        "set": name,
        "reference": reference,
        "median_start_s": median(starts.clone()),
        "starts_s": starts,
        "hooks": hooks,
        "median_exit_s": median(exits),
        "target_start_s": target_s,
        "target_exit_s": 0.05,
        "last_run_debug": phases,
    }))
}

/// The event pipeline under a drop flood: records decoded per second, events
/// lost (nettrace's count is the kernel's LOST counter), peak RSS.
fn pipeline(bin: &Path, net: &Net, secs: u64) -> anyhow::Result<Value> {
    let t_args = ["--drop", "-p", "udp", "-d", B4];
    let (t, _) = Tracer::start(bin, &t_args)?;
    let cpu0 = t.cpu_secs();
    let sent = net::flood_from(net, B4, CLOSED_PORT, secs)?;
    // Let the tracer drain what is queued.
    thread::sleep(Duration::from_millis(500));
    let rss = t.peak_rss_mib();
    let cpu = t.cpu_secs() - cpu0;
    let (_, lines) = t.stop()?;
    let records = number_after(&lines, "stream: ").unwrap_or(0.0);
    let busy = number_after(&lines, "records in ").unwrap_or(0.0);
    // `nettrace: N events lost (ring buffer full)`: the kernel's LOST count.
    let lost = lines
        .iter()
        .rev()
        .find(|l| l.ends_with("events lost (ring buffer full)"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .unwrap_or(0.0);
    Ok(json!({
        "flood_secs": secs,
        "tracer_cpu_ns_per_event": if records > 0.0 { cpu * 1e9 / records } else { f64::NAN },
        "datagrams_sent": sent,
        "sent_per_s": sent / secs as f64,
        "records_decoded": records,
        "decoded_per_s": if busy > 0.0 { records / busy } else { 0.0 },
        "events_lost": lost,
        "decoded_plus_lost_minus_sent": records + lost - sent,
        "tracer_cpu_s": cpu,
        "peak_rss_mib": rss,
    }))
}

fn run(bin: &Path, o: &Options) -> anyhow::Result<()> {
    if o.startup_only {
        let starts = startups(bin)?;
        return write(
            &json!({"kernel": osrelease(), "startup": starts}),
            "bench-startup.json",
        );
    }
    if which("iperf3").is_none() {
        bail!("iperf3 is missing (cargo xtask setup installs it)");
    }
    let net = Net::new()?;
    let _server = iperf_server(&net)?;
    println!(
        "bench: host, tracepoint backend; {} s iperf3 runs, {} untraced/traced pairs per row, \
         iperf3 client and server pinned to CPUs 0 and 1",
        o.secs, o.pairs
    );
    let mut rows = Vec::new();
    let wanted = |row: &overhead::Row| {
        o.only
            .as_deref()
            .is_none_or(|only| row.name.contains(only) || row.name.starts_with("floor"))
    };
    for row in overhead::rows().into_iter().filter(wanted) {
        for udp in [true, false] {
            let r = overhead::measure(bin, &net, &row, udp, o)?;
            println!("{}", overhead::line(&r));
            rows.push(r);
        }
    }
    if o.only.is_some() {
        print_table(&json!({ "overhead": rows }));
        return Ok(());
    }
    let starts = startups(bin)?;
    let p = pipeline(bin, &net, 5)?;
    println!(
        "  pipeline: {:.0} datagrams/s sent, {:.0} records/s decoded, {:.0} lost, {:.0} ns tracer CPU per event, peak RSS {:.1} MiB",
        p["sent_per_s"].as_f64().unwrap_or(0.0),
        p["decoded_per_s"].as_f64().unwrap_or(0.0),
        p["events_lost"].as_f64().unwrap_or(0.0),
        p["tracer_cpu_ns_per_event"].as_f64().unwrap_or(f64::NAN),
        p["peak_rss_mib"].as_f64().unwrap_or(0.0)
    );
    let replays = replay::rows(bin, &net)?;
    let result = json!({
        "kernel": osrelease(),
        "secs_per_run": o.secs,
        "pairs": o.pairs,
        "overhead": rows,
        "startup": starts,
        "pipeline": p,
        "replay": replays,
    });
    write(&result, "bench.json")
}

/// The host's start-up rows: `--drop`, the default set, `-t all`.
fn startups(bin: &Path) -> anyhow::Result<Vec<Value>> {
    let mut starts = Vec::new();
    for (name, args, target) in [
        ("--drop", vec!["--drop"], Some(0.1)),
        ("default set", vec![], Some(0.25)),
        ("-t all", vec!["-t", "all"], None),
    ] {
        let r = startup(bin, name, &args, target, false)?;
        println!(
            "  start-up {:<12} {:.3} s (median of 5{}), exit after SIGINT {:.3} s",
            name,
            r["median_start_s"].as_f64().unwrap_or(f64::NAN),
            hooks(&r),
            r["median_exit_s"].as_f64().unwrap_or(f64::NAN)
        );
        starts.push(r);
    }
    Ok(starts)
}

fn osrelease() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Prints the table and writes `result` to `target/bench/{name}`.
fn write(result: &Value, name: &str) -> anyhow::Result<()> {
    print_table(result);
    let dir = workspace_root().join("target/bench");
    std::fs::create_dir_all(&dir)?;
    let file = dir.join(name);
    std::fs::write(&file, serde_json::to_string_pretty(result)?)?;
    println!("bench: written to {}", file.display());
    Ok(())
}

pub(crate) fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join(name))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default()
        .into_iter()
        .find(|p| p.exists())
}

/// `, N hooks` when the tool said how many it attached.
fn hooks(startup: &Value) -> String {
    startup["hooks"]
        .as_f64()
        .map_or(String::new(), |n| format!(", {n:.0} hooks"))
}

/// The summary table: each figure against its target (Markdown, for the
/// README and notes).
fn print_table(r: &Value) {
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    let rows = r["overhead"].as_array().cloned().unwrap_or_default();
    println!();
    println!("| measure | value | target |");
    println!("|---|---|---|");
    for row in &rows {
        let vs =
            overhead::vs_floor(&rows, row).map_or(String::new(), |v| format!(", {:.1}% of floor", v * 100.0));
        let who = if row["reference"] == true {
            "C nettrace "
        } else {
            ""
        };
        let target = overhead::target(row);
        println!(
            "| {who}{} {} throughput traced/untraced | {:.1}%{vs} (BPF {:.0} ns/run, tracer CPU {:.2} s) | {target} |",
            row["mode"].as_str().unwrap_or(""),
            row["proto"].as_str().unwrap_or(""),
            f(&row["median_ratio"]) * 100.0,
            f(&row["bpf_ns_per_run"]),
            f(&row["median_tracer_cpu_s"]),
        );
    }
    for proto in ["udp", "tcp"] {
        if let Some(ns) = overhead::expression_cost(&rows, proto) {
            println!(
                "| filter EXPRESSION 'tcp port 443' over the same as flags, {proto} | {ns:+.0} ns/run | ≤ +40 ns/run |"
            );
        }
    }
    for s in r["startup"].as_array().into_iter().flatten() {
        let who = if s["reference"] == true { "C nettrace " } else { "" };
        let target = s["target_start_s"]
            .as_f64()
            .map_or(String::new(), |t| format!("≤ {t} s; exit ≤ 0.05 s"));
        println!(
            "| {who}start-up {}, median of 5{} | {:.3} s (exit after SIGINT {:.3} s) | {target} |",
            s["set"].as_str().unwrap_or(""),
            hooks(s),
            f(&s["median_start_s"]),
            f(&s["median_exit_s"]),
        );
    }
    let p = &r["pipeline"];
    if !p.is_null() {
        println!(
            "| drop flood: events decoded per second ({:.0} datagrams/s offered) | {:.0} | the generator's pace |",
            f(&p["sent_per_s"]),
            f(&p["decoded_per_s"])
        );
        println!(
            "| drop flood: tracer CPU per event | {:.0} ns | ≤ 1000 ns |",
            f(&p["tracer_cpu_ns_per_event"])
        );
        println!(
            "| drop flood: events lost / decoded + lost − sent | {:.0} / {:.0} | counted, never hidden |",
            f(&p["events_lost"]),
            f(&p["decoded_plus_lost_minus_sent"])
        );
        println!(
            "| drop flood: peak RSS | {:.1} MiB | ≤ 40 MiB |",
            f(&p["peak_rss_mib"])
        );
    }
    for x in r["replay"].as_array().into_iter().flatten() {
        println!(
            "| replay {} ({}, {:.0} records): CPU per record | {:.0} ns | ≤ {:.0} ns |",
            x["replay"].as_str().unwrap_or(""),
            x["format"].as_str().unwrap_or(""),
            f(&x["records"]),
            f(&x["cpu_ns_per_record"]),
            f(&x["target_ns_per_record"]),
        );
    }
}
