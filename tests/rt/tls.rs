//! `--rt-proto http` against real TLS: Python's `ssl` (OpenSSL) serving
//! HTTPS with a self-signed certificate the test makes, a Python client
//! sending three requests on one keep-alive connection. The handshake is
//! no task; each request is one, marked `tls`. Host only: the VM image
//! has no Python (`http.rs` checks the record framing there).

use std::time::Duration;

use super::{port, wait_lines};
use crate::util::{Background, Pair, Tracer, have_tool, sh};

/// HTTPS on `ADDR:PORT` with `CERT`/`KEY`, HTTP/1.1 keep-alive, one
/// connection, then exit.
const SERVER: &str = r#"
import http.server, ssl, sys
addr, port, cert, key = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_GET(self):
        body = b"x" * 2000
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass
srv = http.server.HTTPServer((addr, port), H)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
open(sys.argv[5], "w").close()
srv.handle_request()
"#;

/// Three GETs on one connection, each answer read in full.
const CLIENT: &str = r#"
import http.client, ssl, sys
ctx = ssl.create_default_context()
ctx.check_hostname = False
ctx.verify_mode = ssl.CERT_NONE
c = http.client.HTTPSConnection(sys.argv[1], int(sys.argv[2]), context=ctx)
for i in range(3):
    c.request("GET", "/item/%d" % i)
    r = c.getresponse()
    assert r.status == 200 and len(r.read()) == 2000
c.close()
"#;

#[test]
fn real_tls_connection_is_a_task_per_request() {
    crate::util::require_root();
    if !have_tool("python3", "python3") || !have_tool("openssl", "openssl") {
        return;
    }
    let dir = std::env::temp_dir().join(format!("nettrace-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let _cleanup = Cleanup(dir.clone());
    let (cert, key, ready) = (dir.join("cert.pem"), dir.join("key.pem"), dir.join("ready"));
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    sh(&[
        "openssl",
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "1",
        "-subj",
        "/CN=nettrace-test",
        "-keyout",
        &s(&key),
        "-out",
        &s(&cert),
    ]);
    let net = Pair::new();
    let p = port(45000);
    let ps = p.to_string();
    let t = Tracer::start(&["--rt", "--rt-proto", "http", "-P", &ps]);
    let clients = Tracer::start(&["--rt", "--rt-proto", "http", "-D", &ps]);
    let server = Background::start(
        &net.b,
        &[
            "python3",
            "-c",
            SERVER,
            &net.b4,
            &ps,
            &s(&cert),
            &s(&key),
            &s(&ready),
        ],
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !ready.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the HTTPS server did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    sh(&[
        "ip", "netns", "exec", &net.a, "python3", "-c", CLIENT, &net.b4, &ps,
    ]);
    server.finish(Duration::from_secs(10));
    let closed = wait_lines(&t, " closed", 1);
    assert_eq!(closed.len(), 1, "{:#?}\n{}", t.lines(), t.stderr());
    let tasks: Vec<String> = t.lines().into_iter().filter(|l| l.contains(" #")).collect();
    assert_eq!(
        tasks.len(),
        3,
        "the handshake became a task, or a request none:\n{tasks:#?}"
    );
    for (i, line) in tasks.iter().enumerate() {
        assert!(line.contains(&format!(" #{} tls ", i + 1)), "{line}");
        assert!(line.contains(&format!("{}:{p} -> {}:", net.b4, net.a4)), "{line}");
    }
    assert!(closed[0].contains("tasks:3 "), "{}", closed[0]);
    // The client's side (Python's `ssl` client, OpenSSL): the same three.
    wait_lines(&clients, " closed", 1);
    let tasks: Vec<String> = clients
        .lines()
        .into_iter()
        .filter(|l| l.contains(" client "))
        .collect();
    assert_eq!(tasks.len(), 3, "{tasks:#?}\n{}", clients.stderr());
    for (i, line) in tasks.iter().enumerate() {
        assert!(line.contains(&format!(" #{} tls client ", i + 1)), "{line}");
    }
    // Shown (README).
    for l in t.lines().iter().chain(&clients.lines()) {
        println!("{l}");
    }
}

/// Removes the certificate's folder, also when the test fails.
struct Cleanup(std::path::PathBuf);

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
