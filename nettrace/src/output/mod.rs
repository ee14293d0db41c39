//! Everything nettrace writes to stdout: event lines for grep/less, and the
//! `begin trace...` / `end trace...` markers scripts wait for.
//!
//! Lines are buffered and flushed once per batch of events (not per line):
//! cheap when piping a flood, prompt when a human watches. A closed pipe
//! (`| head`) is not an error: it ends tracing quietly.

mod clock;
pub mod histogram;
pub mod json;
pub mod metrics;
pub mod progress;
pub mod stack;

use std::io::{self, BufWriter, IsTerminal as _, Stdout, Write as _};

pub use clock::Clock;

/// Whether to colour output: only on a terminal, and never with `NO_COLOR`.
pub fn use_colour() -> bool {
    io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// A NUL-terminated kernel string (`comm`, `ifname`, table names).
pub fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// Signals that the reader went away: stop producing output.
#[derive(Debug)]
pub struct Closed;

pub struct Out {
    w: BufWriter<Stdout>,
}

impl Out {
    pub fn new() -> Self {
        colored::control::set_override(use_colour());
        Self {
            w: BufWriter::with_capacity(64 * 1024, io::stdout()),
        }
    }

    pub fn line(&mut self, s: &str) -> Result<(), Closed> {
        writeln!(self.w, "{s}").map_err(classify)
    }

    pub fn flush(&mut self) -> Result<(), Closed> {
        self.w.flush().map_err(classify)
    }
}

fn classify(e: io::Error) -> Closed {
    // Broken pipe is the normal end of `| head`; any other stdout error
    // (disk full on a redirect) also means nobody gets our output any more.
    if e.kind() != io::ErrorKind::BrokenPipe {
        eprintln!("nettrace: cannot write output: {e}");
    }
    Closed
}
