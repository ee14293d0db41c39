//! The container id in `/proc/PID/cgroup`. Each runtime puts its
//! containers in a cgroup named after the id, in one of these shapes
//! (systemd driver, then cgroupfs driver):
//!
//! | runtime | cgroup path ends in |
//! |---|---|
//! | podman | `libpod-ID.scope`, `/libpod_parent/libpod-ID` |
//! | docker | `docker-ID.scope`, `/docker/ID` |
//! | containerd (CRI) | `cri-containerd-ID.scope`, `/kubepods/…/podUID/ID` |
//! | CRI-O | `crio-ID.scope`, `/kubepods/…/podUID/crio-ID` |
//!
//! The conmon monitors of podman and CRI-O (`libpod-conmon-ID`,
//! `crio-conmon-ID`) are not the container. A bare id under `/kubepods`
//! says nothing about the runtime: every runtime's state is asked then.

use super::Runtime;

/// A container id and, when the cgroup's name tells, its runtime.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CgroupId {
    pub id: String,
    pub runtime: Option<Runtime>,
}

/// The container id in the contents of a `/proc/PID/cgroup` file, if the
/// process is in a container's cgroup. Every line is looked at: on hybrid
/// hierarchies (cgroup v1 controllers plus the v2 `0::` line) any of them
/// may carry it.
pub fn container_id(cgroup_file: &str) -> Option<CgroupId> {
    cgroup_file.lines().find_map(|line| {
        // `hierarchy-id:controllers:path`; the path may contain ':'.
        let path = line.splitn(3, ':').nth(2)?;
        from_path(path)
    })
}

fn from_path(path: &str) -> Option<CgroupId> {
    let last = path.rsplit('/').next()?;
    // A systemd-style cgroupsPath left as is by a cgroupfs manager:
    // `kubepods-besteffort-podUID.slice:cri-containerd:ID`.
    let last = match last.rsplit_once(':') {
        Some((rest, id)) => &format!("{}-{id}", rest.rsplit(':').next().unwrap_or(rest)),
        None => last,
    };
    let last = last.strip_suffix(".scope").unwrap_or(last);
    if last.contains("conmon") {
        return None;
    }
    const PREFIXES: [(&str, Option<Runtime>); 5] = [
        ("libpod-", Some(Runtime::Podman)),
        ("docker-", Some(Runtime::Docker)),
        ("cri-containerd-", Some(Runtime::Containerd)),
        ("crio-", Some(Runtime::Crio)),
        ("", None),
    ];
    let (id, mut runtime) = PREFIXES
        .iter()
        .find_map(|(prefix, runtime)| Some((last.strip_prefix(prefix)?, *runtime)))?;
    if !is_id(id) {
        return None;
    }
    if runtime.is_none() && path.split('/').any(|c| c == "docker") {
        runtime = Some(Runtime::Docker);
    }
    Some(CgroupId {
        id: id.to_string(),
        runtime,
    })
}

/// 64 lowercase hex digits, as every one of these runtimes makes ids.
fn is_id(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "34a7bcde2e74c0da92e64988de6cf55c8f1566b4e51dc26d26a69a6ccf2b08b8";

    fn id_in(line: &str) -> Option<CgroupId> {
        container_id(&line.replace("ID", ID))
    }

    /// Read off this host: podman 4.3 with runc and the cgroupfs manager.
    #[test]
    fn podman_cgroupfs_hybrid() {
        let file = "9:name=systemd:/libpod_parent/libpod-ID\n1:cpu:/libpod_parent/libpod-ID\n0::/libpod_parent/libpod-ID\n";
        assert_eq!(
            id_in(file),
            Some(CgroupId {
                id: ID.into(),
                runtime: Some(Runtime::Podman)
            })
        );
    }

    #[test]
    fn each_runtime_by_its_scope() {
        for (path, runtime) in [
            ("0::/machine.slice/libpod-ID.scope", Some(Runtime::Podman)),
            ("0::/system.slice/docker-ID.scope", Some(Runtime::Docker)),
            ("12:memory:/docker/ID", Some(Runtime::Docker)),
            (
                "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1a2b.slice/cri-containerd-ID.scope",
                Some(Runtime::Containerd),
            ),
            (
                "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1a2b.slice/crio-ID.scope",
                Some(Runtime::Crio),
            ),
            ("0::/kubepods/besteffort/pod1a2b-33/ID", None),
            (
                "1:cpu:/kubepods-besteffort-pod1a2b.slice:cri-containerd:ID",
                Some(Runtime::Containerd),
            ),
        ] {
            let got = id_in(path).unwrap_or_else(|| panic!("{path}"));
            assert_eq!((got.id.as_str(), got.runtime), (ID, runtime), "{path}");
        }
    }

    #[test]
    fn not_a_container() {
        for path in [
            "0::/user.slice/user-0.slice/session-1.scope",
            "0::/",
            "0::/machine.slice/libpod-conmon-ID.scope",
            "0::/kubepods.slice/crio-conmon-ID.scope",
            "0::/system.slice/docker-1234.scope",
            "",
        ] {
            assert_eq!(id_in(path), None, "{path}");
        }
    }
}
