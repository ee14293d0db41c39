//! Prints drop events as they arrive and stops at `-c N` or a closed pipe.

use std::io::Write;

use nettrace_common::DropEvent;

use super::Printer;
use crate::{
    error::Error,
    events::{Flow, Record, Sink},
    modes::ModeSink,
    output::{Closed, Markers, Out, metrics::Counts, pcap::PcapOut, progress::Progress},
};

pub struct DropSink<W: Write = crate::output::Console> {
    pub printer: Printer,
    pub metrics: Option<Counts>,
    pub out: Out<W>,
    /// `--drop-stack`.
    pub stack: bool,
    pub progress: Progress,
    /// `-w`: the drops as pcapng too.
    pub pcap: Option<PcapOut>,
}

impl<W: Write> DropSink<W> {
    fn write(&mut self, ev: &DropEvent) -> Result<(), Closed> {
        if let Some(c) = &mut self.metrics {
            let printer = &self.printer;
            c.dropped(ev.reason, ev.location, ev.netns, || {
                printer.reason_and_location(ev)
            });
            c.hook(0, || "kfree_skb".into());
        }
        self.out.emit(&self.printer.record(ev, self.stack))?;
        match &mut self.pcap {
            Some(p) => p.write(self.printer.frame(ev)),
            None => Ok(()),
        }
    }
}

impl<W: Write> DropSink<W> {
    fn on_event(&mut self, ev: &DropEvent) -> Flow {
        let r = self.write(ev).map(|()| 1);
        self.progress.after(r)
    }
}

impl<W: Write> Sink for DropSink<W> {
    fn event(&mut self, record: Record) -> Flow {
        match record {
            Record::Drop(ev) => self.on_event(&ev),
            Record::Packet(snap) => {
                if let Some(p) = &mut self.pcap {
                    p.remember(&snap);
                }
                Flow::Continue
            }
            _ => Flow::Continue,
        }
    }

    fn batch_done(&mut self) -> Flow {
        let r = self
            .out
            .flush()
            .and_then(|()| self.pcap.as_mut().map_or(Ok(()), PcapOut::flush));
        self.progress.after(r.map(|()| 0))
    }
}

impl<W: Write> ModeSink for DropSink<W> {
    fn out(&mut self) -> &mut dyn Markers {
        &mut self.out
    }

    fn finish(&mut self) -> Result<&Progress, Error> {
        if let Some(p) = &mut self.pcap {
            let _ = p.finish();
        }
        Ok(&self.progress)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::modes::drop::print::tests::{SYN, event, printer};
    use crate::output::Format;

    fn sink(json: bool, count: Option<u64>) -> DropSink<Vec<u8>> {
        DropSink {
            printer: printer(&[(3, "SKB_DROP_REASON_NO_SOCKET")]),
            metrics: None,
            out: Out::to(Vec::new()).with_format(Format::from_json_flag(json)),
            stack: false,
            progress: Progress::new(count),
            pcap: None,
        }
    }

    #[test]
    fn prints_each_drop_and_stops_at_the_count() {
        let mut s = sink(false, Some(2));
        assert_eq!(s.on_event(&event(&SYN)), Flow::Continue);
        assert_eq!(s.on_event(&event(&SYN)), Flow::Stop);
        assert_eq!(s.progress.seen, 2);
        let text = String::from_utf8(s.out.into_inner()).unwrap();
        let line = "[142.097193] TCP: 127.0.0.1:43582 -> 127.0.0.1:9999 seq:3819454691, ack:0, flags:S, reason: NO_SOCKET, tcp_v4_rcv+0x81\n";
        assert_eq!(text, line.repeat(2));
    }

    #[test]
    fn json_is_one_record_per_drop() {
        let mut s = sink(true, None);
        assert_eq!(s.on_event(&event(&SYN)), Flow::Continue);
        let text = String::from_utf8(s.out.into_inner()).unwrap();
        let v: serde_json::Value = serde_json::from_str(text.trim_end()).unwrap();
        assert_eq!(v["type"], "drop");
        assert_eq!(v["reason"], "NO_SOCKET");
        assert_eq!(v["location"], "tcp_v4_rcv+0x81");
        assert_eq!(text.lines().count(), 1);
    }

    /// The exact text and JSON of drops, with `--drop-stack` and on a
    /// kernel without drop reasons.
    #[test]
    fn golden_lines_and_records() {
        let mut out = String::new();
        for (json, stack, reasons) in [
            (false, true, true),
            (true, false, true),
            (true, true, true),
            (false, false, false),
            (true, false, false),
        ] {
            let mut s = sink(json, None);
            s.stack = stack;
            if !reasons {
                s.printer = printer(&[]);
            }
            let mut ev = event(&SYN);
            ev.skb = 0xffff_8881_0203_0400;
            ev.netns = 4026531840;
            ev.ifindex = 2;
            ev.pid = 77;
            ev.comm[..4].copy_from_slice(b"curl");
            ev.stack_id = 5;
            s.on_event(&ev);
            out += &String::from_utf8(s.out.into_inner()).unwrap();
        }
        crate::output::golden::check("drop/lines", &out);
    }
}
