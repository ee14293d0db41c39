//! Userspace alone: the records of a live run are captured
//! (`--capture-records`), then replayed through decode → track → print
//! into /dev/null (`--replay-records`), text and JSON, and timed in CPU
//! time per record. Under a live flood the traffic generator sets the
//! pace; here nothing but nettrace does.

use std::{
    path::Path,
    process::{Command, Stdio},
};

use anyhow::Context as _;
use serde_json::{Value, json};

use super::{
    B4, CLOSED_PORT, IPERF_PORT,
    net::{Net, flood_from, iperf},
    tracer::Tracer,
};
use crate::workspace_root;

/// Targets: CPU time per record.
const TEXT_NS: f64 = 1000.0;
const JSON_NS: f64 = 1500.0;

/// Captures `--drop` under the UDP flood and the lifecycle trace of an
/// iperf3 UDP flow, then replays each as text and as JSON.
pub(super) fn rows(bin: &Path, net: &Net) -> anyhow::Result<Vec<Value>> {
    let dir = workspace_root().join("target/bench");
    std::fs::create_dir_all(&dir)?;
    let drop_args = ["--drop", "-p", "udp", "-d", B4];
    let flow_args = ["-P", IPERF_PORT];
    let drops = dir.join("drop.records");
    let flow = dir.join("flow.records");
    capture(bin, &drop_args, &drops, || {
        flood_from(net, B4, CLOSED_PORT, 2).map(drop)
    })?;
    capture(bin, &flow_args, &flow, || iperf(net, true, 2).map(drop))?;
    let mut rows = Vec::new();
    for (name, args, file) in [
        ("--drop (drop flood)", &drop_args[..], &drops),
        ("default, tracing the flow (iperf3 UDP)", &flow_args[..], &flow),
    ] {
        for json in [false, true] {
            let (records, ns) = replay(bin, args, json, file)?;
            let format = if json { "json" } else { "text" };
            println!(
                "  replay {name:<40} {format:<4} {records:>8} records  {ns:>6.0} ns/record CPU (target ≤ {:.0})",
                if json { JSON_NS } else { TEXT_NS }
            );
            rows.push(json!({
                "replay": name,
                "format": format,
                "records": records,
                "cpu_ns_per_record": ns,
                "target_ns_per_record": if json { JSON_NS } else { TEXT_NS },
            }));
        }
    }
    Ok(rows)
}

/// Runs nettrace with `--capture-records file` while `traffic` runs.
fn capture(
    bin: &Path,
    args: &[&str],
    file: &Path,
    traffic: impl FnOnce() -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    let mut a = args.to_vec();
    let path = file.to_str().context("capture path")?;
    a.extend(["--capture-records", path]);
    let (t, _) = Tracer::start(bin, &a)?;
    traffic()?;
    std::thread::sleep(std::time::Duration::from_millis(300));
    t.stop()?;
    Ok(())
}

/// (records timed, CPU ns per record) of one replay.
fn replay(bin: &Path, args: &[&str], json: bool, file: &Path) -> anyhow::Result<(f64, f64)> {
    let out = Command::new(bin)
        .args(args)
        .args(json.then_some("--json"))
        .arg("--replay-records")
        .arg(file)
        .arg("--debug")
        .stdout(Stdio::null())
        .output()
        .context("run the replay")?;
    let err = String::from_utf8_lossy(&out.stderr);
    // `... replay: N records in S s CPU, X ns per record`
    let line = err
        .lines()
        .find_map(|l| Some(l[l.find("replay: ")? + 8..].to_string()))
        .with_context(|| format!("no replay line from {args:?}: {err}"))?;
    let words: Vec<&str> = line.split_whitespace().collect();
    let num = |i: usize| {
        words
            .get(i)
            .and_then(|w| w.trim_end_matches(',').parse::<f64>().ok())
    };
    Ok((num(0).unwrap_or(0.0), num(6).unwrap_or(f64::NAN)))
}
