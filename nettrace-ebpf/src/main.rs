//! nettrace's lifecycle-tracing eBPF object (`--drop` has its own small
//! object, `drop_main.rs`; the capability probes another, `probe_main.rs`).
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

mod args;
mod expr;
mod filter;
mod maps;
mod nf_records;
mod ratelimit;
mod read;
mod skb;
mod slots;
mod snap;
mod trace;
mod tracked;

nettrace_ebpf::object_glue!();
