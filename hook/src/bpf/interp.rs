//! A small interpreter for BPF_PROG_TYPE_CGROUP_DEVICE programs: the subset
//! that device filters (runc, crun, systemd, ours) are made of. Whatever it
//! does not model yields [`Verdict::Unknown`], which callers treat as "denies".
//!
//! Guarantees: [`run`] never panics, whatever the program and context (no
//! unchecked arithmetic on anything the program controls; property-tested in
//! `fuzz.rs`) and always ends (a step limit); for a program the verifier
//! accepts, an Allow or Deny is the kernel's answer (checked against a real
//! runc program as the kernel dumped it). 32- and 64-bit operations go
//! through one table ([`alu`], [`cond`]) at a [`Width`]: the operands are
//! cut to the width, the operation done on 64 bits, the result cut again,
//! which is what the 32-bit instructions do (their results zero-extended).

use super::insn::*;

/// `struct bpf_cgroup_dev_ctx` (linux/bpf.h): `access_type` is
/// `(BPF_DEVCG_ACC_* << 16) | BPF_DEVCG_DEV_*`, then `major`, `minor`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DevCtx {
    pub access_type: u32,
    pub major: u32,
    pub minor: u32,
}

pub const DEV_BLOCK: u32 = 1;
pub const DEV_CHAR: u32 = 2;
pub const ACC_MKNOD: u32 = 1;
pub const ACC_READ: u32 = 2;
pub const ACC_WRITE: u32 = 4;
pub const ACC_ALL: u32 = ACC_MKNOD | ACC_READ | ACC_WRITE;
const CTX_SIZE: i64 = 12;

impl DevCtx {
    pub fn new(dev_type: u32, access: u32, major: u32, minor: u32) -> DevCtx {
        DevCtx {
            access_type: (access << 16) | dev_type,
            major,
            minor,
        }
    }

    fn bytes(&self) -> [u8; CTX_SIZE as usize] {
        let mut b = [0u8; CTX_SIZE as usize];
        b[0..4].copy_from_slice(&self.access_type.to_ne_bytes());
        b[4..8].copy_from_slice(&self.major.to_ne_bytes());
        b[8..12].copy_from_slice(&self.minor.to_ne_bytes());
        b
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    Allow,
    Deny,
    /// The program did something outside the modelled subset (the reason).
    Unknown(String),
}

#[derive(Clone, Copy, Debug)]
enum Val {
    Uninit,
    Scalar(u64),
    /// Pointer into the context, at this byte offset.
    Ctx(i64),
    /// The frame pointer or anything else we do not model.
    Opaque,
}

/// Device programs have no loops; this only guards against a bad jump.
const MAX_STEPS: usize = 1 << 16;

/// Runs `prog` on `ctx`. The kernel allows the access when the returned
/// value has bit 0 set (the verifier restricts it to 0 or 1).
pub fn run(prog: &[Insn], ctx: DevCtx) -> Verdict {
    match exec(prog, ctx) {
        Ok(r0) if r0 & 1 == 1 => Verdict::Allow,
        Ok(_) => Verdict::Deny,
        Err(why) => Verdict::Unknown(why),
    }
}

/// Does `prog` allow `access` (any combination of ACC_* bits) on char device
/// major:minor?
pub fn allows_char(prog: &[Insn], major: u32, minor: u32, access: u32) -> bool {
    run(prog, DevCtx::new(DEV_CHAR, access, major, minor)) == Verdict::Allow
}

/// Does `prog` allow every non-empty combination of read, write and mknod on
/// char device major:minor? (A program may test the access bits any way it
/// likes, so "rwm" alone is not enough.)
pub fn allows_char_rwm(prog: &[Insn], major: u32, minor: u32) -> bool {
    (1..=ACC_ALL).all(|acc| allows_char(prog, major, minor, acc))
}

fn exec(prog: &[Insn], ctx: DevCtx) -> Result<u64, String> {
    let ctx_bytes = ctx.bytes();
    // R11 is BPF_REG_AX: it shows up in the dump of a program whose
    // constants the kernel blinded (bpf_jit_harden), as a plain scratch
    // register; modelling it keeps such programs readable.
    let mut r = [Val::Uninit; 12];
    r[R1 as usize] = Val::Ctx(0);
    r[R10 as usize] = Val::Opaque;
    let mut pc: usize = 0;
    for _ in 0..MAX_STEPS {
        let i = *prog
            .get(pc)
            .ok_or_else(|| format!("pc {pc} outside the program"))?;
        let (dst, src) = (i.dst() as usize, i.src() as usize);
        if dst > 11 || src > 11 {
            return Err(format!("insn {pc}: register beyond r11: {i:?}"));
        }
        let scalar = |v: Val, what: &str| match v {
            Val::Scalar(x) => Ok(x),
            other => Err(format!(
                "insn {pc}: {what} is {other:?}, not a scalar: {i:?}"
            )),
        };
        let op = i.code & 0xf0;
        let next = pc + 1;
        match class(i.code) {
            c @ (ALU | ALU64) => {
                let w = if c == ALU64 { Width::W64 } else { Width::W32 };
                if op == END {
                    let x = scalar(r[dst], "dst")?;
                    r[dst] = Val::Scalar(endian(w, i.code & X != 0, i.imm, x)?);
                    pc = next;
                    continue;
                }
                if i.off != 0 {
                    // Signed div/mod and movsx (cpu v4).
                    return Err(format!("insn {pc}: ALU with non-zero offset: {i:?}"));
                }
                let operand = if i.code & X != 0 {
                    r[src]
                } else {
                    // The immediate is sign-extended to 64 bits, then cut
                    // to the width like any operand.
                    Val::Scalar(i.imm as i64 as u64)
                };
                r[dst] = match (op, r[dst], operand) {
                    (MOV, _, Val::Scalar(v)) => Val::Scalar(w.cut(v)),
                    (MOV, _, v @ (Val::Ctx(_) | Val::Opaque)) if w == Width::W64 => v,
                    (ADD | SUB, Val::Ctx(base), Val::Scalar(v)) if w == Width::W64 => {
                        // 64-bit pointer arithmetic wraps; only a load checks
                        // that the result points into the context.
                        let v = v as i64;
                        Val::Ctx(if op == ADD {
                            base.wrapping_add(v)
                        } else {
                            base.wrapping_sub(v)
                        })
                    }
                    (_, Val::Scalar(a), Val::Scalar(b)) => Val::Scalar(
                        alu(w, op, a, b)
                            .ok_or_else(|| format!("insn {pc}: unknown ALU op: {i:?}"))?,
                    ),
                    (NEG, Val::Scalar(a), _) => Val::Scalar(
                        alu(w, op, a, 0)
                            .ok_or_else(|| format!("insn {pc}: unknown ALU op: {i:?}"))?,
                    ),
                    (_, d, s) => {
                        return Err(format!(
                            "insn {pc}: ALU on non-scalars ({d:?}, {s:?}): {i:?}"
                        ))
                    }
                };
                pc = next;
            }
            LDX => {
                let size = match i.code {
                    x if x == LDX | MODE_MEM | SIZE_W => 4,
                    x if x == LDX | MODE_MEM | SIZE_H => 2,
                    x if x == LDX | MODE_MEM | SIZE_B => 1,
                    _ => return Err(format!("insn {pc}: unsupported load: {i:?}")),
                };
                let Val::Ctx(base) = r[src] else {
                    return Err(format!("insn {pc}: load not from the context: {i:?}"));
                };
                let at = base.checked_add(i.off as i64).unwrap_or(-1);
                if at < 0 || at > CTX_SIZE - size {
                    return Err(format!("insn {pc}: context load out of bounds: {i:?}"));
                }
                let mut v = [0u8; 8];
                let at = at as usize;
                let size = size as usize;
                if cfg!(target_endian = "little") {
                    v[..size].copy_from_slice(&ctx_bytes[at..at + size]);
                    r[dst] = Val::Scalar(u64::from_le_bytes(v));
                } else {
                    v[8 - size..].copy_from_slice(&ctx_bytes[at..at + size]);
                    r[dst] = Val::Scalar(u64::from_be_bytes(v));
                }
                pc = next;
            }
            c @ (JMP | JMP32) => {
                let is32 = c == JMP32;
                match op {
                    EXIT if c == JMP => return scalar(r[R0 as usize], "r0 at exit"),
                    JA => {
                        // JMP32 JA ("gotol") carries its offset in imm.
                        let off = if is32 { i.imm as i64 } else { i.off as i64 };
                        pc = jump(pc, off, prog.len())?;
                    }
                    CALL | EXIT => return Err(format!("insn {pc}: unsupported: {i:?}")),
                    _ => {
                        let a = scalar(r[dst], "jump dst")?;
                        let b = if i.code & X != 0 {
                            scalar(r[src], "jump src")?
                        } else {
                            i.imm as i64 as u64
                        };
                        let w = if is32 { Width::W32 } else { Width::W64 };
                        let taken = cond(w, op, a, b)
                            .ok_or_else(|| format!("insn {pc}: unknown jump: {i:?}"))?;
                        pc = if taken {
                            jump(pc, i.off as i64, prog.len())?
                        } else {
                            next
                        };
                    }
                }
            }
            _ => return Err(format!("insn {pc}: unsupported class: {i:?}")),
        }
    }
    Err("step limit reached".to_string())
}

fn jump(pc: usize, off: i64, len: usize) -> Result<usize, String> {
    let t = pc as i64 + 1 + off;
    if t < 0 || t as usize >= len {
        return Err(format!("insn {pc}: jump outside the program"));
    }
    Ok(t as usize)
}

/// The width of an ALU or jump instruction: ALU/JMP32 work on the low 32
/// bits, ALU64/JMP on all 64.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Width {
    W32,
    W64,
}

impl Width {
    fn bits(self) -> u32 {
        match self {
            Width::W32 => 32,
            Width::W64 => 64,
        }
    }

    /// `x` cut to the width, zero-extended.
    pub fn cut(self, x: u64) -> u64 {
        match self {
            Width::W32 => x as u32 as u64,
            Width::W64 => x,
        }
    }

    /// `x` cut to the width, sign-extended.
    pub fn signed(self, x: u64) -> i64 {
        match self {
            Width::W32 => x as u32 as i32 as i64,
            Width::W64 => x as i64,
        }
    }
}

/// The one ALU table, for both widths: `a op b` on the operands cut to `w`,
/// the result cut to `w` (so 32-bit results are zero-extended). Additions,
/// products, shifts left and negation keep only low bits, which depend only
/// on the operands' low bits; division, remainder and right shifts of
/// zero-extended operands stay within them; arithmetic shifts sign-extend
/// from the width first. Shift counts are masked to the width (as the
/// kernel's interpreter does), division by zero gives 0 and remainder by
/// zero leaves `a` (the eBPF rules). `None` for an op outside the table.
pub fn alu(w: Width, op: u8, a: u64, b: u64) -> Option<u64> {
    let (a, b) = (w.cut(a), w.cut(b));
    let sh = (b & u64::from(w.bits() - 1)) as u32;
    let r = match op {
        ADD => a.wrapping_add(b),
        SUB => a.wrapping_sub(b),
        MUL => a.wrapping_mul(b),
        DIV => a.checked_div(b).unwrap_or(0),
        MOD => a.checked_rem(b).unwrap_or(a),
        OR => a | b,
        AND => a & b,
        XOR => a ^ b,
        MOV => b,
        LSH => a << sh,
        RSH => a >> sh,
        ARSH => (w.signed(a) >> sh) as u64,
        NEG => a.wrapping_neg(),
        _ => return None,
    };
    Some(w.cut(r))
}

/// BPF_END: ALU class converts to little (BPF_TO_LE) or big (BPF_TO_BE)
/// endian and truncates to `imm` bits; ALU64 class swaps unconditionally.
fn endian(w: Width, to_be: bool, bits: i32, x: u64) -> Result<u64, String> {
    let swap = w == Width::W64 || (to_be == cfg!(target_endian = "little"));
    Ok(match (bits, swap) {
        (16, false) => x as u16 as u64,
        (32, false) => x as u32 as u64,
        (64, false) => x,
        (16, true) => (x as u16).swap_bytes() as u64,
        (32, true) => (x as u32).swap_bytes() as u64,
        (64, true) => x.swap_bytes(),
        _ => return Err(format!("BPF_END with width {bits}")),
    })
}

/// The one table of conditional jumps, for both widths: the operands cut to
/// `w`, zero-extended for the unsigned tests and sign-extended for the
/// signed ones (JMP32 compares the low halves). `None` for an op outside
/// the table.
pub fn cond(w: Width, op: u8, a: u64, b: u64) -> Option<bool> {
    let (ua, ub, sa, sb) = (w.cut(a), w.cut(b), w.signed(a), w.signed(b));
    Some(match op {
        JEQ => ua == ub,
        JNE => ua != ub,
        JGT => ua > ub,
        JGE => ua >= ub,
        JLT => ua < ub,
        JLE => ua <= ub,
        JSET => ua & ub != 0,
        JSGT => sa > sb,
        JSGE => sa >= sb,
        JSLT => sa < sb,
        JSLE => sa <= sb,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ret(v: i32) -> Vec<Insn> {
        vec![alu64_k(MOV, R0, v), exit()]
    }

    /// The one table against native u32 and u64 arithmetic (what the two
    /// tables it replaced computed), on values at the edges.
    #[test]
    fn one_alu_table_matches_native_32_and_64_bit_arithmetic() {
        let edges: [u64; 12] = [
            0,
            1,
            2,
            31,
            32,
            63,
            0x7fff_ffff,
            0x8000_0000,
            0xffff_ffff,
            0x1_0000_0001,
            0x8000_0000_0000_0000,
            u64::MAX,
        ];
        let ops = [
            ADD, SUB, MUL, DIV, OR, AND, LSH, RSH, NEG, MOD, XOR, MOV, ARSH,
        ];
        for &a in &edges {
            for &b in &edges {
                for op in ops {
                    let (a32, b32) = (a as u32, b as u32);
                    let want32 = match op {
                        ADD => a32.wrapping_add(b32),
                        SUB => a32.wrapping_sub(b32),
                        MUL => a32.wrapping_mul(b32),
                        DIV => a32.checked_div(b32).unwrap_or(0),
                        MOD => a32.checked_rem(b32).unwrap_or(a32),
                        OR => a32 | b32,
                        AND => a32 & b32,
                        XOR => a32 ^ b32,
                        MOV => b32,
                        LSH => a32 << (b32 & 31),
                        RSH => a32 >> (b32 & 31),
                        ARSH => ((a32 as i32) >> (b32 & 31)) as u32,
                        NEG => (a32 as i32).wrapping_neg() as u32,
                        _ => unreachable!(),
                    } as u64;
                    let want64 = match op {
                        ADD => a.wrapping_add(b),
                        SUB => a.wrapping_sub(b),
                        MUL => a.wrapping_mul(b),
                        DIV => a.checked_div(b).unwrap_or(0),
                        MOD => a.checked_rem(b).unwrap_or(a),
                        OR => a | b,
                        AND => a & b,
                        XOR => a ^ b,
                        MOV => b,
                        LSH => a << (b & 63),
                        RSH => a >> (b & 63),
                        ARSH => ((a as i64) >> (b & 63)) as u64,
                        NEG => (a as i64).wrapping_neg() as u64,
                        _ => unreachable!(),
                    };
                    let ctx = format!("op {op:#x} a {a:#x} b {b:#x}");
                    assert_eq!(alu(Width::W32, op, a, b), Some(want32), "32: {ctx}");
                    assert_eq!(alu(Width::W64, op, a, b), Some(want64), "64: {ctx}");
                }
                for op in [JEQ, JNE, JGT, JGE, JLT, JLE, JSET, JSGT, JSGE, JSLT, JSLE] {
                    let (a32, b32) = (a as u32, b as u32);
                    let (s32a, s32b) = (a32 as i32, b32 as i32);
                    let (s64a, s64b) = (a as i64, b as i64);
                    let want = |ua: u64, ub: u64, sa: i64, sb: i64| match op {
                        JEQ => ua == ub,
                        JNE => ua != ub,
                        JGT => ua > ub,
                        JGE => ua >= ub,
                        JLT => ua < ub,
                        JLE => ua <= ub,
                        JSET => ua & ub != 0,
                        JSGT => sa > sb,
                        JSGE => sa >= sb,
                        JSLT => sa < sb,
                        JSLE => sa <= sb,
                        _ => unreachable!(),
                    };
                    let w32 = want(a32.into(), b32.into(), s32a.into(), s32b.into());
                    let w64 = want(a, b, s64a, s64b);
                    assert_eq!(
                        cond(Width::W32, op, a, b),
                        Some(w32),
                        "{op:#x} {a:#x} {b:#x}"
                    );
                    assert_eq!(
                        cond(Width::W64, op, a, b),
                        Some(w64),
                        "{op:#x} {a:#x} {b:#x}"
                    );
                }
            }
        }
        assert_eq!(alu(Width::W64, END, 1, 1), None);
        assert_eq!(cond(Width::W32, CALL, 1, 1), None);
    }

    #[test]
    fn constant_programs() {
        let ctx = DevCtx::new(DEV_CHAR, ACC_READ, 1, 3);
        assert_eq!(run(&ret(1), ctx), Verdict::Allow);
        assert_eq!(run(&ret(0), ctx), Verdict::Deny);
    }

    #[test]
    fn reads_the_context_fields() {
        // r2 = access_type & 0xffff; r3 = access_type >> 16; r0 = major*1000+minor+type*100+access*10
        let p = vec![
            ldx_w(R2, R1, 0),
            alu32_k(AND, R2, 0xffff),
            ldx_w(R3, R1, 0),
            alu32_k(RSH, R3, 16),
            ldx_w(R4, R1, 4),
            ldx_w(R5, R1, 8),
            alu64_k(MUL, R4, 1000),
            alu64_k(MUL, R2, 100),
            alu64_k(MUL, R3, 10),
            alu64_x(ADD, R4, R5),
            alu64_x(ADD, R4, R2),
            alu64_x(ADD, R4, R3),
            alu64_x(MOV, R0, R4),
            exit(),
        ];
        assert_eq!(exec(&p, DevCtx::new(DEV_CHAR, ACC_WRITE, 7, 5)), Ok(7245));
        // Narrow loads of access_type (allowed by the verifier for this field).
        let p = vec![Insn::new(LDX | MODE_MEM | SIZE_H, R0, R1, 2, 0), exit()];
        assert_eq!(exec(&p, DevCtx::new(DEV_BLOCK, ACC_MKNOD, 0, 0)), Ok(1));
        let p = vec![Insn::new(LDX | MODE_MEM | SIZE_B, R0, R1, 0, 0), exit()];
        assert_eq!(exec(&p, DevCtx::new(DEV_BLOCK, ACC_MKNOD, 0, 0)), Ok(1));
    }

    #[test]
    fn unknown_things_are_unknown() {
        let ctx = DevCtx::new(DEV_CHAR, ACC_READ, 1, 3);
        let call = vec![Insn::new(JMP | CALL, 0, 0, 0, 14), exit()];
        assert!(matches!(run(&call, ctx), Verdict::Unknown(_)));
        let uninit = vec![alu64_x(MOV, R0, R2), exit()];
        assert!(matches!(run(&uninit, ctx), Verdict::Unknown(_)));
        let stack = vec![ldx_w(R0, R10, -4), exit()];
        assert!(matches!(run(&stack, ctx), Verdict::Unknown(_)));
        let oob = vec![ldx_w(R0, R1, 12), exit()];
        assert!(matches!(run(&oob, ctx), Verdict::Unknown(_)));
        let fall_off = vec![alu64_k(MOV, R0, 1)];
        assert!(matches!(run(&fall_off, ctx), Verdict::Unknown(_)));
        let loop_forever = vec![alu64_k(MOV, R0, 1), Insn::new(JMP | JA, 0, 0, -1, 0)];
        assert!(matches!(run(&loop_forever, ctx), Verdict::Unknown(_)));
        let r12 = vec![Insn::new(ALU64 | MOV | K, 12, 0, 0, 1), exit()];
        assert!(matches!(run(&r12, ctx), Verdict::Unknown(_)));
    }

    #[test]
    fn blinded_constants_through_ax() {
        // What bpf_jit_harden makes of `w2 &= 0xffff; if r2 != 2 goto +1`:
        // the immediates go through AX (r11) xor-ed with a random value.
        const AX: u8 = 11;
        let rnd = 0x5a5a_1234;
        let p = vec![
            ldx_w(R2, R1, 0),
            alu32_k(MOV, AX, 0xffff ^ rnd),
            alu32_k(XOR, AX, rnd),
            Insn::new(ALU | AND | X, R2, AX, 0, 0),
            alu64_k(MOV, AX, 2 ^ rnd),
            alu64_k(XOR, AX, rnd),
            Insn::new(JMP | JNE | X, R2, AX, 2, 0),
            alu32_k(MOV, R0, 1),
            exit(),
            alu32_k(MOV, R0, 0),
            exit(),
        ];
        assert_eq!(
            run(&p, DevCtx::new(DEV_CHAR, ACC_READ, 1, 3)),
            Verdict::Allow
        );
        assert_eq!(
            run(&p, DevCtx::new(DEV_BLOCK, ACC_READ, 1, 3)),
            Verdict::Deny
        );
    }

    #[test]
    fn jmp32_compares_low_halves_and_jmp64_sign_extends_imm() {
        // r2 = 0xffff_ffff (u32 major); JMP JEQ with imm -1 compares against
        // 0xffff_ffff_ffff_ffff (not equal), JMP32 against 0xffff_ffff (equal).
        let mut p = vec![ldx_w(R2, R1, 4), alu64_k(MOV, R0, 0)];
        p.push(Insn::new(JMP | JEQ | K, R2, 0, 1, -1));
        p.push(exit());
        p.push(alu64_k(MOV, R0, 1));
        p.push(exit());
        let ctx = DevCtx::new(DEV_CHAR, ACC_READ, u32::MAX, 0);
        assert_eq!(run(&p, ctx), Verdict::Deny);
        p[2] = Insn::new(JMP32 | JEQ | K, R2, 0, 1, -1);
        assert_eq!(run(&p, ctx), Verdict::Allow);
    }
}
