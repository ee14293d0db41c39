//! The `--drop` object: only the drop monitor's two programs and the maps
//! they use. Kept apart from the lifecycle object, whose ~1000 per-slot
//! entry points take aya hundreds of milliseconds and ~200 MiB to parse:
//! the mode meant to run for hours stays small and starts fast.
#![no_std]
// Compare-and-swap for `--rate-limit` (see `ratelimit.rs`).
#![feature(core_intrinsics)]
// The expression slot (see `expr.rs`).
#![feature(asm_experimental_arch)]
#![allow(internal_features)]
#![no_main]

mod drop;
mod expr;
mod filter;
mod maps;
mod ratelimit;
mod read;
mod skb;
mod snap;

nettrace_ebpf::object_glue!();
