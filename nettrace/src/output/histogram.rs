//! Log2 histograms printed the way the C nettrace prints its RTT
//! distribution, for the `…-summary` modes:
//!
//! ```text
//! rtt distribution (ms):            29
//!                      0 -     1ms: 12       0.4137
//!                      2 -     3ms: 0        0.0000
//! ```

use std::io::{self, Write};

use serde::Serialize;

/// A histogram the kernel keeps (a per-CPU array of bucket counts, as in
/// [`Log2::add`]), read by summing the CPUs.
pub struct KernelHistogram {
    map: aya::maps::PerCpuArray<aya::maps::MapData, u64>,
    buckets: u32,
}

impl KernelHistogram {
    /// Takes map `name` out of the object.
    pub fn take(ebpf: &mut aya::Ebpf, name: &str, buckets: u32) -> anyhow::Result<Self> {
        use anyhow::Context as _;
        let map = ebpf
            .take_map(name)
            .with_context(|| format!("map {name} missing"))?;
        Ok(Self {
            map: aya::maps::PerCpuArray::try_from(map)?,
            buckets,
        })
    }

    /// Everything counted so far.
    pub fn read(&self) -> anyhow::Result<Log2> {
        let mut counts = Vec::with_capacity(self.buckets as usize);
        for i in 0..self.buckets {
            counts.push(self.map.get(&i, 0)?.iter().sum());
        }
        Ok(Log2::from_buckets(&counts))
    }
}

/// Bucket 0 holds 0 and 1, bucket `i ≥ 1` holds `2^i ..= 2^(i+1) - 1`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Log2 {
    buckets: [u64; 64],
    total: u64,
}

impl Default for Log2 {
    fn default() -> Self {
        Self {
            buckets: [0; 64],
            total: 0,
        }
    }
}

impl Log2 {
    pub fn add(&mut self, value: u64) {
        let i = if value < 2 {
            0
        } else {
            63 - value.leading_zeros() as usize
        };
        self.buckets[i] += 1;
        self.total += 1;
    }

    /// A histogram from bucket counts (bucket `i` as in [`Log2::add`]),
    /// e.g. ones a kernel map kept.
    pub fn from_buckets(counts: &[u64]) -> Self {
        let mut h = Self::default();
        for (i, &n) in counts.iter().enumerate().take(64) {
            h.buckets[i] = n;
            h.total += n;
        }
        h
    }

    fn bounds(i: usize) -> (u64, u64) {
        if i == 0 {
            (0, 1)
        } else {
            (1u64 << i, (1u64 << (i + 1)) - 1)
        }
    }

    /// [`Log2::render`]'s lines, written.
    pub fn text(&self, title: &str, unit: &str, w: &mut dyn Write) -> io::Result<()> {
        self.render(title, unit)
            .iter()
            .try_for_each(|l| writeln!(w, "{l}"))
    }

    /// `title` names the measure, `unit` the values' unit (`ms`, `us`).
    /// Buckets from 0 to the highest non-empty one, so gaps show as zeros.
    pub fn render(&self, title: &str, unit: &str) -> Vec<String> {
        let mut lines = vec![format!("{:<34}{}", format!("{title} distribution:"), self.total)];
        let Some(top) = self.buckets.iter().rposition(|&n| n > 0) else {
            return lines;
        };
        for (i, &n) in self.buckets[..=top].iter().enumerate() {
            let (lo, hi) = Self::bounds(i);
            let share = n as f64 / self.total as f64;
            lines.push(format!("{lo:>22} - {hi:>5}{unit}: {n:<8} {share:.4}"));
        }
        lines
    }
}

/// In JSON `{"total": N, "buckets": [{"lo": 0, "hi": 1, "count": n}, …]}`,
/// non-empty buckets only.
impl Serialize for Log2 {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Bucket {
            lo: u64,
            hi: u64,
            count: u64,
        }
        #[derive(Serialize)]
        struct Histogram {
            total: u64,
            buckets: Vec<Bucket>,
        }
        let buckets = (self.buckets.iter().enumerate())
            .filter(|(_, n)| **n > 0)
            .map(|(i, &count)| {
                let (lo, hi) = Self::bounds(i);
                Bucket { lo, hi, count }
            })
            .collect();
        Histogram {
            total: self.total,
            buckets,
        }
        .serialize(s)
    }
}

/// A distribution at `ts_ns` as the `…-summary` modes print it: the
/// histogram's lines, or `{"v":1,"type":"<title>_summary","ts_ns":…,
/// "unit":…,"<title>":{histogram}}`.
pub struct Distribution {
    kind: &'static str,
    /// `rtt`, `latency`: the text's title and the JSON key.
    title: &'static str,
    ts_ns: u64,
    unit: &'static str,
    histogram: Log2,
}

impl Distribution {
    /// `--rtt`'s round-trip times, in ms.
    pub fn rtt(ts_ns: u64, histogram: Log2) -> Self {
        Self {
            kind: "rtt_summary",
            title: "rtt",
            ts_ns,
            unit: "ms",
            histogram,
        }
    }

    /// `--latency-summary`'s packet lives, in µs.
    pub fn latency(ts_ns: u64, histogram: Log2) -> Self {
        Self {
            kind: "latency_summary",
            title: "latency",
            ts_ns,
            unit: "us",
            histogram,
        }
    }
}

impl Serialize for Distribution {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut m = s.serialize_map(Some(3))?;
        m.serialize_entry("ts_ns", &self.ts_ns)?;
        m.serialize_entry("unit", self.unit)?;
        m.serialize_entry(self.title, &self.histogram)?;
        m.end()
    }
}

impl super::Record for Distribution {
    fn kind(&self) -> &'static str {
        self.kind
    }

    fn text(&self, w: &mut dyn Write) -> io::Result<()> {
        self.histogram.text(self.title, self.unit, w)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_layout() {
        let mut h = Log2::default();
        for v in [0, 1, 1, 5, 6, 7, 300] {
            h.add(v);
        }
        let lines = h.render("rtt", "ms");
        assert_eq!(lines[0], format!("{:<34}7", "rtt distribution:"));
        assert_eq!(lines[1], "                     0 -     1ms: 3        0.4286");
        assert_eq!(lines[2], "                     2 -     3ms: 0        0.0000");
        assert_eq!(lines[3], "                     4 -     7ms: 3        0.4286");
        // 300 is in 256..=511, the ninth bucket; nothing above it.
        assert_eq!(lines.len(), 1 + 9);
        assert!(lines[9].contains("256 -   511ms: 1 "));
        assert_eq!(Log2::default().render("x", "us").len(), 1);
    }

    /// `--latency-summary`'s record (`--rtt`'s is pinned with the TCP
    /// modes' golden files).
    #[test]
    fn latency_distribution() {
        use crate::output::record::{json_of, text_of};
        let d = Distribution::latency(7, Log2::from_buckets(&[0, 2]));
        assert_eq!(
            json_of(&d),
            "{\"v\":1,\"type\":\"latency_summary\",\"ts_ns\":7,\"unit\":\"us\",\"latency\":{\"total\":2,\"buckets\":[{\"lo\":2,\"hi\":3,\"count\":2}]}}\n"
        );
        assert_eq!(text_of(&d), d.histogram.render("latency", "us").join("\n") + "\n");
    }
}
