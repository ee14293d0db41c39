//! One folder per tracing mode. A mode owns what it needs from the kernel,
//! its plan, its eBPF object and globals, and the sink that prints what the
//! kernel sends; `crate::run` drives every mode the same way:
//! facts → `Mode::start` (plan, load, attach) → stream into the sink →
//! `ModeSink::finish` → losses.
//!
//! Adding a mode: a folder here with a type implementing [`Mode`], and one
//! line in [`select`].

pub mod conn;
pub mod drop;
pub mod lifecycle;
pub mod tcp;

use aya::Ebpf;

use crate::{
    cli::{self, Config},
    error::Error,
    events::Sink,
    output::{Markers, progress::Progress},
    session::{Kernel, Session},
};

/// How much of the kernel's BTF a mode looks up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lookups {
    /// A few types (struct offsets, one tracepoint): parsed lazily.
    Few,
    /// Hundreds of functions (the lifecycle catalogue): parsed up front.
    Many,
}

/// A tracing mode.
pub trait Mode {
    /// The kernel facts the mode needs; `None` for modes that load no eBPF
    /// (`--conn` reads netlink only).
    fn kernel(&self) -> Option<Lookups>;

    /// Whether the mode may hook kernel functions (fentry, fexit, kprobe).
    /// A mode that never does skips their capability probes, which attach
    /// a trampoline and a kprobe: most of `--drop`'s start-up in the VM.
    fn hooks_functions(&self) -> bool {
        true
    }

    /// For a mode that attaches only to tracepoints it knows by name, their
    /// BTF typedefs (`btf_trace_kfree_skb`): all aya needs of the kernel's
    /// BTF then (see `crate::kernel::btf::stub`). `None`: aya parses it all.
    fn attach_typedefs(&self) -> Option<&'static [&'static str]> {
        None
    }

    /// Plans, loads and attaches: the eBPF object (whose `EVENTS` ring
    /// buffer feeds the sink) and the sink. Without an object the sink is
    /// polled through [`Sink::tick`], every [`ModeSink::period`].
    fn start(self: Box<Self>, s: &Session<'_>, k: Option<&Kernel>) -> Result<Started, Error>;
}

/// A started mode.
pub struct Started {
    pub ebpf: Option<Ebpf>,
    pub sink: Box<dyn ModeSink>,
}

/// Where a mode's events go: its printer and its stdout.
pub trait ModeSink: Sink {
    /// The output the driver writes `begin trace...`/`end trace...` to.
    fn out(&mut self) -> &mut dyn Markers;

    /// Tracing ended and the programs are detached: print what is still
    /// open. Returns what was printed, against `-c`, or why the sink
    /// failed on the way.
    fn finish(&mut self) -> Result<&Progress, Error>;

    /// Without an eBPF object: how often to call `tick`; `None` ticks once.
    fn period(&self) -> Option<std::time::Duration> {
        None
    }
}

/// The mode the flags ask for. Checks what can be checked without the
/// kernel (hook names, `--rules`): a typo is a usage error even without root.
pub fn select(config: &Config) -> Result<Box<dyn Mode>, Error> {
    Ok(match &config.mode {
        cli::Mode::Lifecycle(l) => Box::new(lifecycle::Lifecycle::new(l)?),
        cli::Mode::Drop { stack, detail } => Box::new(drop::Drop {
            stack: *stack,
            detail: *detail,
        }),
        cli::Mode::Conn { interval, states } => Box::new(conn::Connections {
            interval: *interval,
            states: *states,
        }),
        m => Box::new(tcp::Tcp::new(m)),
    })
}
