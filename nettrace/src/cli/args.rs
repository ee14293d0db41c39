//! What was typed: the clap derive layer.
//!
//! Flag names and short options follow the C nettrace (`nettrace -h`) so its
//! users and scripts keep working. Nothing here is validated beyond syntax;
//! `cli::config` turns this into a `Config` the rest of the program trusts.

use clap::{ArgAction, Parser, ValueEnum};

/// Trace network packets through the Linux kernel with eBPF.
///
/// nettrace attaches eBPF programs to kernel tracepoints and functions, filters
/// packets inside the kernel and prints one line per event, ready for grep.
#[derive(Debug, Parser)]
#[command(
    name = "nettrace",
    version,
    after_help = "\
EXAMPLES:
    nettrace --drop                         every dropped packet, with the kernel's reason
    nettrace --drop -p tcp -D 443           dropped TCP packets to port 443
    nettrace --drop -s 10.0.0.1 --drop-stack   drops from 10.0.0.1 with kernel stacks
    nettrace --drop -c 10 --date            the next 10 drops, local date-time stamps
    nettrace --debug --drop                 also show what this kernel supports

Needs root (CAP_BPF + CAP_PERFMON, or CAP_SYS_ADMIN) and kernel BTF
(/sys/kernel/btf/vmlinux). Exit status: 0 on success (also on Ctrl-C and when
the reader of the output goes away), 1 on a runtime failure, 2 on bad usage."
)]
pub struct Args {
    // ---- modes ----
    /// Monitor dropped packets (skb:kfree_skb) with the drop reason and location.
    #[arg(long, help_heading = "Modes")]
    pub drop: bool,

    /// With --drop: print the kernel call stack of each drop.
    #[arg(long, help_heading = "Modes")]
    pub drop_stack: bool,

    // ---- filters (evaluated in the kernel) ----
    /// Source address (IPv4 or IPv6).
    #[arg(short = 's', long, value_name = "ADDR", help_heading = "Filters")]
    pub saddr: Option<String>,

    /// Destination address (IPv4 or IPv6).
    #[arg(short = 'd', long, value_name = "ADDR", help_heading = "Filters")]
    pub daddr: Option<String>,

    /// Source or destination address.
    #[arg(long, value_name = "ADDR", help_heading = "Filters")]
    pub addr: Option<String>,

    /// Source port (TCP/UDP).
    #[arg(short = 'S', long, value_name = "PORT", help_heading = "Filters")]
    pub sport: Option<String>,

    /// Destination port (TCP/UDP).
    #[arg(short = 'D', long, value_name = "PORT", help_heading = "Filters")]
    pub dport: Option<String>,

    /// Source or destination port (TCP/UDP).
    #[arg(short = 'P', long, value_name = "PORT", help_heading = "Filters")]
    pub port: Option<String>,

    /// Protocol: tcp, udp, icmp, icmp6, ip, ip6, arp.
    #[arg(short = 'p', long, value_name = "PROTO", help_heading = "Filters")]
    pub proto: Option<String>,

    /// Network namespace, by inode number (see `ls -iL /proc/PID/ns/net`).
    #[arg(long, value_name = "INODE", help_heading = "Filters")]
    pub netns: Option<String>,

    /// Network namespace of nettrace itself.
    #[arg(long, help_heading = "Filters", conflicts_with = "netns")]
    pub netns_current: bool,

    /// Process id (tgid) running when the event fired.
    #[arg(long, value_name = "PID", help_heading = "Filters")]
    pub pid: Option<String>,

    // ---- output ----
    /// Exit after this many events.
    #[arg(short = 'c', long, value_name = "N", help_heading = "Output")]
    pub count: Option<String>,

    /// Print local date-time instead of seconds since boot.
    #[arg(long, help_heading = "Output")]
    pub date: bool,

    /// Print what the kernel supports and how each program is attached (stderr).
    #[arg(long, help_heading = "Output", action = ArgAction::SetTrue)]
    pub debug: bool,

    /// How to attach tracepoints: auto prefers tp_btf and falls back to the
    /// classic tracepoint.
    #[arg(long, value_enum, default_value_t = BackendChoice::Auto, help_heading = "Advanced")]
    pub backend: BackendChoice,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum BackendChoice {
    Auto,
    #[value(name = "tp-btf")]
    TpBtf,
    Tracepoint,
}
