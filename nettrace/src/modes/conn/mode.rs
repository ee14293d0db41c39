//! `--conn` as a mode: no eBPF, so no ring buffer; the driver ticks the
//! sink once (or every `--interval`) and each tick prints a snapshot.

use std::io::{Stdout, Write};

use std::time::Duration;

use crate::{
    error::Error,
    events::{Flow, Sink, monotonic_ns},
    modes::{Lookups, Mode, ModeSink, Started},
    output::{Clock, Markers, Out, json, metrics::Metrics, progress::Progress},
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
            clock: Clock::new(config.date),
            json: config.json,
            debug: s.log(),
            metrics: s.metrics.clone(),
            failed: None,
            out: Out::new(crate::output::Format::json(config.json)),
            progress: Progress::new(config.count),
        };
        Ok(Started {
            ebpf: None,
            sink: Box::new(sink),
        })
    }
}

struct ConnSink<W: Write = Stdout> {
    conn: Connections,
    filter: nettrace_common::Filter,
    clock: Clock,
    json: bool,
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
        let snap = super::snapshot(&self.filter, self.conn.states)?;
        for e in &snap.errors {
            eprintln!("nettrace: --conn: {e}");
        }
        self.debug.log(format_args!(
            "{} connections in {} namespaces",
            snap.conns.len(),
            snap.namespaces
        ));
        let now = monotonic_ns();
        let mut lines = Vec::new();
        if self.conn.interval.is_some() && !self.json {
            lines.push(format!(
                "[{}] {} connections",
                self.clock.format(now),
                snap.conns.len()
            ));
        }
        for c in &snap.conns {
            if let (Some(m), Some(info)) = (&self.metrics, &c.info)
                && info.rtt_us != 0
            {
                m.rtt(info.rtt_us.into());
            }
            lines.push(if self.json {
                let mut m = c.json();
                m.insert("ts_ns".into(), now.into());
                json::legacy::line(m)
            } else {
                c.line()
            });
        }
        for l in &lines {
            let r = self.out.line(l).map(|()| 1);
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
    fn event(&mut self, _: &[u8]) -> Flow {
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
