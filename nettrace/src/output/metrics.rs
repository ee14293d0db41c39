//! `--metrics ADDR`: Prometheus/OpenMetrics counters of what the session
//! saw, served over HTTP next to whatever the mode prints. The exposition
//! format comes from `prometheus-client` (the Prometheus project's Rust
//! client); the server answers `GET /metrics` and nothing else, one request
//! per connection, so a few lines of tokio suffice.
//!
//! Counters: drops by reason and location (`--drop`, and `kfree_skb` events
//! of lifecycle tracing), events per hook, TCP resets sent by reason,
//! retransmits, and events lost by cause (the kernel's own counts).

use std::{collections::HashMap, net::SocketAddr, sync::Arc};

use prometheus_client::{
    encoding::text::encode,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpListener,
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
    retransmits: Counter,
    /// Set from the kernel's cumulative loss counters (hence gauges of a
    /// monotonic value: the kernel, not this process, counts).
    lost: Family<Labels, Gauge>,
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
            retransmits: Counter::default(),
            lost: Family::default(),
        }
    }
}

impl Metrics {
    fn registry(&self) -> Registry {
        let mut r = Registry::with_prefix("nettrace");
        r.register(
            "drops",
            "Packets the kernel dropped, by drop reason and location",
            self.drops.clone(),
        );
        r.register("events", "Events reported, by hook", self.events.clone());
        r.register(
            "tcp_resets_sent",
            "TCP resets sent, by reset reason",
            self.resets.clone(),
        );
        r.register(
            "tcp_retransmits",
            "TCP segments retransmitted",
            self.retransmits.clone(),
        );
        r.register(
            "tcp_rt_seconds",
            "Request/response task times of --rt (upload, process, download)",
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
        r.register(
            "tcp_rtt_seconds",
            "TCP RTT samples seen by --rtt-detail and by --sock at tcp_ack_update_rtt",
            self.rtt_samples.clone(),
        );
        r.register(
            "tcp_srtt_seconds",
            "Smoothed RTT of --rt tasks and --conn connections",
            self.rtt_seconds.clone(),
        );
        r.register(
            "lost_events",
            "Events the kernel could not deliver or track, by cause (cumulative)",
            self.lost.clone(),
        );
        r
    }

    fn drop_counter(&self, reason: &str, location: &str) -> Counter {
        self.drops
            .get_or_create(&vec![
                ("reason", reason.to_string()),
                ("location", location.to_string()),
            ])
            .clone()
    }

    /// The counters one event of `hook` increments.
    fn hook_counters(&self, hook: &str) -> Vec<Counter> {
        let mut c = vec![
            self.events
                .get_or_create(&vec![("hook", hook.to_string())])
                .clone(),
        ];
        if hook == "tcp_retransmit_skb" {
            c.push(self.retransmits.clone());
        }
        c
    }

    fn reset_counter(&self, reason: &str) -> Counter {
        self.resets
            .get_or_create(&vec![("reason", reason.to_string())])
            .clone()
    }

    pub fn lost(&self, cause: &str, total: u64) {
        self.lost
            .get_or_create(&vec![("cause", cause.to_string())])
            .set(total as i64);
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

    /// Binds `addr` (errors are the caller's: a usage problem) and serves
    /// scrapes in the background for the rest of the session.
    pub async fn serve(self: Arc<Self>, addr: SocketAddr) -> std::io::Result<SocketAddr> {
        let listener = TcpListener::bind(addr).await?;
        let bound = listener.local_addr()?;
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                let m = self.clone();
                tokio::spawn(async move {
                    let mut req = [0u8; 1024];
                    let n = conn.read(&mut req).await.unwrap_or(0);
                    let head = String::from_utf8_lossy(&req[..n]);
                    let response = if head.starts_with("GET /metrics ") || head.starts_with("GET /metrics?") {
                        let body = m.encode();
                        format!(
                            "HTTP/1.1 200 OK\r\nContent-Type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                            body.len()
                        )
                    } else {
                        "HTTP/1.1 404 Not Found\r\nContent-Length: 19\r\nConnection: close\r\n\r\ntry GET /metrics\r\n\r\n"
                            .to_string()
                    };
                    let _ = conn.write_all(response.as_bytes()).await;
                    let _ = conn.shutdown().await;
                });
            }
        });
        Ok(bound)
    }
}

/// A sink's handles to the counters, keyed by the raw values events carry:
/// after the first event of a kind, counting is an atomic add, without
/// building label strings or symbolizing on the event path.
pub struct Counts {
    metrics: Arc<Metrics>,
    hooks: HashMap<u32, Vec<Counter>>,
    drops: HashMap<(u32, u64), Counter>,
    resets: HashMap<u32, Counter>,
}

impl Counts {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            metrics,
            hooks: HashMap::new(),
            drops: HashMap::new(),
            resets: HashMap::new(),
        }
    }

    /// An event at hook `slot`; `name` is asked for the first time only.
    pub fn hook(&mut self, slot: u32, name: impl FnOnce() -> String) {
        let m = &self.metrics;
        for c in self.hooks.entry(slot).or_insert_with(|| m.hook_counters(&name())) {
            c.inc();
        }
    }

    /// A drop with reason value `reason` at code address `location`;
    /// `labels` gives their names the first time.
    pub fn dropped(&mut self, reason: u32, location: u64, labels: impl FnOnce() -> (String, String)) {
        let m = &self.metrics;
        self.drops
            .entry((reason, location))
            .or_insert_with(|| {
                let (r, l) = labels();
                m.drop_counter(&r, &l)
            })
            .inc();
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
mod tests {
    use super::*;

    #[test]
    fn addresses() {
        assert_eq!(parse_addr("9464").unwrap().to_string(), "127.0.0.1:9464");
        assert_eq!(parse_addr(":9464").unwrap().to_string(), "127.0.0.1:9464");
        assert_eq!(parse_addr("0.0.0.0:80").unwrap().to_string(), "0.0.0.0:80");
        assert_eq!(parse_addr("[::1]:9464").unwrap().to_string(), "[::1]:9464");
        assert!(parse_addr("localhost").unwrap_err().contains("--metrics"));
        assert!(parse_addr("70000").is_err());
    }

    #[test]
    fn counters_encode_as_openmetrics() {
        let m = Arc::new(Metrics::default());
        let mut c = Counts::new(m.clone());
        let labels = || ("NO_SOCKET".to_string(), "tcp_v4_rcv+0x99".to_string());
        c.dropped(2, 0xffff_0099, labels);
        // Cached: the labels are not asked for again.
        c.dropped(2, 0xffff_0099, || unreachable!());
        c.hook(0, || "kfree_skb".into());
        c.hook(3, || "tcp_retransmit_skb".into());
        c.reset(1, || "NO_SOCKET".into());
        m.lost("ring_buffer_full", 7);
        let text = m.encode();
        assert!(
            text.contains(r#"nettrace_drops_total{reason="NO_SOCKET",location="tcp_v4_rcv+0x99"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(r#"nettrace_events_total{hook="kfree_skb"} 1"#),
            "{text}"
        );
        assert!(text.contains("nettrace_tcp_retransmits_total 1"), "{text}");
        assert!(
            text.contains(r#"nettrace_tcp_resets_sent_total{reason="NO_SOCKET"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"nettrace_lost_events{cause="ring_buffer_full"} 7"#),
            "{text}"
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    #[test]
    fn time_histograms() {
        let m = Metrics::default();
        let t = RtTask {
            upload_ns: 20_000,
            process_ns: 50_000_000,
            download_ns: None,
            srtt_us: 40,
            retrans: 2,
        };
        m.task(t, 8080, "server");
        m.rt_close(8080, "server", "closed_while_sending");
        m.rtt(3_000);
        let text = m.encode();
        assert!(
            text.contains(r#"nettrace_tcp_rt_seconds_count{phase="process",port="8080",side="server"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"nettrace_tcp_rt_seconds_sum{phase="upload",port="8080",side="server"} 0.00002"#),
            "{text}"
        );
        // Unacknowledged: no download sample at all.
        assert!(!text.contains(r#"phase="download""#), "{text}");
        assert!(text.contains("nettrace_tcp_srtt_seconds_count 2"), "{text}");
        assert!(
            text.contains(r#"nettrace_tcp_rt_retransmits_total{port="8080",side="server"} 2"#),
            "{text}"
        );
        assert!(
            text.contains(
                r#"nettrace_tcp_rt_closes_total{port="8080",side="server",end="closed_while_sending"} 1"#
            ),
            "{text}"
        );
        // 50 ms lands in the bucket bounded by 10 µs * 2^13 = 81.92 ms, not below.
        assert!(
            text.contains(
                r#"nettrace_tcp_rt_seconds_bucket{le="0.04096",phase="process",port="8080",side="server"} 0"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"nettrace_tcp_rt_seconds_bucket{le="0.08192",phase="process",port="8080",side="server"} 1"#
            ),
            "{text}"
        );
    }
}
