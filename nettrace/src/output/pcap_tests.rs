use std::sync::{Arc, Mutex};

use pcap_file::pcapng::{Block, PcapNgReader};

use super::*;

/// A writer the test can read back after the `PcapOut` took it.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn syn() -> Vec<u8> {
    let mut p = vec![
        0x45, 0, 0, 60, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];
    p.extend_from_slice(&[
        0xb8, 0xb2, 0x27, 0x0f, 0, 0, 0, 7, 0, 0, 0, 0, 0xa0, 0x02, 0xff, 0xff, 0, 0, 0, 0,
    ]);
    p.extend_from_slice(&[0; 20]);
    p
}

fn frame<'a>(hdr: &'a [u8], netns: u32, ifindex: u32, ifname: &'a str) -> Frame<'a> {
    Frame {
        ts_ns: 5_000_000_000,
        skb: 0xffff_8880_0000_1000,
        netns,
        ifindex,
        ifname,
        l3_proto: ethertype::IPV4,
        hdr,
        comments: Comments::default()
            .add("hook", "kfree_skb")
            .add("reason", "NO_SOCKET")
            .0,
    }
}

fn blocks(bytes: &[u8]) -> Vec<Block<'static>> {
    let mut r = PcapNgReader::new(bytes).expect("section header");
    let mut out = Vec::new();
    while let Some(b) = r.next_block() {
        out.push(b.expect("whole block").into_owned());
    }
    out
}

#[test]
fn one_interface_per_netns_and_ifindex_and_comments_per_packet() {
    let sink = Shared::default();
    let mut p = PcapOut::to(Box::new(sink.clone()), "test".into(), 256).unwrap();
    let pkt = syn();
    p.write(frame(&pkt, 1, 2, "veth0")).unwrap();
    p.write(frame(&pkt, 1, 2, "veth0")).unwrap();
    p.write(frame(&pkt, 3, 2, "")).unwrap();
    p.finish().unwrap();
    let b = blocks(&sink.0.lock().unwrap());
    let names: Vec<String> = b
        .iter()
        .filter_map(|b| match b {
            Block::InterfaceDescription(i) => {
                assert_eq!(i.linktype, DataLink::RAW);
                i.options.iter().find_map(|o| match o {
                    InterfaceDescriptionOption::IfName(n) => Some(n.to_string()),
                    _ => None,
                })
            }
            _ => None,
        })
        .collect();
    assert_eq!(names, ["veth0@1", "-@3"]);
    let epbs: Vec<_> = b
        .iter()
        .filter_map(|b| match b {
            Block::EnhancedPacket(e) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(epbs.iter().map(|e| e.interface_id).collect::<Vec<_>>(), [0, 0, 1]);
    let e = epbs[0];
    assert_eq!(&*e.data, &pkt[..]);
    assert_eq!(e.original_len, 60);
    let comments: Vec<String> = e
        .options
        .iter()
        .filter_map(|o| match o {
            EnhancedPacketOption::Comment(c) => Some(c.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(comments, ["hook: kfree_skb", "reason: NO_SOCKET"]);
    // Wall-clock time: after 2020, whatever the boot time.
    assert!(e.timestamp.as_secs() > 1_577_836_800, "{:?}", e.timestamp);
}

#[test]
fn kernel_bytes_win_over_the_header_copy_and_snaplen_cuts_the_copy() {
    let sink = Shared::default();
    let mut p = PcapOut::to(Box::new(sink.clone()), "test".into(), 32).unwrap();
    let pkt = syn();
    let long: Vec<u8> = pkt.iter().copied().chain([0xab; 100]).collect();
    p.remember(&Snap {
        skb: 0xffff_8880_0000_1000,
        ts_ns: 5_000_000_000,
        orig_len: 1400,
        ethernet: false,
        data: &long,
    });
    p.write(frame(&pkt, 1, 2, "veth0")).unwrap();
    // No bytes from the kernel this time: the header copy, cut at 32.
    p.write(frame(&pkt, 1, 2, "veth0")).unwrap();
    // ARP has no place in LINKTYPE_RAW.
    let mut arp = frame(&[0, 1, 8, 0], 1, 2, "veth0");
    arp.l3_proto = ethertype::ARP;
    p.write(arp).unwrap();
    p.flush().unwrap();
    let epbs: Vec<_> = blocks(&sink.0.lock().unwrap())
        .into_iter()
        .filter_map(|b| match b {
            Block::EnhancedPacket(e) => Some(e),
            _ => None,
        })
        .collect();
    assert_eq!(epbs.len(), 2);
    assert_eq!((epbs[0].data.len(), epbs[0].original_len), (long.len(), 1400));
    assert_eq!((epbs[1].data.len(), epbs[1].original_len), (32, 60));
    assert_eq!(p.skipped, 1);
}

#[test]
fn only_whole_blocks_reach_the_file() {
    let sink = Shared::default();
    let mut p = PcapOut::to(Box::new(sink.clone()), "test".into(), 256).unwrap();
    p.flush().unwrap();
    let header_only = sink.0.lock().unwrap().len();
    assert!(blocks(&sink.0.lock().unwrap()).is_empty());
    let pkt = syn();
    p.write(frame(&pkt, 1, 2, "veth0")).unwrap();
    assert_eq!(sink.0.lock().unwrap().len(), header_only, "held until a flush");
    p.flush().unwrap();
    assert_eq!(blocks(&sink.0.lock().unwrap()).len(), 2);
}

#[test]
fn ip_length_from_the_header() {
    assert_eq!(ip_len(&syn()), Some(60));
    let v6 = [0x60, 0, 0, 0, 0, 8, 58, 64];
    assert_eq!(ip_len(&v6), Some(48));
    assert_eq!(ip_len(&[0x45, 0]), None);
    assert_eq!(ip_len(&[]), None);
}

#[test]
fn ethernet_frames_get_an_ethernet_interface_of_their_own() {
    let sink = Shared::default();
    let mut p = PcapOut::to(Box::new(sink.clone()), "test".into(), 256).unwrap();
    let pkt = syn();
    let mac = [2, 0, 0, 0, 0, 0xb, 2, 0, 0, 0, 0, 0xa, 8, 0];
    let frame_l2: Vec<u8> = mac.iter().copied().chain(pkt.iter().copied()).collect();
    p.remember(&Snap {
        skb: 0xffff_8880_0000_1000,
        ts_ns: 5_000_000_000,
        orig_len: 74,
        ethernet: true,
        data: &frame_l2,
    });
    p.write(frame(&pkt, 1, 2, "veth0")).unwrap();
    // The same device without an Ethernet header: LINKTYPE_RAW, apart.
    p.write(frame(&pkt, 1, 2, "veth0")).unwrap();
    // ARP has a place in an Ethernet interface.
    let arp_l2: Vec<u8> = mac[..12].iter().copied().chain([8, 6, 0, 1, 8, 0]).collect();
    p.remember(&Snap {
        skb: 0xffff_8880_0000_1000,
        ts_ns: 5_000_000_000,
        orig_len: 60,
        ethernet: true,
        data: &arp_l2,
    });
    let mut arp = frame(&arp_l2[14..], 1, 2, "veth0");
    arp.l3_proto = ethertype::ARP;
    p.write(arp).unwrap();
    p.flush().unwrap();
    let blocks = blocks(&sink.0.lock().unwrap());
    let links: Vec<_> = blocks
        .iter()
        .filter_map(|b| match b {
            Block::InterfaceDescription(i) => Some(i.linktype),
            _ => None,
        })
        .collect();
    assert_eq!(links, [DataLink::ETHERNET, DataLink::RAW]);
    let epbs: Vec<_> = blocks
        .iter()
        .filter_map(|b| match b {
            Block::EnhancedPacket(e) => Some((e.interface_id, e.data.len())),
            _ => None,
        })
        .collect();
    assert_eq!(epbs, [(0, 74), (1, 60), (0, 18)]);
    assert_eq!(p.skipped, 0);
}
