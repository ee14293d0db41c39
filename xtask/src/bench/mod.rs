//! `cargo xtask bench`: what nettrace costs, measured on this machine.
//!
//! Overhead is a ratio measured within one run (traced ÷ untraced iperf3
//! throughput between two namespaces over veth, runs alternating A B A B so
//! drift hits both sides), never an absolute time. Start-up is exec →
//! `begin trace...`; the event pipeline is a UDP drop flood into `--drop`.
//! Every figure is printed next to its target and written as JSON under
//! `target/bench/`. A benchmark, not a test: nothing here fails on a miss.
//!
//! Here: the rows and the table. `net` makes the traffic (namespaces,
//! iperf3, the drop flood), `tracer` runs and reads the measured nettrace,
//! `vm` is `bench --vm`. The soak reuses `net` and `tracer`.

mod net;
mod tracer;
mod vm;

use std::{
    path::{Path, PathBuf},
    thread,
    time::Duration,
};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

use crate::{setup, workspace_root};

pub use net::flood;
use net::iperf;
pub(crate) use net::{B4, CLOSED_PORT, Guard, IPERF_PORT, Net, iperf_server};
use tracer::BpfStats;
pub(crate) use tracer::{Tracer, number_after};
pub use vm::inner as vm_inner;

pub struct Options {
    /// Seconds per iperf3 run.
    pub secs: u32,
    /// Untraced/traced pairs per mode.
    pub pairs: usize,
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

struct Mode {
    name: &'static str,
    args: Vec<String>,
}

fn modes() -> Vec<Mode> {
    let v = |a: &[&str]| a.iter().map(std::string::ToString::to_string).collect();
    vec![
        Mode {
            name: "--drop",
            args: v(&["--drop"]),
        },
        Mode {
            name: "default, filter matches nothing",
            // TEST-NET-1: no packet here comes from it.
            args: v(&["-s", "192.0.2.1"]),
        },
        Mode {
            name: "default, tracing the flow",
            args: v(&["-P", IPERF_PORT]),
        },
        Mode {
            name: "--monitor",
            args: v(&["--monitor"]),
        },
        Mode {
            name: "--tcp-monitor",
            args: v(&["--tcp-monitor"]),
        },
        Mode {
            name: "--diag -p tcp --port P",
            args: v(&["--diag", "--diag-keep", "-p", "tcp", "--port", IPERF_PORT]),
        },
    ]
}

/// Overhead of one mode: `pairs` × (untraced, traced) iperf3 runs.
fn overhead(bin: &Path, net: &Net, mode: &Mode, udp: bool, o: &Options) -> anyhow::Result<Value> {
    let args: Vec<&str> = mode.args.iter().map(String::as_str).collect();
    let (mut ratios, mut cpu, mut base, mut traced) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let (mut bpf_cpu, mut bpf_per_run) = (Vec::new(), Vec::new());
    for _ in 0..o.pairs {
        let a = iperf(net, udp, o.secs)?;
        let (t, _) = Tracer::start(bin, &args)?;
        let cpu0 = t.cpu_secs();
        let stats0 = t.bpf_stats();
        let b = iperf(net, udp, o.secs)?;
        cpu.push(t.cpu_secs() - cpu0);
        let stats = t.bpf_stats();
        let (runs, ns) = (stats.0 - stats0.0, stats.1 - stats0.1);
        bpf_cpu.push(ns as f64 / 1e9);
        bpf_per_run.push(if runs > 0 { ns as f64 / runs as f64 } else { 0.0 });
        t.stop()?;
        ratios.push(b / a);
        base.push(a);
        traced.push(b);
    }
    Ok(json!({
        "mode": mode.name,
        "proto": if udp { "udp" } else { "tcp" },
        "median_ratio": median(ratios.clone()),
        "ratios": ratios,
        "untraced_bps": base,
        "traced_bps": traced,
        "median_tracer_cpu_s": median(cpu.clone()),
        "median_bpf_cpu_s": median(bpf_cpu),
        "median_bpf_ns_per_run": median(bpf_per_run),
    }))
}

/// Start-up of one hook set: median of 5 (exec → tracing), hooks attached,
/// and the time to exit after SIGINT.
fn startup(bin: &Path, name: &str, args: &[&str]) -> anyhow::Result<Value> {
    let (mut starts, mut exits, mut hooks) = (Vec::new(), Vec::new(), None);
    for _ in 0..5 {
        let (t, took) = Tracer::start(bin, args)?;
        starts.push(took.as_secs_f64());
        let (exit, lines) = t.stop()?;
        exits.push(exit.as_secs_f64());
        hooks = number_after(&lines, "attached ").or(hooks);
    }
    Ok(json!({
        "set": name,
        "median_start_s": median(starts.clone()),
        "starts_s": starts,
        "hooks": hooks.unwrap_or(1.0),
        "median_exit_s": median(exits),
    }))
}

/// The event pipeline under a drop flood: records decoded per second, events
/// lost (nettrace's count is the kernel's LOST counter), peak RSS.
fn pipeline(bin: &Path, net: &Net, secs: u64) -> anyhow::Result<Value> {
    let t_args = ["--drop", "-p", "udp", "-d", B4];
    let (t, _) = Tracer::start(bin, &t_args)?;
    let me = std::env::current_exe()?;
    let out = net
        .cmd(
            &net.a,
            &[
                me.to_str().context("xtask path")?,
                "flood",
                B4,
                &CLOSED_PORT.to_string(),
                &secs.to_string(),
                "4",
            ],
        )
        .output()
        .context("run the flood")?;
    let sent: f64 = String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0.0);
    // Let the tracer drain what is queued.
    thread::sleep(Duration::from_millis(500));
    let rss = t.peak_rss_mib();
    let cpu = t.cpu_secs();
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
    if which("iperf3").is_none() {
        bail!("iperf3 is missing (cargo xtask setup installs it)");
    }
    let net = Net::new()?;
    let _server = iperf_server(&net)?;
    let _stats = BpfStats::enable();
    println!(
        "bench: host, tracepoint backend; {} s iperf3 runs, {} untraced/traced pairs per row",
        o.secs, o.pairs
    );
    let mut rows = Vec::new();
    for mode in modes() {
        for udp in [false, true] {
            let r = overhead(bin, &net, &mode, udp, o)?;
            println!(
                "  overhead {:<34} {}  throughput {:>6.1}%  tracer CPU {:.2} s  BPF {:.2} s ({:.0} ns/run)",
                mode.name,
                r["proto"].as_str().unwrap_or(""),
                r["median_ratio"].as_f64().unwrap_or(f64::NAN) * 100.0,
                r["median_tracer_cpu_s"].as_f64().unwrap_or(f64::NAN),
                r["median_bpf_cpu_s"].as_f64().unwrap_or(f64::NAN),
                r["median_bpf_ns_per_run"].as_f64().unwrap_or(f64::NAN)
            );
            rows.push(r);
        }
    }
    let mut starts = Vec::new();
    for (name, args) in [
        ("--drop", vec!["--drop"]),
        ("default set", vec![]),
        ("-t all", vec!["-t", "all"]),
    ] {
        let r = startup(bin, name, &args)?;
        println!(
            "  start-up {:<12} {:.3} s (median of 5, {} hooks), exit after SIGINT {:.3} s",
            name,
            r["median_start_s"].as_f64().unwrap_or(f64::NAN),
            r["hooks"],
            r["median_exit_s"].as_f64().unwrap_or(f64::NAN)
        );
        starts.push(r);
    }
    let p = pipeline(bin, &net, 5)?;
    println!(
        "  pipeline: {:.0} datagrams/s sent, {:.0} records/s decoded, {} lost, peak RSS {:.1} MiB",
        p["sent_per_s"].as_f64().unwrap_or(0.0),
        p["decoded_per_s"].as_f64().unwrap_or(0.0),
        p["events_lost"],
        p["peak_rss_mib"].as_f64().unwrap_or(0.0)
    );
    let result = json!({
        "kernel": std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim(),
        "secs_per_run": o.secs,
        "pairs": o.pairs,
        "overhead": rows,
        "startup": starts,
        "pipeline": p,
        "targets": {
            "default_nonmatching_ratio": 0.90,
            "drop_ratio": 0.98,
            "default_startup_s": 0.5,
            "decoded_per_s": 1_000_000,
            "peak_rss_mib": 40,
        },
    });
    print_table(&result);
    let dir = workspace_root().join("target/bench");
    std::fs::create_dir_all(&dir)?;
    let file = dir.join("bench.json");
    std::fs::write(&file, serde_json::to_string_pretty(&result)?)?;
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

/// The summary table: each figure against its target.
fn print_table(r: &Value) {
    let f = |v: &Value| v.as_f64().unwrap_or(f64::NAN);
    println!();
    println!("| measure | value | target |");
    println!("|---|---|---|");
    for row in r["overhead"].as_array().into_iter().flatten() {
        let target = match row["mode"].as_str() {
            Some("--drop") => "≥ 98%",
            Some("default, filter matches nothing") => "≥ 90%",
            _ => "",
        };
        println!(
            "| throughput {} {} (traced/untraced, median) | {:.1}% (tracer CPU {:.2} s, BPF {:.2} s at {:.0} ns/run) | {target} |",
            row["mode"].as_str().unwrap_or(""),
            row["proto"].as_str().unwrap_or(""),
            f(&row["median_ratio"]) * 100.0,
            f(&row["median_tracer_cpu_s"]),
            f(&row["median_bpf_cpu_s"]),
            f(&row["median_bpf_ns_per_run"]),
        );
    }
    for s in r["startup"].as_array().into_iter().flatten() {
        let target = if s["set"] == "default set" {
            "≤ 0.5 s"
        } else {
            ""
        };
        println!(
            "| start-up {} ({} hooks), median of 5 | {:.3} s (exit after SIGINT {:.3} s) | {target} |",
            s["set"].as_str().unwrap_or(""),
            s["hooks"],
            f(&s["median_start_s"]),
            f(&s["median_exit_s"]),
        );
    }
    let p = &r["pipeline"];
    println!(
        "| events decoded per second (drop flood, {:.0} datagrams/s offered) | {:.0} | ≥ 1 000 000 |",
        f(&p["sent_per_s"]),
        f(&p["decoded_per_s"])
    );
    println!(
        "| events lost / decoded + lost − sent | {} / {} | reported, never hidden |",
        p["events_lost"], p["decoded_plus_lost_minus_sent"]
    );
    println!(
        "| peak RSS under the flood | {:.1} MiB | ≤ 40 MiB |",
        f(&p["peak_rss_mib"])
    );
}
