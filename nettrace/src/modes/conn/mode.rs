//! `--conn` as a mode: no eBPF, so no ring buffer; the driver ticks the
//! sink once (or every `--interval`) and each tick prints a snapshot.

use std::io::Write;

use std::time::Duration;

use super::{ConnRecord, print::Header};

use crate::{
    attribution::{Attribution, OwnerFields, select::Gate},
    error::Error,
    events::{Flow, Record, Sink, monotonic_ns},
    modes::{Lookups, Mode, ModeSink, Started},
    output::{Clock, Markers, Out, metrics::Metrics, progress::Progress},
    session::{DebugLog, Kernel, Session},
};

/// `--conn`: one snapshot, or one every `interval` until interrupted.
pub struct Connections {
    pub interval: Option<Duration>,
    /// The sock_diag state mask (`--state`).
    pub states: u32,
}

impl Mode for Connections {
    fn kernel(&self) -> Option<Lookups> {
        None
    }

    fn start(self: Box<Self>, s: &Session<'_>, _: Option<&Kernel>) -> Result<Started, Error> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(Error::unsupported(
                "must run as root: --conn enters every network namespace (CAP_SYS_ADMIN)",
            ));
        }
        let config = s.config;
        let sink = ConnSink {
            conn: *self,
            filter: config.filter,
            gate: s.gate.clone(),
            owners: s.attribution.clone(),
            clock: Clock::new(config.date),
            debug: s.log(),
            metrics: s.metrics.clone(),
            failed: None,
            out: s.out(),
            progress: Progress::new(config.count),
        };
        Ok(Started {
            ebpf: None,
            sink: Box::new(sink),
        })
    }
}

struct ConnSink<W: Write = crate::output::Console> {
    conn: Connections,
    filter: nettrace_common::Filter,
    /// `--container` / `--pod`: the namespaces whose sockets are listed.
    gate: Option<std::sync::Arc<Gate>>,
    /// Container names of namespaces.
    owners: Option<Attribution>,
    clock: Clock,
    debug: DebugLog,
    /// A snapshot that failed: the session fails with it.
    failed: Option<Error>,
    metrics: Option<std::sync::Arc<Metrics>>,
    out: Out<W>,
    /// `-c N` counts lines (connections and the per-snapshot header).
    progress: Progress,
}

impl<W: Write> ConnSink<W> {
    /// One snapshot: a header line with `--interval`, then a line per
    /// connection.
    fn snapshot(&mut self) -> Result<Flow, Error> {
        let mut snap = super::snapshot(&self.filter, self.conn.states)?;
        if let Some(gate) = &self.gate {
            snap.conns.retain(|c| gate.allows(c.netns));
        }
        for e in &snap.errors {
            eprintln!("nettrace: --conn: {e}");
        }
        self.debug.log(format_args!(
            "{} connections in {} namespaces",
            snap.conns.len(),
            snap.namespaces
        ));
        let now = monotonic_ns();
        if let Some(m) = &self.metrics {
            for info in snap.conns.iter().filter_map(|c| c.info.as_ref()) {
                if info.rtt_us != 0 {
                    m.rtt(info.rtt_us.into());
                }
            }
        }
        if self.conn.interval.is_some() {
            let header = Header {
                time: self.clock.format(now),
                count: snap.conns.len(),
            };
            // JSON has no header, and `-c` does not count one.
            let written = self.out.text_only(|w| header.text(w));
            if !matches!(written, Ok(false)) && self.progress.after(written.map(|_| 1)) == Flow::Stop {
                let _ = self.out.flush();
                return Ok(Flow::Stop);
            }
        }
        for conn in &snap.conns {
            let container = OwnerFields::of(self.owners.as_ref().and_then(|a| a.owner(conn.netns)).as_ref());
            let r = self
                .out
                .emit(&ConnRecord {
                    conn,
                    ts_ns: now,
                    container,
                })
                .map(|()| 1);
            if self.progress.after(r) == Flow::Stop {
                let _ = self.out.flush();
                return Ok(Flow::Stop);
            }
        }
        let r = self.out.flush().map(|()| 0);
        if self.progress.after(r) == Flow::Stop || self.conn.interval.is_none() {
            return Ok(Flow::Stop);
        }
        Ok(Flow::Continue)
    }
}

impl<W: Write> Sink for ConnSink<W> {
    fn event(&mut self, _: Record) -> Flow {
        Flow::Continue
    }

    fn batch_done(&mut self) -> Flow {
        Flow::Continue
    }

    fn tick(&mut self, _: u64) -> Flow {
        match self.snapshot() {
            Ok(flow) => flow,
            Err(e) => {
                self.failed = Some(e);
                Flow::Stop
            }
        }
    }
}

impl<W: Write> ModeSink for ConnSink<W> {
    fn out(&mut self) -> &mut dyn Markers {
        &mut self.out
    }

    fn finish(&mut self) -> Result<&Progress, Error> {
        match self.failed.take() {
            Some(e) => Err(e),
            None => Ok(&self.progress),
        }
    }

    fn period(&self) -> Option<Duration> {
        self.conn.interval
    }
}
