//! Groups lifecycle events per packet (or prints them as they come with
//! `--basic`, `--monitor` and `--latency`), applies `--diag`'s rules, and
//! prints packets, analyses, `--latency-summary` and `--func-stats`.

use std::io::Write;

use nettrace_common::TraceEvent;

use super::{
    DiagState, FuncStats, diag, frame, print,
    print::LinePrinter,
    records::{self, Event},
    track,
    track::Tracker,
};
use crate::{
    error::Error,
    events::{Flow, Record, Sink},
    modes::ModeSink,
    output::{
        Closed, Markers, Out,
        histogram::{Distribution, KernelHistogram},
        progress::Progress,
        stack::{Stack, Symbolizer},
    },
};

/// The drop reason whose findings `--hooks` adds blamed functions to.
const NETFILTER_DROP: &str = "NETFILTER_DROP";

pub struct LifecycleSink<W: Write = crate::output::Console> {
    pub printer: LinePrinter,
    pub diag: Option<DiagState>,
    pub symbols: Symbolizer,
    pub tracker: Tracker,
    pub out: Out<W>,
    pub free_by_slot: Vec<bool>,
    /// Slots whose stack the user asked to see (`--trace-stack`); others
    /// may record one for the diagnosis only.
    pub print_stack_by_slot: Vec<bool>,
    pub basic: bool,
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
    /// `-c N` and a closed reader.
    pub progress: Progress,
    /// A diagnosis ended tracing (without `--diag-keep`).
    pub diagnosed: bool,
    /// `-w`: the printed events as pcapng too.
    pub pcap: Option<frame::LifecyclePcap>,
}

/// Packets with no event for this long are printed even without a free.
const IDLE_NS: u64 = 5_000_000_000;

impl<W: Write> LifecycleSink<W> {
    /// An event's stack, when the user asked to see it.
    fn printed_stack(&self, ev: &TraceEvent) -> Option<Stack> {
        let wanted = self
            .print_stack_by_slot
            .get(ev.slot as usize)
            .copied()
            .unwrap_or(false);
        (wanted && ev.stack_id >= 0).then(|| self.symbols.stack(ev.stack_id))
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

    /// `-w`: one event of what was just printed.
    fn write_frame(
        &mut self,
        ev: &TraceEvent,
        notes: &[String],
        latency_ns: Option<u64>,
    ) -> Result<(), Closed> {
        let Some(p) = &mut self.pcap else {
            return Ok(());
        };
        let attach = p.attach_by_slot.get(ev.slot as usize).map_or("", String::as_str);
        let f = frame::frame(&self.printer, &self.symbols, ev, notes, latency_ns, attach);
        p.out.write(f)
    }

    /// `-w`: a packet that is not printed keeps no bytes.
    fn forget(&mut self, p: &track::Packet) {
        if let Some(out) = &mut self.pcap {
            for ev in &p.events {
                out.out.forget(ev.skb, ev.ts_ns);
            }
        }
    }

    /// Prints a finished packet; `Ok(true)` when diagnosis says stop.
    fn write_packet(&mut self, p: &track::Packet) -> Result<bool, Closed> {
        let life = LinePrinter::life(p);
        if life < self.min_latency_ns {
            self.forget(p);
            return Ok(false);
        }
        let mut notes = Vec::with_capacity(p.events.len());
        let mut findings = Vec::new();
        for ev in &p.events {
            let (n, mut f) = self.diagnose(ev);
            findings.append(&mut f);
            notes.push(n);
        }
        let quiet = self.diag.as_ref().is_some_and(|d| d.opts.quiet);
        if quiet && findings.is_empty() {
            self.forget(p);
            return Ok(false);
        }
        let keep = self.diag.as_ref().is_none_or(|d| d.opts.keep);
        let tiny = self.printer.style.tiny;
        let stacks: Vec<_> = p.events.iter().map(|ev| self.printed_stack(ev)).collect();
        let mut prev = None;
        let events = (p.events.iter().zip(notes).zip(stacks).enumerate())
            .map(|(i, ((ev, notes), stack))| Event {
                printer: &self.printer,
                ev,
                show_packet: i == 0 || !tiny,
                prev_ts: prev.replace(ev.ts_ns),
                notes,
                latency_ns: None,
                stack,
            })
            .collect();
        let packet = records::Packet {
            printer: &self.printer,
            packet: p,
            life,
            events,
        };
        self.out.emit(&packet)?;
        let notes: Vec<Vec<String>> = packet.events.into_iter().map(|e| e.notes).collect();
        for (ev, notes) in p.events.iter().zip(&notes) {
            self.write_frame(ev, notes, None)?;
        }
        if !findings.is_empty() {
            self.out.emit(&records::Analysis {
                skbs: &p.skbs,
                findings: &findings,
            })?;
        }
        // Text separates packets by an empty line.
        self.out.text_only(|w| writeln!(w))?;
        self.progress.seen += 1;
        Ok(!findings.is_empty() && !keep)
    }

    /// After printing (`Ok(true)`: a diagnosis says stop).
    fn after(&mut self, r: Result<bool, Closed>) -> Flow {
        if let Ok(true) = r {
            self.diagnosed = true;
            return Flow::Stop;
        }
        self.progress.after(r.map(|_| 0))
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
        self.out.emit(&records::FuncStats { rows })?;
        self.out.flush()
    }

    /// Stdout, and the pcapng file.
    fn flush(&mut self) -> Result<(), Closed> {
        self.out.flush()?;
        self.pcap.as_mut().map_or(Ok(()), |p| p.out.flush())
    }

    /// Prints every packet still open (at exit).
    fn flush_open(&mut self) {
        if self.func_stats.is_some() && !self.progress.closed {
            let _ = self.write_func_stats();
        }
        if self.diagnosed || self.progress.over() {
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

impl<W: Write> Sink for LifecycleSink<W> {
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
        if let Record::Packet(snap) = record {
            if let Some(p) = &mut self.pcap {
                p.out.remember(&snap);
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
                Some(false) => c.dropped(ev.extra as u32, ev.location, ev.netns, || {
                    (
                        printer.reasons.name(ev.extra as u32),
                        symbols.symbolize(ev.location),
                    )
                }),
                Some(true) => c.reset(ev.extra as u32, || printer.resets.name(ev.extra as u32)),
                None => {}
            }
        }
        if self.basic {
            let e = Event {
                printer: &self.printer,
                ev: &ev,
                show_packet: true,
                prev_ts: None,
                notes: Vec::new(),
                latency_ns: self.latency.then_some(ev.life_ns),
                stack: self.printed_stack(&ev),
            };
            let latency_ns = e.latency_ns;
            let r = self.out.emit(&e);
            let r = r
                .and_then(|()| self.write_frame(&ev, &[], latency_ns))
                .map(|()| false);
            self.progress.seen += 1;
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
        let r = self.flush().map(|()| false);
        self.after(r)
    }

    fn tick(&mut self, now_ns: u64) -> Flow {
        if let Some(h) = &self.latency_hist {
            let summary = match h.read() {
                Ok(h) => Distribution::latency(now_ns, h),
                Err(e) => {
                    eprintln!("nettrace: cannot read the latency histogram: {e}");
                    return Flow::Stop;
                }
            };
            if self.out.emit(&summary).is_err() {
                self.progress.closed = true;
                return Flow::Stop;
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
        let r = self.flush().map(|()| false);
        self.after(r)
    }
}

impl<W: Write> ModeSink for LifecycleSink<W> {
    fn out(&mut self) -> &mut dyn Markers {
        &mut self.out
    }

    fn finish(&mut self) -> Result<&Progress, Error> {
        self.flush_open();
        // Also after `-c` or a diagnosis stopped tracing mid-batch.
        if let Some(p) = &mut self.pcap {
            let _ = p.out.finish();
        }
        Ok(&self.progress)
    }
}

#[cfg(test)]
#[path = "sink_tests.rs"]
mod tests;
