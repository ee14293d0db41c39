//! Netfilter insight for `--diag`: notes saying which hook point, table and
//! chain a packet was in (from `nf_hook_slow`, `ipt_do_table`,
//! `nft_do_chain` where functions can be hooked), and `--hooks`: when
//! netfilter drops a packet, which hook point it was at and which hook
//! functions are registered there in the packet's namespace.
//!
//! Works with tracepoints only: at the `kfree_skb` tracepoint the eBPF side
//! reads every hook point's function list from the packet's `struct net`
//! (an `NfHooksEvent`, sent just before the drop) and records the kernel
//! stack. The hook point is the innermost caller of `nf_hook_slow` that is
//! an `NF_HOOK` site (`ip_local_deliver` → LOCAL_IN, …); its index into the
//! lists comes from BTF (`enum nf_inet_hooks`).

use std::collections::HashMap;

use nettrace_common::{
    nfproto,
    trace::{NF_HOOKS_KEPT, NfContextEvent, NfHooksEvent, slot_flags},
};

use crate::{
    kernel::btf::{BtfError, KernelBtf},
    output::{
        cstr,
        stack::{Frame, Symbolizer},
    },
};

/// Functions that run `NF_HOOK` themselves, and the hook point they pass
/// (the kernel's own call sites in net/ipv4 and net/ipv6).
const HOOK_SITES: &[(&str, &str)] = &[
    ("ip_rcv", "PRE_ROUTING"),
    ("ip_list_rcv", "PRE_ROUTING"),
    ("ip_sublist_rcv", "PRE_ROUTING"),
    ("ipv6_rcv", "PRE_ROUTING"),
    ("ipv6_list_rcv", "PRE_ROUTING"),
    ("ip_local_deliver", "LOCAL_IN"),
    ("ip6_input", "LOCAL_IN"),
    ("ip_forward", "FORWARD"),
    ("ip6_forward", "FORWARD"),
    ("__ip_local_out", "LOCAL_OUT"),
    ("__ip6_local_out", "LOCAL_OUT"),
    ("ip6_xmit", "LOCAL_OUT"),
    ("ip_output", "POST_ROUTING"),
    ("ip_mc_output", "POST_ROUTING"),
    ("ip6_output", "POST_ROUTING"),
];

/// Hook point names (`PRE_ROUTING`, …) by `enum nf_inet_hooks` value.
pub fn hook_points(btf: &KernelBtf) -> Result<HashMap<String, usize>, BtfError> {
    Ok(btf
        .enum_values("nf_inet_hooks")?
        .into_iter()
        .filter_map(|(v, n)| Some((n.strip_prefix("NF_INET_")?.to_string(), v as usize)))
        .collect())
}

fn family(pf: u8) -> String {
    match pf {
        nfproto::IPV4 => "ipv4".into(),
        nfproto::IPV6 => "ipv6".into(),
        nfproto::INET => "inet".into(),
        nfproto::ARP => "arp".into(),
        nfproto::BRIDGE => "bridge".into(),
        other => format!("pf{other}"),
    }
}

/// The chain iptables calls a hook point by (`INPUT` for LOCAL_IN).
fn iptables_chain(point: &str) -> &str {
    match point {
        "PRE_ROUTING" => "PREROUTING",
        "LOCAL_IN" => "INPUT",
        "LOCAL_OUT" => "OUTPUT",
        "POST_ROUTING" => "POSTROUTING",
        other => other,
    }
}

/// Context notes: the `NfContextEvent` sent before a hook's event becomes a
/// note on that event's line.
#[derive(Default)]
pub struct NfNotes {
    /// `PRE_ROUTING` → index.
    points: HashMap<String, usize>,
    /// Context waiting for its hook's event, by skb.
    pending: HashMap<u64, NfContextEvent>,
    /// Finished notes by (skb, event time), until the packet is printed.
    notes: HashMap<(u64, u64), String>,
}

impl NfNotes {
    pub fn new(points: HashMap<String, usize>) -> Self {
        Self {
            points,
            ..Self::default()
        }
    }

    pub fn remember(&mut self, ctx: NfContextEvent) {
        bounded_insert(&mut self.pending, ctx.skb, ctx);
    }

    fn point(&self, hook: u8) -> String {
        self.points
            .iter()
            .find(|(_, i)| **i == hook as usize)
            .map_or_else(|| format!("hook {hook}"), |(n, _)| n.clone())
    }

    /// The note for a context, as the hook's `flags` say to read it.
    pub fn note(&self, ctx: &NfContextEvent, flags: u32) -> Option<String> {
        let point = (ctx.hook != 0xff).then(|| self.point(ctx.hook));
        let table = cstr(&ctx.table);
        if flags & slot_flags::NF_STATE != 0 {
            return Some(format!("{} in chain: {}", family(ctx.pf), point?));
        }
        if flags & slot_flags::NF_XT_TABLE != 0 {
            let chain = point.as_deref().map_or("?", iptables_chain);
            return Some(format!("iptables table:{table}, chain:{chain}"));
        }
        (flags & slot_flags::NF_NFT_CHAIN != 0)
            .then(|| format!("nftables table:{table}, chain:{}", cstr(&ctx.chain)))
    }

    /// A hook's event arrived: pair it with the context sent before it.
    pub fn on_event(&mut self, skb: u64, ts_ns: u64, flags: u32) {
        if flags & slot_flags::NF_CONTEXT == 0 {
            return;
        }
        if let Some(ctx) = self.pending.remove(&skb)
            && let Some(note) = self.note(&ctx, flags)
        {
            bounded_insert(&mut self.notes, (skb, ts_ns), note);
        }
    }

    /// The note for an event being printed (once).
    pub fn take(&mut self, skb: u64, ts_ns: u64) -> Option<String> {
        self.notes.remove(&(skb, ts_ns))
    }
}

/// Records waiting for the event they belong to are dropped beyond this
/// many (their events were lost, or the packet was never printed).
const MAX_PENDING: usize = 4096;

fn bounded_insert<K: std::hash::Hash + Eq, V>(map: &mut HashMap<K, V>, key: K, value: V) {
    if map.len() >= MAX_PENDING {
        map.clear();
    }
    map.insert(key, value);
}

/// `func` from `func.isra.0+0x1f`.
fn function_of(frame: &str) -> &str {
    let f = frame.split('+').next().unwrap_or(frame);
    f.split('.').next().unwrap_or(f)
}

/// The hook point of a netfilter drop, from its stack (innermost first).
pub fn hook_point(frames: &[Frame]) -> Option<&'static str> {
    frames.iter().find_map(|f| {
        let func = function_of(f.sym());
        HOOK_SITES
            .iter()
            .find(|(site, _)| *site == func)
            .map(|(_, point)| *point)
    })
}

/// What `--hooks` found for one drop.
#[derive(Clone, Debug, PartialEq)]
pub struct Blame {
    /// `ipv4 in chain: LOCAL_IN`, when the hook point is known.
    pub note: Option<String>,
    /// The hook functions to blame (or every point's list when the point is
    /// unknown), and a line for those not kept.
    pub functions: Vec<String>,
}

pub struct NfHooks {
    /// `PRE_ROUTING` → index of `NF_INET_PRE_ROUTING`.
    points: HashMap<String, usize>,
    /// Snapshots waiting for their drop event, by skb address.
    pending: HashMap<u64, NfHooksEvent>,
}

impl NfHooks {
    pub fn from_btf(btf: &KernelBtf) -> Result<Self, BtfError> {
        Ok(Self::with_points(hook_points(btf)?))
    }

    pub fn with_points(points: HashMap<String, usize>) -> Self {
        Self {
            points,
            pending: HashMap::new(),
        }
    }

    pub fn remember(&mut self, ev: NfHooksEvent) {
        bounded_insert(&mut self.pending, ev.skb, ev);
    }

    /// The blame for the netfilter drop of `skb` whose stack is `frames`.
    pub fn blame(&mut self, skb: u64, frames: &[Frame], symbols: &Symbolizer) -> Blame {
        let snapshot = self.pending.remove(&skb);
        let point = hook_point(frames);
        let family = snapshot.map(|s| format!("ipv{}", s.ip_version));
        let note = point.map(|p| format!("{} in chain: {p}", family.as_deref().unwrap_or("ip")));
        let Some(s) = snapshot else {
            return Blame {
                note,
                functions: vec!["(hook functions not recorded)".into()],
            };
        };
        let list = |i: usize| {
            let n = s.counts[i] as usize;
            let mut names: Vec<String> = s.funcs[i][..n.min(NF_HOOKS_KEPT)]
                .iter()
                .map(|&a| symbols.function(a))
                .collect();
            if n > NF_HOOKS_KEPT {
                names.push(format!("... and {} more", n - NF_HOOKS_KEPT));
            }
            names
        };
        let functions = match point
            .and_then(|p| self.points.get(p))
            .filter(|&&i| i < s.counts.len())
        {
            Some(&i) => list(i),
            // Unknown point: every point's functions, labelled.
            None => {
                let mut by_index: Vec<(&String, &usize)> = self.points.iter().collect();
                by_index.sort_by_key(|(_, i)| **i);
                by_index
                    .into_iter()
                    .filter(|(_, i)| **i < s.counts.len())
                    .flat_map(|(name, &i)| list(i).into_iter().map(move |f| format!("{f} ({name})")))
                    .collect()
            }
        };
        Blame { note, functions }
    }
}

#[cfg(test)]
mod tests {
    use nettrace_common::Record as _;

    use super::*;
    use crate::{events::record, kernel::kallsyms::Symbols};

    fn frames(names: &[&str]) -> Vec<Frame> {
        names
            .iter()
            .map(|s| Frame {
                addr: 0xffffffff81000000,
                sym: Some(s.to_string()),
            })
            .collect()
    }

    #[test]
    fn hook_point_is_the_innermost_nf_hook_site() {
        let local_in = frames(&[
            "kfree_skb_reason+0x9c",
            "nf_hook_slow+0x96",
            "ip_local_deliver+0xd3",
            "ip_rcv+0x2f",
            "__netif_receive_skb_one_core+0x8a",
        ]);
        assert_eq!(hook_point(&local_in), Some("LOCAL_IN"));
        // Output: POST_ROUTING is called from within ip_local_out's path.
        let post = frames(&[
            "nf_hook_slow+0x40",
            "ip_output+0x7b",
            "__ip_local_out+0x11",
            "ip_send_skb+0x1",
        ]);
        assert_eq!(hook_point(&post), Some("POST_ROUTING"));
        assert_eq!(
            hook_point(&frames(&["nf_hook_slow+0x1", "ip6_forward.cold+0x3"])),
            Some("FORWARD")
        );
        assert_eq!(hook_point(&frames(&["tcp_v4_rcv+0x99"])), None);
    }

    fn symbols() -> Symbolizer {
        Symbolizer::with_symbols(Symbols::parse(
            "ffffffffa0001000 t nft_do_chain_ipv4 [nf_tables]\nffffffffa0002000 t ipv4_conntrack_in [nf_conntrack]\n",
        ))
    }

    fn snapshot(skb: u64) -> NfHooksEvent {
        // SAFETY: plain data.
        let mut s: NfHooksEvent = unsafe { std::mem::zeroed() };
        s.header = NfHooksEvent::HEADER;
        s.skb = skb;
        s.ip_version = 4;
        // LOCAL_IN (index 1 here): two functions.
        s.counts[1] = 2;
        s.funcs[1][0] = 0xffffffffa0002000;
        s.funcs[1][1] = 0xffffffffa0001000;
        // PRE_ROUTING: more than kept.
        s.counts[0] = NF_HOOKS_KEPT as u16 + 3;
        s.funcs[0] = [0xffffffffa0001000; NF_HOOKS_KEPT];
        s
    }

    fn points() -> HashMap<String, usize> {
        [("PRE_ROUTING", 0), ("LOCAL_IN", 1), ("FORWARD", 2)]
            .into_iter()
            .map(|(n, i)| (n.to_string(), i))
            .collect()
    }

    #[test]
    fn blames_the_functions_at_the_hook_point() {
        let mut nf = NfHooks::with_points(points());
        let bytes = record::bytes_of(&snapshot(7));
        nf.remember(record::read::<NfHooksEvent>(&bytes).unwrap());
        assert!(record::read::<NfHooksEvent>(&bytes[..bytes.len() - 1]).is_err());
        let b = nf.blame(
            7,
            &frames(&["nf_hook_slow+0x96", "ip_local_deliver+0xd3"]),
            &symbols(),
        );
        assert_eq!(b.note.as_deref(), Some("ipv4 in chain: LOCAL_IN"));
        assert_eq!(b.functions, ["ipv4_conntrack_in", "nft_do_chain_ipv4"]);
        // Used once: a second drop of the same address has no snapshot.
        let again = nf.blame(7, &frames(&["ip_local_deliver+0xd3"]), &symbols());
        assert_eq!(again.functions, ["(hook functions not recorded)"]);
    }

    fn context(hook: u8, pf: u8, table: &str, chain: &str) -> NfContextEvent {
        // SAFETY: plain data.
        let mut c: NfContextEvent = unsafe { std::mem::zeroed() };
        c.header = NfContextEvent::HEADER;
        c.skb = 5;
        c.hook = hook;
        c.pf = pf;
        c.table[..table.len()].copy_from_slice(table.as_bytes());
        c.chain[..chain.len()].copy_from_slice(chain.as_bytes());
        c
    }

    #[test]
    fn context_notes_like_the_c_nettrace() {
        let mut n = NfNotes::new(points());
        let state = context(1, nfproto::IPV4, "", "");
        assert_eq!(
            n.note(&state, slot_flags::NF_STATE).as_deref(),
            Some("ipv4 in chain: LOCAL_IN")
        );
        let xt = context(1, nfproto::IPV4, "filter", "");
        assert_eq!(
            n.note(&xt, slot_flags::NF_XT_TABLE).as_deref(),
            Some("iptables table:filter, chain:INPUT")
        );
        let nft = context(0, nfproto::IPV6, "nat", "PREROUTING");
        assert_eq!(
            n.note(&nft, slot_flags::NF_NFT_CHAIN).as_deref(),
            Some("nftables table:nat, chain:PREROUTING")
        );
        // Unread state: no hook-point note rather than a wrong one.
        assert_eq!(n.note(&context(0xff, 0xff, "", ""), slot_flags::NF_STATE), None);
        // Paired with the next event of the same skb, taken once.
        n.remember(state);
        n.on_event(5, 100, slot_flags::NF_STATE);
        assert_eq!(n.take(5, 100).as_deref(), Some("ipv4 in chain: LOCAL_IN"));
        assert_eq!(n.take(5, 100), None);
        // A hook without context flags does not consume the pending context.
        n.remember(xt);
        n.on_event(5, 101, 0);
        n.on_event(5, 102, slot_flags::NF_XT_TABLE);
        assert_eq!(n.take(5, 101), None);
        assert!(n.take(5, 102).is_some());
        let bytes = record::bytes_of(&context(0, 0, "", ""));
        assert!(
            record::read::<NfContextEvent>(&bytes).is_ok()
                && record::read::<NfContextEvent>(&bytes[..bytes.len() - 1]).is_err()
        );
    }

    #[test]
    fn unknown_point_lists_every_point_and_counts_what_was_not_kept() {
        let mut nf = NfHooks::with_points(points());
        nf.remember(snapshot(9));
        let b = nf.blame(9, &frames(&["nf_hook_slow+0x96"]), &symbols());
        assert_eq!(b.note, None);
        assert_eq!(b.functions.len(), NF_HOOKS_KEPT + 1 + 2);
        assert_eq!(b.functions[0], "nft_do_chain_ipv4 (PRE_ROUTING)");
        assert_eq!(b.functions[NF_HOOKS_KEPT], "... and 3 more (PRE_ROUTING)");
        assert_eq!(b.functions.last().unwrap(), "nft_do_chain_ipv4 (LOCAL_IN)");
    }
}
