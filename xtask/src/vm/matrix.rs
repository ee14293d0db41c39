//! What the VM tier runs where: kernel × test pass × backend.
//!
//! Emulated time is the budget (qemu/TCG on two cores, `.ci/run` under 45
//! minutes in all), so not every pass runs on every kernel: the newest LTS
//! kernel Debian ships (6.12) runs every pass the VM can run; 5.10 and 6.1
//! run the core modes (drops, lifecycle with fentry, diagnosis, sockets)
//! and 6.1 also the kprobe backend. The README's matrix is this table.

/// A Debian release whose cloud kernel the tier boots.
pub struct Release {
    /// The kernel series, as users name it (`NETTRACE_VM_KERNELS=5.10`).
    pub series: &'static str,
    /// The Debian suite whose `linux-image-cloud-amd64` is that series.
    pub suite: &'static str,
}

pub const RELEASES: &[Release] = &[
    Release {
        series: "5.10",
        suite: "bullseye",
    },
    Release {
        series: "6.1",
        suite: "bookworm",
    },
    Release {
        series: "6.12",
        suite: "trixie",
    },
];

/// One run of the integration-test binary (`tests/tests.rs`) inside the VM.
pub struct Spec {
    pub name: &'static str,
    /// The test harness's name filter: a module of `tests/tests.rs`
    /// (`drop::`), or a narrower prefix within one (`tcp::rtt_`).
    pub filter: &'static str,
    /// Tests whose names contain one of these are skipped (`--skip`).
    pub skip: &'static [&'static str],
    /// `NETTRACE_TEST_BACKEND`: force this attach backend.
    pub backend: Option<&'static str>,
    /// The kernel series it runs on.
    pub kernels: &'static [&'static str],
    /// Print the passing tests' output too (`--show-output`): for tests
    /// that say what they found on each kernel (which backend timed
    /// `--rt`), so the run's log documents it.
    pub show_output: bool,
}

const ALL: &[&str] = &["5.10", "6.1", "6.12"];

pub const PASSES: &[Spec] = &[
    // python3 (the flood) is not in the VM; loss accounting is covered on the host.
    Spec {
        name: "drop",
        filter: "drop::",
        skip: &["ring_buffer_overflow"],
        backend: None,
        kernels: ALL,
        show_output: false,
    },
    Spec {
        name: "lifecycle-fentry",
        filter: "lifecycle::",
        skip: &[],
        backend: None,
        kernels: ALL,
        show_output: false,
    },
    Spec {
        name: "diag",
        filter: "diag::",
        skip: &[],
        backend: None,
        kernels: ALL,
        show_output: false,
    },
    // Filter EXPRESSIONs in the fentry object (ip_rcv, ipv6_rcv) and the
    // drop object, on each verifier of the matrix.
    Spec {
        name: "expr",
        filter: "expr::",
        skip: &[],
        backend: None,
        kernels: ALL,
        show_output: false,
    },
    // -w: the packet-bytes record through each kernel's verifier (the
    // files are read with the pcap-file crate here; tshark is host only).
    Spec {
        name: "pcap",
        filter: "pcap::",
        skip: &[],
        backend: None,
        kernels: ALL,
        show_output: false,
    },
    // --sock's function hooks with fentry: the host can only show its tracepoints.
    Spec {
        name: "sock-fentry",
        filter: "sock::",
        skip: &[],
        backend: None,
        kernels: ALL,
        show_output: false,
    },
    // RTT samples from tcp_ack_update_rtt (fentry); the other TCP tests
    // drive python3 servers, which the VM does not have.
    Spec {
        name: "tcp-rtt",
        filter: "tcp::rtt_",
        skip: &[],
        backend: None,
        kernels: &["6.12"],
        show_output: false,
    },
    // --latency, --monitor, --func-stats with function hooks; the
    // rate-limit test floods with python3 (host only).
    Spec {
        name: "stats",
        filter: "stats::",
        skip: &["rate_limit"],
        backend: None,
        kernels: &["6.12"],
        show_output: false,
    },
    // --rt through the function hooks where its tracepoints cannot serve
    // (5.10, 6.1: fentry, and fexit for sends everywhere), tcp_probe on
    // 6.12; the traffic is the test's own threads (no python in the VM).
    Spec {
        name: "rt",
        filter: "rt::",
        skip: &[],
        backend: None,
        kernels: ALL,
        show_output: true,
    },
    // The kprobe + kretprobe pair; on 6.12 it also replaces tracepoints
    // that would otherwise be used.
    Spec {
        name: "rt-kprobe",
        filter: "rt::",
        skip: &[],
        backend: Some("kprobe"),
        kernels: &["6.1", "6.12"],
        show_output: true,
    },
    Spec {
        name: "lifecycle-kprobe",
        filter: "lifecycle::",
        skip: &[],
        backend: Some("kprobe"),
        kernels: &["6.1", "6.12"],
        show_output: false,
    },
    Spec {
        name: "sock-kprobe",
        filter: "sock::",
        skip: &[],
        backend: Some("kprobe"),
        kernels: &["6.12"],
        show_output: false,
    },
];

/// `NETTRACE_VM_KERNELS=5.10,6.12` and `NETTRACE_VM_PASSES=diag` narrow the
/// tier for development; unset, everything runs.
pub fn selected(var: &str, name: &str) -> bool {
    std::env::var(var)
        .ok()
        .is_none_or(|only| only.split(',').any(|n| n.trim() == name))
}
