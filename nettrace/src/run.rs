//! One tracing session, start to end: check the system, learn the kernel,
//! load and attach, print `begin trace...`, stream events until done, detach,
//! print `end trace...`.

use std::path::PathBuf;

use aya::Btf;
use nettrace_common::{DropConfig, KernelLayout, drop::DropArgs};

use crate::{
    cli::{Config, Mode},
    events::{Events, Flow, Sink},
    kernel::{
        btf::{KernelBtf, VMLINUX_BTF},
        caps, layout,
        reasons::DropReasons,
        tracefs,
    },
    load,
    modes::drop,
    output::{Clock, Closed, Out},
};

/// How a session failed.
#[derive(Debug)]
pub enum Failure {
    /// The system cannot run nettrace (not root, no BTF): exit code 2.
    Unusable(String),
    /// Something broke while running: exit code 1.
    Runtime(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        Failure::Runtime(e.into())
    }
}

fn debug(config: &Config, msg: impl std::fmt::Display) {
    if config.debug {
        eprintln!("nettrace: {msg}");
    }
}

pub async fn run(config: &Config) -> Result<(), Failure> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(Failure::Unusable(
            "must run as root: loading eBPF programs needs CAP_BPF and CAP_PERFMON (or CAP_SYS_ADMIN)".into(),
        ));
    }
    let start = std::time::Instant::now();
    let kbtf = KernelBtf::from_file(VMLINUX_BTF).map_err(|e| {
        Failure::Unusable(format!(
            "{e}: nettrace needs a kernel built with CONFIG_DEBUG_INFO_BTF=y"
        ))
    })?;
    debug(config, format_args!("BTF parsed in {:.1} ms", start.elapsed().as_secs_f64() * 1e3));
    let layout = layout::resolve(&kbtf).map_err(|e| Failure::Unusable(format!("unsupported kernel: {e}")))?;
    debug(config, format_args!("kernel layout from BTF: {layout:?}"));

    let tracefs_root: Option<PathBuf> = match tracefs::ensure_mounted() {
        Ok((root, mounted)) => {
            if mounted {
                eprintln!("nettrace: mounted tracefs at {}", root.display());
            }
            Some(root)
        }
        Err(e) => {
            debug(
                config,
                format_args!("tracefs unavailable ({e}): classic tracepoints disabled"),
            );
            None
        }
    };

    let Mode::Drop { stack } = config.mode;
    let (btf_args, tp_args) = drop::args(&kbtf, tracefs_root.as_deref());
    let none = DropArgs {
        skb: KernelLayout::NONE,
        location: KernelLayout::NONE,
        reason: KernelLayout::NONE,
        _pad: 0,
    };
    let drop_config = DropConfig {
        layout,
        filter: config.filter,
        btf_args: btf_args.unwrap_or(none),
        tp_args: tp_args.unwrap_or(none),
        stack: stack as u32,
        _pad: 0,
    };
    let reasons = DropReasons::from_btf(&kbtf).map_err(anyhow::Error::from)?;
    if reasons.is_empty() {
        debug(
            config,
            "this kernel has no enum skb_drop_reason: drops print without a reason",
        );
    }

    let mut ebpf = load::load(&drop_config)?;
    debug(config, format_args!("object loaded at {:.1} ms", start.elapsed().as_secs_f64() * 1e3));
    let aya_btf = Btf::from_sys_fs().ok();
    debug(config, format_args!("aya BTF parsed at {:.1} ms", start.elapsed().as_secs_f64() * 1e3));
    let caps = caps::probe(&mut ebpf, aya_btf.as_ref(), &kbtf);
    debug(config, format_args!("{caps}"));
    let how = drop::attach(
        &mut ebpf,
        config.backend,
        &caps,
        aya_btf.as_ref(),
        btf_args.is_some(),
        tp_args.is_some(),
    )?;
    debug(config, format_args!("drop monitor attached via {how}"));

    let mut events = Events::new(&mut ebpf)?;
    let printer = drop::Printer::new(reasons, Clock::new(config.date), stack.then_some(&mut ebpf))?;
    let mut out = Out::new();
    debug(
        config,
        format_args!("ready in {:.1} ms", start.elapsed().as_secs_f64() * 1e3),
    );
    if out.line("begin trace...").and_then(|()| out.flush()).is_err() {
        return Ok(());
    }

    let mut sink = DropSink {
        printer: &printer,
        out: &mut out,
        stack,
        count: config.count,
        seen: 0,
        closed: false,
    };
    let ended = events.run(&mut sink).await;
    let (seen, closed) = (sink.seen, sink.closed);
    let _ = out.flush();
    let lost = events.lost().unwrap_or(0);
    // Detach before saying so: dropping the object closes every link and map.
    drop(events);
    drop(printer);
    drop(ebpf);
    let ended = ended?;
    debug(config, format_args!("ended by {ended:?} after {seen} events"));
    if !closed {
        let _ = out.line("end trace...").and_then(|()| out.flush());
    }
    if lost > 0 {
        eprintln!("nettrace: {lost} events lost (ring buffer full)");
    }
    Ok(())
}

/// Prints drop events as they arrive and stops at `-c N` or a closed pipe.
struct DropSink<'a> {
    printer: &'a drop::Printer,
    out: &'a mut Out,
    stack: bool,
    count: Option<u64>,
    seen: u64,
    closed: bool,
}

impl DropSink<'_> {
    fn write(&mut self, ev: &nettrace_common::DropEvent) -> Result<(), Closed> {
        self.out.line(&self.printer.line(ev))?;
        if self.stack {
            for l in self.printer.stack(ev) {
                self.out.line(&l)?;
            }
        }
        Ok(())
    }

    fn closed(&mut self) -> Flow {
        self.closed = true;
        Flow::Stop
    }
}

impl Sink for DropSink<'_> {
    fn event(&mut self, bytes: &[u8]) -> Flow {
        let Some(ev) = drop::Printer::parse(bytes) else {
            return Flow::Continue;
        };
        if self.write(&ev).is_err() {
            return self.closed();
        }
        self.seen += 1;
        if self.count.is_some_and(|n| self.seen >= n) {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }

    fn batch_done(&mut self) -> Flow {
        if self.out.flush().is_err() {
            self.closed()
        } else {
            Flow::Continue
        }
    }
}
