//! Kernel stacks (`--drop-stack`, `--trace-stack`) and location symbols,
//! shared by every mode: `Call Stack:` then one frame per line, as the C
//! nettrace prints them: `    -> [ffffffff81b2c3d4]consume_skb+0x7c`.

use std::{
    cell::OnceCell,
    io::{self, Write},
};

use anyhow::Context as _;
use aya::{
    Ebpf,
    maps::{MapData, StackTraceMap},
};

use crate::kernel::kallsyms::{KALLSYMS, Symbols};

/// One frame of a kernel stack: its address and, when kallsyms knows it,
/// `func+0xoff`. In JSON `{"addr":"ffffffff81b2c3d4","sym":"consume_skb+0x7c"}`
/// (`sym` null when unknown).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Frame {
    #[serde(serialize_with = "addr16")]
    pub addr: u64,
    pub sym: Option<String>,
}

fn addr16<S: serde::Serializer>(addr: &u64, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(&format_args!("{addr:016x}"))
}

/// A stack as an event carries it (`--drop-stack`, `--trace-stack`): the
/// `Call Stack:` block in text, the `stack` array of frames in JSON (empty
/// when it was not recorded).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stack(pub Option<Vec<Frame>>);

impl Stack {
    /// `Call Stack:` and a line per frame.
    pub fn text(&self, w: &mut dyn Write) -> io::Result<()> {
        Symbolizer::block(self.0.as_deref())
            .iter()
            .try_for_each(|l| writeln!(w, "{l}"))
    }
}

impl serde::Serialize for Stack {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.as_deref().unwrap_or_default().serialize(s)
    }
}

impl Frame {
    /// `    -> [ffffffff81b2c3d4]consume_skb+0x7c` (the address alone when
    /// no symbol is known).
    pub fn line(&self) -> String {
        format!("    -> [{:016x}]{}", self.addr, self.sym.as_deref().unwrap_or(""))
    }

    /// The symbol, or `""`: what frame matching (netfilter hook points) reads.
    pub fn sym(&self) -> &str {
        self.sym.as_deref().unwrap_or("")
    }
}

pub struct Symbolizer {
    symbols: OnceCell<Symbols>,
    stacks: Option<StackTraceMap<MapData>>,
}

impl Symbolizer {
    /// `ebpf`: take the stack map from it (when stacks are wanted).
    pub fn new(ebpf: Option<&mut Ebpf>) -> anyhow::Result<Self> {
        let stacks = match ebpf {
            Some(ebpf) => Some(StackTraceMap::try_from(
                ebpf.take_map("STACKS").context("map STACKS missing")?,
            )?),
            None => None,
        };
        Ok(Self {
            symbols: OnceCell::new(),
            stacks,
        })
    }

    #[cfg(test)]
    pub fn with_symbols(symbols: Symbols) -> Self {
        Self {
            symbols: OnceCell::from(symbols),
            stacks: None,
        }
    }

    /// kallsyms is read on first use: start-up does not pay for it.
    fn symbols(&self) -> &Symbols {
        self.symbols.get_or_init(|| {
            Symbols::load(KALLSYMS).unwrap_or_else(|e| {
                eprintln!("nettrace: cannot read {KALLSYMS} ({e}); locations print as addresses");
                Symbols::default()
            })
        })
    }

    pub fn symbolize(&self, addr: u64) -> String {
        self.symbols().symbolize(addr)
    }

    /// A function's name from its address (`nft_do_chain_ipv4`), with the
    /// offset only when the address is not a function's start.
    pub fn function(&self, addr: u64) -> String {
        let s = self.symbolize(addr);
        match s.strip_suffix("+0x0") {
            Some(name) => name.to_string(),
            None => s,
        }
    }

    /// The frames (innermost first) of a recorded stack, without our own
    /// program and the glue that ran it.
    pub fn frames(&self, stack_id: i32) -> Option<Vec<Frame>> {
        let (Some(map), Ok(id)) = (&self.stacks, u32::try_from(stack_id)) else {
            return None;
        };
        let trace = map.get(&id, 0).ok()?;
        Some(self.frames_of(trace.frames().iter().map(|f| f.ip)))
    }

    /// Symbolizes addresses (innermost first), dropping the BPF frames on top.
    fn frames_of(&self, ips: impl Iterator<Item = u64>) -> Vec<Frame> {
        let symbols = self.symbols();
        ips.map(|addr| Frame {
            addr,
            sym: symbols.lookup(addr),
        })
        .skip_while(|f| {
            let s = f.sym();
            s.starts_with("bpf_prog_") || s.starts_with("bpf_trace_run") || s.starts_with("bpf_trampoline")
        })
        .collect()
    }

    /// The stack of a stack id from the eBPF side.
    pub fn stack(&self, stack_id: i32) -> Stack {
        Stack(self.frames(stack_id))
    }

    fn block(frames: Option<&[Frame]>) -> Vec<String> {
        let mut out = vec!["Call Stack:".to_string()];
        match frames {
            Some(frames) => out.extend(frames.iter().map(Frame::line)),
            None => out.push("    (stack not recorded)".into()),
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn symbolizer() -> Symbolizer {
        Symbolizer::with_symbols(Symbols::parse(
            "ffffffff81b2c358 T consume_skb\nffffffffc0000000 t bpf_prog_6deef7357e7b4530_x\n\
             ffffffffc0001000 T bpf_trace_run2\n",
        ))
    }

    #[test]
    fn frames_print_as_the_c_tool_does() {
        let s = symbolizer();
        let frames =
            s.frames_of([0xffffffffc0000010, 0xffffffffc0001004, 0xffffffff81b2c3d4, 0x10].into_iter());
        assert_eq!(
            Symbolizer::block(Some(&frames)),
            [
                "Call Stack:",
                "    -> [ffffffff81b2c3d4]consume_skb+0x7c",
                "    -> [0000000000000010]",
            ]
        );
        assert_eq!(
            serde_json::to_string(&frames).unwrap(),
            r#"[{"addr":"ffffffff81b2c3d4","sym":"consume_skb+0x7c"},{"addr":"0000000000000010","sym":null}]"#
        );
        assert_eq!(
            Symbolizer::block(None),
            ["Call Stack:", "    (stack not recorded)"]
        );
    }
}
