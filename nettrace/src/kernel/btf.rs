//! Questions nettrace asks of the running kernel's BTF: where a struct member
//! is, which argument of a tracepoint holds what, what an enum's values are
//! called. Answers are read at start-up, never compiled in, so one binary
//! works on every kernel that ships BTF.
//!
//! Parsing is btf-rs's (maintained by the Retis authors for the same job);
//! this module only walks what it returns. This file loads BTF and holds
//! the walking helpers and enum names; `members` answers where struct
//! members are, `signatures` what tracepoints and functions take.

mod members;
mod signatures;
mod stub;

use std::path::Path;

use btf_rs::{Btf, BtfType, Type};

/// Where the running kernel publishes its own BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

#[derive(Debug, thiserror::Error)]
pub enum BtfError {
    /// The BTF blob could not be read or parsed.
    #[error("cannot read BTF from {path}: {source}")]
    Load {
        path: String,
        #[source]
        source: btf_rs::Error,
    },
    /// A type nettrace needs is missing (renamed or compiled out).
    #[error("BTF has no {kind} named '{name}'")]
    NoType { kind: &'static str, name: String },
    /// A member path did not resolve.
    #[error("BTF: struct {ty} has no member '{path}'")]
    NoMember { ty: String, path: String },
    /// The walker met something it does not understand.
    #[error("BTF: {0}")]
    Malformed(String),
}

/// One argument of a raw tracepoint, as BTF describes it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TpArg {
    /// Empty when BTF does not name it.
    pub name: String,
    /// C-like type, e.g. `struct sk_buff *`.
    pub ty: String,
}

pub struct KernelBtf {
    btf: Btf,
}

impl KernelBtf {
    /// Parses every type up front (fast lookups afterwards, ~0.1 s for
    /// vmlinux): right when hundreds of names will be looked up.
    /// The file is read whole first: parsing from a file seeks back and
    /// forth, and each seek drops the read buffer (measured: a third of the
    /// parse time in `lseek` and refills).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, BtfError> {
        let path = path.as_ref();
        match std::fs::read(path) {
            Ok(bytes) => Btf::from_bytes(&bytes)
                .map(|btf| Self { btf })
                .map_err(|source| BtfError::Load {
                    path: path.display().to_string(),
                    source,
                }),
            Err(_) => Self::load(path, btf_rs::Backend::Cache),
        }
    }

    /// Maps the file and parses on demand (~2 ms to open, each lookup scans):
    /// right for the handful of lookups `--drop` makes. Sysfs BTF can be
    /// mmapped only since Linux 6.14 or so; before, a copy in memory is
    /// mapped instead (~15 ms here, against ~80 ms to parse it all, and
    /// 5× that under the VM's emulation), and only if that fails too
    /// does this parse everything.
    pub fn from_file_lazy(path: impl AsRef<Path>) -> Result<Self, BtfError> {
        let path = path.as_ref();
        Self::load(path, btf_rs::Backend::Mmap)
            .or_else(|e| Self::from_memory_file(path).ok_or(e))
            .or_else(|_| Self::from_file(path))
    }

    /// `path` read into an anonymous memory file (memfd), which can always
    /// be mapped, and mapped from there.
    fn from_memory_file(path: &Path) -> Option<Self> {
        use std::{io::Write as _, os::fd::FromRawFd as _};
        let bytes = std::fs::read(path).ok()?;
        // SAFETY: a constant C string; the fd returned is checked and owned
        // by the File from here on.
        let fd = unsafe { libc::memfd_create(c"nettrace-btf".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return None;
        }
        // SAFETY: `fd` was just created and nothing else owns it.
        let mut file = unsafe { std::fs::File::from_raw_fd(fd) };
        file.write_all(&bytes).ok()?;
        // The mapping keeps the memory file alive once `file` is closed.
        Self::load(Path::new(&format!("/proc/self/fd/{fd}")), btf_rs::Backend::Mmap).ok()
    }

    fn load(path: &Path, backend: btf_rs::Backend) -> Result<Self, BtfError> {
        Btf::from_file_with_backend(path, backend)
            .map(|btf| Self { btf })
            .map_err(|source| BtfError::Load {
                path: path.display().to_string(),
                source,
            })
    }

    /// The BTF of a loaded kernel module (`/sys/kernel/btf/<module>`, split
    /// on top of vmlinux): its functions and types, and vmlinux's. `None`
    /// when the module is not loaded or built in (then vmlinux has it all).
    pub fn module(&self, name: &str) -> Option<Self> {
        let path = Path::new("/sys/kernel/btf").join(name);
        Btf::from_split_file(&path, &self.btf)
            .ok()
            .map(|btf| Self { btf })
    }

    #[cfg(test)]
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, BtfError> {
        Btf::from_bytes(bytes)
            .map(|btf| Self { btf })
            .map_err(|source| BtfError::Load {
                path: "<memory>".into(),
                source,
            })
    }

    fn name_of(&self, t: &dyn BtfType) -> String {
        self.btf.resolve_name(t).unwrap_or_default()
    }

    /// Follows typedefs and qualifiers down to the type that gives shape.
    fn strip(&self, mut t: Type) -> Result<Type, BtfError> {
        loop {
            t = match &t {
                Type::Typedef(x) => self.chained(x)?,
                Type::Const(x) | Type::Volatile(x) | Type::Restrict(x) => self.chained(x)?,
                Type::TypeTag(x) => self.chained(x)?,
                _ => return Ok(t),
            };
        }
    }

    fn chained(&self, t: &dyn BtfType) -> Result<Type, BtfError> {
        self.btf
            .resolve_chained_type(t)
            .map_err(|e| BtfError::Malformed(e.to_string()))
    }

    /// The struct (or union) called `name`, skipping forward declarations.
    fn composite(&self, name: &str) -> Result<btf_rs::Struct, BtfError> {
        let types = self.btf.resolve_types_by_name(name).unwrap_or_default();
        types
            .into_iter()
            .find_map(|t| match t {
                Type::Struct(s) | Type::Union(s) => Some(s),
                _ => None,
            })
            .ok_or_else(|| BtfError::NoType {
                kind: "struct",
                name: name.into(),
            })
    }

    /// The (value, name) pairs of enum `name` (`enum skb_drop_reason`, …).
    pub fn enum_values(&self, name: &str) -> Result<Vec<(u64, String)>, BtfError> {
        let types = self.btf.resolve_types_by_name(name).unwrap_or_default();
        for t in types {
            match t {
                Type::Enum(e) => {
                    return Ok(e
                        .members
                        .iter()
                        .map(|m| (m.val() as u64, self.name_of(m)))
                        .collect());
                }
                Type::Enum64(e) => {
                    return Ok(e.members.iter().map(|m| (m.val(), self.name_of(m))).collect());
                }
                _ => {}
            }
        }
        Err(BtfError::NoType {
            kind: "enum",
            name: name.into(),
        })
    }
}

#[cfg(test)]
pub mod fixture;
#[cfg(test)]
mod tests;
