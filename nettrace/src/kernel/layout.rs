//! Fills `nettrace_common::KernelLayout` from BTF: the struct offsets the eBPF
//! programs read packets with.

use nettrace_common::{
    KernelLayout,
    trace::{NF_HOOK_POINTS, NfLayout},
};

use super::{
    btf::{BtfError, KernelBtf},
    reasons::DropReasons,
};

/// The function that frees what a netfilter hook dropped.
pub const NF_HOOK_SLOW: &str = "nf_hook_slow";

/// Resolves every offset. Fields the programs cannot work without are errors;
/// the rest (device, socket, namespace) degrade to `KernelLayout::NONE`, and
/// the output then lacks what depends on them.
pub fn resolve(btf: &KernelBtf) -> Result<KernelLayout, BtfError> {
    let required = |ty: &str, path: &[&str]| btf.member_offset(ty, path);
    let optional = |ty: &str, path: &[&str]| btf.member_offset(ty, path).unwrap_or(KernelLayout::NONE);
    Ok(KernelLayout {
        skb_head: required("sk_buff", &["head"])?,
        skb_data: required("sk_buff", &["data"])?,
        skb_len: required("sk_buff", &["len"])?,
        skb_network_header: required("sk_buff", &["network_header"])?,
        skb_protocol: required("sk_buff", &["protocol"])?,
        skb_dev: optional("sk_buff", &["dev"]),
        skb_sk: optional("sk_buff", &["sk"]),
        dev_ifindex: optional("net_device", &["ifindex"]),
        dev_net: optional("net_device", &["nd_net", "net"]),
        sk_net: optional("sock", &["__sk_common", "skc_net", "net"]),
        net_inum: optional("net", &["ns", "inum"]),
        dev_name: optional("net_device", &["name"]),
        skb_transport_header: optional("sk_buff", &["transport_header"]),
        sk_family: optional("sock", &["__sk_common", "skc_family"]),
        sk_protocol: optional("sock", &["sk_protocol"]),
        sk_saddr: optional("sock", &["__sk_common", "skc_rcv_saddr"]),
        sk_daddr: optional("sock", &["__sk_common", "skc_daddr"]),
        sk_v6_saddr: optional("sock", &["__sk_common", "skc_v6_rcv_saddr"]),
        sk_v6_daddr: optional("sock", &["__sk_common", "skc_v6_daddr"]),
        skb_data_len: optional("sk_buff", &["data_len"]),
        skb_mac_header: optional("sk_buff", &["mac_header"]),
        dev_type: optional("net_device", &["type"]),
    })
}

/// Offsets for the netfilter context notes of `--diag` (hook state,
/// iptables table, nftables chain and table), from vmlinux or, where
/// netfilter is modular, the modules' BTF. What is missing stays
/// `KernelLayout::NONE` and the note lacks it. `--hooks` is off.
pub fn nf_context(btf: &KernelBtf) -> NfLayout {
    let modules: Vec<KernelBtf> = ["x_tables", "ip_tables", "nf_tables"]
        .iter()
        .filter_map(|m| btf.module(m))
        .collect();
    let off = |ty: &str, path: &[&str]| {
        std::iter::once(btf)
            .chain(&modules)
            .find_map(|b| b.member_offset(ty, path).ok())
            .unwrap_or(KernelLayout::NONE)
    };
    NfLayout {
        state_hook: off("nf_hook_state", &["hook"]),
        state_pf: off("nf_hook_state", &["pf"]),
        xt_table_name: off("xt_table", &["name"]),
        nft_pktinfo_state: off("nft_pktinfo", &["state"]),
        nft_chain_name: off("nft_chain", &["name"]),
        nft_chain_table: off("nft_chain", &["table"]),
        nft_table_name: off("nft_table", &["name"]),
        ..NfLayout::OFF
    }
}

/// Adds where a namespace's netfilter hook functions are (`--hooks`).
/// Errors name what this kernel lacks; the caller says `--hooks` cannot
/// work here.
///
/// Netfilter's drop is told by the NETFILTER_DROP drop reason (5.17+) or,
/// on kernels without drop reasons, by a free inside `nf_hook_slow`, whose
/// extent (from kallsyms) the caller passes.
pub fn nf_hooks(
    btf: &KernelBtf,
    reasons: &DropReasons,
    nf_hook_slow: Option<(u64, u64)>,
    nf: &mut NfLayout,
) -> Result<(), String> {
    match (reasons.value("NETFILTER_DROP"), nf_hook_slow) {
        (Some(reason), _) => nf.drop_reason = reason,
        (None, Some((at, len))) => (nf.drop_at, nf.drop_at_len) = (at, len),
        (None, None) => {
            return Err(
                "this kernel reports no NETFILTER_DROP drop reason and kallsyms has no nf_hook_slow".into(),
            );
        }
    }
    let off = |ty: &str, path: &[&str]| btf.member_offset(ty, path).map_err(|e| e.to_string());
    let points = btf
        .enum_values("nf_inet_hooks")
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|(_, n)| n == "NF_INET_NUMHOOKS")
        .map(|(v, _)| v as u32)
        .ok_or("enum nf_inet_hooks has no NF_INET_NUMHOOKS")?;
    nf.net_hooks_ipv4 = off("net", &["nf", "hooks_ipv4"])?;
    nf.net_hooks_ipv6 = off("net", &["nf", "hooks_ipv6"])?;
    nf.entries_num = off("nf_hook_entries", &["num_hook_entries"])?;
    nf.entries_hooks = off("nf_hook_entries", &["hooks"])?;
    nf.entry_size = btf.struct_size("nf_hook_entry").map_err(|e| e.to_string())?;
    nf.entry_hook = off("nf_hook_entry", &["hook"])?;
    nf.points = points.min(NF_HOOK_POINTS as u32);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::btf::VMLINUX_BTF;

    /// The running kernel (6.18 here) has all of it; the values are the
    /// ones `bpftool btf dump` shows for `struct nf_hook_entry` et al.
    #[test]
    fn netfilter_layout_of_the_running_kernel() {
        let btf = KernelBtf::from_file(VMLINUX_BTF).unwrap();
        let reasons = DropReasons::from_btf(&btf).unwrap();
        let mut nf = nf_context(&btf);
        // Built in here: everything comes from vmlinux.
        assert_eq!((nf.state_hook, nf.state_pf), (0, 1));
        assert_eq!(
            nf.xt_table_name,
            btf.member_offset("xt_table", &["name"]).unwrap()
        );
        assert_eq!(nf.nft_pktinfo_state, 8);
        assert!(nf.nft_chain_name != KernelLayout::NONE && nf.nft_table_name != KernelLayout::NONE);
        assert_eq!(nf.drop_reason, NfLayout::OFF.drop_reason);
        nf_hooks(&btf, &reasons, None, &mut nf).unwrap();
        assert_eq!(nf.points, 5);
        assert_eq!((nf.entry_size, nf.entry_hook), (16, 0));
        assert_eq!(nf.entries_num, 0);
        assert_eq!(nf.entries_hooks, 8);
        assert_eq!(nf.net_hooks_ipv6, nf.net_hooks_ipv4 + 5 * 8);
        assert_eq!(Some(nf.drop_reason), reasons.value("NETFILTER_DROP"));
        // Reasons known: the location test stays off.
        assert_eq!(nf.drop_at_len, 0);
        // Without them, the free's location tells.
        let mut old = nf_context(&btf);
        nf_hooks(
            &btf,
            &DropReasons::default(),
            Some((0xffffffff81000000, 0x200)),
            &mut old,
        )
        .unwrap();
        assert_eq!((old.drop_at, old.drop_at_len), (0xffffffff81000000, 0x200));
        assert_eq!(old.drop_reason, NfLayout::OFF.drop_reason);
        assert!(nf_hooks(&btf, &DropReasons::default(), None, &mut old).is_err());
    }
}
