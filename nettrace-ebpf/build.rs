//! Rebuild when the `bpf-linker` binary changes.
//!
//! The crate has an undeclared dependency on `bpf-linker` (cargo cannot express
//! "a binary on PATH"). Keying the build on its path and mtime at least makes a
//! rebuilt linker (for example after a toolchain bump by `cargo xtask setup`)
//! trigger a rebuild of the eBPF object.
fn main() {
    match which::which("bpf-linker") {
        Ok(path) => println!("cargo:rerun-if-changed={}", path.display()),
        Err(err) => println!("cargo:warning=bpf-linker not found on PATH: {err}; run `cargo xtask setup`"),
    }
}
