//! Lifecycle tracing (the default mode): one event per hook a tracked packet
//! passes.
//!
//! Each attached hook owns a *slot*. The eBPF object holds one copy of each
//! generic program per slot and backend (`fentry_17`, `kprobe_17`, …) because
//! fentry and tp_btf programs are bound to their target when loaded. A slot's
//! configuration sits in a read-only global at a constant index, so the
//! verifier sees, for example, which argument holds the skb as a constant and
//! prunes the reads of the others.

use crate::{COMM_LEN, PKT_HDR_LEN, filter::Filter, layout::KernelLayout, record::RecordHeader};

/// Slots, i.e. hooks attached at once. The catalogue may be larger.
pub const MAX_SLOTS: usize = 256;

/// Length of `net_device.name` (IFNAMSIZ).
pub const IFNAME_LEN: usize = 16;

/// `HookSlot::flags` bits.
pub mod slot_flags {
    /// Packets matching the filters here start being tracked.
    pub const MATCHER: u32 = 1;
    /// The packet's life ends here: stop tracking it.
    pub const FREE: u32 = 2;
    /// Record the kernel stack.
    pub const STACK: u32 = 4;
    /// The return value is a clone of the skb argument (fexit only).
    pub const CLONE: u32 = 8;
    /// `extra_arg` holds a value to report (drop reason, …).
    pub const EXTRA: u32 = 16;
    /// `loc_arg` holds a code address to report (where a drop happened).
    pub const LOCATION: u32 = 32;
    /// `--hooks`: when this hook reports the drop reason
    /// `NfLayout::drop_reason`, first emit an `NfHooksEvent`.
    pub const NF_HOOKS: u32 = 64;
    /// The extra value is an `enum sk_rst_reason`, not a drop reason (for
    /// userspace; the programs read it like any extra value).
    pub const RESET_REASON: u32 = 128;
    /// Netfilter context (an `NfContextEvent` before the event):
    /// `nf_arg` is a `struct nf_hook_state *` (`nf_hook_slow`).
    pub const NF_STATE: u32 = 256;
    /// `nf_arg` is a `struct xt_table *`, `nf_arg2` the hook state
    /// (`ipt_do_table`: iptables-legacy).
    pub const NF_XT_TABLE: u32 = 512;
    /// `nf_arg` is a `struct nft_pktinfo *`, `nf_arg2` a `struct nft_chain *`
    /// (`nft_do_chain`: nftables and iptables-nft).
    pub const NF_NFT_CHAIN: u32 = 1024;
    pub const NF_CONTEXT: u32 = NF_STATE | NF_XT_TABLE | NF_NFT_CHAIN;
}

/// Where the netfilter hook functions of a namespace are (`--hooks`), from
/// BTF: `net->nf.hooks_ipv4[point]` points to a `struct nf_hook_entries`
/// (`u16 num_hook_entries; struct nf_hook_entry hooks[]`), each entry
/// starting with the hook function's address.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NfLayout {
    /// Value of `SKB_DROP_REASON_NETFILTER_DROP`; `KernelLayout::NONE` = off.
    pub drop_reason: u32,
    /// `net.nf.hooks_ipv4` and `net.nf.hooks_ipv6` (arrays of pointers).
    pub net_hooks_ipv4: u32,
    pub net_hooks_ipv6: u32,
    /// `nf_hook_entries.num_hook_entries` (`u16`) and `.hooks`.
    pub entries_num: u32,
    pub entries_hooks: u32,
    /// `sizeof(struct nf_hook_entry)` and the offset of its `hook`.
    pub entry_size: u32,
    pub entry_hook: u32,
    /// Hook points per family (`NF_INET_NUMHOOKS`), at most `NF_HOOK_POINTS`.
    pub points: u32,
    /// `nf_hook_state.hook` and `.pf` (`u8` each).
    pub state_hook: u32,
    pub state_pf: u32,
    /// `xt_table.name` (`char[32]`).
    pub xt_table_name: u32,
    /// `nft_pktinfo.state`, `nft_chain.name` (`char *`), `nft_chain.table`,
    /// `nft_table.name` (`char *`).
    pub nft_pktinfo_state: u32,
    pub nft_chain_name: u32,
    pub nft_chain_table: u32,
    pub nft_table_name: u32,
    pub _pad: u32,
    /// Kernels without drop reasons (before 5.17): a `kfree_skb` whose
    /// location lies in `[drop_at, drop_at + drop_at_len)` (`nf_hook_slow`,
    /// which frees exactly what a hook returned NF_DROP for) is netfilter's
    /// drop. `drop_at_len` 0 = off.
    pub drop_at: u64,
    pub drop_at_len: u64,
}

impl NfLayout {
    pub const OFF: Self = Self {
        drop_reason: u32::MAX,
        net_hooks_ipv4: 0,
        net_hooks_ipv6: 0,
        entries_num: 0,
        entries_hooks: 0,
        entry_size: 0,
        entry_hook: 0,
        points: 0,
        state_hook: u32::MAX,
        state_pf: u32::MAX,
        xt_table_name: u32::MAX,
        nft_pktinfo_state: u32::MAX,
        nft_chain_name: u32::MAX,
        nft_chain_table: u32::MAX,
        nft_table_name: u32::MAX,
        _pad: 0,
        drop_at: 0,
        drop_at_len: 0,
    };
}

/// Length of the table and chain names kept (`XT_TABLE_MAXNAMELEN`).
pub const NF_NAME_LEN: usize = 32;

/// What a netfilter function saw: hook point and family, and for
/// iptables/nftables the table and chain. Sent just before the hook's
/// `TraceEvent`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NfContextEvent {
    pub header: RecordHeader,
    /// `nf_hook_state.hook` (an `enum nf_inet_hooks` value) and `.pf`
    /// (`NFPROTO_*`); 0xff when unread.
    pub hook: u8,
    pub pf: u8,
    pub _pad: [u8; 2],
    pub skb: u64,
    /// NUL-terminated, zero-filled; empty when the hook has no table/chain.
    pub table: [u8; NF_NAME_LEN],
    pub chain: [u8; NF_NAME_LEN],
}

/// Hook points kept per family (PRE_ROUTING … POST_ROUTING).
pub const NF_HOOK_POINTS: usize = 5;
/// Hook functions kept per point; `NfHooksEvent::counts` has the real number.
pub const NF_HOOKS_KEPT: usize = 8;

/// The netfilter hook functions registered in a dropped packet's namespace
/// for its family, at every hook point: which point dropped it is decided in
/// userspace (from the drop's kernel stack). Sent just before the drop's
/// `TraceEvent`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NfHooksEvent {
    pub header: RecordHeader,
    /// 4 or 6.
    pub ip_version: u8,
    pub _pad: u8,
    /// Functions registered at each point (may exceed `NF_HOOKS_KEPT`).
    pub counts: [u16; NF_HOOK_POINTS],
    pub skb: u64,
    pub funcs: [[u64; NF_HOOKS_KEPT]; NF_HOOK_POINTS],
}

/// Where a slot's program finds its values. For tp_btf/fentry/fexit/kprobe
/// these are argument indices; for the classic tracepoint, byte offsets into
/// the record.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HookSlot {
    pub skb_arg: u32,
    /// Reported in `TraceEvent::extra` when `EXTRA` is set.
    pub extra_arg: u32,
    /// fexit: index of the return value (= number of arguments).
    pub ret_arg: u32,
    /// Reported in `TraceEvent::location` when `LOCATION` is set.
    pub loc_arg: u32,
    pub flags: u32,
    /// Netfilter context arguments (see `slot_flags::NF_*`).
    pub nf_arg: u32,
    pub nf_arg2: u32,
    /// When not `KernelLayout::NONE`, argument `skb_arg` is a struct
    /// holding the skb pointer at this offset (`nft_pktinfo.skb`).
    pub skb_member: u32,
    pub _pad: u32,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceConfig {
    pub layout: KernelLayout,
    pub filter: Filter,
    /// Non-zero: remember matching skbs so later hooks (after NAT changed the
    /// addresses) still report them. Zero when the filter matches everything.
    pub track: u32,
    pub _pad: u32,
    pub nf: NfLayout,
    pub opts: TraceOpts,
    pub slots: [HookSlot; MAX_SLOTS],
}

/// Session-wide options of the lifecycle programs.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TraceOpts {
    /// `--latency --min-latency`: lives shorter than this are not reported.
    pub min_latency_ns: u64,
    /// `--rate-limit`: events per second, 0 = unlimited.
    pub rate_limit: u32,
    /// [`trace_opts`] bits.
    pub flags: u32,
    /// `-w`'s `--snaplen` (see `crate::snap`); 0 without `-w`.
    pub snaplen: u32,
    pub _pad: u32,
}

/// `TraceOpts::flags`.
pub mod trace_opts {
    /// `--latency`: no event per hook; one at the free with the life.
    pub const LATENCY: u32 = 1;
    /// `--latency-free`: a life ends at the free itself, not at the last
    /// hook before it.
    pub const LATENCY_FREE: u32 = 2;
    /// `--func-stats`: count events per slot (`FUNC_STATS`), send none.
    pub const FUNC_STATS: u32 = 4;
    /// `--latency-summary`: lives go into `LATENCY_HIST`, no events.
    pub const LATENCY_SUMMARY: u32 = 8;
    /// `--bench-floor`: every program returns at once (what attaching the
    /// hooks costs by itself, the benchmark's floor row).
    pub const FLOOR: u32 = 16;
}

/// Buckets of the in-kernel latency histogram: log2 of µs.
pub const LATENCY_BUCKETS: u32 = 32;

/// One second of `--rate-limit` (see `nettrace-ebpf/src/ratelimit.rs`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RateWindow {
    /// ktime / 1e9.
    pub second: u64,
    /// Events that asked to go out in that second.
    pub taken: u64,
}

/// What the tracking table keeps per packet (skb address).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Tracked {
    /// When the packet first matched.
    pub first_ns: u64,
    /// Its latest hook (kept with `--latency` only).
    pub last_ns: u64,
}

/// `TraceEvent::kind`.
pub mod event_kind {
    pub const ENTRY: u8 = 0;
    /// fexit/kretprobe: `extra` is the return value.
    pub const EXIT: u8 = 1;
    /// A clone was made: `extra` is the clone's address.
    pub const CLONE: u8 = 2;
}

/// A packet at a hook. Fields ordered so that the header and the 4-byte
/// fields share the first 8-byte words (no hidden padding).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceEvent {
    pub header: RecordHeader,
    pub slot: u32,
    pub cpu: u32,
    pub pid: u32,
    pub netns: u32,
    pub ifindex: u32,
    pub stack_id: i32,
    /// `skb->len`.
    pub pkt_len: u32,
    pub l3_proto: u16,
    pub hdr_len: u16,
    pub kind: u8,
    pub has_extra: u8,
    pub _pad: [u8; 2],
    pub ts_ns: u64,
    pub skb: u64,
    /// Drop reason, return value or clone address (see `kind`, `has_extra`).
    pub extra: u64,
    /// Code address reported by the hook (kfree_skb's `location`), or 0.
    pub location: u64,
    /// `--latency`: the packet's whole life (first match to the free, or
    /// to the last hook before it), ns; 0 otherwise.
    pub life_ns: u64,
    pub comm: [u8; COMM_LEN],
    pub ifname: [u8; IFNAME_LEN],
    pub hdr: [u8; PKT_HDR_LEN],
}

/// Indices of the per-CPU `LOST` counters.
pub mod lost {
    /// Events that did not fit in the ring buffer.
    pub const RING: u32 = 0;
    /// Packets that could not be tracked: the tracking table was full.
    pub const TRACK_FULL: u32 = 1;
    /// Events held back by `--rate-limit`.
    pub const RATE_LIMITED: u32 = 2;
    /// Packets the filter EXPRESSION could not decide: it reads bytes past
    /// the copied header (`nettrace_common::expr::verdict::BEYOND_COPY`).
    pub const EXPR_BEYOND_COPY: u32 = 3;
    /// Size of the `LOST` map.
    pub const KINDS: u32 = 4;
}

/// Capacity of the tracking table (skb address → first-seen time).
pub const MAX_TRACKED: u32 = 65536;
