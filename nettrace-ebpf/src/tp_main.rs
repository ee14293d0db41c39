//! The tracepoint-only variant of the lifecycle object (`main.rs`): the same
//! handler and maps, but only the tp_btf and classic tracepoint entry
//! points. On kernels without fentry and kprobes (or when the plan uses
//! none) nettrace loads this one: a quarter of the programs for aya to parse
//! and link, so start-up and memory shrink accordingly.
//!
//! Thin per-slot entry points (`slots`, generated) call one handler
//! (`trace`), which sends its netfilter records through `nf_records`;
//! packet reading and filtering shared by all objects is in `skb` and
//! `filter`; maps in `maps`. Kernel struct offsets are never compiled in:
//! userspace resolves them from BTF and passes them as read-only globals.
#![no_std]
// Compare-and-swap for `--rate-limit` (see `ratelimit.rs`).
#![feature(core_intrinsics)]
// Context loads at constant offsets (see `args.rs`).
#![feature(asm_experimental_arch)]
#![allow(internal_features)]
#![no_main]

#[allow(dead_code, reason = "function arguments are read in the full object only")]
mod args;
mod expr;
mod filter;
mod maps;
mod nf_records;
mod ratelimit;
mod read;
mod skb;
#[path = "slots_tp.rs"]
mod slots;
mod snap;
#[allow(dead_code, reason = "the function entry points live in the full object only")]
mod trace;
mod tracked;

nettrace_ebpf::object_glue!();
