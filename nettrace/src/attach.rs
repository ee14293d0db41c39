//! Attaching programs, the same way for every mode: a program of the
//! object, its target, and the backends to try in order. The first that
//! loads and attaches wins; what loaded but did not attach is unloaded
//! again, so neither the next backend nor the kernel is left with a
//! half-set-up program; and every backend that was not used says why.
//!
//! Which backends to try is each mode's plan (`crate::plan` for the
//! lifecycle catalogue, a fixed order for `--drop`, `--sock`, `--rtt`);
//! how to try them is here only.

use std::fmt;

use aya::{
    Btf, Ebpf,
    programs::{BtfTracePoint, FEntry, FExit, KProbe, Program, ProgramError, TracePoint},
};

use crate::{kernel::caps::Capabilities, load::Logged as _};

/// How a program is attached to the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Backend {
    TpBtf,
    Tracepoint,
    Fentry,
    Fexit,
    Kprobe,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::TpBtf => "tp_btf",
            Backend::Tracepoint => "tracepoint",
            Backend::Fentry => "fentry",
            Backend::Fexit => "fexit",
            Backend::Kprobe => "kprobe",
        })
    }
}

/// One way to attach one program.
#[derive(Clone, Copy, Debug)]
pub struct Target<'a> {
    pub backend: Backend,
    /// The program's name in the object.
    pub program: &'a str,
    /// The kernel function (fentry, fexit, kprobe) or the tracepoint's
    /// event name (tp_btf, tracepoint).
    pub name: &'a str,
    /// The tracepoint's group (classic tracepoints only).
    pub group: &'a str,
}

impl<'a> Target<'a> {
    /// A kernel function, hooked by fentry, fexit or kprobe.
    pub fn function(backend: Backend, program: &'a str, function: &'a str) -> Self {
        Self {
            backend,
            program,
            name: function,
            group: "",
        }
    }

    /// A tracepoint, by tp_btf or classic.
    pub fn tracepoint(backend: Backend, program: &'a str, group: &'a str, event: &'a str) -> Self {
        Self {
            backend,
            program,
            name: event,
            group,
        }
    }
}

/// What backends need from this system: the capability probes' verdicts
/// and the kernel's BTF.
#[derive(Clone, Copy)]
pub struct Means<'a> {
    pub caps: &'a Capabilities,
    pub btf: Option<&'a Btf>,
}

impl Means<'_> {
    /// Why `backend` cannot work here, if it cannot.
    pub fn unusable(&self, backend: Backend) -> Option<String> {
        let probe = match backend {
            Backend::Fentry | Backend::Fexit => &self.caps.fentry,
            Backend::TpBtf => &self.caps.tp_btf,
            Backend::Kprobe => &self.caps.kprobe,
            Backend::Tracepoint => return None,
        };
        if let Err(e) = probe {
            return Some(e.clone());
        }
        (self.btf.is_none() && backend != Backend::Kprobe).then(|| "no kernel BTF".into())
    }
}

/// The outcome of trying a program's backends in order.
#[derive(Debug, Default)]
pub struct Attempt {
    /// The backend that attached, if one did.
    pub used: Option<Backend>,
    /// Each backend tried (or ruled out) before, and why it failed.
    pub failed: Vec<(Backend, String)>,
}

impl Attempt {
    /// `fentry: …; kprobe: …`: why each backend failed.
    pub fn why(&self) -> String {
        let why: Vec<String> = self.failed.iter().map(|(b, w)| format!("{b}: {w}")).collect();
        why.join("; ")
    }
}

/// Tries `targets` in order, first checking each backend against `means`;
/// stops at the first that attaches.
pub fn first(ebpf: &mut Ebpf, means: Means<'_>, targets: &[Target<'_>]) -> Attempt {
    let mut attempt = Attempt::default();
    for t in targets {
        let r = match means.unusable(t.backend) {
            Some(why) => Err(why),
            None => attach(ebpf, means.btf, t),
        };
        match r {
            Ok(()) => {
                attempt.used = Some(t.backend);
                break;
            }
            Err(why) => attempt.failed.push((t.backend, why)),
        }
    }
    attempt
}

/// Loads and attaches one target. A program that is loaded already (one
/// classic-tracepoint program can serve many tracepoints) is attached
/// again without reloading; a program this call loaded is unloaded when
/// attaching fails.
pub fn attach(ebpf: &mut Ebpf, btf: Option<&Btf>, t: &Target<'_>) -> Result<(), String> {
    let program = ebpf
        .program_mut(t.program)
        .ok_or_else(|| format!("program {} missing from the object", t.program))?;
    let what = format!("program {} ({} {})", t.program, t.backend, t.name);
    let btf = || btf.ok_or_else(|| "no kernel BTF".to_string());
    match t.backend {
        Backend::TpBtf => {
            let p: &mut BtfTracePoint = typed(program)?;
            let btf = btf()?;
            load_then(p, |p| p.load(t.name, btf), |p| p.attach().map(drop), &what)
        }
        Backend::Fentry => {
            let p: &mut FEntry = typed(program)?;
            let btf = btf()?;
            load_then(p, |p| p.load(t.name, btf), |p| p.attach().map(drop), &what)
        }
        Backend::Fexit => {
            let p: &mut FExit = typed(program)?;
            let btf = btf()?;
            load_then(p, |p| p.load(t.name, btf), |p| p.attach().map(drop), &what)
        }
        Backend::Kprobe => {
            let p: &mut KProbe = typed(program)?;
            load_then(p, KProbe::load, |p| p.attach(t.name, 0).map(drop), &what)
        }
        Backend::Tracepoint => {
            let p: &mut TracePoint = typed(program)?;
            load_then(
                p,
                TracePoint::load,
                |p| p.attach(t.group, t.name).map(drop),
                &what,
            )
        }
    }
}

/// Loads the programs of `targets` that the verifier checks against a
/// kernel function or tracepoint (tp_btf, fentry, fexit: tens of ms each
/// here, seconds under emulation) on as many threads as there are CPUs,
/// before [`attach`] attaches them one by one: privileged loads verify in
/// parallel, and start-up is mostly verification. A failed load is left to
/// [`attach`], which tries again and says why.
pub fn preload(ebpf: &mut Ebpf, btf: &Btf, targets: &[Target<'_>]) {
    let wanted: std::collections::HashMap<&str, &Target<'_>> = targets
        .iter()
        .filter(|t| matches!(t.backend, Backend::TpBtf | Backend::Fentry | Backend::Fexit))
        .map(|t| (t.program, t))
        .collect();
    let mut jobs: Vec<(&mut Program, &Target<'_>)> = ebpf
        .programs_mut()
        .filter_map(|(name, p)| wanted.get(name).map(|t| (p, *t)))
        .collect();
    let threads = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let per_thread = jobs.len().div_ceil(threads).max(1);
    std::thread::scope(|s| {
        for part in jobs.chunks_mut(per_thread) {
            s.spawn(move || {
                for (program, t) in part {
                    let what = format!("program {} ({} {})", t.program, t.backend, t.name);
                    let _ = match (t.backend, &mut **program) {
                        (Backend::TpBtf, Program::BtfTracePoint(p)) => p.load(t.name, btf).logged(&what),
                        (Backend::Fentry, Program::FEntry(p)) => p.load(t.name, btf).logged(&what),
                        (Backend::Fexit, Program::FExit(p)) => p.load(t.name, btf).logged(&what),
                        _ => Ok(()),
                    };
                }
            });
        }
    });
}

/// A program type's load, attach and unload, for [`load_then`].
trait Loadable {
    fn loaded(&self) -> bool;
    fn unload_now(&mut self);
}

macro_rules! loadable {
    ($($t:ty),*) => {$(
        impl Loadable for $t {
            fn loaded(&self) -> bool {
                self.fd().is_ok()
            }
            fn unload_now(&mut self) {
                let _ = self.unload();
            }
        }
    )*};
}

loadable!(BtfTracePoint, FEntry, FExit, KProbe, TracePoint);

/// Loads `p` unless loaded, attaches it, and unloads it again when this
/// call loaded it and attaching failed.
fn load_then<P: Loadable>(
    p: &mut P,
    load: impl FnOnce(&mut P) -> Result<(), ProgramError>,
    attach: impl FnOnce(&mut P) -> Result<(), ProgramError>,
    what: &str,
) -> Result<(), String> {
    let loaded_here = !p.loaded();
    if loaded_here {
        load(p).logged(what).map_err(|e| e.to_string())?;
    }
    attach(p).map_err(|e| {
        if loaded_here {
            p.unload_now();
        }
        chain(e)
    })
}

fn typed<'a, P>(program: &'a mut Program) -> Result<&'a mut P, String>
where
    &'a mut P: TryFrom<&'a mut Program, Error = ProgramError>,
{
    program.try_into().map_err(chain)
}

/// An error with its causes, on one line.
pub fn chain(e: impl Into<anyhow::Error>) -> String {
    format!("{:#}", e.into())
}
