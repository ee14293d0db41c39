//! `--rt` lines and `--rt-summary` histograms: one line per request/response
//! task of a server socket, timed in the kernel (see `nettrace-ebpf/src/rt.rs`).
//!
//! `[12.345678] TCP: 10.0.0.2:8080 -> 10.0.0.1:51000 upload:0.012ms process:50.104ms download:0.031ms req:12B resp:2048B srtt:0.040ms retrans:0`

use nettrace_common::tcp::RtEvent;
use serde_json::json;

use super::{ms, tuple_json, tuple_text};
use crate::output::{Clock, histogram::Log2, json};

/// The download time, `None` when the response was never fully
/// acknowledged before the task ended.
pub fn download_ns(ev: &RtEvent) -> Option<u64> {
    (ev.download_ns != u64::MAX).then_some(ev.download_ns)
}

pub fn line(clock: &Clock, ev: &RtEvent) -> String {
    let download = download_ns(ev).map_or_else(|| "unacked".into(), |ns| ms(ns / 1000));
    format!(
        "[{}] TCP: {} upload:{} process:{} download:{download} req:{}B resp:{}B srtt:{} retrans:{} netns:{}",
        clock.format(ev.ts_ns),
        tuple_text(&ev.tuple),
        ms(ev.upload_ns / 1000),
        ms(ev.process_ns / 1000),
        ev.req_bytes,
        ev.resp_bytes,
        ms(ev.srtt_us.into()),
        ev.retrans,
        ev.netns,
    )
}

pub fn json(clock: &Clock, ev: &RtEvent) -> String {
    let mut m = json::legacy::record("rt");
    m.insert("ts_ns".into(), json!(ev.ts_ns));
    m.insert("time".into(), json!(clock.format(ev.ts_ns)));
    tuple_json(&ev.tuple, &mut m);
    m.insert("upload_ns".into(), json!(ev.upload_ns));
    m.insert("process_ns".into(), json!(ev.process_ns));
    // null: not acknowledged before the connection ended.
    m.insert("download_ns".into(), json!(download_ns(ev)));
    m.insert("req_bytes".into(), json!(ev.req_bytes));
    m.insert("resp_bytes".into(), json!(ev.resp_bytes));
    m.insert("srtt_ns".into(), json!(u64::from(ev.srtt_us) * 1000));
    m.insert("retrans".into(), json!(ev.retrans));
    m.insert("netns".into(), json!(ev.netns));
    json::legacy::line(m)
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
    pub fn take(&mut self, clock: &Clock, now_ns: u64) -> Vec<String> {
        let s = std::mem::take(self);
        let mut lines = vec![format!(
            "[{}] request/response times of the last second",
            clock.format(now_ns)
        )];
        lines.extend(s.upload.render("upload", "us"));
        lines.extend(s.process.render("process", "us"));
        lines.extend(s.download.render("download", "us"));
        lines
    }

    /// The histograms as one JSON record.
    pub fn take_json(&mut self, now_ns: u64) -> String {
        let s = std::mem::take(self);
        let mut m = json::legacy::record("rt_summary");
        m.insert("ts_ns".into(), json!(now_ns));
        for (k, h) in [
            ("upload", &s.upload),
            ("process", &s.process),
            ("download", &s.download),
        ] {
            m.insert(k.into(), h.json());
        }
        json::legacy::line(m)
    }
}
