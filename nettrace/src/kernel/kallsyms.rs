//! Kernel addresses to `func+0xoff`, from `/proc/kallsyms`.
//!
//! Read once, on first use: start-up does not pay for it when no event comes.

use std::{io, path::Path};

pub const KALLSYMS: &str = "/proc/kallsyms";

/// Code symbols sorted by address. Names live in one string (a kernel has
/// ~200k symbols: one allocation each would double the tool's memory), and
/// the file is read line by line so its text is never held whole.
#[derive(Debug, Default)]
pub struct Symbols {
    /// (address, start and length of the name in `names`), sorted by address.
    syms: Vec<(u64, u32, u32)>,
    names: String,
}

impl Symbols {
    pub fn load(path: impl AsRef<Path>) -> io::Result<Self> {
        let mut s = Self::default();
        let mut r = io::BufReader::new(std::fs::File::open(path)?);
        let mut line = String::new();
        while io::BufRead::read_line(&mut r, &mut line)? > 0 {
            s.add(&line);
            line.clear();
        }
        s.syms.sort_unstable_by_key(|(a, _, _)| *a);
        Ok(s)
    }

    /// Parses kallsyms text: `ffffffff81000000 T _stext [module]`. Only code
    /// symbols are kept; zero addresses (kptr_restrict) are dropped.
    #[cfg(test)]
    pub fn parse(text: &str) -> Self {
        let mut s = Self::default();
        text.lines().for_each(|l| s.add(l));
        s.syms.sort_unstable_by_key(|(a, _, _)| *a);
        s
    }

    fn add(&mut self, line: &str) {
        let mut it = line.split_whitespace();
        let (Some(addr), Some(kind), Some(name)) = (it.next(), it.next(), it.next()) else {
            return;
        };
        let Ok(addr) = u64::from_str_radix(addr, 16) else {
            return;
        };
        if addr != 0 && matches!(kind, "t" | "T" | "w" | "W") {
            self.syms.push((addr, self.names.len() as u32, name.len() as u32));
            self.names.push_str(name);
        }
    }

    fn name(&self, i: usize) -> &str {
        let (_, start, len) = self.syms[i];
        &self.names[start as usize..(start + len) as usize]
    }

    /// Where function `name` starts and how long it is (up to the next
    /// symbol).
    pub fn function(&self, name: &str) -> Option<(u64, u64)> {
        let i = (0..self.syms.len()).find(|&i| self.name(i) == name)?;
        let start = self.syms[i].0;
        let end = self.syms[i + 1..].iter().map(|s| s.0).find(|&a| a > start)?;
        Some((start, end - start))
    }

    /// `tcp_v4_rcv+0x81`, or `None` when no symbol precedes the address.
    pub fn lookup(&self, addr: u64) -> Option<String> {
        let i = self.syms.partition_point(|(a, _, _)| *a <= addr).checked_sub(1)?;
        Some(format!("{}+{:#x}", self.name(i), addr - self.syms[i].0))
    }

    /// `tcp_v4_rcv+0x81`, or the bare hex address when nothing precedes it.
    pub fn symbolize(&self, addr: u64) -> String {
        self.lookup(addr).unwrap_or_else(|| format!("{addr:#x}"))
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
        assert_eq!(s.lookup(0x10), None);
        // A function's extent runs to the next code symbol.
        assert_eq!(s.function("tcp_v4_rcv"), Some((0xffffffff81c6f030, 0xfd0)));
        assert_eq!(s.function("no_such_function"), None);
    }

    #[test]
    fn junk_lines_are_skipped() {
        let s = Symbols::parse("garbage\n\nzzzz T x\n0000000000000000 T hidden\nffffffff81000000 T _stext\n");
        assert_eq!(s.symbolize(0xffffffff81000004), "_stext+0x4");
    }
}
