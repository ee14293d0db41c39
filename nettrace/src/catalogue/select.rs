//! `-t/--trace`, `--trace-exclude`, `--trace-matcher`, `--trace-free`,
//! `--trace-stack`: names of groups or hooks, resolved to sets of hooks.

use std::collections::BTreeSet;

use super::{Catalogue, Group};

/// Indices into `Catalogue::hooks`.
pub type Selection = BTreeSet<usize>;

/// Resolves a comma list of group/hook names (`all` = every hook). Without a
/// list (`None`) the result is every hook not marked `default: false`.
/// Unknown names are an error naming the closest known ones.
pub fn select(cat: &Catalogue, list: Option<&str>, flag: &str) -> Result<Selection, String> {
    let Some(list) = list else {
        return Ok((0..cat.hooks.len())
            .filter(|&i| cat.hooks[i].hook.default)
            .collect());
    };
    let mut out = Selection::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        if name == "all" {
            out.extend(0..cat.hooks.len());
            continue;
        }
        let before = out.len();
        let mut known = false;
        for (i, h) in cat.hooks.iter().enumerate() {
            if h.hook.name == name {
                known = true;
                out.insert(i);
            } else if h.path.iter().any(|g| g == name) {
                known = true;
                // Selecting a group takes its default hooks; name a hook to
                // get one that is off by default.
                if h.hook.default {
                    out.insert(i);
                }
            }
        }
        if !known && find_group(&cat.groups, name) {
            known = true;
        }
        if !known {
            return Err(unknown(cat, flag, name));
        }
        let _ = before;
    }
    if out.is_empty() {
        return Err(format!("{flag}: '{list}' selects no hook"));
    }
    Ok(out)
}

fn find_group(groups: &[Group], name: &str) -> bool {
    groups
        .iter()
        .any(|g| g.name == name || find_group(&g.groups, name))
}

fn unknown(cat: &Catalogue, flag: &str, name: &str) -> String {
    let mut close: Vec<(f64, &str)> = cat
        .names()
        .map(|n| (strsim::jaro_winkler(name, n), n))
        .filter(|(score, _)| *score > 0.8)
        .collect();
    close.sort_by(|a, b| b.0.total_cmp(&a.0));
    let close: Vec<&str> = close.into_iter().take(3).map(|(_, n)| n).collect();
    if close.is_empty() {
        format!("{flag}: unknown hook or group '{name}'")
    } else {
        format!(
            "{flag}: unknown hook or group '{name}' (did you mean: {}?)",
            close.join(", ")
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(cat: &Catalogue, s: &Selection) -> Vec<String> {
        s.iter().map(|&i| cat.hooks[i].hook.name.clone()).collect()
    }

    #[test]
    fn default_set_skips_default_off_hooks() {
        let cat = Catalogue::embedded();
        let s = names(&cat, &select(&cat, None, "-t").unwrap());
        assert!(s.contains(&"ip_rcv".to_string()));
        assert!(!s.contains(&"netif_receive_skb_entry".to_string()));
    }

    #[test]
    fn groups_hooks_and_all() {
        let cat = Catalogue::embedded();
        let s = names(&cat, &select(&cat, Some("ip-in, kfree_skb"), "-t").unwrap());
        assert!(s.contains(&"ip_rcv".to_string()) && s.contains(&"kfree_skb".to_string()));
        assert!(!s.contains(&"tcp_v4_rcv".to_string()));
        // A parent group includes its children.
        let link = names(&cat, &select(&cat, Some("link"), "-t").unwrap());
        assert!(link.contains(&"netif_receive_skb".to_string()) && link.contains(&"br_forward".to_string()));
        // Default-off hooks come with `all` or by name.
        let all = select(&cat, Some("all"), "-t").unwrap();
        assert_eq!(all.len(), cat.hooks.len());
        let by_name = names(
            &cat,
            &select(&cat, Some("netif_receive_skb_entry"), "-t").unwrap(),
        );
        assert_eq!(by_name, ["netif_receive_skb_entry"]);
    }

    #[test]
    fn unknown_names_suggest_close_ones() {
        let cat = Catalogue::embedded();
        let e = select(&cat, Some("ip_rvc"), "--trace").unwrap_err();
        assert!(
            e.starts_with("--trace: unknown hook or group 'ip_rvc' (did you mean: "),
            "{e}"
        );
        assert!(e.contains("ip_rcv"), "{e}");
        let e = select(&cat, Some("zzzzzz"), "-t").unwrap_err();
        assert_eq!(e, "-t: unknown hook or group 'zzzzzz'");
        assert!(
            select(&cat, Some(" , "), "-t")
                .unwrap_err()
                .contains("selects no hook")
        );
    }
}
