//! The schema of `rules/hooks.yaml` and of rule packs, as serde reads it:
//! groups of hooks, each hook with its diagnosis rules. Unknown fields are
//! errors (with line numbers); what serde cannot express is `validate`'s.

use serde::Deserialize;

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct File {
    pub(super) version: u32,
    pub(super) groups: Vec<Group>,
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
