//! What a sink has printed against `-c N`, and whether the reader of the
//! output went away: when to stop. One bookkeeping for every mode.

use crate::{events::Flow, output::Closed};

#[derive(Debug, Default)]
pub struct Progress {
    /// `-c N`: stop after this many events (packets, lines, summaries).
    count: Option<u64>,
    /// Events printed so far.
    pub seen: u64,
    /// The reader of the output went away (`| head`).
    pub closed: bool,
}

impl Progress {
    pub fn new(count: Option<u64>) -> Self {
        Self {
            count,
            seen: 0,
            closed: false,
        }
    }

    /// Whether `-c N` is reached.
    pub fn done(&self) -> bool {
        self.count.is_some_and(|c| self.seen >= c)
    }

    /// Whether nothing more may be printed: the count is reached or the
    /// reader is gone.
    pub fn over(&self) -> bool {
        self.closed || self.done()
    }

    /// After writing `Ok(n)` more events (or failing to write).
    pub fn after(&mut self, r: Result<u64, Closed>) -> Flow {
        match r {
            Err(Closed) => {
                self.closed = true;
                Flow::Stop
            }
            Ok(n) => {
                self.seen += n;
                if self.done() { Flow::Stop } else { Flow::Continue }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stops_at_the_count_and_at_a_closed_reader() {
        let mut p = Progress::new(Some(3));
        assert_eq!(p.after(Ok(2)), Flow::Continue);
        assert_eq!(p.after(Ok(0)), Flow::Continue);
        assert_eq!(p.after(Ok(1)), Flow::Stop);
        assert!(p.done() && !p.closed);
        let mut p = Progress::new(None);
        assert_eq!(p.after(Ok(1000)), Flow::Continue);
        assert_eq!(p.after(Err(Closed)), Flow::Stop);
        assert!(p.closed && p.over());
    }
}
