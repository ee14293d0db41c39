//! The checks serde cannot express: unique names, name and tracepoint
//! syntax, one matcher per rule, ranges in order. Run on the embedded
//! catalogue, on each rule pack alone and on the merge, so everything after
//! trusts the tree.

use std::collections::HashSet;

use super::{
    CatalogueHook,
    schema::{Group, RetMatch},
};

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

pub(super) fn validate(
    groups: &[Group],
    path: &mut Vec<String>,
    names: &mut HashSet<String>,
    out: &mut Vec<CatalogueHook>,
) -> Result<(), String> {
    for g in groups {
        let at = |what: &str| {
            format!(
                "group '{}' {what}",
                [path.as_slice(), std::slice::from_ref(&g.name)]
                    .concat()
                    .join(" > ")
            )
        };
        if !valid_name(&g.name) {
            return Err(format!(
                "group name '{}' must be letters, digits, '_', '-' or '.'",
                g.name
            ));
        }
        if !names.insert(g.name.clone()) {
            return Err(at("is defined twice (names of groups and hooks must be unique)"));
        }
        if g.groups.is_empty() && g.hooks.is_empty() {
            return Err(at("is empty"));
        }
        path.push(g.name.clone());
        for h in &g.hooks {
            let here = format!("hook '{}' in group '{}'", h.name, path.join(" > "));
            if !valid_name(&h.name) {
                return Err(format!("{here}: name must be letters, digits, '_', '-' or '.'"));
            }
            if !names.insert(h.name.clone()) {
                return Err(format!(
                    "{here}: name is used twice (names of groups and hooks must be unique)"
                ));
            }
            if let Some(tp) = &h.tp {
                match tp.split_once(':') {
                    Some((a, b)) if valid_name(a) && valid_name(b) => {}
                    _ => return Err(format!("{here}: tp '{tp}' must look like 'group:event'")),
                }
            }
            if h.free && h.clone {
                return Err(format!("{here}: a hook cannot both free and clone the packet"));
            }
            for (i, r) in h.rules.iter().enumerate() {
                if r.msg.trim().is_empty() {
                    return Err(format!("{here}: rule {} has an empty msg", i + 1));
                }
                let matchers = [r.ret.is_some(), r.reason.is_some(), r.rst_reason.is_some()];
                if matchers.iter().filter(|&&m| m).count() > 1 {
                    return Err(format!(
                        "{here}: rule {} has more than one of 'ret', 'reason', 'rst_reason'; use one matcher",
                        i + 1
                    ));
                }
                if let Some(RetMatch::Range([a, b])) = r.ret
                    && a > b
                {
                    return Err(format!(
                        "{here}: rule {} has range [{a}, {b}] with start after end",
                        i + 1
                    ));
                }
            }
            out.push(CatalogueHook {
                hook: h.clone(),
                path: path.clone(),
            });
        }
        validate(&g.groups, path, names, out)?;
        path.pop();
    }
    Ok(())
}
