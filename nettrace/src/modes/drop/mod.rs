//! `--drop`: every packet the kernel frees as dropped (`skb:kfree_skb`), with
//! the drop reason named from BTF and the location symbolized from kallsyms.
//! Replaces dropwatch and the C nettrace's droptrace.
//!
//! One program on one tracepoint: `tp_btf` where BTF describes its
//! arguments, else the classic tracepoint with offsets from tracefs.

mod print;
mod sink;

use std::path::Path;

use anyhow::bail;
use aya::Ebpf;
use nettrace_common::{DropConfig, KernelLayout, drop::DropArgs};

pub use self::print::Printer;
use self::sink::DropSink;
use crate::{
    attach::{self, Backend, Means, Target},
    cli::BackendChoice,
    error::Error,
    kernel::{btf::KernelBtf, reasons::DropReasons, tracefs},
    load,
    modes::{Lookups, Mode, Started},
    output::{Clock, progress::Progress, stack::Symbolizer},
    session::{Kernel, Session},
};

/// `--drop` (`stack`: `--drop-stack`, `detail`: `--detail`).
pub struct Drop {
    pub stack: bool,
    pub detail: bool,
}

impl Mode for Drop {
    fn kernel(&self) -> Option<Lookups> {
        Some(Lookups::Few)
    }

    fn hooks_functions(&self) -> bool {
        false
    }

    fn attach_typedefs(&self) -> Option<&'static [&'static str]> {
        // tp_btf/kfree_skb, here and in the capability probe.
        Some(&["btf_trace_kfree_skb"])
    }

    fn start(self: Box<Self>, s: &Session<'_>, k: Option<&Kernel>) -> Result<Started, Error> {
        let k = k.expect("--drop asks for kernel facts");
        let config = s.config;
        let (btf_args, tp_args) = args(&k.btf, k.tracefs.as_deref());
        let drop_config = DropConfig {
            layout: k.layout,
            filter: config.filter,
            btf_args: btf_args.unwrap_or(NO_ARGS),
            tp_args: tp_args.unwrap_or(NO_ARGS),
            stack: self.stack as u32,
            rate_limit: config.rate_limit,
            snaplen: config.pcap.as_ref().map_or(0, crate::cli::Pcap::kernel_snaplen),
            _pad: 0,
        };
        let mut ebpf = load::load_drop(&drop_config, k.aya_btf.as_ref(), config.expression.as_ref())?;
        load::prime_rate_limit(&mut ebpf, config.rate_limit)?;
        s.admit(&mut ebpf)?;
        s.debug("object loaded");
        let how = attach(
            &mut ebpf,
            config.backend,
            k.means(),
            btf_args.is_some(),
            tp_args.is_some(),
        )?;
        s.debug(format_args!("drop monitor attached via {how}"));
        let reasons = DropReasons::from_btf(&k.btf).map_err(anyhow::Error::from)?;
        let mut printer = Printer::new(
            reasons,
            Clock::new(config.date),
            Symbolizer::new(self.stack.then_some(&mut ebpf))?,
        );
        printer.owners = s.attribution.clone();
        printer.detail = self.detail;
        let sink = DropSink {
            printer,
            metrics: s.counts(),
            out: s.out(),
            stack: self.stack,
            progress: Progress::new(config.count),
            pcap: s.pcap()?,
        };
        Ok(Started {
            ebpf: Some(ebpf),
            sink: Box::new(sink),
        })
    }
}

/// A backend whose arguments are not described: nothing to read.
const NO_ARGS: DropArgs = DropArgs {
    skb: KernelLayout::NONE,
    location: KernelLayout::NONE,
    reason: KernelLayout::NONE,
    _pad: 0,
};

const TP: (&str, &str) = ("skb", "kfree_skb");

/// Argument positions for both backends: (tp_btf indices, classic offsets).
/// A backend whose description cannot be read gets `None`.
pub fn args(btf: &KernelBtf, tracefs: Option<&Path>) -> (Option<DropArgs>, Option<DropArgs>) {
    let btf_args = btf.tracepoint_args(TP.1).ok().and_then(|args| {
        // By name where BTF has names, else by type: the skb is the only
        // `struct sk_buff *`, the reason the only `enum skb_drop_reason`,
        // the location the first `void *`.
        let find = |name: &str, ty: &str| {
            let pos = args.iter().position(|a| a.name == name);
            pos.or_else(|| args.iter().position(|a| a.ty == ty))
                .map(|i| i as u32)
        };
        Some(DropArgs {
            skb: find("skb", "struct sk_buff *")?,
            location: find("location", "void *")?,
            reason: find("reason", "enum skb_drop_reason").unwrap_or(KernelLayout::NONE),
            _pad: 0,
        })
    });
    let tp_args = tracefs
        .and_then(|root| tracefs::format(root, TP.0, TP.1).ok())
        .and_then(|f| {
            Some(DropArgs {
                skb: f.get("skbaddr")?.offset,
                location: f.get("location")?.offset,
                reason: f.get("reason").map_or(KernelLayout::NONE, |r| r.offset),
                _pad: 0,
            })
        });
    (btf_args, tp_args)
}

/// Loads and attaches the drop program with the backend `choice` allows and
/// the kernel supports (tp_btf, else the classic tracepoint); returns a
/// description for `--debug`.
pub fn attach(
    ebpf: &mut Ebpf,
    choice: BackendChoice,
    means: Means<'_>,
    have_btf_args: bool,
    have_tp_args: bool,
) -> anyhow::Result<&'static str> {
    let mut targets = Vec::new();
    let mut why_not_btf = String::new();
    if matches!(choice, BackendChoice::Auto | BackendChoice::TpBtf) {
        match means.unusable(Backend::TpBtf) {
            Some(why) => why_not_btf = why,
            None if !have_btf_args => why_not_btf = "BTF does not describe kfree_skb's arguments".into(),
            None => targets.push(Target::tracepoint(Backend::TpBtf, "drop_tp_btf", TP.0, TP.1)),
        }
    }
    if choice != BackendChoice::TpBtf && have_tp_args {
        targets.push(Target::tracepoint(
            Backend::Tracepoint,
            "drop_tracepoint",
            TP.0,
            TP.1,
        ));
    }
    let attempt = attach::first(ebpf, means, &targets);
    let mut why_not_tp = String::new();
    for (backend, why) in attempt.failed {
        match backend {
            Backend::TpBtf => why_not_btf = why,
            _ => why_not_tp = why,
        }
    }
    match attempt.used {
        Some(Backend::TpBtf) => Ok("tp_btf/kfree_skb"),
        Some(_) => Ok("tracepoint skb:kfree_skb"),
        None if choice == BackendChoice::TpBtf => {
            bail!("--backend tp-btf: not available here: {why_not_btf}")
        }
        None if !have_tp_args => {
            bail!("cannot attach skb:kfree_skb: tp_btf unusable ({why_not_btf}) and no tracefs format for it")
        }
        None => bail!("attach tracepoint skb:kfree_skb: {why_not_tp}"),
    }
}
