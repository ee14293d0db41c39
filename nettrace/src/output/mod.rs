//! Everything nettrace writes to stdout: event lines for grep/less (or
//! JSON records with `--json`, see [`record`]), and the `begin trace...` /
//! `end trace...` markers scripts wait for.
//!
//! Lines are buffered and flushed once per batch of events (not per line):
//! cheap when piping a flood, prompt when a human watches. A closed pipe
//! (`| head`) is not an error: it ends tracing quietly.

mod clock;
#[cfg(test)]
pub mod golden;
pub mod histogram;
pub mod json;
pub mod metrics;
pub mod pcap;
pub mod progress;
pub mod record;
pub mod scrape;
pub mod stack;

use std::io::{self, BufWriter, IsTerminal as _, Stdout, Write};

pub use clock::{Clock, realtime_offset_ns};
pub use record::{Format, Marker, Record};

/// The terminal stream records go to: stdout, or stderr when stdout
/// carries something else (`-w -`: the pcapng file).
pub enum Console {
    Stdout(Stdout),
    Stderr(io::Stderr),
}

impl Console {
    fn is_terminal(&self) -> bool {
        match self {
            Console::Stdout(s) => s.is_terminal(),
            Console::Stderr(s) => s.is_terminal(),
        }
    }
}

impl Write for Console {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Console::Stdout(s) => s.write(buf),
            Console::Stderr(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        match self {
            Console::Stdout(s) => s.flush(),
            Console::Stderr(s) => s.flush(),
        }
    }
}

/// A NUL-terminated kernel string (`comm`, `ifname`, table names).
pub fn cstr(b: &[u8]) -> String {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    String::from_utf8_lossy(&b[..end]).into_owned()
}

/// [`cstr`] without a copy; empty when not UTF-8.
pub fn cstr_ref(b: &[u8]) -> &str {
    let end = b.iter().position(|&c| c == 0).unwrap_or(b.len());
    std::str::from_utf8(&b[..end]).unwrap_or("")
}

/// Signals that the reader went away: stop producing output.
#[derive(Debug)]
pub struct Closed;

/// Where records go, as text or JSON: stdout in the tool, a `Vec<u8>` in
/// unit tests.
pub struct Out<W: Write = Console> {
    w: BufWriter<W>,
    format: Format,
}

impl Out<Console> {
    /// Stdout, or stderr when `stderr` (stdout carries the pcapng file);
    /// coloured only on a terminal, and never with `NO_COLOR`.
    pub fn new(format: Format, stderr: bool) -> Self {
        let console = if stderr {
            Console::Stderr(io::stderr())
        } else {
            Console::Stdout(io::stdout())
        };
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        colored::control::set_override(console.is_terminal() && !no_color);
        Self::to(console).with_format(format)
    }
}

impl<W: Write> Out<W> {
    /// Text into `w`.
    pub fn to(w: W) -> Self {
        Self {
            w: BufWriter::with_capacity(64 * 1024, w),
            format: Format::Text,
        }
    }

    pub fn with_format(self, format: Format) -> Self {
        Self { format, ..self }
    }

    /// Writes what only the text form has (`--conn`'s snapshot header);
    /// `Ok(false)`: nothing, the format is JSON.
    pub fn text_only(&mut self, text: impl FnOnce(&mut dyn Write) -> io::Result<()>) -> Result<bool, Closed> {
        match self.format {
            Format::Text => text(&mut self.w).map(|()| true).map_err(classify),
            Format::Json => Ok(false),
        }
    }

    /// Writes one record in the session's format.
    pub fn emit(&mut self, r: &impl Record) -> Result<(), Closed> {
        match self.format {
            Format::Text => r.text(&mut self.w),
            Format::Json => json::write(&mut self.w, r),
        }
        .map_err(classify)
    }

    pub fn flush(&mut self) -> Result<(), Closed> {
        self.w.flush().map_err(classify)
    }

    /// The writer, flushed (tests read what a sink wrote).
    #[cfg(test)]
    pub fn into_inner(self) -> W {
        self.w
            .into_inner()
            .map_err(std::io::IntoInnerError::into_error)
            .expect("flush")
    }
}

/// What the session driver writes its markers (`begin trace...`) and
/// loss records through, whatever a sink's writer is.
pub trait Markers {
    fn marker(&mut self, m: Marker) -> Result<(), Closed>;
    fn flush(&mut self) -> Result<(), Closed>;
}

impl<W: Write> Markers for Out<W> {
    fn marker(&mut self, m: Marker) -> Result<(), Closed> {
        self.emit(&m)
    }

    fn flush(&mut self) -> Result<(), Closed> {
        Out::flush(self)
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
