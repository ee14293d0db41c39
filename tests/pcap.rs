//! `-w FILE` (pcapng): files nettrace writes, read back by the real reader, `tshark` (host tier), and
//! by the `pcap-file` crate (also in the VM tier, where tshark is missing, so that every kernel's
//! verifier sees the packet-bytes record). `--pcap-l2` in `l2`.

use std::{
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::atomic::{AtomicBool, Ordering},
    time::{Duration, Instant},
};

use crate::util::{self, BIN, Pair, Tracer};
#[path = "pcap_l2.rs"]
mod l2;

/// The tracepoints every kernel with BTF has on a packet's path.
const PATH_HOOKS: &str =
    "net_dev_queue,net_dev_start_xmit,net_dev_xmit,netif_rx,netif_receive_skb,consume_skb,kfree_skb";

/// A file in a fresh temporary folder, removed with it.
struct TempFile {
    dir: PathBuf,
    pub path: PathBuf,
}

impl TempFile {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "nettrace-pcap-{}-{}",
            std::process::id(),
            name.replace('.', "-")
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        TempFile { dir, path }
    }

    fn arg(&self) -> &str {
        self.path.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// `tshark -r FILE ARGS`: stdout, after checking it read the whole file
/// (exit 0, no complaint about a cut-short or broken file on stderr).
fn tshark(file: &Path, args: &[&str]) -> String {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args(args)
        .output()
        .expect("run tshark");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "tshark -r {}: {}\n{err}",
        file.display(),
        out.status
    );
    assert!(
        !err.contains("cut short") && !err.contains("appears to be damaged"),
        "{err}"
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One row per packet of `tshark -T fields`, the fields split.
fn fields(file: &Path, names: &[&str]) -> Vec<Vec<String>> {
    let mut args = vec!["-T", "fields", "-E", "separator=|"];
    for n in names {
        args.extend(["-e", n]);
    }
    tshark(file, &args)
        .lines()
        .map(|l| l.split('|').map(str::to_string).collect())
        .collect()
}

/// What the pcap-file crate reads: each packet's bytes and comments.
fn packets(file: &Path) -> Vec<(Vec<u8>, Vec<String>)> {
    l2::packets_with_links(file)
        .into_iter()
        .map(|(_, data, comments)| (data, comments))
        .collect()
}

/// A SYN from a to b's closed `port`, dropped by b with NO_SOCKET, written
/// by `--drop -w`.
fn dropped_syn(net: &Pair, file: &TempFile, port: u16) {
    let p = port.to_string();
    let mut t = Tracer::start(&[
        "--drop",
        "-p",
        "tcp",
        "-d",
        &net.b4,
        "-D",
        &p,
        "-c",
        "1",
        "-w",
        file.arg(),
    ]);
    net.syn(port);
    assert!(t.wait_exit(util::start_timeout()).success(), "{}", t.stderr());
}

#[test]
fn drop_file_has_the_packet_and_the_event() {
    let net = Pair::new();
    let file = TempFile::new("drop.pcapng");
    dropped_syn(&net, &file, 9971);
    let p = packets(&file.path);
    assert_eq!(p.len(), 1, "{p:?}");
    let (data, comments) = &p[0];
    // IPv4 from a to b, TCP to 9971 with SYN alone.
    assert_eq!(data[0] >> 4, 4);
    let ihl = usize::from(data[0] & 0xf) * 4;
    assert_eq!(
        data[12..16],
        net.a4.parse::<std::net::Ipv4Addr>().unwrap().octets()
    );
    assert_eq!(
        data[16..20],
        net.b4.parse::<std::net::Ipv4Addr>().unwrap().octets()
    );
    assert_eq!(u16::from_be_bytes([data[ihl + 2], data[ihl + 3]]), 9971);
    assert_eq!(data[ihl + 13], 0x02, "SYN");
    assert!(
        comments.iter().any(|c| c.starts_with("hook: kfree_skb")),
        "{comments:?}"
    );
    assert!(comments.contains(&"event: drop".to_string()), "{comments:?}");
    if util::drop_reasons_reported() {
        assert!(
            comments.contains(&"reason: NO_SOCKET".to_string()),
            "{comments:?}"
        );
    }
    assert!(
        comments.iter().any(|c| c.starts_with("location: tcp_v4_rcv+0x")),
        "{comments:?}"
    );
    let ns_b = net.netns_inode(&net.b);
    assert!(comments.contains(&format!("netns: {ns_b}")), "{comments:?}");
}

#[test]
fn tshark_reads_a_drop_with_addresses_ports_flags_and_comments() {
    if !util::have_tool("tshark", "tshark") {
        return;
    }
    let net = Pair::new();
    let file = TempFile::new("drops.pcapng");
    dropped_syn(&net, &file, 9972);
    let rows = fields(
        &file.path,
        &[
            "ip.src",
            "ip.dst",
            "tcp.dstport",
            "tcp.flags.syn",
            "tcp.flags.ack",
            "frame.comment",
            "frame.interface_name",
        ],
    );
    assert_eq!(rows.len(), 1, "{rows:?}");
    let r = &rows[0];
    assert_eq!(
        (r[0].as_str(), r[1].as_str(), r[2].as_str()),
        (net.a4.as_str(), net.b4.as_str(), "9972")
    );
    assert_eq!(
        (r[3].as_str(), r[4].as_str()),
        ("1", "0"),
        "SYN without ACK: {r:?}"
    );
    assert!(r[5].contains("hook: kfree_skb"), "{r:?}");
    if util::drop_reasons_reported() {
        assert!(r[5].contains("reason: NO_SOCKET"), "{r:?}");
    }
    assert!(r[6].ends_with(&format!("@{}", net.netns_inode(&net.b))), "{r:?}");
    // The full dissection finds nothing malformed.
    let verbose = tshark(&file.path, &["-V"]);
    assert!(verbose.contains("Transmission Control Protocol"), "{verbose}");
    assert!(!verbose.contains("Malformed"), "{verbose}");
}

/// Lifecycle tracing of a SYN to b's closed `port` on the path, `-w` and `more`; the tracer at its exit.
fn traced_syn(net: &Pair, file: &TempFile, port: u16, more: &[&str]) -> Tracer {
    let p = port.to_string();
    let mut args = vec![
        "-t",
        PATH_HOOKS,
        "-p",
        "tcp",
        "-d",
        &net.b4,
        "-D",
        &p,
        "-c",
        "1",
        "-w",
        file.arg(),
    ];
    args.extend_from_slice(more);
    let mut t = Tracer::start(&args);
    net.syn(port);
    assert!(t.wait_exit(util::start_timeout()).success(), "{}", t.stderr());
    t
}

#[test]
fn lifecycle_file_has_one_packet_per_hook() {
    let net = Pair::new();
    let file = TempFile::new("life.pcapng");
    let t = traced_syn(&net, &file, 9973, &[]);
    let events = t.lines().iter().filter(|l| l.starts_with('[')).count();
    let p = packets(&file.path);
    assert_eq!(
        p.len(),
        events,
        "one packet per printed event: {:#?}\n{p:?}",
        t.lines()
    );
    // `hook: NAME (tracepoint, tp_btf)`, `hook: NAME (function, fentry)`, …
    let hooks: Vec<&str> = p
        .iter()
        .filter_map(|(_, c)| {
            let (name, how) = c.first()?.strip_prefix("hook: ")?.split_once(" (")?;
            assert!(
                how.starts_with("tracepoint, ") || how.starts_with("function, "),
                "{c:?}"
            );
            Some(name)
        })
        .collect();
    assert!(hooks.contains(&"netif_receive_skb"), "{hooks:?}");
    assert_eq!(hooks.last(), Some(&"kfree_skb"), "{hooks:?}");
    let last = &p.last().unwrap().1;
    if util::drop_reasons_reported() {
        assert!(last.contains(&"reason: NO_SOCKET".to_string()), "{last:?}");
    }
    for (data, _) in &p {
        assert_eq!(
            data[16..20],
            net.b4.parse::<std::net::Ipv4Addr>().unwrap().octets()
        );
    }
}

#[test]
fn tshark_reads_the_lifecycle_file() {
    if !util::have_tool("tshark", "tshark") {
        return;
    }
    let net = Pair::new();
    let file = TempFile::new("life2.pcapng");
    traced_syn(&net, &file, 9974, &[]);
    let rows = fields(
        &file.path,
        &[
            "ip.src",
            "ip.dst",
            "tcp.dstport",
            "tcp.flags.syn",
            "frame.comment",
        ],
    );
    assert!(rows.len() >= 2, "{rows:?}");
    for r in &rows {
        assert_eq!(
            (r[0].as_str(), r[1].as_str(), r[2].as_str(), r[3].as_str()),
            (net.a4.as_str(), net.b4.as_str(), "9974", "1")
        );
        assert!(r[4].starts_with("hook: "), "{r:?}");
    }
    assert!(
        rows.iter().any(|r| r[4].contains("hook: netif_receive_skb")),
        "{rows:?}"
    );
    assert!(!tshark(&file.path, &["-V"]).contains("Malformed"));
}

#[test]
fn diag_notes_are_comments() {
    let net = Pair::new();
    net.exec(
        &net.b,
        &[
            "iptables", "-A", "INPUT", "-p", "icmp", "-s", &net.a4, "-j", "DROP",
        ],
    );
    let file = TempFile::new("diag.pcapng");
    let mut t = Tracer::start(&[
        "-t",
        "netif_receive_skb,life",
        "--diag",
        "-p",
        "icmp",
        "-s",
        &net.a4,
        "-d",
        &net.b4,
        "-w",
        file.arg(),
    ]);
    net.exec(&net.a, &["ping", "-c", "1", "-W", "1", &net.b4]);
    assert!(t.wait_exit(util::start_timeout()).success(), "{}", t.stderr());
    let p = packets(&file.path);
    let notes: Vec<&String> = p
        .iter()
        .flat_map(|(_, c)| c)
        .filter(|c| c.starts_with("diag: "))
        .collect();
    assert!(!notes.is_empty(), "{:#?}\n{p:?}", t.lines());
    // Each note is the one the event's line carries.
    let text = t.lines().join("\n");
    for n in notes {
        assert!(
            text.contains(&format!("*{}*", &n["diag: ".len()..])),
            "{n} not in {text}"
        );
    }
}

#[test]
fn stdout_pipes_into_tshark_and_the_text_goes_to_stderr() {
    if !util::have_tool("tshark", "tshark") {
        return;
    }
    let net = Pair::new();
    let mut nettrace = Command::new(BIN)
        .args([
            "--drop", "-p", "tcp", "-d", &net.b4, "-D", "9975", "-c", "1", "-w", "-",
        ])
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn nettrace");
    let tshark = Command::new("tshark")
        .args([
            "-r",
            "-",
            "-T",
            "fields",
            "-E",
            "separator=|",
            "-e",
            "ip.dst",
            "-e",
            "tcp.dstport",
            "-e",
            "frame.comment",
        ])
        .stdin(Stdio::from(nettrace.stdout.take().unwrap()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tshark");
    // The markers and the drop's line come on stderr.
    let (tx, rx) = std::sync::mpsc::channel();
    let err = nettrace.stderr.take().unwrap();
    std::thread::spawn(move || {
        for l in BufReader::new(err).lines().map_while(Result::ok) {
            let _ = tx.send(l);
        }
    });
    let deadline = Instant::now() + util::start_timeout();
    let mut stderr = Vec::new();
    while !stderr.iter().any(|l: &String| l == "begin trace...") {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => stderr.push(l),
            Err(_) => panic!("no begin trace... on stderr: {stderr:#?}"),
        }
    }
    net.syn(9975);
    // `-c 1` ends nettrace at the drop; a drop never seen must fail the
    // test, not hang it (tshark ends with nettrace's output).
    let limit = util::start_timeout() + Duration::from_secs(10);
    let Some(status) = util::wait_child(&mut nettrace, limit) else {
        let _ = nettrace.kill();
        let _ = nettrace.wait();
        panic!(
            "nettrace -c 1 did not exit: {:#?}",
            rx.try_iter().collect::<Vec<_>>()
        );
    };
    let out = tshark.wait_with_output().unwrap();
    stderr.extend(rx.try_iter());
    assert!(status.success(), "{stderr:#?}");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let rows: Vec<&str> = text.lines().collect();
    assert_eq!(rows.len(), 1, "{text}");
    assert!(
        rows[0].starts_with(&format!("{}|9975|hook: kfree_skb", net.b4)),
        "{text}"
    );
    assert!(
        stderr
            .iter()
            .any(|l| l.contains(&format!(" -> {}:9975 ", net.b4))),
        "the drop's line on stderr: {stderr:#?}"
    );
}

/// Sets its flag when dropped.
struct StopOnDrop<'a>(&'a AtomicBool);

impl Drop for StopOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

#[test]
fn file_is_whole_after_sigint_mid_stream() {
    let net = Pair::new();
    let file = TempFile::new("sigint.pcapng");
    let mut t = Tracer::start(&[
        "--drop",
        "-p",
        "tcp",
        "-d",
        &net.b4,
        "-D",
        "9976",
        "-w",
        file.arg(),
    ]);
    // SYNs keep coming while nettrace is stopped.
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(Ordering::Relaxed) {
                net.syn(9976);
            }
        });
        // Also when a wait below panics: the scope joins the thread.
        let _stop = StopOnDrop(&stop);
        t.wait_for(&format!(" -> {}:9976 ", net.b4), util::start_timeout());
        std::thread::sleep(Duration::from_millis(300));
        t.signal(libc::SIGINT);
        assert!(t.wait_exit(util::start_timeout()).success(), "{}", t.stderr());
    });
    let printed = t.lines().iter().filter(|l| l.starts_with('[')).count();
    let p = packets(&file.path);
    assert!(!p.is_empty());
    assert_eq!(p.len(), printed, "every printed drop is in the file");
    if util::have_tool("tshark", "tshark") {
        let rows = fields(&file.path, &["tcp.dstport"]);
        assert_eq!(rows.len(), printed);
    }
}

#[test]
fn packetless_modes_and_bad_snaplen_exit_2() {
    for (args, says) in [
        (
            &["--tcp-monitor", "-w", "x.pcapng"][..],
            "--tcp-monitor reports no packets",
        ),
        (
            &["--func-stats", "-w", "x.pcapng"][..],
            "--func-stats reports no packets",
        ),
        (
            &["--drop", "-w", "x.pcapng", "--snaplen", "0"][..],
            "--snaplen: '0'",
        ),
        (
            &["--drop", "-w", "x.pcapng", "--snaplen", "1501"][..],
            "--snaplen: '1501'",
        ),
        (&["--drop", "--snaplen", "100"][..], "--snaplen needs -w"),
    ] {
        let out = Command::new(BIN).args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert!(!Path::new("x.pcapng").exists());
    }
}
