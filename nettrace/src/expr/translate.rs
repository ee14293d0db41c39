//! Classic BPF to eBPF, for the objects' expression slot.
//!
//! The slot's contract (`nettrace-ebpf/src/expr.rs`): r1 points at the
//! copied network header, r2 says how many of its bytes are valid, r3 is the
//! packet's length from the network header, r4 points at 16 words of stack
//! for classic BPF's `M[]`; the verdict goes in r0; r5-r9 are free. The
//! translation keeps classic BPF's A in r6 and X in r7, both 32-bit (every
//! operation on them is an `ALU`/`JMP32` one, which is also what keeps their
//! upper halves zero), and returns by jumping to its own end, where the
//! slot's unused no-ops run into the function's `exit`.
//!
//! Packet loads become bounds-checked loads from the copy. A load past the
//! valid bytes of a packet that really ends there does what classic BPF
//! does (no match); one past the copy of a packet that goes on is a packet
//! the expression cannot decide (`verdict::BEYOND_COPY`), counted by the
//! programs. Loads at constant offsets past the copy are refused here:
//! they could never be decided. The copy is the network header one, or for
//! a link-layer expression the one from the Ethernet header (`Link`): its
//! size bounds both.
//!
//! Classic BPF only jumps forward, so the translation has no loops and
//! every jump stays forward: what the verifier accepts without a second
//! look on every kernel since 5.1 (`JMP32`).

use nettrace_common::expr::{SCRATCH_WORDS, SLOT_INSNS, verdict};

use super::{Link, compile::Cbpf};

/// One eBPF instruction, as the kernel and the ELF object hold it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    pub dst: u8,
    pub src: u8,
    pub off: i16,
    pub imm: i32,
}

impl Insn {
    /// The 8 bytes of the instruction (little-endian, as on x86 and arm64).
    pub fn to_bytes(self) -> [u8; 8] {
        let mut b = [0; 8];
        b[0] = self.code;
        b[1] = (self.src << 4) | (self.dst & 0x0f);
        b[2..4].copy_from_slice(&self.off.to_le_bytes());
        b[4..8].copy_from_slice(&self.imm.to_le_bytes());
        b
    }
}

/// Why an expression cannot run in the kernel.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TranslateError {
    #[error(
        "the expression reads packet bytes up to offset {end} from the {from} header; nettrace copies the first {copied}"
    )]
    BeyondCopy {
        end: u64,
        copied: usize,
        from: &'static str,
    },
    #[error("the expression is too long for the kernel slot ({0} eBPF instructions, at most {SLOT_INSNS})")]
    TooLong(usize),
    #[error("libpcap produced an instruction nettrace does not translate (code {code:#06x} at {at})")]
    Unsupported { code: u16, at: usize },
    #[error("libpcap produced an invalid program ({0})")]
    Invalid(&'static str),
}

/// The translation and how many header bytes it reads.
#[derive(Debug)]
pub struct Translated {
    pub insns: Vec<Insn>,
    pub bytes: u16,
}

// Instruction classes, sizes, modes, operations (uapi `bpf_common.h`,
// `bpf.h`); classic and extended BPF share the low bits.
const LD: u16 = 0x00;
const LDX: u16 = 0x01;
const ST: u16 = 0x02;
const STX: u16 = 0x03;
const ALU: u16 = 0x04;
const JMP: u16 = 0x05;
const RET: u16 = 0x06;
const MISC: u16 = 0x07;
const JMP32: u8 = 0x06;
const ALU64: u8 = 0x07;

const W: u16 = 0x00;
const H: u16 = 0x08;
const B: u16 = 0x10;

const IMM: u16 = 0x00;
const ABS: u16 = 0x20;
const IND: u16 = 0x40;
const MEM: u16 = 0x60;
const LEN: u16 = 0x80;
const MSH: u16 = 0xa0;

const SRC_X: u16 = 0x08;
const RVAL_A: u16 = 0x10;

const OP_ADD: u8 = 0x00;
const OP_DIV: u8 = 0x30;
const OP_AND: u8 = 0x50;
const OP_LSH: u8 = 0x60;
const OP_RSH: u8 = 0x70;
const OP_NEG: u8 = 0x80;
const OP_MOD: u8 = 0x90;
const OP_MOV: u8 = 0xb0;
const OP_END: u8 = 0xd0;
const TO_BE: u8 = 0x08;

const JA: u8 = 0x00;
const JEQ: u8 = 0x10;
const JGT: u8 = 0x20;
const JGE: u8 = 0x30;
const JSET: u8 = 0x40;
const JNE: u8 = 0x50;
const JLT: u8 = 0xa0;
const JLE: u8 = 0xb0;

/// eBPF's `LDX|MEM` and `ST|MEM`, `STX|MEM` size bits.
const SZ_W: u8 = 0x00;
const SZ_H: u8 = 0x08;
const SZ_B: u8 = 0x10;

// The slot's registers.
const R_VERDICT: u8 = 0;
const R_HDR: u8 = 1;
const R_VALID: u8 = 2;
const R_LEN: u8 = 3;
const R_MEM: u8 = 4;
const R_A: u8 = 6;
const R_X: u8 = 7;
const R_ADDR: u8 = 8;
/// The end offset of the load that failed, for `Label::OutOfBounds`.
const R_END: u8 = 9;

/// Where a jump goes before offsets are known.
#[derive(Clone, Copy, Debug)]
enum Target {
    /// The first eBPF instruction of a classic one.
    Classic(usize),
    NoMatch,
    Match,
    /// A load ended past the valid bytes (`R_END` says where).
    OutOfBounds,
    /// The end of the translation: the verdict is in r0.
    Out,
}

/// An instruction whose jump offset is still a `Target`.
struct Pending {
    insn: Insn,
    target: Option<Target>,
}

struct Emitter {
    code: Vec<Pending>,
}

impl Emitter {
    fn op(&mut self, insn: Insn) {
        self.code.push(Pending { insn, target: None });
    }

    fn jump(&mut self, insn: Insn, target: Target) {
        self.code.push(Pending {
            insn,
            target: Some(target),
        });
    }

    fn alu32_k(&mut self, op: u8, dst: u8, k: u32) {
        self.op(insn(ALU as u8 | op, dst, 0, 0, k as i32));
    }

    fn alu32_x(&mut self, op: u8, dst: u8, src: u8) {
        self.op(insn(ALU as u8 | op | SRC_X as u8, dst, src, 0, 0));
    }

    fn alu64_k(&mut self, op: u8, dst: u8, k: i32) {
        self.op(insn(ALU64 | op, dst, 0, 0, k));
    }

    fn alu64_x(&mut self, op: u8, dst: u8, src: u8) {
        self.op(insn(ALU64 | op | SRC_X as u8, dst, src, 0, 0));
    }

    fn load(&mut self, size: u8, dst: u8, base: u8, off: i16) {
        self.op(insn(LDX as u8 | MEM as u8 | size, dst, base, off, 0));
    }

    fn goto(&mut self, target: Target) {
        self.jump(insn(JMP as u8 | JA, 0, 0, 0, 0), target);
    }

    /// `if dst <op> k goto target`, on the lower 32 bits.
    fn if32_k(&mut self, op: u8, dst: u8, k: u32, target: Target) {
        self.jump(insn(JMP32 | op, dst, 0, 0, k as i32), target);
    }

    fn if32_x(&mut self, op: u8, dst: u8, src: u8, target: Target) {
        self.jump(insn(JMP32 | op | SRC_X as u8, dst, src, 0, 0), target);
    }

    /// `if dst <op> src goto target`, on 64 bits.
    fn if64_x(&mut self, op: u8, dst: u8, src: u8, target: Target) {
        self.jump(insn(JMP as u8 | op | SRC_X as u8, dst, src, 0, 0), target);
    }

    fn if64_k(&mut self, op: u8, dst: u8, k: i32, target: Target) {
        self.jump(insn(JMP as u8 | op, dst, 0, 0, k), target);
    }

    /// A = big-endian value of `size` bytes at `base + off`, `base` already
    /// checked.
    fn load_be(&mut self, size: u16, base: u8, off: i16) {
        match size {
            W => {
                self.load(SZ_W, R_A, base, off);
                self.op(insn(ALU as u8 | OP_END | TO_BE, R_A, 0, 0, 32));
            }
            H => {
                self.load(SZ_H, R_A, base, off);
                self.op(insn(ALU as u8 | OP_END | TO_BE, R_A, 0, 0, 16));
            }
            _ => self.load(SZ_B, R_A, base, off),
        }
    }
}

const fn insn(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
    Insn {
        code,
        dst,
        src,
        off,
        imm,
    }
}

fn size_bytes(size: u16) -> u64 {
    match size {
        W => 4,
        H => 2,
        _ => 1,
    }
}

/// Translates a program libpcap compiled for `link`'s packets, to read a
/// copy of `link.copied()` bytes.
pub fn translate(prog: &[Cbpf], link: Link) -> Result<Translated, TranslateError> {
    check(prog)?;
    let copied = link.copied();
    let beyond = |end: u64| TranslateError::BeyondCopy {
        end,
        copied,
        from: match link {
            Link::Network => "IP",
            Link::Ethernet => "Ethernet",
        },
    };
    let mut e = Emitter { code: Vec::new() };
    let mut bytes: u64 = 1;
    // A, X and every scratch word the program reads start at 0, as in
    // classic BPF (and the verifier wants initialised stack).
    e.alu32_k(OP_MOV, R_A, 0);
    e.alu32_k(OP_MOV, R_X, 0);
    let mut used = [false; SCRATCH_WORDS];
    for i in prog
        .iter()
        .filter(|i| matches!(i.code & 0x07, LD | LDX | ST | STX))
    {
        if i.code & 0xe0 == MEM || matches!(i.code & 0x07, ST | STX) {
            used[i.k as usize] = true;
        }
    }
    for (w, _) in used.iter().enumerate().filter(|(_, u)| **u) {
        e.op(insn(ST as u8 | MEM as u8 | SZ_W, R_MEM, 0, (4 * w) as i16, 0));
    }
    let mut starts = Vec::with_capacity(prog.len());
    for (at, i) in prog.iter().enumerate() {
        starts.push(e.code.len());
        let next = |off: u8| Target::Classic(at + 1 + off as usize);
        let unsupported = TranslateError::Unsupported { code: i.code, at };
        match i.code & 0x07 {
            LD | LDX => {
                let dst = if i.code & 0x07 == LD { R_A } else { R_X };
                match (i.code & 0x07, i.code & 0xe0, i.code & 0x18) {
                    (_, IMM, W) => e.alu32_k(OP_MOV, dst, i.k),
                    (_, LEN, W) => e.alu32_x(OP_MOV, dst, R_LEN),
                    (_, MEM, W) => e.load(SZ_W, dst, R_MEM, (4 * i.k) as i16),
                    (LD, ABS, size) if size != 0x18 => {
                        let end = u64::from(i.k) + size_bytes(size);
                        if end > copied as u64 {
                            return Err(beyond(end));
                        }
                        bytes = bytes.max(end);
                        e.alu64_k(OP_MOV, R_END, end as i32);
                        e.if64_x(JGT, R_END, R_VALID, Target::OutOfBounds);
                        e.load_be(size, R_HDR, i.k as i16);
                    }
                    (LD, IND, size) if size != 0x18 => {
                        if i.k as usize >= copied {
                            return Err(beyond(u64::from(i.k) + size_bytes(size)));
                        }
                        // X can be anything the program computed: the whole
                        // copy may be read.
                        bytes = copied as u64;
                        let width = size_bytes(size) as i32;
                        e.alu64_x(OP_MOV, R_END, R_X);
                        e.alu64_k(OP_ADD, R_END, i.k as i32 + width);
                        e.if64_x(JGT, R_END, R_VALID, Target::OutOfBounds);
                        // Redundant at run time (the valid bytes never pass
                        // the copy), but what bounds the offset for the
                        // verifier.
                        e.if64_k(JGT, R_END, copied as i32, Target::OutOfBounds);
                        e.alu64_x(OP_MOV, R_ADDR, R_HDR);
                        e.alu64_x(OP_ADD, R_ADDR, R_END);
                        e.load_be(size, R_ADDR, -(width as i16));
                    }
                    (LDX, MSH, B) => {
                        let end = u64::from(i.k) + 1;
                        if end > copied as u64 {
                            return Err(beyond(end));
                        }
                        bytes = bytes.max(end);
                        e.alu64_k(OP_MOV, R_END, end as i32);
                        e.if64_x(JGT, R_END, R_VALID, Target::OutOfBounds);
                        e.load(SZ_B, R_X, R_HDR, i.k as i16);
                        e.alu32_k(OP_AND, R_X, 0x0f);
                        e.alu32_k(OP_LSH, R_X, 2);
                    }
                    _ => return Err(unsupported),
                }
            }
            ST => e.op(insn(
                STX as u8 | MEM as u8 | SZ_W,
                R_MEM,
                R_A,
                (4 * i.k) as i16,
                0,
            )),
            STX => e.op(insn(
                STX as u8 | MEM as u8 | SZ_W,
                R_MEM,
                R_X,
                (4 * i.k) as i16,
                0,
            )),
            ALU => {
                let op = (i.code & 0xf0) as u8;
                if op == OP_NEG {
                    e.op(insn(ALU as u8 | OP_NEG, R_A, 0, 0, 0));
                } else if op > 0xa0 {
                    return Err(unsupported);
                } else if i.code & SRC_X != 0 {
                    if op == OP_DIV || op == OP_MOD {
                        // Classic BPF ends with no match on a zero divisor;
                        // eBPF would go on with 0.
                        e.if32_k(JEQ, R_X, 0, Target::NoMatch);
                    }
                    e.alu32_x(op, R_A, R_X);
                } else {
                    if (op == OP_DIV || op == OP_MOD) && i.k == 0 {
                        return Err(TranslateError::Invalid("division by zero"));
                    }
                    if (op == OP_LSH || op == OP_RSH) && i.k >= 32 {
                        return Err(TranslateError::Invalid("shift by 32 or more"));
                    }
                    e.alu32_k(op, R_A, i.k);
                }
            }
            JMP => {
                let op = (i.code & 0xf0) as u8;
                if op == JA {
                    e.goto(Target::Classic(at + 1 + i.k as usize));
                    continue;
                }
                if !matches!(op, JEQ | JGT | JGE | JSET) {
                    return Err(unsupported);
                }
                let x = i.code & SRC_X != 0;
                let cond = |e: &mut Emitter, op: u8, target: Target| {
                    if x {
                        e.if32_x(op, R_A, R_X, target);
                    } else {
                        e.if32_k(op, R_A, i.k, target);
                    }
                };
                // The fall-through case costs no jump.
                let inverse = match op {
                    JEQ => Some(JNE),
                    JGT => Some(JLE),
                    JGE => Some(JLT),
                    _ => None,
                };
                match (i.jt, i.jf, inverse) {
                    (_, 0, _) => cond(&mut e, op, next(i.jt)),
                    (0, _, Some(inv)) => cond(&mut e, inv, next(i.jf)),
                    _ => {
                        cond(&mut e, op, next(i.jt));
                        e.goto(next(i.jf));
                    }
                }
            }
            RET => match i.code & 0x18 {
                0 => e.goto(if i.k == 0 { Target::NoMatch } else { Target::Match }),
                RVAL_A => {
                    e.if32_k(JEQ, R_A, 0, Target::NoMatch);
                    e.goto(Target::Match);
                }
                _ => return Err(unsupported),
            },
            MISC => match i.code & 0xf8 {
                0x00 => e.alu32_x(OP_MOV, R_X, R_A),
                0x80 => e.alu32_x(OP_MOV, R_A, R_X),
                _ => return Err(unsupported),
            },
            _ => return Err(unsupported),
        }
    }
    // The verdicts. An out-of-bounds load of a packet that has the bytes
    // (they lie past the copy) cannot be decided; one of a shorter packet
    // is no match, as in classic BPF.
    let no_match = e.code.len();
    e.alu64_k(OP_MOV, R_VERDICT, verdict::NO_MATCH as i32);
    e.goto(Target::Out);
    let matched = e.code.len();
    e.alu64_k(OP_MOV, R_VERDICT, verdict::MATCH as i32);
    e.goto(Target::Out);
    let out_of_bounds = e.code.len();
    e.if64_x(JGT, R_END, R_LEN, Target::NoMatch);
    e.alu64_k(OP_MOV, R_VERDICT, verdict::BEYOND_COPY as i32);
    let out = e.code.len();
    if out > SLOT_INSNS {
        return Err(TranslateError::TooLong(out));
    }
    let resolve = |t: Target| match t {
        Target::Classic(i) => starts[i],
        Target::NoMatch => no_match,
        Target::Match => matched,
        Target::OutOfBounds => out_of_bounds,
        Target::Out => out,
    };
    let insns = e
        .code
        .iter()
        .enumerate()
        .map(|(at, p)| {
            let mut insn = p.insn;
            if let Some(t) = p.target {
                insn.off = (resolve(t) as isize - at as isize - 1) as i16;
            }
            insn
        })
        .collect();
    Ok(Translated {
        insns,
        bytes: bytes as u16,
    })
}

/// What the translation relies on: jumps inside the program, scratch
/// indexes inside `M[]`, a return at the end.
fn check(prog: &[Cbpf]) -> Result<(), TranslateError> {
    let Some(last) = prog.last() else {
        return Err(TranslateError::Invalid("empty program"));
    };
    if last.code & 0x07 != RET {
        return Err(TranslateError::Invalid("does not end with a return"));
    }
    for (at, i) in prog.iter().enumerate() {
        let class = i.code & 0x07;
        if class == JMP {
            let far = if i.code & 0xf0 == 0 {
                i.k as usize
            } else {
                usize::from(i.jt.max(i.jf))
            };
            if at + 1 + far >= prog.len() {
                return Err(TranslateError::Invalid("jump out of the program"));
            }
        }
        let scratch = matches!(class, ST | STX) || (matches!(class, LD | LDX) && i.code & 0xe0 == MEM);
        if scratch && i.k as usize >= SCRATCH_WORDS {
            return Err(TranslateError::Invalid("scratch memory index out of range"));
        }
    }
    Ok(())
}
