//! Root integration tests for `--conn`: real TCP connections between two
//! namespaces this test creates, listed from the root namespace (so the
//! tool has to enter the others to see them).

use std::{
    io::{BufRead as _, BufReader},
    process::{Child, ChildStdout, Command, Output, Stdio},
    time::{Duration, Instant},
};

use crate::util::{BIN, Pair};

/// Accepts one IPv4 and one IPv6 connection, reads 1000 bytes from each,
/// answers 2000, and keeps both open.
const SERVER: &str = r#"
import socket, sys, time
port, v4, v6 = int(sys.argv[1]), sys.argv[2], sys.argv[3]
listeners = []
for fam, addr in ((socket.AF_INET, v4), (socket.AF_INET6, v6)):
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    s.listen(4)
    s.settimeout(30)
    listeners.append(s)
print("listening", flush=True)
conns = []
for s in listeners:
    c, _ = s.accept()
    c.settimeout(30)
    got = 0
    while got < 1000:
        got += len(c.recv(1000 - got))
    c.sendall(b"y" * 2000)
    conns.append(c)
time.sleep(600)
"#;

/// Connects over IPv4 then IPv6, sends 1000 bytes, reads the 2000 back,
/// prints its two local ports, and keeps both connections open.
const CLIENT: &str = r#"
import socket, sys, time
port, v4, v6 = int(sys.argv[1]), sys.argv[2], sys.argv[3]
conns = []
for addr in (v4, v6):
    c = socket.create_connection((addr, port), timeout=30)
    c.sendall(b"x" * 1000)
    got = 0
    while got < 2000:
        got += len(c.recv(4096))
    conns.append(c)
print("ready", *[c.getsockname()[1] for c in conns], flush=True)
time.sleep(600)
"#;

/// Processes that are killed when the test ends, also on panic.
struct Procs(Vec<Child>);

impl Drop for Procs {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts `python3 -c script args…` in `ns`; its stdout is returned to read.
fn python(procs: &mut Procs, ns: &str, script: &str, args: &[&str]) -> (u32, BufReader<ChildStdout>) {
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns, "python3", "-c", script])
        .args(args)
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn python3");
    let out = BufReader::new(child.stdout.take().unwrap());
    let pid = child.id();
    procs.0.push(child);
    (pid, out)
}

fn read_line(r: &mut BufReader<ChildStdout>, what: &str) -> String {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    assert!(!line.is_empty(), "{what} exited early");
    line.trim_end().to_string()
}

/// The connections the test made.
struct Setup {
    net: Pair,
    port: u16,
    client_pid: u32,
    server_pid: u32,
    /// Client's local ports: (IPv4, IPv6).
    client_ports: (u16, u16),
    _procs: Procs,
}

fn setup() -> Setup {
    let net = Pair::new();
    // Tests run in parallel: each setup gets its own port.
    static NEXT: std::sync::atomic::AtomicU16 = std::sync::atomic::AtomicU16::new(0);
    let port = 20000
        + (std::process::id() % 20000) as u16
        + 7 * NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let mut procs = Procs(Vec::new());
    let p = port.to_string();
    let (server_pid, mut server) = python(&mut procs, &net.b, SERVER, &[&p, &net.b4, &net.b6]);
    assert_eq!(read_line(&mut server, "server"), "listening");
    let (client_pid, mut client) = python(&mut procs, &net.a, CLIENT, &[&p, &net.b4, &net.b6]);
    let ready = read_line(&mut client, "client");
    let ports: Vec<u16> = ready
        .strip_prefix("ready ")
        .unwrap_or_else(|| panic!("client said {ready:?}"))
        .split(' ')
        .map(|p| p.parse().unwrap())
        .collect();
    Setup {
        net,
        port,
        client_pid,
        server_pid,
        client_ports: (ports[0], ports[1]),
        _procs: procs,
    }
}

/// Runs nettrace to completion (it must exit by itself) and checks success.
fn run(args: &[&str]) -> Vec<String> {
    let mut child = Command::new(BIN)
        .args(args)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn nettrace");
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!("nettrace {args:?} did not exit within 30 s: {}", text(&out));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "nettrace {args:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

fn text(out: &Output) -> String {
    format!(
        "{}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `rtt:0.123ms` → 123 µs.
fn field_us(line: &str, key: &str) -> u64 {
    let v = line
        .split(' ')
        .find_map(|w| w.strip_prefix(key))
        .and_then(|v| v.strip_suffix("ms"))
        .unwrap_or_else(|| panic!("no {key} in {line}"));
    let (ms, frac) = v.split_once('.').unwrap();
    ms.parse::<u64>().unwrap() * 1000 + frac.parse::<u64>().unwrap()
}

fn the_line<'a>(lines: &'a [String], prefix: &str) -> &'a str {
    let found: Vec<&String> = lines.iter().filter(|l| l.starts_with(prefix)).collect();
    assert_eq!(found.len(), 1, "want one line starting {prefix:?} in {lines:#?}");
    found[0]
}

#[test]
fn lists_connections_inside_other_namespaces() {
    let s = setup();
    let (ns_a, ns_b) = (s.net.netns_inode(&s.net.a), s.net.netns_inode(&s.net.b));
    let lines = run(&["--conn", "-P", &s.port.to_string()]);
    let (c4, c6) = s.client_ports;
    let port = s.port;
    let (a4, b4, a6, b6) = (&s.net.a4, &s.net.b4, &s.net.a6, &s.net.b6);

    // Both ends of both connections, each from inside its own namespace.
    let client4 = the_line(
        &lines,
        &format!("netns:{ns_a} ESTABLISHED {a4}:{c4} -> {b4}:{port} "),
    );
    let server4 = the_line(
        &lines,
        &format!("netns:{ns_b} ESTABLISHED {b4}:{port} -> {a4}:{c4} "),
    );
    let client6 = the_line(
        &lines,
        &format!("netns:{ns_a} ESTABLISHED [{a6}]:{c6} -> [{b6}]:{port} "),
    );
    let server6 = the_line(
        &lines,
        &format!("netns:{ns_b} ESTABLISHED [{b6}]:{port} -> [{a6}]:{c6} "),
    );
    for l in [client4, server4, client6, server6] {
        assert!(field_us(l, "rtt:") > 0, "{l}");
        assert!(l.contains(" retrans:0/0 lost:0 cwnd:"), "{l}");
    }
    // Byte counters (Linux 4.1+): 1000 sent one way, 2000 the other.
    for l in [client4, client6] {
        assert!(l.contains(" received:2000 "), "{l}");
        assert!(l.contains(&format!(" pid:{}/python", s.client_pid)), "{l}");
    }
    for l in [server4, server6] {
        assert!(l.contains(" received:1000 "), "{l}");
        assert!(l.contains(&format!(" pid:{}/python", s.server_pid)), "{l}");
    }
    // The listeners, and nothing that is not on the port.
    the_line(&lines, &format!("netns:{ns_b} LISTEN {b4}:{port} -> 0.0.0.0:0 "));
    assert!(
        lines.iter().all(|l| l.contains(&format!(":{port} "))),
        "{lines:#?}"
    );
    assert_eq!(lines.len(), 6, "{lines:#?}");

    // Filters narrow it down: one namespace, one family, one remote.
    let only_a = run(&["--conn", "-P", &port.to_string(), "--netns", &ns_a.to_string()]);
    assert_eq!(only_a.len(), 2, "{only_a:#?}");
    assert!(only_a.iter().all(|l| l.starts_with(&format!("netns:{ns_a} "))));
    let v4_to_b = run(&["--conn", "-d", b4, "-D", &port.to_string()]);
    assert_eq!(v4_to_b, [client4], "{v4_to_b:#?}");
}

#[test]
fn json_records_carry_the_same_facts() {
    let s = setup();
    let ns_a = s.net.netns_inode(&s.net.a);
    let lines = run(&["--conn", "--json", "-P", &s.port.to_string()]);
    let records: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l}: {e}")))
        .filter(|v: &serde_json::Value| v["type"] == "conn")
        .collect();
    let client: Vec<&serde_json::Value> = records
        .iter()
        .filter(|r| r["netns"] == ns_a && r["l3"] == "ipv4")
        .collect();
    assert_eq!(client.len(), 1, "{records:#?}");
    let r = client[0];
    assert_eq!(r["v"], 1);
    assert_eq!(r["state"], "ESTABLISHED");
    assert_eq!(r["saddr"], s.net.a4.as_str());
    assert_eq!(r["sport"], s.client_ports.0);
    assert_eq!(r["daddr"], s.net.b4.as_str());
    assert_eq!(r["dport"], s.port);
    assert!(r["rtt_ns"].as_u64().unwrap() > 0, "{r}");
    assert!(r["rttvar_ns"].is_u64(), "{r}");
    assert_eq!(r["total_retrans"], 0);
    assert_eq!(r["bytes_received"], 2000);
    assert_eq!(r["pid"], s.client_pid);
    assert!(r["comm"].as_str().unwrap().starts_with("python"), "{r}");
    assert!(r["inode"].as_u64().unwrap() > 0, "{r}");
    assert_eq!(records.len(), 6, "{records:#?}");
}

#[test]
fn interval_repeats_the_snapshot_until_the_count() {
    let s = setup();
    let port = s.port.to_string();
    // Each snapshot: a header and the 6 sockets of the test's port; -c
    // counts lines, so 3 snapshots are 21 lines.
    let started = Instant::now();
    let lines = run(&["--conn", "--interval", "0.3", "-c", "21", "-P", &port]);
    assert_eq!(lines.len(), 21, "{lines:#?}");
    let headers: Vec<&String> = lines.iter().filter(|l| l.ends_with(" 6 connections")).collect();
    assert_eq!(headers.len(), 3, "{lines:#?}");
    assert!(headers.iter().all(|h| h.starts_with('[')), "{headers:?}");
    // Two waits of 0.3 s between the three snapshots.
    assert!(
        started.elapsed() >= Duration::from_millis(600),
        "{:?}",
        started.elapsed()
    );
}
