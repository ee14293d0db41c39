//! `--metrics ADDR`: Prometheus/OpenMetrics counters of what the session
//! saw, served over HTTP next to whatever the mode prints. The exposition
//! format comes from `prometheus-client` (the Prometheus project's Rust
//! client); the server answers `GET /metrics` and nothing else, one request
//! per connection, so a few lines of tokio suffice.
//!
//! Counters: drops by reason and location (`--drop`, and `kfree_skb` events
//! of lifecycle tracing), events per hook, TCP resets sent by reason,
//! retransmits, and events lost by cause (the kernel's own counts).

use std::{net::SocketAddr, sync::Arc};

use prometheus_client::{
    encoding::text::encode,
    metrics::{counter::Counter, family::Family, gauge::Gauge},
    registry::Registry,
};
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::TcpListener,
};

type Labels = Vec<(&'static str, String)>;

/// The counters, cheap to clone (shared atomics).
#[derive(Clone, Default)]
pub struct Metrics {
    drops: Family<Labels, Counter>,
    events: Family<Labels, Counter>,
    resets: Family<Labels, Counter>,
    retransmits: Counter,
    /// Set from the kernel's cumulative loss counters (hence gauges of a
    /// monotonic value: the kernel, not this process, counts).
    lost: Family<Labels, Gauge>,
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
            "lost_events",
            "Events the kernel could not deliver or track, by cause (cumulative)",
            self.lost.clone(),
        );
        r
    }

    pub fn dropped(&self, reason: &str, location: &str) {
        self.drops
            .get_or_create(&vec![
                ("reason", reason.to_string()),
                ("location", location.to_string()),
            ])
            .inc();
    }

    pub fn event(&self, hook: &str) {
        self.events.get_or_create(&vec![("hook", hook.to_string())]).inc();
        if hook == "tcp_retransmit_skb" {
            self.retransmits.inc();
        }
    }

    pub fn reset(&self, reason: &str) {
        self.resets
            .get_or_create(&vec![("reason", reason.to_string())])
            .inc();
    }

    pub fn lost(&self, cause: &str, total: u64) {
        self.lost
            .get_or_create(&vec![("cause", cause.to_string())])
            .set(total as i64);
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
        let m = Metrics::default();
        m.dropped("NO_SOCKET", "tcp_v4_rcv+0x99");
        m.dropped("NO_SOCKET", "tcp_v4_rcv+0x99");
        m.event("kfree_skb");
        m.event("tcp_retransmit_skb");
        m.reset("NO_SOCKET");
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
}
