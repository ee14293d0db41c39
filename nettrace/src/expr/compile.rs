//! An expression to classic BPF, by libpcap (`pcap_compile` on a dead
//! handle): the grammar, the optimiser and the error messages are tcpdump's.

use pcap::{Capture, Linktype};

use super::ExprError;

/// `DLT_RAW` on Linux: packets start at the IP header, which is where the
/// programs' copy of a packet starts (`skb->head + skb->network_header`).
/// (`LINKTYPE_RAW`, 101, is its number in files, not a DLT libpcap
/// compiles for.)
pub const DLT_RAW: i32 = 12;

/// One classic BPF instruction (`struct sock_filter`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cbpf {
    pub code: u16,
    pub jt: u8,
    pub jf: u8,
    pub k: u32,
}

/// `text` compiled by libpcap, optimised, for raw IP packets.
pub fn compile(text: &str) -> Result<Vec<Cbpf>, ExprError> {
    let program = compile_program(text)?;
    Ok(program
        .get_instructions()
        .iter()
        // The crate keeps the fields private and shows them as
        // "code jt jf k", libpcap's own order.
        .map(|i| parse(&i.to_string()))
        .collect())
}

/// libpcap's compiled program, for its offline matcher too (tests).
pub fn compile_program(text: &str) -> Result<pcap::BpfProgram, ExprError> {
    let dead = Capture::dead(Linktype(DLT_RAW)).map_err(|e| ExprError::Pcap(message(e)))?;
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
