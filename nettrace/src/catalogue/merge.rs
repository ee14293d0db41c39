//! `--rules FILE`: merging a rule pack into the catalogue. A pack's groups
//! anchor where the catalogue already has a group of that name, wherever
//! it sits in the tree, so a pack need not repeat the whole path.

use super::schema::{Group, Hook};

fn find_hook<'a>(groups: &'a mut [Group], name: &str) -> Option<&'a mut Hook> {
    for g in groups {
        if let Some(h) = g.hooks.iter_mut().find(|h| h.name == name) {
            return Some(h);
        }
        if let Some(h) = find_hook(&mut g.groups, name) {
            return Some(h);
        }
    }
    None
}

fn find_group<'a>(groups: &'a mut [Group], name: &str) -> Option<&'a mut Group> {
    for g in groups {
        if g.name == name {
            return Some(g);
        }
        if let Some(found) = find_group(&mut g.groups, name) {
            return Some(found);
        }
    }
    None
}

/// The group at the end of `path` (pack group names from the root down):
/// the deepest name the catalogue already has anchors it, wherever it sits
/// in the tree; the names after it are created beneath.
fn group_for<'a>(root: &'a mut Vec<Group>, path: &[String]) -> &'a mut Group {
    let anchor = path.iter().rposition(|n| find_group(root, n).is_some());
    if anchor == Some(path.len() - 1) {
        return find_group(root, &path[path.len() - 1]).expect("found above");
    }
    let (mut children, rest) = match anchor {
        Some(i) => (
            &mut find_group(root, &path[i]).expect("found above").groups,
            &path[i + 1..],
        ),
        None => (root, path),
    };
    let (last, middle) = rest
        .split_last()
        .expect("the path's last group is not in the catalogue");
    for name in middle {
        children.push(Group {
            name: name.clone(),
            groups: Vec::new(),
            hooks: Vec::new(),
        });
        children = &mut children.last_mut().expect("just pushed").groups;
    }
    children.push(Group {
        name: last.clone(),
        groups: Vec::new(),
        hooks: Vec::new(),
    });
    children.last_mut().expect("just pushed")
}

/// Merges a rule pack's groups into the catalogue's. A hook the catalogue
/// has gains the pack's rules (its other fields stay; a different `tp` is an
/// error, not a silent override); a new hook is added to its group.
pub(super) fn merge(root: &mut Vec<Group>, pack: Vec<Group>, path: &mut Vec<String>) -> Result<(), String> {
    for g in pack {
        path.push(g.name.clone());
        for h in g.hooks {
            if let Some(known) = find_hook(root, &h.name) {
                if h.tp.is_some() && h.tp != known.tp {
                    return Err(format!(
                        "hook '{}' is already in the catalogue with tp {:?}; a pack may only add rules to it",
                        h.name,
                        known.tp.as_deref().unwrap_or("(none: a function)")
                    ));
                }
                known.rules.extend(h.rules);
            } else {
                group_for(root, path).hooks.push(h);
            }
        }
        merge(root, g.groups, path)?;
        path.pop();
    }
    Ok(())
}
