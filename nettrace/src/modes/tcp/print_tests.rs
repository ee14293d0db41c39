//! Pins the exact text and JSON of `--tcp-monitor`, `--rt`, `--rt-summary`,
//! `--rtt-detail` and `--rtt`: scripts parse them, so a refactoring of the
//! printers must not move a byte.

use std::collections::HashMap;

use nettrace_common::{
    filter::family,
    tcp::{RtCloseEvent, RtEvent, RttEvent, TcpEvent, Tuple, rt_flag, rt_phase, tp},
};

use super::{Names, monitor, rt, rtt};
use crate::{
    kernel::reasons::DropReasons,
    output::{
        Clock, Record, golden,
        histogram::{Distribution, Log2},
        record::{json_of, text_of},
    },
};

/// A record's text and JSON.
fn both(r: &impl Record) -> (String, String) {
    (text_of(r), json_of(r))
}

/// Text, then JSON, in one golden file.
fn check(name: &str, (text, json): (String, String)) {
    golden::check(&format!("tcp/{name}"), &(text + &json));
}

/// `10.0.0.2:8080 -> 10.0.0.1:51000`, a server's end first.
pub(crate) fn tuple() -> Tuple {
    let mut t = Tuple {
        family: family::V4,
        sport: 8080,
        dport: 51000,
        ..Tuple::default()
    };
    t.saddr[..4].copy_from_slice(&[10, 0, 0, 2]);
    t.daddr[..4].copy_from_slice(&[10, 0, 0, 1]);
    t
}

fn monitor_printer() -> monitor::Printer {
    colored::control::set_override(false);
    monitor::Printer {
        clock: Clock::new(false),
        names: Names {
            states: HashMap::from([(1, "ESTABLISHED".to_string()), (7, "CLOSE".to_string())]),
            ca_states: HashMap::from([(4, "Loss".to_string())]),
        },
        resets: DropReasons::from_values([(2, "SK_RST_REASON_NO_SOCKET".to_string())]),
    }
}

fn tcp_event(kind: u8) -> TcpEvent {
    // SAFETY: plain data; zero is valid.
    let mut ev: TcpEvent = unsafe { std::mem::zeroed() };
    ev.ts_ns = 12_345_678_000;
    ev.tuple = tuple();
    ev.kind = kind;
    ev.netns = 4026531840;
    ev
}

/// The text line and the JSON record of a `--tcp-monitor` event.
fn monitor_output(ev: &TcpEvent) -> (String, String) {
    let p = monitor_printer();
    both(&p.record(ev))
}

#[test]
fn monitor_reset_without_socket() {
    let mut ev = tcp_event(tp::SEND_RESET);
    ev.value = 2;
    check("monitor_reset_without_socket_1", monitor_output(&ev));
    // An address family the printer does not know: no addresses.
    ev.tuple = Tuple::default();
    ev.kind = tp::RETRANSMIT_SYNACK;
    check("monitor_reset_without_socket_2", monitor_output(&ev));
}

#[test]
fn monitor_retransmit_with_socket_task_and_congestion() {
    let mut ev = tcp_event(tp::CONG_STATE);
    ev.sk = 0xffff_8881_0000_1000;
    ev.state = 1;
    ev.value = 4;
    ev.srtt_us = 40_123;
    ev.cwnd = 10;
    ev.total_retrans = 3;
    ev.pid = 77;
    ev.comm[..4].copy_from_slice(b"curl");
    check(
        "monitor_retransmit_with_socket_task_and_congestion_1",
        monitor_output(&ev),
    );
}

/// A server task: 12 B request, 50.104 ms process, 2048 B response.
pub(crate) fn rt_event(download_ns: u64) -> RtEvent {
    // SAFETY: plain data; zero is valid.
    let mut ev: RtEvent = unsafe { std::mem::zeroed() };
    ev.ts_ns = 12_345_678_000;
    ev.tuple = tuple();
    ev.upload_ns = 12_000;
    ev.process_ns = 50_104_000;
    ev.download_ns = download_ns;
    ev.req_bytes = 12;
    ev.resp_bytes = 2048;
    ev.srtt_us = 40;
    ev.retrans = 1;
    ev.netns = 4026531840;
    ev.task = 3;
    ev.rtt_min_us = 31;
    ev
}

/// The text line and the JSON record of an `--rt` task.
fn rt_output(ev: &RtEvent) -> (String, String) {
    let clock = Clock::new(false);
    both(&rt::record(&clock, ev))
}

#[test]
fn rt_task_acknowledged_and_not() {
    check("rt_task_acknowledged_and_not_1", rt_output(&rt_event(31_000)));
    check("rt_task_acknowledged_and_not_2", rt_output(&rt_event(u64::MAX)));
}

/// `--rt-proto http`: an HTTP task's method and status, a TLS task.
#[test]
fn rt_http_and_tls_tasks() {
    let mut ev = rt_event(31_000);
    (ev.method, ev.status) = (nettrace_common::tcp::http_method::POST, 201);
    check("rt_http_and_tls_tasks_1", rt_output(&ev));
    let mut ev = rt_event(31_000);
    ev.proto = nettrace_common::tcp::proto_flag::TLS;
    check("rt_http_and_tls_tasks_2", rt_output(&ev));
}

/// A pipelined server task, and a client's task (tcprt's P): request,
/// first response byte after the wait, response received.
#[test]
fn rt_pipelined_and_client_tasks() {
    let clock = Clock::new(false);
    let mut ev = rt_event(31_000);
    ev.flags = rt_flag::PIPELINED;
    check("rt_pipelined_and_client_tasks_1", both(&rt::record(&clock, &ev)));
    let mut ev = rt_event(83_000);
    ev.flags = rt_flag::CLIENT;
    (ev.upload_ns, ev.process_ns) = (4_000, 50_287_000);
    (ev.req_bytes, ev.resp_bytes) = (13, 3000);
    check(
        "rt_pipelined_and_client_tasks_2",
        both(&rt::client::record(&clock, &ev)),
    );
}

fn rt_close(phase: u32, acked: u8) -> (String, String) {
    // SAFETY: plain data; zero is valid.
    let mut ev: RtCloseEvent = unsafe { std::mem::zeroed() };
    ev.ts_ns = 12_445_678_000;
    ev.tuple = tuple();
    ev.tasks = 8;
    ev.sent_bytes = 24_000;
    ev.unacked_bytes = if acked == 0 && phase == rt_phase::RESPONSE {
        3000
    } else {
        0
    };
    ev.received_bytes = 96;
    ev.retrans = 2;
    ev.rtt_min_us = 31;
    ev.srtt_us = 40;
    ev.phase = phase;
    ev.acked = acked;
    ev.netns = 4026531840;
    both(&rt::close::record(&Clock::new(false), &ev))
}

/// tcprt's E, W and N: closed between tasks (or after the last response
/// was acknowledged), while sending, while receiving.
#[test]
fn rt_close_summaries() {
    check("rt_close_1", rt_close(rt_phase::IDLE, 0));
    check("rt_close_2", rt_close(rt_phase::RESPONSE, 1));
    check("rt_close_3", rt_close(rt_phase::RESPONSE, 0));
    check("rt_close_4", rt_close(rt_phase::REQUEST, 0));
}

/// `--rt-summary`'s text and JSON for a second with these tasks.
fn rt_summary_output(tasks: &[RtEvent]) -> (String, String) {
    let clock = Clock::new(false);
    let mut s = rt::Summary::default();
    tasks.iter().for_each(|t| s.add(t));
    both(&s.take(&clock, 99_000_000_000))
}

#[test]
fn rt_summary() {
    check(
        "rt_summary_1",
        rt_summary_output(&[rt_event(31_000), rt_event(u64::MAX)]),
    );
    check("rt_summary_2", rt_summary_output(&[]));
}

fn rtt_event(sampled: bool) -> RttEvent {
    // SAFETY: plain data; zero is valid.
    let mut ev: RttEvent = unsafe { std::mem::zeroed() };
    ev.ts_ns = 12_345_678_000;
    ev.tuple = tuple();
    ev.rtt_us = 152;
    ev.rtt_min_us = 100;
    ev.srtt_us = 160;
    ev.sampled = sampled.into();
    ev.netns = 4026531840;
    ev
}

/// The text line and the JSON record of an `--rtt-detail` sample.
fn rtt_output(source: rtt::Source, ev: &RttEvent) -> (String, String) {
    let clock = Clock::new(false);
    both(&rtt::record(&clock, source, ev))
}

#[test]
fn rtt_samples() {
    check("rtt_samples_1", rtt_output(rtt::Source::Fentry, &rtt_event(true)));
    check(
        "rtt_samples_2",
        rtt_output(rtt::Source::Tracepoint, &rtt_event(false)),
    );
}

/// `--rtt`'s distribution, text and JSON.
fn rtt_summary_output(h: &Log2) -> (String, String) {
    both(&Distribution::rtt(99_000_000_000, h.clone()))
}

#[test]
fn rtt_summary() {
    check(
        "rtt_summary_1",
        rtt_summary_output(&Log2::from_buckets(&[2, 0, 5, 1])),
    );
    check("rtt_summary_2", rtt_summary_output(&Log2::default()));
}
