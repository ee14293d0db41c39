//! Which container: real podman containers (runc, an image built here from
//! busybox-static), real drops between them, and nettrace naming them —
//! in drop lines and records, lifecycle lines, `--conn` — and keeping
//! other containers out with `--container` in the kernel.

use std::time::Duration;

use crate::util::{
    BIN, Tracer, have_tool,
    podman::{Container, Image},
    require_root,
};

/// Ports nothing listens on, one per purpose, so each drop is told apart.
const TO_PEER: u16 = 40931;
const LOOPBACK_A: u16 = 40932;
const LOOPBACK_B: u16 = 40933;

fn podman() -> bool {
    require_root();
    have_tool("podman", "podman") && have_tool("runc", "runc")
}

/// Waits until some stdout line contains every one of `needles`.
fn wait_line(t: &Tracer, needles: &[&str]) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(l) = t
            .lines()
            .into_iter()
            .find(|l| needles.iter().all(|n| l.contains(n)))
        {
            return l;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no line with {needles:?}\nstdout: {:#?}\nstderr: {}",
            t.lines(),
            t.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn drop_line_and_record_name_the_receiving_container() {
    if !podman() {
        return;
    }
    let image = Image::busybox();
    let (a, b) = (Container::start(&image, "nt-a"), Container::start(&image, "nt-b"));
    let port = TO_PEER.to_string();
    let text = Tracer::start(&["--drop", "--detail", "-p", "tcp", "-D", &port]);
    let json = Tracer::start(&["--drop", "--json", "-p", "tcp", "-D", &port]);
    let pcapng = std::env::temp_dir().join(format!("nettrace-container-{}.pcapng", std::process::id()));
    let mut file = Tracer::start(&[
        "--drop",
        "-p",
        "tcp",
        "-D",
        &port,
        "-c",
        "1",
        "-w",
        pcapng.to_str().unwrap(),
    ]);
    a.connect(&b.ip, TO_PEER);
    // The SYN dies in b's namespace: no socket there.
    let line = wait_line(&text, &["NO_SOCKET", &format!(":{port} ")]);
    assert!(
        line.ends_with(&format!(
            "netns:{} pid:{} comm:{} [ctr:{}]",
            b.netns,
            pid_of(&line),
            comm_of(&line),
            b.name
        )),
        "{line}"
    );
    wait_line(&json, &["NO_SOCKET"]);
    let rec = json
        .json_records()
        .into_iter()
        .find(|r| r["type"] == "drop")
        .expect("a drop record");
    assert_eq!(rec["netns"], b.netns, "{rec}");
    assert_eq!(rec["container"]["runtime"], "podman", "{rec}");
    assert_eq!(rec["container"]["name"], b.name.as_str(), "{rec}");
    assert_eq!(rec["container"]["id"], b.id.as_str(), "{rec}");
    assert!(rec.get("pod").is_none(), "{rec}");
    // Wireshark sees it in the packet's comments.
    assert!(
        file.wait_exit(Duration::from_secs(10)).success(),
        "{}",
        file.stderr()
    );
    if have_tool("tshark", "tshark") {
        let out = std::process::Command::new("tshark")
            .arg("-r")
            .arg(&pcapng)
            .args(["-T", "fields", "-e", "frame.comment"])
            .output()
            .expect("run tshark");
        let comments = String::from_utf8_lossy(&out.stdout);
        let want = format!("container: {} (podman {})", b.name, &b.id[..12]);
        assert!(comments.contains(&want), "{want} not in {comments}");
    }
    let _ = std::fs::remove_file(&pcapng);
}

fn pid_of(line: &str) -> &str {
    line.split(" pid:")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap_or("")
}

fn comm_of(line: &str) -> &str {
    line.split(" comm:")
        .nth(1)
        .and_then(|r| r.split(' ').next())
        .unwrap_or("")
}

#[test]
fn container_filter_keeps_the_other_container_out_in_the_kernel() {
    if !podman() {
        return;
    }
    let image = Image::busybox();
    let (a, b) = (Container::start(&image, "nt-a"), Container::start(&image, "nt-b"));
    let t = Tracer::start(&["--drop", "--detail", "-p", "tcp", "--container", &a.name]);
    b.connect("127.0.0.1", LOOPBACK_B);
    a.connect(&b.ip, TO_PEER);
    a.connect("127.0.0.1", LOOPBACK_A);
    let line = wait_line(&t, &[&format!("127.0.0.1:{LOOPBACK_A} ")]);
    assert!(line.contains(&format!("[ctr:{}]", a.name)), "{line}");
    // a's own drop came last: the two in b's namespace were before it.
    std::thread::sleep(Duration::from_millis(300));
    let lines = t.lines();
    for l in &lines {
        assert!(
            !l.contains(&format!(":{LOOPBACK_B} ")) && !l.contains(&format!(":{TO_PEER} ")),
            "b's drop got through --container {}: {l}\n{lines:#?}",
            a.name
        );
        assert!(!l.contains(&b.name), "{l}");
    }
    // By id prefix too.
    let by_id = Tracer::start(&["--drop", "-p", "tcp", "--container", &a.id[..12]]);
    a.connect("127.0.0.1", LOOPBACK_A);
    wait_line(&by_id, &[&format!(":{LOOPBACK_A} ")]);
}

#[test]
fn lifecycle_detail_names_the_container() {
    if !podman() {
        return;
    }
    let image = Image::busybox();
    let a = Container::start(&image, "nt-a");
    let port = LOOPBACK_A.to_string();
    let t = Tracer::start(&["--detail", "-p", "tcp", "-D", &port, "--container", &a.name]);
    a.connect("127.0.0.1", LOOPBACK_A);
    let line = wait_line(&t, &["kfree_skb", &format!(":{port} ")]);
    assert!(
        line.contains(&format!("[ns:{}][ctr:{}][pid:", a.netns, a.name)),
        "{line}"
    );
}

#[test]
fn unknown_container_is_a_usage_error_unless_waited_for() {
    if !podman() {
        return;
    }
    let out = std::process::Command::new(BIN)
        .args(["--drop", "--container", "no-such-container-here"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("nettrace: --container no-such-container-here: no such container"),
        "{err}"
    );
    // --wait-container: traced once it runs.
    let image = Image::busybox();
    let name = format!("nt-late-{}", std::process::id());
    let t = Tracer::start(&["--drop", "-p", "tcp", "--container", &name, "--wait-container"]);
    assert!(t.stderr().contains("waiting for it"), "{}", t.stderr());
    let late = Container::start(&image, "nt-late");
    assert_eq!(late.name, name);
    // The gate looks again every second.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !t.stderr().contains(&format!("netns {} now matches", late.netns)) {
        assert!(std::time::Instant::now() < deadline, "{}", t.stderr());
        std::thread::sleep(Duration::from_millis(100));
    }
    late.connect("127.0.0.1", LOOPBACK_A);
    wait_line(&t, &[&format!(":{LOOPBACK_A} "), "NO_SOCKET"]);
}

#[test]
fn conn_shows_the_owner_container() {
    if !podman() {
        return;
    }
    let image = Image::busybox();
    let (a, b) = (Container::start(&image, "nt-a"), Container::start(&image, "nt-b"));
    a.exec("nc -l -p 8080 </dev/null >/dev/null 2>&1 &");
    b.exec("nc -l -p 8081 </dev/null >/dev/null 2>&1 &");
    std::thread::sleep(Duration::from_millis(300));
    let out = std::process::Command::new(BIN)
        .args(["--conn", "--state", "listen", "--container", &a.name])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let line = text
        .lines()
        .find(|l| l.contains(":8080 "))
        .unwrap_or_else(|| panic!("no listener on 8080:\n{text}"));
    assert!(line.ends_with(&format!("[ctr:{}]", a.name)), "{line}");
    assert!(!text.contains(":8081 "), "b's socket got through:\n{text}");
}

#[test]
fn metrics_label_drops_by_container_on_request() {
    if !podman() {
        return;
    }
    let image = Image::busybox();
    let (a, b) = (Container::start(&image, "nt-a"), Container::start(&image, "nt-b"));
    // A free loopback port, found by binding it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let t = Tracer::start(&[
        "--drop",
        "-p",
        "tcp",
        "--metrics",
        &addr,
        "--metrics-labels",
        "container,pod",
    ]);
    b.connect("127.0.0.1", LOOPBACK_B);
    a.connect(&b.ip, TO_PEER);
    wait_line(&t, &[&format!(":{TO_PEER} ")]);
    let m = crate::util::scrape(port);
    let b_drops: Vec<&str> = m
        .lines()
        .filter(|l| l.contains("NO_SOCKET") && l.contains(&format!("container=\"{}\"", b.name)))
        .collect();
    assert!(!b_drops.is_empty(), "no drop labelled with {}:\n{m}", b.name);
    assert!(b_drops.iter().all(|l| l.contains("pod=\"\"")), "{b_drops:?}");
    let total: f64 = b_drops
        .iter()
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(total, 2.0, "{b_drops:?}");
    assert!(!m.contains(&format!("container=\"{}\"", a.name)), "{m}");
}

#[test]
fn tcp_monitor_records_name_the_container() {
    if !podman() {
        return;
    }
    let image = Image::busybox();
    let a = Container::start(&image, "nt-a");
    let t = Tracer::start(&["--tcp-monitor", "--json", "--container", &a.name]);
    a.connect("127.0.0.1", LOOPBACK_A);
    wait_line(&t, &["tcp_send_reset"]);
    let rec = t
        .json_records()
        .into_iter()
        .find(|r| r["event"] == "tcp_send_reset")
        .expect("a reset record");
    assert_eq!(rec["netns"], a.netns, "{rec}");
    assert_eq!(rec["container"]["name"], a.name.as_str(), "{rec}");
    assert_eq!(rec["container"]["runtime"], "podman", "{rec}");
}
