//! Which attach mechanisms this kernel offers, found by loading (and where it
//! matters attaching) tiny programs from our own object. Version strings lie:
//! distributions backport features and lock others down (this project's CI
//! host refuses fentry with EPERM and has no kprobes at all).
//!
//! Start-up waits for these probes, so they cost as little as they can:
//! only mechanisms a backend uses are probed (raw tracepoints are not: no
//! backend attaches through them); a classic tracepoint program is only
//! loaded, not attached, because detaching it waits for an RCU grace period
//! (80 ms measured on the test host) and every kernel with BPF attaches
//! tracepoints (a hook that still fails says why when it is attached); the
//! other probes' links are detached on a thread of their own while the mode
//! loads and attaches its programs, and tracing starts only once they are
//! gone ([`Capabilities::probes_detached`]): probes leave nothing behind.

use std::{fmt, time::Instant};

use aya::{
    Btf, Ebpf,
    programs::{BtfTracePoint, FEntry, KProbe, TracePoint},
};

use super::btf::KernelBtf;
use crate::load::Logged as _;

/// The result of one probe: `Ok` or why not.
pub type Probe = Result<(), String>;

#[derive(Debug)]
pub struct Capabilities {
    pub btf: Probe,
    pub tp_btf: Probe,
    pub tracepoint: Probe,
    pub fentry: Probe,
    pub kprobe: Probe,
    /// How long probing took, for `--debug`.
    pub elapsed_ms: f64,
    /// The thread detaching the probes' links.
    pub(crate) detaching: Option<std::thread::JoinHandle<()>>,
}

impl Capabilities {
    /// Waits until the probes' links are detached.
    pub fn probes_detached(&mut self) {
        if let Some(t) = self.detaching.take() {
            let _ = t.join();
        }
    }
}

/// The tracepoint every probe uses: it is where `--drop` attaches anyway.
const PROBE_TP: (&str, &str) = ("skb", "kfree_skb");

/// Functions to try fentry/kprobe on: any one present is enough.
const PROBE_FUNCS: [&str; 4] = [
    "ip_rcv",
    "__netif_receive_skb_core",
    "kfree_skb_reason",
    "sk_skb_reason_drop",
];

fn err(e: impl fmt::Display) -> String {
    // aya's errors carry their cause as a source; show the whole chain.
    let e = anyhow::anyhow!("{e}");
    format!("{e:#}")
}

fn chain(e: aya::programs::ProgramError) -> String {
    format!("{:#}", anyhow::Error::new(e))
}

/// Links of successful probes, dropped (detached) later, elsewhere.
type Links = Vec<Box<dyn Send>>;

/// `functions`: also probe fentry and kprobes (else they are reported as
/// not probed).
pub fn probe(ebpf: &mut Ebpf, btf: Option<&Btf>, kbtf: &KernelBtf, functions: bool) -> Capabilities {
    let start = Instant::now();
    let mut links = Links::new();
    let (_, name) = PROBE_TP;
    let btf_probe: Probe = btf.map(|_| ()).ok_or_else(|| "no kernel BTF".to_string());

    let tp_btf = match btf {
        None => Err("needs kernel BTF".into()),
        Some(btf) => with_program::<BtfTracePoint>(ebpf, "probe_tp_btf", &mut links, |p| {
            p.load(name, btf).logged("capability probe tp_btf").map_err(err)?;
            let id = p.attach().map_err(chain)?;
            Ok(Box::new(p.take_link(id).map_err(chain)?))
        }),
    };
    let tracepoint = with_program::<TracePoint>(ebpf, "probe_tracepoint", &mut links, |p| {
        p.load().logged("capability probe tracepoint").map_err(err)?;
        Ok(Box::new(()))
    });
    // Each lookup scans the whole BTF when it is read lazily (`--drop`).
    let func = PROBE_FUNCS
        .iter()
        .copied()
        .filter(|_| functions)
        .find(|f| kbtf.has_function(f));
    let not_probed = || Err::<(), _>("not probed: this mode hooks no kernel function".to_string());
    let fentry = match (btf, func) {
        _ if !functions => not_probed(),
        (None, _) => Err("needs kernel BTF".into()),
        (_, None) => Err(format!("none of {PROBE_FUNCS:?} in BTF")),
        (Some(btf), Some(func)) => with_program::<FEntry>(ebpf, "probe_fentry", &mut links, |p| {
            p.load(func, btf).logged("capability probe fentry").map_err(err)?;
            let id = p.attach().map_err(chain)?;
            Ok(Box::new(p.take_link(id).map_err(chain)?))
        }),
    };
    let kprobe = match func {
        _ if !functions => not_probed(),
        None => Err(format!("none of {PROBE_FUNCS:?} in BTF")),
        Some(func) => with_program::<KProbe>(ebpf, "probe_kprobe", &mut links, |p| {
            p.load().logged("capability probe kprobe").map_err(err)?;
            let id = p.attach(func, 0).map_err(chain)?;
            Ok(Box::new(p.take_link(id).map_err(chain)?))
        }),
    };
    let detaching = Some(std::thread::spawn(move || drop(links)));
    Capabilities {
        detaching,
        btf: btf_probe,
        tp_btf,
        tracepoint,
        fentry,
        kprobe,
        elapsed_ms: start.elapsed().as_secs_f64() * 1e3,
    }
}

/// Runs `f` on program `name`, keeps the link it made in `links`, then
/// unloads the program: probes leave nothing behind once `links` is
/// dropped.
fn with_program<P>(
    ebpf: &mut Ebpf,
    name: &str,
    links: &mut Links,
    f: impl FnOnce(&mut P) -> Result<Box<dyn Send>, String>,
) -> Probe
where
    for<'a> &'a mut P: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
    P: Unload,
{
    let prog = ebpf
        .program_mut(name)
        .ok_or_else(|| format!("program {name} missing from object"))?;
    let p: &mut P = prog.try_into().map_err(err)?;
    let result = f(p).map(|link| links.push(link));
    p.unload_quietly();
    result
}

/// aya's program types share `unload` by convention, not by trait.
pub trait Unload {
    fn unload_quietly(&mut self);
}

macro_rules! unload {
    ($($t:ty),*) => {$(
        impl Unload for $t {
            fn unload_quietly(&mut self) {
                // Not loaded (the probe failed early) is fine.
                let _ = self.unload();
            }
        }
    )*};
}
unload!(BtfTracePoint, TracePoint, FEntry, KProbe);

impl fmt::Display for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows = [
            ("BTF", &self.btf),
            ("tp_btf", &self.tp_btf),
            ("tracepoint", &self.tracepoint),
            ("fentry/fexit", &self.fentry),
            ("kprobe", &self.kprobe),
        ];
        writeln!(f, "kernel capabilities (probed in {:.1} ms):", self.elapsed_ms)?;
        for (name, r) in rows {
            match r {
                Ok(()) => writeln!(f, "  {name:<15} yes")?,
                Err(why) => writeln!(f, "  {name:<15} no ({why})")?,
            }
        }
        Ok(())
    }
}
