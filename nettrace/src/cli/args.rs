//! What was typed: the clap derive layer (ripgrep's "low-level args").
//!
//! Flag names and short options follow the C nettrace (`nettrace -h`) so its
//! users and scripts keep working. Nothing here is validated beyond syntax;
//! `cli::config` turns this into a `Config` the rest of the program trusts.
//!
//! The flags come in flattened groups, one struct per concern (modes, diag,
//! sockets, lifecycle, filters, output, kernel), each naming its `--help`
//! heading once. clap lists flags in declaration order (in `--help`, the
//! man page and the completion scripts), so the groups and the fields in
//! them are in the order the help has always shown: reorder nothing
//! without diffing those outputs.

mod containers;
mod filter;
mod rt;

use clap::{ArgAction, Parser, Subcommand, ValueEnum};

pub use self::{
    containers::ContainerArgs,
    filter::FilterArgs,
    rt::{RtArgs, RtFormat, RtProto},
};

/// Trace network packets through the Linux kernel with eBPF.
///
/// nettrace attaches eBPF programs to kernel tracepoints and functions, filters
/// packets inside the kernel and prints one line per event, ready for grep.
/// Without a mode flag it follows each matching packet hook by hook until the
/// kernel frees it (lifecycle mode); --drop reports dropped packets instead.
#[derive(Debug, Parser)]
#[command(
    name = "nettrace",
    version,
    // The tracing flags work without a subcommand, as in the C nettrace;
    // `nettrace man` and `nettrace completions SHELL` take none of them.
    args_conflicts_with_subcommands = true,
    after_help = "\
EXAMPLES:
    nettrace -p icmp -s 10.0.0.1            follow each ping from 10.0.0.1 hook by hook
    nettrace -t ip,tcp --detail -P 443      only IP and TCP hooks, with cpu/dev/netns/pid
    nettrace --basic -p udp                 events as they happen, not grouped per packet
    nettrace --drop                         every dropped packet, with the kernel's reason
    nettrace --drop -p tcp -D 443           dropped TCP packets to port 443
    nettrace --drop 'tcp dst port 443 and net 10.0.0.0/8'   the same in tcpdump's syntax, in the kernel
    nettrace --drop -s 10.0.0.1 --drop-stack   drops from 10.0.0.1 with kernel stacks
    nettrace --drop -c 10 --date            the next 10 drops, local date-time stamps
    nettrace --tcp-monitor -P 443           retransmits, resets (with reason), losses on port 443
    nettrace --rt -P 8080                   request/upload, processing and download time per request
    nettrace --sock -p tcp -P 5201          TCP sockets on port 5201 hook by hook: state, cwnd state, timers
    nettrace --conn --state established     TCP connections of every namespace, with rtt and owner
    nettrace --drop --container web-1 --detail   drops in podman/docker container web-1, named
    nettrace --drop --json | jq .reason     NDJSON records for scripts
    nettrace --drop -w drops.pcapng         also write the drops for Wireshark (tshark -r drops.pcapng)
    nettrace --tcp-monitor --metrics 9464   Prometheus metrics at 127.0.0.1:9464/metrics
    nettrace --debug --drop                 also show what this kernel supports
    nettrace completions bash > /etc/bash_completion.d/nettrace
    nettrace man | man -l -                 this help as a man page

Needs root (CAP_BPF + CAP_PERFMON, or CAP_SYS_ADMIN) and kernel BTF
(/sys/kernel/btf/vmlinux). Exit status: 0 on success (also on Ctrl-C and when
the reader of the output goes away), 1 on a runtime failure, 2 on bad usage."
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,

    // Without a mode flag nettrace follows each matching packet through the
    // kernel (lifecycle mode).
    #[command(flatten)]
    pub drops: DropArgs,

    #[command(flatten)]
    pub diagnosis: DiagArgs,

    #[command(flatten)]
    pub socket: SocketArgs,

    #[command(flatten)]
    pub rt: RtArgs,

    #[command(flatten)]
    pub lifecycle: LifecycleArgs,

    #[command(flatten)]
    pub filters: FilterArgs,

    #[command(flatten)]
    pub containers: ContainerArgs,

    #[command(flatten)]
    pub output: OutputArgs,

    #[command(flatten)]
    pub kernel: KernelArgs,

    #[command(flatten)]
    pub bench: BenchArgs,
}

/// `--drop` and its stack option: the dropped-packets mode.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Modes")]
pub struct DropArgs {
    /// Monitor dropped packets (skb:kfree_skb) with the drop reason and location.
    #[arg(long)]
    pub drop: bool,

    /// With --drop: print the kernel call stack of each drop.
    #[arg(long)]
    pub drop_stack: bool,
}

/// `--diag` and its options: lifecycle tracing that applies the catalogue's
/// rules. Listed with the modes in `--help`; lifecycle flags all the same
/// (`config::lifecycle::given` lists every field, the compiler sees to it).
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Modes")]
pub struct DiagArgs {
    /// Diagnose: apply the catalogue's rules, annotate events and print an
    /// ANALYSIS RESULT (what went wrong, where, how to fix it) for packets
    /// that had a problem; tracing stops after the first one.
    #[arg(long)]
    pub diag: bool,

    /// With --diag: print only packets that had a problem.
    #[arg(long)]
    pub diag_quiet: bool,

    /// With --diag: keep tracing after a problem is found.
    #[arg(long)]
    pub diag_keep: bool,

    /// With --diag: when netfilter drops a packet, name the hook functions
    /// registered at that hook point in the packet's namespace (read from the
    /// kernel at the drop) and the hook point itself.
    #[arg(long)]
    pub hooks: bool,
}

/// The socket modes (`--tcp-monitor`, `--sock`, `--conn`, `--rtt`; `--rt`
/// has its own group, `RtArgs`)
/// and the options only they take.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Modes")]
pub struct SocketArgs {
    /// TCP anomalies as they happen, one line each: retransmits, SYN-ACK
    /// retransmits, resets sent (with the kernel's reason) and received, bad
    /// checksums, congestion state into Recovery/Loss. Filters see the local
    /// end as source (-s/-S) and the remote end as destination (-d/-D).
    #[arg(long)]
    pub tcp_monitor: bool,

    /// Trace sockets instead of packets: one line per TCP socket hook
    /// (listen, state changes, transmit, ack, timers, close, resets,
    /// retransmits) with the socket as the hook saw it: state, congestion
    /// state, packets out and retransmitted, snd_una, write/read memory,
    /// pending timer and its time left. Filters as for --tcp-monitor.
    /// Kernel functions are hooked where the kernel allows (fentry, else
    /// kprobe; --backend forces one, or `tracepoint` for tracepoints only).
    #[arg(long)]
    pub sock: bool,

    /// Snapshot of TCP connections in every network namespace (netlink
    /// sock_diag with tcp_info): state, rtt, retransmits, cwnd, bytes, owner.
    /// Local end = source for the filters.
    #[arg(long)]
    pub conn: bool,

    /// With --conn: repeat the snapshot every SECS seconds. With --rt:
    /// print per-port statistics every SECS seconds (default 60).
    #[arg(long, value_name = "SECS", allow_negative_numbers = true)]
    pub interval: Option<String>,

    /// With --conn: only these TCP states, comma separated as ss(8) names
    /// them (established, syn-sent, time-wait, listen, …) or `all` (the
    /// default).
    #[arg(long, value_name = "LIST")]
    pub state: Option<String>,

    /// TCP round-trip-time distribution (log2 buckets of ms), counted in
    /// the kernel and printed every second.
    #[arg(long)]
    pub rtt: bool,

    /// One line per RTT sample: `*rtt:…, rtt_min:…*` with the connection.
    #[arg(long)]
    pub rtt_detail: bool,

    /// With --rtt/--rtt-detail: only sockets whose smoothed RTT is at
    /// least MS milliseconds (checked in the kernel). With --sock: traces
    /// tcp_ack_update_rtt (added to -t) and shows only its samples on such
    /// sockets.
    #[arg(long, value_name = "MS", allow_negative_numbers = true)]
    pub filter_srtt: Option<String>,

    /// With --rtt/--rtt-detail: only sockets whose minimum RTT is at least
    /// MS milliseconds (checked in the kernel). With --sock: as
    /// --filter-srtt, on the minimum RTT.
    #[arg(long, value_name = "MS", allow_negative_numbers = true)]
    pub filter_minrtt: Option<String>,
}

/// What lifecycle tracing (the default mode) attaches and prints. `--monitor`
/// is a lifecycle variant although `--help` lists it with the modes. No
/// other mode takes these flags (`--sock` takes `-t`):
/// `config::lifecycle::given` lists every field, the compiler sees to it.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Lifecycle")]
pub struct LifecycleArgs {
    /// Hooks to attach: group or hook names, comma separated, or `all`
    /// (default: every hook not marked default-off). See rules/hooks.yaml.
    /// With --sock: names of its tracepoints and functions.
    #[arg(short = 't', long, value_name = "LIST")]
    pub trace: Option<String>,

    /// Merge a rule pack (same YAML schema as rules/hooks.yaml) into the
    /// embedded catalogue: known hooks gain its rules, new hooks are added.
    #[arg(long, value_name = "FILE")]
    pub rules: Option<String>,

    /// Only these hooks may start following a packet (others only report
    /// packets already followed).
    #[arg(long, value_name = "LIST")]
    pub trace_matcher: Option<String>,

    /// Never attach these hooks.
    #[arg(long, value_name = "LIST")]
    pub trace_exclude: Option<String>,

    /// Hooks that end a packet's life (default: consume_skb, kfree_skb, __kfree_skb…).
    #[arg(long, value_name = "LIST")]
    pub trace_free: Option<String>,

    /// Print the kernel stack at these hooks.
    #[arg(long, value_name = "LIST")]
    pub trace_stack: Option<String>,

    /// Do not follow clones (skb_clone) as part of the packet.
    #[arg(long)]
    pub trace_noclone: bool,

    /// Print events as they arrive instead of grouped per packet.
    #[arg(long)]
    pub basic: bool,

    /// Add [skb][func][cpu][dev][ns][pid][comm] to each event, and [ctr:NAME] or
    /// [pod:NAMESPACE/NAME] when a container owns the namespace; with --drop, add netns, pid,
    /// comm and the container to each drop line.
    #[arg(long)]
    pub detail: bool,

    /// Show function return values (needs fexit).
    #[arg(long)]
    pub ret: bool,

    /// Only the first event of a packet shows the packet.
    #[arg(long)]
    pub tiny_show: bool,

    /// Show the time between hooks and each packet's total life.
    #[arg(long)]
    pub latency_show: bool,

    /// Report only each packet's whole life (first hook to the free),
    /// measured in the kernel: one line per packet, at its free hook, with
    /// `latency: …`. Combine with --min-latency to see only slow packets.
    #[arg(long)]
    pub latency: bool,

    /// Like --latency, but print a histogram of the lives (log2 µs,
    /// counted in the kernel) every second instead of packets.
    #[arg(long)]
    pub latency_summary: bool,

    /// With --latency/--latency-summary: a life ends at the free itself
    /// (default: at the last hook before it).
    #[arg(long)]
    pub latency_free: bool,

    /// Count the events of each hook (after the filters) in the kernel and
    /// print a table sorted by count at exit; no per-packet output.
    #[arg(long)]
    pub func_stats: bool,

    /// With --func-stats: also print the table every second.
    #[arg(short = 'v', long)]
    pub verbose: bool,

    /// Low-overhead anomaly monitor for production: only the hooks marked
    /// `monitor` in the catalogue (drops with their reason, resets,
    /// retransmits, …), one line per event, no packet tracking (bounded
    /// memory), at most 100 events/s unless --rate-limit says otherwise.
    #[arg(long, help_heading = "Modes")]
    pub monitor: bool,

    /// Only print packets that lived at least this long (microseconds).
    #[arg(long, value_name = "US", allow_negative_numbers = true)]
    pub min_latency: Option<String>,
}

/// How much is printed, in what form, and where else it goes.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Output")]
pub struct OutputArgs {
    /// Exit after this many events (--drop, --basic) or packets.
    #[arg(short = 'c', long, value_name = "N", allow_negative_numbers = true)]
    pub count: Option<String>,

    /// At most N events per second leave the kernel (all modes with
    /// events); the others are counted and the count is reported.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub rate_limit: Option<String>,

    /// Print local date-time instead of seconds since boot.
    #[arg(long)]
    pub date: bool,

    /// Serve Prometheus metrics (drops by reason and location, events per hook, resets,
    /// retransmits, lost events) at http://ADDR/metrics while tracing, and /healthz, /readyz
    /// (200 once tracing) for Kubernetes probes. ADDR: PORT, :PORT (both 127.0.0.1) or HOST:PORT.
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<String>,

    /// One JSON object per line (NDJSON) instead of text: every record has
    /// "v" (schema version) and "type" (begin, drop, packet, event, end,
    /// lost); addresses are strings, times in ns. See README.
    #[arg(long)]
    pub json: bool,

    /// Print what the kernel supports and how each program is attached (stderr).
    #[arg(long, action = ArgAction::SetTrue)]
    pub debug: bool,

    /// Also write the packets nettrace reports to FILE as pcapng, for Wireshark or `tshark -r FILE`
    /// (lifecycle, --diag, --monitor, --latency, --drop). One packet per event, from its network
    /// header (LINKTYPE_RAW; IPv4 and IPv6 only), with the event in its comments (hook, event,
    /// reason, location, netns, interface, pid/comm, skb, --diag's notes); one interface per
    /// (netns, ifindex), named ifname@netns. `-` writes the file to stdout: the text (or --json)
    /// output then goes to stderr.
    #[arg(short = 'w', long = "pcap", value_name = "FILE")]
    pub pcap: Option<std::path::PathBuf>,

    /// With -w: bytes of each packet the kernel copies for the file, from its network header
    /// (default 256, at most 1500). Payload the kernel keeps in page fragments is not copied:
    /// such packets end at their headers.
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    pub snaplen: Option<String>,

    /// With -w: packets with an Ethernet header (on an Ethernet device such as a veth) are written
    /// from it, in LINKTYPE_ETHERNET interfaces, so Wireshark shows their MAC addresses (and ARP);
    /// the others stay LINKTYPE_RAW. The snap length then counts the 14 bytes of Ethernet header.
    #[arg(long = "pcap-l2")]
    pub pcap_l2: bool,
}

/// How nettrace deals with the kernel: attach mechanism, what cannot be
/// attached, where BTF comes from, verifier logs.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Advanced")]
pub struct KernelArgs {
    /// Force an attach mechanism (for testing): tp-btf or tracepoint for
    /// tracepoint hooks, fentry or kprobe for function hooks. auto picks the
    /// best the kernel offers: tp_btf, then classic tracepoints; fentry, then kprobes.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto)]
    pub backend: BackendChoice,

    /// Attach what can be attached and skip the rest, with one warning line
    /// per skipped hook, where nettrace would otherwise refuse to start: a
    /// hook named in -t that this kernel has but that cannot be attached on
    /// any backend (no fentry or kprobe here, the verifier rejects it, no
    /// sk_buff argument, …); --hooks on a kernel whose netfilter hook lists
    /// cannot be read (--diag then runs without it); --sock --backend
    /// fentry|kprobe when no function can be hooked that way (the
    /// tracepoints run alone). Without --force, hooks this kernel does not
    /// have at all (renamed, inlined) are already skipped with a warning.
    /// Still errors: unknown hook names (typos), and nothing attachable.
    #[arg(long)]
    pub force: bool,

    /// Read the kernel's BTF from FILE instead of /sys/kernel/btf/vmlinux,
    /// for kernels built without CONFIG_DEBUG_INFO_BTF: a raw BTF blob
    /// describing the running kernel exactly (e.g. from BTFHub, or
    /// `pahole --btf_encode_detached` on its vmlinux). Struct offsets,
    /// argument positions, enum names and the eBPF loader all use it.
    #[arg(long, value_name = "FILE")]
    pub btf_path: Option<std::path::PathBuf>,

    /// When the kernel refuses to load one of nettrace's eBPF programs,
    /// print the verifier's whole log on stderr (normally only its last
    /// line is kept in the error). Capability probes that fail by design
    /// on this kernel are printed too.
    #[arg(long)]
    pub libbpf_debug: bool,
}

/// For `cargo xtask bench`, not for users: hidden from `--help`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// The floor row: attach the hooks as asked, with programs that return
    /// at once (what attaching alone costs).
    #[arg(long, hide = true)]
    pub bench_floor: bool,

    /// Also write every ring-buffer record received to FILE (each as a
    /// little-endian u32 length and the bytes), for --replay-records.
    #[arg(long, hide = true, value_name = "FILE")]
    pub capture_records: Option<std::path::PathBuf>,

    /// Start as asked, then feed the sink the records of FILE (from
    /// --capture-records, same flags, same kernel) instead of the ring
    /// buffer, and report the CPU time per record (`--debug`): userspace
    /// alone, with no kernel and no traffic generator in the way.
    #[arg(long, hide = true, value_name = "FILE", conflicts_with = "capture_records")]
    pub replay_records: Option<std::path::PathBuf>,
}

/// Commands besides tracing (which needs none).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// Print a shell completion script on stdout.
    ///
    /// For example `nettrace completions bash > /etc/bash_completion.d/nettrace`,
    /// `nettrace completions zsh > "${fpath[1]}/_nettrace"`,
    /// `nettrace completions fish > ~/.config/fish/completions/nettrace.fish`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff) on stdout.
    ///
    /// Read it with `nettrace man | man -l -`, or install it with
    /// `nettrace man > /usr/local/share/man/man8/nettrace.8`.
    Man,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    Auto,
    #[value(name = "tp-btf")]
    TpBtf,
    Tracepoint,
    Fentry,
    Kprobe,
}
