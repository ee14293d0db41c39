//! `--conn`: a snapshot of the host's TCP connections, in every network
//! namespace, with the kernel's own view of each (`tcp_info`: rtt,
//! retransmissions, losses, congestion window, bytes), and the process that
//! holds it. Nothing is attached: this is `ss -tinp` run inside every
//! namespace at once, filtered with the same flags as the tracing modes.
//!
//! The pipeline: find the namespaces ([`netns`]) → dump each one's TCP
//! sockets over `sock_diag` ([`sock_diag`], states filtered in the kernel) →
//! apply the address/port/netns filter → find the owning processes
//! ([`owner`], only for the sockets kept) → apply `--pid` → sort.

mod mode;
mod netns;
mod owner;
mod print;
mod sock_diag;

pub use self::mode::Connections;
pub use self::print::ConnRecord;

use std::{
    collections::{HashMap, HashSet},
    net::{IpAddr, SocketAddr},
};

use netlink_packet_sock_diag::{AF_INET, AF_INET6};
use nettrace_common::{
    Filter, ethertype,
    filter::{AddrMatch, family},
    ipproto,
};
pub use sock_diag::TcpInfoFields;

/// Kernel TCP state names, indexed by `TCP_*` value
/// (`include/net/tcp_states.h`).
const STATE_NAMES: [&str; 14] = [
    "UNKNOWN",
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT1",
    "FIN_WAIT2",
    "TIME_WAIT",
    "CLOSE",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "CLOSING",
    "NEW_SYN_RECV",
    "BOUND_INACTIVE",
];

const fn bit(state: u32) -> u32 {
    1 << state
}

/// Every state a connection can be in: `TCP_ESTABLISHED` (1) to
/// `TCP_NEW_SYN_RECV` (12). `TCP_BOUND_INACTIVE` (13, bound sockets that
/// never listened or connected) is left out, as `ss` does.
pub const ALL_STATES: u32 = (bit(13) - 1) & !1;

/// `ss`'s `connected`: everything but listening, closed and time-wait
/// sockets and pending requests.
const CONNECTED: u32 = ALL_STATES & !(bit(10) | bit(7) | bit(6) | bit(3) | bit(12));

/// State words as `ss` spells them (`ss state established`), with `ss`'s
/// long forms of `close` and `listen` as aliases. `syn-recv` includes the
/// request sockets (`TCP_NEW_SYN_RECV`), which is how half-open
/// connections exist in the kernel since Linux 4.4.
const STATE_WORDS: [(&str, u32); 16] = [
    ("all", ALL_STATES),
    ("connected", CONNECTED),
    ("established", bit(1)),
    ("syn-sent", bit(2)),
    ("syn-recv", bit(3) | bit(12)),
    ("fin-wait-1", bit(4)),
    ("fin-wait-2", bit(5)),
    ("time-wait", bit(6)),
    ("close", bit(7)),
    ("closed", bit(7)),
    ("close-wait", bit(8)),
    ("last-ack", bit(9)),
    ("listen", bit(10)),
    ("listening", bit(10)),
    ("closing", bit(11)),
    ("bound-inactive", bit(13)),
];

/// Parses a comma-separated list of TCP states (`established,syn-sent`)
/// into the `idiag_states` mask the kernel filters with (`1 << TCP_*`).
/// The error is one line naming the bad word and the valid ones.
pub fn parse_states(list: &str) -> Result<u32, String> {
    let mut mask = 0;
    for word in list.split(',').map(str::trim) {
        let Some((_, bits)) = STATE_WORDS.iter().find(|(w, _)| w.eq_ignore_ascii_case(word)) else {
            let known: Vec<&str> = STATE_WORDS.iter().map(|(w, _)| *w).collect();
            let what = if word.is_empty() {
                format!("empty TCP state in '{list}'")
            } else {
                format!("unknown TCP state '{word}'")
            };
            return Err(format!("{what} (known: {})", known.join(", ")));
        };
        mask |= bits;
    }
    Ok(mask)
}

/// The kernel's name of a `TCP_*` state, `ESTABLISHED` etc.
pub fn state_name(state: u8) -> &'static str {
    STATE_NAMES.get(usize::from(state)).copied().unwrap_or("UNKNOWN")
}

/// One TCP socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conn {
    /// Inode of the network namespace the socket lives in.
    pub netns: u64,
    /// The socket's family, `AF_INET` or `AF_INET6`. An IPv6 socket talking
    /// IPv4 has its IPv4-mapped addresses shown (and matched) as IPv4.
    pub family: u8,
    pub local: SocketAddr,
    pub remote: SocketAddr,
    /// `TCP_*` value; see [`state_name`].
    pub state: u8,
    /// Absent for sockets without a full TCP state (TIME_WAIT, requests).
    pub info: Option<TcpInfoFields>,
    /// sockfs inode (`ss -e`'s `ino:`), 0 when no file refers to it.
    pub inode: u32,
    /// A process holding it: (pid, comm). The `--pid` one if it does,
    /// else the lowest pid. `None` when no process holds it (TIME_WAIT,
    /// orphaned, kernel sockets) or it exited before it could be found.
    pub owner: Option<(u32, String)>,
}

/// One snapshot of the host's TCP sockets.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Sorted by namespace, then local, then remote address.
    pub conns: Vec<Conn>,
    /// How many namespaces had their sockets listed.
    pub namespaces: usize,
    /// What could not be looked at, one line each (for stderr). Namespaces
    /// that vanished while the snapshot was taken are not errors.
    pub errors: Vec<String>,
}

/// Lists the TCP sockets of every network namespace that `filter` admits,
/// in the states of the `states` mask (from [`parse_states`]; 0 means
/// [`ALL_STATES`]). Fails only if namespaces cannot be looked for at all
/// (no `/proc`); each namespace's own failure is in `errors`.
///
/// Packet-only criteria of `filter` (`len_min/len_max`, `tcp_flags`) do not
/// apply to sockets and are ignored.
pub fn snapshot(filter: &Filter, states: u32) -> anyhow::Result<Snapshot> {
    let states = if states == 0 { ALL_STATES } else { states };
    let families = families(filter);
    if families.is_empty() {
        return Ok(Snapshot::default());
    }
    let found = netns::enumerate((filter.netns != 0).then_some(u64::from(filter.netns)))?;
    let mut snap = Snapshot {
        errors: found.errors,
        ..Snapshot::default()
    };
    let dumps = netns::for_each(&found.namespaces, || {
        families
            .iter()
            .map(|&f| sock_diag::dump(f, states))
            .collect::<Vec<_>>()
    });
    for (ns, dumps) in found.namespaces.iter().zip(dumps) {
        let dumps = match dumps {
            Ok(d) => d,
            Err(e) => {
                snap.errors.push(e.to_string());
                continue;
            }
        };
        let mut listed = true;
        for dump in dumps {
            match dump {
                Ok(d) => {
                    if let Some(why) = d.first_decode_error {
                        snap.errors.push(format!(
                            "netns {}: skipped {} sockets whose sock_diag answer could not be decoded: {why}",
                            ns.inode, d.undecodable
                        ));
                    }
                    let conns = d.sockets.into_iter().map(|s| Conn::from_diag(ns.inode, s));
                    snap.conns.extend(conns.filter(|c| c.matches_socket(filter)));
                }
                Err(e) => {
                    listed = false;
                    snap.errors
                        .push(format!("netns {} ({}): {e}", ns.inode, ns.path.display()));
                }
            }
        }
        snap.namespaces += usize::from(listed);
    }
    add_owners(&mut snap.conns, filter.pid);
    if filter.pid != 0 {
        snap.conns
            .retain(|c| c.owner.as_ref().is_some_and(|(pid, _)| *pid == filter.pid));
    }
    snap.conns.sort_by_key(|a| (a.netns, a.local, a.remote));
    Ok(snap)
}

/// The socket families worth dumping for `filter`: none unless TCP can
/// match; IPv6 sockets even for IPv4, since they may carry it.
fn families(f: &Filter) -> &'static [u8] {
    if f.l4_proto != 0 && f.l4_proto != ipproto::TCP {
        return &[];
    }
    match f.l3_proto {
        0 | ethertype::IPV4 => &[AF_INET, AF_INET6],
        ethertype::IPV6 => &[AF_INET6],
        _ => &[],
    }
}

/// Fills `owner` (see [`Conn::owner`]); `pid` is `--pid` (0 = none), which
/// also limits the `/proc` scan to that process.
fn add_owners(conns: &mut [Conn], pid: u32) {
    let wanted: HashSet<u32> = conns.iter().map(|c| c.inode).filter(|&i| i != 0).collect();
    let holders = owner::holders(&wanted, (pid != 0).then_some(pid));
    let mut comms: HashMap<u32, String> = HashMap::new();
    for c in conns {
        if let Some(pids) = holders.get(&c.inode)
            && let Some(&first) = pids.first()
        {
            let p = if pids.contains(&pid) { pid } else { first };
            let comm = comms.entry(p).or_insert_with(|| owner::comm(p)).clone();
            c.owner = Some((p, comm));
        }
    }
}

fn addr_matches(m: &AddrMatch, ip: IpAddr) -> bool {
    match (m.family, ip) {
        (family::NONE, _) => true,
        (family::V4, IpAddr::V4(a)) => a.octets() == m.addr[..4],
        (family::V6, IpAddr::V6(a)) => a.octets() == m.addr,
        _ => false,
    }
}

impl Conn {
    fn from_diag(netns: u64, s: sock_diag::DiagSocket) -> Self {
        Self {
            netns,
            family: s.family,
            local: s.local,
            remote: s.remote,
            state: s.state,
            info: s.info,
            inode: s.inode,
            owner: None,
        }
    }

    /// Whether `f` admits this socket, `--pid` aside (owners are looked up
    /// afterwards, for the sockets kept). Local is the source side of the
    /// filter, remote the destination: `-s`/`-S` match where the socket is,
    /// `-d`/`-D` its peer, `--addr`/`-P` either.
    pub fn matches_socket(&self, f: &Filter) -> bool {
        let (l, r) = (self.local, self.remote);
        let l3 = match f.l3_proto {
            0 => true,
            ethertype::IPV4 => l.is_ipv4(),
            ethertype::IPV6 => l.is_ipv6(),
            _ => false,
        };
        l3 && (f.l4_proto == 0 || f.l4_proto == ipproto::TCP)
            && addr_matches(&f.saddr, l.ip())
            && addr_matches(&f.daddr, r.ip())
            && (f.addr.family == family::NONE
                || addr_matches(&f.addr, l.ip())
                || addr_matches(&f.addr, r.ip()))
            && (f.sport == 0 || f.sport == l.port())
            && (f.dport == 0 || f.dport == r.port())
            && (f.port == 0 || f.port == l.port() || f.port == r.port())
            && (f.netns == 0 || u64::from(f.netns) == self.netns)
    }
}

#[cfg(test)]
mod tests;
