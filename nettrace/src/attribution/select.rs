//! `--container` and `--pod`: which network namespaces pass, in the kernel.
//!
//! The programs check a namespace against their `NETNS_ALLOWED` map
//! (`Filter::netns_set`). The set is what the selectors match in a walk of
//! `/proc`, and a thread walks again every [`REFRESH`]: a matching
//! container that starts later is added, one that stopped is taken out
//! (the kernel reuses namespace inodes, so a stale entry would let a
//! stranger's packets through).

use std::{
    collections::BTreeSet,
    fmt,
    sync::{Arc, Mutex},
    thread,
    time::Duration,
};

use aya::{
    Ebpf,
    maps::{HashMap, MapData},
};

use super::{Attribution, Owner, scan::Snapshot};

/// How often the set is brought up to date.
const REFRESH: Duration = Duration::from_secs(1);

/// The map in every object whose programs check namespaces.
const MAP: &str = "NETNS_ALLOWED";

/// One `--container` or `--pod`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Selector {
    /// By name, full id or id prefix (at least 4 hex digits).
    Container(String),
    /// By name, in one namespace or any.
    Pod { namespace: Option<String>, name: String },
}

impl Selector {
    /// `--pod [NAMESPACE/]NAME`.
    pub fn pod(value: &str) -> Result<Self, String> {
        let (namespace, name) = match value.split_once('/') {
            Some((ns, name)) => (Some(ns), name),
            None => (None, value),
        };
        if name.is_empty() || namespace.is_some_and(str::is_empty) || name.contains('/') {
            return Err(format!("--pod {value:?}: expected NAME or NAMESPACE/NAME"));
        }
        Ok(Selector::Pod {
            namespace: namespace.map(str::to_string),
            name: name.to_string(),
        })
    }

    /// `--container NAME|ID`.
    pub fn container(value: &str) -> Result<Self, String> {
        if value.is_empty() {
            return Err("--container: expected a container name or id".into());
        }
        Ok(Selector::Container(value.to_string()))
    }

    pub fn matches(&self, owner: &Owner) -> bool {
        match self {
            Selector::Container(want) => {
                let c = &owner.container;
                c.name == *want
                    || c.id == *want
                    || (want.len() >= 4
                        && want.bytes().all(|b| b.is_ascii_hexdigit())
                        && c.id.starts_with(want.as_str()))
            }
            Selector::Pod { namespace, name } => owner
                .pod
                .as_ref()
                .is_some_and(|p| p.name == *name && namespace.as_ref().is_none_or(|ns| p.namespace == *ns)),
        }
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Selector::Container(c) => write!(f, "--container {c}"),
            Selector::Pod {
                namespace: Some(ns),
                name,
            } => write!(f, "--pod {ns}/{name}"),
            Selector::Pod {
                namespace: None,
                name,
            } => write!(f, "--pod {name}"),
        }
    }
}

/// Every `--container` and `--pod`, and `--wait-container`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selection {
    pub selectors: Vec<Selector>,
    pub wait: bool,
}

impl Selection {
    /// The namespaces whose owner some selector matches.
    pub fn namespaces(&self, snap: &Snapshot) -> BTreeSet<u64> {
        snap.namespaces
            .iter()
            .filter(|(_, owner)| {
                owner
                    .as_ref()
                    .is_some_and(|o| self.selectors.iter().any(|s| s.matches(o)))
            })
            .map(|(ns, _)| *ns)
            .collect()
    }

    /// The containers a walk saw, for the error that names none matched.
    pub fn seen(snap: &Snapshot) -> String {
        let mut names: Vec<String> = snap
            .namespaces
            .values()
            .flatten()
            .map(|o| match &o.pod {
                Some(p) => format!("pod {}/{}", p.namespace, p.name),
                None => format!("{} ({})", o.container.name, o.container.runtime),
            })
            .collect();
        names.sort();
        names.dedup();
        if names.is_empty() {
            "no container is running".into()
        } else {
            format!("running: {}", names.join(", "))
        }
    }
}

/// The allowed namespaces, in every loaded object's map.
pub struct Gate {
    selection: Selection,
    attribution: Attribution,
    state: Mutex<GateState>,
}

#[derive(Default)]
struct GateState {
    maps: Vec<HashMap<MapData, u32, u8>>,
    allowed: BTreeSet<u64>,
}

impl Gate {
    /// The gate for `selection`, with the namespaces matching now. Fails
    /// (a usage error) when none match, unless `--wait-container`.
    pub fn new(selection: Selection, attribution: Attribution) -> Result<Arc<Self>, String> {
        let snap = attribution.walk_now();
        let allowed = selection.namespaces(&snap);
        let what = selection
            .selectors
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ");
        if allowed.is_empty() {
            if !selection.wait {
                return Err(format!(
                    "{what}: no such container ({}); --wait-container waits for it",
                    Selection::seen(&snap)
                ));
            }
            eprintln!("nettrace: {what}: none running yet; waiting for it (--wait-container)");
        }
        Ok(Arc::new(Self {
            selection,
            attribution,
            state: Mutex::new(GateState {
                maps: Vec::new(),
                allowed,
            }),
        }))
    }

    /// Takes `ebpf`'s namespace map (if its programs have one) and fills it.
    pub fn add(&self, ebpf: &mut Ebpf) -> anyhow::Result<()> {
        let Some(map) = ebpf.take_map(MAP) else {
            return Ok(());
        };
        let mut map: HashMap<MapData, u32, u8> = HashMap::try_from(map)?;
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for ns in &state.allowed {
            map.insert(&(*ns as u32), &1, 0)?;
        }
        state.maps.push(map);
        Ok(())
    }

    /// Whether namespace `netns` is let through now (for `--conn`, which
    /// filters in userspace).
    pub fn allows(&self, netns: u64) -> bool {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .allowed
            .contains(&netns)
    }

    /// Keeps the maps current from now on, in a thread of its own.
    pub fn watch(self: &Arc<Self>) {
        let gate = self.clone();
        let spawned = thread::Builder::new()
            .name("container-gate".into())
            .spawn(move || {
                loop {
                    thread::sleep(REFRESH);
                    gate.refresh();
                }
            });
        if let Err(e) = spawned {
            eprintln!("nettrace: containers started later are not traced: cannot start a thread: {e}");
        }
    }

    fn refresh(&self) {
        let now = self.selection.namespaces(&self.attribution.walk_now());
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let GateState { maps, allowed } = &mut *state;
        for ns in now.difference(allowed) {
            eprintln!("nettrace: netns {ns} now matches; tracing it");
        }
        for map in maps.iter_mut() {
            for ns in now.difference(allowed) {
                if let Err(e) = map.insert(&(*ns as u32), &1, 0) {
                    eprintln!("nettrace: netns {ns}: cannot add it to the kernel filter: {e}");
                }
            }
            for ns in allowed.difference(&now) {
                let _ = map.remove(&(*ns as u32));
            }
        }
        *allowed = now;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::attribution::{Container, Pod, Runtime};

    fn owner(name: &str, pod: Option<(&str, &str)>) -> Owner {
        Owner {
            container: Container {
                runtime: Runtime::Containerd,
                id: format!("{:0<64}", "abcd1234"),
                name: name.into(),
            },
            pod: pod.map(|(ns, n)| Pod {
                namespace: ns.into(),
                name: n.into(),
            }),
        }
    }

    #[test]
    fn containers_by_name_id_and_prefix() {
        let o = owner("web-1", None);
        for yes in ["web-1", "abcd1234", "abcd", &o.container.id] {
            assert!(Selector::container(yes).unwrap().matches(&o), "{yes}");
        }
        for no in ["web", "web-2", "abc", "bcd1"] {
            assert!(!Selector::container(no).unwrap().matches(&o), "{no}");
        }
        assert!(Selector::container("").is_err());
    }

    #[test]
    fn pods_by_name_in_one_namespace_or_any() {
        let o = owner("nginx", Some(("default", "web-7d9f")));
        assert!(Selector::pod("web-7d9f").unwrap().matches(&o));
        assert!(Selector::pod("default/web-7d9f").unwrap().matches(&o));
        assert!(!Selector::pod("kube-system/web-7d9f").unwrap().matches(&o));
        assert!(!Selector::pod("web").unwrap().matches(&o));
        assert!(
            !Selector::pod("web-7d9f")
                .unwrap()
                .matches(&owner("web-7d9f", None))
        );
        for bad in ["", "/x", "ns/", "a/b/c"] {
            assert!(Selector::pod(bad).is_err(), "{bad}");
        }
        assert_eq!(
            Selector::pod("default/web").unwrap().to_string(),
            "--pod default/web"
        );
    }
}
