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

#[cfg(test)]
mod tests {
    use super::*;

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
