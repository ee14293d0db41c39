//! What tracepoints and kernel functions take: their arguments, named and
//! spelled C-like, so a hook finds its `struct sk_buff *` (or socket) by type
//! wherever this kernel puts it.

use btf_rs::Type;

use super::{BtfError, KernelBtf, TpArg};

impl KernelBtf {
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
