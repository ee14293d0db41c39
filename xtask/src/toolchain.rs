//! The pinned toolchain and the bpf-linker built against its LLVM.
//!
//! aya 0.16 declares rust-version 1.98 and the eBPF crate needs nightly
//! (`-Z build-std=core`); `nightly-2026-06-30` is rustc 1.98 with LLVM 22.
//! bpf-linker must link the same LLVM major, and Debian 12 has no LLVM 22
//! package, so it is built against the toolchain's own `libLLVM` (recipe in
//! ../shared/DESIGN.md). Keep in sync with `nettrace/build.rs`.

pub const PINNED: &str = "nightly-2026-06-30";
pub const BPF_LINKER_VERSION: &str = "0.13.0";
