#![no_std]
// The library target exists so that `nettrace` can declare a build-dependency
// on this crate (see nettrace/Cargo.toml); the programs live in the binary.
