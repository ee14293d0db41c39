//! `cargo xtask bench --vm`: both sides. On the host, an initramfs whose one
//! pass is `cargo xtask bench-inner` and a boot of the 6.1 kernel; in the VM,
//! the overhead and start-up rows with the backends that kernel offers
//! (fentry, kprobes), and with `--reference PATH` the same rows for the C
//! nettrace, one after the other in the same boot.
//!
//! The reference binary is the user's to build from its public source
//! (OpenCloudOS/nettrace, `master` for 6.1); nothing of it is in this
//! repository, neither code nor a recipe. Its flags for the rows are the
//! ones its README gives: `-s ADDR` (lifecycle, default hooks) and `--drop`.

use std::path::Path;

use serde_json::json;

use super::{
    Options,
    net::{Net, iperf_server},
    overhead::{self, NOWHERE, Row},
    startup,
};
use crate::{setup, vm, workspace_root};

/// The host side: boots the 6.1 kernel with `bench-inner` as its one pass.
pub(super) fn outer(nettrace: &Path, o: &Options) -> anyhow::Result<()> {
    println!(
        "bench --vm: qemu emulates the CPU (TCG), so every time and ratio here is pessimistic, \
         often many times the host's; compare rows of one boot only."
    );
    let mut args = vec![
        "bench-inner".into(),
        "--bin".into(),
        nettrace.display().to_string(),
        "--secs".into(),
        // The VM's runs are short: emulated start-up dominates anyway.
        o.secs.min(3).to_string(),
        "--pairs".into(),
        o.pairs.min(2).to_string(),
    ];
    if o.startup_only {
        args.push("--startup-only".into());
    }
    let mut programs = Vec::new();
    if let Some(r) = &o.reference {
        let r = std::fs::canonicalize(r)?;
        args.extend(["--reference".into(), r.display().to_string()]);
        programs.push(r);
    }
    let passes = [vm::Pass {
        name: "bench".into(),
        env: Vec::new(),
        binary: std::env::current_exe()?,
        args,
        programs,
    }];
    let kernel = vm::fetch(&setup::cache_dir(), "bookworm")?;
    let initrd = workspace_root().join("target/vm/initrd-bench.gz");
    std::fs::create_dir_all(initrd.parent().unwrap())?;
    // The tier's own start-up record is one more start of the default set:
    // left out when only start-up is measured anyway.
    let record: &[&str] = if o.startup_only { &[] } else { &["auto"] };
    vm::initramfs(&kernel, nettrace, &passes, record, &initrd)?;
    vm::boot(&kernel, &initrd, &passes, std::time::Duration::from_secs(60 * 60))
}

/// The rows run in the VM: ours, then the reference's with its own flags.
fn rows(reference: bool) -> Vec<Row> {
    let row = |name, args: &[&str]| Row {
        name,
        args: args.iter().map(|a| (*a).to_string()).collect(),
        target_ratio: None,
        target_ns: None,
        reference,
    };
    let mut rows = vec![
        row("default, filter matches nothing", &["-s", NOWHERE]),
        row("--drop", &["--drop"]),
    ];
    if !reference {
        rows.insert(
            0,
            row(
                "floor (default set, empty programs)",
                &["-s", NOWHERE, "--bench-floor"],
            ),
        );
    }
    rows
}

/// `cargo xtask bench --vm`, inside the VM: TCP overhead rows and start-up,
/// ours and the reference's. Emulated CPUs make every ratio pessimistic;
/// the rows are printed with the JSON on one `BENCH-JSON` line for the
/// serial console.
pub fn inner(bin: &Path, o: &Options) -> anyhow::Result<()> {
    let net = Net::new()?;
    let _server = (!o.startup_only).then(|| iperf_server(&net)).transpose()?;
    println!(
        "bench (VM, qemu TCG: emulation makes these ratios pessimistic): {} s iperf3 TCP runs, {} pairs",
        o.secs, o.pairs
    );
    let mut tools = vec![(bin.to_path_buf(), false)];
    if let Some(r) = &o.reference {
        tools.push((r.clone(), true));
    }
    let (mut overheads, mut starts) = (Vec::new(), Vec::new());
    for (tool, reference) in &tools {
        let who = if *reference { "C nettrace" } else { "nettrace" };
        for (set, args) in [("default set", vec!["-s", NOWHERE]), ("--drop", vec!["--drop"])] {
            let r = startup(tool, set, &args, None, *reference)?;
            println!(
                "  {who:<10} start-up {set:<12} {:.3} s (median of 5), exit after SIGINT {:.3} s",
                r["median_start_s"].as_f64().unwrap_or(f64::NAN),
                r["median_exit_s"].as_f64().unwrap_or(f64::NAN)
            );
            // Where ours spends its start-up and exit (`--debug`'s phases).
            for line in r["last_run_debug"].as_array().into_iter().flatten() {
                println!(
                    "    {}",
                    line.as_str().unwrap_or("").chars().take(200).collect::<String>()
                );
            }
            starts.push(r);
        }
        if o.startup_only {
            continue;
        }
        for row in rows(*reference) {
            let r = overhead::measure(tool, &net, &row, false, o)?;
            println!("  {who:<10}{}", overhead::line(&r));
            overheads.push(r);
        }
    }
    let result =
        json!({"vm": true, "startup_only": o.startup_only, "overhead": overheads, "startup": starts});
    super::print_table(&result);
    println!("BENCH-JSON {result}");
    Ok(())
}
