//! A request the kernel processes while completing the handshake, outside
//! `tcp_rcv_established` (where `tcp:tcp_probe` and the function backends
//! see segments): TCP Fast Open's request in the SYN, and a first data
//! segment that arrives before the handshake's last ACK (it completes the
//! handshake itself; seen under the VM's emulation, not forced here). Both
//! are found when the connection becomes established, so the first task is
//! not lost.

use std::{net::SocketAddr, time::Duration};

use super::{assert_backends, field, in_vm, ms_field, port, slack, wait_lines};
use crate::util::{
    Pair, Tracer, start_timeout,
    tasks::{Server, fast_open_client, request_len, requests, syn_data_acked},
};

#[test]
fn request_in_the_syn_is_the_first_task() {
    let (net, p) = (Pair::new(), port(46000));
    let ps = p.to_string();
    let mut t = Tracer::start(&["--rt", "-P", &ps, "--debug"]);
    assert_backends(&t);
    assert!(
        t.stderr()
            .contains("handshake: sock:inet_sock_set_state (tracepoint)"),
        "{}",
        t.stderr()
    );
    let addr = SocketAddr::new(net.b4.parse().unwrap(), p);
    let _server = Server::fast_open(&net.b, addr, Duration::from_millis(50));
    let in_syn = fast_open_client(&net.a, addr, |c| {
        requests(c.try_clone().unwrap(), 3, 2000);
        syn_data_acked(&c)
    });
    // Otherwise this test would show nothing the others do not.
    assert!(in_syn, "the first request did not go in the SYN");
    let tasks = wait_lines(&t, " process:", 3);
    assert_eq!(tasks.len(), 3, "{:#?}\n{}", t.lines(), t.stderr());
    for (i, l) in tasks.iter().enumerate() {
        assert!(l.contains(&format!(" #{} ", i + 1)), "{l}");
        assert!(!l.contains(" unseen "), "{l}");
        assert_eq!(field(l, "req"), format!("{}B", request_len(2000)), "{l}");
        assert_eq!(field(l, "resp"), "2000B", "{l}");
        // The first request is timed from the handshake's end, one round
        // trip after its SYN came: the 50 ms wait, less that trip.
        let process = ms_field(l, "process");
        let low = if in_vm() { 40.0 } else { 49.0 };
        assert!(
            (low..=slack(80.0)).contains(&process),
            "process time not 50 ms: {l}"
        );
    }
    let closed = wait_lines(&t, " closed ", 1);
    assert_eq!(closed.len(), 1, "{:#?}", t.lines());
    let l = &closed[0];
    assert_eq!(field(l, "tasks"), "3", "{l}");
    assert_eq!(field(l, "sent"), "6000B", "{l}");
    assert_eq!(field(l, "received"), format!("{}B", 3 * request_len(2000)), "{l}");
    t.signal(libc::SIGINT);
    assert!(t.wait_exit(start_timeout()).success());
}
