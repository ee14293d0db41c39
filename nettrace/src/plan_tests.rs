//! The planner against a synthetic catalogue and capability sets: which
//! backend each hook gets, and why the others are skipped.

use super::*;
use crate::kernel::btf::fixture::BtfBuilder;

/// A kernel with `ip_rcv(struct sk_buff *)`, `dev_xmit(struct net_device *, struct sk_buff *)`
/// and the `kfree_skb` raw tracepoint (unnamed prototype parameters, as in vmlinux).
fn btf() -> KernelBtf {
    let mut b = BtfBuilder::new();
    let int = b.int("int", 4);
    let skb = b.composite("sk_buff", false, 8, &[("len", int, 0)]);
    let skb_ptr = b.ptr(skb);
    let dev = b.composite("net_device", false, 8, &[("ifindex", int, 0)]);
    let dev_ptr = b.ptr(dev);
    let void_ptr = b.ptr(0);
    let reason = b.enumeration("skb_drop_reason", &[("SKB_DROP_REASON_NO_SOCKET", 3)]);
    let one = b.func_proto(&[("skb", skb_ptr)]);
    b.func("ip_rcv", one);
    let two = b.func_proto(&[("dev", dev_ptr), ("skb", skb_ptr)]);
    b.func("dev_xmit", two);
    let tp = b.func_proto(&[("", void_ptr), ("", skb_ptr), ("", void_ptr), ("", reason)]);
    let tp_ptr = b.ptr(tp);
    b.typedef("btf_trace_kfree_skb", tp_ptr);
    KernelBtf::from_bytes(&b.build()).unwrap()
}

fn catalogue() -> Catalogue {
    Catalogue::parse(
        "version: 1\ngroups:\n  - name: g\n    hooks:\n      - {name: ip_rcv}\n      - {name: dev_xmit}\n      - {name: kfree_skb, tp: \"skb:kfree_skb\", free: true}\n      - {name: gone}\n      - {name: nope, tp: \"x:nope\"}\n",
        "t",
    )
    .unwrap()
}

fn caps(fentry: bool, kprobe: bool) -> Capabilities {
    let r = |ok: bool| if ok { Ok(()) } else { Err("refused".to_string()) };
    Capabilities {
        detaching: None,
        btf: Ok(()),
        tp_btf: Ok(()),
        tracepoint: Ok(()),
        fentry: r(fentry),
        kprobe: r(kprobe),
        elapsed_ms: 0.0,
    }
}

fn plan(fentry: bool, kprobe: bool, opts: PlanOptions) -> Plan {
    let cat = catalogue();
    let all: Selection = (0..cat.hooks.len()).collect();
    build(&cat, &all, &btf(), &caps(fentry, kprobe), None, &opts)
}

fn find<'a>(p: &'a Plan, name: &str) -> &'a Planned {
    p.hooks
        .iter()
        .find(|h| h.name == name)
        .unwrap_or_else(|| panic!("{name} not planned: {:?}", p.skipped))
}

#[test]
fn skb_positions_come_from_btf() {
    let p = plan(true, true, PlanOptions::default());
    assert_eq!(
        (find(&p, "ip_rcv").config.skb_arg, find(&p, "ip_rcv").backend),
        (0, Backend::Fentry)
    );
    assert_eq!(find(&p, "dev_xmit").config.skb_arg, 1);
    let kfree = find(&p, "kfree_skb");
    assert_eq!(
        (kfree.backend, kfree.config.skb_arg, kfree.config.extra_arg),
        (Backend::TpBtf, 0, 2)
    );
    assert_eq!(
        kfree.config.flags,
        slot_flags::MATCHER | slot_flags::FREE | slot_flags::EXTRA | slot_flags::LOCATION
    );
    assert_eq!(kfree.config.loc_arg, 1);
    // Slots are dense, in plan order.
    let slots: Vec<u32> = p.hooks.iter().map(|h| h.slot).collect();
    assert_eq!(slots, [0, 1, 2]);
}

#[test]
fn missing_hooks_are_skipped_with_reasons() {
    let p = plan(true, true, PlanOptions::default());
    let why = |n: &str| {
        p.skipped
            .iter()
            .find(|(h, _)| h == n)
            .map(|(_, w)| w.as_str())
            .unwrap()
    };
    assert_eq!(why("gone"), NOT_IN_KERNEL);
    // No tracefs in this test: a tracepoint BTF does not know is missing.
    assert_eq!(why("nope"), NOT_IN_KERNEL);
    let cat = catalogue();
    let missing: Vec<&str> = p
        .missing
        .iter()
        .map(|&i| cat.hooks[i].hook.name.as_str())
        .collect();
    assert_eq!(missing, ["gone", "nope"]);
    // A hook the kernel has but that cannot be attached is not missing.
    let none = plan(false, false, PlanOptions::default());
    assert!(none.missing.iter().all(|&i| cat.hooks[i].hook.name != "ip_rcv"));
}

#[test]
fn backend_follows_capabilities() {
    assert_eq!(
        find(&plan(false, true, PlanOptions::default()), "ip_rcv").backend,
        Backend::Kprobe
    );
    let none = plan(false, false, PlanOptions::default());
    assert!(
        none.skipped
            .iter()
            .any(|(h, w)| h == "ip_rcv" && w == "no fentry or kprobe on this kernel")
    );
    // Forcing kprobes on a kernel with fentry.
    let forced = PlanOptions {
        backend: Some(BackendChoice::Kprobe),
        ..Default::default()
    };
    assert_eq!(find(&plan(true, true, forced), "ip_rcv").backend, Backend::Kprobe);
}

#[test]
fn ret_uses_fexit_with_the_return_slot_after_the_arguments() {
    let p = plan(
        true,
        true,
        PlanOptions {
            want_ret: true,
            ..Default::default()
        },
    );
    let x = find(&p, "dev_xmit");
    assert_eq!((x.backend, x.config.ret_arg), (Backend::Fexit, 2));
}

#[test]
fn matcher_free_and_stack_sets_become_flags() {
    let only_first: Selection = [0].into();
    let opts = PlanOptions {
        matchers: Some(only_first.clone()),
        frees: Some(only_first.clone()),
        stacks: only_first,
        ..Default::default()
    };
    let p = plan(true, true, opts);
    assert_eq!(
        find(&p, "ip_rcv").config.flags,
        slot_flags::MATCHER | slot_flags::FREE | slot_flags::STACK
    );
    // --trace-free replaces the catalogue's own `free: true`.
    assert_eq!(
        find(&p, "kfree_skb").config.flags,
        slot_flags::EXTRA | slot_flags::LOCATION
    );
}
