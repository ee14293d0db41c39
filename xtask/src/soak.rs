//! `cargo xtask soak [--minutes N]` (not in CI): nettrace left running for a
//! long time under steady traffic must hold its memory flat and account for
//! every event. Two tracers run side by side for the whole soak: `--drop`
//! under a steady trickle of drops, and the default mode following an
//! iperf3 flow that never stops (its output to /dev/null). Their resident
//! memory is sampled every 30 s; at the end, records decoded and events lost
//! come from their own `--debug` accounting.

use std::{
    path::Path,
    process::Stdio,
    thread,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use serde_json::json;

use crate::bench::{self, B4, CLOSED_PORT, Guard, IPERF_PORT, Net, Tracer};

/// Resident memory in MiB (`VmRSS`) of a process.
fn rss_mib(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))?
                .split_whitespace()
                .next()?
                .parse::<f64>()
                .ok()
        })
        .map_or(0.0, |kib| kib / 1024.0)
}

fn lost_of(lines: &[String]) -> f64 {
    lines
        .iter()
        .rev()
        .find(|l| l.ends_with("events lost (ring buffer full)"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        .unwrap_or(0.0)
}

pub fn run(bin: &Path, minutes: u64) -> anyhow::Result<()> {
    let net = Net::new()?;
    let _server = bench::iperf_server(&net)?;
    let secs = minutes * 60;
    let (drop, _) = Tracer::start(bin, &["--drop", "-p", "udp", "-d", B4])?;
    let (flow, _) = Tracer::start(bin, &["-p", "tcp", "-P", IPERF_PORT])?;
    let total = secs.to_string();
    let _iperf = Guard(
        net.cmd(&net.a, &["iperf3", "-c", B4, "-p", IPERF_PORT, "-t", &total])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start iperf3 client")?,
    );
    // 1000 drops a second for the whole soak.
    let me = std::env::current_exe()?;
    let me = me.to_str().context("xtask path")?;
    let _trickle = Guard(
        net.cmd(
            &net.a,
            &[me, "flood", B4, &CLOSED_PORT.to_string(), &total, "1", "1000"],
        )
        .stdout(Stdio::null())
        .spawn()
        .context("start the drop trickle")?,
    );
    println!("soak: {minutes} min of iperf3 + 1000 drops/s; --drop and the default mode on the flow");
    let started = Instant::now();
    let mut samples = Vec::new();
    while started.elapsed() < Duration::from_secs(secs) {
        thread::sleep(
            Duration::from_secs(30).min(Duration::from_secs(secs).saturating_sub(started.elapsed())),
        );
        let s = (
            started.elapsed().as_secs(),
            rss_mib(drop.pid()),
            rss_mib(flow.pid()),
        );
        println!(
            "  t={:>4} s  RSS --drop {:.1} MiB, default mode {:.1} MiB",
            s.0, s.1, s.2
        );
        samples.push(s);
    }
    let (drop_cpu, flow_cpu) = (drop.cpu_secs(), flow.cpu_secs());
    let (_, drop_lines) = drop.stop()?;
    let (_, flow_lines) = flow.stop()?;
    let first = samples.first().copied().unwrap_or_default();
    let last = samples.last().copied().unwrap_or_default();
    let flat = |a: f64, b: f64| b <= a * 1.1 + 2.0;
    let report = json!({
        "minutes": minutes,
        "samples": samples.iter().map(|s| json!({"t_s": s.0, "drop_rss_mib": s.1, "default_rss_mib": s.2})).collect::<Vec<_>>(),
        "drop": {
            "rss_start_mib": first.1, "rss_end_mib": last.1, "flat": flat(first.1, last.1),
            "records": bench::number_after(&drop_lines, "stream: "), "lost": lost_of(&drop_lines),
            "cpu_s": drop_cpu,
        },
        "default": {
            "rss_start_mib": first.2, "rss_end_mib": last.2, "flat": flat(first.2, last.2),
            "records": bench::number_after(&flow_lines, "stream: "), "lost": lost_of(&flow_lines),
            "cpu_s": flow_cpu,
        },
    });
    println!("{}", serde_json::to_string_pretty(&report)?);
    let dir = crate::workspace_root().join("target/bench");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("soak.json"), serde_json::to_string_pretty(&report)?)?;
    println!("soak: written to {}", dir.join("soak.json").display());
    Ok(())
}
