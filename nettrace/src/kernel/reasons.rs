//! Names of `enum skb_drop_reason` values, from the running kernel's BTF.
//!
//! No table is compiled in: every kernel release adds reasons, and a stale
//! table would print wrong names. Reasons outside the core enum (subsystem
//! reasons, which carry a subsystem id in the high bits) print as numbers.

use std::collections::HashMap;

use super::btf::{BtfError, KernelBtf};

const PREFIX: &str = "SKB_DROP_REASON_";

#[derive(Debug, Default)]
pub struct DropReasons {
    names: HashMap<u32, String>,
}

impl DropReasons {
    /// `Ok(empty)` when the kernel predates drop reasons (no such enum).
    pub fn from_btf(btf: &KernelBtf) -> Result<Self, BtfError> {
        match btf.enum_values("skb_drop_reason") {
            Ok(values) => Ok(Self::from_values(values)),
            Err(BtfError::NoType { .. }) => Ok(Self::default()),
            Err(e) => Err(e),
        }
    }

    pub fn from_values(values: impl IntoIterator<Item = (u64, String)>) -> Self {
        let names = values
            .into_iter()
            // SKB_DROP_REASON_MAX is a bound, not a reason.
            .filter(|(_, n)| n != "SKB_DROP_REASON_MAX")
            .map(|(v, n)| (v as u32, n.strip_prefix(PREFIX).unwrap_or(&n).to_string()))
            .collect();
        Self { names }
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
