//! The benchmark's traffic: two namespaces joined by veth, an iperf3 server
//! and client between them, and the UDP drop flood (`cargo xtask flood`,
//! run inside a namespace). The soak drives the same pieces.

use std::{
    process::{Child, Command, Stdio},
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use serde_json::Value;

/// Addresses of the two benchmark namespaces (a private /24 nothing else uses).
const A4: &str = "10.201.0.1";
pub(crate) const B4: &str = "10.201.0.2";
pub(crate) const IPERF_PORT: &str = "5201";
/// Nobody listens here: the flood's datagrams are dropped (NO_SOCKET).
pub(crate) const CLOSED_PORT: u16 = 9;

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
pub(super) fn iperf(net: &Net, udp: bool, secs: u32) -> anyhow::Result<f64> {
    let secs = secs.to_string();
    // Client and server on CPUs of their own: the runs agree far better.
    let mut argv = vec![
        "taskset", "-c", "0", "iperf3", "-c", B4, "-p", IPERF_PORT, "-t", &secs, "-J",
    ];
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
        net.cmd(&net.b, &["taskset", "-c", "1", "iperf3", "-s", "-p", IPERF_PORT])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("start iperf3 server")?,
    );
    thread::sleep(Duration::from_millis(300));
    Ok(g)
}

/// Runs the flood (`cargo xtask flood`, this binary) from namespace `a`
/// to `addr:port` for `secs` with 4 threads; returns datagrams sent.
pub(super) fn flood_from(net: &Net, addr: &str, port: u16, secs: u64) -> anyhow::Result<f64> {
    let me = std::env::current_exe()?;
    let me = me.to_str().context("xtask path")?;
    let out = net
        .cmd(
            &net.a,
            &[me, "flood", addr, &port.to_string(), &secs.to_string(), "4"],
        )
        .output()
        .context("run the flood")?;
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse().unwrap_or(0.0))
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
