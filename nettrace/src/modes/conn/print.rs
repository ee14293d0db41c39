//! `--conn`'s records: a line per connection (`ss`-like), the snapshot's
//! header line with `--interval` (text only).

use std::io::{self, Write};

use serde::{Serialize, Serializer};

use super::{Conn, state_name};
use crate::attribution::OwnerFields;

/// One connection at snapshot time `ts_ns`.
///
/// Text: `netns:4026531840 ESTABLISHED 10.0.0.1:22 -> 10.0.0.2:51000
/// rtt:0.123ms rttvar:0.050ms retrans:0/3 lost:0 cwnd:10 acked:1234
/// received:5678 pid:1234/sshd` (one line). `retrans` is
/// outstanding/lifetime, as `ss` shows it. The `tcp_info` fields are left
/// out for sockets without one, `acked`/`received` on kernels before 4.1,
/// `pid` when no process holds the socket.
///
/// JSON: `{"v":1,"type":"conn","netns":…,"state":…,
/// "l3":"ipv4"|"ipv6","saddr":…,"sport":…,"daddr":…,"dport":…,
/// "inode":…}` with `saddr`/`sport` the local end; then, with `tcp_info`,
/// `rtt_ns`, `rttvar_ns`, `rto_ns`, `min_rtt_ns`, `unacked`, `retrans`,
/// `total_retrans`, `lost`, `cwnd`, `ssthresh`, `bytes_acked`,
/// `bytes_received`, `bytes_sent`, `bytes_retrans` (those the kernel
/// reports); then `pid` and `comm` when known, `container`
/// (`{"runtime","id","name"}`) and `pod` (`{"namespace","name"}`) when a
/// container owns the namespace, then `ts_ns`. The text ends with
/// `[ctr:NAME]` or `[pod:NAMESPACE/NAME]` then.
pub struct ConnRecord<'a> {
    pub conn: &'a Conn,
    pub ts_ns: u64,
    /// The container or pod owning the socket's namespace.
    pub container: OwnerFields,
}

/// µs as ns.
fn ns(us: u32) -> u64 {
    u64::from(us) * 1000
}

/// Microseconds as milliseconds with three decimals, exactly.
fn ms(us: u32) -> String {
    format!("{}.{:03}ms", us / 1000, us % 1000)
}

#[derive(Serialize)]
struct Json<'a> {
    netns: u64,
    state: &'static str,
    l3: &'static str,
    saddr: String,
    sport: u16,
    daddr: String,
    dport: u16,
    inode: u32,
    #[serde(flatten)]
    info: Option<Info>,
    #[serde(flatten)]
    owner: Option<Owner>,
    #[serde(flatten)]
    container: &'a OwnerFields,
    ts_ns: u64,
}

#[derive(Serialize)]
struct Info {
    rtt_ns: u64,
    rttvar_ns: u64,
    rto_ns: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    min_rtt_ns: Option<u64>,
    unacked: u32,
    retrans: u32,
    total_retrans: u32,
    lost: u32,
    cwnd: u32,
    ssthresh: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_acked: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_received: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_sent: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_retrans: Option<u64>,
}

#[derive(Serialize)]
struct Owner {
    pid: u32,
    comm: String,
}

impl Serialize for ConnRecord<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let c = self.conn;
        Json {
            netns: c.netns,
            state: state_name(c.state),
            l3: if c.local.is_ipv4() { "ipv4" } else { "ipv6" },
            saddr: c.local.ip().to_string(),
            sport: c.local.port(),
            daddr: c.remote.ip().to_string(),
            dport: c.remote.port(),
            inode: c.inode,
            info: c.info.as_ref().map(|i| Info {
                rtt_ns: ns(i.rtt_us),
                rttvar_ns: ns(i.rttvar_us),
                rto_ns: ns(i.rto_us),
                min_rtt_ns: i.min_rtt_us.map(ns),
                unacked: i.unacked,
                retrans: i.retrans,
                total_retrans: i.total_retrans,
                lost: i.lost,
                cwnd: i.snd_cwnd,
                ssthresh: i.snd_ssthresh,
                bytes_acked: i.bytes_acked,
                bytes_received: i.bytes_received,
                bytes_sent: i.bytes_sent,
                bytes_retrans: i.bytes_retrans,
            }),
            owner: c.owner.as_ref().map(|(pid, comm)| Owner {
                pid: *pid,
                comm: comm.clone(),
            }),
            container: &self.container,
            ts_ns: self.ts_ns,
        }
        .serialize(s)
    }
}

impl crate::output::Record for ConnRecord<'_> {
    fn kind(&self) -> &'static str {
        "conn"
    }

    fn text(&self, w: &mut dyn Write) -> io::Result<()> {
        let c = self.conn;
        write!(
            w,
            "netns:{} {} {} -> {}",
            c.netns,
            state_name(c.state),
            c.local,
            c.remote
        )?;
        if let Some(i) = &c.info {
            write!(
                w,
                " rtt:{} rttvar:{} retrans:{}/{} lost:{} cwnd:{}",
                ms(i.rtt_us),
                ms(i.rttvar_us),
                i.retrans,
                i.total_retrans,
                i.lost,
                i.snd_cwnd
            )?;
            if let (Some(a), Some(r)) = (i.bytes_acked, i.bytes_received) {
                write!(w, " acked:{a} received:{r}")?;
            }
        }
        if let Some((pid, comm)) = &c.owner {
            write!(w, " pid:{pid}/{comm}")?;
        }
        if let Some(tag) = self.container.tag() {
            write!(w, " {tag}")?;
        }
        writeln!(w)
    }
}

/// `[12.345678] 3 connections`: what starts each `--interval` snapshot in
/// text (JSON records carry their own `ts_ns`).
pub struct Header {
    pub time: String,
    pub count: usize,
}

impl Header {
    pub fn text(&self, w: &mut dyn Write) -> io::Result<()> {
        writeln!(w, "[{}] {} connections", self.time, self.count)
    }
}
