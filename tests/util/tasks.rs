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
        Self::listen(ns, addr, delay, false)
    }

    /// As `start`, accepting TCP Fast Open: a request in the client's SYN
    /// (no cookie needed, see `allow_fast_open`).
    pub fn fast_open(ns: &str, addr: SocketAddr, delay: Duration) -> Self {
        Self::listen(ns, addr, delay, true)
    }

    fn listen(ns: &str, addr: SocketAddr, delay: Duration, fast_open: bool) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let ns = ns.to_string();
        let s = stop.clone();
        let thread = std::thread::spawn(move || {
            enter_netns(&ns);
            let l = TcpListener::bind(addr).unwrap_or_else(|e| panic!("bind {addr}: {e}"));
            if fast_open {
                allow_fast_open();
                // The queue of Fast Open requests not yet accepted.
                setsockopt(l.as_raw_fd(), libc::TCP_FASTOPEN, 16);
            }
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
    in_netns(ns, move || {
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
}

/// Runs `f` on a thread of its own inside `ns`; its result.
fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        enter_netns(&ns);
        f()
    })
    .join()
    .expect("client thread")
}

/// From inside `ns`: as `client`, with TCP Fast Open: the connection's
/// first write goes in the SYN (`TCP_FASTOPEN_CONNECT`). IPv4.
pub fn fast_open_client<T: Send + 'static>(
    ns: &str,
    to: SocketAddr,
    f: impl FnOnce(TcpStream) -> T + Send + 'static,
) -> T {
    in_netns(ns, move || {
        allow_fast_open();
        let SocketAddr::V4(v4) = to else {
            panic!("fast_open_client: IPv4 only, not {to}")
        };
        // SAFETY: plain socket calls on a descriptor this thread owns; the
        // address is a valid `sockaddr_in` of the size passed.
        let c = unsafe {
            let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
            assert!(fd >= 0, "socket: {}", std::io::Error::last_os_error());
            setsockopt(fd, libc::TCP_FASTOPEN_CONNECT, 1);
            let sa = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: v4.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // Returns at once: the SYN leaves with the first write.
            let rc = libc::connect(
                fd,
                (&sa as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            );
            assert_eq!(rc, 0, "connect {to}: {}", std::io::Error::last_os_error());
            <TcpStream as std::os::fd::FromRawFd>::from_raw_fd(fd)
        };
        c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        f(c)
    })
}

/// Whether the SYN's data was acknowledged on a connection made by
/// `fast_open_client` (`TCPI_OPT_SYN_DATA` in `TCP_INFO`).
pub fn syn_data_acked(c: &TcpStream) -> bool {
    // SAFETY: `tcp_info` is plain data; the kernel fills at most `len`.
    let mut info: libc::tcp_info = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    let rc = unsafe {
        libc::getsockopt(
            c.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            (&mut info as *mut libc::tcp_info).cast(),
            &mut len,
        )
    };
    assert_eq!(rc, 0, "TCP_INFO: {}", std::io::Error::last_os_error());
    // include/uapi/linux/tcp.h: TCPI_OPT_SYN_DATA.
    info.tcpi_options & 32 != 0
}

/// Lets this thread's namespace send and accept data in a SYN without a
/// cookie (`net.ipv4.tcp_fastopen`: client 0x1 + server 0x2, no cookie
/// 0x4 + 0x200). `/proc/sys/net` is the calling thread's namespace's.
fn allow_fast_open() {
    std::fs::write("/proc/sys/net/ipv4/tcp_fastopen", "519")
        .unwrap_or_else(|e| panic!("net.ipv4.tcp_fastopen: {e}"));
}

/// An `int` TCP option.
fn setsockopt(fd: i32, opt: i32, value: i32) {
    // SAFETY: an `int` option of the size passed.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            opt,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>() as libc::socklen_t,
        )
    };
    assert_eq!(rc, 0, "setsockopt {opt}: {}", std::io::Error::last_os_error());
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
