//! The socket modes' object (`--tcp-monitor`, `--rt`, `--rtt`, `--sock`):
//! socket-level tracepoints, and the few TCP functions `--rtt` and `--sock` hook.
//! Apart from the packet objects so that these modes load a handful of
//! programs, not the lifecycle object's hundreds.
#![no_std]
// Compare-and-swap for `--rate-limit` (see `ratelimit.rs`).
#![feature(core_intrinsics)]
// Context loads at constant offsets (see `args.rs`).
#![feature(asm_experimental_arch)]
#![allow(internal_features)]
#![no_main]

mod args;
mod maps;
mod ratelimit;
mod read;
mod rt;
mod rt_emit;
mod rt_handshake;
mod rt_proto;
mod rt_tls;
mod rtt;
mod sock;
mod sock_events;
mod tcp_monitor;

nettrace_ebpf::object_glue!();
