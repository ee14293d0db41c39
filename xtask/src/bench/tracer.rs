//! A nettrace under measurement: started with `--debug`, ready when it says
//! so, and read from /proc (CPU time, peak RSS, BPF run time per program).

use std::{
    io::{BufRead as _, BufReader},
    path::Path,
    process::{Command, Stdio},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};

use super::net::Guard;

/// `kernel.bpf_stats_enabled=1` while the benchmark runs (BPF run time per
/// program, which costs a little itself); the old value comes back on drop.
pub(super) struct BpfStats(String);

impl BpfStats {
    const PATH: &str = "/proc/sys/kernel/bpf_stats_enabled";

    pub(super) fn enable() -> Self {
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
    /// nettrace, not the reference tool (whose exit status is its own).
    ours: bool,
    stderr: mpsc::Receiver<String>,
    lines: Vec<String>,
}

impl Tracer {
    /// Starts nettrace and waits until it is tracing (its `ready` debug line
    /// is printed right before `begin trace...`); returns it and the time
    /// from exec to that point.
    pub(crate) fn start(bin: &Path, args: &[&str]) -> anyhow::Result<(Self, Duration)> {
        Self::spawn(bin, args, true)
    }

    /// The same for the reference tool (the C nettrace), which has no
    /// `--debug` line: ready when it prints `begin trace...` (on stdout),
    /// whose output is read and thrown away from then on.
    pub(crate) fn start_reference(bin: &Path, args: &[&str]) -> anyhow::Result<(Self, Duration)> {
        Self::spawn(bin, args, false)
    }

    fn spawn(bin: &Path, args: &[&str], ours: bool) -> anyhow::Result<(Self, Duration)> {
        let started = Instant::now();
        let mut cmd = Command::new(bin);
        cmd.args(args).stderr(Stdio::piped());
        if ours {
            cmd.arg("--debug").stdout(Stdio::null());
        } else {
            cmd.stdout(Stdio::piped());
        }
        let mut child = cmd.spawn().with_context(|| format!("spawn {}", bin.display()))?;
        let (tx, rx) = mpsc::channel();
        let forward = |out: Box<dyn std::io::Read + Send>, tx: mpsc::Sender<String>| {
            thread::spawn(move || {
                let mut lines = BufReader::new(out).lines().map_while(Result::ok);
                for line in lines.by_ref() {
                    let begun = line.contains("begin trace");
                    if tx.send(line).is_err() || begun && !ours {
                        break;
                    }
                }
                // Past `begin trace...`: drain, so the tool never blocks.
                lines.for_each(drop);
            });
        };
        forward(Box::new(child.stderr.take().expect("piped")), tx.clone());
        if let Some(out) = child.stdout.take() {
            forward(Box::new(out), tx);
        } else {
            drop(tx);
        }
        let mut t = Tracer {
            child: Guard(child),
            ours,
            stderr: rx,
            lines: Vec::new(),
        };
        loop {
            // Generous: ~100 fentry programs load in ~40 s under the VM's
            // emulation.
            match t.stderr.recv_timeout(Duration::from_secs(300)) {
                Ok(line) => {
                    let ready = if ours {
                        line.ends_with("] ready")
                    } else {
                        line.contains("begin trace")
                    };
                    t.lines.push(line);
                    if ready {
                        return Ok((t, started.elapsed()));
                    }
                }
                Err(_) => bail!("{} {args:?} did not start: {:#?}", bin.display(), t.lines),
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
        let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
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
        if self.ours && !st.success() {
            bail!("nettrace exited with {st}: {:#?}", self.lines);
        }
        Ok((took, self.lines))
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
