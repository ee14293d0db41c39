//! Packet filter evaluated inside the kernel.
//!
//! Userspace validates the command line (`-s`, `-d`, `-p`, …) into this plain
//! struct and hands it to the programs as a read-only global: the verifier
//! then sees each unused criterion as a constant and drops its code, so a
//! filter costs only what it checks.

/// Address family tag of an address criterion.
pub mod family {
    /// Criterion not set.
    pub const NONE: u8 = 0;
    pub const V4: u8 = 4;
    pub const V6: u8 = 6;
}

/// An address criterion. IPv4 addresses use the first four bytes of `addr`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddrMatch {
    pub addr: [u8; 16],
    /// One of [`family`].
    pub family: u8,
    /// Explicit padding to keep `Filter` free of implicit holes.
    pub _pad: [u8; 3],
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// `-s`: source address.
    pub saddr: AddrMatch,
    /// `-d`: destination address.
    pub daddr: AddrMatch,
    /// `--addr`: either source or destination.
    pub addr: AddrMatch,
    /// `-S`, `-D`, `-P`: ports, 0 = unset (port 0 is rejected by the CLI).
    pub sport: u16,
    pub dport: u16,
    pub port: u16,
    /// `-p` at the link layer: required ethertype, 0 = any.
    pub l3_proto: u16,
    /// `-p` at the transport layer: required IP protocol, 0 = any.
    pub l4_proto: u8,
    /// `--container` / `--pod`: 1 = only namespaces in the programs'
    /// `NETNS_ALLOWED` map (filled and kept current by userspace, as
    /// matching containers come and go); `netns` is then 0.
    pub netns_set: u8,
    pub _pad: [u8; 2],
    /// `--netns` / `--netns-current`: namespace inode, 0 = any.
    pub netns: u32,
    /// `--pid`: tgid of the current task, 0 = any.
    pub pid: u32,
    /// `--pkt-len MIN-MAX`: `skb->len` bounds, inclusive; max 0 = any.
    pub len_min: u32,
    pub len_max: u32,
    /// `--tcp-flags`: TCP packets must have all these flag bits, 0 = any.
    pub tcp_flags: u8,
    /// The filter EXPRESSION is a link-layer one (`ether host …`, `arp`):
    /// it reads from the Ethernet header, which the programs copy apart
    /// (`expr::L2_COPY_LEN` bytes), not from the network header copy.
    pub expr_l2: u8,
    /// The filter EXPRESSION: how many bytes of the network header its
    /// translation reads (it is in the objects' expression slot); 0 = none.
    pub expr_bytes: u16,
}

impl Filter {
    /// How many bytes from the network header the criteria look at, so the
    /// programs copy no more than that before deciding: ports and TCP flags
    /// sit after an IP header of variable length (all of the copied header);
    /// addresses end by byte 40 (IPv6; ARP's by 28); the protocol is byte 9
    /// (IPv4) or 6 (IPv6); an ethertype criterion needs the version nibble
    /// of packets whose skb does not carry one yet. Zero: no packet byte.
    /// An expression needs what its translation reads, at least (a
    /// link-layer one reads its own copy).
    pub const fn header_bytes(&self) -> usize {
        let flags = self.flag_header_bytes();
        let expr = if self.expr_l2 != 0 {
            0
        } else {
            self.expr_bytes as usize
        };
        if expr > flags { expr } else { flags }
    }

    const fn flag_header_bytes(&self) -> usize {
        if self.sport != 0 || self.dport != 0 || self.port != 0 || self.tcp_flags != 0 {
            crate::PKT_HDR_LEN
        } else if self.saddr.family != family::NONE
            || self.daddr.family != family::NONE
            || self.addr.family != family::NONE
        {
            40
        } else if self.l4_proto != 0 {
            10
        } else if self.l3_proto != 0 {
            1
        } else {
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_bytes_cover_what_each_criterion_reads() {
        let mut f = Filter::default();
        assert_eq!(f.header_bytes(), 0);
        f.l3_proto = 0x0800;
        assert_eq!(f.header_bytes(), 1);
        f.l4_proto = 17;
        assert_eq!(f.header_bytes(), 10);
        f.daddr.family = family::V6;
        assert_eq!(f.header_bytes(), 40);
        f.dport = 53;
        assert_eq!(f.header_bytes(), crate::PKT_HDR_LEN);
        let only_flags = Filter {
            tcp_flags: 2,
            ..Filter::default()
        };
        assert_eq!(only_flags.header_bytes(), crate::PKT_HDR_LEN);
        let expr = Filter {
            expr_bytes: 20,
            ..Filter::default()
        };
        assert_eq!(expr.header_bytes(), 20);
        let link_layer = Filter { expr_l2: 1, ..expr };
        assert_eq!(link_layer.header_bytes(), 0);
    }
}
