//! Filter EXPRESSIONs (`nettrace --drop 'tcp dst port 443'`): tcpdump's
//! grammar, run in the kernel.
//!
//! libpcap compiles the expression (`compile`) to classic BPF for a raw IP
//! packet, as tcpdump would for a `LINKTYPE_RAW` capture; `translate`
//! turns that into eBPF that reads the header bytes the programs already
//! copy; `slot` writes it into the objects before they are loaded, where
//! each program calls it before it emits or tracks anything. A packet the
//! expression leaves out costs the expression and nothing else.
//!
//! What libpcap compiles only for Ethernet (`ether host …`, `arp`, `vlan`,
//! `ether proto …`) is a link-layer expression: translated for a copy from
//! the packet's Ethernet header, which the programs make for it alone;
//! packets without an Ethernet header (`Link`) do not match it.
//!
//! The grammar and its meaning are libpcap's own, so they can be tested
//! against libpcap's own matcher (`pcap_offline_filter`, in `tests`): for
//! every packet and expression of a corpus, the translation run in an eBPF
//! interpreter gives libpcap's verdict.

mod compile;
pub mod slot;
mod translate;

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_ethernet;

pub use compile::compile;
pub use translate::{Insn, TranslateError, translate};

/// Where an expression's packet bytes start.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Link {
    /// At the network header (libpcap's DLT_RAW): the programs' header copy.
    Network,
    /// At an Ethernet header (DLT_EN10MB): only packets that have one.
    Ethernet,
}

impl Link {
    /// Bytes the programs copy for the expression to read.
    pub fn copied(self) -> usize {
        match self {
            Self::Network => nettrace_common::PKT_HDR_LEN,
            Self::Ethernet => nettrace_common::expr::L2_COPY_LEN,
        }
    }
}

/// An expression ready for the kernel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expression {
    /// As typed (the positional arguments joined by spaces, as tcpdump does).
    pub text: String,
    /// The eBPF instructions for the objects' slot.
    pub slot: Vec<Insn>,
    /// Bytes of the copy the instructions read.
    pub bytes: u16,
    /// What the copy starts with.
    pub link: Link,
}

/// A bad expression, in libpcap's words or ours; shown after `filter: `.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ExprError {
    /// libpcap refused it (syntax, unknown host, unsupported keyword).
    #[error("{0}")]
    Pcap(String),
    #[error(transparent)]
    Translate(#[from] TranslateError),
}

/// Compiles and translates `text`.
pub fn expression(text: &str) -> Result<Expression, ExprError> {
    let (link, cbpf) = compile(text)?;
    let t = translate(&cbpf, link)?;
    Ok(Expression {
        text: text.to_owned(),
        slot: t.insns,
        bytes: t.bytes,
        link,
    })
}
