//! `--diag`: the catalogue's rules applied to what each hook saw, as notes on
//! event lines (`*packet is dropped by kernel*`) and, for a packet where
//! something went wrong, an `ANALYSIS RESULT` block that says what happened,
//! where, and what to do about it.
//!
//! Rules match a drop reason or a TCP reset reason (read from the kernel at
//! the hook), a return value (fexit), or nothing (they fire whenever the
//! hook is reached). Drop reasons carry most of the diagnosis on
//! tracepoint-only kernels.

use colored::Colorize as _;
use nettrace_common::{TraceEvent, trace::event_kind};

use super::print::Reason;
use crate::catalogue::{Level, RetMatch, Rule};

/// A return value as the kernel meant it: 32-bit ints sign-extended.
pub fn signed(v: u64) -> i64 {
    let hi = v >> 32;
    if hi == 0 || hi == 0xffff_ffff {
        v as u32 as i32 as i64
    } else {
        v as i64
    }
}

impl RetMatch {
    pub fn matches(&self, v: i64) -> bool {
        match *self {
            RetMatch::Any => true,
            RetMatch::Eq(x) => v == x,
            RetMatch::Ne(x) => v != x,
            RetMatch::Lt(x) => v < x,
            RetMatch::Gt(x) => v > x,
            RetMatch::Range([a, b]) => (a..=b).contains(&v),
        }
    }
}

/// Does `rule` fire for this event? `reason` is the drop or reset reason
/// the event carries, if any.
pub fn fires(rule: &Rule, ev: &TraceEvent, reason: Option<&Reason>) -> bool {
    if let Some(m) = &rule.ret {
        return ev.kind == event_kind::EXIT && ev.has_extra != 0 && m.matches(signed(ev.extra));
    }
    match (&rule.reason, &rule.rst_reason, reason) {
        (Some(want), _, Some(Reason::Drop(got))) => want == got,
        (_, Some(want), Some(Reason::Reset(got))) => want == got,
        (None, None, _) => true,
        _ => false,
    }
}

/// A rule at warn or error level that fired, with what the report needs.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    pub level: Level,
    pub hook: String,
    pub group: String,
    pub msg: String,
    pub adv: Option<String>,
    pub location: Option<String>,
    pub reason: Option<Reason>,
    /// `--hooks`: netfilter hook functions at the point that dropped it.
    pub blamed: Vec<String>,
}

/// As a `--json` object (inside an `analysis` record): `level`, `hook`,
/// `group`, `msg`, then those present of `adv`, `location`, `reason` or
/// `reset_reason`, `blamed`.
impl serde::Serialize for Finding {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(serde::Serialize)]
        struct Json<'a> {
            level: &'static str,
            hook: &'a str,
            group: &'a str,
            msg: &'a str,
            #[serde(skip_serializing_if = "Option::is_none")]
            adv: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            location: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            reason: Option<&'a str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            reset_reason: Option<&'a str>,
            #[serde(skip_serializing_if = "<[String]>::is_empty")]
            blamed: &'a [String],
        }
        let (reason, reset_reason) = match &self.reason {
            Some(Reason::Drop(r)) => (Some(r.as_str()), None),
            Some(Reason::Reset(r)) => (None, Some(r.as_str())),
            None => (None, None),
        };
        Json {
            level: match self.level {
                Level::Error => "error",
                Level::Warn => "warn",
                Level::Info => "info",
            },
            hook: &self.hook,
            group: &self.group,
            msg: &self.msg,
            adv: self.adv.as_deref(),
            location: self.location.as_deref(),
            reason,
            reset_reason,
            blamed: &self.blamed,
        }
        .serialize(s)
    }
}

/// The `ANALYSIS RESULT` block, compatible with the C nettrace's layout;
/// levels are coloured when output goes to a terminal (`output::Out`).
pub fn report(findings: &[Finding]) -> Vec<String> {
    let mut out = vec!["---------------- ANALYSIS RESULT ---------------------".to_string()];
    for (i, f) in findings.iter().enumerate() {
        let level = match f.level {
            Level::Error => "ERROR".red().bold(),
            Level::Warn => "WARN".yellow().bold(),
            Level::Info => "INFO".normal(),
        };
        out.push(format!("[{}] {level} happens in {}({}):", i + 1, f.hook, f.group));
        out.push(format!("        {}", f.msg));
        if let Some(l) = &f.location {
            out.push("    location:".into());
            out.push(format!("        {l}"));
        }
        match &f.reason {
            Some(Reason::Drop(r)) => out.extend(["    drop reason:".into(), format!("        {r}")]),
            Some(Reason::Reset(r)) => out.extend(["    reset reason:".into(), format!("        {r}")]),
            None => {}
        }
        if !f.blamed.is_empty() {
            out.push(String::new());
            out.push("    following hook functions are blamed:".into());
            out.extend(f.blamed.iter().map(|b| format!("        {b}")));
        }
        if let Some(a) = &f.adv {
            out.push(String::new());
            out.push("    fix advice:".into());
            out.push(format!("        {a}"));
        }
        out.push(String::new());
    }
    out.push("analysis finished!".into());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(yaml: &str) -> Rule {
        serde_yaml::from_str(yaml).unwrap()
    }

    fn ev(kind: u8, extra: u64) -> TraceEvent {
        // SAFETY: plain data.
        let mut e: TraceEvent = unsafe { std::mem::zeroed() };
        e.kind = kind;
        e.has_extra = 1;
        e.extra = extra;
        e
    }

    #[test]
    fn return_value_matchers() {
        let minus_one = (-1i64) as u64 & 0xffff_ffff;
        assert_eq!(signed(minus_one), -1);
        assert_eq!(signed(1), 1);
        let r = rule("{level: error, msg: dropped, ret: {lt: 0}}");
        assert!(fires(&r, &ev(event_kind::EXIT, minus_one), None));
        assert!(!fires(&r, &ev(event_kind::EXIT, 1), None));
        // A return-value rule never fires on an entry event.
        assert!(!fires(&r, &ev(event_kind::ENTRY, minus_one), None));
        assert!(RetMatch::Range([1, 3]).matches(3) && !RetMatch::Range([1, 3]).matches(4));
        assert!(RetMatch::Ne(0).matches(2) && RetMatch::Gt(0).matches(1) && RetMatch::Any.matches(-9));
        assert!(RetMatch::Eq(7).matches(7));
    }

    #[test]
    fn reason_and_unconditional_rules() {
        let r = rule("{level: error, msg: m, reason: NETFILTER_DROP}");
        let e = ev(event_kind::ENTRY, 12);
        let drop = |n: &str| Reason::Drop(n.into());
        let reset = |n: &str| Reason::Reset(n.into());
        assert!(fires(&r, &e, Some(&drop("NETFILTER_DROP"))));
        assert!(!fires(&r, &e, Some(&drop("NO_SOCKET"))));
        // A drop-reason rule does not match a reset reason of the same name.
        assert!(!fires(&r, &e, Some(&reset("NETFILTER_DROP"))));
        assert!(!fires(&r, &e, None));
        let rst = rule("{level: warn, msg: m, rst_reason: NO_SOCKET}");
        assert!(fires(&rst, &e, Some(&reset("NO_SOCKET"))));
        assert!(!fires(&rst, &e, Some(&drop("NO_SOCKET"))));
        assert!(!fires(&rst, &e, Some(&reset("TCP_STATE"))));
        assert!(fires(&rule("{level: info, msg: freed}"), &e, None));
    }

    /// Every drop reason and reset reason the running kernel can report
    /// has a rule that explains it (the catalogue is the diagnosis on
    /// tracepoint-only kernels).
    #[test]
    fn every_reason_of_the_running_kernel_has_a_rule() {
        use crate::{
            catalogue::Catalogue,
            kernel::{
                btf::{KernelBtf, VMLINUX_BTF},
                reasons::DropReasons,
            },
        };
        let btf = KernelBtf::from_file(VMLINUX_BTF).unwrap();
        let cat = Catalogue::embedded();
        let rules = |hook: &str| {
            cat.hooks
                .iter()
                .find(|h| h.hook.name == hook)
                .unwrap()
                .hook
                .rules
                .clone()
        };
        let drops = DropReasons::from_btf(&btf).unwrap();
        let kfree = rules("kfree_skb");
        // The two values below the reasons mean "not dropped".
        let missing: Vec<&str> = drops
            .names()
            .filter(|n| *n != "SKB_NOT_DROPPED_YET" && *n != "SKB_CONSUMED")
            .filter(|n| !kfree.iter().any(|r| r.reason.as_deref() == Some(*n)))
            .collect();
        assert!(drops.names().count() > 50 && missing.is_empty(), "{missing:?}");
        let resets = DropReasons::resets_from_btf(&btf).unwrap();
        let send_reset = rules("tcp_send_reset");
        let missing: Vec<&str> = resets
            .names()
            .filter(|n| !send_reset.iter().any(|r| r.rst_reason.as_deref() == Some(*n)))
            .collect();
        assert!(resets.names().count() > 10 && missing.is_empty(), "{missing:?}");
    }

    #[test]
    fn report_layout() {
        colored::control::set_override(false);
        let f = Finding {
            level: Level::Error,
            hook: "kfree_skb".into(),
            group: "life".into(),
            msg: "packet is dropped by kernel".into(),
            adv: Some("check your netfilter rule".into()),
            location: Some("nf_hook_slow+0x96".into()),
            reason: Some(Reason::Drop("NETFILTER_DROP".into())),
            blamed: vec!["nft_do_chain_inet".into()],
        };
        assert_eq!(
            report(std::slice::from_ref(&f)),
            [
                "---------------- ANALYSIS RESULT ---------------------",
                "[1] ERROR happens in kfree_skb(life):",
                "        packet is dropped by kernel",
                "    location:",
                "        nf_hook_slow+0x96",
                "    drop reason:",
                "        NETFILTER_DROP",
                "",
                "    following hook functions are blamed:",
                "        nft_do_chain_inet",
                "",
                "    fix advice:",
                "        check your netfilter rule",
                "",
                "analysis finished!",
            ]
        );
        let reset = Finding {
            level: Level::Warn,
            adv: None,
            location: None,
            reason: Some(Reason::Reset("NO_SOCKET".into())),
            ..f.clone()
        };
        assert_eq!(
            serde_json::to_string(&[f, reset]).unwrap(),
            r#"[{"level":"error","hook":"kfree_skb","group":"life","msg":"packet is dropped by kernel","adv":"check your netfilter rule","location":"nf_hook_slow+0x96","reason":"NETFILTER_DROP","blamed":["nft_do_chain_inet"]},{"level":"warn","hook":"kfree_skb","group":"life","msg":"packet is dropped by kernel","reset_reason":"NO_SOCKET","blamed":["nft_do_chain_inet"]}]"#
        );
    }
}
