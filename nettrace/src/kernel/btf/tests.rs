//! `KernelBtf` on tiny hand-built blobs (`fixture`) and, when it has BTF,
//! on the running kernel.

use super::{fixture::BtfBuilder, *};

/// A kernel-shaped fixture: `dev` inside an anonymous union like 6.x's
/// `sk_buff`, and a nested `nd_net.net` path.
fn sample() -> KernelBtf {
    let mut b = BtfBuilder::new();
    let u16_ = b.int("__u16", 2);
    let u32_ = b.int("unsigned int", 4);
    let void_ptr = b.ptr(0);
    let net = b.composite("net", false, 64, &[("ns_pad", u32_, 0), ("inum", u32_, 40)]);
    let net_ptr = b.ptr(net);
    let possible_net = b.composite("", false, 8, &[("net", net_ptr, 0)]);
    let possible_net_t = b.typedef("possible_net_t", possible_net);
    let dev = b.composite(
        "net_device",
        false,
        256,
        &[("ifindex", u32_, 100), ("nd_net", possible_net_t, 200)],
    );
    let dev_ptr = b.ptr(dev);
    let anon = b.composite("", true, 8, &[("dev", dev_ptr, 0), ("dev_scratch", u32_, 0)]);
    let skb = b.composite(
        "sk_buff",
        false,
        232,
        &[
            ("next", void_ptr, 0),
            ("", anon, 16),
            ("network_header", u16_, 180),
        ],
    );
    let skb_ptr = b.ptr(skb);
    b.enumeration(
        "skb_drop_reason",
        &[("SKB_NOT_DROPPED_YET", 0), ("SKB_DROP_REASON_NO_SOCKET", 3)],
    );
    let proto = b.func_proto(&[
        ("__data", void_ptr),
        ("skb", skb_ptr),
        ("location", void_ptr),
        ("reason", u32_),
    ]);
    let proto_ptr = b.ptr(proto);
    b.typedef("btf_trace_kfree_skb", proto_ptr);
    let fproto = b.func_proto(&[("skb", skb_ptr)]);
    b.func("ip_rcv", fproto);
    KernelBtf::from_bytes(&b.build()).expect("fixture parses")
}

#[test]
fn member_offsets_through_anonymous_unions_and_typedefs() {
    let btf = sample();
    assert_eq!(btf.member_offset("sk_buff", &["network_header"]).unwrap(), 180);
    assert_eq!(btf.member_offset("sk_buff", &["dev"]).unwrap(), 16);
    assert_eq!(btf.member_offset("net_device", &["nd_net", "net"]).unwrap(), 200);
    assert_eq!(btf.member_offset("net", &["inum"]).unwrap(), 40);
}

#[test]
fn bitfield_members_have_bit_offsets_and_widths() {
    let mut b = BtfBuilder::new();
    let u8_ = b.int("__u8", 1);
    let u32_ = b.int("__u32", 4);
    b.bitfield_struct(
        "icsk",
        8,
        &[
            ("rto", u32_, 0, 0),
            ("ca_state", u8_, 32, 5),
            ("ca_initialized", u8_, 37, 1),
            ("retransmits", u8_, 40, 0),
        ],
    );
    let btf = KernelBtf::from_bytes(&b.build()).unwrap();
    assert_eq!(btf.member_bits("icsk", &["ca_state"]).unwrap(), (32, 5));
    assert_eq!(btf.member_bits("icsk", &["ca_initialized"]).unwrap(), (37, 1));
    assert_eq!(btf.member_bits("icsk", &["retransmits"]).unwrap(), (40, 8));
    assert_eq!(btf.member_bits("icsk", &["rto"]).unwrap(), (0, 32));
    assert_eq!(btf.member_offset("icsk", &["retransmits"]).unwrap(), 5);
    // A bitfield has no byte offset.
    assert!(btf.member_offset("icsk", &["ca_initialized"]).is_err());
    assert!(btf.member_bits("icsk", &["nope"]).is_err());
    // Plain structs (no kind_flag): widths from the member's type.
    let btf = sample();
    assert_eq!(
        btf.member_bits("net_device", &["nd_net", "net"]).unwrap(),
        (1600, 64)
    );
}

#[test]
fn missing_members_and_types_are_errors() {
    let btf = sample();
    let e = btf.member_offset("sk_buff", &["nope"]).unwrap_err();
    assert_eq!(e.to_string(), "BTF: struct sk_buff has no member 'nope'");
    assert!(matches!(
        btf.member_offset("no_such", &["x"]),
        Err(BtfError::NoType { .. })
    ));
    // A path through a non-struct member.
    assert!(btf.member_offset("sk_buff", &["network_header", "x"]).is_err());
}

#[test]
fn enums_and_tracepoint_args() {
    let btf = sample();
    let values = btf.enum_values("skb_drop_reason").unwrap();
    assert_eq!(
        values,
        vec![
            (0, "SKB_NOT_DROPPED_YET".into()),
            (3, "SKB_DROP_REASON_NO_SOCKET".into())
        ]
    );
    let args = btf.tracepoint_args("kfree_skb").unwrap();
    let pairs: Vec<(&str, &str)> = args.iter().map(|a| (a.name.as_str(), a.ty.as_str())).collect();
    assert_eq!(
        pairs,
        [
            ("skb", "struct sk_buff *"),
            ("location", "void *"),
            ("reason", "unsigned int")
        ]
    );
    assert!(btf.tracepoint_args("consume_skb").is_err());
    assert!(btf.has_function("ip_rcv"));
    let params = btf.function_params("ip_rcv").unwrap();
    assert_eq!(
        params,
        [TpArg {
            name: "skb".into(),
            ty: "struct sk_buff *".into()
        }]
    );
    assert_eq!(btf.function_params("sk_buff"), None);
    assert!(!btf.has_function("sk_buff"));
}

#[test]
fn garbage_is_an_error_not_a_panic() {
    assert!(KernelBtf::from_bytes(&[0u8; 10]).is_err());
    assert!(KernelBtf::from_bytes(b"definitely not btf, but long enough to have a header").is_err());
}

/// The same questions, asked of the running kernel when it has BTF.
#[test]
fn running_kernel_answers() {
    if !Path::new(VMLINUX_BTF).exists() {
        eprintln!("skipped: no {VMLINUX_BTF}");
        return;
    }
    let btf = KernelBtf::from_file(VMLINUX_BTF).unwrap();
    let nh = btf.member_offset("sk_buff", &["network_header"]).unwrap();
    assert!(nh > 0 && nh < 256, "network_header at {nh}");
    btf.member_offset("net_device", &["nd_net", "net"]).unwrap();
    let args = btf.tracepoint_args("kfree_skb").unwrap();
    assert_eq!(args[0].ty, "struct sk_buff *");
    assert_eq!(args[0].name, "skb");
    assert!(args.iter().any(|a| a.ty == "enum skb_drop_reason"), "{args:?}");
    // A function: skb is the first parameter of ip_rcv.
    let ip_rcv = btf.function_params("ip_rcv").unwrap();
    assert_eq!(ip_rcv[0].ty, "struct sk_buff *");
    let xmit = btf.function_params("dev_hard_start_xmit").unwrap();
    assert_eq!(xmit[0].ty, "struct sk_buff *", "{xmit:?}");
    // A 5-bit bitfield (6.x: `__u8 icsk_ca_state: 5;`).
    let (bit, width) = btf
        .member_bits("inet_connection_sock", &["icsk_ca_state"])
        .unwrap();
    assert_eq!(width, 5);
    assert!(bit > 0, "{bit}");
}

/// The copy in a memory file (what `--drop` maps where sysfs BTF cannot
/// be mapped) answers like the parsed file.
#[test]
fn memory_file_copy_answers_like_the_file() {
    if !Path::new(VMLINUX_BTF).exists() {
        eprintln!("skipped: no {VMLINUX_BTF}");
        return;
    }
    let copy = KernelBtf::from_memory_file(Path::new(VMLINUX_BTF)).expect("memfd copy maps");
    let parsed = KernelBtf::from_file(VMLINUX_BTF).unwrap();
    let nh = |b: &KernelBtf| b.member_offset("sk_buff", &["network_header"]).unwrap();
    assert_eq!(nh(&copy), nh(&parsed));
    assert_eq!(
        copy.tracepoint_args("kfree_skb").unwrap(),
        parsed.tracepoint_args("kfree_skb").unwrap()
    );
}
