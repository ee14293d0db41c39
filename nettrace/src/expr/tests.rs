//! The translation against libpcap's own matcher: every expression of a
//! table, compiled by libpcap, translated, and run in an eBPF interpreter
//! (rbpf, which checks every memory access) over a corpus of packets, gives
//! `pcap_offline_filter`'s verdict on the whole packet. The interpreter
//! sees only what the kernel programs see: the first `PKT_HDR_LEN` bytes.

use nettrace_common::{
    PKT_HDR_LEN,
    expr::{SLOT_INSNS, verdict},
};

use super::{
    TranslateError,
    compile::{DLT_RAW, compile_program},
    expression,
    translate::Insn,
};

/// The slot's inputs as the programs set them (`nettrace-ebpf/src/expr.rs`),
/// the translation, and the `exit` the slot's function ends with.
pub(super) fn runnable(slot: &[Insn], hdr_len: usize, l3_len: usize) -> Vec<u8> {
    let set = |dst: u8, imm: i32| Insn {
        code: 0xb7,
        dst,
        src: 0,
        off: 0,
        imm,
    };
    let mut prog = vec![
        set(2, hdr_len as i32),
        set(3, l3_len as i32),
        // r4 = r10 - 64: the scratch words.
        Insn {
            code: 0xbf,
            dst: 4,
            src: 10,
            off: 0,
            imm: 0,
        },
        Insn {
            code: 0x07,
            dst: 4,
            src: 0,
            off: 0,
            imm: -64,
        },
    ];
    prog.extend_from_slice(slot);
    prog.push(Insn {
        code: 0x95,
        dst: 0,
        src: 0,
        off: 0,
        imm: 0,
    });
    prog.iter().flat_map(|i| i.to_bytes()).collect()
}

/// The slot's verdict on `packet`, as the kernel programs would get it.
fn run(slot: &[Insn], packet: &[u8]) -> u64 {
    run_copied(slot, packet, PKT_HDR_LEN)
}

/// The same, for a copy of `copy` bytes.
pub(super) fn run_copied(slot: &[Insn], packet: &[u8], copy: usize) -> u64 {
    let copied = packet.len().min(copy);
    let code = runnable(slot, copied, packet.len());
    let vm = rbpf::EbpfVmRaw::new(Some(&code)).expect("rbpf accepts the translation");
    let mut hdr = packet[..copied].to_vec();
    vm.execute_program(&mut hdr).expect("runs within its memory")
}

pub(super) fn checksum_free_ipv4(
    proto: u8,
    src: [u8; 4],
    dst: [u8; 4],
    options: &[u8],
    l4: &[u8],
) -> Vec<u8> {
    let ihl = 20 + options.len();
    assert_eq!(ihl % 4, 0);
    let total = (ihl + l4.len()) as u16;
    let mut p = vec![0x40 | (ihl / 4) as u8, 0];
    p.extend_from_slice(&total.to_be_bytes());
    p.extend_from_slice(&[0x12, 0x34, 0x40, 0, 64, proto, 0, 0]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(options);
    p.extend_from_slice(l4);
    p
}

pub(super) fn ipv6(next: u8, src: [u8; 16], dst: [u8; 16], l4: &[u8]) -> Vec<u8> {
    let mut p = vec![0x60, 0, 0, 0];
    p.extend_from_slice(&(l4.len() as u16).to_be_bytes());
    p.extend_from_slice(&[next, 64]);
    p.extend_from_slice(&src);
    p.extend_from_slice(&dst);
    p.extend_from_slice(l4);
    p
}

pub(super) fn tcp(sport: u16, dport: u16, flags: u8, payload: usize) -> Vec<u8> {
    let mut t = Vec::new();
    t.extend_from_slice(&sport.to_be_bytes());
    t.extend_from_slice(&dport.to_be_bytes());
    t.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0]);
    t.extend((0..payload).map(|i| i as u8));
    t
}

pub(super) fn udp(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let mut u = Vec::new();
    u.extend_from_slice(&sport.to_be_bytes());
    u.extend_from_slice(&dport.to_be_bytes());
    u.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

pub(super) fn icmp(kind: u8) -> Vec<u8> {
    vec![kind, 0, 0, 0, 0x12, 0x34, 0, 1, 1, 2, 3, 4]
}

pub(super) const A: [u8; 4] = [10, 0, 0, 1];
pub(super) const B: [u8; 4] = [10, 0, 0, 2];
pub(super) const C: [u8; 4] = [192, 168, 7, 9];

pub(super) fn v6(last: u8) -> [u8; 16] {
    let mut a = [0; 16];
    a[0] = 0xfd;
    a[15] = last;
    a
}

/// Packets that take each branch of the table's expressions one way and
/// the other: both families, TCP/UDP/ICMP, IP options (a variable header
/// length), a fragment, payloads past the copy, truncated headers.
pub(super) fn corpus() -> Vec<(&'static str, Vec<u8>)> {
    let syn = 0x02;
    let ack = 0x10;
    let mut fragment = checksum_free_ipv4(6, A, B, &[], &tcp(1234, 443, syn, 0));
    fragment[6] = 0x00;
    fragment[7] = 0x10; // offset 128 bytes: no TCP header here
    let mut truncated = checksum_free_ipv4(6, A, B, &[], &tcp(1234, 443, syn, 0));
    truncated.truncate(22);
    vec![
        (
            "v4 tcp syn 443",
            checksum_free_ipv4(6, A, B, &[], &tcp(40000, 443, syn, 0)),
        ),
        (
            "v4 tcp ack 443 reply",
            checksum_free_ipv4(6, B, A, &[], &tcp(443, 40000, ack, 10)),
        ),
        (
            "v4 tcp 80",
            checksum_free_ipv4(6, A, C, &[], &tcp(40001, 80, ack, 0)),
        ),
        (
            "v4 tcp 8080 options",
            checksum_free_ipv4(
                6,
                C,
                A,
                &[1, 1, 1, 0, 7, 7, 4, 0],
                &tcp(8080, 50000, syn | ack, 0),
            ),
        ),
        (
            "v4 tcp 443 40-byte options",
            checksum_free_ipv4(6, A, B, &[1; 40], &tcp(5555, 443, ack, 0)),
        ),
        (
            "v4 tcp long payload",
            checksum_free_ipv4(6, A, B, &[], &tcp(40002, 443, ack, 300)),
        ),
        (
            "v4 udp 53",
            checksum_free_ipv4(17, A, C, &[], &udp(33333, 53, b"query")),
        ),
        (
            "v4 udp 8053 payload",
            checksum_free_ipv4(17, C, B, &[], &udp(8053, 9000, &[0xde, 0xad, 0xbe, 0xef])),
        ),
        (
            "v4 udp big",
            checksum_free_ipv4(17, B, A, &[], &udp(7000, 7001, &[0x55; 200])),
        ),
        ("v4 icmp echo", checksum_free_ipv4(1, A, B, &[], &icmp(8))),
        ("v4 icmp reply", checksum_free_ipv4(1, B, A, &[], &icmp(0))),
        ("v4 icmp unreachable", checksum_free_ipv4(1, C, A, &[], &icmp(3))),
        ("v4 gre", checksum_free_ipv4(47, A, B, &[], &[0; 8])),
        ("v4 fragment", fragment),
        ("v4 truncated", truncated),
        ("v6 tcp 443", ipv6(6, v6(1), v6(2), &tcp(40000, 443, syn, 0))),
        (
            "v6 tcp 80 reply",
            ipv6(6, v6(2), v6(1), &tcp(80, 40000, ack, 500)),
        ),
        ("v6 udp 53", ipv6(17, v6(1), v6(3), &udp(5353, 53, b"q"))),
        ("v6 icmp6 echo", ipv6(58, v6(1), v6(2), &icmp(128))),
        ("v6 icmp6 ns", ipv6(58, v6(3), v6(1), &icmp(135))),
        ("empty", Vec::new()),
        ("one byte", vec![0x45]),
        ("not ip", vec![0x00; 40]),
    ]
}

/// Expressions of every kind the issue names: host, net, port, portrange,
/// proto, TCP flags, ICMP types, ip6, not/and/or, len, and byte offsets.
pub(super) const EXPRESSIONS: &[&str] = &[
    "ip",
    "ip6",
    "tcp",
    "udp or icmp",
    "host 10.0.0.1",
    "src host 10.0.0.2",
    "dst host 192.168.7.9",
    "net 10.0.0.0/8",
    "src net 192.168.0.0/16 and tcp",
    "host fd00::1",
    "net fd00::/8 and udp",
    "port 443",
    "tcp dst port 443",
    "udp src port 53 or udp dst port 53",
    "portrange 8000-8100",
    "tcp portrange 40000-40001",
    "ip proto 47",
    "proto \\tcp",
    "tcp[tcpflags] & tcp-syn != 0",
    "tcp[tcpflags] & (tcp-syn|tcp-ack) == (tcp-syn|tcp-ack)",
    "tcp[13] = 0x10",
    "icmp[icmptype] = icmp-echo",
    "icmp[icmptype] != icmp-echo and icmp[icmptype] != icmp-echoreply",
    "icmp6 and ip6[40] = 128",
    "ip6 and tcp port 80",
    "not port 443",
    "not (host 10.0.0.1 or host 10.0.0.2)",
    "tcp and (port 80 or port 8080) and not src net 10.0.0.0/8",
    "len > 100",
    "len <= 60",
    "greater 200",
    "less 40",
    "ip[2:2] > 100",
    "ip[8] = 64",
    "udp[8:4] = 0xdeadbeef",
    "ip[6:2] & 0x1fff != 0",
    "tcp[20:2] = 0x0001",
    "ip and ip[0] & 0xf > 5",
    "ip6[6] = 17 and ip6[42:2] = 53",
    "udp and udp[4:2] / 2 > 5",
    "ip[2:2] - ((ip[0] & 0xf) << 2) > 30",
];

#[test]
fn translation_agrees_with_libpcap_on_every_packet() {
    let corpus = corpus();
    let mut decided = 0;
    let mut beyond = Vec::new();
    for text in EXPRESSIONS {
        let e = expression(text).unwrap_or_else(|err| panic!("{text}: {err}"));
        let reference = compile_program(text, DLT_RAW).unwrap();
        for (name, packet) in &corpus {
            let want = reference.filter(packet);
            match run(&e.slot, packet) as u32 {
                verdict::BEYOND_COPY => {
                    assert!(
                        packet.len() > PKT_HDR_LEN,
                        "{text} / {name}: undecided on a copied packet"
                    );
                    beyond.push((*text, *name));
                }
                v => {
                    assert_eq!(v == verdict::MATCH, want, "{text} / {name}: libpcap says {want}");
                    decided += 1;
                }
            }
        }
    }
    // Only the expressions that read at a per-packet offset past the copy
    // may leave packets undecided, and only long ones.
    assert!(decided > EXPRESSIONS.len() * corpus.len() * 9 / 10);
    assert!(beyond.is_empty(), "undecided: {beyond:?}");
}

#[test]
fn both_verdicts_occur_for_every_expression() {
    // A table row that matches everything or nothing would test little.
    for text in EXPRESSIONS {
        let e = expression(text).unwrap();
        let verdicts: Vec<u64> = corpus().iter().map(|(_, p)| run(&e.slot, p)).collect();
        assert!(
            verdicts.contains(&1) && verdicts.contains(&0),
            "{text}: {verdicts:?}"
        );
    }
}

#[test]
fn per_packet_offsets_past_the_copy_are_undecided_not_wrong() {
    // The UDP payload's 4 bytes at 8 from the UDP header: within the copy
    // behind a 20-byte IP header, past it behind a 60-byte one (IP options)
    // only when the packet goes on.
    let e = expression("udp[70:4] = 0x55555555").unwrap();
    let short_hdr = checksum_free_ipv4(17, A, B, &[], &udp(1, 2, &[0x55; 100]));
    let long_hdr = checksum_free_ipv4(17, A, B, &[1; 40], &udp(1, 2, &[0x55; 100]));
    let long_hdr_short_packet = checksum_free_ipv4(17, A, B, &[1; 40], &udp(1, 2, &[0x55; 4]));
    assert_eq!(run(&e.slot, &short_hdr) as u32, verdict::MATCH);
    assert_eq!(run(&e.slot, &long_hdr) as u32, verdict::BEYOND_COPY);
    assert_eq!(run(&e.slot, &long_hdr_short_packet) as u32, verdict::NO_MATCH);
    assert!(
        !compile_program("udp[70:4] = 0x55555555", DLT_RAW)
            .unwrap()
            .filter(&long_hdr_short_packet)
    );
}

#[test]
fn bad_expressions_keep_libpcaps_words() {
    let err = |t: &str| expression(t).unwrap_err().to_string();
    assert_eq!(err("tcp port"), "can't parse filter expression: syntax error");
    assert_eq!(
        err("ip[200] = 1"),
        TranslateError::BeyondCopy {
            end: 201,
            copied: PKT_HDR_LEN,
            from: "IP"
        }
        .to_string(),
        "constant offsets past the copy are refused"
    );
}

#[test]
fn needed_bytes_follow_the_loads() {
    assert_eq!(expression("ip proto 47").unwrap().bytes, 10);
    assert_eq!(expression("host 10.0.0.1").unwrap().bytes, 20);
    // Ports sit behind a header of per-packet length: the whole copy.
    assert_eq!(expression("port 443").unwrap().bytes, PKT_HDR_LEN as u16);
    assert_eq!(expression("len > 1").unwrap().bytes, 1);
}

#[test]
fn long_expressions_are_refused_with_the_slot_size() {
    let many = (1..=400)
        .map(|p| format!("port {p}"))
        .collect::<Vec<_>>()
        .join(" or ");
    let e = expression(&many).unwrap_err();
    assert!(
        matches!(e, super::ExprError::Translate(TranslateError::TooLong(n)) if n > SLOT_INSNS),
        "{e}"
    );
}
