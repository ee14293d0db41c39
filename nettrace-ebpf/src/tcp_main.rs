//! The `--tcp-monitor` and `--rt` object: socket-level tracepoints only.
//! Apart from the packet objects so that these modes load a handful of
//! programs, not the lifecycle object's hundreds.
#![no_std]
#![no_main]

mod args;
#[allow(dead_code, reason = "the packet half of the filter is for skb objects")]
mod filter;
mod maps;
mod read;
mod rt;
mod rtt;
mod sock;
mod tcp_monitor;

nettrace_ebpf::object_glue!();
