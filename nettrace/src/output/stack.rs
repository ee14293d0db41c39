//! Kernel stacks (`--drop-stack`, `--trace-stack`) and location symbols,
//! shared by every mode: `Call Stack:` then one `    -> func+0xoff` per frame.

use std::cell::OnceCell;

use anyhow::Context as _;
use aya::{
    Ebpf,
    maps::{MapData, StackTraceMap},
};

use crate::kernel::kallsyms::{KALLSYMS, Symbols};

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

    /// The symbolized frames (`func+0xoff`, innermost first) of a recorded
    /// stack, without our own program and the glue that ran it.
    pub fn frames(&self, stack_id: i32) -> Option<Vec<String>> {
        let (Some(map), Ok(id)) = (&self.stacks, u32::try_from(stack_id)) else {
            return None;
        };
        let trace = map.get(&id, 0).ok()?;
        Some(
            trace
                .frames()
                .iter()
                .map(|f| self.symbolize(f.ip))
                .skip_while(|s| {
                    s.starts_with("bpf_prog_")
                        || s.starts_with("bpf_trace_run")
                        || s.starts_with("bpf_trampoline")
                })
                .collect(),
        )
    }

    /// The `Call Stack:` block for a stack id from the eBPF side.
    pub fn stack(&self, stack_id: i32) -> Vec<String> {
        let mut out = vec!["Call Stack:".to_string()];
        match self.frames(stack_id) {
            Some(frames) => out.extend(frames.into_iter().map(|s| format!("    -> {s}"))),
            None => out.push("    (stack not recorded)".into()),
        }
        out
    }
}
