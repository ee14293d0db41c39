//! Prints drop events as they arrive and stops at `-c N` or a closed pipe.

use nettrace_common::DropEvent;

use super::Printer;
use crate::{
    error::Error,
    events::{Flow, Sink},
    modes::ModeSink,
    output::{Closed, Out, metrics::Counts, progress::Progress},
};

pub struct DropSink {
    pub printer: Printer,
    pub metrics: Option<Counts>,
    pub out: Out,
    /// `--drop-stack`.
    pub stack: bool,
    pub json: bool,
    pub progress: Progress,
}

impl DropSink {
    fn write(&mut self, ev: &DropEvent) -> Result<(), Closed> {
        if let Some(c) = &mut self.metrics {
            let printer = &self.printer;
            c.dropped(ev.reason, ev.location, || printer.reason_and_location(ev));
            c.hook(0, || "kfree_skb".into());
        }
        if self.json {
            return self.out.line(&self.printer.json(ev, self.stack));
        }
        self.out.line(&self.printer.line(ev))?;
        if self.stack {
            for l in self.printer.stack(ev) {
                self.out.line(&l)?;
            }
        }
        Ok(())
    }
}

impl Sink for DropSink {
    fn event(&mut self, bytes: &[u8]) -> Flow {
        let Some(ev) = Printer::parse(bytes) else {
            return Flow::Continue;
        };
        let r = self.write(&ev).map(|()| 1);
        self.progress.after(r)
    }

    fn batch_done(&mut self) -> Flow {
        let r = self.out.flush().map(|()| 0);
        self.progress.after(r)
    }
}

impl ModeSink for DropSink {
    fn out(&mut self) -> &mut Out {
        &mut self.out
    }

    fn finish(&mut self) -> Result<&Progress, Error> {
        Ok(&self.progress)
    }
}
