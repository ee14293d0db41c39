//! Compiles `nettrace-ebpf` for the BPF target so the object can be embedded
//! in the `nettrace` binary (`include_bytes_aligned!` in `src/load.rs`).
//!
//! The toolchain is pinned here and installed by `cargo xtask setup`; the eBPF
//! crate needs nightly (`-Z build-std=core`) and `bpf-linker` built against the
//! same LLVM major.
use anyhow::{Context as _, anyhow};
use aya_build::Toolchain;

/// The pinned nightly, one line in `rust-toolchain-ebpf` at the workspace
/// root (`xtask/src/toolchain.rs` reads the same file).
const EBPF_TOOLCHAIN: &str = include_str!("../rust-toolchain-ebpf").trim_ascii();

fn main() -> anyhow::Result<()> {
    let cargo_metadata::Metadata { packages, .. } = cargo_metadata::MetadataCommand::new()
        .no_deps()
        .exec()
        .context("cargo metadata")?;
    let ebpf = packages
        .into_iter()
        .find(|p| p.name.as_str() == "nettrace-ebpf")
        .ok_or_else(|| anyhow!("nettrace-ebpf package not found"))?;
    let root_dir = ebpf
        .manifest_path
        .parent()
        .ok_or_else(|| anyhow!("no parent for {}", ebpf.manifest_path))?;
    let package = aya_build::Package {
        name: ebpf.name.as_str(),
        root_dir: root_dir.as_str(),
        ..Default::default()
    };
    aya_build::build_ebpf([package], Toolchain::Custom(EBPF_TOOLCHAIN))
}
