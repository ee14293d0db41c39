//! `-w FILE --pcap-l2`: packets that have an Ethernet header are written
//! from it, in LINKTYPE_ETHERNET interfaces, next to LINKTYPE_RAW ones for
//! the packets that have none.

use pcap_file::{
    DataLink,
    pcapng::{Block, PcapNgReader, blocks::enhanced_packet::EnhancedPacketOption},
};

use super::{TempFile, fields, traced_syn, tshark};
use crate::{
    expr::mac,
    util::{self, Pair},
};

/// A SYN from a to b's closed `port` along the path's tracepoints, written
/// with `-w --pcap-l2`.
fn traced_syn_l2(net: &Pair, file: &TempFile, port: u16) {
    traced_syn(net, file, port, &["--pcap-l2"]);
}

/// Each packet's link type, bytes and comments, by the pcap-file crate.
pub(super) fn packets_with_links(file: &std::path::Path) -> Vec<(DataLink, Vec<u8>, Vec<String>)> {
    let bytes = std::fs::read(file).unwrap();
    let mut r = PcapNgReader::new(&bytes[..]).expect("a pcapng section header");
    let mut links = Vec::new();
    let mut out = Vec::new();
    while let Some(b) = r.next_block() {
        match b.expect("whole blocks only") {
            Block::InterfaceDescription(i) => links.push(i.linktype),
            Block::EnhancedPacket(e) => {
                let comments = e
                    .options
                    .iter()
                    .filter_map(|o| match o {
                        EnhancedPacketOption::Comment(c) => Some(c.to_string()),
                        _ => None,
                    })
                    .collect();
                out.push((links[e.interface_id as usize], e.data.to_vec(), comments));
            }
            _ => {}
        }
    }
    out
}

fn mac_bytes(mac: &str) -> Vec<u8> {
    mac.split(':')
        .map(|h| u8::from_str_radix(h, 16).unwrap())
        .collect()
}

#[test]
fn received_packets_carry_their_ethernet_header() {
    let net = Pair::new();
    let file = TempFile::new("l2.pcapng");
    traced_syn_l2(&net, &file, 9981);
    let p = packets_with_links(&file.path);
    let received: Vec<_> = p
        .iter()
        .filter(|(_, _, c)| c.iter().any(|c| c.starts_with("hook: netif_receive_skb ")))
        .collect();
    assert!(!received.is_empty(), "{p:?}");
    for (link, data, _) in received {
        assert_eq!(*link, DataLink::ETHERNET);
        assert_eq!(data[..6], mac_bytes(&mac(&net.b)), "destination: b");
        assert_eq!(data[6..12], mac_bytes(&mac(&net.a)), "source: a");
        assert_eq!(data[12..14], [0x08, 0x00]);
        assert_eq!(data[14] >> 4, 4);
    }
}

#[test]
fn tshark_shows_the_mac_addresses() {
    if !util::have_tool("tshark", "tshark") {
        return;
    }
    let net = Pair::new();
    let file = TempFile::new("l2t.pcapng");
    traced_syn_l2(&net, &file, 9982);
    let rows = fields(
        &file.path,
        &[
            "eth.src",
            "eth.dst",
            "ip.src",
            "ip.dst",
            "tcp.dstport",
            "frame.comment",
        ],
    );
    let (mac_a, mac_b) = (mac(&net.a), mac(&net.b));
    let received: Vec<_> = rows
        .iter()
        .filter(|r| r[5].contains("hook: netif_receive_skb"))
        .collect();
    assert!(!received.is_empty(), "{rows:?}");
    for r in received {
        assert_eq!(
            (
                r[0].as_str(),
                r[1].as_str(),
                r[2].as_str(),
                r[3].as_str(),
                r[4].as_str()
            ),
            (
                mac_a.as_str(),
                mac_b.as_str(),
                net.a4.as_str(),
                net.b4.as_str(),
                "9982"
            ),
        );
    }
    // Every packet, Ethernet or raw, has its IP addresses.
    assert!(rows.iter().all(|r| r[2] == net.a4 && r[3] == net.b4), "{rows:?}");
    assert!(!tshark(&file.path, &["-V"]).contains("Malformed"));
}
