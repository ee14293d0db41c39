//! Request/response traffic made by the test itself, for `--rt`: the VM
//! tier has no python, and the timings need a server whose delay is known.
//!
//! The server and the client are threads of the test process, each moved
//! into its namespace with `setns`, which changes the network namespace of
//! the calling thread only; their sockets stay in the namespace they were
//! made in.
//!
//! Protocol: the client sends `SIZE request\n`, the server waits its delay
//! and answers SIZE bytes of `x`; a SIZE of 0 asks for no answer.

use std::{
    fs::File,
    io::{BufRead as _, BufReader, Read as _, Write as _},
    net::{SocketAddr, TcpListener, TcpStream},
    os::fd::AsRawFd as _,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

/// Moves the calling thread into the network namespace `ns` (made by
/// `ip netns add`).
pub fn enter_netns(ns: &str) {
    let f = File::open(format!("/run/netns/{ns}")).unwrap_or_else(|e| panic!("netns {ns}: {e}"));
    // SAFETY: a valid namespace fd; only this thread changes namespace.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns {ns}: {}", std::io::Error::last_os_error());
}

/// A request/response server in a namespace, serving connections one
/// after another until dropped.
pub struct Server {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Listens on `addr` inside `ns` (listening when this returns) and
    /// answers each request after `delay`.
    pub fn start(ns: &str, addr: SocketAddr, delay: Duration) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let ns = ns.to_string();
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            enter_netns(&ns);
            let l = TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
            l.set_nonblocking(true).unwrap();
            ready_tx.send(()).unwrap();
            while !s.load(Ordering::Relaxed) {
                match l.accept() {
                    Ok((c, _)) => {
                        c.set_nonblocking(false).unwrap();
                        serve(c, delay);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("server listening");
        Server {
            stop,
            thread: Some(thread),
        }
    }
}

/// Answers the requests of one connection until the client closes it (or
/// resets it: a client that leaves without reading).
fn serve(c: TcpStream, delay: Duration) {
    let mut reader = BufReader::new(c.try_clone().unwrap());
    let mut c = c;
    let mut line = String::new();
    while matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
        let size: usize = line
            .split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        line.clear();
        std::thread::sleep(delay);
        if size > 0 && c.write_all(&vec![b'x'; size]).is_err() {
            return;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// From inside `ns`: connects to `to` (retrying while the server comes
/// up), runs `f` on the connection, and closes it.
pub fn client<T: Send + 'static>(
    ns: &str,
    to: SocketAddr,
    f: impl FnOnce(TcpStream) -> T + Send + 'static,
) -> T {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        enter_netns(&ns);
        let deadline = Instant::now() + Duration::from_secs(10);
        let c = loop {
            match TcpStream::connect_timeout(&to, Duration::from_secs(5)) {
                Ok(c) => break c,
                Err(e) if Instant::now() > deadline => panic!("connect {to}: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(100)),
            }
        };
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        f(c)
    })
    .join()
    .expect("client thread")
}

/// `count` requests for `size` bytes, each answer read in full.
pub fn requests(mut c: TcpStream, count: usize, size: usize) {
    let mut buf = vec![0; 65536];
    for _ in 0..count {
        c.write_all(format!("{size} request\n").as_bytes()).unwrap();
        let mut got = 0;
        while got < size {
            let n = c.read(&mut buf).expect("answer");
            assert!(n > 0, "server closed after {got} of {size} bytes");
            got += n;
        }
    }
}

/// The request line `requests` sends for `size` bytes.
pub fn request_len(size: usize) -> usize {
    format!("{size} request\n").len()
}
