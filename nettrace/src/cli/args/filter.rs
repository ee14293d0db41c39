//! The packet and socket filter flags, and the filter EXPRESSION.

/// Packet and socket filters, evaluated in the kernel.
#[derive(Debug, clap::Args)]
#[command(next_help_heading = "Filters")]
pub struct FilterArgs {
    /// Source address (IPv4 or IPv6).
    #[arg(short = 's', long, value_name = "ADDR")]
    pub saddr: Option<String>,

    /// Destination address (IPv4 or IPv6).
    #[arg(short = 'd', long, value_name = "ADDR")]
    pub daddr: Option<String>,

    /// Source or destination address.
    #[arg(long, value_name = "ADDR")]
    pub addr: Option<String>,

    /// Source port (TCP/UDP).
    #[arg(short = 'S', long, value_name = "PORT", allow_negative_numbers = true)]
    pub sport: Option<String>,

    /// Destination port (TCP/UDP).
    #[arg(short = 'D', long, value_name = "PORT", allow_negative_numbers = true)]
    pub dport: Option<String>,

    /// Source or destination port (TCP/UDP).
    #[arg(short = 'P', long, value_name = "PORT", allow_negative_numbers = true)]
    pub port: Option<String>,

    /// Protocol: tcp, udp, icmp, icmp6, ip, ip6, arp.
    #[arg(short = 'p', long, value_name = "PROTO")]
    pub proto: Option<String>,

    /// Network namespace, by inode number (see `ls -iL /proc/PID/ns/net`).
    #[arg(long, value_name = "INODE", allow_negative_numbers = true)]
    pub netns: Option<String>,

    /// Network namespace of nettrace itself.
    #[arg(long, conflicts_with = "netns")]
    pub netns_current: bool,

    /// Process id (tgid) running when the event fired.
    #[arg(long, value_name = "PID")]
    pub pid: Option<String>,

    /// Packet length (skb->len) range, e.g. 100-1500 or 64.
    #[arg(long, value_name = "RANGE")]
    pub pkt_len: Option<String>,

    /// TCP packets with all these flags: letters of S A P R F U E C.
    #[arg(long, value_name = "FLAGS")]
    pub tcp_flags: Option<String>,

    /// A filter in tcpdump's syntax (pcap-filter(7)), e.g. 'tcp dst port 443 and net 10.0.0.0/8';
    /// compiled by libpcap and run in the kernel, together with (AND) the flags above. Several
    /// words are joined, as tcpdump does. It sees the packet from the IP header on; what libpcap
    /// compiles only for Ethernet (ether host, arp, vlan) runs on the Ethernet header, which
    /// packets without one do not match. Bytes past the first 96 of the IP header (110 of the
    /// Ethernet one) are not copied: expressions that read them are refused or, for offsets known
    /// per packet, counted as undecided.
    #[arg(value_name = "EXPRESSION", num_args = 0..)]
    pub expression: Vec<String>,
}
