//! The probe plan: for each selected hook, how it will be attached on this
//! kernel (and through which argument the skb arrives), or why it is skipped.
//!
//! Decided from BTF (does the function/tracepoint exist, where is its
//! `struct sk_buff *`), tracefs (classic tracepoint records) and the
//! capability probes — never from the kernel version.

use std::{collections::HashMap, path::Path};

use nettrace_common::{
    KernelLayout,
    trace::{HookSlot, MAX_SLOTS, slot_flags},
};

use crate::{
    catalogue::{Catalogue, NfContext, Selection},
    cli::BackendChoice,
    kernel::{
        btf::{KernelBtf, TpArg},
        caps::Capabilities,
        tracefs,
    },
};

pub use crate::attach::Backend;

/// A hook that will be attached.
#[derive(Clone, Debug)]
pub struct Planned {
    /// Index into `Catalogue::hooks`.
    pub hook: usize,
    pub name: String,
    pub slot: u32,
    pub backend: Backend,
    pub config: HookSlot,
    /// Tracepoint `(group, event)` for tracepoint backends.
    pub tracepoint: Option<(String, String)>,
}

/// What the user asked for beyond the hook set.
#[derive(Clone, Debug, Default)]
pub struct PlanOptions {
    pub backend: Option<BackendChoice>,
    pub matchers: Option<Selection>,
    pub frees: Option<Selection>,
    pub stacks: Selection,
    pub want_ret: bool,
    pub no_clone: bool,
    /// `--diag`: hooks with return-value rules are attached at exit.
    pub diag: bool,
    /// `--hooks`: hooks that report drop reasons also report the netfilter
    /// hook functions (and a stack, to tell the hook point) on NETFILTER_DROP.
    pub nf_hooks: bool,
    /// `--hooks` on a kernel without drop reasons (before 5.17): hooks that
    /// report a drop's location do it instead (a free inside `nf_hook_slow`
    /// is netfilter's drop).
    pub nf_hooks_by_location: bool,
}

/// Where a netfilter function's context arguments are (by type; `priv`
/// pointers are `void *` in recent kernels). Nothing is set when a type is
/// missing or beyond the arguments the programs read.
fn nf_context(cfg: &mut HookSlot, nf: NfContext, params: &[TpArg]) {
    let state = position(params, "struct nf_hook_state *");
    let typed_or_priv = |ty: &str| position(params, ty).or_else(|| position(params, "void *"));
    let (flag, a, b) = match nf {
        NfContext::State => (slot_flags::NF_STATE, state, Some(0)),
        NfContext::XtTable => (slot_flags::NF_XT_TABLE, typed_or_priv("struct xt_table *"), state),
        NfContext::NftChain => (
            slot_flags::NF_NFT_CHAIN,
            position(params, "struct nft_pktinfo *"),
            typed_or_priv("struct nft_chain *"),
        ),
    };
    if let (Some(a), Some(b)) = (a, b)
        && a <= MAX_ARG
        && b <= MAX_ARG
    {
        cfg.nf_arg = a;
        cfg.nf_arg2 = b;
        cfg.flags |= flag;
    }
}

/// Flags for a hook whose argument or record field of type `ty` is worth
/// reporting: a drop reason or a TCP reset reason.
fn reason_flags(ty: &str, opts: &PlanOptions) -> Option<u32> {
    match ty {
        DROP_REASON => Some(drop_reason_flags(opts)),
        RESET_REASON => Some(slot_flags::EXTRA | slot_flags::RESET_REASON),
        _ => None,
    }
}

/// Flags for a hook that reports where it freed a packet but no drop reason
/// (kfree_skb before 5.17): with `--hooks` there, the location tells
/// netfilter's drops.
fn location_flags(flags: u32, opts: &PlanOptions) -> u32 {
    if opts.nf_hooks_by_location && flags & slot_flags::EXTRA == 0 {
        drop_reason_flags(opts) & !slot_flags::EXTRA
    } else {
        0
    }
}

/// Flags for a hook that reports drop reasons.
fn drop_reason_flags(opts: &PlanOptions) -> u32 {
    let nf = if opts.nf_hooks {
        slot_flags::NF_HOOKS | slot_flags::STACK
    } else {
        0
    };
    slot_flags::EXTRA | nf
}

#[derive(Debug, Default)]
pub struct Plan {
    pub hooks: Vec<Planned>,
    /// (hook name, reason) for hooks that will not be attached.
    pub skipped: Vec<(String, String)>,
    /// Catalogue indices of the skipped hooks this kernel does not have at
    /// all (renamed, inlined, compiled out, module not loaded), as opposed
    /// to hooks it has but that cannot be attached here.
    pub missing: Selection,
}

/// Why a hook is missing: neither a function in BTF nor a tracepoint.
pub const NOT_IN_KERNEL: &str = "not in this kernel (no BTF function, no tracepoint)";

/// Index of the only/first argument of type `ty`.
fn position(args: &[TpArg], ty: &str) -> Option<u32> {
    args.iter().position(|a| a.ty == ty).map(|i| i as u32)
}

const SKB: &str = "struct sk_buff *";
const DROP_REASON: &str = "enum skb_drop_reason";
const RESET_REASON: &str = "enum sk_rst_reason";
/// Arguments the entry points can read (registers on x86-64 for kprobes,
/// and the `arg_at!` arms for BTF contexts).
const MAX_ARG: u32 = 4;

pub fn build(
    cat: &Catalogue,
    selected: &Selection,
    btf: &KernelBtf,
    caps: &Capabilities,
    tracefs_root: Option<&Path>,
    opts: &PlanOptions,
) -> Plan {
    let mut plan = Plan::default();
    let tp_btf_ok = caps.tp_btf.is_ok() && !matches!(opts.backend, Some(BackendChoice::Tracepoint));
    let classic_ok = caps.tracepoint.is_ok()
        && tracefs_root.is_some()
        && !matches!(opts.backend, Some(BackendChoice::TpBtf));
    let fentry_ok = caps.fentry.is_ok() && !matches!(opts.backend, Some(BackendChoice::Kprobe));
    let kprobe_ok = caps.kprobe.is_ok() && !matches!(opts.backend, Some(BackendChoice::Fentry));
    let mut formats: HashMap<(String, String), Option<HashMap<String, tracefs::Field>>> = HashMap::new();
    let mut modules: HashMap<String, Option<KernelBtf>> = HashMap::new();

    for &i in selected {
        let h = &cat.hooks[i].hook;
        let skip = |plan: &mut Plan, why: String| plan.skipped.push((h.name.clone(), why));
        if plan.hooks.len() >= MAX_SLOTS {
            skip(&mut plan, format!("more than {MAX_SLOTS} hooks selected"));
            continue;
        }
        let mut flags = 0;
        if opts.matchers.as_ref().is_none_or(|m| m.contains(&i)) {
            flags |= slot_flags::MATCHER;
        }
        let free = match &opts.frees {
            Some(f) => f.contains(&i),
            None => h.free,
        };
        if free {
            flags |= slot_flags::FREE;
        }
        if opts.stacks.contains(&i) {
            flags |= slot_flags::STACK;
        }
        let slot = plan.hooks.len() as u32;
        let mut cfg = HookSlot {
            skb_arg: 0,
            extra_arg: KernelLayout::NONE,
            ret_arg: KernelLayout::NONE,
            loc_arg: KernelLayout::NONE,
            flags,
            nf_arg: KernelLayout::NONE,
            nf_arg2: KernelLayout::NONE,
            skb_member: KernelLayout::NONE,
            _pad: 0,
        };

        if let Some((group, event)) = h.tracepoint() {
            let tp = Some((group.to_string(), event.to_string()));
            if tp_btf_ok && let Ok(args) = btf.tracepoint_args(event) {
                let Some(skb) = position(&args, SKB).filter(|&p| p <= 5) else {
                    skip(&mut plan, "tracepoint has no sk_buff argument".into());
                    continue;
                };
                cfg.skb_arg = skb;
                let reason = args
                    .iter()
                    .enumerate()
                    .find_map(|(i, a)| Some((i as u32, reason_flags(&a.ty, opts)?)))
                    .filter(|&(r, _)| r <= 5);
                if let Some((r, flags)) = reason {
                    cfg.extra_arg = r;
                    cfg.flags |= flags;
                }
                if cfg.flags & slot_flags::RESET_REASON == 0 {
                    // Where the drop (or free) happened: `location`, else the
                    // first `void *` — also on kernels whose kfree_skb has no
                    // reason (before 5.17), where it is all diagnosis has.
                    let by_name = args.iter().position(|a| a.name == "location").map(|i| i as u32);
                    if let Some(l) = by_name.or_else(|| position(&args, "void *")).filter(|&l| l <= 5) {
                        cfg.loc_arg = l;
                        cfg.flags |= slot_flags::LOCATION | location_flags(cfg.flags, opts);
                    }
                }
                plan.hooks.push(Planned {
                    hook: i,
                    name: h.name.clone(),
                    slot,
                    backend: Backend::TpBtf,
                    config: cfg,
                    tracepoint: tp,
                });
                continue;
            }
            // Does the kernel have it at all: BTF's `btf_trace_<event>`, or
            // tracefs's event directory.
            let exists = || {
                btf.tracepoint_args(event).is_ok()
                    || tracefs_root.is_some_and(|r| r.join("events").join(group).join(event).is_dir())
            };
            if !classic_ok {
                if exists() {
                    skip(
                        &mut plan,
                        "neither tp_btf nor classic tracepoints usable here".into(),
                    );
                } else {
                    plan.missing.insert(i);
                    skip(&mut plan, NOT_IN_KERNEL.into());
                }
                continue;
            }
            let fmt = formats
                .entry((group.to_string(), event.to_string()))
                .or_insert_with(|| tracefs_root.and_then(|r| tracefs::format(r, group, event).ok()));
            let Some(fmt) = fmt else {
                if exists() {
                    skip(&mut plan, "tracepoint format unreadable in tracefs".into());
                } else {
                    plan.missing.insert(i);
                    skip(&mut plan, NOT_IN_KERNEL.into());
                }
                continue;
            };
            let Some(skb) = fmt.get("skbaddr") else {
                skip(&mut plan, "classic tracepoint record has no skbaddr field".into());
                continue;
            };
            cfg.skb_arg = skb.offset;
            if let Some(r) = fmt.get("reason")
                && let Some(flags) = reason_flags(&r.ty, opts)
            {
                cfg.extra_arg = r.offset;
                cfg.flags |= flags;
            }
            if let Some(l) = fmt.get("location") {
                cfg.loc_arg = l.offset;
                cfg.flags |= slot_flags::LOCATION | location_flags(cfg.flags, opts);
            }
            plan.hooks.push(Planned {
                hook: i,
                name: h.name.clone(),
                slot,
                backend: Backend::Tracepoint,
                config: cfg,
                tracepoint: tp,
            });
            continue;
        }

        // A kernel function, described by vmlinux's BTF or, when it lives in
        // a module, by the module's.
        let module_btf = match &h.module {
            Some(m) if !btf.has_function(&h.name) => {
                match modules.entry(m.clone()).or_insert_with(|| btf.module(m)) {
                    Some(b) => Some(&*b),
                    None => {
                        plan.missing.insert(i);
                        // Loaded without BTF of its own: kernels before 5.11
                        // (or without CONFIG_DEBUG_INFO_BTF_MODULES) cannot
                        // describe its functions' arguments.
                        let why = if std::path::Path::new("/sys/module").join(m).is_dir() {
                            format!(
                                "not describable here (module {m} has no BTF: Linux 5.11+ with CONFIG_DEBUG_INFO_BTF_MODULES)"
                            )
                        } else {
                            format!("not in this kernel (module {m} is not loaded)")
                        };
                        skip(&mut plan, why);
                        continue;
                    }
                }
            }
            _ => None,
        };
        let fbtf = module_btf.unwrap_or(btf);
        let Some(params) = fbtf.function_params(&h.name) else {
            plan.missing.insert(i);
            skip(&mut plan, NOT_IN_KERNEL.into());
            continue;
        };
        let Some(skb) = position(&params, SKB).or_else(|| {
            // Or a struct argument that carries it (`nft_pktinfo.skb`).
            let (i, off) = params.iter().enumerate().find_map(|(i, p)| {
                let name = p.ty.strip_prefix("struct ")?.strip_suffix(" *")?;
                Some((i, fbtf.member_offset(name, &["skb"]).ok()?))
            })?;
            cfg.skb_member = off;
            Some(i as u32)
        }) else {
            skip(&mut plan, "function has no sk_buff argument".into());
            continue;
        };
        if skb > MAX_ARG {
            skip(
                &mut plan,
                format!("sk_buff is argument {skb}, beyond the first {}", MAX_ARG + 1),
            );
            continue;
        }
        cfg.skb_arg = skb;
        if opts.diag
            && let Some(nf) = h.nf
        {
            nf_context(&mut cfg, nf, &params);
        }
        // Diagnosis rules on the return value need fexit too.
        let ret_rules = opts.diag && h.rules.iter().any(|r| r.ret.is_some());
        let needs_exit = opts.want_ret || ret_rules || (h.clone && !opts.no_clone);
        // aya loads fentry programs against vmlinux's BTF only: module
        // functions attach with kprobes.
        let backend = if fentry_ok && module_btf.is_none() {
            if needs_exit {
                cfg.ret_arg = params.len() as u32;
                if cfg.ret_arg > 5 {
                    skip(&mut plan, "too many arguments to read the return value".into());
                    continue;
                }
                if h.clone && !opts.no_clone {
                    cfg.flags |= slot_flags::CLONE;
                }
                Backend::Fexit
            } else {
                Backend::Fentry
            }
        } else if kprobe_ok {
            Backend::Kprobe
        } else {
            skip(&mut plan, "no fentry or kprobe on this kernel".into());
            continue;
        };
        plan.hooks.push(Planned {
            hook: i,
            name: h.name.clone(),
            slot,
            backend,
            config: cfg,
            tracepoint: None,
        });
    }
    plan
}

#[cfg(test)]
#[path = "plan_tests.rs"]
mod tests;
