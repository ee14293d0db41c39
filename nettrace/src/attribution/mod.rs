//! Which container, which pod: the owner of a network namespace, named as
//! the operator knows it (`web-1`, `default/web-7d9f`) instead of the nsfs
//! inode the kernel reports.
//!
//! The pipeline: [`scan`] walks `/proc` and maps each netns inode to the
//! container ids of the processes in it ([`cgroup`] reads the id out of
//! `/proc/PID/cgroup`); [`runtimes`] reads each runtime's own state files
//! for the name and the Kubernetes pod; [`cache`] keeps the answers and
//! refreshes them in a worker thread, so the event path only ever reads a
//! table (a namespace seen for the first time prints its inode now, its
//! name once the worker has found it); [`select`] turns `--container` and
//! `--pod` into the set of namespaces the kernel programs let through.

pub mod cache;
pub mod cgroup;
pub mod runtimes;
pub mod scan;
pub mod select;

use std::{fmt, sync::Arc};

use serde::Serialize;

use crate::output::Record;

pub use self::cache::Attribution;

/// The container runtimes whose state is read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Runtime {
    Podman,
    Docker,
    Containerd,
    #[serde(rename = "cri-o")]
    Crio,
}

impl fmt::Display for Runtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Runtime::Podman => "podman",
            Runtime::Docker => "docker",
            Runtime::Containerd => "containerd",
            Runtime::Crio => "cri-o",
        })
    }
}

/// A container, as its runtime names it. JSON: `{"runtime", "id", "name"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Container {
    pub runtime: Runtime,
    /// The full id (64 hex digits).
    pub id: String,
    /// The runtime's name for it; for a Kubernetes container the name in
    /// its pod spec; the short id (12 digits, as `podman ps` shows it) when
    /// the runtime has no name.
    pub name: String,
}

/// A Kubernetes pod. JSON: `{"namespace", "name"}`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Pod {
    pub namespace: String,
    pub name: String,
}

/// What the runtime state says about one container id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Found {
    pub container: Container,
    pub pod: Option<Pod>,
    /// The pod's sandbox ("pause") container rather than one of its
    /// workloads: a namespace is named after a workload when it has one.
    pub sandbox: bool,
}

/// Who owns a network namespace.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Owner {
    pub container: Container,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<Pod>,
}

/// The owner fields of a JSON record, to `#[serde(flatten)]` into it:
/// `container` and `pod`, each left out when unknown.
#[derive(Clone, Debug, Default, Serialize)]
pub struct OwnerFields {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub container: Option<Container>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pod: Option<Pod>,
}

impl OwnerFields {
    pub fn of(owner: Option<&Arc<Owner>>) -> Self {
        match owner {
            None => Self::default(),
            Some(o) => Self {
                container: Some(o.container.clone()),
                pod: o.pod.clone(),
            },
        }
    }

    /// `-w`'s comments: `container: NAME (RUNTIME ID12)` and
    /// `pod: NAMESPACE/NAME`, each when known.
    pub fn comments(&self) -> (Option<String>, Option<String>) {
        (
            self.container
                .as_ref()
                .map(|c| format!("{} ({} {})", c.name, c.runtime, &c.id[..c.id.len().min(12)])),
            self.pod.as_ref().map(|p| format!("{}/{}", p.namespace, p.name)),
        )
    }

    /// `--detail`'s tag: `[pod:NAMESPACE/NAME]` for a Kubernetes pod (its
    /// containers share the namespace), else `[ctr:NAME]`; `None` when the
    /// owner is unknown.
    pub fn tag(&self) -> Option<String> {
        match (&self.pod, &self.container) {
            (Some(p), _) => Some(format!("[pod:{}/{}]", p.namespace, p.name)),
            (None, Some(c)) => Some(format!("[ctr:{}]", c.name)),
            (None, None) => None,
        }
    }
}

/// A record with the owner of its namespace added to its JSON form (the
/// text is the record's own): for the records that carry no owner field
/// themselves (`--rt`, `--rtt`, `--sock`).
#[derive(Serialize)]
pub struct WithOwner<R> {
    #[serde(flatten)]
    pub record: R,
    #[serde(flatten)]
    pub owner: OwnerFields,
}

impl<R: Record> Record for WithOwner<R> {
    fn kind(&self) -> &'static str {
        self.record.kind()
    }

    fn text(&self, w: &mut dyn std::io::Write) -> std::io::Result<()> {
        self.record.text(w)
    }
}
