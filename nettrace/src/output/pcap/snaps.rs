//! Packet bytes waiting for their event. The kernel sends them just before
//! it, but lifecycle tracing may hold an event until its packet ends, so
//! they are kept by (skb, timestamp) and bounded: past [`MAX_BYTES`] the
//! oldest go, and their events fall back on their header copy.

use std::collections::{HashMap, VecDeque};

use crate::events::record::Snap;

/// Bytes kept at most.
const MAX_BYTES: usize = 32 << 20;

/// The bytes of one event's packet.
#[derive(Debug, PartialEq, Eq)]
pub struct Kept {
    /// The packet's length from where `data` starts.
    pub orig_len: u32,
    /// `data` starts with an Ethernet header (`--pcap-l2`).
    pub ethernet: bool,
    pub data: Vec<u8>,
}

#[derive(Default)]
pub struct Snaps {
    by_key: HashMap<(u64, u64), Kept>,
    order: VecDeque<(u64, u64)>,
    bytes: usize,
}

impl Snaps {
    pub fn insert(&mut self, s: &Snap<'_>) {
        let key = (s.skb, s.ts_ns);
        self.bytes += s.data.len();
        let kept = Kept {
            orig_len: s.orig_len,
            ethernet: s.ethernet,
            data: s.data.to_vec(),
        };
        if let Some(old) = self.by_key.insert(key, kept) {
            self.bytes -= old.data.len();
        } else {
            self.order.push_back(key);
        }
        while self.bytes > MAX_BYTES {
            let Some(old) = self.order.pop_front() else { break };
            if let Some(k) = self.by_key.remove(&old) {
                self.bytes -= k.data.len();
            }
        }
        // Keys of taken entries linger in `order`; keep it from growing
        // without bound when nothing is evicted.
        if self.order.len() > 4 * self.by_key.len() + 1024 {
            self.order.retain(|k| self.by_key.contains_key(k));
        }
    }

    /// The bytes for this event, removed.
    pub fn take(&mut self, skb: u64, ts_ns: u64) -> Option<Kept> {
        let v = self.by_key.remove(&(skb, ts_ns))?;
        self.bytes -= v.data.len();
        Some(v)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.by_key.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kept_until_taken_and_bounded() {
        let mut s = Snaps::default();
        let data = vec![0x45; 1500];
        let snap = |skb| Snap {
            skb,
            ts_ns: 7,
            orig_len: 1500,
            ethernet: false,
            data: &data,
        };
        s.insert(&snap(1));
        assert_eq!(s.take(1, 8), None);
        assert_eq!(
            s.take(1, 7).map(|k| (k.orig_len, k.data.len())),
            Some((1500, 1500))
        );
        assert_eq!(s.take(1, 7), None);
        for skb in 0..(MAX_BYTES / 1500 + 10) as u64 {
            s.insert(&snap(skb));
        }
        assert!(s.bytes <= MAX_BYTES);
        assert_eq!(s.take(0, 7), None, "the oldest went first");
        assert!(s.take((MAX_BYTES / 1500 + 9) as u64, 7).is_some());
        assert!(s.order.len() <= s.len() + 1024 + 4 * s.len());
    }
}
