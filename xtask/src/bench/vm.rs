//! `cargo xtask bench --vm`: both sides. On the host, an initramfs whose one
//! pass is `cargo xtask bench-inner` and a boot of the 6.1 kernel; in the VM,
//! the overhead rows with the backends that kernel offers.

use std::path::Path;

use serde_json::json;

use super::{
    Options, modes,
    net::{Net, iperf_server},
    overhead,
    tracer::BpfStats,
};
use crate::{setup, vm, workspace_root};

/// The host side: boots the 6.1 kernel with `bench-inner` as its one pass.
pub(super) fn outer(nettrace: &Path, o: &Options) -> anyhow::Result<()> {
    println!(
        "bench --vm: qemu emulates the CPU (TCG), so every time and ratio here is pessimistic, \
         often many times the host's."
    );
    let passes = [vm::Pass {
        name: "bench".into(),
        env: Vec::new(),
        binary: std::env::current_exe()?,
        args: vec![
            "bench-inner".into(),
            "--bin".into(),
            nettrace.display().to_string(),
            "--secs".into(),
            // The VM's runs are short: emulated start-up dominates anyway.
            o.secs.min(3).to_string(),
            "--pairs".into(),
            o.pairs.min(2).to_string(),
        ],
    }];
    let kernel = vm::fetch(&setup::cache_dir(), "bookworm")?;
    let initrd = workspace_root().join("target/vm/initrd-bench.gz");
    std::fs::create_dir_all(initrd.parent().unwrap())?;
    vm::initramfs(&kernel, nettrace, &passes, &["auto", "kprobe"], &initrd)?;
    vm::boot(&kernel, &initrd, &passes, std::time::Duration::from_secs(40 * 60))
}

/// `cargo xtask bench --vm`, inside the VM: the overhead rows (TCP) with
/// the backends the VM's kernel offers (fentry/fexit, kprobes). Emulated
/// CPUs make every ratio pessimistic; the rows are printed with the JSON on
/// one `BENCH-JSON` line for the serial console.
pub fn inner(bin: &Path, o: &Options) -> anyhow::Result<()> {
    let net = Net::new()?;
    let _server = iperf_server(&net)?;
    let _stats = BpfStats::enable();
    println!(
        "bench (VM, qemu TCG: emulation makes these ratios pessimistic): {} s iperf3 TCP runs, {} pairs",
        o.secs, o.pairs
    );
    let mut rows = Vec::new();
    for mode in modes() {
        let r = overhead(bin, &net, &mode, false, o)?;
        println!(
            "  overhead {:<34} tcp  throughput {:>6.1}%  tracer CPU {:.2} s  BPF {:.2} s ({:.0} ns/run)",
            mode.name,
            r["median_ratio"].as_f64().unwrap_or(f64::NAN) * 100.0,
            r["median_tracer_cpu_s"].as_f64().unwrap_or(f64::NAN),
            r["median_bpf_cpu_s"].as_f64().unwrap_or(f64::NAN),
            r["median_bpf_ns_per_run"].as_f64().unwrap_or(f64::NAN)
        );
        rows.push(r);
    }
    println!("BENCH-JSON {}", json!({"vm": true, "overhead": rows}));
    Ok(())
}
