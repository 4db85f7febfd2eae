//! eBPF instruction encoding (`struct bpf_insn`, linux/bpf_common.h and
//! linux/bpf.h) and a tiny assembler with forward labels.
//!
//! Guarantees: [`to_bytes`] and [`from_bytes`] are exact inverses on whole
//! instructions, in the host's byte order (the kernel's); the register
//! nibbles sit where the kernel's bitfields put them on either endianness.
//! [`Asm::finish`] resolves every jump to its label or fails with an
//! [`AsmError`] naming the jump; it never emits a wrong offset.

/// One `struct bpf_insn`: opcode, dst/src register nibbles, 16-bit offset,
/// 32-bit immediate, laid out as the kernel's (8 bytes, no padding).
#[repr(C)]
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Insn {
    pub code: u8,
    regs: u8,
    pub off: i16,
    pub imm: i32,
}

/// Bytes per instruction (`struct bpf_insn`).
pub const INSN_SIZE: usize = 8;

const _: () = assert!(std::mem::size_of::<Insn>() == INSN_SIZE);

// Instruction classes.
pub const LD: u8 = 0x00;
pub const LDX: u8 = 0x01;
pub const ST: u8 = 0x02;
pub const STX: u8 = 0x03;
pub const ALU: u8 = 0x04;
pub const JMP: u8 = 0x05;
pub const JMP32: u8 = 0x06;
pub const ALU64: u8 = 0x07;

// Sizes and modes (load/store).
pub const SIZE_W: u8 = 0x00;
pub const SIZE_H: u8 = 0x08;
pub const SIZE_B: u8 = 0x10;
pub const SIZE_DW: u8 = 0x18;
pub const MODE_IMM: u8 = 0x00;
pub const MODE_MEM: u8 = 0x60;

// Operand source.
pub const K: u8 = 0x00;
pub const X: u8 = 0x08;

// ALU operations.
pub const ADD: u8 = 0x00;
pub const SUB: u8 = 0x10;
pub const MUL: u8 = 0x20;
pub const DIV: u8 = 0x30;
pub const OR: u8 = 0x40;
pub const AND: u8 = 0x50;
pub const LSH: u8 = 0x60;
pub const RSH: u8 = 0x70;
pub const NEG: u8 = 0x80;
pub const MOD: u8 = 0x90;
pub const XOR: u8 = 0xa0;
pub const MOV: u8 = 0xb0;
pub const ARSH: u8 = 0xc0;
pub const END: u8 = 0xd0;

// Jump operations.
pub const JA: u8 = 0x00;
pub const JEQ: u8 = 0x10;
pub const JGT: u8 = 0x20;
pub const JGE: u8 = 0x30;
pub const JSET: u8 = 0x40;
pub const JNE: u8 = 0x50;
pub const JSGT: u8 = 0x60;
pub const JSGE: u8 = 0x70;
pub const CALL: u8 = 0x80;
pub const EXIT: u8 = 0x90;
pub const JLT: u8 = 0xa0;
pub const JLE: u8 = 0xb0;
pub const JSLT: u8 = 0xc0;
pub const JSLE: u8 = 0xd0;

/// Registers: R0 return value, R1 context pointer on entry, R10 frame pointer.
/// R11 (BPF_REG_AX) only appears in kernel-rewritten (constant-blinded) code.
pub const R0: u8 = 0;
pub const R1: u8 = 1;
pub const R2: u8 = 2;
pub const R3: u8 = 3;
pub const R4: u8 = 4;
pub const R5: u8 = 5;
pub const R10: u8 = 10;

pub fn class(code: u8) -> u8 {
    code & 0x07
}

impl Insn {
    pub fn new(code: u8, dst: u8, src: u8, off: i16, imm: i32) -> Insn {
        Insn {
            code,
            regs: regs(dst, src),
            off,
            imm,
        }
    }

    pub fn dst(&self) -> u8 {
        if cfg!(target_endian = "little") {
            self.regs & 0x0f
        } else {
            self.regs >> 4
        }
    }

    pub fn src(&self) -> u8 {
        if cfg!(target_endian = "little") {
            self.regs >> 4
        } else {
            self.regs & 0x0f
        }
    }
}

/// The dst_reg:4 / src_reg:4 bitfields: dst is the low nibble on
/// little-endian targets, the high nibble on big-endian ones.
fn regs(dst: u8, src: u8) -> u8 {
    if cfg!(target_endian = "little") {
        (src << 4) | (dst & 0x0f)
    } else {
        (dst << 4) | (src & 0x0f)
    }
}

impl std::fmt::Debug for Insn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{{code {:#04x} dst r{} src r{} off {} imm {}}}",
            self.code,
            self.dst(),
            self.src(),
            self.off,
            self.imm
        )
    }
}

/// `dst = *(u32 *)(src + off)`
pub fn ldx_w(dst: u8, src: u8, off: i16) -> Insn {
    Insn::new(LDX | MODE_MEM | SIZE_W, dst, src, off, 0)
}

/// 32-bit ALU with an immediate: `wDST op= imm`.
pub fn alu32_k(op: u8, dst: u8, imm: i32) -> Insn {
    Insn::new(ALU | op | K, dst, 0, 0, imm)
}

/// 32-bit ALU with a register: `wDST op= wSRC`.
pub fn alu32_x(op: u8, dst: u8, src: u8) -> Insn {
    Insn::new(ALU | op | X, dst, src, 0, 0)
}

/// 64-bit ALU with an immediate.
pub fn alu64_k(op: u8, dst: u8, imm: i32) -> Insn {
    Insn::new(ALU64 | op | K, dst, 0, 0, imm)
}

/// 64-bit ALU with a register.
pub fn alu64_x(op: u8, dst: u8, src: u8) -> Insn {
    Insn::new(ALU64 | op | X, dst, src, 0, 0)
}

pub fn exit() -> Insn {
    Insn::new(JMP | EXIT, 0, 0, 0, 0)
}

/// The bytes of a program as the kernel wants them (`struct bpf_insn` in
/// the host's byte order), [`INSN_SIZE`] per instruction.
pub fn to_bytes(prog: &[Insn]) -> Vec<u8> {
    let mut out = Vec::with_capacity(prog.len() * INSN_SIZE);
    for i in prog {
        out.push(i.code);
        out.push(i.regs);
        out.extend_from_slice(&i.off.to_ne_bytes());
        out.extend_from_slice(&i.imm.to_ne_bytes());
    }
    out
}

/// Reads `struct bpf_insn`s from the kernel's byte dump; a trailing partial
/// instruction is ignored.
pub fn from_bytes(bytes: &[u8]) -> Vec<Insn> {
    bytes
        .chunks_exact(INSN_SIZE)
        .map(|c| Insn {
            code: c[0],
            regs: c[1],
            off: i16::from_ne_bytes([c[2], c[3]]),
            imm: i32::from_ne_bytes([c[4], c[5], c[6], c[7]]),
        })
        .collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Label(usize);

/// Forward jumps resolved to relative offsets at the end.
#[derive(Default)]
pub struct Asm {
    insns: Vec<Insn>,
    labels: Vec<Option<usize>>,
    fixups: Vec<(usize, Label)>,
}

/// Why [`Asm::finish`] could not resolve a jump.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AsmError {
    /// The jump at instruction `at` would need offset `off`, which does not
    /// fit the 16-bit offset field.
    #[error("the jump at instruction {at} needs offset {off}, beyond the 16-bit offset field")]
    JumpTooFar { at: usize, off: i64 },
    /// The jump at instruction `at` goes to a label never bound (or made by
    /// another assembler).
    #[error("the jump at instruction {at} goes to label {label}, which is not bound")]
    Unbound { at: usize, label: usize },
}

impl Asm {
    pub fn push(&mut self, insn: Insn) {
        self.insns.push(insn);
    }

    /// A new label, to be bound once with [`Asm::bind`].
    pub fn label(&mut self) -> Label {
        self.labels.push(None);
        Label(self.labels.len() - 1)
    }

    /// Binds `l` to the next instruction pushed. A label this assembler did
    /// not make stays unbound (and [`Asm::finish`] says so).
    pub fn bind(&mut self, l: Label) {
        let here = self.insns.len();
        if let Some(slot) = self.labels.get_mut(l.0) {
            *slot = Some(here);
        }
    }

    /// A conditional jump (`class` JMP or JMP32, `op` e.g. JNE) of `dst`
    /// against an immediate, to `target`.
    pub fn jmp_k(&mut self, class: u8, op: u8, dst: u8, imm: i32, target: Label) {
        self.fixups.push((self.insns.len(), target));
        self.insns.push(Insn::new(class | op | K, dst, 0, 0, imm));
    }

    /// A conditional jump of `dst` against register `src`.
    pub fn jmp_x(&mut self, class: u8, op: u8, dst: u8, src: u8, target: Label) {
        self.fixups.push((self.insns.len(), target));
        self.insns.push(Insn::new(class | op | X, dst, src, 0, 0));
    }

    /// `goto target`
    pub fn ja(&mut self, target: Label) {
        self.fixups.push((self.insns.len(), target));
        self.insns.push(Insn::new(JMP | JA, 0, 0, 0, 0));
    }

    /// The program, every jump's offset filled in.
    pub fn finish(mut self) -> Result<Vec<Insn>, AsmError> {
        for (at, label) in self.fixups {
            let target = self
                .labels
                .get(label.0)
                .copied()
                .flatten()
                .ok_or(AsmError::Unbound { at, label: label.0 })?;
            let off = target as i64 - (at as i64 + 1);
            let off = i16::try_from(off).map_err(|_| AsmError::JumpTooFar { at, off })?;
            if let Some(insn) = self.insns.get_mut(at) {
                insn.off = off;
            }
        }
        Ok(self.insns)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn register_nibbles_round_trip() {
        let i = Insn::new(ALU64 | MOV | X, 3, 10, -2, 7);
        assert_eq!((i.dst(), i.src(), i.off, i.imm), (3, 10, -2, 7));
        let back = from_bytes(&to_bytes(&[i]));
        assert_eq!(back, vec![i]);
        // linux/bpf.h: dst_reg is the low nibble of byte 1 on little-endian.
        if cfg!(target_endian = "little") {
            assert_eq!(to_bytes(&[i]), [0xbf, 0xa3, 0xfe, 0xff, 7, 0, 0, 0]);
        }
    }

    #[test]
    fn labels_resolve_to_relative_offsets() {
        let mut a = Asm::default();
        let end = a.label();
        a.ja(end);
        a.push(exit());
        a.bind(end);
        a.push(exit());
        let p = a.finish().unwrap();
        assert_eq!(p[0].off, 1);
    }

    #[test]
    fn unbound_and_far_jumps_are_errors() {
        let mut a = Asm::default();
        let nowhere = a.label();
        a.ja(nowhere);
        assert_eq!(a.finish(), Err(AsmError::Unbound { at: 0, label: 0 }));
        // A label from another assembler is not this one's.
        let mut other = Asm::default();
        let foreign = other.label();
        let mut a = Asm::default();
        a.bind(foreign);
        a.ja(foreign);
        assert_eq!(a.finish(), Err(AsmError::Unbound { at: 0, label: 0 }));
        let mut a = Asm::default();
        let far = a.label();
        a.ja(far);
        for _ in 0..=i16::MAX as usize {
            a.push(exit());
        }
        a.bind(far);
        a.push(exit());
        assert_eq!(
            a.finish(),
            Err(AsmError::JumpTooFar {
                at: 0,
                off: i16::MAX as i64 + 1
            })
        );
    }
}
