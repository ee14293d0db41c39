//! `cargo xtask bench`: what nettrace costs, measured on this machine.
//!
//! Overhead is a ratio measured within one run (traced ÷ untraced iperf3
//! throughput between two namespaces over veth, runs alternating A B A B so
//! drift hits both sides), never an absolute time. Start-up is exec →
//! `begin trace...`; the event pipeline is a UDP drop flood into `--drop`.
//! Every figure is printed next to its target and written as JSON under
//! `target/bench/`. A benchmark, not a test: nothing here fails on a miss.

use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use serde_json::{Value, json};

/// Addresses of the two benchmark namespaces (a private /24 nothing else uses).
const A4: &str = "10.201.0.1";
pub(crate) const B4: &str = "10.201.0.2";
pub(crate) const IPERF_PORT: &str = "5201";
/// Nobody listens here: the flood's datagrams are dropped (NO_SOCKET).
pub(crate) const CLOSED_PORT: u16 = 9;

pub struct Options {
    /// Seconds per iperf3 run.
    pub secs: u32,
    /// Untraced/traced pairs per mode.
    pub pairs: usize,
}

/// Two namespaces joined by a veth pair; removed on drop (also on error).
pub(crate) struct Net {
    pub(crate) a: String,
    pub(crate) b: String,
}

fn ip(args: &[&str]) -> anyhow::Result<()> {
    let st = Command::new("ip").args(args).status().context("run ip")?;
    if !st.success() {
        bail!("ip {} failed", args.join(" "));
    }
    Ok(())
}

impl Net {
    pub(crate) fn new() -> anyhow::Result<Self> {
        let id = std::process::id();
        let net = Net {
            a: format!("ntbench-a-{id}"),
            b: format!("ntbench-b-{id}"),
        };
        let (va, vb) = (format!("ntba{}", id % 100_000), format!("ntbb{}", id % 100_000));
        ip(&["netns", "add", &net.a])?;
        ip(&["netns", "add", &net.b])?;
        ip(&["link", "add", &va, "type", "veth", "peer", "name", &vb])?;
        ip(&["link", "set", &va, "netns", &net.a])?;
        ip(&["link", "set", &vb, "netns", &net.b])?;
        for (ns, dev, addr) in [(&net.a, &va, A4), (&net.b, &vb, B4)] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
        }
        Ok(net)
    }

    pub(crate) fn cmd(&self, ns: &str, argv: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", ns]).args(argv);
        c
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// A child killed when dropped (servers, tracers left behind by an error).
pub(crate) struct Guard(pub(crate) Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One iperf3 run from `a` to `b`; received bits per second.
fn iperf(net: &Net, udp: bool, secs: u32) -> anyhow::Result<f64> {
    let secs = secs.to_string();
    let mut argv = vec!["iperf3", "-c", B4, "-p", IPERF_PORT, "-t", &secs, "-J"];
    if udp {
        // Unlimited rate: the measure is how many datagrams get through.
        argv.extend(["-u", "-b", "0", "-l", "1400"]);
    }
    let out = net.cmd(&net.a, &argv).output().context("run iperf3")?;
    let v: Value = serde_json::from_slice(&out.stdout).context("parse iperf3 -J output")?;
    let end = &v["end"];
    let bps = end["sum_received"]["bits_per_second"]
        .as_f64()
        .or_else(|| end["sum"]["bits_per_second"].as_f64());
    bps.with_context(|| format!("iperf3 reported no throughput: {}", v["error"]))
}

/// The iperf3 server in `b`, stopped when dropped.
pub(crate) fn iperf_server(net: &Net) -> anyhow::Result<Guard> {
    let g = Guard(
        net.cmd(&net.b, &["iperf3", "-s", "-p", IPERF_PORT])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start iperf3 server")?,
    );
    thread::sleep(Duration::from_millis(300));
    Ok(g)
}

/// `kernel.bpf_stats_enabled=1` while the benchmark runs (BPF run time per
/// program, which costs a little itself); the old value comes back on drop.
struct BpfStats(String);

impl BpfStats {
    const PATH: &str = "/proc/sys/kernel/bpf_stats_enabled";

    fn enable() -> Self {
        let old = std::fs::read_to_string(Self::PATH).unwrap_or_else(|_| "0".into());
        let _ = std::fs::write(Self::PATH, "1");
        BpfStats(old.trim().to_string())
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = std::fs::write(Self::PATH, &self.0);
    }
}

/// A running nettrace: stdout to /dev/null, `--debug` on stderr.
pub(crate) struct Tracer {
    child: Guard,
    stderr: mpsc::Receiver<String>,
    lines: Vec<String>,
}

impl Tracer {
    /// Starts nettrace and waits until it is tracing (its `ready` debug line
    /// is printed right before `begin trace...`); returns it and the time
    /// from exec to that point.
    pub(crate) fn start(bin: &Path, args: &[&str]) -> anyhow::Result<(Self, Duration)> {
        let started = Instant::now();
        let mut child = Command::new(bin)
            .args(args)
            .arg("--debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("spawn nettrace")?;
        let err = child.stderr.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut t = Tracer {
            child: Guard(child),
            stderr: rx,
            lines: Vec::new(),
        };
        loop {
            // Generous: ~100 fentry programs load in ~40 s under the VM's
            // emulation.
            match t.stderr.recv_timeout(Duration::from_secs(300)) {
                Ok(line) => {
                    let ready = line.ends_with("] ready");
                    t.lines.push(line);
                    if ready {
                        return Ok((t, started.elapsed()));
                    }
                }
                Err(_) => bail!("nettrace {args:?} did not start: {:#?}", t.lines),
            }
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.0.id()
    }

    /// CPU seconds (user + system) so far, from /proc.
    pub(crate) fn cpu_secs(&self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.pid())).unwrap_or_default();
        // Fields after the `(comm)`: utime and stime are the 12th and 13th.
        let after = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
        let f: Vec<&str> = after.split_whitespace().collect();
        let ticks: f64 = [11, 12]
            .iter()
            .filter_map(|&i| f.get(i).and_then(|v| v.parse::<f64>().ok()))
            .sum();
        // SAFETY: sysconf has no preconditions.
        ticks / unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64
    }

    /// (runs, ns) of this tracer's BPF programs so far, from its fds'
    /// fdinfo (`kernel.bpf_stats_enabled=1` makes the kernel count them).
    pub(crate) fn bpf_stats(&self) -> (u64, u64) {
        let mut total = (0, 0);
        let dir = format!("/proc/{}/fdinfo", self.pid());
        for fd in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let info = std::fs::read_to_string(fd.path()).unwrap_or_default();
            let get = |key: &str| {
                info.lines()
                    .find_map(|l| l.strip_prefix(key))
                    .and_then(|v| v.trim().parse::<u64>().ok())
            };
            if let (Some(ns), Some(runs)) = (get("run_time_ns:"), get("run_cnt:")) {
                total.0 += runs;
                total.1 += ns;
            }
        }
        total
    }

    /// Peak resident set size in MiB (`VmHWM`).
    pub(crate) fn peak_rss_mib(&self) -> f64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap_or_default();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.split_whitespace().next()?.parse::<f64>().ok())
            .map_or(0.0, |kib| kib / 1024.0)
    }

    /// SIGINT, then wait; returns the time to exit and every stderr line.
    pub(crate) fn stop(mut self) -> anyhow::Result<(Duration, Vec<String>)> {
        let asked = Instant::now();
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.pid() as i32, libc::SIGINT) };
        let st = self.child.0.wait()?;
        let took = asked.elapsed();
        self.lines.extend(self.stderr.try_iter());
        // The reader thread ends at EOF; give it a moment to pass the tail.
        thread::sleep(Duration::from_millis(50));
        self.lines.extend(self.stderr.try_iter());
        if !st.success() {
            bail!("nettrace exited with {st}: {:#?}", self.lines);
        }
        Ok((took, self.lines))
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// A number in nettrace's `--debug` line `... {before}N{after}...`.
pub(crate) fn number_after(lines: &[String], before: &str) -> Option<f64> {
    lines.iter().rev().find_map(|l| {
        let rest = &l[l.find(before)? + before.len()..];
        let num: String = rest
            .chars()
            .take_while(|c| c.is_ascii_digit() || *c == '.')
            .collect();
        num.parse().ok()
    })
}

struct Mode {
    name: &'static str,
    args: Vec<String>,
}

fn modes() -> Vec<Mode> {
    let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect();
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

/// Sends UDP datagrams to `addr:port` from `threads` threads for `secs`
/// (at most `rate` per second per thread when given); prints how many were
/// sent. Run inside a namespace by `pipeline` and the soak.
pub fn flood(addr: &str, port: u16, secs: u64, threads: usize, rate: Option<u64>) -> anyhow::Result<()> {
    let until = Instant::now() + Duration::from_secs(secs);
    let workers: Vec<_> = (0..threads)
        .map(|_| {
            let dst = format!("{addr}:{port}");
            thread::spawn(move || -> u64 {
                let Ok(s) = std::net::UdpSocket::bind("0.0.0.0:0") else {
                    return 0;
                };
                let mut sent = 0;
                let payload = [0u8; 32];
                let start = Instant::now();
                while Instant::now() < until {
                    for _ in 0..256 {
                        if s.send_to(&payload, &dst).is_ok() {
                            sent += 1;
                        }
                    }
                    if let Some(r) = rate {
                        let due = Duration::from_secs_f64(sent as f64 / r as f64);
                        if let Some(wait) = due.checked_sub(start.elapsed()) {
                            thread::sleep(wait);
                        }
                    }
                }
                sent
            })
        })
        .collect();
    let total: u64 = workers.into_iter().map(|w| w.join().unwrap_or(0)).sum();
    println!("{total}");
    Ok(())
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

/// `cargo xtask bench --vm`, inside the VM: the overhead rows (TCP) with
/// the backends the VM's kernel offers (fentry/fexit, kprobes). Emulated
/// CPUs make every ratio pessimistic; the rows are printed with the JSON on
/// one `BENCH-JSON` line for the serial console.
pub fn vm_inner(bin: &Path, o: &Options) -> anyhow::Result<()> {
    let net = Net::new()?;
    let _server = iperf_server(&net)?;
    let _stats = BpfStats::enable();
    println!(
        "bench (VM, qemu TCG: emulation makes these ratios pessimistic): {} s iperf3 TCP runs, {} pairs",
        o.secs, o.pairs
    );
    let mut rows = Vec::new();
    for mode in modes() {
        let r = overhead(bin, &net, &mode, false, o)?;
        println!(
            "  overhead {:<34} tcp  throughput {:>6.1}%  tracer CPU {:.2} s  BPF {:.2} s ({:.0} ns/run)",
            mode.name,
            r["median_ratio"].as_f64().unwrap_or(f64::NAN) * 100.0,
            r["median_tracer_cpu_s"].as_f64().unwrap_or(f64::NAN),
            r["median_bpf_cpu_s"].as_f64().unwrap_or(f64::NAN),
            r["median_bpf_ns_per_run"].as_f64().unwrap_or(f64::NAN)
        );
        rows.push(r);
    }
    println!("BENCH-JSON {}", json!({"vm": true, "overhead": rows}));
    Ok(())
}

pub fn run(bin: &Path, o: &Options) -> anyhow::Result<()> {
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
    let dir = crate::workspace_root().join("target/bench");
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
