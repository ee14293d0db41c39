//! Fills `nettrace_common::KernelLayout` from BTF: the struct offsets the eBPF
//! programs read packets with.

use nettrace_common::KernelLayout;

use super::btf::{BtfError, KernelBtf};

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
