//! tracefs: where classic tracepoints are attached and described.
//!
//! aya attaches classic tracepoints through tracefs, and the record layout of
//! each tracepoint (field offsets) is published in its `format` file. Some
//! machines boot without tracefs mounted; nettrace mounts it then, and says so.

use std::{
    collections::HashMap,
    io,
    path::{Path, PathBuf},
};

const CANDIDATES: [&str; 2] = ["/sys/kernel/tracing", "/sys/kernel/debug/tracing"];

/// Returns the tracefs root, mounting it at `/sys/kernel/tracing` if no
/// mounted copy is found. `Ok((path, true))` when this call mounted it.
pub fn ensure_mounted() -> io::Result<(PathBuf, bool)> {
    for c in CANDIDATES {
        if Path::new(c).join("events").is_dir() {
            return Ok((c.into(), false));
        }
    }
    let target = c"/sys/kernel/tracing";
    // SAFETY: plain mount(2) with static, NUL-terminated strings.
    let rc = unsafe {
        libc::mount(
            c"tracefs".as_ptr(),
            target.as_ptr(),
            c"tracefs".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((CANDIDATES[0].into(), true))
}

/// A field of a tracepoint record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Field {
    pub offset: u32,
    pub size: u32,
    /// The declaration without the name: `enum skb_drop_reason`, `void *`.
    pub ty: String,
}

/// Reads `events/<group>/<name>/format` into field name → offset/size.
pub fn format(root: &Path, group: &str, name: &str) -> io::Result<HashMap<String, Field>> {
    Ok(parse_format(&std::fs::read_to_string(
        root.join("events").join(group).join(name).join("format"),
    )?))
}

/// Parses lines like `\tfield:void * skbaddr;\toffset:8;\tsize:8;\tsigned:0;`.
pub fn parse_format(text: &str) -> HashMap<String, Field> {
    let mut fields = HashMap::new();
    for line in text.lines() {
        let mut decl = None;
        let mut offset = None;
        let mut size = None;
        for part in line.split(';') {
            let part = part.trim();
            if let Some(d) = part.strip_prefix("field:") {
                decl = Some(d);
            } else if let Some(o) = part.strip_prefix("offset:") {
                offset = o.parse().ok();
            } else if let Some(s) = part.strip_prefix("size:") {
                size = s.parse().ok();
            }
        }
        if let (Some(decl), Some(offset), Some(size)) = (decl, offset, size) {
            // The name is the declaration's last word, minus any array suffix.
            let last = decl.split_whitespace().last().unwrap_or("");
            let name = last.split('[').next().unwrap_or(last);
            let ty = decl[..decl.len() - last.len()].trim().to_string();
            fields.insert(name.to_string(), Field { offset, size, ty });
        }
    }
    fields
}

/// The value names a format's `print fmt` gives a field through
/// `__print_symbolic(REC->field, { 1, "TCP_ESTABLISHED" }, …)`: how the
/// kernel itself names the values (TCP states, address families), for the
/// running kernel, with no table compiled in. Empty when there is none.
pub fn symbols(text: &str, field: &str) -> HashMap<u64, String> {
    let mut names = HashMap::new();
    let Some(start) = text.find(&format!("__print_symbolic(REC->{field},")) else {
        return names;
    };
    let rest = &text[start..];
    // The call ends at the first `)` outside the `{ … }` pairs: names are
    // plain identifiers, so the first `)` is the call's.
    let body = &rest[..rest.find(')').unwrap_or(rest.len())];
    for pair in body.split('{').skip(1) {
        let pair = pair.split('}').next().unwrap_or("");
        let mut parts = pair.splitn(2, ',');
        let (Some(v), Some(n)) = (parts.next(), parts.next()) else {
            continue;
        };
        let v = v.trim();
        let value = match v.strip_prefix("0x") {
            Some(hex) => u64::from_str_radix(hex, 16).ok(),
            None => v.parse().ok(),
        };
        if let Some(value) = value {
            names.insert(value, n.trim().trim_matches('"').to_string());
        }
    }
    names
}

/// The raw text of a tracepoint's `format` file.
pub fn format_text(root: &Path, group: &str, name: &str) -> io::Result<String> {
    std::fs::read_to_string(root.join("events").join(group).join(name).join("format"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn print_symbolic_names() {
        let text = r#"print fmt: "family=%s oldstate=%s newstate=%s", __print_symbolic(REC->family, { 2, "AF_INET" }, { 10, "AF_INET6" }), __print_symbolic(REC->oldstate, { 1, "TCP_ESTABLISHED" }, { 0x2, "TCP_SYN_SENT" }), __print_symbolic(REC->newstate, { 1, "TCP_ESTABLISHED" }, { 12, "TCP_NEW_SYN_RECV" })"#;
        let fam = symbols(text, "family");
        assert_eq!(
            (fam[&2].as_str(), fam[&10].as_str(), fam.len()),
            ("AF_INET", "AF_INET6", 2)
        );
        let st = symbols(text, "newstate");
        assert_eq!(
            (st[&1].as_str(), st[&12].as_str(), st.len()),
            ("TCP_ESTABLISHED", "TCP_NEW_SYN_RECV", 2)
        );
        assert_eq!(symbols(text, "oldstate")[&2], "TCP_SYN_SENT");
        assert!(symbols(text, "cong_state").is_empty());
    }

    #[test]
    fn parses_captured_kfree_skb_format() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../tests/data/kfree_skb_format.txt"
        ))
        .unwrap();
        let f = parse_format(&text);
        let at = |n: &str| (f[n].offset, f[n].size, f[n].ty.as_str());
        assert_eq!(at("skbaddr"), (8, 8, "void *"));
        assert_eq!(at("location"), (16, 8, "void *"));
        assert_eq!(at("reason"), (36, 4, "enum skb_drop_reason"));
        assert_eq!(at("common_type"), (0, 2, "unsigned short"));
        assert!(!f.contains_key("print"));
    }

    #[test]
    fn array_fields_and_junk() {
        let f = parse_format("\tfield:char name[16];\toffset:12;\tsize:16;\tsigned:0;\nnonsense\n");
        assert_eq!(
            (f["name"].offset, f["name"].size, f["name"].ty.as_str()),
            (12, 16, "char")
        );
        assert_eq!(f.len(), 1);
    }
}
