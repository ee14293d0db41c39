//! The pinned toolchain and the bpf-linker built against its LLVM.
//!
//! aya 0.16 declares rust-version 1.98 and the eBPF crate needs nightly
//! (`-Z build-std=core`); the pin (`rust-toolchain-ebpf` at the workspace
//! root, today `nightly-2026-06-30`: rustc 1.98 with LLVM 22) is read at
//! compile time here and by `nettrace/build.rs`, so the two cannot drift.
//! bpf-linker must link the same LLVM major, and Debian 12 has no LLVM 22
//! package, so it is built against the toolchain's own `libLLVM` (recipe in
//! ../shared/DESIGN.md).

pub const PINNED: &str = include_str!("../../rust-toolchain-ebpf").trim_ascii();
pub const BPF_LINKER_VERSION: &str = "0.13.0";
