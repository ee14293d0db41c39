//! Names of `enum skb_drop_reason` (and `enum sk_rst_reason`) values, from
//! the running kernel's BTF.
//!
//! No table is compiled in: every kernel release adds reasons, and a stale
//! table would print wrong names. Reasons outside the core enum (subsystem
//! reasons, which carry a subsystem id in the high bits) print as numbers.

use std::collections::HashMap;

use super::btf::{BtfError, KernelBtf};

const PREFIX: &str = "SKB_DROP_REASON_";
const RST_PREFIX: &str = "SK_RST_REASON_";

#[derive(Debug, Default)]
pub struct DropReasons {
    names: HashMap<u32, String>,
}

impl DropReasons {
    /// `Ok(empty)` when the kernel predates drop reasons (no such enum).
    pub fn from_btf(btf: &KernelBtf) -> Result<Self, BtfError> {
        Self::from_enum(btf, "skb_drop_reason", PREFIX)
    }

    /// Why TCP sent a reset (`tcp:tcp_send_reset`, 6.10+); empty before.
    pub fn resets_from_btf(btf: &KernelBtf) -> Result<Self, BtfError> {
        Self::from_enum(btf, "sk_rst_reason", RST_PREFIX)
    }

    fn from_enum(btf: &KernelBtf, name: &str, prefix: &str) -> Result<Self, BtfError> {
        match btf.enum_values(name) {
            Ok(values) => Ok(Self::with_prefix(values, prefix)),
            Err(BtfError::NoType { .. }) => Ok(Self::default()),
            Err(e) => Err(e),
        }
    }

    #[cfg(test)]
    pub fn from_values(values: impl IntoIterator<Item = (u64, String)>) -> Self {
        Self::with_prefix(values, PREFIX)
    }

    fn with_prefix(values: impl IntoIterator<Item = (u64, String)>, prefix: &str) -> Self {
        let names = values
            .into_iter()
            .map(|(v, n)| (v as u32, n.strip_prefix(prefix).unwrap_or(&n).to_string()))
            // `…_MAX` is a bound and `…_SUBSYS_MASK` a mask, not reasons.
            .filter(|(_, n)| n != "MAX" && n != "SUBSYS_MASK")
            .collect();
        Self { names }
    }

    /// Every name this kernel has.
    #[cfg(test)]
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.names.values().map(String::as_str)
    }

    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The value of the reason called `name` (without prefix), if this
    /// kernel has it.
    pub fn value(&self, name: &str) -> Option<u32> {
        self.names.iter().find(|(_, n)| *n == name).map(|(v, _)| *v)
    }

    /// `NO_SOCKET` for `SKB_DROP_REASON_NO_SOCKET`; the number when unknown.
    pub fn name(&self, value: u32) -> String {
        match self.names.get(&value) {
            Some(n) => n.clone(),
            None => format!("{value:#x}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strips_prefix_and_falls_back_to_number() {
        let r = DropReasons::from_values([
            (0, "SKB_NOT_DROPPED_YET".to_string()),
            (2, "SKB_DROP_REASON_NOT_SPECIFIED".to_string()),
            (3, "SKB_DROP_REASON_NO_SOCKET".to_string()),
            (99, "SKB_DROP_REASON_MAX".to_string()),
        ]);
        assert_eq!(r.name(3), "NO_SOCKET");
        assert_eq!(r.name(2), "NOT_SPECIFIED");
        assert_eq!(r.name(0), "SKB_NOT_DROPPED_YET");
        assert_eq!(r.name(99), "0x63");
        assert_eq!(r.name(0x10001), "0x10001");
    }

    #[test]
    fn running_kernel_knows_netfilter_drop() {
        if !std::path::Path::new(super::super::btf::VMLINUX_BTF).exists() {
            return;
        }
        let btf = KernelBtf::from_file(super::super::btf::VMLINUX_BTF).unwrap();
        let r = DropReasons::from_btf(&btf).unwrap();
        let names: Vec<String> = (0..512).map(|v| r.name(v)).collect();
        for want in ["NO_SOCKET", "NETFILTER_DROP", "NOT_SPECIFIED"] {
            assert!(names.iter().any(|n| n == want), "{want} missing");
        }
    }
}
