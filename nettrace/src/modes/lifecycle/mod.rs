//! Lifecycle mode (the default): follow each matching packet through the
//! kernel, hook by hook, until it is freed.
//!
//! `prepare` resolves the hook names the user typed against the catalogue;
//! `crate::plan` decides how each hook attaches here; `attach` loads the
//! per-slot programs; `LifecycleSink` groups events per packet and prints.

mod attach;
pub mod diag;
pub mod netfilter;
pub mod print;
pub mod track;

use aya::Ebpf;
use nettrace_common::TraceEvent;

pub use self::attach::{attach, configure, nothing_attached};
use self::{print::LinePrinter, track::Tracker};
use crate::{
    catalogue::{Catalogue, Selection, select},
    cli::Lifecycle,
    events::{Flow, Record, Sink},
    output::{
        Closed, Out,
        histogram::KernelHistogram,
        json,
        stack::{self, Symbolizer},
    },
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
pub fn prepare(l: &Lifecycle) -> Result<Prepared, String> {
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
fn named_hooks(catalogue: &Catalogue, l: &Lifecycle, selected: &Selection) -> (Selection, Selection) {
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

/// The drop reason whose findings `--hooks` adds blamed functions to.
const NETFILTER_DROP: &str = "NETFILTER_DROP";

pub struct LifecycleSink<'a> {
    pub printer: LinePrinter,
    pub diag: Option<DiagState>,
    pub symbols: Symbolizer,
    pub tracker: Tracker,
    pub out: &'a mut Out,
    pub free_by_slot: Vec<bool>,
    /// Slots whose stack the user asked to see (`--trace-stack`); others
    /// may record one for the diagnosis only.
    pub print_stack_by_slot: Vec<bool>,
    pub basic: bool,
    /// `--json`: records instead of lines.
    pub json: bool,
    /// `--metrics`: counted as events arrive.
    pub metrics: Option<crate::output::metrics::Counts>,
    pub min_latency_ns: u64,
    /// `--latency`: each event is a packet's free, carrying its life.
    pub latency: bool,
    /// `--latency-summary`: the kernel's histogram of lives, printed
    /// each second.
    pub latency_hist: Option<KernelHistogram>,
    /// `--func-stats`: the kernel's per-slot counts, and whether to print
    /// them every second (`-v`).
    pub func_stats: Option<(FuncStats, bool)>,
    pub count: Option<u64>,
    pub printed: u64,
    pub closed: bool,
    /// A diagnosis ended tracing (without `--diag-keep`).
    pub diagnosed: bool,
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

/// Packets with no event for this long are printed even without a free.
const IDLE_NS: u64 = 5_000_000_000;

impl LifecycleSink<'_> {
    /// The frames of an event's stack, when the user asked to see it.
    fn printed_stack(&self, ev: &TraceEvent) -> Option<serde_json::Value> {
        let wanted = self
            .print_stack_by_slot
            .get(ev.slot as usize)
            .copied()
            .unwrap_or(false);
        (wanted && ev.stack_id >= 0)
            .then(|| stack::json(&self.symbols.frames(ev.stack_id).unwrap_or_default()))
    }

    fn write_event(&mut self, line: &str, slot: u32, stack_id: i32) -> Result<(), Closed> {
        self.out.line(line)?;
        if stack_id >= 0
            && self
                .print_stack_by_slot
                .get(slot as usize)
                .copied()
                .unwrap_or(false)
        {
            for l in self.symbols.stack(stack_id) {
                self.out.line(&l)?;
            }
        }
        Ok(())
    }

    /// Diagnosis of one event: notes for its line, findings for the report.
    fn diagnose(&mut self, ev: &TraceEvent) -> (Vec<String>, Vec<diag::Finding>) {
        let Some(d) = &mut self.diag else {
            return (Vec::new(), Vec::new());
        };
        let slot = ev.slot as usize;
        let reason = self.printer.reason(ev).or_else(|| {
            let (at, len) = d.netfilter_drop_at?;
            (ev.location.wrapping_sub(at) < len).then(|| print::Reason::Drop(NETFILTER_DROP.into()))
        });
        let mut notes = Vec::new();
        let mut findings = Vec::new();
        if let Some(note) = d.nf_notes.take(ev.skb, ev.ts_ns) {
            notes.push(note);
        }
        let blame = match &mut d.nf_hooks {
            Some(nf) if matches!(&reason, Some(print::Reason::Drop(r)) if r == NETFILTER_DROP) => {
                let frames = self.symbols.frames(ev.stack_id).unwrap_or_default();
                Some(nf.blame(ev.skb, &frames, &self.symbols))
            }
            _ => None,
        };
        if let Some(note) = blame.as_ref().and_then(|b| b.note.clone()) {
            notes.push(note);
        }
        for rule in d.rules_by_slot.get(slot).into_iter().flatten() {
            if !diag::fires(rule, ev, reason.as_ref()) {
                continue;
            }
            notes.push(rule.msg.clone());
            if rule.level >= crate::catalogue::Level::Warn {
                findings.push(diag::Finding {
                    level: rule.level,
                    hook: self.printer.names.get(slot).cloned().unwrap_or_default(),
                    group: d.group_by_slot.get(slot).cloned().unwrap_or_default(),
                    msg: rule.msg.clone(),
                    adv: rule.adv.clone(),
                    location: (ev.location != 0).then(|| self.symbols.symbolize(ev.location)),
                    reason: reason.clone(),
                    blamed: match &blame {
                        Some(b) if rule.reason.as_deref() == Some(NETFILTER_DROP) => b.functions.clone(),
                        _ => Vec::new(),
                    },
                });
            }
        }
        (notes, findings)
    }

    /// Prints a finished packet; `Ok(true)` when diagnosis says stop.
    fn write_packet(&mut self, p: &track::Packet) -> Result<bool, Closed> {
        let life = LinePrinter::life(p);
        if life < self.min_latency_ns {
            return Ok(false);
        }
        let mut lines = Vec::with_capacity(p.events.len());
        let mut events = Vec::new();
        let mut findings = Vec::new();
        let mut prev = None;
        for (i, ev) in p.events.iter().enumerate() {
            let (notes, mut f) = self.diagnose(ev);
            findings.append(&mut f);
            if self.json {
                let mut e = self.printer.event_json(ev);
                if !notes.is_empty() {
                    e.insert("notes".into(), notes.into());
                }
                if let Some(frames) = self.printed_stack(ev) {
                    e.insert("stack".into(), frames);
                }
                events.push(serde_json::Value::Object(e));
                continue;
            }
            let notes: String = notes.iter().map(|n| format!(" *{n}*")).collect();
            let line = self.printer.event(ev, i == 0 || !self.printer.style.tiny, prev) + &notes;
            lines.push((line, ev.slot, ev.stack_id));
            prev = Some(ev.ts_ns);
        }
        let quiet = self.diag.as_ref().is_some_and(|d| d.opts.quiet);
        if quiet && findings.is_empty() {
            return Ok(false);
        }
        let keep = self.diag.as_ref().is_none_or(|d| d.opts.keep);
        if self.json {
            let mut m = json::record("packet");
            let skbs: Vec<String> = p.skbs.iter().map(|s| format!("{s:x}")).collect();
            m.insert("skbs".into(), skbs.into());
            m.insert("latency_ns".into(), life.into());
            m.insert("events".into(), events.into());
            if p.dropped_events > 0 {
                m.insert("events_not_kept".into(), p.dropped_events.into());
            }
            self.out.line(&json::line(m))?;
            if !findings.is_empty() {
                let mut a = json::record("analysis");
                a.insert(
                    "skbs".into(),
                    p.skbs.iter().map(|s| format!("{s:x}")).collect::<Vec<_>>().into(),
                );
                a.insert(
                    "findings".into(),
                    findings
                        .iter()
                        .map(diag::Finding::json)
                        .collect::<Vec<_>>()
                        .into(),
                );
                self.out.line(&json::line(a))?;
            }
            self.printed += 1;
            return Ok(!findings.is_empty() && !keep);
        }
        self.out.line(&self.printer.header(p))?;
        for (line, slot, stack_id) in lines {
            self.write_event(&line, slot, stack_id)?;
        }
        if p.dropped_events > 0 {
            self.out
                .line(&format!("... {} more events not kept", p.dropped_events))?;
        }
        if self.printer.style.latency {
            self.out
                .line(&format!("total latency: {:.3}ms", life as f64 / 1e6))?;
        }
        if !findings.is_empty() {
            for l in diag::report(&findings) {
                self.out.line(&l)?;
            }
        }
        self.out.line("")?;
        self.printed += 1;
        Ok(!findings.is_empty() && !keep)
    }

    fn after(&mut self, r: Result<bool, Closed>) -> Flow {
        match r {
            Err(Closed) => {
                self.closed = true;
                Flow::Stop
            }
            Ok(true) => {
                self.diagnosed = true;
                Flow::Stop
            }
            Ok(false) if self.count.is_some_and(|n| self.printed >= n) => Flow::Stop,
            Ok(false) => Flow::Continue,
        }
    }

    /// The `--func-stats` table: every attached hook, most events first.
    fn write_func_stats(&mut self) -> Result<(), Closed> {
        let Some((stats, _)) = &self.func_stats else {
            return Ok(());
        };
        let counts = match stats.read(self.printer.names.len()) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("nettrace: cannot read --func-stats counts: {e}");
                return Ok(());
            }
        };
        let mut rows: Vec<(&str, u64)> = self
            .printer
            .names
            .iter()
            .map(String::as_str)
            .zip(counts)
            .collect();
        rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        if self.json {
            let mut m = json::record("func_stats");
            let counts: serde_json::Map<String, serde_json::Value> =
                rows.iter().map(|(n, c)| (n.to_string(), (*c).into())).collect();
            m.insert("counts".into(), counts.into());
            return self.out.line(&json::line(m));
        }
        self.out.line(&format!("{:<32} {:>12}", "hook", "count"))?;
        for (name, n) in rows {
            self.out.line(&format!("{name:<32} {n:>12}"))?;
        }
        self.out.flush()
    }

    /// Prints every packet still open (at exit).
    pub fn finish(&mut self) {
        if self.func_stats.is_some() && !self.closed {
            let _ = self.write_func_stats();
        }
        if self.closed || self.diagnosed || self.count.is_some_and(|n| self.printed >= n) {
            return;
        }
        for p in self.tracker.flush_idle(u64::MAX) {
            let r = self.write_packet(&p);
            if self.after(r) == Flow::Stop {
                break;
            }
        }
        let _ = self.out.flush();
    }
}

impl Sink for LifecycleSink<'_> {
    fn event(&mut self, record: Record) -> Flow {
        if let Record::NfHooks(snapshot) = record {
            if let Some(nf) = self.diag.as_mut().and_then(|d| d.nf_hooks.as_mut()) {
                nf.remember(snapshot);
            }
            return Flow::Continue;
        }
        if let Record::NfContext(ctx) = record {
            if let Some(d) = self.diag.as_mut() {
                d.nf_notes.remember(ctx);
            }
            return Flow::Continue;
        }
        let Record::Trace(ev) = record else {
            return Flow::Continue;
        };
        if let Some(d) = self.diag.as_mut() {
            let flags = d.flags_by_slot.get(ev.slot as usize).copied().unwrap_or(0);
            d.nf_notes.on_event(ev.skb, ev.ts_ns, flags);
        }
        if let Some(c) = &mut self.metrics {
            let (printer, symbols) = (&self.printer, &self.symbols);
            c.hook(ev.slot, || {
                printer.names.get(ev.slot as usize).cloned().unwrap_or_default()
            });
            match printer.reason_kind(&ev) {
                Some(false) => c.dropped(ev.extra as u32, ev.location, || {
                    (
                        printer.reasons.name(ev.extra as u32),
                        symbols.symbolize(ev.location),
                    )
                }),
                Some(true) => c.reset(ev.extra as u32, || printer.resets.name(ev.extra as u32)),
                None => {}
            }
        }
        if self.basic && self.json {
            let mut e = self.printer.event_json(&ev);
            e.shift_insert(0, "v".into(), json::V.into());
            e.shift_insert(1, "type".into(), "event".into());
            if self.latency {
                e.insert("latency_ns".into(), ev.life_ns.into());
            }
            if let Some(frames) = self.printed_stack(&ev) {
                e.insert("stack".into(), frames);
            }
            let r = self.out.line(&json::line(e)).map(|()| false);
            self.printed += 1;
            return self.after(r);
        }
        if self.basic {
            let mut line = self.printer.event(&ev, true, None);
            if self.latency {
                line += &format!(" latency: {:.3}ms", ev.life_ns as f64 / 1e6);
            }
            let r = self.write_event(&line, ev.slot, ev.stack_id).map(|()| false);
            self.printed += 1;
            return self.after(r);
        }
        let frees = self.free_by_slot.get(ev.slot as usize).copied().unwrap_or(false);
        let ended = self.tracker.add(ev, frees);
        for p in ended.into_iter().chain(self.tracker.over_capacity()) {
            let r = self.write_packet(&p);
            if self.after(r) == Flow::Stop {
                return Flow::Stop;
            }
        }
        Flow::Continue
    }

    fn batch_done(&mut self) -> Flow {
        let r = self.out.flush().map(|()| false);
        self.after(r)
    }

    fn tick(&mut self, now_ns: u64) -> Flow {
        if let Some(h) = &self.latency_hist {
            let lines = match h.read() {
                Ok(h) if self.json => {
                    let mut m = json::record("latency_summary");
                    m.insert("ts_ns".into(), now_ns.into());
                    m.insert("unit".into(), "us".into());
                    m.insert("latency".into(), h.json());
                    vec![json::line(m)]
                }
                Ok(h) => h.render("latency", "us"),
                Err(e) => {
                    eprintln!("nettrace: cannot read the latency histogram: {e}");
                    return Flow::Stop;
                }
            };
            for l in lines {
                if self.out.line(&l).is_err() {
                    self.closed = true;
                    return Flow::Stop;
                }
            }
        }
        if let Some((_, true)) = &self.func_stats {
            let r = self.write_func_stats();
            if self.after(r.map(|()| false)) == Flow::Stop {
                return Flow::Stop;
            }
        }
        for p in self.tracker.flush_idle(now_ns.saturating_sub(IDLE_NS)) {
            let r = self.write_packet(&p);
            if self.after(r) == Flow::Stop {
                return Flow::Stop;
            }
        }
        let r = self.out.flush().map(|()| false);
        self.after(r)
    }
}
