//! Loading and attaching the planned hooks: one program per slot, each by
//! its backend; what failed, and the warnings the user gets about it.

use std::{collections::BTreeMap, path::Path};

use aya::{Btf, Ebpf, maps::HashMap as BpfHashMap};
use nettrace_common::{TraceConfig, trace::slot_flags};

use super::Prepared;
use crate::{
    attach::{self, Target, chain},
    plan::{Backend, Plan, Planned},
};

/// Fills the slot table of the eBPF configuration from the plan.
pub fn configure(trace: &mut TraceConfig, plan: &Plan) {
    for p in &plan.hooks {
        trace.slots[p.slot as usize] = p.config;
    }
}

/// What attaching achieved, for `--debug` and the printer.
pub struct Attached {
    /// Per catalogue hook: backend used, or why not.
    pub report: Vec<(String, Result<Backend, String>)>,
    pub names_by_slot: Vec<String>,
    /// Catalogue index of each slot's hook.
    pub hook_by_slot: Vec<usize>,
    pub free_by_slot: Vec<bool>,
    /// Hooks that fell back from fentry to a kprobe, and why (`--debug`).
    pub fallbacks: Vec<(String, String)>,
    /// Slots whose extra value is a TCP reset reason.
    pub reset_by_slot: Vec<bool>,
    /// Each slot's `slot_flags`.
    pub flags_by_slot: Vec<u32>,
    pub counts: BTreeMap<String, usize>,
    /// One line each (without the `nettrace: ` prefix), for stderr once
    /// tracing can start: named hooks this kernel lacks, and with `--force`
    /// named hooks that could not be attached.
    pub warnings: Vec<String>,
    /// Attached hooks that may start following a packet.
    pub matchers_attached: usize,
}

/// Loads and attaches every planned hook. A hook that fails is reported
/// and skipped, unless it was named explicitly (then it is an error, or
/// with `--force` a warning). A named hook this kernel lacks is a warning.
pub fn attach(
    ebpf: &mut Ebpf,
    plan: &Plan,
    btf: &Btf,
    kprobe_fallback: bool,
    tracefs_root: Option<&Path>,
    prepared: &Prepared,
) -> anyhow::Result<Attached> {
    let mut report: Vec<(String, Result<Backend, String>)> = plan
        .skipped
        .iter()
        .map(|(n, why)| (n.clone(), Err(why.clone())))
        .collect();
    let mut names_by_slot = vec![String::new(); plan.hooks.len()];
    let mut hook_by_slot = vec![0; plan.hooks.len()];
    let mut free_by_slot = vec![false; plan.hooks.len()];
    let mut reset_by_slot = vec![false; plan.hooks.len()];
    let mut flags_by_slot = vec![0; plan.hooks.len()];
    let mut fallbacks = Vec::new();
    let mut warnings = Vec::new();
    let mut matchers_attached = 0;
    preload(ebpf, plan, btf);
    for p in &plan.hooks {
        let result = match attach_planned(ebpf, p, btf, tracefs_root, kprobe_fallback) {
            Ok((backend, Some(fentry_failed))) => {
                fallbacks.push((p.name.clone(), fentry_failed));
                Ok(backend)
            }
            Ok((backend, None)) => Ok(backend),
            Err(why) => Err(why),
        };
        if let Err(why) = &result
            && prepared.explicit.contains(&p.hook)
        {
            cannot_attach(prepared, &mut warnings, &p.name, why)?;
        }
        names_by_slot[p.slot as usize] = p.name.clone();
        hook_by_slot[p.slot as usize] = p.hook;
        free_by_slot[p.slot as usize] = p.config.flags & slot_flags::FREE != 0;
        reset_by_slot[p.slot as usize] = p.config.flags & slot_flags::RESET_REASON != 0;
        flags_by_slot[p.slot as usize] = p.config.flags;
        matchers_attached += usize::from(result.is_ok() && p.config.flags & slot_flags::MATCHER != 0);
        report.push((p.name.clone(), result));
    }
    for &i in prepared.named.union(&prepared.explicit) {
        let name = &prepared.catalogue.hooks[i].hook.name;
        let Some((_, why)) = plan.skipped.iter().find(|(n, _)| n == name) else {
            continue;
        };
        if plan.missing.contains(&i) {
            warnings.push(format!("skipping {name}: {why}"));
        } else if prepared.explicit.contains(&i) {
            cannot_attach(prepared, &mut warnings, name, why)?;
        }
    }
    let group_missing: Vec<&str> = prepared
        .in_named_groups
        .intersection(&plan.missing)
        .map(|&i| prepared.catalogue.hooks[i].hook.name.as_str())
        .collect();
    if !group_missing.is_empty() {
        warnings.push(missing_members(&group_missing));
    }
    let mut counts = BTreeMap::new();
    for (_, r) in &report {
        if let Ok(b) = r {
            *counts.entry(b.to_string()).or_insert(0) += 1;
        }
    }
    Ok(Attached {
        report,
        names_by_slot,
        hook_by_slot,
        free_by_slot,
        fallbacks,
        reset_by_slot,
        flags_by_slot,
        counts,
        warnings,
        matchers_attached,
    })
}

/// The slot's program for `backend` (`tp_btf_3`, `fentry_17`, …).
fn program_name(backend: Backend, slot: u32) -> String {
    match backend {
        Backend::TpBtf => format!("tp_btf_{slot}"),
        Backend::Fentry => format!("fentry_{slot}"),
        Backend::Fexit => format!("fexit_{slot}"),
        Backend::Kprobe => format!("kprobe_{slot}"),
        Backend::Tracepoint => "trace_tracepoint".into(),
    }
}

/// Verifies the planned tp_btf, fentry and fexit programs in parallel
/// before they are attached in order (`attach::preload`).
fn preload(ebpf: &mut Ebpf, plan: &Plan, btf: &Btf) {
    let names: Vec<String> = plan
        .hooks
        .iter()
        .map(|p| program_name(p.backend, p.slot))
        .collect();
    let targets: Vec<Target<'_>> = plan
        .hooks
        .iter()
        .zip(&names)
        .map(|(p, program)| match (p.backend, &p.tracepoint) {
            (Backend::TpBtf, Some((group, event))) => Target::tracepoint(p.backend, program, group, event),
            (b, _) => Target::function(b, program, &p.name),
        })
        .collect();
    attach::preload(ebpf, btf, &targets);
}

/// One line for the members of named groups this kernel lacks.
fn missing_members(names: &[&str]) -> String {
    const SHOWN: usize = 4;
    let mut list = names[..names.len().min(SHOWN)].join(", ");
    if names.len() > SHOWN {
        list += &format!(" and {} more", names.len() - SHOWN);
    }
    let hooks = if names.len() == 1 { "hook" } else { "hooks" };
    format!(
        "skipping {} {hooks} of the named groups not in this kernel: {list} (--debug lists every hook)",
        names.len()
    )
}

/// A hook named in `-t` that this kernel has but that cannot be attached:
/// an error, or with `--force` a warning.
fn cannot_attach(
    prepared: &Prepared,
    warnings: &mut Vec<String>,
    name: &str,
    why: &str,
) -> anyhow::Result<()> {
    if !prepared.force {
        anyhow::bail!("cannot attach hook {name}: {why} (--force skips it)");
    }
    warnings.push(format!("skipping {name}: cannot attach: {why}"));
    Ok(())
}

/// Attaches a planned hook by its backend; a planned fentry falls back to
/// a kprobe when `kprobe_fallback` (kprobes work and `--backend` allows).
/// Returns the backend used and, after a fallback, why fentry failed; or
/// why it failed: the backend's reason alone, or both when both were tried.
fn attach_planned(
    ebpf: &mut Ebpf,
    p: &Planned,
    btf: &Btf,
    tracefs_root: Option<&Path>,
    kprobe_fallback: bool,
) -> Result<(Backend, Option<String>), String> {
    let slot = p.slot;
    let (group, event) = p
        .tracepoint
        .as_ref()
        .map_or(("", ""), |(g, e)| (g.as_str(), e.as_str()));
    if p.backend == Backend::Tracepoint {
        route_tracepoint(ebpf, slot, tracefs_root, group, event)?;
    }
    let program = program_name(p.backend, slot);
    let target = match p.backend {
        Backend::TpBtf | Backend::Tracepoint if event.is_empty() => {
            return Err("tracepoint hook without tracepoint".into());
        }
        Backend::TpBtf | Backend::Tracepoint => Target::tracepoint(p.backend, &program, group, event),
        b => Target::function(b, &program, &p.name),
    };
    let first = attach::attach(ebpf, Some(btf), &target);
    match first {
        Ok(()) => Ok((p.backend, None)),
        Err(e) if kprobe_fallback && p.backend == Backend::Fentry => {
            let kprobe = format!("kprobe_{slot}");
            match attach::attach(
                ebpf,
                Some(btf),
                &Target::function(Backend::Kprobe, &kprobe, &p.name),
            ) {
                Ok(()) => Ok((Backend::Kprobe, Some(e))),
                Err(k) => Err(format!("fentry: {e}; kprobe: {k}")),
            }
        }
        Err(e) => Err(e),
    }
}

/// The classic tracepoint program is one for every tracepoint: it finds
/// its slot by the tracepoint's id in `TP_SLOTS`.
fn route_tracepoint(
    ebpf: &mut Ebpf,
    slot: u32,
    tracefs_root: Option<&Path>,
    group: &str,
    event: &str,
) -> Result<(), String> {
    let root = tracefs_root.ok_or("no tracefs")?;
    let id: u32 = std::fs::read_to_string(root.join("events").join(group).join(event).join("id"))
        .map_err(chain)?
        .trim()
        .parse()
        .map_err(chain)?;
    let mut slots: BpfHashMap<_, u32, u32> =
        BpfHashMap::try_from(ebpf.map_mut("TP_SLOTS").ok_or("map TP_SLOTS missing")?).map_err(chain)?;
    slots.insert(&id, &slot, 0).map_err(chain)
}

/// Nothing of the selection can be attached: the one-line error (exit 2),
/// naming why
/// for the hooks the user named (up to three), else pointing at --debug.
pub fn nothing_attached(failed: &[(String, String)], prepared: &Prepared) -> String {
    let named: Vec<String> = failed
        .iter()
        .filter(|(n, _)| {
            prepared
                .named
                .iter()
                .any(|&i| prepared.catalogue.hooks[i].hook.name == *n)
        })
        .map(|(n, why)| format!("{n}: {}", why.lines().next().unwrap_or("")))
        .collect();
    let more = named.len().saturating_sub(3);
    let mut msg = "no hook could be attached".to_string();
    if named.is_empty() {
        msg += " (run with --debug to see why each was skipped)";
    } else {
        msg += &format!(" ({}", named[..named.len().min(3)].join("; "));
        if more > 0 {
            msg += &format!("; {more} more, --debug lists them");
        }
        msg += ")";
    }
    msg
}
