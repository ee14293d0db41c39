//! Lifecycle mode (the default): follow each matching packet through the
//! kernel, hook by hook, until it is freed.
//!
//! `prepare` resolves the hook names the user typed against the catalogue;
//! `crate::plan` decides how each hook attaches here; `attach` loads the
//! per-slot programs; `LifecycleSink` groups events per packet and prints.

mod attach;
pub mod diag;
pub mod frame;
pub mod netfilter;
pub mod print;
mod records;
pub mod track;

use aya::Ebpf;

mod mode;
mod sink;

pub use self::attach::{attach, configure, nothing_attached};
pub use self::{mode::Lifecycle, sink::LifecycleSink};
use crate::{
    catalogue::{Catalogue, Selection, select},
    cli,
    plan::PlanOptions,
};

/// The user's hook choices, resolved against the catalogue.
pub struct Prepared {
    pub catalogue: Catalogue,
    pub selected: Selection,
    /// Hooks named one by one in `-t` (not via a group): failing to attach
    /// one of these is an error (without `--force`), not a note.
    pub explicit: Selection,
    /// Hooks the user named, by name in `-t`, `--trace-matcher`,
    /// `--trace-free` or `--trace-stack`: one of these that this kernel
    /// lacks is skipped with a warning line.
    pub named: Selection,
    /// Members of groups named in `-t`: those this kernel lacks are
    /// summed up in one warning line.
    pub in_named_groups: Selection,
    /// `--force`: skip what cannot be attached, with a warning each.
    pub force: bool,
    pub opts: PlanOptions,
}

/// Resolves `-t`, `--trace-*` lists and `--rules`; errors are usage errors.
pub fn prepare(l: &cli::Lifecycle) -> Result<Prepared, String> {
    let catalogue = match &l.rules {
        Some(path) => Catalogue::with_pack_file(path).map_err(|e| format!("--rules {e}"))?,
        None => Catalogue::embedded(),
    };
    let mut selected = if l.monitor {
        // `--monitor`: the catalogue's low-overhead anomaly set.
        catalogue
            .hooks
            .iter()
            .enumerate()
            .filter(|(_, h)| h.hook.monitor)
            .map(|(i, _)| i)
            .collect()
    } else {
        select(&catalogue, l.trace.as_deref(), "--trace")?
    };
    if let Some(x) = &l.exclude {
        for i in select(&catalogue, Some(x), "--trace-exclude")? {
            selected.remove(&i);
        }
        if selected.is_empty() {
            return Err("--trace-exclude removes every selected hook".into());
        }
    }
    // `--latency` reports a life at the hook that ends it: with none among
    // the traced hooks (`-t tcp_queue_rcv`) nothing could ever print, so the
    // catalogue's default frees (consume_skb, kfree_skb) end the lives.
    if l.latency.is_some() && l.free.is_none() && !selected.iter().any(|&i| catalogue.hooks[i].hook.free) {
        let frees: Vec<usize> = (0..catalogue.hooks.len())
            .filter(|&i| catalogue.hooks[i].hook.free && catalogue.hooks[i].hook.default)
            .collect();
        let names: Vec<&str> = frees
            .iter()
            .map(|&i| catalogue.hooks[i].hook.name.as_str())
            .collect();
        eprintln!(
            "nettrace: --latency: no traced hook ends a packet's life; {} end them",
            names.join(", ")
        );
        selected.extend(frees);
    }
    let explicit = l
        .trace
        .as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter_map(|n| catalogue.hooks.iter().position(|h| h.hook.name == n))
        .filter(|i| selected.contains(i))
        .collect();
    let (named, in_named_groups) = named_hooks(&catalogue, l, &selected);
    let list = |v: &Option<String>, flag: &str| {
        v.as_deref()
            .map(|s| select(&catalogue, Some(s), flag))
            .transpose()
    };
    let opts = PlanOptions {
        backend: None,
        matchers: list(&l.matcher, "--trace-matcher")?,
        frees: list(&l.free, "--trace-free")?,
        stacks: list(&l.stack, "--trace-stack")?.unwrap_or_default(),
        want_ret: l.ret,
        no_clone: l.noclone,
        diag: l.diag.is_some(),
        nf_hooks: l.diag.is_some_and(|d| d.hooks),
        nf_hooks_by_location: false,
    };
    Ok(Prepared {
        catalogue,
        selected,
        explicit,
        named,
        in_named_groups,
        force: false,
        opts,
    })
}

/// The selected hooks the user named, and those in groups named in `-t`
/// (see `Prepared::named`).
fn named_hooks(catalogue: &Catalogue, l: &cli::Lifecycle, selected: &Selection) -> (Selection, Selection) {
    let lists = [&l.trace, &l.matcher, &l.free, &l.stack];
    let mut named = Selection::new();
    let mut in_groups = Selection::new();
    for (k, list) in lists.into_iter().enumerate() {
        for name in list.as_deref().unwrap_or("").split(',').map(str::trim) {
            if name.is_empty() || name == "all" {
                continue;
            }
            match catalogue.hooks.iter().position(|h| h.hook.name == name) {
                Some(i) => {
                    named.insert(i);
                }
                // A group named in -t: its members (as -t selects them).
                None if k == 0 => in_groups.extend(select(catalogue, Some(name), "-t").unwrap_or_default()),
                None => {}
            }
        }
    }
    named.retain(|i| selected.contains(i));
    in_groups.retain(|i| selected.contains(i) && !named.contains(i));
    (named, in_groups)
}

/// Groups events per packet (or prints them as they come with `--basic`).
/// What `--diag` needs per slot.
pub struct DiagState {
    pub opts: crate::cli::Diag,
    pub rules_by_slot: Vec<Vec<crate::catalogue::Rule>>,
    /// Top-level catalogue group of each slot's hook (`life`, `ip`, …).
    pub group_by_slot: Vec<String>,
    /// Kernels without drop reasons: where `nf_hook_slow` is (start,
    /// length); a `kfree_skb` there is diagnosed as NETFILTER_DROP.
    pub netfilter_drop_at: Option<(u64, u64)>,
    /// `--hooks`.
    pub nf_hooks: Option<netfilter::NfHooks>,
    /// Hook point / table / chain notes, and each slot's flags saying which
    /// context its hook reads.
    pub nf_notes: netfilter::NfNotes,
    pub flags_by_slot: Vec<u32>,
}

/// `--func-stats`: the kernel's per-slot event counts.
pub struct FuncStats(aya::maps::PerCpuArray<aya::maps::MapData, u64>);

impl FuncStats {
    pub fn take(ebpf: &mut Ebpf) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let map = ebpf.take_map("FUNC_STATS").context("map FUNC_STATS missing")?;
        Ok(Self(aya::maps::PerCpuArray::try_from(map)?))
    }

    /// Counts of slots `0..slots`, summed over CPUs.
    pub fn read(&self, slots: usize) -> anyhow::Result<Vec<u64>> {
        (0..slots as u32)
            .map(|i| Ok(self.0.get(&i, 0)?.iter().sum()))
            .collect()
    }
}
