//! One walk over `/proc`: every network namespace a process is in, and the
//! container that owns it. A namespace is owned by the containers whose
//! processes are in it; of a pod's containers (they share one namespace) a
//! workload wins over the sandbox. The host's own namespace (that of PID 1)
//! is never a container's, even when a container runs with
//! `--network host`.

use std::{collections::HashMap, fs, os::unix::fs::MetadataExt as _};

use super::{Owner, cgroup, runtimes::Roots};

/// One walk's result: each namespace seen, with its owner if any.
#[derive(Debug, Default)]
pub struct Snapshot {
    pub namespaces: HashMap<u64, Option<Owner>>,
}

/// The netns inode of process `pid`.
fn netns_of(pid: &str) -> Option<u64> {
    fs::metadata(format!("/proc/{pid}/ns/net")).ok().map(|m| m.ino())
}

/// Walks `/proc` once. Processes that exit meanwhile are skipped; ids no
/// runtime knows (a container being created, an unknown runtime) leave the
/// namespace without owner until the next walk.
pub fn walk(roots: &Roots) -> Snapshot {
    let host = netns_of("1");
    let mut snap = Snapshot::default();
    // Whether a namespace's owner is a workload (settled) or a sandbox.
    let mut settled: HashMap<u64, bool> = HashMap::new();
    let Ok(dir) = fs::read_dir("/proc") else {
        return snap;
    };
    // Ids already looked up in this walk: a container's many processes
    // cost one lookup.
    let mut looked_up = HashMap::new();
    for entry in dir.flatten() {
        let name = entry.file_name();
        let Some(pid) = name.to_str().filter(|n| n.bytes().all(|b| b.is_ascii_digit())) else {
            continue;
        };
        let Some(ns) = netns_of(pid) else { continue };
        snap.namespaces.entry(ns).or_insert(None);
        if Some(ns) == host || settled.get(&ns) == Some(&true) {
            continue;
        }
        let Some(id) = fs::read_to_string(format!("/proc/{pid}/cgroup"))
            .ok()
            .and_then(|c| cgroup::container_id(&c))
        else {
            continue;
        };
        let found = looked_up
            .entry(id.id.clone())
            .or_insert_with(|| roots.find(&id.id, id.runtime))
            .clone();
        let Some(found) = found else { continue };
        let workload = !found.sandbox;
        if settled.contains_key(&ns) && !workload {
            continue;
        }
        settled.insert(ns, workload);
        snap.namespaces.insert(
            ns,
            Some(Owner {
                container: found.container,
                pod: found.pod,
            }),
        );
    }
    snap
}
