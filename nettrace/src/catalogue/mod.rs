//! The hook catalogue (`rules/hooks.yaml`): which kernel functions and
//! tracepoints nettrace can hook, grouped in a tree so users can select
//! `-t link-in,tcp` or single hooks. The default catalogue is embedded in the
//! binary; `--rules FILE` merges a user's rule pack (same schema) into it:
//! hooks already known gain the pack's rules, new hooks and groups are added.
//!
//! Parsing is serde's (unknown fields are errors, with line numbers); the
//! checks serde cannot express (unique names, tracepoint syntax, rule
//! matchers) run in `validate`, so everything after trusts the tree.

mod select;

use std::collections::HashSet;

use serde::Deserialize;

pub use select::{Selection, select};

/// The catalogue shipped with nettrace.
pub const EMBEDDED: &str = include_str!("../../../rules/hooks.yaml");
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, thiserror::Error)]
pub enum CatalogueError {
    /// YAML syntax or schema error; serde_yaml's message carries the line.
    #[error("{origin}: {source}")]
    Parse {
        origin: String,
        #[source]
        source: serde_yaml::Error,
    },
    /// A rule the schema allows but the catalogue must not contain.
    #[error("{origin}: {msg}")]
    Invalid { origin: String, msg: String },
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    version: u32,
    groups: Vec<Group>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Group {
    pub name: String,
    #[serde(default)]
    pub groups: Vec<Group>,
    #[serde(default)]
    pub hooks: Vec<Hook>,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Hook {
    pub name: String,
    /// `group:event` for a tracepoint; `None` for a kernel function.
    #[serde(default)]
    pub tp: Option<String>,
    #[serde(default = "yes")]
    pub default: bool,
    #[serde(default)]
    pub free: bool,
    #[serde(default)]
    pub clone: bool,
    #[serde(default)]
    pub monitor: bool,
    /// The kernel module whose BTF describes this function when it is not
    /// built in (`nf_tables`); such functions attach with kprobes.
    #[serde(default)]
    pub module: Option<String>,
    /// What netfilter context the function's arguments give (`--diag`
    /// notes: hook point, iptables/nftables table and chain).
    #[serde(default)]
    pub nf: Option<NfContext>,
    #[serde(default)]
    pub rules: Vec<Rule>,
}

/// How to read a netfilter function's context; where each argument is
/// comes from BTF by type.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum NfContext {
    /// A `struct nf_hook_state *` argument (`nf_hook_slow`).
    State,
    /// `void *priv` is a `struct xt_table *`, plus the hook state
    /// (`ipt_do_table`).
    XtTable,
    /// A `struct nft_pktinfo *` and `void *priv`, a `struct nft_chain *`
    /// (`nft_do_chain`).
    NftChain,
}

fn yes() -> bool {
    true
}

impl Hook {
    /// `(group, event)` of a tracepoint hook.
    pub fn tracepoint(&self) -> Option<(&str, &str)> {
        self.tp.as_deref().and_then(|t| t.split_once(':'))
    }
}

#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Info,
    Warn,
    Error,
}

/// A diagnosis rule attached to a hook.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    pub level: Level,
    pub msg: String,
    #[serde(default)]
    pub adv: Option<String>,
    #[serde(default)]
    pub ret: Option<RetMatch>,
    #[serde(default)]
    pub reason: Option<String>,
    /// Why TCP sent a reset (`enum sk_rst_reason` without its prefix).
    #[serde(default)]
    pub rst_reason: Option<String>,
}

/// How a rule matches a function's return value: `any`, or a one-key map
/// such as `{eq: 0}` or `{range: [1, 5]}`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(try_from = "RetRepr")]
pub enum RetMatch {
    Any,
    Eq(i64),
    Ne(i64),
    Lt(i64),
    Gt(i64),
    Range([i64; 2]),
}

#[derive(Deserialize)]
#[serde(untagged)]
enum RetRepr {
    Word(String),
    Map(RetMap),
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RetMap {
    eq: Option<i64>,
    ne: Option<i64>,
    lt: Option<i64>,
    gt: Option<i64>,
    range: Option<[i64; 2]>,
}

impl TryFrom<RetRepr> for RetMatch {
    type Error = String;

    fn try_from(r: RetRepr) -> Result<Self, String> {
        let m = match r {
            RetRepr::Word(w) if w == "any" => return Ok(RetMatch::Any),
            RetRepr::Word(w) => return Err(format!("ret: '{w}' is not 'any' or a map like {{eq: 0}}")),
            RetRepr::Map(m) => m,
        };
        let all = [
            m.eq.map(RetMatch::Eq),
            m.ne.map(RetMatch::Ne),
            m.lt.map(RetMatch::Lt),
            m.gt.map(RetMatch::Gt),
            m.range.map(RetMatch::Range),
        ];
        let mut set = all.into_iter().flatten();
        match (set.next(), set.next()) {
            (Some(one), None) => Ok(one),
            _ => Err("ret: needs exactly one of eq, ne, lt, gt, range".into()),
        }
    }
}

/// The validated catalogue, flattened: hooks in file order, each with the
/// path of groups above it.
#[derive(Clone, Debug)]
pub struct Catalogue {
    pub groups: Vec<Group>,
    pub hooks: Vec<CatalogueHook>,
}

#[derive(Clone, Debug)]
pub struct CatalogueHook {
    pub hook: Hook,
    /// Group names from the root down, e.g. `["link", "link-in"]`.
    pub path: Vec<String>,
}

impl Catalogue {
    pub fn embedded() -> Self {
        Self::parse(EMBEDDED, "embedded catalogue").expect("the embedded catalogue is valid (unit-tested)")
    }

    /// The embedded catalogue with the rule pack at `path` merged in.
    pub fn with_pack_file(path: &str) -> Result<Self, CatalogueError> {
        let text = std::fs::read_to_string(path).map_err(|e| CatalogueError::Invalid {
            origin: path.to_string(),
            msg: format!("cannot read: {e}"),
        })?;
        Self::with_pack(&text, path)
    }

    /// The embedded catalogue with a rule pack merged in; every error names
    /// the pack (the embedded part is known to be valid).
    pub fn with_pack(text: &str, origin: &str) -> Result<Self, CatalogueError> {
        // Parsed once per process (the fuzzer merges packs thousands of times).
        static BASE: std::sync::OnceLock<File> = std::sync::OnceLock::new();
        let mut base = BASE
            .get_or_init(|| {
                read(EMBEDDED, "embedded catalogue").expect("the embedded catalogue is valid (unit-tested)")
            })
            .clone();
        let pack = read(text, origin)?;
        // The pack must be a valid catalogue on its own (names, matchers,
        // empty groups), so its errors are reported against its own text.
        Self::build(
            File {
                version: pack.version,
                groups: pack.groups.clone(),
            },
            origin,
        )?;
        merge(&mut base.groups, pack.groups, &mut Vec::new()).map_err(|msg| CatalogueError::Invalid {
            origin: origin.to_string(),
            msg,
        })?;
        Self::build(base, origin)
    }

    pub fn parse(text: &str, origin: &str) -> Result<Self, CatalogueError> {
        Self::build(read(text, origin)?, origin)
    }

    fn build(file: File, origin: &str) -> Result<Self, CatalogueError> {
        let invalid = |msg: String| CatalogueError::Invalid {
            origin: origin.to_string(),
            msg,
        };
        let mut hooks = Vec::new();
        let mut names = HashSet::new();
        validate(&file.groups, &mut Vec::new(), &mut names, &mut hooks).map_err(invalid)?;
        if hooks.is_empty() {
            return Err(invalid("no hooks defined".into()));
        }
        Ok(Self {
            groups: file.groups,
            hooks,
        })
    }

    /// Every group and hook name, for `-t` suggestions.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        let mut all = Vec::new();
        collect_group_names(&self.groups, &mut all);
        all.into_iter()
            .chain(self.hooks.iter().map(|h| h.hook.name.as_str()))
    }
}

/// Parses one file and checks its schema version.
fn read(text: &str, origin: &str) -> Result<File, CatalogueError> {
    let file: File = serde_yaml::from_str(text).map_err(|source| CatalogueError::Parse {
        origin: origin.to_string(),
        source,
    })?;
    if file.version != SCHEMA_VERSION {
        return Err(CatalogueError::Invalid {
            origin: origin.to_string(),
            msg: format!(
                "schema version {} is not supported (this nettrace reads version {SCHEMA_VERSION})",
                file.version
            ),
        });
    }
    Ok(file)
}

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
fn merge(root: &mut Vec<Group>, pack: Vec<Group>, path: &mut Vec<String>) -> Result<(), String> {
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

fn collect_group_names<'a>(groups: &'a [Group], out: &mut Vec<&'a str>) {
    for g in groups {
        out.push(&g.name);
        collect_group_names(&g.groups, out);
    }
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
}

fn validate(
    groups: &[Group],
    path: &mut Vec<String>,
    names: &mut HashSet<String>,
    out: &mut Vec<CatalogueHook>,
) -> Result<(), String> {
    for g in groups {
        let at = |what: &str| {
            format!(
                "group '{}' {what}",
                [path.as_slice(), &[g.name.clone()]].concat().join(" > ")
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_catalogue_is_valid_and_large() {
        let c = Catalogue::embedded();
        assert!(c.hooks.len() >= 150, "{} hooks", c.hooks.len());
        let ip_rcv = c.hooks.iter().find(|h| h.hook.name == "ip_rcv").unwrap();
        assert_eq!(ip_rcv.path, ["ip", "ip-in"]);
        assert!(ip_rcv.hook.default && ip_rcv.hook.tp.is_none());
        let kfree = c.hooks.iter().find(|h| h.hook.name == "kfree_skb").unwrap();
        assert_eq!(kfree.hook.tracepoint(), Some(("skb", "kfree_skb")));
        assert!(kfree.hook.free);
        for group in [
            "link", "link-in", "link-out", "sched", "bridge", "vlan", "vxlan", "bonding", "ipvlan", "ovs",
        ] {
            assert!(c.names().any(|n| n == group), "{group}");
        }
    }

    fn err(yaml: &str) -> String {
        Catalogue::parse(yaml, "test.yaml").unwrap_err().to_string()
    }

    #[test]
    fn every_error_path_has_a_clear_message() {
        let cases = [
            (
                "version: 2\ngroups: [{name: a, hooks: [{name: x}]}]",
                "schema version 2 is not supported",
            ),
            ("groups: []", "missing field `version`"),
            (
                "version: 1\ngroups:\n  - name: a\n    hookz: []",
                "unknown field `hookz`",
            ),
            (
                "version: 1\ngroups:\n  - name: a\n    hooks:\n      - {name: x, kind: f}",
                "line 5",
            ),
            (
                "version: 1\ngroups: [{name: a, hooks: [{name: x, rules: [{level: warn, msg: m, ret: {eq: 1, ne: 2}}]}]}]",
                "exactly one of",
            ),
            (
                "version: 1\ngroups: [{name: a, hooks: [{name: x, rules: [{level: warn, msg: m, ret: some}]}]}]",
                "is not 'any'",
            ),
            (
                "version: 1\ngroups: [{name: a, hooks: [{name: x}, {name: x}]}]",
                "name is used twice",
            ),
            (
                "version: 1\ngroups: [{name: x, hooks: [{name: x}]}]",
                "name is used twice",
            ),
            (
                "version: 1\ngroups: [{name: a, hooks: [{name: x, tp: nocolon}]}]",
                "must look like 'group:event'",
            ),
            ("version: 1\ngroups: [{name: a}]", "group 'a' is empty"),
            (
                "version: 1\ngroups: [{name: 'a b', hooks: [{name: x}]}]",
                "group name 'a b'",
            ),
            (
                "version: 1\ngroups: [{name: a, hooks: [{name: x, free: true, clone: true}]}]",
                "both free and clone",
            ),
            (
                "version: 1\ngroups: [{name: a, hooks: [{name: x, rules: [{level: fatal, msg: m}]}]}]",
                "unknown variant `fatal`",
            ),
            (
                "version: 1\ngroups: [{name: a, hooks: [{name: x, rules: [{level: warn, msg: ' '}]}]}]",
                "empty msg",
            ),
            (
                "version: 1\ngroups: [{name: a, hooks: [{name: x, rules: [{level: warn, msg: m, ret: {eq: 0}, reason: X}]}]}]",
                "use one matcher",
            ),
            (
                "version: 1\ngroups: [{name: a, hooks: [{name: x, rules: [{level: warn, msg: m, reason: X, rst_reason: Y}]}]}]",
                "use one matcher",
            ),
            (
                "version: 1\ngroups: [{name: a, hooks: [{name: x, rules: [{level: warn, msg: m, ret: {range: [5, 1]}}]}]}]",
                "start after end",
            ),
            (
                "version: 1\ngroups: [{name: a, groups: [{name: b, hooks: []}]}]",
                "group 'a > b' is empty",
            ),
            ("version: 1\ngroups: [", "test.yaml"),
        ];
        for (yaml, needle) in cases {
            let e = err(yaml);
            assert!(e.contains(needle), "{yaml:?}: {e}");
            assert!(e.starts_with("test.yaml"), "{e}");
        }
    }

    #[test]
    fn rules_parse() {
        let c = Catalogue::parse(
            "version: 1\ngroups: [{name: a, hooks: [{name: x, rules: [{level: error, msg: dropped, adv: fix it, ret: {range: [1, 5]}}, {level: info, msg: any, ret: any}]}]}]",
            "t",
        )
        .unwrap();
        let r = &c.hooks[0].hook.rules;
        assert_eq!(r[0].level, Level::Error);
        assert_eq!(r[0].ret, Some(RetMatch::Range([1, 5])));
        assert_eq!(r[0].adv.as_deref(), Some("fix it"));
        assert_eq!(r[1].ret, Some(RetMatch::Any));
    }

    fn pack(yaml: &str) -> Result<Catalogue, String> {
        Catalogue::with_pack(yaml, "pack.yaml").map_err(|e| e.to_string())
    }

    #[test]
    fn a_rule_pack_adds_rules_hooks_and_groups() {
        let base = Catalogue::embedded();
        let rules_of = |c: &Catalogue, n: &str| {
            c.hooks
                .iter()
                .find(|h| h.hook.name == n)
                .unwrap()
                .hook
                .rules
                .clone()
        };
        let merged = pack(
            "version: 1\ngroups:\n  - name: mine\n    hooks:\n      - name: kfree_skb\n        rules: [{level: warn, reason: NO_SOCKET, msg: my note}]\n  - name: tcp\n    groups: [{name: tcp-extra, hooks: [{name: tcp_my_func}]}]\n  - name: brand-new\n    hooks: [{name: my_tp, tp: 'my:tp'}]\n",
        )
        .unwrap();
        let before = rules_of(&base, "kfree_skb");
        let after = rules_of(&merged, "kfree_skb");
        assert_eq!(after.len(), before.len() + 1);
        assert_eq!(after[..before.len()], before[..]);
        assert_eq!(after.last().unwrap().msg, "my note");
        // The known hook stays where it was; the pack's group 'mine' held
        // only known hooks, so it is not created.
        let kfree = merged.hooks.iter().find(|h| h.hook.name == "kfree_skb").unwrap();
        assert_eq!(
            kfree.path,
            base.hooks
                .iter()
                .find(|h| h.hook.name == "kfree_skb")
                .unwrap()
                .path
        );
        assert!(!merged.names().any(|n| n == "mine"));
        let new = merged
            .hooks
            .iter()
            .find(|h| h.hook.name == "tcp_my_func")
            .unwrap();
        assert_eq!(new.path.last().map(String::as_str), Some("tcp-extra"));
        assert_eq!(new.path[new.path.len() - 2], "tcp");
        let tp = merged.hooks.iter().find(|h| h.hook.name == "my_tp").unwrap();
        assert_eq!(tp.path, ["brand-new"]);
        assert_eq!(merged.hooks.len(), base.hooks.len() + 2);
    }

    #[test]
    fn rule_pack_errors_name_the_pack() {
        let cases = [
            (
                "version: 1\ngroups: [{name: life, hooks: [{name: kfree_skb, tp: 'skb:other'}]}]",
                "a pack may only add rules",
            ),
            (
                "version: 1\ngroups: [{name: x, hooks: [{name: kfree_skb, rules: [{level: warn, msg: ''}]}]}]",
                "empty msg",
            ),
            // A new hook may not take a name the catalogue gives a group.
            (
                "version: 1\ngroups: [{name: x, hooks: [{name: tcp}]}]",
                "used twice",
            ),
            ("version: 1\ngroups: [{name: x}]", "group 'x' is empty"),
            (
                "version: 1\ngroups:\n  - name: x\n    hooks: [{nme: y}]",
                "line 4",
            ),
            ("version: 3\ngroups: []", "schema version 3"),
        ];
        for (yaml, needle) in cases {
            let e = pack(yaml).unwrap_err();
            assert!(e.starts_with("pack.yaml: "), "{e}");
            assert!(e.contains(needle), "{yaml:?}: {e}");
        }
    }

    #[test]
    fn missing_file_is_an_error() {
        let e = Catalogue::with_pack_file("/nonexistent/hooks.yaml")
            .unwrap_err()
            .to_string();
        assert!(e.starts_with("/nonexistent/hooks.yaml: cannot read"), "{e}");
    }
}
