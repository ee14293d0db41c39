//! Link-layer expressions against libpcap's matcher for Ethernet
//! (`DLT_EN10MB`): Ethernet frames (the network-layer corpus behind an
//! Ethernet header, ARP, a VLAN tag, broadcast and multicast), run as the
//! programs run them, on a copy of `L2_COPY_LEN` bytes from the Ethernet
//! header.

use nettrace_common::{
    PKT_HDR_LEN,
    expr::{L2_COPY_LEN, verdict},
};

use super::{
    Link, TranslateError,
    compile::{DLT_EN10MB, compile_program, instructions},
    expression,
    tests::{A, B, EXPRESSIONS, checksum_free_ipv4, corpus, run_copied, tcp, udp},
    translate::translate,
};

const MAC_A: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0a];
const MAC_B: [u8; 6] = [0x02, 0, 0, 0, 0, 0x0b];
const BROADCAST: [u8; 6] = [0xff; 6];
const MULTICAST: [u8; 6] = [0x33, 0x33, 0, 0, 0, 1];

fn ethernet(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An ARP request: who has `target`, tell `sender` (at `mac`).
fn arp_request(mac: [u8; 6], sender: [u8; 4], target: [u8; 4]) -> Vec<u8> {
    let mut a = vec![0, 1, 8, 0, 6, 4, 0, 1];
    a.extend_from_slice(&mac);
    a.extend_from_slice(&sender);
    a.extend_from_slice(&[0; 6]);
    a.extend_from_slice(&target);
    ethernet(BROADCAST, mac, 0x0806, &a)
}

/// The network-layer corpus from A's MAC to B's (by IP version), and
/// frames only the link layer tells apart.
fn frames() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = corpus()
        .into_iter()
        .enumerate()
        .map(|(i, (name, p))| {
            let ethertype = if p.first().map(|b| b >> 4) == Some(6) {
                0x86dd
            } else {
                0x0800
            };
            // Every other packet the other way, so MACs differ too.
            let (dst, src) = if i % 2 == 0 {
                (MAC_B, MAC_A)
            } else {
                (MAC_A, MAC_B)
            };
            (format!("eth {name}"), ethernet(dst, src, ethertype, &p))
        })
        .collect();
    let syn = checksum_free_ipv4(6, A, B, &[], &tcp(40000, 443, 0x02, 0));
    let mut vlan = MAC_B.to_vec();
    vlan.extend_from_slice(&MAC_A);
    vlan.extend_from_slice(&[0x81, 0x00, 0x00, 0x07, 0x08, 0x00]);
    vlan.extend_from_slice(&syn);
    out.extend([
        ("arp request".into(), arp_request(MAC_A, A, B)),
        ("arp from b".into(), arp_request(MAC_B, B, A)),
        ("vlan 7 tcp 443".into(), vlan),
        (
            "broadcast udp".into(),
            ethernet(
                BROADCAST,
                MAC_B,
                0x0800,
                &checksum_free_ipv4(17, B, [10, 0, 0, 255], &[], &udp(68, 67, b"dhcp")),
            ),
        ),
        (
            "multicast".into(),
            ethernet(MULTICAST, MAC_A, 0x86dd, &[0x60; 48]),
        ),
        ("runt".into(), MAC_B[..5].to_vec()),
        ("header only".into(), ethernet(MAC_B, MAC_A, 0x0800, &[])),
    ]);
    out
}

/// Expressions libpcap compiles only for Ethernet, alone and mixed with
/// network-layer ones.
const LINK_LAYER: &[&str] = &[
    "ether host 02:00:00:00:00:0b",
    "ether src 02:00:00:00:00:0a",
    "ether dst 02:00:00:00:00:0a and tcp",
    "ether broadcast",
    "ether multicast",
    "arp",
    "not arp and ether src 02:00:00:00:00:0a",
    "arp and ether src 02:00:00:00:00:0b",
    "ether proto 0x0806",
    "vlan",
    "vlan 7 and tcp port 443",
    "ether host 02:00:00:00:00:0b and tcp dst port 443",
    "ether multicast and ip6",
];

/// The translation's verdict on `frame` against libpcap's, for a program
/// compiled for Ethernet.
fn agrees(text: &str, frame: &[u8], name: &str) -> bool {
    let reference = compile_program(text, DLT_EN10MB).unwrap();
    let t = translate(&instructions(&reference), Link::Ethernet).unwrap_or_else(|e| panic!("{text}: {e}"));
    let want = reference.filter(frame);
    let got = run_copied(&t.insns, frame, L2_COPY_LEN) as u32;
    assert_ne!(got, verdict::BEYOND_COPY, "{text} / {name}: undecided");
    assert_eq!(
        got == verdict::MATCH,
        want,
        "{text} / {name}: libpcap says {want}"
    );
    want
}

#[test]
fn link_layer_expressions_agree_with_libpcap_on_ethernet_frames() {
    for text in LINK_LAYER {
        let e = expression(text).unwrap_or_else(|err| panic!("{text}: {err}"));
        assert_eq!(e.link, Link::Ethernet, "{text}");
        let verdicts: Vec<bool> = frames().iter().map(|(n, f)| agrees(text, f, n)).collect();
        assert!(
            verdicts.contains(&true) && verdicts.contains(&false),
            "{text}: {verdicts:?}"
        );
        // What `expression` made is what was checked.
        let again = translate(
            &instructions(&compile_program(text, DLT_EN10MB).unwrap()),
            Link::Ethernet,
        )
        .unwrap();
        assert_eq!(e.slot, again.insns);
    }
}

#[test]
fn network_layer_expressions_behind_an_ethernet_header_agree_too() {
    // The network-layer table, compiled for Ethernet: offsets move by 14,
    // indexed loads reach into the longer copy.
    for text in EXPRESSIONS {
        for (name, frame) in frames() {
            agrees(text, &frame, &name);
        }
    }
}

#[test]
fn network_layer_first_and_refusals_in_the_raw_words() {
    assert_eq!(expression("tcp port 443").unwrap().link, Link::Network);
    assert_eq!(expression("arp").unwrap().link, Link::Ethernet);
    // Taken for raw IP: a network-layer expression, libpcap's meaning.
    assert_eq!(expression("ether proto \\ip6").unwrap().link, Link::Network);
    // Refused both ways: libpcap's words for Ethernet, the same as for raw
    // IP where the link layer is not the problem.
    let e = |t: &str| expression(t).unwrap_err().to_string();
    assert_eq!(e("tcp port"), "can't parse filter expression: syntax error");
    assert_eq!(e("vlan 5000"), "VLAN tag 5000 greater than maximum 4095");
    // Constant offsets past the Ethernet copy are refused with its size.
    assert_eq!(
        expression("arp and ether[200] = 1").unwrap_err().to_string(),
        TranslateError::BeyondCopy {
            end: 201,
            copied: L2_COPY_LEN,
            from: "Ethernet"
        }
        .to_string()
    );
    assert_eq!(L2_COPY_LEN, PKT_HDR_LEN + 14);
}
