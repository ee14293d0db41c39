//! What a mode prints, one type per kind of record. Each knows its text
//! form (the C nettrace's lines) and derives its JSON form (`output::json`);
//! [`Out`](super::Out) picks one of the two once, from `--json`, so that no
//! printer branches on the format.

use std::io::{self, Write};

use serde::Serialize;

/// Text (lines for grep and less) or JSON (NDJSON, one record per line).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    #[default]
    Text,
    Json,
}

impl Format {
    /// `--json` given or not.
    pub fn from_json_flag(json: bool) -> Self {
        if json { Self::Json } else { Self::Text }
    }
}

/// One record: its JSON `"type"`, its fields (serialised in declaration
/// order after `"v"` and `"type"`), and its text lines.
pub trait Record: Serialize {
    /// The `"type"` of the JSON record.
    fn kind(&self) -> &'static str;

    /// The text form: whole lines, each ending in `\n` (none for a record
    /// that only exists in JSON).
    fn text(&self, w: &mut dyn Write) -> io::Result<()>;
}

/// What the session driver writes around a mode's own records.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Marker {
    /// `begin trace...`: tracing is on (scripts wait for it).
    Begin,
    /// `end trace...`
    End,
    /// Events the kernel could not deliver (JSON only: in text the
    /// driver says so on stderr).
    Lost { reason: &'static str, count: u64 },
}

/// Begin and end have no fields; a loss has `reason` and `count`.
impl Serialize for Marker {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut m = s.serialize_map(None)?;
        if let Marker::Lost { reason, count } = self {
            m.serialize_entry("reason", reason)?;
            m.serialize_entry("count", count)?;
        }
        m.end()
    }
}

impl Record for Marker {
    fn kind(&self) -> &'static str {
        match self {
            Marker::Begin => "begin",
            Marker::End => "end",
            Marker::Lost { .. } => "lost",
        }
    }

    fn text(&self, w: &mut dyn Write) -> io::Result<()> {
        match self {
            Marker::Begin => writeln!(w, "begin trace..."),
            Marker::End => writeln!(w, "end trace..."),
            Marker::Lost { .. } => Ok(()),
        }
    }
}

/// A record's text, for tests.
#[cfg(test)]
pub fn text_of(r: &impl Record) -> String {
    let mut v = Vec::new();
    r.text(&mut v).unwrap();
    String::from_utf8(v).unwrap()
}

/// A record's JSON line (with its `\n`), for tests.
#[cfg(test)]
pub fn json_of(r: &impl Record) -> String {
    let mut v = Vec::new();
    super::json::write(&mut v, r).unwrap();
    String::from_utf8(v).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markers() {
        assert_eq!(text_of(&Marker::Begin), "begin trace...\n");
        assert_eq!(text_of(&Marker::End), "end trace...\n");
        assert_eq!(json_of(&Marker::Begin), "{\"v\":1,\"type\":\"begin\"}\n");
        assert_eq!(json_of(&Marker::End), "{\"v\":1,\"type\":\"end\"}\n");
        let lost = Marker::Lost {
            reason: "ring_buffer_full",
            count: 3,
        };
        assert_eq!(text_of(&lost), "");
        assert_eq!(
            json_of(&lost),
            "{\"v\":1,\"type\":\"lost\",\"reason\":\"ring_buffer_full\",\"count\":3}\n"
        );
    }
}
