//! Every network namespace on the host, and a way to run code inside each.
//!
//! Namespaces are found where they are pinned: by a running process
//! (`/proc/PID/ns/net`) or by a bind mount under `/run/netns` (`ip netns
//! add`). They are told apart by their nsfs inode, the number `ip netns
//! identify`, `lsns` and the tracing modes' `netns:` field show. Each one is
//! held open from discovery on, so it cannot disappear before it is queried.

use std::{
    collections::HashSet,
    fs::File,
    io,
    os::{fd::AsRawFd as _, unix::fs::MetadataExt as _},
    path::PathBuf,
    sync::{
        Mutex,
        atomic::{AtomicUsize, Ordering},
    },
};

use anyhow::Context as _;

/// Where `ip netns add` pins named namespaces.
const NAMED: &str = "/run/netns";

/// Most threads that query namespaces at once: the work is a few syscalls
/// each, so more would only add thread start-up.
const WORKERS: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    /// The kernel refused to move the worker thread into the namespace.
    #[error("cannot enter netns {inode} ({path}): setns: {source}")]
    Setns {
        inode: u64,
        path: String,
        #[source]
        source: io::Error,
    },
}

/// A network namespace, held open.
#[derive(Debug)]
pub struct Namespace {
    /// nsfs inode: the namespace's identity.
    pub inode: u64,
    /// Where it was found first, for messages.
    pub path: PathBuf,
    file: File,
}

/// The namespaces found, and what could not be looked at.
#[derive(Debug, Default)]
pub struct Found {
    pub namespaces: Vec<Namespace>,
    pub errors: Vec<String>,
}

/// Finds every network namespace (only the one with inode `only`, if set).
/// Processes that exit meanwhile are skipped silently; paths that cannot be
/// read for another reason are reported in `errors`.
pub fn enumerate(only: Option<u64>) -> anyhow::Result<Found> {
    // Every nsfs inode lives on one (internal) device: what is not on it is
    // not a namespace (a leftover plain file under /run/netns).
    let nsfs_dev = std::fs::metadata("/proc/self/ns/net")
        .context("cannot read /proc/self/ns/net")?
        .dev();
    let mut candidates: Vec<PathBuf> = std::fs::read_dir("/proc")
        .context("cannot list /proc")?
        .flatten()
        .filter(|e| {
            e.file_name()
                .to_str()
                .is_some_and(|n| n.bytes().all(|b| b.is_ascii_digit()))
        })
        .map(|e| e.path().join("ns/net"))
        .collect();
    if let Ok(named) = std::fs::read_dir(NAMED) {
        candidates.extend(named.flatten().map(|e| e.path()));
    }

    let mut found = Found::default();
    let mut seen = HashSet::new();
    let mut denied: Vec<String> = Vec::new();
    for path in candidates {
        let opened = std::fs::metadata(&path).and_then(|m| {
            if m.dev() != nsfs_dev || seen.contains(&m.ino()) || only.is_some_and(|o| o != m.ino()) {
                return Ok(None);
            }
            let file = File::open(&path)?;
            // The PID may have been reused since the stat: the open file
            // is the namespace we will enter, so its inode is the truth.
            Ok(Some((file.metadata()?.ino(), file)))
        });
        match opened {
            Ok(Some((inode, file))) => {
                if seen.insert(inode) && only.is_none_or(|o| o == inode) {
                    found.namespaces.push(Namespace { inode, path, file });
                }
            }
            Ok(None) => {}
            Err(e) if vanished(&e) => {}
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => denied.push(owner_of(&path)),
            Err(e) => found.errors.push(format!("cannot open {}: {e}", path.display())),
        }
    }
    if !denied.is_empty() {
        // One line, not one per process: without privileges that is most
        // of /proc.
        let more = if denied.len() > 3 { ", …" } else { "" };
        found.errors.push(format!(
            "cannot read the network namespace of {} ({}{more}): permission denied",
            if denied.len() == 1 {
                "1 process".to_string()
            } else {
                format!("{} processes", denied.len())
            },
            denied[..denied.len().min(3)].join(", ")
        ));
    }
    Ok(found)
}

/// `pid 1234` for `/proc/1234/ns/net`, else the path.
fn owner_of(path: &std::path::Path) -> String {
    match path.strip_prefix("/proc").ok().and_then(|p| p.iter().next()) {
        Some(pid) => format!("pid {}", pid.to_string_lossy()),
        None => path.display().to_string(),
    }
}

/// The process (or the namespace's last process) went away between listing
/// and opening: nothing to report.
fn vanished(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound || e.raw_os_error() == Some(libc::ESRCH)
}

/// Runs `job` once inside each namespace, on a few worker threads (only the
/// calling thread's namespace changes with `setns`, so workers are threads of
/// their own that end afterwards). Results come back in `namespaces` order.
pub fn for_each<T: Send>(namespaces: &[Namespace], job: impl Fn() -> T + Sync) -> Vec<Result<T, NetnsError>> {
    let results: Vec<Mutex<Option<Result<T, NetnsError>>>> =
        namespaces.iter().map(|_| Mutex::new(None)).collect();
    let next = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..namespaces.len().min(WORKERS) {
            s.spawn(|| {
                // A thread starts in its process's namespace; entering it
                // again would need CAP_SYS_ADMIN for nothing.
                let mut current = thread_netns();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(ns) = namespaces.get(i) else { break };
                    let r = enter(ns, &mut current).map(|()| job());
                    *results[i]
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(r);
                }
            });
        }
    });
    results
        .into_iter()
        .map(|m| {
            m.into_inner()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .expect("every namespace was handed to a worker")
        })
        .collect()
}

fn thread_netns() -> Option<u64> {
    std::fs::metadata("/proc/thread-self/ns/net")
        .ok()
        .map(|m| m.ino())
}

fn enter(ns: &Namespace, current: &mut Option<u64>) -> Result<(), NetnsError> {
    if *current == Some(ns.inode) {
        return Ok(());
    }
    // SAFETY: a valid open namespace fd; setns only changes this thread.
    if unsafe { libc::setns(ns.file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
        return Err(NetnsError::Setns {
            inode: ns.inode,
            path: ns.path.display().to_string(),
            source: io::Error::last_os_error(),
        });
    }
    *current = Some(ns.inode);
    Ok(())
}

/// The network namespace inode of this process.
#[cfg(test)]
pub fn own() -> Option<u64> {
    std::fs::metadata("/proc/self/ns/net").ok().map(|m| m.ino())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_its_own_namespace_and_runs_there() {
        let own = own().expect("/proc/self/ns/net");
        let found = enumerate(Some(own)).unwrap();
        assert_eq!(found.namespaces.len(), 1, "{found:?}");
        assert_eq!(found.namespaces[0].inode, own);
        // Without privileges too: the worker is already there.
        let r = for_each(&found.namespaces, thread_netns);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].as_ref().unwrap(), &Some(own));
    }

    #[test]
    fn nothing_for_an_unknown_inode() {
        let found = enumerate(Some(1)).unwrap();
        assert!(found.namespaces.is_empty());
        assert!(for_each(&found.namespaces, || ()).is_empty());
    }
}
