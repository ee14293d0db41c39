//! What userspace costs per event, with nothing else in the way
//! (`cargo xtask bench`): `--capture-records FILE` writes every ring-buffer
//! record received, and `--replay-records FILE` (same flags, same kernel, so
//! the same hook slots) feeds them to the mode's sink instead of the ring
//! buffer: decode, track, analyse and print, timed in CPU time of the one
//! thread that does it. Under a live flood the traffic generator, not
//! nettrace, sets the pace; here nothing does.
//!
//! The file is the records one after another, each a little-endian `u32`
//! length and its bytes.

use std::{
    fmt,
    fs::File,
    io::{BufWriter, Write as _},
    path::Path,
};

use anyhow::Context as _;

use super::{Flow, Record, Sink};

/// Records handed to the sink between two `batch_done` calls, as a drained
/// burst of the ring buffer would be.
const BATCH: usize = 1024;

/// `--capture-records`: the file being written.
pub struct Capture {
    out: BufWriter<File>,
    path: std::path::PathBuf,
}

impl Capture {
    pub fn create(path: &Path) -> anyhow::Result<Self> {
        let file = File::create(path).with_context(|| format!("--capture-records {}", path.display()))?;
        Ok(Self {
            out: BufWriter::new(file),
            path: path.to_owned(),
        })
    }

    pub fn write(&mut self, record: &[u8]) -> anyhow::Result<()> {
        let len = u32::try_from(record.len()).context("record over 4 GiB")?;
        self.out
            .write_all(&len.to_le_bytes())
            .and_then(|()| self.out.write_all(record))
            .with_context(|| format!("--capture-records {}", self.path.display()))
    }

    pub fn finish(mut self) -> anyhow::Result<()> {
        self.out
            .flush()
            .with_context(|| format!("--capture-records {}", self.path.display()))
    }
}

/// What a replay measured.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Replayed {
    pub records: u64,
    pub cpu_ns: u64,
}

impl fmt::Display for Replayed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let per = self.cpu_ns as f64 / self.records.max(1) as f64;
        write!(
            f,
            "{} records in {:.3} s CPU, {per:.0} ns per record",
            self.records,
            self.cpu_ns as f64 / 1e9
        )
    }
}

/// The records of a capture file, in order.
fn records(bytes: &[u8]) -> anyhow::Result<Vec<&[u8]>> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while !rest.is_empty() {
        let (len, tail) = rest
            .split_first_chunk::<4>()
            .context("capture file: cut in a length")?;
        let len = u32::from_le_bytes(*len) as usize;
        anyhow::ensure!(tail.len() >= len, "capture file: cut in a record");
        let (record, tail) = tail.split_at(len);
        out.push(record);
        rest = tail;
    }
    Ok(out)
}

/// CPU time of the calling thread, in ns.
fn thread_cpu_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills the struct; the clock always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Feeds the records of `path` to `sink` (stopping where it says stop);
/// records this binary does not decode are skipped, as live ones are.
/// The first batch warms up (symbol tables are read on first use) and is
/// not counted when there are more.
pub fn replay(path: &Path, sink: &mut (impl Sink + ?Sized)) -> anyhow::Result<Replayed> {
    let bytes = std::fs::read(path).with_context(|| format!("--replay-records {}", path.display()))?;
    let records = records(&bytes)?;
    let batches = records.chunks(BATCH);
    let warm_up = batches.len() > 1;
    let mut start = thread_cpu_ns();
    let mut done = Replayed::default();
    'batches: for (i, batch) in batches.enumerate() {
        for bytes in batch {
            done.records += 1;
            if let Ok(record) = Record::decode(bytes)
                && sink.event(record) == Flow::Stop
            {
                break 'batches;
            }
        }
        if sink.batch_done() == Flow::Stop {
            break;
        }
        if i == 0 && warm_up {
            start = thread_cpu_ns();
            done.records = 0;
        }
    }
    done.cpu_ns = thread_cpu_ns() - start;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Counts what it is given.
    #[derive(Default)]
    struct Counter {
        events: usize,
        batches: usize,
    }

    impl Sink for Counter {
        fn event(&mut self, _: Record) -> Flow {
            self.events += 1;
            Flow::Continue
        }
        fn batch_done(&mut self) -> Flow {
            self.batches += 1;
            Flow::Continue
        }
    }

    #[test]
    fn a_capture_replays_record_for_record() {
        use nettrace_common::{DropEvent, record::Record as _};
        let path = std::env::temp_dir().join(format!("nettrace-capture-{}", std::process::id()));
        // SAFETY: plain data; zero is valid.
        let mut ev: DropEvent = unsafe { std::mem::zeroed() };
        ev.header = DropEvent::HEADER;
        // SAFETY: reading the bytes of a plain-data struct.
        let bytes = unsafe {
            std::slice::from_raw_parts((&raw const ev).cast::<u8>(), std::mem::size_of::<DropEvent>())
        };
        let mut c = Capture::create(&path).unwrap();
        for _ in 0..BATCH + 1 {
            c.write(bytes).unwrap();
        }
        c.finish().unwrap();
        let mut sink = Counter::default();
        let r = replay(&path, &mut sink).unwrap();
        std::fs::remove_file(&path).unwrap();
        // The first batch warms up and is not counted.
        assert_eq!((r.records, sink.events, sink.batches), (1, BATCH + 1, 2));
    }

    #[test]
    fn a_cut_file_is_an_error() {
        assert!(records(&[5, 0, 0, 0, 1, 2]).is_err());
        assert!(records(&[5, 0]).is_err());
        assert_eq!(records(&[1, 0, 0, 0, 9]).unwrap(), vec![&[9u8][..]]);
    }
}
