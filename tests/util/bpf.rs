//! The BPF programs, maps and links a process holds and the kernel has:
//! what the hardening tests check nettrace leaves behind.

use std::{
    collections::BTreeSet,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use super::sh;

/// The BPF programs, maps and links process `pid` holds, as
/// (`prog`|`map`|`link`, id), from its fds' `/proc/PID/fdinfo` entries:
/// exact even while other tests run tracers of their own.
pub fn bpf_objects_of(pid: i32) -> Vec<(&'static str, u32)> {
    let mut out = Vec::new();
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return out;
    };
    for fd in fds.flatten() {
        let Ok(info) = std::fs::read_to_string(fd.path()) else {
            continue;
        };
        for line in info.lines() {
            for (key, kind) in [("prog_id:", "prog"), ("map_id:", "map"), ("link_id:", "link")] {
                if let Some(id) = line.strip_prefix(key).and_then(|v| v.trim().parse().ok()) {
                    out.push((kind, id));
                }
            }
        }
    }
    out.sort_unstable();
    out.dedup();
    out
}

/// Every BPF program, map and link in the kernel now (`bpftool … show`).
pub fn all_bpf_objects() -> BTreeSet<(&'static str, u32)> {
    let mut out = BTreeSet::new();
    for kind in ["prog", "map", "link"] {
        for line in bpftool_show(kind).lines() {
            if let Some(id) = line.split(':').next().and_then(|n| n.trim().parse().ok())
                && !line.starts_with(char::is_whitespace)
            {
                out.insert((kind, id));
            }
        }
    }
    out
}

/// `bpftool KIND show`, retried: it fails with EAGAIN when an object it
/// listed is being freed meanwhile (another test's tracer exiting).
fn bpftool_show(kind: &str) -> String {
    for _ in 0..20 {
        let out = Command::new("bpftool")
            .args([kind, "show"])
            .output()
            .expect("spawn bpftool");
        if out.status.success() {
            return String::from_utf8_lossy(&out.stdout).into_owned();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    sh(&["bpftool", kind, "show"])
}

/// BPF objects held open by any process (their fds' fdinfo).
fn held_by_any_process() -> BTreeSet<(&'static str, u32)> {
    let mut out = BTreeSet::new();
    for p in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        if let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) {
            out.extend(bpf_objects_of(pid));
        }
    }
    out
}

/// Objects created since `before` that nothing holds any more: what an
/// exited nettrace left behind (exact while other tracers run, because
/// theirs are held by their own fds). Waits up to 3 s for the kernel's
/// deferred frees.
pub fn leaked_since(before: &BTreeSet<(&'static str, u32)>) -> Vec<(&'static str, u32)> {
    let deadline = Instant::now() + Duration::from_secs(3);
    loop {
        let held = held_by_any_process();
        let leaked: Vec<_> = all_bpf_objects()
            .into_iter()
            .filter(|o| !before.contains(o) && !held.contains(o))
            .collect();
        if leaked.is_empty() || Instant::now() > deadline {
            return leaked;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Whether a BPF object with this id still exists in the kernel.
pub fn bpf_object_exists((kind, id): (&str, u32)) -> bool {
    Command::new("bpftool")
        .args([kind, "show", "id", &id.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
