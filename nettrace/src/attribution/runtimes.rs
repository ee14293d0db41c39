//! Names from each runtime's own state files, found by container id:
//!
//! - **podman** and **CRI-O** share containers/storage: the OCI
//!   `config.json` under `DRIVER-containers/ID/userdata/` carries CRI-O's
//!   `io.kubernetes.*` annotations (pod, namespace, container name); podman
//!   names its containers in `DRIVER-containers/containers.json`.
//! - **docker**: `containers/ID/config.v2.json` (`Name`, and the
//!   `io.kubernetes.*` labels dockershim set).
//! - **containerd**: the task bundle `NAMESPACE/ID/config.json`, whose
//!   annotations `io.kubernetes.cri.*` the CRI plugin writes (`nerdctl/name`
//!   for nerdctl's containers).
//!
//! Only files are read (no runtime socket, no API client): it works for
//! every runtime version that keeps these layouts, and costs a few small
//! reads per new container.

use std::{
    fs,
    path::{Path, PathBuf},
};

use serde_json::Value;

use super::{Container, Found, Pod, Runtime};

/// Where each runtime keeps its state.
#[derive(Clone, Debug)]
pub struct Roots {
    /// containers/storage graph roots and run roots (podman, CRI-O).
    pub storage: Vec<PathBuf>,
    /// docker's data root.
    pub docker: Vec<PathBuf>,
    /// containerd's shim task directories (one subdirectory per namespace).
    pub containerd: Vec<PathBuf>,
    /// Where the host's `/` is seen from here: `/`, or a host process's
    /// root (`/proc/PID/root`) when nettrace runs in a container.
    pub base: PathBuf,
}

/// containers/storage's configuration, which may move its roots.
const STORAGE_CONF: &str = "/etc/containers/storage.conf";

impl Roots {
    /// The default places, plus the roots `/etc/containers/storage.conf`
    /// names. Run in a container of its own (a DaemonSet with `hostPID`),
    /// nettrace reads the host's files through a host process's
    /// `/proc/PID/root` (see [`host_root`]), so the pod needs no mount of
    /// each runtime's state.
    pub fn host() -> Self {
        let host = host_root();
        let mut roots = Self::default();
        if let Ok(conf) = fs::read_to_string(host.join(STORAGE_CONF.trim_start_matches('/'))) {
            for root in storage_conf_roots(&conf) {
                if !roots.storage.contains(&root) {
                    roots.storage.push(root);
                }
            }
        }
        roots.rebased(&host)
    }

    /// Every path under `dir` instead of `/`.
    fn rebased(self, dir: &Path) -> Self {
        let rebase = |paths: Vec<PathBuf>| {
            paths
                .into_iter()
                .map(|p| dir.join(p.strip_prefix("/").unwrap_or(&p)))
                .collect()
        };
        Self {
            storage: rebase(self.storage),
            docker: rebase(self.docker),
            containerd: rebase(self.containerd),
            base: dir.to_path_buf(),
        }
    }

    /// Whether the host's files are still seen through `base` (a host
    /// process whose root it is may have exited).
    pub fn alive(&self) -> bool {
        self.base.is_dir()
    }

    /// Everything under one directory, laid out as on a host: for tests on
    /// captured state files.
    #[cfg(test)]
    pub fn under(dir: &Path) -> Self {
        Self::default().rebased(dir)
    }

    /// The container `id`: the runtime `hint` (from the cgroup's name)
    /// first, then every other one. `None` when no runtime knows the id.
    pub fn find(&self, id: &str, hint: Option<Runtime>) -> Option<Found> {
        let order = match hint {
            Some(Runtime::Docker) => [Runtime::Docker, Runtime::Containerd, Runtime::Podman],
            Some(Runtime::Containerd) => [Runtime::Containerd, Runtime::Podman, Runtime::Docker],
            _ => [Runtime::Podman, Runtime::Containerd, Runtime::Docker],
        };
        order.into_iter().find_map(|r| match r {
            Runtime::Podman | Runtime::Crio => self.storage.iter().find_map(|root| storage(root, id)),
            Runtime::Docker => self.docker.iter().find_map(|root| docker(root, id)),
            Runtime::Containerd => self.containerd.iter().find_map(|root| containerd(root, id)),
        })
    }
}

/// Host processes whose root is the host's `/`, most long-lived first:
/// init, then the runtimes' daemons, then their per-container monitors
/// (podman has no daemon: its `conmon`s).
const HOST_PROCESSES: [&str; 9] = [
    "systemd",
    "init",
    "kubelet",
    "containerd",
    "dockerd",
    "crio",
    "containerd-shim",
    "containerd-shim-runc-v2",
    "conmon",
];

/// `/`, or `/proc/PID/root` of a host process when nettrace runs in
/// another mount namespace (in a container that shares the host's PIDs).
/// PID 1 first; where it cannot be looked at (some sandboxes hide it even
/// from root), a runtime's process ([`HOST_PROCESSES`]).
fn host_root() -> PathBuf {
    use std::os::unix::fs::MetadataExt as _;
    let mnt = |pid: &str| fs::metadata(format!("/proc/{pid}/ns/mnt")).ok().map(|m| m.ino());
    let Some(own) = mnt("self") else {
        return PathBuf::from("/");
    };
    let usable = |pid: &str| {
        mnt(pid).is_some_and(|ns| ns != own) && Path::new(&format!("/proc/{pid}/root/run")).is_dir()
    };
    if mnt("1") == Some(own) {
        return PathBuf::from("/");
    }
    if usable("1") {
        return PathBuf::from("/proc/1/root");
    }
    let mut candidates: Vec<(usize, String)> = fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let pid = e.file_name().to_str()?.to_string();
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
            let rank = HOST_PROCESSES.iter().position(|c| *c == comm.trim())?;
            Some((rank, pid))
        })
        .collect();
    candidates.sort();
    candidates.into_iter().find(|(_, pid)| usable(pid)).map_or_else(
        || PathBuf::from("/"),
        |(_, pid)| PathBuf::from(format!("/proc/{pid}/root")),
    )
}

/// `graphroot = "…"` and `runroot = "…"` of a storage.conf (TOML; these two
/// keys are plain strings in its `[storage]` table).
fn storage_conf_roots(conf: &str) -> Vec<PathBuf> {
    conf.lines()
        .filter_map(|line| {
            let (key, value) = line.split_once('=')?;
            matches!(key.trim(), "graphroot" | "runroot")
                .then(|| value.trim().trim_matches('"'))
                .filter(|v| v.starts_with('/'))
                .map(PathBuf::from)
        })
        .collect()
}

impl Default for Roots {
    fn default() -> Self {
        Self {
            storage: vec![
                "/var/lib/containers/storage".into(),
                "/run/containers/storage".into(),
            ],
            docker: vec!["/var/lib/docker".into()],
            containerd: vec![
                "/run/containerd/io.containerd.runtime.v2.task".into(),
                "/run/containerd/io.containerd.runtime.v1.linux".into(),
            ],
            base: "/".into(),
        }
    }
}

fn read_json(path: &Path) -> Option<Value> {
    serde_json::from_slice(&fs::read(path).ok()?).ok()
}

fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key)?.as_str().filter(|s| !s.is_empty())
}

/// The `*-containers` directories of a containers/storage root (one per
/// storage driver: overlay, vfs, btrfs, …).
fn driver_dirs(root: &Path) -> impl Iterator<Item = PathBuf> {
    fs::read_dir(root)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with("-containers"))
        })
}

/// podman or CRI-O, from containers/storage.
fn storage(root: &Path, id: &str) -> Option<Found> {
    driver_dirs(root).find_map(|dir| {
        let config = read_json(&dir.join(id).join("userdata/config.json"))?;
        let annotations = config.get("annotations").unwrap_or(&Value::Null);
        if let Some(found) = crio(id, annotations) {
            return Some(found);
        }
        let name = podman_name(&dir, id).unwrap_or_else(|| id[..12].to_string());
        Some(Found {
            container: Container {
                runtime: Runtime::Podman,
                id: id.to_string(),
                name,
            },
            pod: None,
            sandbox: false,
        })
    })
}

/// CRI-O's Kubernetes annotations, when they are there.
fn crio(id: &str, a: &Value) -> Option<Found> {
    let pod = Pod {
        namespace: str_at(a, "io.kubernetes.pod.namespace")?.to_string(),
        name: str_at(a, "io.kubernetes.pod.name")?.to_string(),
    };
    let sandbox = str_at(a, "io.kubernetes.cri-o.ContainerType") == Some("sandbox");
    let name = str_at(a, "io.kubernetes.container.name")
        .filter(|_| !sandbox)
        .unwrap_or("POD");
    Some(Found {
        container: Container {
            runtime: Runtime::Crio,
            id: id.to_string(),
            name: name.to_string(),
        },
        pod: Some(pod),
        sandbox,
    })
}

/// podman's name for `id`, from containers/storage's `containers.json`.
fn podman_name(dir: &Path, id: &str) -> Option<String> {
    let all = read_json(&dir.join("containers.json"))?;
    let entry = all.as_array()?.iter().find(|c| str_at(c, "id") == Some(id))?;
    Some(entry.get("names")?.as_array()?.first()?.as_str()?.to_string())
}

/// docker's `config.v2.json`.
fn docker(root: &Path, id: &str) -> Option<Found> {
    let config = read_json(&root.join("containers").join(id).join("config.v2.json"))?;
    let labels = config.pointer("/Config/Labels").unwrap_or(&Value::Null);
    let pod = kubernetes_labels(labels);
    let sandbox = str_at(labels, "io.kubernetes.docker.type") == Some("podsandbox");
    let name = str_at(labels, "io.kubernetes.container.name")
        .map(str::to_string)
        .or_else(|| str_at(&config, "Name").map(|n| n.trim_start_matches('/').to_string()))
        .unwrap_or_else(|| id[..12].to_string());
    Some(Found {
        container: Container {
            runtime: Runtime::Docker,
            id: id.to_string(),
            name,
        },
        pod,
        sandbox,
    })
}

fn kubernetes_labels(labels: &Value) -> Option<Pod> {
    Some(Pod {
        namespace: str_at(labels, "io.kubernetes.pod.namespace")?.to_string(),
        name: str_at(labels, "io.kubernetes.pod.name")?.to_string(),
    })
}

/// Older CRI plugins name the pod only in its log directory,
/// `/var/log/pods/NAMESPACE_NAME_UID` (neither name may contain `_`).
fn pod_of_log_directory(dir: &str) -> Option<Pod> {
    let mut parts = dir.rsplit('/').next()?.split('_');
    let (namespace, name, _uid) = (parts.next()?, parts.next()?, parts.next()?);
    Some(Pod {
        namespace: namespace.to_string(),
        name: name.to_string(),
    })
}

/// containerd's task bundle, in any containerd namespace (`k8s.io` for
/// Kubernetes, `default`, `moby`, …).
fn containerd(root: &Path, id: &str) -> Option<Found> {
    fs::read_dir(root).ok()?.flatten().find_map(|ns| {
        let config = read_json(&ns.path().join(id).join("config.json"))?;
        let a = config.get("annotations").unwrap_or(&Value::Null);
        let pod = match (
            str_at(a, "io.kubernetes.cri.sandbox-namespace"),
            str_at(a, "io.kubernetes.cri.sandbox-name"),
        ) {
            (Some(namespace), Some(name)) => Some(Pod {
                namespace: namespace.to_string(),
                name: name.to_string(),
            }),
            _ => str_at(a, "io.kubernetes.cri.sandbox-log-directory").and_then(pod_of_log_directory),
        };
        let sandbox = str_at(a, "io.kubernetes.cri.container-type") == Some("sandbox");
        let name = if sandbox {
            Some("POD")
        } else {
            str_at(a, "io.kubernetes.cri.container-name").or_else(|| str_at(a, "nerdctl/name"))
        };
        Some(Found {
            container: Container {
                runtime: Runtime::Containerd,
                id: id.to_string(),
                name: name.map_or_else(|| id[..12].to_string(), str::to_string),
            },
            pod,
            sandbox,
        })
    })
}

#[cfg(test)]
#[path = "runtimes_tests.rs"]
mod tests;
