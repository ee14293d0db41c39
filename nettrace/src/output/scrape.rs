//! The `--metrics` HTTP endpoint: `GET /metrics` for Prometheus, and the
//! two probes a Kubernetes DaemonSet (`deploy/`) asks: `/healthz` (the
//! process serves: liveness) and `/readyz` (its programs are attached and
//! tracing: readiness, 503 until then). One request per connection and no
//! keep-alive, so a few lines of tokio suffice instead of an HTTP stack.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
};

use super::metrics::Metrics;

/// The most of a request read: the request line and headers of a scrape
/// (Prometheus sends a few hundred bytes) and of a kubelet probe.
const MAX_REQUEST: usize = 8192;

/// A client that sends no complete request in this time is dropped.
const READ_TIMEOUT: Duration = Duration::from_secs(10);

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
const TEXT: &str = "text/plain; charset=utf-8";

/// Binds `addr` (errors are the caller's: a usage problem) and serves in
/// the background for the rest of the session; returns the bound address.
pub async fn serve(metrics: Arc<Metrics>, addr: SocketAddr) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((conn, _)) = listener.accept().await {
            tokio::spawn(answer(metrics.clone(), conn));
        }
    });
    Ok(bound)
}

async fn answer(metrics: Arc<Metrics>, mut conn: TcpStream) {
    let mut req = Vec::with_capacity(1024);
    let mut buf = [0u8; 1024];
    // Read the whole head: closing with unread bytes would make the kernel
    // reset the connection, and the client could lose the response.
    let read = tokio::time::timeout(READ_TIMEOUT, async {
        while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < MAX_REQUEST {
            match conn.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => req.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    if read.is_err() {
        return;
    }
    let (status, content_type, body) = respond(&metrics, &String::from_utf8_lossy(&req));
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = conn.write_all(response.as_bytes()).await;
    let _ = conn.shutdown().await;
}

/// Status line, content type and body for a request whose head is `head`.
fn respond(metrics: &Metrics, head: &str) -> (&'static str, &'static str, String) {
    let line = head.lines().next().unwrap_or("");
    let mut words = line.split(' ');
    let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
    if method != "GET" {
        return ("405 Method Not Allowed", TEXT, "only GET\n".into());
    }
    let path = target.split('?').next().unwrap_or("");
    match path {
        "/metrics" => ("200 OK", OPENMETRICS, metrics.encode()),
        "/healthz" => ("200 OK", TEXT, "ok\n".into()),
        "/readyz" if metrics.is_ready() => ("200 OK", TEXT, "tracing\n".into()),
        "/readyz" => ("503 Service Unavailable", TEXT, "attaching\n".into()),
        _ => (
            "404 Not Found",
            TEXT,
            "try GET /metrics, /healthz or /readyz\n".into(),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(m: &Metrics, target: &str) -> (&'static str, String) {
        let (status, _, body) = respond(m, &format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n"));
        (status, body)
    }

    #[test]
    fn routes() {
        let m = Metrics::default();
        let (status, body) = get(&m, "/metrics");
        assert_eq!(status, "200 OK");
        assert!(body.ends_with("# EOF\n"), "{body}");
        assert_eq!(get(&m, "/metrics?x=1").0, "200 OK");
        assert_eq!(get(&m, "/healthz"), ("200 OK", "ok\n".into()));
        assert_eq!(get(&m, "/readyz").0, "503 Service Unavailable");
        m.set_ready();
        assert_eq!(get(&m, "/readyz"), ("200 OK", "tracing\n".into()));
        assert_eq!(get(&m, "/").0, "404 Not Found");
        assert_eq!(get(&m, "/metricsx").0, "404 Not Found");
        let (status, ..) = respond(&m, "POST /metrics HTTP/1.1\r\n\r\n");
        assert_eq!(status, "405 Method Not Allowed");
        assert_eq!(respond(&m, "").0, "405 Method Not Allowed");
    }

    #[tokio::test]
    async fn serves_over_tcp_and_reads_the_whole_request() {
        let m = Arc::new(Metrics::default());
        let addr = serve(m, "127.0.0.1:0".parse().unwrap()).await.unwrap();
        let mut c = TcpStream::connect(addr).await.unwrap();
        // The head in two writes, with more headers than one read takes.
        c.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
        let filler = format!("X-Filler: {}\r\n\r\n", "y".repeat(3000));
        c.write_all(filler.as_bytes()).await.unwrap();
        let mut out = String::new();
        c.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
        assert!(out.ends_with("\r\n\r\nok\n"), "{out}");
    }
}
