//! Questions nettrace asks of the running kernel's BTF: where a struct member
//! is, which argument of a tracepoint holds what, what an enum's values are
//! called. Answers are read at start-up, never compiled in, so one binary
//! works on every kernel that ships BTF.
//!
//! Parsing is btf-rs's (maintained by the Retis authors for the same job);
//! this module only walks what it returns.

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
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, BtfError> {
        Self::load(path.as_ref(), btf_rs::Backend::Cache)
    }

    /// Maps the file and parses on demand (~2 ms to open, each lookup scans):
    /// right for the handful of lookups `--drop` makes. Not every kernel lets
    /// sysfs BTF be mmapped; then this falls back to parsing.
    pub fn from_file_lazy(path: impl AsRef<Path>) -> Result<Self, BtfError> {
        Self::load(path.as_ref(), btf_rs::Backend::Mmap).or_else(|_| Self::from_file(path))
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

    /// `sizeof(struct name)`.
    pub fn struct_size(&self, name: &str) -> Result<u32, BtfError> {
        Ok(self.composite(name)?.size() as u32)
    }

    /// Byte offset of `path` (e.g. `["nd_net", "net"]`) inside struct `ty`,
    /// looking through anonymous unions and structs the way C does.
    pub fn member_offset(&self, ty: &str, path: &[&str]) -> Result<u32, BtfError> {
        let no_member = || BtfError::NoMember {
            ty: ty.into(),
            path: path.join("."),
        };
        let mut current = self.composite(ty)?;
        let mut offset_bits = 0u32;
        for (i, want) in path.iter().enumerate() {
            let (bits, member_ty, _) = self.find_member(&current, want)?.ok_or_else(no_member)?;
            offset_bits += bits;
            if i + 1 < path.len() {
                current = match self.strip(member_ty)? {
                    Type::Struct(s) | Type::Union(s) => s,
                    _ => return Err(no_member()),
                };
            }
        }
        if offset_bits % 8 != 0 {
            return Err(BtfError::Malformed(format!(
                "{ty}.{} is a bitfield",
                path.join(".")
            )));
        }
        Ok(offset_bits / 8)
    }

    /// Bit offset and width of `path` inside struct `ty`, for members that
    /// may be bitfields (`inet_connection_sock.icsk_ca_state: 5`). Offsets
    /// count as BTF counts them: from the least significant bit of the
    /// containing storage on a little-endian kernel. Widths of bitfields
    /// come from the member's encoding (structs with BTF's `kind_flag`,
    /// what pahole emits for any struct with bitfields); other members are
    /// as wide as their type.
    pub fn member_bits(&self, ty: &str, path: &[&str]) -> Result<(u32, u32), BtfError> {
        let no_member = || BtfError::NoMember {
            ty: ty.into(),
            path: path.join("."),
        };
        let (last, parents) = path.split_last().ok_or_else(no_member)?;
        let (base, current) = if parents.is_empty() {
            (0, self.composite(ty)?)
        } else {
            let mut current = self.composite(ty)?;
            let mut bits = 0;
            for want in parents {
                let (b, t, _) = self.find_member(&current, want)?.ok_or_else(no_member)?;
                bits += b;
                current = match self.strip(t)? {
                    Type::Struct(s) | Type::Union(s) => s,
                    _ => return Err(no_member()),
                };
            }
            (bits, current)
        };
        let (bits, t, width) = self.find_member(&current, last)?.ok_or_else(no_member)?;
        let width = match width {
            0 => self.type_bits(t)?,
            w => w,
        };
        Ok((base + bits, width))
    }

    /// Width in bits of a scalar or composite type.
    fn type_bits(&self, t: Type) -> Result<u32, BtfError> {
        Ok(8 * match self.strip(t)? {
            Type::Int(i) => i.size(),
            Type::Enum(e) => e.size(),
            Type::Enum64(e) => e.size(),
            Type::Struct(s) | Type::Union(s) => s.size(),
            // The kernel's pointers are the size of ours (same machine).
            Type::Ptr(_) => size_of::<usize>(),
            other => return Err(BtfError::Malformed(format!("no size for a {}", other.name()))),
        } as u32)
    }

    /// Finds a named member, descending into anonymous members; returns its
    /// bit offset relative to `s`, its type and its bitfield width (0 when
    /// it is not a bitfield).
    fn find_member(&self, s: &btf_rs::Struct, want: &str) -> Result<Option<(u32, Type, u32)>, BtfError> {
        for m in &s.members {
            let name = self.name_of(m);
            if name == want {
                return Ok(Some((
                    m.bit_offset(),
                    self.chained(m)?,
                    m.bitfield_size().unwrap_or(0),
                )));
            }
            if name.is_empty()
                && let Type::Struct(inner) | Type::Union(inner) = self.strip(self.chained(m)?)?
                && let Some((bits, t, width)) = self.find_member(&inner, want)?
            {
                return Ok(Some((m.bit_offset() + bits, t, width)));
            }
        }
        Ok(None)
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

    /// The arguments a `tp_btf` program on tracepoint `tp` receives, in
    /// order. The kernel describes each raw tracepoint with a typedef
    /// `btf_trace_<tp>`: a pointer to a prototype whose first parameter is
    /// the tracepoint's private `void *__data`, which BPF programs do not see.
    /// That prototype's parameters are unnamed in real vmlinux BTF, so names
    /// come from the tracepoint's probe function `__bpf_trace_<tp>` when it
    /// exists (it does not for events defined through a shared class); the
    /// type is always there to match on.
    pub fn tracepoint_args(&self, tp: &str) -> Result<Vec<TpArg>, BtfError> {
        let name = format!("btf_trace_{tp}");
        let no_type = || BtfError::NoType {
            kind: "raw tracepoint typedef",
            name: name.clone(),
        };
        let t = self
            .btf
            .resolve_types_by_name(&name)
            .unwrap_or_default()
            .into_iter()
            .find(|t| matches!(t, Type::Typedef(_)))
            .ok_or_else(no_type)?;
        let Type::Ptr(p) = self.strip(t)? else {
            return Err(no_type());
        };
        let Type::FuncProto(proto) = self.strip(self.chained(&p)?)? else {
            return Err(no_type());
        };
        let probe_names: Option<Vec<String>> = self
            .function_params(&format!("__bpf_trace_{tp}"))
            .map(|params| params.into_iter().map(|p| p.name).collect());
        proto
            .parameters
            .iter()
            .enumerate()
            .skip(1)
            .map(|(i, param)| {
                let mut name = self.name_of(param);
                if name.is_empty() {
                    name = probe_names
                        .as_ref()
                        .and_then(|n| n.get(i).cloned())
                        .unwrap_or_default();
                }
                Ok(TpArg {
                    name,
                    ty: self.describe(self.chained(param)?)?,
                })
            })
            .collect()
    }

    /// Parameters of kernel function `func` (names and C-like types), or
    /// `None` when BTF has no such function.
    pub fn function_params(&self, func: &str) -> Option<Vec<TpArg>> {
        let f = self
            .btf
            .resolve_types_by_name(func)
            .ok()?
            .into_iter()
            .find_map(|t| match t {
                Type::Func(f) => Some(f),
                _ => None,
            })?;
        let Type::FuncProto(proto) = self.chained(&f).ok()? else {
            return None;
        };
        proto
            .parameters
            .iter()
            .map(|p| {
                Some(TpArg {
                    name: self.name_of(p),
                    ty: self.describe(self.chained(p).ok()?).ok()?,
                })
            })
            .collect()
    }

    /// A C-like spelling of a type: `struct sk_buff *`, `enum x`, `void *`.
    fn describe(&self, t: Type) -> Result<String, BtfError> {
        Ok(match self.strip(t)? {
            Type::Void => "void".into(),
            Type::Ptr(p) => format!("{} *", self.describe(self.chained(&p).unwrap_or(Type::Void))?),
            Type::Struct(s) => format!("struct {}", self.name_of(&s)),
            Type::Union(s) => format!("union {}", self.name_of(&s)),
            Type::Enum(e) => format!("enum {}", self.name_of(&e)),
            Type::Enum64(e) => format!("enum {}", self.name_of(&e)),
            Type::Fwd(f) => format!("struct {}", self.name_of(&f)),
            Type::Int(i) => self.name_of(&i),
            other => other.name().to_string(),
        })
    }

    /// True when the kernel has a function `name` (a `BTF_KIND_FUNC`).
    pub fn has_function(&self, name: &str) -> bool {
        self.btf
            .resolve_types_by_name(name)
            .unwrap_or_default()
            .iter()
            .any(|t| matches!(t, Type::Func(_)))
    }
}

/// A minimal BTF encoder for tests: builds blobs with just the types a test
/// needs, so parsing and walking are checked on known, tiny input.
#[cfg(test)]
pub mod fixture {
    #[derive(Default)]
    pub struct BtfBuilder {
        types: Vec<u8>,
        strings: Vec<u8>,
        next_id: u32,
    }

    const INT: u32 = 1;
    const PTR: u32 = 2;
    const STRUCT: u32 = 4;
    const UNION: u32 = 5;
    const ENUM: u32 = 6;
    const TYPEDEF: u32 = 8;
    const FUNC: u32 = 12;
    const FUNC_PROTO: u32 = 13;

    impl BtfBuilder {
        pub fn new() -> Self {
            Self {
                strings: vec![0],
                next_id: 1,
                ..Default::default()
            }
        }

        fn str(&mut self, s: &str) -> u32 {
            if s.is_empty() {
                return 0;
            }
            let off = self.strings.len() as u32;
            self.strings.extend_from_slice(s.as_bytes());
            self.strings.push(0);
            off
        }

        fn push(&mut self, name: &str, kind: u32, vlen: u32, size_or_type: u32) -> u32 {
            let name = self.str(name);
            for v in [name, (kind << 24) | vlen, size_or_type] {
                self.types.extend_from_slice(&v.to_le_bytes());
            }
            self.next_id += 1;
            self.next_id - 1
        }

        fn words(&mut self, ws: &[u32]) {
            for w in ws {
                self.types.extend_from_slice(&w.to_le_bytes());
            }
        }

        pub fn int(&mut self, name: &str, bytes: u32) -> u32 {
            let id = self.push(name, INT, 0, bytes);
            self.words(&[bytes * 8]);
            id
        }

        pub fn ptr(&mut self, to: u32) -> u32 {
            self.push("", PTR, 0, to)
        }

        pub fn typedef(&mut self, name: &str, to: u32) -> u32 {
            self.push(name, TYPEDEF, 0, to)
        }

        /// `members`: (name, type id, byte offset).
        pub fn composite(&mut self, name: &str, union: bool, size: u32, members: &[(&str, u32, u32)]) -> u32 {
            let kind = if union { UNION } else { STRUCT };
            let id = self.push(name, kind, members.len() as u32, size);
            for &(m, ty, off) in members {
                let n = self.str(m);
                self.words(&[n, ty, off * 8]);
            }
            id
        }

        /// A struct with BTF's `kind_flag` set, as pahole writes structs
        /// with bitfields. `members`: (name, type id, bit offset, bitfield
        /// width or 0).
        pub fn bitfield_struct(&mut self, name: &str, size: u32, members: &[(&str, u32, u32, u32)]) -> u32 {
            // kind_flag is the info word's top bit, just above the kind.
            let id = self.push(name, STRUCT | 0x80, members.len() as u32, size);
            for &(m, ty, bit, width) in members {
                let n = self.str(m);
                self.words(&[n, ty, (width << 24) | bit]);
            }
            id
        }

        pub fn enumeration(&mut self, name: &str, values: &[(&str, u32)]) -> u32 {
            let id = self.push(name, ENUM, values.len() as u32, 4);
            for &(n, v) in values {
                let n = self.str(n);
                self.words(&[n, v]);
            }
            id
        }

        pub fn func_proto(&mut self, params: &[(&str, u32)]) -> u32 {
            let id = self.push("", FUNC_PROTO, params.len() as u32, 0);
            for &(n, ty) in params {
                let n = self.str(n);
                self.words(&[n, ty]);
            }
            id
        }

        pub fn func(&mut self, name: &str, proto: u32) -> u32 {
            self.push(name, FUNC, 0, proto)
        }

        pub fn build(&self) -> Vec<u8> {
            let mut out = Vec::new();
            out.extend_from_slice(&0xeb9fu16.to_le_bytes());
            out.push(1); // version
            out.push(0); // flags
            let hdr_len = 24u32;
            let type_len = self.types.len() as u32;
            for v in [hdr_len, 0, type_len, type_len, self.strings.len() as u32] {
                out.extend_from_slice(&v.to_le_bytes());
            }
            out.extend_from_slice(&self.types);
            out.extend_from_slice(&self.strings);
            out
        }
    }
}

#[cfg(test)]
mod tests {
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
}
