//! The namespace → owner table, read by the event path and filled by a
//! worker thread. A lookup never waits: a namespace not in the table (or
//! whose "no owner" answer is older than [`RECHECK`]) is answered "unknown"
//! now and wakes the worker, which walks `/proc` again (at most every
//! [`MIN_WALK`]); the next event of that namespace gets the name.

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex, RwLock,
        mpsc::{self, SyncSender, TrySendError},
    },
    thread,
    time::{Duration, Instant},
};

use super::{
    Owner,
    runtimes::Roots,
    scan::{self, Snapshot},
};

/// How long "this namespace has no container" holds: a namespace is made
/// before its container's first process enters it.
const RECHECK: Duration = Duration::from_secs(3);

/// The shortest time between two walks the event path asks for.
const MIN_WALK: Duration = Duration::from_millis(200);

#[derive(Clone, Debug)]
enum Entry {
    Owned(Arc<Owner>),
    /// No container as of this walk.
    Unowned(Instant),
    /// Asked for since this time; the worker's next walk answers.
    Pending(Instant),
}

struct Inner {
    /// Re-made when the host process it reads through has exited.
    roots: Mutex<Roots>,
    table: RwLock<HashMap<u64, Entry>>,
    /// Serializes walks (the worker's and `walk_now`'s).
    walking: Mutex<()>,
}

/// Shared handle to the table; cheap to clone.
#[derive(Clone)]
pub struct Attribution {
    inner: Arc<Inner>,
    wake: SyncSender<()>,
}

impl Attribution {
    /// Walks `/proc` once now (a few milliseconds), then starts the worker.
    pub fn start(roots: Roots) -> Self {
        let inner = Arc::new(Inner {
            roots: Mutex::new(roots),
            table: RwLock::default(),
            walking: Mutex::new(()),
        });
        // One pending wake-up is enough: the walk answers every request.
        let (wake, woken) = mpsc::sync_channel::<()>(1);
        let this = Self { inner, wake };
        this.walk_now();
        let worker = this.inner.clone();
        let spawned = thread::Builder::new().name("attribution".into()).spawn(move || {
            while woken.recv().is_ok() {
                walk(&worker);
                thread::sleep(MIN_WALK);
            }
        });
        if let Err(e) = spawned {
            eprintln!("nettrace: containers are named as of start-up only: cannot start a thread: {e}");
        }
        this
    }

    /// Walks `/proc` now and updates the table; returns what it saw.
    pub fn walk_now(&self) -> Snapshot {
        walk(&self.inner)
    }

    /// The owner of namespace `netns`, if known now.
    pub fn owner(&self, netns: u64) -> Option<Arc<Owner>> {
        let table = self
            .inner
            .table
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match table.get(&netns) {
            Some(Entry::Owned(o)) => return Some(o.clone()),
            Some(Entry::Unowned(at) | Entry::Pending(at)) if at.elapsed() < RECHECK => return None,
            _ => {}
        }
        drop(table);
        // Not asked again until the worker has walked (or RECHECK passed).
        self.inner
            .table
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(netns, Entry::Pending(Instant::now()));
        match self.wake.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) | Err(TrySendError::Disconnected(())) => None,
        }
    }
}

impl Attribution {
    /// Whether the last walk found `netns` without a container (as opposed
    /// to not having looked yet).
    pub fn known_unowned(&self, netns: u64) -> bool {
        let table = self
            .inner
            .table
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        matches!(table.get(&netns), Some(Entry::Unowned(at)) if at.elapsed() < RECHECK)
    }
}

fn walk(inner: &Inner) -> Snapshot {
    let _one = inner
        .walking
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let started = Instant::now();
    let snap = {
        let mut roots = inner
            .roots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if !roots.alive() {
            *roots = Roots::host();
        }
        scan::walk(&roots)
    };
    let now = Instant::now();
    let mut table = inner
        .table
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    // Asked for before this walk and not seen in it: no process is in
    // the namespace, so no container owns it (a bare `ip netns`).
    for entry in table.values_mut() {
        if matches!(entry, Entry::Pending(at) if *at <= started) {
            *entry = Entry::Unowned(now);
        }
    }
    for (ns, owner) in &snap.namespaces {
        let entry = match owner {
            Some(o) => Entry::Owned(Arc::new(o.clone())),
            None => Entry::Unowned(now),
        };
        table.insert(*ns, entry);
    }
    snap
}
