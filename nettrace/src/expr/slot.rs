//! Writing a translated expression into an eBPF object before it is loaded.
//!
//! The slot (`nettrace-ebpf/src/expr.rs`) is a placeholder of
//! `SLOT_INSNS` instructions, `r0 = 1` then `goto +0` no-ops, inside a
//! function every program calls. That run is its own fingerprint: nothing
//! else in an object looks like it, so it is found by its bytes (exactly
//! once, or the object is not what this code expects) and overwritten in a
//! copy of the object. The instruction count does not change, so nothing
//! else in the object (relocations, BTF line info) moves. The rest of the
//! placeholder stays: the translation jumps to it to return.

use nettrace_common::expr::SLOT_INSNS;

use super::Insn;

/// `r0 = 1` (`BPF_ALU64 | BPF_MOV | BPF_K`).
const FIRST: [u8; 8] = [0xb7, 0x00, 0, 0, 1, 0, 0, 0];
/// `goto +0` (`BPF_JMP | BPF_JA`).
const NOOP: [u8; 8] = [0x05, 0x00, 0, 0, 0, 0, 0, 0];

/// Why an object could not take an expression (a build problem, not a
/// user's).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("the eBPF object has {0} expression slots, not 1")]
pub struct SlotNotFound(usize);

/// Where the slot starts in `object`'s bytes: each place that holds the
/// placeholder, at an instruction boundary.
fn find(object: &[u8]) -> Vec<usize> {
    let len = SLOT_INSNS * 8;
    (0..object.len().saturating_sub(len - 1))
        .step_by(8)
        .filter(|&at| {
            object[at..at + 8] == FIRST
                && object[at + 8..at + len]
                    .as_chunks::<8>()
                    .0
                    .iter()
                    .all(|i| *i == NOOP)
        })
        .collect()
}

/// A copy of `object` with `insns` at the front of its slot, in memory
/// aligned for the ELF reader (as `include_bytes_aligned!` is).
pub fn fill(object: &[u8], insns: &[Insn]) -> Result<AlignedObject, SlotNotFound> {
    // ELF sections start 8-aligned in the file, and so do instructions.
    let at = match find(object)[..] {
        [at] => at,
        ref all => return Err(SlotNotFound(all.len())),
    };
    let mut copy = AlignedObject::new(object);
    let bytes = copy.bytes_mut();
    for (i, insn) in insns.iter().take(SLOT_INSNS).enumerate() {
        bytes[at + 8 * i..at + 8 * i + 8].copy_from_slice(&insn.to_bytes());
    }
    Ok(copy)
}

/// An object's bytes, 8-aligned.
pub struct AlignedObject {
    words: Vec<u64>,
    len: usize,
}

impl AlignedObject {
    fn new(from: &[u8]) -> Self {
        let mut this = Self {
            words: vec![0; from.len().div_ceil(8)],
            len: from.len(),
        };
        this.bytes_mut().copy_from_slice(from);
        this
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: u64s are at least as aligned as bytes, and `len` bytes fit.
        unsafe { std::slice::from_raw_parts_mut(self.words.as_mut_ptr().cast::<u8>(), self.len) }
    }

    pub fn bytes(&self) -> &[u8] {
        // SAFETY: as in `bytes_mut`.
        unsafe { std::slice::from_raw_parts(self.words.as_ptr().cast::<u8>(), self.len) }
    }
}
