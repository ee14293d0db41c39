//! What lifecycle tracing prints: packets (their events grouped), a
//! packet's `--diag` analysis, single events (`--basic`, `--latency`),
//! `--func-stats` (`--latency-summary` is an
//! [`output::histogram::Distribution`](crate::output::histogram::Distribution)).

use std::io::{self, Write};

use nettrace_common::TraceEvent;
use serde::{Serialize, Serializer, ser::SerializeSeq as _};

use super::{diag, print::LinePrinter, track};
use crate::output::{Record, stack::Stack};

/// One event: a line (`[time] [hook] packet extra *note*`, then its
/// `Call Stack:` with `--trace-stack`), or its JSON fields.
pub struct Event<'a> {
    pub printer: &'a LinePrinter,
    pub ev: &'a TraceEvent,
    /// Text: false for `--tiny-show` followers.
    pub show_packet: bool,
    /// Text: the packet's previous event, for `--latency-show`.
    pub prev_ts: Option<u64>,
    /// `--diag`'s notes on it.
    pub notes: Vec<String>,
    /// `--latency`: the packet's life, which this free ended.
    pub latency_ns: Option<u64>,
    /// `--trace-stack`, when its hook asked for stacks.
    pub stack: Option<Stack>,
}

impl Serialize for Event<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Json<'b> {
            #[serde(flatten)]
            fields: super::print::EventFields,
            #[serde(skip_serializing_if = "Option::is_none")]
            latency_ns: Option<u64>,
            #[serde(skip_serializing_if = "<[String]>::is_empty")]
            notes: &'b [String],
            #[serde(skip_serializing_if = "Option::is_none")]
            stack: Option<&'b Stack>,
        }
        Json {
            fields: self.printer.event_fields(self.ev),
            latency_ns: self.latency_ns,
            notes: &self.notes,
            stack: self.stack.as_ref(),
        }
        .serialize(s)
    }
}

impl Record for Event<'_> {
    fn kind(&self) -> &'static str {
        "event"
    }

    fn text(&self, w: &mut dyn Write) -> io::Result<()> {
        self.printer
            .write_event(w, self.ev, self.show_packet, self.prev_ts)?;
        for n in &self.notes {
            write!(w, " *{n}*")?;
        }
        if let Some(ns) = self.latency_ns {
            write!(w, " latency: {:.3}ms", ns as f64 / 1e6)?;
        }
        writeln!(w)?;
        match &self.stack {
            Some(s) => s.text(w),
            None => Ok(()),
        }
    }
}

/// skb addresses in hex, as the JSON records name a packet.
fn skbs<S: Serializer>(skbs: &[u64], s: S) -> Result<S::Ok, S::Error> {
    let mut seq = s.serialize_seq(Some(skbs.len()))?;
    for skb in skbs {
        seq.serialize_element(&format_args!("{skb:x}").to_string())?;
    }
    seq.end()
}

/// A finished packet: `***************** e8fbc700,e8fbdc00
/// ***************`, its events, `... N more events not kept`,
/// `total latency: …ms` with `--latency-show`. In JSON `{"v":1,
/// "type":"packet","skbs":[…],"latency_ns":…,"events":[…]}` (and
/// `events_not_kept`).
pub struct Packet<'a> {
    pub printer: &'a LinePrinter,
    pub packet: &'a track::Packet,
    /// First to last event, ns.
    pub life: u64,
    pub events: Vec<Event<'a>>,
}

impl Serialize for Packet<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Json<'b> {
            #[serde(serialize_with = "skbs")]
            skbs: &'b [u64],
            latency_ns: u64,
            events: &'b [Event<'b>],
            #[serde(skip_serializing_if = "is_zero")]
            events_not_kept: u64,
        }
        Json {
            skbs: &self.packet.skbs,
            latency_ns: self.life,
            events: &self.events,
            events_not_kept: self.packet.dropped_events,
        }
        .serialize(s)
    }
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Record for Packet<'_> {
    fn kind(&self) -> &'static str {
        "packet"
    }

    fn text(&self, w: &mut dyn Write) -> io::Result<()> {
        writeln!(w, "{}", self.printer.header(self.packet))?;
        for e in &self.events {
            e.text(w)?;
        }
        if self.packet.dropped_events > 0 {
            writeln!(w, "... {} more events not kept", self.packet.dropped_events)?;
        }
        if self.printer.style.latency {
            writeln!(w, "total latency: {:.3}ms", self.life as f64 / 1e6)?;
        }
        Ok(())
    }
}

/// `--diag`'s findings for a packet: the `ANALYSIS RESULT` block, or
/// `{"v":1,"type":"analysis","skbs":[…],"findings":[…]}`.
#[derive(Serialize)]
pub struct Analysis<'a> {
    #[serde(serialize_with = "skbs")]
    pub skbs: &'a [u64],
    pub findings: &'a [diag::Finding],
}

impl Record for Analysis<'_> {
    fn kind(&self) -> &'static str {
        "analysis"
    }

    fn text(&self, w: &mut dyn Write) -> io::Result<()> {
        diag::report(self.findings)
            .iter()
            .try_for_each(|l| writeln!(w, "{l}"))
    }
}

/// `--func-stats`: events per hook, most first: a `hook count` table, or
/// `{"v":1,"type":"func_stats","counts":{"hook":n,…}}`.
pub struct FuncStats<'a> {
    pub rows: Vec<(&'a str, u64)>,
}

impl Serialize for FuncStats<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Json {
            counts: serde_json::Map<String, serde_json::Value>,
        }
        let counts = (self.rows.iter())
            .map(|(n, c)| (n.to_string(), (*c).into()))
            .collect();
        Json { counts }.serialize(s)
    }
}

impl Record for FuncStats<'_> {
    fn kind(&self) -> &'static str {
        "func_stats"
    }

    fn text(&self, w: &mut dyn Write) -> io::Result<()> {
        writeln!(w, "{:<32} {:>12}", "hook", "count")?;
        for (name, n) in &self.rows {
            writeln!(w, "{name:<32} {n:>12}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::record::{json_of, text_of};

    /// `--func-stats` as the hand-built record had it: counts keyed by
    /// hook, most first; the table's columns.
    #[test]
    fn func_stats() {
        let r = FuncStats {
            rows: vec![("ip_rcv", 12), ("kfree_skb", 3)],
        };
        assert_eq!(
            json_of(&r),
            "{\"v\":1,\"type\":\"func_stats\",\"counts\":{\"ip_rcv\":12,\"kfree_skb\":3}}\n"
        );
        assert_eq!(
            text_of(&r),
            format!(
                "{:<32} {:>12}\n{:<32} {:>12}\n{:<32} {:>12}\n",
                "hook", "count", "ip_rcv", 12, "kfree_skb", 3
            )
        );
    }
}
