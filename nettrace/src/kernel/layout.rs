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
    })
}

/// Where a namespace's netfilter hook functions are (`--hooks`). Errors
/// name what this kernel lacks; the caller says `--hooks` cannot work here.
pub fn netfilter(btf: &KernelBtf, reasons: &DropReasons) -> Result<NfLayout, String> {
    let drop_reason = reasons
        .value("NETFILTER_DROP")
        .ok_or("this kernel reports no NETFILTER_DROP drop reason")?;
    let off = |ty: &str, path: &[&str]| btf.member_offset(ty, path).map_err(|e| e.to_string());
    let points = btf
        .enum_values("nf_inet_hooks")
        .map_err(|e| e.to_string())?
        .into_iter()
        .find(|(_, n)| n == "NF_INET_NUMHOOKS")
        .map(|(v, _)| v as u32)
        .ok_or("enum nf_inet_hooks has no NF_INET_NUMHOOKS")?;
    Ok(NfLayout {
        drop_reason,
        net_hooks_ipv4: off("net", &["nf", "hooks_ipv4"])?,
        net_hooks_ipv6: off("net", &["nf", "hooks_ipv6"])?,
        entries_num: off("nf_hook_entries", &["num_hook_entries"])?,
        entries_hooks: off("nf_hook_entries", &["hooks"])?,
        entry_size: btf.struct_size("nf_hook_entry").map_err(|e| e.to_string())?,
        entry_hook: off("nf_hook_entry", &["hook"])?,
        points: points.min(NF_HOOK_POINTS as u32),
    })
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
        let nf = netfilter(&btf, &reasons).unwrap();
        assert_eq!(nf.points, 5);
        assert_eq!((nf.entry_size, nf.entry_hook), (16, 0));
        assert_eq!(nf.entries_num, 0);
        assert_eq!(nf.entries_hooks, 8);
        assert_eq!(nf.net_hooks_ipv6, nf.net_hooks_ipv4 + 5 * 8);
        assert_eq!(Some(nf.drop_reason), reasons.value("NETFILTER_DROP"));
    }
}
