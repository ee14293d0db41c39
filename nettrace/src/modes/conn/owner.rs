//! Which processes hold a socket: `sock_diag` reports the socket's sockfs
//! inode, and each open socket appears among its holders' fds as the
//! symlink `socket:[INODE]` (what `ss -p` and `lsof` read). sockfs is one
//! filesystem for the whole host, so the inode is unique across namespaces.

use std::collections::{HashMap, HashSet};

/// Socket inode → pids holding it, ascending (a socket inherited over
/// `fork` has several). Only `wanted` inodes are kept; `only_pid` limits
/// the scan to one process. Processes that exit or cannot be read are
/// skipped: this is a best-effort snapshot of a moving system.
pub fn holders(wanted: &HashSet<u32>, only_pid: Option<u32>) -> HashMap<u32, Vec<u32>> {
    let mut out: HashMap<u32, Vec<u32>> = HashMap::new();
    if wanted.is_empty() {
        return out;
    }
    let pids: Vec<u32> = match only_pid {
        Some(p) => vec![p],
        None => std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse().ok())
            .collect(),
    };
    for pid in pids {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path())
                && let Some(inode) = target.to_str().and_then(socket_inode)
                && wanted.contains(&inode)
            {
                let pids = out.entry(inode).or_default();
                if pids.last() != Some(&pid) {
                    pids.push(pid);
                }
            }
        }
    }
    for pids in out.values_mut() {
        pids.sort_unstable();
        pids.dedup();
    }
    out
}

/// `socket:[12345]` → 12345.
fn socket_inode(link: &str) -> Option<u32> {
    link.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

/// `/proc/PID/comm` without its newline; empty if the process is gone.
pub fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .map(|c| c.trim_end_matches('\n').to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use std::{net::TcpListener, os::unix::fs::MetadataExt as _};

    use super::*;

    #[test]
    fn parses_socket_links() {
        assert_eq!(socket_inode("socket:[4026]"), Some(4026));
        assert_eq!(socket_inode("pipe:[4026]"), None);
        assert_eq!(socket_inode("socket:[x]"), None);
        assert_eq!(socket_inode("/dev/null"), None);
    }

    #[test]
    fn finds_our_own_socket() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let fd = std::os::fd::AsRawFd::as_raw_fd(&l);
        let inode = std::fs::metadata(format!("/proc/self/fd/{fd}")).unwrap().ino() as u32;
        let me = std::process::id();
        let wanted = HashSet::from([inode]);
        assert_eq!(holders(&wanted, Some(me))[&inode], [me]);
        assert!(holders(&wanted, None)[&inode].contains(&me));
        assert!(holders(&HashSet::new(), None).is_empty());
        assert!(!comm(me).is_empty());
    }
}
