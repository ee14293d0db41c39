//! The contract between the eBPF objects' expression slot and the userspace
//! translator that fills it (`nettrace-ebpf/src/expr.rs`, `nettrace::expr`).

/// Instructions in the slot, placeholder included: the longest translated
/// expression that fits. Each unused one costs a little verification time
/// at load and nothing per run.
pub const SLOT_INSNS: usize = 1024;

/// Bytes a link-layer expression's buffer holds (`ether host …`, `arp`,
/// `vlan`): the Ethernet header, then as much of the packet as the network
/// header copy has.
pub const L2_COPY_LEN: usize = crate::ETH_HLEN + crate::PKT_HDR_LEN;

/// 32-bit words of scratch memory the slot has (classic BPF's `M[]`).
pub const SCRATCH_WORDS: usize = 16;

/// What the slot returns.
pub mod verdict {
    /// The packet does not match.
    pub const NO_MATCH: u32 = 0;
    /// The packet matches.
    pub const MATCH: u32 = 1;
    /// The expression reads bytes past the copied header of a packet that
    /// has them: unknown, counted, and treated as no match.
    pub const BEYOND_COPY: u32 = 2;
}
