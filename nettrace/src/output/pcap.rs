//! `-w FILE`: the packets a mode reports, as pcapng for Wireshark and
//! tshark, written with the `pcap-file` crate.
//!
//! One Enhanced Packet Block per reported event: the packet from its
//! network header (LINKTYPE_RAW, so IPv4 and IPv6 only; other events are
//! left out and counted), the event's time as wall-clock time, and the
//! event itself in the block's comments, one `key: value` each. One
//! Interface Description Block per (netns, ifindex) seen, named
//! `ifname@netns`, written before its first packet.
//!
//! `--pcap-l2`: packets the kernel sent with their Ethernet header go to a
//! LINKTYPE_ETHERNET interface of their own (pcapng gives each interface
//! its link type, so one file holds both): one per (netns, ifindex, link
//! type). Ethernet frames of any ethertype are written (ARP too).
//!
//! The bytes come from the `PacketBytes` record the kernel sends before an
//! event when `-w` is on ([`PcapOut::remember`]); without one (the packet
//! had no network header yet, or the record was lost) the event's own
//! header copy is written, cut at the snap length.
//!
//! Blocks are encoded into memory and handed to the file whole, when a
//! batch of events is done, every 64 KiB, and at the end: a reader (or a
//! Ctrl-C) never sees half a block.

mod snaps;

use std::{
    borrow::Cow,
    collections::HashMap,
    io::{self, Write},
    time::Duration,
};

use nettrace_common::ethertype;
use pcap_file::{
    DataLink,
    pcapng::{
        PcapNgBlock as _, PcapNgWriter,
        blocks::{
            enhanced_packet::{EnhancedPacketBlock, EnhancedPacketOption},
            interface_description::{InterfaceDescriptionBlock, InterfaceDescriptionOption},
            section_header::{SectionHeaderBlock, SectionHeaderOption},
        },
    },
};

use self::snaps::Snaps;
use super::{Closed, clock};
use crate::{
    cli::{Pcap, PcapTo},
    events::record::Snap,
};

/// Encoded blocks waiting for the file beyond this are written at once.
const WRITE_AT: usize = 64 * 1024;

/// One reported event, for the file.
pub struct Frame<'a> {
    /// CLOCK_MONOTONIC, ns (the event's `ts_ns`).
    pub ts_ns: u64,
    pub skb: u64,
    pub netns: u32,
    pub ifindex: u32,
    /// Empty without a device.
    pub ifname: &'a str,
    /// The ethertype the kernel saw (host order), 0 if unknown.
    pub l3_proto: u16,
    /// The event's own copy of the header, used without a `PacketBytes`.
    pub hdr: &'a [u8],
    /// `key: value` lines (see [`Comments`]).
    pub comments: Vec<String>,
}

/// The comments of a frame, in the order they are added.
#[derive(Default)]
pub struct Comments(pub Vec<String>);

impl Comments {
    pub fn add(mut self, key: &str, value: impl std::fmt::Display) -> Self {
        self.0.push(format!("{key}: {value}"));
        self
    }

    /// Adds the value only when there is one.
    pub fn opt(self, key: &str, value: Option<impl std::fmt::Display>) -> Self {
        match value {
            Some(v) => self.add(key, v),
            None => self,
        }
    }
}

pub struct PcapOut {
    /// Encodes into its `Vec`, which holds whole blocks not yet written.
    enc: PcapNgWriter<Vec<u8>>,
    dest: Box<dyn Write>,
    /// Where the file goes, for messages.
    name: String,
    /// (netns, ifindex, link type) → interface id.
    /// (`DataLink` has no `Hash`: its number.)
    interfaces: HashMap<(u32, u32, u32), u32>,
    snaps: Snaps,
    snaplen: u32,
    /// CLOCK_REALTIME - CLOCK_MONOTONIC at start-up, ns.
    wall_offset_ns: i128,
    /// Events without an IPv4/IPv6 packet, left out.
    pub skipped: u64,
}

impl PcapOut {
    /// Creates the file (or takes stdout) and writes its section header.
    pub fn create(p: &Pcap) -> anyhow::Result<Self> {
        let (dest, name): (Box<dyn Write>, String) = match &p.to {
            // The descriptor itself: `io::stdout()` is line-buffered and
            // would cut blocks into many writes at every 0x0a byte.
            PcapTo::Stdout => {
                use std::os::fd::AsFd as _;
                let fd = io::stdout().as_fd().try_clone_to_owned()?;
                (Box::new(std::fs::File::from(fd)), "stdout".into())
            }
            PcapTo::File(path) => {
                let f = std::fs::File::create(path)
                    .map_err(|e| anyhow::anyhow!("-w {}: cannot create: {e}", path.display()))?;
                (Box::new(f), path.display().to_string())
            }
        };
        let mut out = Self::to(dest, name, p.snaplen)?;
        // An empty capture is a valid file too.
        out.flush()
            .map_err(|Closed| anyhow::anyhow!("-w {}: cannot write", out.name))?;
        Ok(out)
    }

    /// A file into `dest` (tests write into memory).
    pub fn to(dest: Box<dyn Write>, name: String, snaplen: u32) -> anyhow::Result<Self> {
        let shb = SectionHeaderBlock {
            endianness: pcap_file::Endianness::native(),
            options: vec![SectionHeaderOption::UserApplication(Cow::Owned(format!(
                "nettrace {}",
                env!("CARGO_PKG_VERSION")
            )))],
            ..Default::default()
        };
        Ok(Self {
            enc: PcapNgWriter::with_section_header(Vec::with_capacity(2 * WRITE_AT), shb)?,
            dest,
            name,
            interfaces: HashMap::new(),
            snaps: Snaps::default(),
            snaplen,
            wall_offset_ns: clock::realtime_offset_ns(),
            skipped: 0,
        })
    }

    /// Keeps the bytes the kernel sent for an event still to come.
    pub fn remember(&mut self, snap: &Snap<'_>) {
        self.snaps.insert(snap);
    }

    /// An event that will not be written: its bytes are not kept.
    pub fn forget(&mut self, skb: u64, ts_ns: u64) {
        self.snaps.take(skb, ts_ns);
    }

    /// Writes one event's packet.
    pub fn write(&mut self, f: Frame<'_>) -> Result<(), Closed> {
        let snap = self.snaps.take(f.skb, f.ts_ns);
        let cut = self.snaplen as usize;
        let (data, orig_len, ethernet): (&[u8], u32, bool) = match &snap {
            Some(k) if !k.data.is_empty() => (&k.data, k.orig_len, k.ethernet),
            _ => {
                let d = &f.hdr[..f.hdr.len().min(cut)];
                let orig = ip_len(f.hdr).unwrap_or(f.hdr.len() as u32).max(d.len() as u32);
                (d, orig, false)
            }
        };
        let ip = matches!(f.l3_proto, ethertype::IPV4 | ethertype::IPV6 | 0);
        let linktype = if ethernet {
            DataLink::ETHERNET
        } else if ip && matches!(data.first().map(|b| b >> 4), Some(4 | 6)) {
            DataLink::RAW
        } else {
            self.skipped += 1;
            return Ok(());
        };
        let interface_id = self.interface(f.netns, f.ifindex, f.ifname, linktype)?;
        let wall = (f.ts_ns as i128 + self.wall_offset_ns).max(0) as u64;
        let epb = EnhancedPacketBlock {
            interface_id,
            timestamp: Duration::from_nanos(wall),
            original_len: orig_len,
            data: Cow::Borrowed(data),
            options: f
                .comments
                .into_iter()
                .map(|c| EnhancedPacketOption::Comment(Cow::Owned(c)))
                .collect(),
        };
        self.encode(epb.into_block())
    }

    /// The id of the interface (netns, ifindex) for packets of `linktype`,
    /// described on first use.
    fn interface(
        &mut self,
        netns: u32,
        ifindex: u32,
        ifname: &str,
        linktype: DataLink,
    ) -> Result<u32, Closed> {
        let key = (netns, ifindex, u32::from(linktype));
        if let Some(&id) = self.interfaces.get(&key) {
            return Ok(id);
        }
        let id = self.interfaces.len() as u32;
        let name = if ifname.is_empty() { "-" } else { ifname };
        let idb = InterfaceDescriptionBlock {
            linktype,
            snaplen: self.snaplen,
            options: vec![
                InterfaceDescriptionOption::IfName(Cow::Owned(format!("{name}@{netns}"))),
                InterfaceDescriptionOption::IfDescription(Cow::Owned(format!(
                    "ifindex {ifindex} in network namespace {netns}"
                ))),
                // Timestamps in ns (pcap-file writes them so).
                InterfaceDescriptionOption::IfTsResol(9),
            ],
        };
        self.encode(idb.into_block())?;
        self.interfaces.insert(key, id);
        Ok(id)
    }

    fn encode(&mut self, block: pcap_file::pcapng::Block<'_>) -> Result<(), Closed> {
        if let Err(e) = self.enc.write_block(&block) {
            eprintln!("nettrace: -w {}: {e}", self.name);
            return Err(Closed);
        }
        if self.enc.get_ref().len() >= WRITE_AT {
            self.write_out()?;
        }
        Ok(())
    }

    /// Hands the encoded blocks to the file.
    fn write_out(&mut self) -> Result<(), Closed> {
        let buf = self.enc.get_mut();
        if buf.is_empty() {
            return Ok(());
        }
        let r = self.dest.write_all(buf);
        buf.clear();
        r.map_err(|e| self.failed(e))
    }

    /// Everything encoded goes to the file now.
    pub fn flush(&mut self) -> Result<(), Closed> {
        self.write_out()?;
        self.dest.flush().map_err(|e| self.failed(e))
    }

    fn failed(&self, e: io::Error) -> Closed {
        // A reader of `-w -` that went away (`| tshark -c 5`) ends tracing
        // quietly, as a closed stdout does.
        if e.kind() != io::ErrorKind::BrokenPipe {
            eprintln!("nettrace: -w {}: cannot write: {e}", self.name);
        }
        Closed
    }

    /// At the end: what was left out, on stderr.
    pub fn finish(&mut self) -> Result<(), Closed> {
        if self.skipped > 0 {
            eprintln!(
                "nettrace: -w {}: {} events without an IPv4/IPv6 packet left out",
                self.name, self.skipped
            );
        }
        self.flush()
    }
}

/// The packet's length by its IP header (total length; payload length plus
/// the fixed header for IPv6), if the header is there.
fn ip_len(hdr: &[u8]) -> Option<u32> {
    match hdr.first()? >> 4 {
        4 => Some(u16::from_be_bytes([*hdr.get(2)?, *hdr.get(3)?]).into()),
        6 => Some(u32::from(u16::from_be_bytes([*hdr.get(4)?, *hdr.get(5)?])) + 40),
        _ => None,
    }
}

#[cfg(test)]
#[path = "pcap_tests.rs"]
mod tests;
