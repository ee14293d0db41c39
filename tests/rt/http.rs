//! `--rt-proto http`: an HTTP/1.1 keep-alive connection's requests are
//! tasks with their method and status; a TLS connection's handshake is
//! no task, each application-data exchange is one.
//!
//! The TLS test sends TLS-shaped records over plain TCP (record headers
//! with the real content types and versions, bodies of filler): what
//! nettrace reads is the record framing, never the crypto, and a TLS
//! library would add a dependency and a certificate for nothing more.

use std::{
    io::{IoSlice, IoSliceMut, Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    os::fd::AsRawFd as _,
    time::Duration,
};

use super::{field, forced_kprobe, ms_field, port, slack, wait_lines, wait_records};
use crate::util::{
    BIN, Pair, Tracer, start_timeout,
    tasks::{client, enter_netns},
};

/// The server's think time before each answer.
const DELAY: Duration = Duration::from_millis(20);

/// One request and its answer.
type Exchange = (Vec<u8>, Vec<u8>);

/// The calls the test's HTTP server and client make.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Io {
    /// `read` and `write`.
    Plain,
    /// As nginx and others: the server reads with `recvmsg` and writes
    /// each answer's head and body as two buffers of one `writev`; the
    /// client sends with `sendmsg` and reads with `readv`.
    Vectored,
}

/// `sendmsg` of all of `buf`, one buffer per call.
fn send_msg(c: &TcpStream, mut buf: &[u8]) {
    while !buf.is_empty() {
        let mut iov = libc::iovec {
            iov_base: buf.as_ptr() as *mut libc::c_void,
            iov_len: buf.len(),
        };
        // SAFETY: a zeroed msghdr is valid; it points at one live iovec.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        (msg.msg_iov, msg.msg_iovlen) = (&mut iov, 1);
        let n = unsafe { libc::sendmsg(c.as_raw_fd(), &msg, 0) };
        assert!(n > 0, "sendmsg: {}", std::io::Error::last_os_error());
        buf = &buf[n as usize..];
    }
}

/// `recvmsg` until `buf` is full.
fn recv_msg(c: &TcpStream, buf: &mut [u8]) {
    let mut at = 0;
    while at < buf.len() {
        let mut iov = libc::iovec {
            iov_base: buf[at..].as_mut_ptr().cast(),
            iov_len: buf.len() - at,
        };
        // SAFETY: as in `send_msg`.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        (msg.msg_iov, msg.msg_iovlen) = (&mut iov, 1);
        let n = unsafe { libc::recvmsg(c.as_raw_fd(), &mut msg, 0) };
        assert!(n > 0, "recvmsg: {}", std::io::Error::last_os_error());
        at += n as usize;
    }
}

/// Serves one connection in `ns` on `addr`: reads each exchange's request
/// (exactly its bytes; `by_record`: TLS record by record, each header and
/// then its body, as OpenSSL reads), waits `DELAY`, writes its answer.
/// Listening when this returns; the thread ends with the connection.
fn scripted_server(
    ns: &str,
    addr: SocketAddr,
    script: Vec<Exchange>,
    by_record: bool,
    io: Io,
) -> std::thread::JoinHandle<()> {
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let ns = ns.to_string();
    let t = std::thread::spawn(move || {
        enter_netns(&ns);
        let l = TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
        ready_tx.send(()).unwrap();
        let (mut c, _) = l.accept().expect("accept");
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        for (req, answer) in script {
            let mut got = vec![0; req.len()];
            let mut at = 0;
            while at < req.len() {
                let (body, n) = if by_record {
                    c.read_exact(&mut got[at..at + 5]).expect("record header");
                    (
                        at + 5,
                        5 + (usize::from(got[at + 3]) << 8 | usize::from(got[at + 4])),
                    )
                } else {
                    (at, req.len())
                };
                match io {
                    Io::Plain => c.read_exact(&mut got[body..at + n]).expect("request"),
                    Io::Vectored => recv_msg(&c, &mut got[body..at + n]),
                }
                at += n;
            }
            assert_eq!(got, req);
            std::thread::sleep(DELAY);
            match io {
                Io::Plain => c.write_all(&answer).expect("answer"),
                Io::Vectored => {
                    let head = answer
                        .windows(4)
                        .position(|w| w == b"\r\n\r\n")
                        .map_or(answer.len(), |i| i + 4);
                    let (head, body) = answer.split_at(head);
                    let n = c
                        .write_vectored(&[IoSlice::new(head), IoSlice::new(body)])
                        .expect("writev");
                    assert_eq!(n, answer.len(), "a short writev");
                }
            }
        }
        // Until the client closes.
        let _ = c.read(&mut [0; 1]);
    });
    ready_rx
        .recv_timeout(Duration::from_secs(10))
        .expect("server listening");
    t
}

/// The client side of `script` from `ns`: each request, then its answer
/// read in full.
fn scripted_client(ns: &str, addr: SocketAddr, script: Vec<Exchange>, io: Io) {
    client(ns, addr, move |mut c| {
        for (req, answer) in script {
            let mut got = vec![0; answer.len()];
            match io {
                Io::Plain => {
                    c.write_all(&req).unwrap();
                    c.read_exact(&mut got).expect("answer");
                }
                Io::Vectored => {
                    send_msg(&c, &req);
                    // The status line in the first buffer, as a client's
                    // header buffer would hold it.
                    let mut at = 0;
                    while at < got.len() {
                        let first = 32.min(got.len() - at);
                        let (a, b) = got[at..].split_at_mut(first);
                        let n = c
                            .read_vectored(&mut [IoSliceMut::new(a), IoSliceMut::new(b)])
                            .expect("readv");
                        assert!(n > 0, "server closed");
                        at += n;
                    }
                }
            }
            assert_eq!(got, answer);
        }
    });
}

fn http(method: &str, path: &str, body: &str) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn response(status: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// A TLS record: content type, version 3.3, length, `len` filler bytes.
fn record(content_type: u8, len: usize) -> Vec<u8> {
    let mut r = vec![content_type, 3, 3, (len >> 8) as u8, len as u8];
    r.extend(std::iter::repeat_n(0xab, len));
    r
}

fn check_process(l: &str) {
    // The server waits 20 ms before each answer; a request the kernel did
    // not let a kprobe see has no times (`unseen`).
    let unseen = l.contains(" unseen ");
    assert!(!unseen || forced_kprobe(), "{l}");
    let process = ms_field(l, "process");
    assert!(unseen || (19.5..=slack(60.0)).contains(&process), "{l}");
}

#[test]
fn http_keep_alive_requests_are_tasks_with_method_and_status() {
    http_tasks(port(42000), Io::Plain);
}

/// The same through `recvmsg`/`writev` (server) and `sendmsg`/`readv`
/// (client).
#[test]
fn vectored_and_message_calls_are_read_too() {
    http_tasks(port(47000), Io::Vectored);
}

/// Three requests on one keep-alive connection made with `io`: three
/// tasks with their method and status, in text and JSON, both sides.
fn http_tasks(p: u16, io: Io) {
    let net = Pair::new();
    let ps = p.to_string();
    let mut text = Tracer::start(&["--rt", "--rt-proto", "http", "-P", &ps]);
    let mut json = Tracer::start(&["--rt", "--rt-proto", "http", "-S", &ps, "--json"]);
    let mut clients = Tracer::start(&["--rt", "--client", "--rt-proto", "http", "-D", &ps, "--json"]);
    let script = vec![
        (http("GET", "/a", ""), response("200 OK", "hello")),
        (http("POST", "/b", "data"), response("201 Created", "")),
        (http("GET", "/missing", ""), response("404 Not Found", "no")),
    ];
    let addr = SocketAddr::new(net.b4.parse().unwrap(), p);
    let server = scripted_server(&net.b, addr, script.clone(), false, io);
    scripted_client(&net.a, addr, script, io);
    server.join().expect("server");
    let tasks = wait_lines(&text, " process:", 3);
    assert_eq!(tasks.len(), 3, "{:#?}\n{}", text.lines(), text.stderr());
    for (l, what) in tasks.iter().zip(["#1 GET 200 ", "#2 POST 201 ", "#3 GET 404 "]) {
        assert!(l.contains(what), "{what}: {l}");
        assert!(!l.contains(" tls"), "{l}");
        check_process(l);
    }
    assert_eq!(
        field(&tasks[1], "req"),
        format!("{}B", http("POST", "/b", "data").len())
    );
    let closed = wait_lines(&text, " closed ", 1);
    assert_eq!(closed.len(), 1, "{:#?}", text.lines());
    assert_eq!(field(&closed[0], "tasks"), "3", "{}", closed[0]);
    let records = wait_records(&json, "rt", 3);
    assert_eq!(records.len(), 3, "{records:#?}");
    for (r, (m, s)) in records.iter().zip([("GET", 200), ("POST", 201), ("GET", 404)]) {
        assert_eq!(r["method"], m, "{r}");
        assert_eq!(r["status"], s, "{r}");
        // Only TLS tasks say so.
        assert!(r.get("tls").is_none(), "{r}");
    }
    // The client's side: its request lines and the answers' status lines.
    let records = wait_records(&clients, "rt_client", 3);
    assert_eq!(records.len(), 3, "{records:#?}\n{}", clients.stderr());
    for (r, (m, s)) in records.iter().zip([("GET", 200), ("POST", 201), ("GET", 404)]) {
        assert_eq!(r["method"], m, "{r}");
        assert_eq!(r["status"], s, "{r}");
    }
    for t in [&mut text, &mut json, &mut clients] {
        t.signal(libc::SIGINT);
        assert!(t.wait_exit(start_timeout()).success());
    }
}

#[test]
fn tls_handshake_is_no_task_and_each_application_exchange_is_one() {
    // TLS 1.2's shape: ClientHello; ServerHello..ServerHelloDone;
    // ClientKeyExchange, ChangeCipherSpec, Finished; ChangeCipherSpec,
    // Finished; then three request/response pairs of application data;
    // close_notify alerts both ways.
    let mut client_finish = record(0x16, 70);
    client_finish.extend(record(0x14, 1));
    client_finish.extend(record(0x16, 40));
    let mut server_finish = record(0x14, 1);
    server_finish.extend(record(0x16, 40));
    tls_tasks(
        port(43000),
        vec![
            (record(0x16, 200), record(0x16, 1500)),
            (client_finish, server_finish),
            (record(0x17, 100), record(0x17, 3000)),
            (record(0x17, 120), record(0x17, 500)),
            (record(0x17, 80), record(0x17, 9000)),
            (record(0x15, 2), record(0x15, 2)),
        ],
        6,
        false,
    );
}

/// TLS 1.3 as OpenSSL sends and reads it: the client's change cipher
/// spec, its Finished (encrypted: an application-data record) and its
/// first request in one write, read by the server header by body; the
/// first task is the request's, its bytes only.
#[test]
fn tls13_finished_with_the_first_request_is_one_task() {
    let mut server_hello = record(0x16, 90);
    server_hello.extend(record(0x14, 1));
    server_hello.extend(record(0x17, 1400));
    let mut finish_and_request = record(0x14, 1);
    finish_and_request.extend(record(0x17, 53));
    finish_and_request.extend(record(0x17, 100));
    tls_tasks(
        port(44000),
        vec![
            (record(0x16, 512), server_hello),
            (finish_and_request, record(0x17, 3000)),
            (record(0x17, 120), record(0x17, 500)),
            (record(0x17, 80), record(0x17, 9000)),
            (record(0x15, 2), record(0x15, 2)),
        ],
        5,
        true,
    );
}

/// Runs `script` (TLS-shaped records) and checks three `tls` tasks of
/// 105, 125 and 85 B requests answered with 3005, 505 and 9005 B, and
/// that without `--rt-proto` there are `plain_tasks`; `by_record`: the
/// server reads each record's header, then its body.
fn tls_tasks(p: u16, script: Vec<Exchange>, plain_tasks: u32, by_record: bool) {
    let net = Pair::new();
    let ps = p.to_string();
    let mut text = Tracer::start(&["--rt", "--rt-proto", "http", "-P", &ps]);
    let mut plain = Tracer::start(&["--rt", "-P", &ps]);
    let mut clients = Tracer::start(&["--rt", "--rt-proto", "http", "-D", &ps]);
    let addr = SocketAddr::new(net.b4.parse().unwrap(), p);
    let server = scripted_server(&net.b, addr, script.clone(), by_record, Io::Plain);
    scripted_client(&net.a, addr, script, Io::Plain);
    server.join().expect("server");
    let closed = wait_lines(&text, " closed ", 1);
    assert_eq!(closed.len(), 1, "{:#?}\n{}", text.lines(), text.stderr());
    let tasks = wait_lines(&text, " process:", 3);
    assert_eq!(tasks.len(), 3, "{tasks:#?}");
    for (i, (l, (req, resp))) in tasks
        .iter()
        .zip([(105, 3005), (125, 505), (85, 9005)])
        .enumerate()
    {
        assert!(l.contains(&format!(" #{} tls ", i + 1)), "{l}");
        assert_eq!(field(l, "req"), format!("{req}B"), "{l}");
        assert_eq!(field(l, "resp"), format!("{resp}B"), "{l}");
        check_process(l);
    }
    assert_eq!(field(&closed[0], "tasks"), "3", "{}", closed[0]);
    // The client's side: its handshake writes start no task, the control
    // records written with a request are not its bytes, its close_notify
    // ends the last task (the server's is no response).
    wait_lines(&clients, " closed ", 1);
    let tasks = wait_lines(&clients, " client ", 3);
    assert_eq!(tasks.len(), 3, "{:#?}\n{}", clients.lines(), clients.stderr());
    for (i, (l, (req, resp))) in tasks
        .iter()
        .zip([(105, 3005), (125, 505), (85, 9005)])
        .enumerate()
    {
        assert!(l.contains(&format!(" #{} tls client ", i + 1)), "{l}");
        assert_eq!(
            (field(l, "req"), field(l, "resp")),
            (&*format!("{req}B"), &*format!("{resp}B")),
            "{l}"
        );
    }
    // Without --rt-proto the handshake flights and the alerts are tasks
    // too: one per exchange.
    let plain_closed = wait_lines(&plain, " closed ", 1);
    assert_eq!(plain_closed.len(), 1, "{:#?}", plain.lines());
    assert_eq!(
        field(&plain_closed[0], "tasks"),
        plain_tasks.to_string(),
        "{}",
        plain_closed[0]
    );
    for t in [&mut text, &mut plain, &mut clients] {
        t.signal(libc::SIGINT);
        assert!(t.wait_exit(start_timeout()).success());
    }
}

#[test]
fn rt_proto_needs_rt() {
    let out = std::process::Command::new(BIN)
        .args(["--rt-proto", "http", "-P", "80"])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("--rt-proto needs --rt"), "{err}");
}
