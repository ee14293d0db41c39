//! One tracing session, start to end, the same for every mode (`crate::modes`):
//! pick the mode from the flags, gather the kernel facts it needs
//! (`crate::session`), let it plan, load and attach, print `begin trace...`,
//! stream the ring buffer into its sink until done, detach, let the sink
//! print what is still open, print `end trace...` and the loss counts.

use aya::Ebpf;

use crate::{
    cli::Config,
    detach,
    error::Error,
    events::{Events, Flow, monotonic_ns},
    load,
    modes::{self, Lookups, ModeSink},
    output::Marker,
    session::{Session, serve_metrics},
};

pub async fn run(config: &Config) -> Result<(), Error> {
    load::set_libbpf_debug(config.kernel.libbpf_debug);
    let mut s = Session::new(config);
    // Hook names and rule files are checked here, before touching the
    // kernel: a typo is a usage error even without root.
    let mode = modes::select(config)?;
    let mut kernel = match mode.kernel() {
        Some(lookups) => Some(s.kernel(
            lookups == Lookups::Many,
            mode.hooks_functions(),
            mode.attach_typedefs(),
        )?),
        None => None,
    };
    s.metrics = serve_metrics(&s).await?;
    s.attribute()?;
    let started = mode.start(&s, kernel.as_ref())?;
    if let Some(gate) = &s.gate {
        gate.watch();
    }
    if let Some(k) = kernel.as_mut() {
        k.caps.probes_detached();
    }
    let mut sink = started.sink;
    let ended = match started.ebpf {
        Some(ebpf) => stream(&s, ebpf, sink.as_mut()).await,
        None => poll(&s, sink.as_mut()).await,
    };
    drop(sink);
    // The parsed BTF is hundreds of thousands of small allocations (for
    // the default set; aya's and btf-rs's): freeing them one by one took
    // 40 ms of the exit here, about ten times that under the VM's
    // emulation. The process's exit releases them at once. (The sink is
    // dropped: its writers flush when dropped.)
    std::mem::forget(kernel);
    ended
}

/// A mode without eBPF: ticks its sink now and then every
/// [`ModeSink::period`] until it says stop or a signal comes.
async fn poll(s: &Session<'_>, sink: &mut dyn ModeSink) -> Result<(), Error> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    if let Some(m) = &s.metrics {
        m.set_ready();
    }
    while sink.tick(monotonic_ns()) == Flow::Continue {
        let Some(every) = sink.period() else { break };
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = sigint.recv() => break,
            _ = sigterm.recv() => break,
        }
    }
    sink.finish()?;
    Ok(())
}

/// Prints `begin trace...`, runs the event loop, detaches, prints
/// `end trace...` and the loss counts.
async fn stream(s: &Session<'_>, mut ebpf: Ebpf, sink: &mut dyn ModeSink) -> Result<(), Error> {
    let mut events = Events::new(&mut ebpf)?;
    events.metrics = s.metrics.clone();
    events.bench(&s.config.bench)?;
    s.debug("ready");
    if let Some(m) = &s.metrics {
        m.set_ready();
    }
    if sink
        .out()
        .marker(Marker::Begin)
        .and_then(|()| sink.out().flush())
        .is_err()
    {
        return Ok(());
    }
    let ended = events.run(sink).await;
    s.debug(format_args!("stream: {}", events.stats()));
    let lost = events.lost().unwrap_or(0);
    let untracked = events.untracked().unwrap_or(0);
    let rate_limited = events.rate_limited().unwrap_or(0);
    let undecided = events.undecided().unwrap_or(0);
    // Detach before saying so.
    drop(events);
    detach::all(ebpf);
    s.debug("detached");
    let progress = sink.finish()?;
    let (seen, closed) = (progress.seen, progress.closed);
    let ended = ended?;
    s.debug(format_args!("ended by {ended:?} after {seen} events/packets"));
    if !closed {
        // Losses as records too (JSON only), so a consumer of the stream
        // sees them.
        for (reason, count) in [
            ("ring_buffer_full", lost),
            ("tracking_table_full", untracked),
            ("rate_limited", rate_limited),
            ("filter_undecided", undecided),
        ] {
            if count > 0 {
                let _ = sink.out().marker(Marker::Lost { reason, count });
            }
        }
        let _ = sink.out().marker(Marker::End).and_then(|()| sink.out().flush());
    }
    if lost > 0 {
        eprintln!("nettrace: {lost} events lost (ring buffer full)");
    }
    if rate_limited > 0 {
        eprintln!(
            "nettrace: {rate_limited} events held back by --rate-limit {}",
            s.config.rate_limit
        );
    }
    if undecided > 0 {
        eprintln!(
            "nettrace: {undecided} packets left out undecided: the filter EXPRESSION reads past the {} bytes of IP header the kernel copies ({} from the Ethernet header for a link-layer expression)",
            nettrace_common::PKT_HDR_LEN,
            nettrace_common::expr::L2_COPY_LEN
        );
    }
    if untracked > 0 {
        eprintln!("nettrace: {untracked} packets could not be followed (tracking table full)");
    }
    Ok(())
}
