//! `--rtt` (the distribution, kept in the kernel, printed each second) and
//! `--rtt-detail` (one line per sample).
//!
//! `[12.345678] [tcp_ack_update_rtt   ] TCP: 10.0.0.1:5201 -> 10.0.0.2:40000 *rtt:0.152ms, rtt_min:0.100ms* srtt:0.160ms netns:4026531840`

use aya::Ebpf;
use nettrace_common::tcp::RttEvent;
use serde_json::json;

use super::{ms, tuple_json, tuple_text};
use crate::{
    attach::{self, Backend, Means, Target},
    kernel::btf::KernelBtf,
    output::{Clock, histogram::Log2, json},
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

/// `rtt distribution:` and its buckets, or the JSON record.
pub fn summary(h: &Log2, json_out: bool, now_ns: u64) -> Vec<String> {
    if json_out {
        let mut m = json::legacy::record("rtt_summary");
        m.insert("ts_ns".into(), json!(now_ns));
        m.insert("unit".into(), json!("ms"));
        m.insert("rtt".into(), h.json());
        vec![json::legacy::line(m)]
    } else {
        h.render("rtt", "ms")
    }
}

pub fn line(clock: &Clock, source: Source, ev: &RttEvent) -> String {
    format!(
        "[{}] [{:<21}] TCP: {} *rtt:{}, rtt_min:{}* srtt:{} netns:{}",
        clock.format(ev.ts_ns),
        source.hook(),
        tuple_text(&ev.tuple),
        ms(ev.rtt_us.into()),
        ms(ev.rtt_min_us.into()),
        ms(ev.srtt_us.into()),
        ev.netns
    )
}

pub fn json(clock: &Clock, source: Source, ev: &RttEvent) -> String {
    let mut m = json::legacy::record("rtt");
    m.insert("ts_ns".into(), json!(ev.ts_ns));
    m.insert("time".into(), json!(clock.format(ev.ts_ns)));
    m.insert("hook".into(), json!(source.hook()));
    tuple_json(&ev.tuple, &mut m);
    m.insert("rtt_ns".into(), json!(u64::from(ev.rtt_us) * 1000));
    m.insert("rtt_min_ns".into(), json!(u64::from(ev.rtt_min_us) * 1000));
    m.insert("srtt_ns".into(), json!(u64::from(ev.srtt_us) * 1000));
    // false: rtt is the smoothed RTT (tracepoint source), not a sample.
    m.insert("sampled".into(), json!(ev.sampled != 0));
    m.insert("netns".into(), json!(ev.netns));
    json::legacy::line(m)
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
