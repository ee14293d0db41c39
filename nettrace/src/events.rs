//! The ring buffer reader: drains events as they come, decodes each into a
//! [`Record`] (`record`), notices signals, and keeps the lost-event count
//! honest.
//!
//! The eBPF side counts every event that did not fit in the ring buffer in
//! the per-CPU `LOST` map; this loop reads it every second and reports growth
//! on stderr (at most once a second), and the total when tracing ends.
//!
//! The programs wake this loop only once the buffer holds a good part of a
//! burst (`WAKE_AT` in `nettrace-ebpf/src/maps.rs`): a wake-up per record
//! costs the traced path more than the record. So the loop also drains the
//! buffer every [`DRAIN_EVERY`] on its own, which bounds how late a lone
//! event is printed.

use std::time::Duration;

use anyhow::Context as _;
use aya::{
    Ebpf,
    maps::{MapData, PerCpuArray, RingBuf},
};
use nettrace_common::trace::lost;
use tokio::{
    io::unix::AsyncFd,
    signal::unix::{SignalKind, signal},
};

/// How often the ring buffer is drained without a wake-up: late enough to
/// batch, soon enough that a person does not notice.
pub const DRAIN_EVERY: Duration = Duration::from_millis(25);

/// What the event handler wants next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// Stop tracing (count reached, output closed).
    Stop,
}

pub mod record;
pub mod replay;

pub use record::Record;

/// Receives what the ring buffer delivers.
pub trait Sink {
    /// One record.
    fn event(&mut self, record: Record) -> Flow;
    /// The ring buffer is drained for now: flush output here.
    fn batch_done(&mut self) -> Flow;
    /// Called about once a second with the current CLOCK_MONOTONIC time (ns),
    /// the clock of event timestamps.
    fn tick(&mut self, _now_ns: u64) -> Flow {
        Flow::Continue
    }
}

/// CLOCK_MONOTONIC now, in ns (what `bpf_ktime_get_ns` returns).
pub fn monotonic_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime fills the struct; CLOCK_MONOTONIC always exists.
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// Why tracing ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ended {
    Signal,
    Done,
}

pub struct Events {
    ring: AsyncFd<RingBuf<MapData>>,
    // Registered before `begin trace...` is printed: a Ctrl-C right after
    // it must end tracing cleanly, not kill the process.
    sigint: tokio::signal::unix::Signal,
    sigterm: tokio::signal::unix::Signal,
    lost: PerCpuArray<MapData, u64>,
    reported_lost: u64,
    reported_untracked: u64,
    /// Records handed to the sink, and when the first and the last came
    /// (monotonic ns): the pipeline's rate for `--debug` and the benchmark.
    pub received: u64,
    /// Records not decoded (see `record`): counted, the first reason kept
    /// for `--debug`.
    rejected: u64,
    first_rejected: Option<record::Rejected>,
    first_ns: u64,
    last_ns: u64,
    /// `--metrics`: loss totals are published here every second.
    pub metrics: Option<std::sync::Arc<crate::output::metrics::Metrics>>,
    /// `--capture-records`, `--replay-records` (the benchmark's).
    capture: Option<replay::Capture>,
    replay: Option<std::path::PathBuf>,
    replayed: Option<replay::Replayed>,
}

impl Events {
    pub fn new(ebpf: &mut Ebpf) -> anyhow::Result<Self> {
        let ring = RingBuf::try_from(ebpf.take_map("EVENTS").context("map EVENTS missing")?)?;
        let lost = PerCpuArray::try_from(ebpf.take_map("LOST").context("map LOST missing")?)?;
        // SAFETY: the RingBuf owns its map fd, which stays open and unchanged
        // for as long as the AsyncFd (which owns the RingBuf) lives.
        let ring = unsafe { AsyncFd::register_with_interest(ring, tokio::io::Interest::READABLE) }
            .map_err(|e| anyhow::anyhow!("poll ring buffer: {e}"))?;
        Ok(Self {
            ring,
            sigint: signal(SignalKind::interrupt())?,
            sigterm: signal(SignalKind::terminate())?,
            lost,
            reported_lost: 0,
            reported_untracked: 0,
            received: 0,
            rejected: 0,
            first_rejected: None,
            first_ns: 0,
            last_ns: 0,
            metrics: None,
            capture: None,
            replay: None,
            replayed: None,
        })
    }

    /// The benchmark's hidden flags: capture what is received, or replay a
    /// capture instead of reading the ring buffer (`replay`).
    pub fn bench(&mut self, opts: &crate::cli::BenchOpts) -> anyhow::Result<()> {
        self.capture = opts.capture.as_deref().map(replay::Capture::create).transpose()?;
        self.replay = opts.replay.clone();
        Ok(())
    }

    /// Seconds from the first batch of records to the end of the last.
    pub fn busy_secs(&self) -> f64 {
        self.last_ns.saturating_sub(self.first_ns) as f64 / 1e9
    }

    /// `N records in S s`, and the records rejected, if any (`--debug`).
    pub fn stats(&self) -> String {
        let mut s = format!("{} records in {:.3} s", self.received, self.busy_secs());
        if let Some(why) = &self.first_rejected {
            s += &format!(", {} rejected (first: {why})", self.rejected);
        }
        if let Some(r) = &self.replayed {
            s += &format!("; replay: {r}");
        }
        s
    }

    /// Events the kernel could not deliver so far.
    pub fn lost(&self) -> anyhow::Result<u64> {
        self.counter(lost::RING)
    }

    /// Packets the kernel could not track (tracking table full).
    pub fn untracked(&self) -> anyhow::Result<u64> {
        self.counter(lost::TRACK_FULL)
    }

    /// Events held back by `--rate-limit`.
    pub fn rate_limited(&self) -> anyhow::Result<u64> {
        self.counter(lost::RATE_LIMITED)
    }

    /// Packets the filter EXPRESSION could not decide (it reads past the
    /// copied header), left out.
    pub fn undecided(&self) -> anyhow::Result<u64> {
        self.counter(lost::EXPR_BEYOND_COPY)
    }

    fn counter(&self, index: u32) -> anyhow::Result<u64> {
        Ok(self.lost.get(&index, 0).context("read LOST map")?.iter().sum())
    }

    /// Runs until a signal, or until the sink says stop (or, with
    /// `--replay-records`, until the capture is replayed).
    pub async fn run(&mut self, sink: &mut (impl Sink + ?Sized)) -> anyhow::Result<Ended> {
        if let Some(path) = &self.replay {
            self.replayed = Some(replay::replay(path, sink)?);
            return Ok(Ended::Done);
        }
        let ended = self.stream(sink).await;
        if let Some(capture) = self.capture.take() {
            capture.finish()?;
        }
        ended
    }

    async fn stream(&mut self, sink: &mut (impl Sink + ?Sized)) -> anyhow::Result<Ended> {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let mut drain = tokio::time::interval(DRAIN_EVERY);
        drain.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                guard = self.ring.readable_mut() => {
                    let mut guard = guard?;
                    guard.clear_ready();
                    if self.drain(sink) == Flow::Stop {
                        return Ok(Ended::Done);
                    }
                }
                _ = drain.tick() => {
                    if self.drain(sink) == Flow::Stop {
                        return Ok(Ended::Done);
                    }
                }
                // What waits unannounced (below `WAKE_AT`, within one
                // `DRAIN_EVERY`) is still handed over, not lost.
                _ = self.sigint.recv() => {
                    self.drain(sink);
                    return Ok(Ended::Signal);
                }
                _ = self.sigterm.recv() => {
                    self.drain(sink);
                    return Ok(Ended::Signal);
                }
                _ = tick.tick() => {
                    self.report_lost_growth();
                    if sink.tick(monotonic_ns()) == Flow::Stop {
                        return Ok(Ended::Done);
                    }
                }
            }
        }
    }

    /// Hands every record in the ring buffer to the sink, then lets it
    /// flush (only when there was something: an idle timer writes nothing).
    fn drain(&mut self, sink: &mut (impl Sink + ?Sized)) -> Flow {
        let ring = self.ring.get_mut();
        let mut flow = Flow::Continue;
        let before = self.received;
        while let Some(item) = ring.next() {
            self.received += 1;
            if let Some(capture) = &mut self.capture
                && let Err(e) = capture.write(&item)
            {
                eprintln!("nettrace: {e:#}; capture stopped");
                self.capture = None;
            }
            match Record::decode(&item) {
                Ok(record) => flow = sink.event(record),
                Err(why) => {
                    self.rejected += 1;
                    self.first_rejected.get_or_insert(why);
                }
            }
            if flow == Flow::Stop {
                return Flow::Stop;
            }
        }
        if self.received == before {
            return Flow::Continue;
        }
        self.last_ns = monotonic_ns();
        if before == 0 {
            self.first_ns = self.last_ns;
        }
        sink.batch_done()
    }

    fn report_lost_growth(&mut self) {
        if let Some(m) = &self.metrics {
            m.lost("ring_buffer_full", self.lost().unwrap_or(0));
            m.lost("tracking_table_full", self.untracked().unwrap_or(0));
            m.lost("rate_limited", self.rate_limited().unwrap_or(0));
            m.lost("filter_undecided", self.undecided().unwrap_or(0));
        }
        if let Ok(lost) = self.lost()
            && lost > self.reported_lost
        {
            eprintln!(
                "nettrace: {} events lost in the last second (ring buffer full), {lost} in total",
                lost - self.reported_lost
            );
            self.reported_lost = lost;
        }
        if let Ok(n) = self.untracked()
            && n > self.reported_untracked
        {
            eprintln!(
                "nettrace: {} packets could not be followed in the last second (tracking table full), {n} in total",
                n - self.reported_untracked
            );
            self.reported_untracked = n;
        }
    }
}
