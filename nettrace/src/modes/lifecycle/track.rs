//! Groups lifecycle events into packets.
//!
//! A packet is the set of skb addresses it has had (the original and its
//! clones) and the events seen for them. It ends when its last skb reaches a
//! free hook; packets that never do (their free path is not hooked) are
//! flushed after sitting idle, and all are flushed at exit.

use std::collections::HashMap;

use nettrace_common::{TraceEvent, trace::event_kind};

/// Events kept per packet; a packet looping through a hook forever must not
/// eat memory. Further events are counted, not kept.
pub const MAX_EVENTS_PER_PACKET: usize = 1024;

/// Events kept in all open packets together (~13 MiB). Beyond it the
/// packets idle longest are printed early (as idle ones are), so memory stays
/// bounded however many packets never reach a hooked free: on
/// tracepoint-only kernels, TCP's acknowledged data is freed by
/// `__kfree_skb`, which has no tracepoint.
pub const MAX_EVENTS_KEPT: usize = 65536;

#[derive(Debug)]
pub struct Packet {
    /// Every skb address this packet had, in order seen.
    pub skbs: Vec<u64>,
    pub events: Vec<TraceEvent>,
    /// Events beyond `MAX_EVENTS_PER_PACKET`.
    pub dropped_events: u64,
    /// skbs of this packet not yet freed.
    pub(super) live: usize,
    /// Monotonic ns of the last event, for idle flushing.
    pub last_ts: u64,
}

#[derive(Debug, Default)]
pub struct Tracker {
    next_id: u64,
    by_skb: HashMap<u64, u64>,
    packets: HashMap<u64, Packet>,
    /// Events held in `packets`.
    kept: usize,
}

impl Tracker {
    /// Adds an event; returns the packet if this event ended it.
    pub fn add(&mut self, ev: TraceEvent, frees: bool) -> Option<Packet> {
        let id = match self.by_skb.get(&ev.skb) {
            Some(&id) => id,
            None => {
                let id = self.next_id;
                self.next_id += 1;
                self.by_skb.insert(ev.skb, id);
                self.packets.insert(
                    id,
                    Packet {
                        skbs: vec![ev.skb],
                        events: Vec::new(),
                        dropped_events: 0,
                        live: 1,
                        last_ts: ev.ts_ns,
                    },
                );
                id
            }
        };
        let p = self.packets.get_mut(&id).expect("by_skb points at a live packet");
        p.last_ts = ev.ts_ns;
        if ev.kind == event_kind::CLONE && ev.extra != 0 && !self.by_skb.contains_key(&ev.extra) {
            self.by_skb.insert(ev.extra, id);
            p.skbs.push(ev.extra);
            p.live += 1;
        }
        if p.events.len() < MAX_EVENTS_PER_PACKET {
            p.events.push(ev);
            self.kept += 1;
        } else {
            p.dropped_events += 1;
        }
        if frees {
            self.by_skb.remove(&ev.skb);
            p.live -= 1;
            if p.live == 0 {
                return self.take(id);
            }
        }
        None
    }

    fn take(&mut self, id: u64) -> Option<Packet> {
        let p = self.packets.remove(&id)?;
        self.kept -= p.events.len();
        Some(p)
    }

    /// When more than `MAX_EVENTS_KEPT` events are held, removes the
    /// packets idle longest until a quarter of the room is free again.
    pub fn over_capacity(&mut self) -> Vec<Packet> {
        if self.kept <= MAX_EVENTS_KEPT {
            return Vec::new();
        }
        let mut by_age: Vec<(u64, u64, usize)> = self
            .packets
            .iter()
            .map(|(&id, p)| (p.last_ts, id, p.events.len()))
            .collect();
        by_age.sort_unstable();
        let (mut freed, goal) = (0, self.kept - MAX_EVENTS_KEPT * 3 / 4);
        let cutoff = by_age
            .iter()
            .take_while(|(_, _, n)| {
                let more = freed < goal;
                freed += n;
                more
            })
            .last()
            .map_or(0, |(ts, _, _)| ts + 1);
        self.flush_idle(cutoff)
    }

    /// Removes packets idle since before `cutoff_ns` (all with `u64::MAX`),
    /// oldest first.
    pub fn flush_idle(&mut self, cutoff_ns: u64) -> Vec<Packet> {
        let ids: Vec<u64> = self
            .packets
            .iter()
            .filter(|(_, p)| p.last_ts < cutoff_ns)
            .map(|(&id, _)| id)
            .collect();
        let mut out: Vec<Packet> = ids.into_iter().filter_map(|id| self.take(id)).collect();
        self.by_skb.retain(|_, id| self.packets.contains_key(id));
        out.sort_by_key(|p| p.events.first().map_or(0, |e| e.ts_ns));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(skb: u64, ts: u64) -> TraceEvent {
        // SAFETY: TraceEvent is plain data; all-zero is a valid value.
        let mut e: TraceEvent = unsafe { std::mem::zeroed() };
        e.skb = skb;
        e.ts_ns = ts;
        e
    }

    #[test]
    fn packet_ends_at_free() {
        let mut t = Tracker::default();
        assert!(t.add(ev(0xa, 1), false).is_none());
        assert!(t.add(ev(0xa, 2), false).is_none());
        let p = t.add(ev(0xa, 3), true).expect("freed");
        assert_eq!(p.events.len(), 3);
        assert_eq!(p.skbs, [0xa]);
        // The address is reused by a new packet afterwards.
        assert!(t.add(ev(0xa, 4), false).is_none());
        assert_eq!(t.packets.len(), 1);
    }

    #[test]
    fn clones_join_the_packet_and_both_must_end() {
        let mut t = Tracker::default();
        t.add(ev(0xa, 1), false);
        let mut c = ev(0xa, 2);
        c.kind = event_kind::CLONE;
        c.extra = 0xb;
        t.add(c, false);
        t.add(ev(0xb, 3), false);
        assert!(t.add(ev(0xa, 4), true).is_none(), "clone still alive");
        let p = t.add(ev(0xb, 5), true).expect("both freed");
        assert_eq!(p.skbs, [0xa, 0xb]);
        assert_eq!(p.events.len(), 5);
    }

    #[test]
    fn idle_packets_flush_oldest_first_and_events_are_capped() {
        let mut t = Tracker::default();
        t.add(ev(0x2, 20), false);
        t.add(ev(0x1, 10), false);
        for i in 0..(MAX_EVENTS_PER_PACKET as u64 + 5) {
            t.add(ev(0x3, 100 + i), false);
        }
        let old = t.flush_idle(50);
        assert_eq!(old.iter().map(|p| p.skbs[0]).collect::<Vec<_>>(), [0x1, 0x2]);
        let rest = t.flush_idle(u64::MAX);
        assert_eq!(rest[0].events.len(), MAX_EVENTS_PER_PACKET);
        assert_eq!(rest[0].dropped_events, 5);
        assert!(t.packets.is_empty());
        assert_eq!(t.kept, 0);
    }

    #[test]
    fn memory_is_bounded_by_printing_the_longest_idle_packets_early() {
        let mut t = Tracker::default();
        // Packets that never reach a free, one event each.
        for i in 0..MAX_EVENTS_KEPT as u64 {
            t.add(ev(0x1000 + i, i), false);
        }
        assert!(t.over_capacity().is_empty(), "at the limit, nothing goes");
        t.add(ev(0x1, 1_000_000), false);
        let early = t.over_capacity();
        // The oldest quarter went, oldest first; the newest stayed.
        assert!(early.len() >= MAX_EVENTS_KEPT / 4, "{}", early.len());
        assert_eq!(early[0].skbs, [0x1000]);
        assert!(early.windows(2).all(|w| w[0].last_ts <= w[1].last_ts));
        assert!(t.kept <= MAX_EVENTS_KEPT * 3 / 4);
        assert!(t.by_skb.contains_key(&0x1));
        assert!(!t.by_skb.contains_key(&0x1000));
    }
}
