//! The root integration tests, one binary: real eBPF programs in the running
//! kernel, real packets between network namespaces each test creates, and
//! assertions on what the `nettrace` binary prints.
//!
//! One module per area (as ripgrep's `tests/tests.rs` does), so the shared
//! helpers in `util` are compiled once and a module is selected with a
//! filter: `cargo test --test tests -- drop::` (the VM tier runs its passes
//! that way). Needs root; run with `--test-threads=1`, since tests load
//! programs and count what is loaded.

mod util;

mod compat;
mod conn;
mod container;
mod deploy;
mod diag;
mod drop;
mod expr;
mod hardening;
mod image;
mod lifecycle;
mod pcap;
mod prometheus;
mod rt;
mod sock;
mod stats;
mod tcp;
