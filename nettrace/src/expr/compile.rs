//! An expression to classic BPF, by libpcap (`pcap_compile` on a dead
//! handle): the grammar, the optimiser and the error messages are tcpdump's.

use pcap::{Capture, Linktype};

use super::{ExprError, Link};

/// `DLT_RAW` on Linux: packets start at the IP header, which is where the
/// programs' copy of a packet starts (`skb->head + skb->network_header`).
/// (`LINKTYPE_RAW`, 101, is its number in files, not a DLT libpcap
/// compiles for.)
pub const DLT_RAW: i32 = 12;

/// `DLT_EN10MB`: packets start at an Ethernet header. For what libpcap
/// compiles only there (`ether host …`, `arp`, `vlan`).
pub const DLT_EN10MB: i32 = 1;

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cbpf {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// `text` compiled by libpcap, optimised, for raw IP packets; or, only if
/// libpcap refuses that and takes it for Ethernet, for Ethernet frames
/// (`Link::Ethernet`). An expression both take (`tcp port 443`) is a
/// network-layer one: every packet with a network header can match it.
/// (libpcap 1.10 refuses `arp`, `vlan`, `ether host …` and `ether
/// broadcast` for raw IP; `ether proto \ip6` it takes, as `ip6`.)
/// Refused by both: libpcap's words for Ethernet, which are the raw ones
/// for anything not about the link layer (a syntax error, an unknown host)
/// and the ones that name the problem for what is (`vlan 5000`: "VLAN tag
/// 5000 greater than maximum 4095", not "no VLAN support for Raw IP").
pub fn compile(text: &str) -> Result<(Link, Vec<Cbpf>), ExprError> {
    let (link, program) = match compile_program(text, DLT_RAW) {
        Ok(p) => (Link::Network, p),
        Err(_) => (Link::Ethernet, compile_program(text, DLT_EN10MB)?),
    };
    Ok((link, instructions(&program)))
}

pub fn instructions(program: &pcap::BpfProgram) -> Vec<Cbpf> {
    program
        .get_instructions()
        .iter()
        // The crate keeps the fields private and shows them as
        // "code jt jf k", libpcap's own order.
        .map(|i| parse(&i.to_string()))
        .collect()
}

/// libpcap's compiled program for link type `dlt`, for its offline
/// matcher too (tests).
pub fn compile_program(text: &str, dlt: i32) -> Result<pcap::BpfProgram, ExprError> {
    let dead = Capture::dead(Linktype(dlt)).map_err(|e| ExprError::Pcap(message(e)))?;
    dead.compile(text, true).map_err(|e| ExprError::Pcap(message(e)))
}

/// libpcap's message without the crate's wrapping.
fn message(e: pcap::Error) -> String {
    match e {
        pcap::Error::PcapError(m) => m,
        other => other.to_string(),
    }
}

fn parse(s: &str) -> Cbpf {
    let mut f = s.split(' ').map(|n| n.parse::<u64>().unwrap_or(0));
    let mut next = || f.next().unwrap_or(0);
    Cbpf {
        code: next() as u16,
        jt: next() as u8,
        jf: next() as u8,
        k: next() as u32,
    }
}
