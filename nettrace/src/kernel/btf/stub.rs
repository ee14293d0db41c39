//! A stand-in for aya's parse of the kernel BTF, for modes that attach
//! only to tracepoints they know by name (`--drop`: `skb:kfree_skb`).
//!
//! aya needs the kernel's BTF for two things: CO-RE relocations, which
//! nettrace's objects do not have (every kernel offset comes from
//! `crate::kernel::layout` at start-up), and the type id a tp_btf, fentry
//! or fexit program is loaded against, which aya finds by scanning its
//! parsed types by name. Parsing the whole vmlinux BTF into aya's types
//! costs ~17 ms here and ~250 ms under the VM's emulation, most of what
//! is left of `--drop`'s start-up once the rest reads BTF lazily.
//!
//! The stub holds those types at the ids the kernel gave them and
//! placeholders (`void *`, 12 bytes, nothing to allocate) before them, so
//! aya finds the same ids it would have found in the real BTF.

use aya::{Btf, Endianness};
use btf_rs::Type;

use super::KernelBtf;

/// `BTF_KIND_PTR` and `BTF_KIND_TYPEDEF` (`include/uapi/linux/btf.h`).
const KIND_PTR: u32 = 2;
const KIND_TYPEDEF: u32 = 8;

impl KernelBtf {
    /// An aya BTF holding only these typedefs (`btf_trace_kfree_skb`, what
    /// tp_btf programs attach by), at their kernel ids; `None` when one of
    /// them is missing (then the caller parses the real thing).
    pub fn aya_stub(&self, typedefs: &[&str]) -> Option<Btf> {
        let mut wanted: Vec<(u32, &str)> = typedefs
            .iter()
            .map(|name| Some((self.typedef_id(name)?, *name)))
            .collect::<Option<_>>()?;
        wanted.sort_unstable();
        Btf::parse(&blob(&wanted), Endianness::default()).ok()
    }

    fn typedef_id(&self, name: &str) -> Option<u32> {
        let ids = self.btf.resolve_ids_by_name(name).ok()?;
        ids.into_iter()
            .find(|&id| matches!(self.btf.resolve_type_by_id(id), Ok(Type::Typedef(_))))
    }
}

/// A little-endian BTF blob with typedef `name` at each `(id, name)`
/// (sorted by id) and pointers to void at every other id before them.
fn blob(wanted: &[(u32, &str)]) -> Vec<u8> {
    let mut types = Vec::new();
    let mut strings = vec![0u8];
    let mut next = 1;
    for &(id, name) in wanted {
        for _ in next..id {
            push_type(&mut types, 0, KIND_PTR);
        }
        let name_off = strings.len() as u32;
        strings.extend_from_slice(name.as_bytes());
        strings.push(0);
        push_type(&mut types, name_off, KIND_TYPEDEF);
        next = id + 1;
    }
    let mut out = Vec::with_capacity(24 + types.len() + strings.len());
    out.extend_from_slice(&0xeb9f_u16.to_le_bytes()); // magic
    out.extend_from_slice(&[1, 0]); // version, flags
    for field in [
        24,
        0,
        types.len() as u32,
        types.len() as u32,
        strings.len() as u32,
    ] {
        // hdr_len, type_off, type_len, str_off, str_len
        out.extend_from_slice(&field.to_le_bytes());
    }
    out.extend_from_slice(&types);
    out.extend_from_slice(&strings);
    out
}

/// One `struct btf_type` without trailing data: name, kind, and type 0
/// (void).
fn push_type(types: &mut Vec<u8>, name_off: u32, kind: u32) {
    for field in [name_off, kind << 24, 0] {
        types.extend_from_slice(&field.to_le_bytes());
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use aya_obj::btf::BtfKind;

    use super::*;
    use crate::kernel::btf::VMLINUX_BTF;

    /// The stub gives the ids aya finds in the real BTF.
    #[test]
    fn stub_ids_are_the_kernel_ids() {
        if !Path::new(VMLINUX_BTF).exists() {
            eprintln!("skipped: no {VMLINUX_BTF}");
            return;
        }
        let names = ["btf_trace_kfree_skb", "btf_trace_netif_receive_skb"];
        let stub = KernelBtf::from_file_lazy(VMLINUX_BTF)
            .unwrap()
            .aya_stub(&names)
            .expect("both typedefs exist");
        let real = Btf::from_sys_fs().unwrap();
        for name in names {
            assert_eq!(
                stub.id_by_type_name_kind(name, BtfKind::Typedef).unwrap(),
                real.id_by_type_name_kind(name, BtfKind::Typedef).unwrap(),
                "{name}"
            );
        }
    }

    #[test]
    fn a_missing_typedef_gives_no_stub() {
        if !Path::new(VMLINUX_BTF).exists() {
            return;
        }
        let btf = KernelBtf::from_file_lazy(VMLINUX_BTF).unwrap();
        assert!(btf.aya_stub(&["btf_trace_no_such_tracepoint"]).is_none());
    }
}
