//! Fields the TCP modes' records share, each with its text and JSON form:
//! the connection's ends, times the kernel keeps in µs, the task.

use std::fmt;

use nettrace_common::tcp::Tuple;
use serde::{Serialize, Serializer, ser::SerializeMap as _};

use super::{ends, ms, tuple_text};

/// The connection's ends. Text `10.0.0.1:80 -> 10.0.0.2:5000` (`?` for an
/// unknown family); JSON `l3`, `saddr`, `sport`, `daddr`, `dport` (none
/// for an unknown family), to `#[serde(flatten)]` into a record.
pub struct TupleFields(pub Tuple);

impl fmt::Display for TupleFields {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&tuple_text(&self.0))
    }
}

impl Serialize for TupleFields {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        if let Some((src, dst)) = ends(&self.0) {
            m.serialize_entry("l3", if src.is_ipv4() { "ipv4" } else { "ipv6" })?;
            m.serialize_entry("saddr", &src.ip().to_string())?;
            m.serialize_entry("sport", &src.port())?;
            m.serialize_entry("daddr", &dst.ip().to_string())?;
            m.serialize_entry("dport", &dst.port())?;
        }
        m.end()
    }
}

/// A time the kernel keeps in µs: `0.123ms` in text, ns in JSON.
#[derive(Clone, Copy)]
pub struct Us(pub u32);

impl fmt::Display for Us {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&ms(self.0.into()))
    }
}

impl Serialize for Us {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::from(self.0) * 1000)
    }
}

/// The task that was running: text ` task:PID/COMM`, JSON `pid`, `comm`.
#[derive(Serialize)]
pub struct Task {
    pub pid: u32,
    pub comm: String,
}

impl Task {
    /// `None` for pid 0 (no task: softirq).
    pub fn of(pid: u32, comm: &[u8]) -> Option<Self> {
        (pid != 0).then(|| Self {
            pid,
            comm: crate::output::cstr(comm),
        })
    }
}

impl fmt::Display for Task {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, " task:{}/{}", self.pid, self.comm)
    }
}
