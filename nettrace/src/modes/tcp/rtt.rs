//! `--rtt` (the distribution, kept in the kernel, printed each second) and
//! `--rtt-detail` (one line per sample).
//!
//! `[12.345678] [tcp_ack_update_rtt   ] TCP: 10.0.0.1:5201 -> 10.0.0.2:40000 *rtt:0.152ms, rtt_min:0.100ms* srtt:0.160ms netns:4026531840`

use std::io::{self, Write};

use aya::Ebpf;
use nettrace_common::tcp::RttEvent;
use serde::Serialize;

use super::fields::{TupleFields, Us};
use crate::{
    attach::{self, Backend, Means, Target},
    kernel::btf::KernelBtf,
    output::{Clock, Record},
};

/// The function that receives every RTT sample.
pub const FUNCTION: &str = "tcp_ack_update_rtt";

/// Where `tcp_ack_update_rtt` keeps the socket and the sample, by BTF
/// parameter name and type; `None` when this kernel has no such function
/// (or it changed shape).
pub fn positions(btf: &KernelBtf) -> Option<(u32, u32)> {
    let params = btf.function_params(FUNCTION)?;
    let at = |name: &str, ty: &str| {
        params
            .iter()
            .position(|p| p.name == name && p.ty.contains(ty))
            .map(|i| i as u32)
    };
    Some((at("sk", "struct sock *")?, at("seq_rtt_us", "long")?))
}

/// How the samples are taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    Fentry,
    Kprobe,
    /// `tcp:tcp_probe`: smoothed RTT per received segment.
    Tracepoint,
}

impl Source {
    pub fn hook(self) -> &'static str {
        match self {
            Source::Fentry | Source::Kprobe => FUNCTION,
            Source::Tracepoint => "tcp_probe",
        }
    }
}

/// Attaches the best source: fentry, then kprobe on `tcp_ack_update_rtt`,
/// then the `tcp_probe` tracepoint. Returns what was used and, for each
/// better source that failed, why.
pub fn attach(
    ebpf: &mut Ebpf,
    function_known: bool,
    means: Means<'_>,
) -> anyhow::Result<(Source, Vec<String>)> {
    let mut why = Vec::new();
    if function_known {
        let attempt = attach::first(
            ebpf,
            means,
            &[
                Target::function(Backend::Fentry, "rtt_fentry", FUNCTION),
                Target::function(Backend::Kprobe, "rtt_kprobe", FUNCTION),
            ],
        );
        why.extend(attempt.failed.iter().map(|(b, w)| format!("{b}: {w}")));
        match attempt.used {
            Some(Backend::Fentry) => return Ok((Source::Fentry, why)),
            Some(_) => return Ok((Source::Kprobe, why)),
            None => {}
        }
    } else {
        why.push(format!("{FUNCTION}: not in this kernel's BTF"));
    }
    super::attach(ebpf, &super::RTT.iter().collect::<Vec<_>>())?;
    Ok((Source::Tracepoint, why))
}

pub fn record(clock: &Clock, source: Source, ev: &RttEvent) -> Rtt {
    Rtt {
        ts_ns: ev.ts_ns,
        time: clock.format(ev.ts_ns),
        hook: source.hook(),
        tuple: TupleFields(ev.tuple),
        rtt_ns: Us(ev.rtt_us),
        rtt_min_ns: Us(ev.rtt_min_us),
        srtt_ns: Us(ev.srtt_us),
        sampled: ev.sampled != 0,
        netns: ev.netns,
    }
}

/// One `--rtt-detail` sample (see the module's doc for the text).
#[derive(Serialize)]
pub struct Rtt {
    ts_ns: u64,
    time: String,
    hook: &'static str,
    #[serde(flatten)]
    tuple: TupleFields,
    rtt_ns: Us,
    rtt_min_ns: Us,
    srtt_ns: Us,
    /// false: rtt is the smoothed RTT (tracepoint source), not a sample.
    sampled: bool,
    netns: u32,
}

impl Record for Rtt {
    fn kind(&self) -> &'static str {
        "rtt"
    }

    fn text(&self, w: &mut dyn Write) -> io::Result<()> {
        writeln!(
            w,
            "[{}] [{:<21}] TCP: {} *rtt:{}, rtt_min:{}* srtt:{} netns:{}",
            self.time, self.hook, self.tuple, self.rtt_ns, self.rtt_min_ns, self.srtt_ns, self.netns
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::btf::VMLINUX_BTF;

    #[test]
    fn sample_arguments_of_the_running_kernel() {
        let btf = KernelBtf::from_file(VMLINUX_BTF).unwrap();
        // static void tcp_ack_update_rtt(struct sock *sk, const int flag,
        //                                long seq_rtt_us, long sack_rtt, …)
        assert_eq!(positions(&btf), Some((0, 2)));
    }
}
