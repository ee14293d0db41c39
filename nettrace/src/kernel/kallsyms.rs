//! Kernel addresses to `func+0xoff`, from `/proc/kallsyms`.
//!
//! Read once, on first use: start-up does not pay for it when no event comes.

use std::{io, path::Path};

pub const KALLSYMS: &str = "/proc/kallsyms";

#[derive(Debug, Default)]
pub struct Symbols {
    /// Sorted by address.
    syms: Vec<(u64, String)>,
}

impl Symbols {
    pub fn load(path: impl AsRef<Path>) -> io::Result<Self> {
        Ok(Self::parse(&std::fs::read_to_string(path)?))
    }

    /// Parses kallsyms text: `ffffffff81000000 T _stext [module]`. Only code
    /// symbols are kept; zero addresses (kptr_restrict) are dropped.
    pub fn parse(text: &str) -> Self {
        let mut syms: Vec<(u64, String)> = text
            .lines()
            .filter_map(|line| {
                let mut it = line.split_whitespace();
                let addr = u64::from_str_radix(it.next()?, 16).ok()?;
                let kind = it.next()?;
                let name = it.next()?;
                (addr != 0 && matches!(kind, "t" | "T" | "w" | "W")).then(|| (addr, name.to_string()))
            })
            .collect();
        syms.sort_unstable_by_key(|(a, _)| *a);
        Self { syms }
    }

    /// `tcp_v4_rcv+0x81`, or the bare hex address when nothing precedes it.
    pub fn symbolize(&self, addr: u64) -> String {
        let i = self.syms.partition_point(|(a, _)| *a <= addr);
        match i.checked_sub(1).map(|i| &self.syms[i]) {
            Some((base, name)) => format!("{name}+{:#x}", addr - base),
            None => format!("{addr:#x}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbolizes_captured_excerpt() {
        let text =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../tests/data/kallsyms.txt"))
                .unwrap();
        let s = Symbols::parse(&text);
        assert!(!s.syms.is_empty());
        assert_eq!(s.symbolize(0xffffffff81c6f0b1), "tcp_v4_rcv+0x81");
        assert_eq!(s.symbolize(0xffffffff81c6f030), "tcp_v4_rcv+0x0");
        // Data symbols ('D', 'b') are not code and never win.
        assert_eq!(s.symbolize(0xffffffff81c70010), "tcp_v4_early_demux+0x10");
        // Module symbols keep their name, not the [module] tag.
        assert_eq!(s.symbolize(0xffffffffc0a01005), "nft_do_chain+0x5");
        assert_eq!(s.symbolize(0x10), "0x10");
    }

    #[test]
    fn junk_lines_are_skipped() {
        let s = Symbols::parse("garbage\n\nzzzz T x\n0000000000000000 T hidden\nffffffff81000000 T _stext\n");
        assert_eq!(s.symbolize(0xffffffff81000004), "_stext+0x4");
    }
}
