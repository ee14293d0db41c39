//! `--rt --client` lines: one per task of a client socket of this host, what
//! tcprt logs as its P record: request bytes, the time to the first
//! response byte, the response's receive time, the total, response bytes,
//! min RTT, retransmits, the task's number.
//!
//! `[12.345678] TCP: 10.0.0.1:51000 -> 10.0.0.2:8080 #1 client request:0.004ms first_byte:50.291ms receive:0.083ms total:50.378ms req:13B resp:3000B srtt:0.040ms rtt_min:0.031ms retrans:0 netns:4026531840`
//!
//! With `--rt-proto http`, ` GET 200` or ` tls` follows the number, as on
//! server lines.
//!
//! Times start when `sendmsg` returns with the request's first bytes; the
//! response's bytes are timed as the segments arrive (before the
//! application reads them).

use std::io::{self, Write};

use nettrace_common::tcp::RtEvent;
use serde::Serialize;

use super::{
    super::{
        fields::{TupleFields, Us},
        ms,
    },
    ProtoFields, download_ns,
};
use crate::output::{Clock, Record};

pub fn record(clock: &Clock, ev: &RtEvent) -> ClientTask {
    let first_byte_ns = ev.upload_ns + ev.process_ns;
    let receive_ns = download_ns(ev).unwrap_or(0);
    ClientTask {
        ts_ns: ev.ts_ns,
        time: clock.format(ev.ts_ns),
        tuple: TupleFields(ev.tuple),
        task: ev.task,
        proto: ProtoFields::of(ev),
        request_ns: ev.upload_ns,
        first_byte_ns,
        receive_ns,
        total_ns: first_byte_ns + receive_ns,
        req_bytes: ev.req_bytes,
        resp_bytes: ev.resp_bytes,
        srtt_ns: Us(ev.srtt_us),
        rtt_min_ns: Us(ev.rtt_min_us),
        retrans: ev.retrans,
        netns: ev.netns,
    }
}

/// One task of a client socket (see the module's doc for the text).
#[derive(Serialize)]
pub struct ClientTask {
    ts_ns: u64,
    time: String,
    /// This host's (the client's) end first.
    #[serde(flatten)]
    tuple: TupleFields,
    /// The task's number on its connection, from 1.
    task: u32,
    /// `--rt-proto http`: method, status, TLS (see `ProtoFields`).
    #[serde(flatten)]
    proto: ProtoFields,
    /// First → last request byte handed to the kernel.
    request_ns: u64,
    /// Request start → first response byte received.
    first_byte_ns: u64,
    /// First → last response byte received.
    receive_ns: u64,
    /// Request start → last response byte received.
    total_ns: u64,
    req_bytes: u64,
    resp_bytes: u64,
    srtt_ns: Us,
    rtt_min_ns: Us,
    retrans: u32,
    netns: u32,
}

impl Record for ClientTask {
    fn kind(&self) -> &'static str {
        "rt_client"
    }

    fn text(&self, w: &mut dyn Write) -> io::Result<()> {
        writeln!(
            w,
            "[{}] TCP: {} #{}{} client request:{} first_byte:{} receive:{} total:{} req:{}B resp:{}B srtt:{} rtt_min:{} retrans:{} netns:{}",
            self.time,
            self.tuple,
            self.task,
            self.proto,
            ms(self.request_ns / 1000),
            ms(self.first_byte_ns / 1000),
            ms(self.receive_ns / 1000),
            ms(self.total_ns / 1000),
            self.req_bytes,
            self.resp_bytes,
            self.srtt_ns,
            self.rtt_min_ns,
            self.retrans,
            self.netns,
        )
    }
}
