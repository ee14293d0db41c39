//! Helpers for root integration tests: throwaway network namespaces joined by
//! a veth pair (`pair`), and a running `nettrace` whose output lines can be
//! awaited.
//!
//! Everything a test creates is removed by `Drop`, also when the test panics.
//! Traffic only ever goes to addresses inside these namespaces.

use std::{
    io::{BufRead as _, BufReader},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

mod bpf;
mod pair;
pub mod podman;
mod prometheus;
pub mod tasks;

pub use self::{
    bpf::{all_bpf_objects, bpf_object_exists, bpf_objects_of, leaked_since},
    pair::Pair,
    prometheus::Prometheus,
};

pub const BIN: &str = env!("CARGO_BIN_EXE_nettrace");

/// Runs a command, panicking with its stderr if it fails.
pub fn sh(args: &[&str]) -> String {
    let out = Command::new(args[0])
        .args(&args[1..])
        .output()
        .unwrap_or_else(|e| panic!("spawn {args:?}: {e}"));
    assert!(
        out.status.success(),
        "{args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn require_root() {
    // SAFETY: no preconditions.
    assert_eq!(
        unsafe { libc::geteuid() },
        0,
        "integration tests load eBPF and need root"
    );
}

/// `GET /metrics` over loopback: the whole HTTP response.
pub fn scrape(port: u16) -> String {
    use std::io::{Read as _, Write as _};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).expect("metrics endpoint");
    // A server that kept the connection open would otherwise hang the test.
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let mut body = String::new();
    c.read_to_string(&mut body).unwrap();
    body
}

/// Waits up to `timeout` for `child` to exit by itself: its status, or
/// `None` if it still runs (it is left running).
pub fn wait_child(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(st) = child.try_wait().unwrap() {
            return Some(st);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A port on 127.0.0.1 nobody listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind a loopback port")
        .port()
}

/// `GET path` on 127.0.0.1:port: (status code, body). HTTP/1.0, so the
/// body is never chunked.
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::{Read as _, Write as _};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    write!(c, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").ok()?;
    let mut out = String::new();
    c.read_to_string(&mut out).ok()?;
    let (head, body) = out.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// The value of the sample whose line starts with `prefix` (name and
/// labels), 0 when absent.
pub fn sample(metrics: &str, prefix: &str) -> f64 {
    metrics
        .lines()
        .filter(|l| l.starts_with(prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// A program running in a namespace for the length of a test: killed on
/// drop, also when the test panics.
pub struct Background(Child);

impl Background {
    pub fn start(ns: &str, cmd: &[&str]) -> Self {
        let child = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(cmd)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {cmd:?} in {ns}: {e}"));
        Background(child)
    }

    /// Waits for it to end by itself; panics with its stderr if it fails.
    pub fn finish(mut self, timeout: Duration) {
        let st = wait_child(&mut self.0, timeout)
            .unwrap_or_else(|| panic!("background command still running after {timeout:?}"));
        let mut err = String::new();
        if let Some(mut e) = self.0.stderr.take() {
            use std::io::Read as _;
            let _ = e.read_to_string(&mut err);
        }
        assert!(st.success(), "background command failed ({st}): {err}");
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if self.0.try_wait().ok().flatten().is_none() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// The child's stdout lines and its stderr, collected by two threads as
/// they come (for a child spawned with both piped).
pub fn collect_output(child: &mut Child) -> (Arc<Mutex<Vec<String>>>, Arc<Mutex<String>>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let stderr = Arc::new(Mutex::new(String::new()));
    let out = child.stdout.take().expect("piped stdout");
    let l = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            l.lock().unwrap().push(line);
        }
    });
    let err = child.stderr.take().expect("piped stderr");
    let e = stderr.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(err).lines().map_while(Result::ok) {
            let mut e = e.lock().unwrap();
            e.push_str(&line);
            e.push('\n');
        }
    });
    (lines, stderr)
}

/// A running nettrace whose stdout is collected line by line.
pub struct Tracer {
    child: Option<Child>,
    lines: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<String>>,
}

impl Tracer {
    /// Starts nettrace and waits for `begin trace...`.
    ///
    /// `NETTRACE_TEST_BACKEND` (set by the VM tier) forces an attach backend
    /// for lifecycle runs, so the same tests cover fentry and kprobes.
    pub fn start(args: &[&str]) -> Self {
        let mut args: Vec<&str> = args.to_vec();
        let forced = std::env::var("NETTRACE_TEST_BACKEND").ok();
        if let Some(b) = forced.as_deref()
            && !args.contains(&"--drop")
            && !args.contains(&"--backend")
        {
            args.extend(["--backend", b]);
        }
        let mut child = Command::new(BIN)
            .args(&args)
            .env("NO_COLOR", "1")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn nettrace");
        let (lines, stderr) = collect_output(&mut child);
        let mut t = Tracer {
            child: Some(child),
            lines,
            stderr,
        };
        let begin = if args.contains(&"--json") {
            r#"{"v":1,"type":"begin"}"#
        } else {
            "begin trace..."
        };
        t.wait_for(begin, start_timeout());
        t
    }

    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap().clone()
    }

    /// Every stdout line parsed as JSON (`--json`); a line that is not JSON
    /// fails the test.
    pub fn json_records(&self) -> Vec<serde_json::Value> {
        self.lines()
            .iter()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
            .collect()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until a line contains `needle`; panics with all output if not.
    pub fn wait_for(&mut self, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.lines().into_iter().find(|l| l.contains(needle)) {
                return l;
            }
            if let Some(st) = self.child.as_mut().unwrap().try_wait().unwrap() {
                std::thread::sleep(Duration::from_millis(100));
                if let Some(l) = self.lines().into_iter().find(|l| l.contains(needle)) {
                    return l;
                }
                panic!(
                    "nettrace exited ({st}) before printing {needle:?}\nstdout: {:#?}\nstderr: {}",
                    self.lines(),
                    self.stderr()
                );
            }
            if Instant::now() > deadline {
                panic!(
                    "no line with {needle:?} within {timeout:?}\nstdout: {:#?}\nstderr: {}",
                    self.lines(),
                    self.stderr()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for nettrace to exit by itself.
    pub fn wait_exit(&mut self, timeout: Duration) -> ExitStatus {
        let Some(st) = wait_child(self.child.as_mut().unwrap(), timeout) else {
            panic!(
                "nettrace did not exit within {timeout:?}\nstdout: {:#?}\nstderr: {}",
                self.lines(),
                self.stderr()
            );
        };
        // Let the reader threads catch the last lines.
        std::thread::sleep(Duration::from_millis(100));
        st
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: sending a signal to our own child.
        assert_eq!(unsafe { libc::kill(self.pid(), sig) }, 0);
    }
}

impl Drop for Tracer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take()
            && c.try_wait().ok().flatten().is_none()
        {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// A stack line as the C nettrace prints it, `    -> [ffffffff81b2c3d4]consume_skb+0x7c`
/// (16 lower-case hex digits), split into (address, symbol); `None` for any
/// other line.
pub fn stack_frame(line: &str) -> Option<(&str, &str)> {
    let (addr, sym) = line.strip_prefix("    -> [")?.split_once(']')?;
    let hex = addr.len() == 16
        && addr
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    hex.then_some((addr, sym))
}

/// How long nettrace may take to attach. Under software emulation (the VM
/// tier) loading a hundred fentry programs takes far longer than natively,
/// so the VM raises it with `NETTRACE_TEST_START_SECS`.
pub fn start_timeout() -> Duration {
    let secs = std::env::var("NETTRACE_TEST_START_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    Duration::from_secs(secs)
}

/// Whether this kernel lets nettrace hook kernel functions (kprobes; the
/// VM tier's kernel also has fentry), and whether the run uses fexit.
pub fn function_hooks() -> (bool, bool) {
    let kprobes = std::path::Path::new("/sys/bus/event_source/devices/kprobe/type").exists();
    let forced_kprobe = std::env::var("NETTRACE_TEST_BACKEND").is_ok_and(|b| b == "kprobe");
    (kprobes, kprobes && !forced_kprobe)
}

/// For tests that need function hooks: true (and a line saying the test is
/// skipped) on a kernel that cannot hook functions, like this project's CI
/// host; the VM tier runs them.
pub fn skip_without_function_hooks() -> bool {
    let skip = !function_hooks().0;
    if skip {
        eprintln!("skipped: this kernel cannot hook functions (the VM tier runs this)");
    }
    skip
}

/// Does this kernel's `skb:kfree_skb` carry a drop reason (5.17+)? Before
/// that, nettrace (like the C tool) reports a drop's location alone.
pub fn drop_reasons_reported() -> bool {
    std::fs::read_to_string("/sys/kernel/tracing/events/skb/kfree_skb/format")
        .is_ok_and(|f| f.contains(" reason;"))
}

/// How a `--drop` line ends for a drop with `reason` at `location`:
/// `reason: NO_SOCKET, tcp_v4_rcv+0x`, or `, tcp_v4_rcv+0x` where the kernel
/// has no drop reasons.
pub fn drop_says(reason: &str, location: &str) -> String {
    if drop_reasons_reported() {
        format!("reason: {reason}, {location}")
    } else {
        format!(", {location}")
    }
}

/// Checks a `--drop` line: the reason and location where the kernel reports
/// reasons, else the location and no reason at all.
pub fn assert_drop(line: &str, reason: &str, location: &str) {
    assert!(line.contains(&drop_says(reason, location)), "{line}");
    if !drop_reasons_reported() {
        assert!(
            !line.contains("reason:"),
            "a reason on a kernel without drop reasons: {line}"
        );
    }
}

/// The `reason` label `--metrics` gives a drop: the name, or `unknown`
/// where the kernel has no drop reasons.
pub fn metric_reason(reason: &str) -> &str {
    if drop_reasons_reported() {
        reason
    } else {
        "unknown"
    }
}

/// Whether a test that needs `tool` (a reader it checks nettrace's output
/// with) can run. Missing, it is skipped with a line saying why, except
/// under CI (`CI` set, as CI services set it), where a missing tool is a
/// broken set-up and fails the test; in the VM tier (`NETTRACE_TEST_VM`),
/// whose image carries only nettrace's own tools, it is always skipped.
pub fn have_tool(tool: &str, package: &str) -> bool {
    let found =
        std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| d.join(tool).is_file()));
    if !found {
        tool_missing(tool, &format!("Debian package {package}"));
    }
    found
}

/// A tool a test needs was not found (`source`: where it comes from): a
/// line saying the test is skipped, or under CI a failure (see
/// [`have_tool`]).
pub fn tool_missing(tool: &str, source: &str) {
    if std::env::var_os("NETTRACE_TEST_VM").is_some() {
        eprintln!("skipped: {tool} is not in the VM image (the host tier runs this)");
        return;
    }
    let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty() && v != "false");
    assert!(
        !ci,
        "{tool} not found under CI: `cargo xtask setup` installs it ({source})"
    );
    eprintln!("skipped: {tool} not found ({source}; `cargo xtask setup` installs it)");
}
