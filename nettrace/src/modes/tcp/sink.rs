//! Prints what the TCP object sends: `--tcp-monitor` events, `--sock`
//! lines, `--rtt` samples and `--rt` tasks (or, with `--rt-summary` and
//! `--rtt`, their histograms once a second).

use std::io::Write;

use super::{monitor, rt, rtt, sock};
use crate::{
    attribution::{Attribution, OwnerFields, WithOwner},
    error::Error,
    events::{Flow, Record, Sink},
    modes::ModeSink,
    output::{
        Clock, Closed, Markers, Out,
        histogram::{Distribution, KernelHistogram},
        metrics::Counts,
        progress::Progress,
    },
};

/// Prints `--tcp-monitor` events and `--rt` tasks (or, with `--rt-summary`,
/// their histograms once a second).
pub struct TcpSink<W: Write = crate::output::Console> {
    /// `--tcp-monitor`'s printer; `None` for `--rt`.
    pub monitor: Option<monitor::Printer>,
    /// `--rt-summary`: the current second's histograms.
    pub summary: Option<rt::Summary>,
    /// `--rt`: the per-port statistics of the current interval.
    pub rt_stats: Option<rt::stats::Stats>,
    /// `--rt-format tcprt`: tasks and closes as tcprt's log lines.
    pub tcprt: Option<rt::tcprt::Tcprt>,
    /// `--rtt`: the sample source, and the kernel's histogram when the
    /// distribution is printed.
    pub rtt: Option<(rtt::Source, Option<KernelHistogram>)>,
    /// `--sock`'s printer.
    pub sock: Option<sock::Printer>,
    pub clock: Clock,
    pub out: Out<W>,
    pub metrics: Option<Counts>,
    pub progress: Progress,
    /// Container names for `--json`.
    pub owners: Option<Attribution>,
}

impl<W: Write> TcpSink<W> {
    /// `record` with the owner of namespace `netns`.
    fn owned<R>(&self, netns: u32, record: R) -> WithOwner<R> {
        let owner = self.owners.as_ref().and_then(|a| a.owner(u64::from(netns)));
        WithOwner {
            record,
            owner: OwnerFields::of(owner.as_ref()),
        }
    }

    fn write(&mut self, record: &Record) -> Result<bool, Closed> {
        use nettrace_common::tcp::tp;
        if let (Record::Sock(ev), Some(p)) = (record, &self.sock) {
            if let Some(c) = &mut self.metrics {
                c.hook(sock::hook_slot(ev), || sock::hook_name(ev.source, ev.hook).into());
                if sock::is_rtt_sample(ev) {
                    c.rtt_sample(ev.rtt_us.into());
                }
            }
            self.out.emit(&self.owned(ev.netns, p.record(ev)))?;
            return Ok(true);
        }
        if let (Record::Tcp(ev), Some(p)) = (record, &self.monitor) {
            if let Some(c) = &mut self.metrics {
                c.hook(ev.kind.into(), || monitor::event_name(ev.kind).into());
                if ev.kind == tp::SEND_RESET
                    && let Some((_, name)) = p.why(ev)
                {
                    c.reset(ev.value, || name);
                }
            }
            self.out.emit(&self.owned(ev.netns, p.record(ev)))?;
            return Ok(true);
        }
        if let (Record::Rtt(ev), Some((source, _))) = (record, &self.rtt) {
            if let Some(c) = &self.metrics {
                c.rtt_sample(ev.rtt_us.into());
            }
            self.out
                .emit(&self.owned(ev.netns, rtt::record(&self.clock, *source, ev)))?;
            return Ok(true);
        }
        if let Record::Rt(ev) = record {
            let (port, side) = rt::stats::port_of(ev);
            if let Some(c) = &mut self.metrics {
                c.task(rt::metrics_task(ev), port, side.name());
            }
            if let Some(st) = &mut self.rt_stats {
                st.task(ev);
            }
            if let Some(sum) = &mut self.summary {
                sum.add(ev);
                return Ok(false);
            }
            if let Some(t) = &mut self.tcprt {
                let line = t.task(ev);
                return self.emit_tcprt(line).map(|n| n > 0);
            }
            if rt::is_client(ev) {
                self.out
                    .emit(&self.owned(ev.netns, rt::client::record(&self.clock, ev)))?;
            } else {
                self.out
                    .emit(&self.owned(ev.netns, rt::record(&self.clock, ev)))?;
            }
            return Ok(true);
        }
        if let Record::RtClose(ev) = record {
            let (port, side) = rt::stats::close_port_of(ev);
            let end = rt::close::End::of(ev);
            if let Some(c) = &mut self.metrics {
                c.rt_close(port, side.name(), end.name());
            }
            if let Some(st) = &mut self.rt_stats {
                st.close(ev);
            }
            if self.summary.is_some() {
                return Ok(false);
            }
            if let Some(t) = &mut self.tcprt {
                let lines = t.close(ev);
                return self.emit_tcprt(lines).map(|n| n > 0);
            }
            self.out
                .emit(&self.owned(ev.netns, rt::close::record(&self.clock, ev)))?;
            return Ok(true);
        }
        Ok(false)
    }

    /// One interval's statistics: our table (or JSON record), or with
    /// `--rt-format tcprt` tcprt's stats lines; counts as one event.
    fn emit_stats(&mut self, table: &rt::stats::RtStats) -> Result<u64, Closed> {
        match &self.tcprt {
            Some(t) => {
                let lines = t.stats(table);
                self.emit_tcprt(lines)?;
            }
            None => self.out.emit(table)?,
        }
        self.out.flush()?;
        Ok(1)
    }

    /// tcprt's lines as they are (no owner: tcprt has no field for one).
    fn emit_tcprt(&mut self, lines: impl IntoIterator<Item = rt::tcprt::Line>) -> Result<usize, Closed> {
        let mut n = 0;
        for line in lines {
            self.out.emit(&line)?;
            n += 1;
        }
        Ok(n)
    }
}

impl<W: Write> Sink for TcpSink<W> {
    fn event(&mut self, record: Record) -> Flow {
        let r = self.write(&record).map(u64::from);
        self.progress.after(r)
    }

    fn batch_done(&mut self) -> Flow {
        let r = self.out.flush().map(|()| 0);
        self.progress.after(r)
    }

    fn tick(&mut self, now_ns: u64) -> Flow {
        if let Some(table) = self
            .rt_stats
            .as_mut()
            .and_then(|s| s.take(&self.clock, now_ns, false))
        {
            let r = self.emit_stats(&table);
            if self.progress.after(r) == Flow::Stop {
                return Flow::Stop;
            }
        }
        let written = if let Some(sum) = &mut self.summary {
            self.out.emit(&sum.take(&self.clock, now_ns))
        } else if let Some((_, Some(hist))) = &self.rtt {
            match hist.read() {
                Ok(h) => self.out.emit(&Distribution::rtt(now_ns, h)),
                Err(e) => {
                    eprintln!("nettrace: cannot read the RTT histogram: {e}");
                    return Flow::Stop;
                }
            }
        } else {
            return Flow::Continue;
        };
        // A summary counts as one event for `-c`.
        let r = written.and_then(|()| self.out.flush()).map(|()| 1);
        self.progress.after(r)
    }
}

impl<W: Write> ModeSink for TcpSink<W> {
    fn out(&mut self) -> &mut dyn Markers {
        &mut self.out
    }

    fn finish(&mut self) -> Result<&Progress, Error> {
        // Tasks held for a W whose connection's end did not come.
        if let Some(lines) = self.tcprt.as_mut().map(rt::tcprt::Tcprt::finish) {
            let r = self.emit_tcprt(lines).map(|n| n as u64);
            self.progress.after(r);
        }
        // The statistics of the interval tracing ended in.
        let now = crate::events::monotonic_ns();
        if let Some(table) = self
            .rt_stats
            .as_mut()
            .and_then(|s| s.take(&self.clock, now, true))
        {
            let r = self.emit_stats(&table);
            self.progress.after(r);
        }
        Ok(&self.progress)
    }
}
