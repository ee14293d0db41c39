//! Two throwaway network namespaces joined by a veth pair, and the test
//! traffic between them. Traffic only ever goes to addresses inside them;
//! `Drop` removes both namespaces, also when the test panics.

use std::{
    process::{Command, Stdio},
    sync::atomic::{AtomicU32, Ordering},
};

use super::{require_root, sh};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// Two namespaces `a` and `b`, linked by veth, with IPv4 10.231.N.1/.2 and
/// IPv6 fd31:N::1/::2.
pub struct Pair {
    pub a: String,
    pub b: String,
    pub a4: String,
    pub b4: String,
    pub a6: String,
    pub b6: String,
    dev_b: String,
}

impl Pair {
    pub fn new() -> Self {
        require_root();
        let n = NEXT.fetch_add(1, Ordering::Relaxed) + (std::process::id() % 200);
        let tag = format!("nt{}x{n}", std::process::id());
        let pair = Pair {
            a: format!("{tag}a"),
            b: format!("{tag}b"),
            a4: format!("10.231.{}.1", n % 250),
            b4: format!("10.231.{}.2", n % 250),
            a6: format!("fd31:{n}::1"),
            b6: format!("fd31:{n}::2"),
            dev_b: format!("v{n}b{}", std::process::id() % 10000),
        };
        // From here on, Drop cleans up whatever exists.
        sh(&["ip", "netns", "add", &pair.a]);
        sh(&["ip", "netns", "add", &pair.b]);
        let (va, vb) = (
            format!("v{n}a{}", std::process::id() % 10000),
            format!("v{n}b{}", std::process::id() % 10000),
        );
        sh(&[
            "ip", "link", "add", &va, "netns", &pair.a, "type", "veth", "peer", "name", &vb, "netns", &pair.b,
        ]);
        for (ns, dev, v4, v6) in [
            (&pair.a, &va, &pair.a4, &pair.a6),
            (&pair.b, &vb, &pair.b4, &pair.b6),
        ] {
            sh(&["ip", "-n", ns, "link", "set", "lo", "up"]);
            sh(&["ip", "-n", ns, "addr", "add", &format!("{v4}/24"), "dev", dev]);
            sh(&[
                "ip",
                "-n",
                ns,
                "addr",
                "add",
                &format!("{v6}/64"),
                "dev",
                dev,
                "nodad",
            ]);
            sh(&["ip", "-n", ns, "link", "set", dev, "up"]);
        }
        // Resolve neighbours now: a test's first packet would otherwise wait
        // in (or be consumed by) the ARP queue instead of taking the normal
        // path the test wants to see.
        pair.exec(&pair.a, &["ping", "-c", "1", "-W", "2", &pair.b4]);
        pair
    }

    /// Another IPv4 address in the pair's /24: `host(3)` = 10.231.N.3.
    pub fn host(&self, last: u8) -> String {
        let prefix = self.b4.rsplit_once('.').expect("dotted quad").0;
        format!("{prefix}.{last}")
    }

    /// b's end of the veth pair.
    pub fn b_dev(&self) -> String {
        self.dev_b.clone()
    }

    /// Runs `cmd` inside namespace `ns`, ignoring its exit status (a refused
    /// connection is what several tests want).
    pub fn exec(&self, ns: &str, cmd: &[&str]) {
        let _ = Command::new("ip")
            .args(["netns", "exec", ns])
            .args(cmd)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }

    /// A TCP SYN from `a` to `b`'s `port` (nobody listens: RST comes back).
    pub fn syn(&self, port: u16) {
        self.exec(&self.a, &["nc", "-z", "-w", "1", &self.b4, &port.to_string()]);
    }

    /// One UDP datagram (`x\n`) from `a` to `b`'s `port`, by netcat-openbsd.
    /// Not through `sh -c 'echo x | nc …'`: the VM's busybox sh runs its own
    /// nc applet for `nc`, which sent nothing there.
    pub fn udp(&self, port: u16) {
        use std::io::Write as _;
        let mut nc = Command::new("ip")
            .args([
                "netns",
                "exec",
                &self.a,
                "nc",
                "-u",
                "-w",
                "1",
                &self.b4,
                &port.to_string(),
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn nc");
        // Dropping stdin after the write ends nc's input: it sends, waits
        // -w, and exits.
        let _ = nc.stdin.take().expect("piped stdin").write_all(b"x\n");
        let _ = nc.wait();
    }

    pub fn syn6(&self, port: u16) {
        self.exec(
            &self.a,
            &["nc", "-6", "-z", "-w", "1", &self.b6, &port.to_string()],
        );
    }

    pub fn netns_inode(&self, ns: &str) -> u64 {
        use std::os::unix::fs::MetadataExt as _;
        std::fs::metadata(format!("/run/netns/{ns}"))
            .expect("netns file")
            .ino()
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            let _ = Command::new("ip")
                .args(["netns", "del", ns])
                .stderr(Stdio::null())
                .status();
        }
    }
}
