//! `--metrics ADDR`: Prometheus/OpenMetrics counters of what the session
//! saw, served over HTTP (see [`super::scrape`]) next to whatever the mode
//! prints. The exposition format comes from `prometheus-client` (the
//! Prometheus project's Rust client).
//!
//! Counters: packets dropped by reason and location (`--drop`, and
//! `kfree_skb` events of lifecycle tracing), events per hook, TCP resets
//! sent by reason and received, retransmits, and events lost by cause (the
//! kernel's own counts). Names follow Prometheus's conventions: the unit in
//! the name (`_seconds`, declared as the OpenMetrics unit too), `_total` on
//! counters (added by the client library when encoding).

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use crate::{attribution::Attribution, cli::MetricsLabels};
use prometheus_client::{
    encoding::text::encode,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::{Registry, Unit},
};

type Labels = Vec<(&'static str, String)>;

/// What the metrics take of an `--rt` task (ns, µs).
#[derive(Clone, Copy, Debug, Default)]
pub struct RtTask {
    pub upload_ns: u64,
    pub process_ns: u64,
    pub download_ns: Option<u64>,
    pub srtt_us: u64,
    pub retrans: u32,
}

/// Histogram buckets for times: 10 µs doubling to ~5 s.
fn time_buckets() -> Histogram {
    Histogram::new(exponential_buckets(1e-5, 2.0, 20))
}

/// The counters, cheap to clone (shared atomics).
#[derive(Clone)]
pub struct Metrics {
    /// `--rt`: request/response task times by phase, server port and side.
    rt_seconds: Family<Labels, Histogram, fn() -> Histogram>,
    /// `--rt`: timed connections closed, by port, side and how they ended;
    /// retransmitted segments of tasks, by port and side.
    rt_closes: Family<Labels, Counter>,
    rt_retransmits: Family<Labels, Counter>,
    /// Smoothed RTT of `--rt` tasks and `--conn` connections.
    rtt_seconds: Histogram,
    /// RTT samples of `--rtt-detail`.
    rtt_samples: Histogram,
    drops: Family<Labels, Counter>,
    events: Family<Labels, Counter>,
    resets: Family<Labels, Counter>,
    resets_received: Counter,
    retransmits: Counter,
    /// Brought up to the kernel's cumulative loss counters (the kernel, not
    /// this process, counts; they only grow, so a counter is right).
    lost: Family<Labels, Counter>,
    /// 1 once the mode is attached and tracing (`/readyz` answers 200).
    attached: Gauge,
    ready: Arc<AtomicBool>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            rt_seconds: Family::new_with_constructor(time_buckets),
            rt_closes: Family::default(),
            rt_retransmits: Family::default(),
            rtt_seconds: time_buckets(),
            rtt_samples: time_buckets(),
            drops: Family::default(),
            events: Family::default(),
            resets: Family::default(),
            resets_received: Counter::default(),
            retransmits: Counter::default(),
            lost: Family::default(),
            attached: Gauge::default(),
            ready: Arc::new(AtomicBool::new(false)),
        }
    }
}

impl Metrics {
    fn registry(&self) -> Registry {
        let mut r = Registry::with_prefix("nettrace");
        r.register(
            "packets_dropped",
            "Packets the kernel dropped (kfree_skb), by drop reason and code location",
            self.drops.clone(),
        );
        r.register(
            "events",
            "Events the kernel hooks reported, by hook",
            self.events.clone(),
        );
        r.register(
            "events_lost",
            "Events the kernel could not deliver or track, by cause",
            self.lost.clone(),
        );
        r.register(
            "tcp_resets_sent",
            "TCP resets sent (tcp_send_reset), by reset reason",
            self.resets.clone(),
        );
        r.register(
            "tcp_resets_received",
            "TCP resets received (tcp_receive_reset)",
            self.resets_received.clone(),
        );
        r.register(
            "tcp_retransmits",
            "TCP retransmissions (tcp_retransmit_skb: one per retransmitted skb)",
            self.retransmits.clone(),
        );
        r.register_with_unit(
            "tcp_rt",
            "Request/response task times of --rt, by phase (upload, process, download), server port and side",
            Unit::Seconds,
            self.rt_seconds.clone(),
        );
        r.register(
            "tcp_rt_closes",
            "Connections timed by --rt that closed, by server port, side and end (closed, closed_while_sending, closed_while_receiving)",
            self.rt_closes.clone(),
        );
        r.register(
            "tcp_rt_retransmits",
            "Segments retransmitted during --rt tasks, by server port and side",
            self.rt_retransmits.clone(),
        );
        r.register_with_unit(
            "tcp_rtt",
            "TCP RTT samples of --rtt-detail and of --sock at tcp_ack_update_rtt",
            Unit::Seconds,
            self.rtt_samples.clone(),
        );
        r.register_with_unit(
            "tcp_srtt",
            "Smoothed TCP RTT of --rt tasks and --conn connections",
            Unit::Seconds,
            self.rtt_seconds.clone(),
        );
        r.register(
            "attached",
            "1 once nettrace's programs are attached and tracing, else 0",
            self.attached.clone(),
        );
        r
    }

    /// The mode is attached: tracing from now on (`/readyz`, `nettrace_attached`).
    pub fn set_ready(&self) {
        self.attached.set(1);
        self.ready.store(true, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    fn drop_counter(&self, reason: &str, location: &str, owner: Labels) -> Counter {
        let mut labels = vec![("reason", reason.to_string()), ("location", location.to_string())];
        labels.extend(owner);
        self.drops.get_or_create(&labels).clone()
    }

    /// The counters one event of `hook` increments.
    fn hook_counters(&self, hook: &str) -> Vec<Counter> {
        let mut c = vec![
            self.events
                .get_or_create(&vec![("hook", hook.to_string())])
                .clone(),
        ];
        match hook {
            "tcp_retransmit_skb" => c.push(self.retransmits.clone()),
            "tcp_receive_reset" => c.push(self.resets_received.clone()),
            _ => {}
        }
        c
    }

    fn reset_counter(&self, reason: &str) -> Counter {
        self.resets
            .get_or_create(&vec![("reason", reason.to_string())])
            .clone()
    }

    /// The kernel's count of events lost for `cause` is now `total`.
    /// (One caller, the event loop, so reading then adding does not race.)
    pub fn lost(&self, cause: &str, total: u64) {
        let c = self.lost.get_or_create(&vec![("cause", cause.to_string())]);
        let counted = c.get();
        if total > counted {
            c.inc_by(total - counted);
        }
    }

    /// One RTT sample (`--rtt-detail`), in µs.
    pub fn rtt_sample(&self, us: u64) {
        self.rtt_samples.observe(us as f64 / 1e6);
    }

    /// One smoothed-RTT sample, in µs.
    pub fn rtt(&self, us: u64) {
        self.rtt_seconds.observe(us as f64 / 1e6);
    }

    /// One `--rt` task's times (ns); `download` is `None` when
    /// unacknowledged. `port`: the server's; `side`: `server` or `client`.
    pub fn task(&self, t: RtTask, port: u16, side: &str) {
        for (phase, ns) in [
            ("upload", Some(t.upload_ns)),
            ("process", Some(t.process_ns)),
            ("download", t.download_ns),
        ] {
            if let Some(ns) = ns {
                self.rt_seconds
                    .get_or_create(&vec![
                        ("phase", phase.to_string()),
                        ("port", port.to_string()),
                        ("side", side.to_string()),
                    ])
                    .observe(ns as f64 / 1e9);
            }
        }
        let labels = vec![("port", port.to_string()), ("side", side.to_string())];
        self.rt_retransmits
            .get_or_create(&labels)
            .inc_by(t.retrans.into());
        if t.srtt_us != 0 {
            self.rtt(t.srtt_us);
        }
    }

    /// A connection `--rt` timed closed; `end` as its JSON names it.
    pub fn rt_close(&self, port: u16, side: &str, end: &str) {
        self.rt_closes
            .get_or_create(&vec![
                ("port", port.to_string()),
                ("side", side.to_string()),
                ("end", end.to_string()),
            ])
            .inc();
    }

    /// The OpenMetrics text of every counter.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &self.registry());
        out
    }
}

/// A sink's handles to the counters, keyed by the raw values events carry:
/// after the first event of a kind, counting is an atomic add, without
/// building label strings or symbolizing on the event path.
pub struct Counts {
    metrics: Arc<Metrics>,
    hooks: HashMap<u32, Vec<Counter>>,
    /// By (reason, location, netns); the netns is 0 without owner labels.
    /// `false`: made while the namespace's owner was not known yet.
    drops: HashMap<(u32, u64, u32), (Counter, bool)>,
    resets: HashMap<u32, Counter>,
    /// `--metrics-labels`: drops also by pod and/or container.
    owners: Option<(Attribution, MetricsLabels)>,
}

impl Counts {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            hooks: HashMap::new(),
            drops: HashMap::new(),
            resets: HashMap::new(),
            owners: None,
        }
    }

    /// Drops are also labelled with the owner of their namespace
    /// (`--metrics-labels`): `pod="NAMESPACE/NAME"`, `container="NAME"`,
    /// empty outside containers.
    pub fn with_owners(mut self, attribution: Attribution, labels: MetricsLabels) -> Self {
        if labels != MetricsLabels::default() {
            self.owners = Some((attribution, labels));
        }
        self
    }

    /// The owner labels of namespace `netns`, and whether its owner is
    /// known (or known to be none).
    fn owner_labels(&self, netns: u32) -> (Labels, bool) {
        let Some((attribution, want)) = &self.owners else {
            return (Vec::new(), true);
        };
        let owner = attribution.owner(u64::from(netns));
        let known = owner.is_some() || attribution.known_unowned(u64::from(netns));
        let mut labels = Vec::new();
        if want.pod {
            let pod = owner.as_ref().and_then(|o| o.pod.as_ref());
            labels.push((
                "pod",
                pod.map(|p| format!("{}/{}", p.namespace, p.name))
                    .unwrap_or_default(),
            ));
        }
        if want.container {
            labels.push((
                "container",
                owner.map(|o| o.container.name.clone()).unwrap_or_default(),
            ));
        }
        (labels, known)
    }

    /// An event at hook `slot`; `name` is asked for the first time only.
    pub fn hook(&mut self, slot: u32, name: impl FnOnce() -> String) {
        let m = &self.metrics;
        for c in self.hooks.entry(slot).or_insert_with(|| m.hook_counters(&name())) {
            c.inc();
        }
    }

    /// A drop with reason value `reason` at code address `location` in
    /// namespace `netns`; `labels` gives their names the first time (and
    /// again while the namespace's owner is being looked up).
    pub fn dropped(
        &mut self,
        reason: u32,
        location: u64,
        netns: u32,
        labels: impl FnOnce() -> (String, String),
    ) {
        let key = (reason, location, if self.owners.is_some() { netns } else { 0 });
        if let Some((counter, true)) = self.drops.get(&key) {
            counter.inc();
            return;
        }
        let (owner, known) = self.owner_labels(netns);
        let (r, l) = labels();
        let counter = self.metrics.drop_counter(&r, &l, owner);
        counter.inc();
        self.drops.insert(key, (counter, known));
    }

    /// One RTT sample (µs).
    pub fn rtt_sample(&self, us: u64) {
        self.metrics.rtt_sample(us);
    }

    /// One `--rt` task of the server at `port`, timed on `side`.
    pub fn task(&mut self, t: RtTask, port: u16, side: &str) {
        self.metrics.task(t, port, side);
    }

    /// A connection `--rt` timed closed.
    pub fn rt_close(&mut self, port: u16, side: &str, end: &str) {
        self.metrics.rt_close(port, side, end);
    }

    /// A TCP reset with reason value `reason`.
    pub fn reset(&mut self, reason: u32, name: impl FnOnce() -> String) {
        let m = &self.metrics;
        self.resets
            .entry(reason)
            .or_insert_with(|| m.reset_counter(&name()))
            .inc();
    }
}

/// `--metrics` value: `HOST:PORT`, `:PORT` or `PORT` (then 127.0.0.1, so
/// nothing is exposed beyond this machine unless asked).
pub fn parse_addr(s: &str) -> Result<SocketAddr, String> {
    let port_only = s.strip_prefix(':').unwrap_or(s);
    if let Ok(port) = port_only.parse::<u16>() {
        return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
    }
    s.parse()
        .map_err(|_| format!("--metrics: '{s}' is not PORT, :PORT or HOST:PORT (e.g. 127.0.0.1:9464)"))
}

#[cfg(test)]
#[path = "metrics_tests.rs"]
mod tests;
