//! What nettrace learns about the running kernel at start-up: BTF layout and
//! names, symbols, tracefs, and which attach mechanisms work.

pub mod btf;
pub mod caps;
pub mod hz;
pub mod kallsyms;
pub mod layout;
pub mod reasons;
pub mod tracefs;
