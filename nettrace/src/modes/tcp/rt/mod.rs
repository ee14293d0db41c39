//! `--rt` lines and `--rt-summary` histograms: one line per request/response
//! task of a server socket, timed in the kernel (see `nettrace-ebpf/src/rt.rs`),
//! and one per timed connection when it closes ([`close`]).
//!
//! `[12.345678] TCP: 10.0.0.2:8080 -> 10.0.0.1:51000 #1 upload:0.012ms process:50.104ms download:0.031ms req:12B resp:2048B srtt:0.040ms rtt_min:0.031ms retrans:0 netns:4026531840`
//!
//! With `--rt-proto http`, what the task's first bytes said follows the
//! number: the method and status (` #1 GET 200`), ` tls` for TLS
//! application data (whose method and status are encrypted).

pub mod client;
pub mod close;
pub mod hooks;
pub mod proto;
pub mod stats;
pub mod tcprt;

use std::{
    fmt,
    io::{self, Write},
};

use nettrace_common::tcp::{RtEvent, http_method, proto_flag, rt_flag};
use serde::Serialize;

use super::{
    fields::{TupleFields, Us},
    ms,
};
use crate::output::{Clock, Record, histogram::Log2};

/// Whether a task is a client socket's (`--rt --client`).
pub fn is_client(ev: &RtEvent) -> bool {
    ev.flags & rt_flag::CLIENT != 0
}

/// What `--metrics` takes of a task.
pub fn metrics_task(ev: &RtEvent) -> crate::output::metrics::RtTask {
    crate::output::metrics::RtTask {
        upload_ns: ev.upload_ns,
        process_ns: ev.process_ns,
        download_ns: download_ns(ev),
        srtt_us: ev.srtt_us.into(),
        retrans: ev.retrans,
    }
}

/// The download time, `None` when the response was never fully
/// acknowledged before the task ended.
pub fn download_ns(ev: &RtEvent) -> Option<u64> {
    (ev.download_ns != u64::MAX).then_some(ev.download_ns)
}

pub fn record(clock: &Clock, ev: &RtEvent) -> Rt {
    Rt {
        ts_ns: ev.ts_ns,
        time: clock.format(ev.ts_ns),
        tuple: TupleFields(ev.tuple),
        task: ev.task,
        pipelined: ev.flags & rt_flag::PIPELINED != 0,
        unseen: ev.flags & rt_flag::UNSEEN != 0,
        proto: ProtoFields::of(ev),
        upload_ns: ev.upload_ns,
        process_ns: ev.process_ns,
        download_ns: download_ns(ev),
        req_bytes: ev.req_bytes,
        resp_bytes: ev.resp_bytes,
        srtt_ns: Us(ev.srtt_us),
        rtt_min_ns: Us(ev.rtt_min_us),
        retrans: ev.retrans,
        netns: ev.netns,
    }
}

/// One request/response task (see the module's doc for the text).
#[derive(Serialize)]
pub struct Rt {
    ts_ns: u64,
    time: String,
    #[serde(flatten)]
    tuple: TupleFields,
    /// The task's number on its connection, from 1.
    task: u32,
    /// The next request came before the client had all of this response
    /// (text: ` pipelined` after the number): the times overlap the next
    /// task's.
    pipelined: bool,
    /// The request's arrival was not seen (text: ` unseen`): the kernel
    /// skipped a program; upload and process are unknown (0).
    unseen: bool,
    #[serde(flatten)]
    proto: ProtoFields,
    upload_ns: u64,
    process_ns: u64,
    /// null: not acknowledged before the connection ended.
    download_ns: Option<u64>,
    req_bytes: u64,
    resp_bytes: u64,
    srtt_ns: Us,
    /// 0: no RTT sample yet.
    rtt_min_ns: Us,
    retrans: u32,
    netns: u32,
}

impl Record for Rt {
    fn kind(&self) -> &'static str {
        "rt"
    }

    fn text(&self, w: &mut dyn Write) -> io::Result<()> {
        let download = self
            .download_ns
            .map_or_else(|| "unacked".into(), |ns| ms(ns / 1000));
        writeln!(
            w,
            "[{}] TCP: {} #{}{}{}{} upload:{} process:{} download:{download} req:{}B resp:{}B srtt:{} rtt_min:{} retrans:{} netns:{}",
            self.time,
            self.tuple,
            self.task,
            self.proto,
            if self.pipelined { " pipelined" } else { "" },
            if self.unseen { " unseen" } else { "" },
            ms(self.upload_ns / 1000),
            ms(self.process_ns / 1000),
            self.req_bytes,
            self.resp_bytes,
            self.srtt_ns,
            self.rtt_min_ns,
            self.retrans,
            self.netns,
        )
    }
}

/// What `--rt-proto http` read of a task: after the number in text
/// (` GET 200`, ` tls`), JSON `method`, `status`, `tls`, each only when
/// known (records without `--rt-proto` stay as they were).
#[derive(Serialize)]
pub struct ProtoFields {
    /// The request line's method (not HTTP/1.x, or encrypted: absent).
    #[serde(skip_serializing_if = "Option::is_none")]
    method: Option<&'static str>,
    /// The status line's code.
    #[serde(skip_serializing_if = "Option::is_none")]
    status: Option<u16>,
    /// The task was TLS application data (`true`, else absent).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    tls: bool,
}

impl ProtoFields {
    pub fn of(ev: &RtEvent) -> Self {
        Self {
            method: http_method::NAMES
                .get(usize::from(ev.method))
                .copied()
                .filter(|m| !m.is_empty()),
            status: (ev.status != 0).then_some(ev.status),
            tls: ev.proto & proto_flag::TLS != 0,
        }
    }
}

impl fmt::Display for ProtoFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(m) = self.method {
            write!(f, " {m}")?;
        }
        if let Some(s) = self.status {
            write!(f, " {s}")?;
        }
        if self.tls {
            f.write_str(" tls")?;
        }
        Ok(())
    }
}

/// `--rt-summary`: the three times of the tasks of the last second, in µs.
#[derive(Default)]
pub struct Summary {
    upload: Log2,
    process: Log2,
    download: Log2,
}

impl Summary {
    pub fn add(&mut self, ev: &RtEvent) {
        self.upload.add(ev.upload_ns / 1000);
        self.process.add(ev.process_ns / 1000);
        if let Some(ns) = download_ns(ev) {
            self.download.add(ns / 1000);
        }
    }

    /// The three histograms, then a fresh second.
    pub fn take(&mut self, clock: &Clock, now_ns: u64) -> RtSummary {
        let s = std::mem::take(self);
        RtSummary {
            ts_ns: now_ns,
            time: clock.format(now_ns),
            upload: s.upload,
            process: s.process,
            download: s.download,
        }
    }
}

/// `--rt-summary`'s second: `[12.345678] request/response times of the
/// last second` and the three distributions (µs), or one JSON record.
#[derive(Serialize)]
pub struct RtSummary {
    ts_ns: u64,
    #[serde(skip)]
    time: String,
    upload: Log2,
    process: Log2,
    download: Log2,
}

impl Record for RtSummary {
    fn kind(&self) -> &'static str {
        "rt_summary"
    }

    fn text(&self, w: &mut dyn Write) -> io::Result<()> {
        writeln!(w, "[{}] request/response times of the last second", self.time)?;
        self.upload.text("upload", "us", w)?;
        self.process.text("process", "us", w)?;
        self.download.text("download", "us", w)
    }
}
