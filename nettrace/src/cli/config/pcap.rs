//! `-w FILE` / `--pcap FILE`, `--snaplen N` and `--pcap-l2`: the pcapng copy of the
//! packets a mode reports. Only the modes that report packets take them;
//! the socket modes, `--func-stats` and `--latency-summary` report none and
//! refuse `-w` rather than write an empty file.

use nettrace_common::snap::{SNAP_L2, SNAPLEN_DEFAULT, SNAPLEN_MAX};

use super::{Mode, UsageError};
use crate::cli::args::Args;

/// Where the pcapng file goes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PcapTo {
    File(std::path::PathBuf),
    /// `-w -`: stdout (the text output moves to stderr).
    Stdout,
}

/// `-w` and its snap length.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pcap {
    pub to: PcapTo,
    /// Bytes of packet the kernel copies, 1 to `SNAPLEN_MAX`.
    pub snaplen: u32,
    /// `--pcap-l2`: packets with an Ethernet header are written from it.
    pub l2: bool,
}

impl Pcap {
    /// The snap length the programs get: with `SNAP_L2` for `--pcap-l2`.
    pub fn kernel_snaplen(&self) -> u32 {
        if self.l2 {
            self.snaplen | SNAP_L2
        } else {
            self.snaplen
        }
    }
}

/// `-w` and `--snaplen` for `mode`.
pub fn from_args(args: &Args, mode: &Mode) -> Result<Option<Pcap>, UsageError> {
    let out = &args.output;
    let Some(path) = &out.pcap else {
        if out.snaplen.is_some() {
            return Err(usage!("--snaplen needs -w/--pcap FILE"));
        }
        if out.pcap_l2 {
            return Err(usage!("--pcap-l2 needs -w/--pcap FILE"));
        }
        return Ok(None);
    };
    if let Some(m) = packetless(mode) {
        return Err(usage!(
            "-w/--pcap: {m} reports no packets: nothing to write (use it with lifecycle tracing, --diag, --monitor, --latency or --drop)"
        ));
    }
    let snaplen = match &out.snaplen {
        None => SNAPLEN_DEFAULT,
        Some(v) => match v.parse::<u32>() {
            Ok(n) if (1..=SNAPLEN_MAX as u32).contains(&n) => n,
            _ => {
                return Err(usage!(
                    "--snaplen: '{v}' is not a number of bytes from 1 to {SNAPLEN_MAX}"
                ));
            }
        },
    };
    let to = if path.as_os_str() == "-" {
        PcapTo::Stdout
    } else {
        PcapTo::File(path.clone())
    };
    Ok(Some(Pcap {
        to,
        snaplen,
        l2: out.pcap_l2,
    }))
}

/// The flag of a mode that reports no packets, `None` for the others.
fn packetless(mode: &Mode) -> Option<&'static str> {
    Some(match mode {
        Mode::Drop { .. } => return None,
        Mode::Lifecycle(l) => match (l.func_stats, l.latency) {
            (Some(_), _) => "--func-stats",
            (_, Some(lat)) if lat.summary => "--latency-summary",
            _ => return None,
        },
        Mode::TcpMonitor => "--tcp-monitor",
        Mode::Sock(_) => "--sock",
        Mode::Rt(_) => "--rt",
        Mode::Rtt { .. } => "--rtt",
        Mode::Conn { .. } => "--conn",
    })
}
