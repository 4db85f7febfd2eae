//! Fuzzing the BPF decoder and interpreter (issue 9, item 10): 100 000 cases
//! per property, 0 panics. The hook reads device programs back from the
//! kernel, decodes them and runs them to decide; a program someone else
//! attached must not crash it.
//!
//! Programs are drawn from the instruction set device filters use (ALU and
//! ALU64 with immediates and registers, context loads, 32- and 64-bit jumps,
//! exit), with registers and offsets mostly in range and sometimes not, and
//! from the programs we build ourselves; plus raw bytes (see
//! tests/harness/fuzzkit.rs). Properties:
//! - decoding any bytes never panics and encodes back to the same bytes;
//! - running any program on any context never panics;
//! - a program built from rules decides as the rules say ([`rules_allow`]);
//! - an allow-prefix in front of any program allows its devices and leaves
//!   every other decision of the program as it was.

use amd_ctk_e2e::fuzzkit;

use super::insn::*;
use super::interp::{allows_char_rwm, run, DevCtx, Verdict, ACC_ALL, DEV_BLOCK, DEV_CHAR};
use super::program::{allow_prefix, from_rules, rules_allow, runc_default_rules, Rule};
use fuzzkit::Gen;
use proptest::prelude::*;

fn reg(g: &mut Gen) -> u8 {
    if g.one_in(30) {
        g.below(16) as u8
    } else {
        g.below(12) as u8
    }
}

fn off(g: &mut Gen) -> i16 {
    match g.below(40) {
        0 => g.next_u64() as i16,
        // Backward: loops, up to the interpreter's step limit.
        1 => -(g.below(4) as i16),
        _ => g.below(6) as i16,
    }
}

fn imm(g: &mut Gen) -> i32 {
    if g.one_in(2) {
        g.below(300) as i32 - 10
    } else {
        g.int() as i32
    }
}

/// One instruction of the kind device filters are made of, or any.
fn insn(g: &mut Gen) -> Insn {
    const ALU_OPS: [u8; 14] = [
        ADD, SUB, MUL, DIV, OR, AND, LSH, RSH, NEG, MOD, XOR, MOV, ARSH, END,
    ];
    const JMP_OPS: [u8; 14] = [
        JA, JEQ, JGT, JGE, JSET, JNE, JSGT, JSGE, CALL, EXIT, JLT, JLE, JSLT, JSLE,
    ];
    match g.below(14) {
        12 | 13 => {
            // Pointer arithmetic on the context pointer, by a register
            // (maybe loaded with an edge value) or an immediate.
            let op = *g.pick(&[ADD, SUB]);
            let src = *g.pick(&[K, X]);
            let from = *g.pick(&[R2, R3, R4, R5, R0]);
            Insn::new(ALU64 | op | src, R1, from, 0, imm(g))
        }
        0..=3 => {
            let class = *g.pick(&[ALU, ALU64]);
            let op = *g.pick(&ALU_OPS);
            let src = *g.pick(&[K, X]);
            let imm = if op == END {
                *g.pick(&[16, 32, 64, 8, 0])
            } else {
                imm(g)
            };
            let off = if g.one_in(20) { off(g) } else { 0 };
            // The context pointer as destination now and then: pointer
            // arithmetic is where offsets can run away.
            let dst = if g.one_in(4) { R1 } else { reg(g) };
            Insn::new(class | op | src, dst, reg(g), off, imm)
        }
        4..=5 => {
            let size = *g.pick(&[SIZE_W, SIZE_H, SIZE_B, SIZE_DW]);
            let off = *g.pick(&[0, 4, 8, 2, 1, 10, 11, 12, -4, i16::MAX, i16::MIN]);
            let src = if g.one_in(4) { reg(g) } else { R1 };
            Insn::new(LDX | MODE_MEM | size, reg(g), src, off, 0)
        }
        6..=10 => {
            let class = *g.pick(&[JMP, JMP32]);
            let op = *g.pick(&JMP_OPS);
            let src = *g.pick(&[K, X]);
            let imm = if class == JMP32 && op == JA && g.one_in(2) {
                g.below(6) as i32
            } else {
                imm(g)
            };
            Insn::new(class | op | src, reg(g), reg(g), off(g), imm)
        }
        _ => Insn::new(g.next_u64() as u8, reg(g), reg(g), off(g), imm(g)),
    }
}

/// Registers loaded with values at the edges (all ones, the sign bit, 2^32
/// and so on), as a fuzzer's dictionary would have them.
fn prologue(g: &mut Gen) -> Vec<Insn> {
    let mut p = Vec::new();
    for _ in 0..g.below(4) {
        let r = *g.pick(&[R2, R3, R4, R5, R0]);
        let v = *g.pick(&[-1, 1, i32::MIN, i32::MAX, 0x7fff, 12]);
        p.push(Insn::new(ALU64 | MOV | K, r, 0, 0, v));
        p.push(Insn::new(
            ALU64 | LSH | K,
            r,
            0,
            0,
            *g.pick(&[0, 1, 31, 32, 62, 63]),
        ));
    }
    p
}

fn program(g: &mut Gen) -> Vec<Insn> {
    let mut p = if g.one_in(3) { prologue(g) } else { Vec::new() };
    p.extend((0..g.below(24)).map(|_| insn(g)));
    if g.below(4) != 0 {
        p.push(alu32_k(MOV, R0, g.below(3) as i32));
        p.push(exit());
    }
    p
}

fn ctx(g: &mut Gen) -> DevCtx {
    let major = if g.one_in(2) {
        *g.pick(&[226, 238, 1, 5, 136])
    } else {
        g.next_u64() as u32
    };
    let minor = if g.one_in(2) {
        g.below(300) as u32
    } else {
        g.next_u64() as u32
    };
    let dev_type = if g.one_in(8) {
        g.next_u64() as u32 & 0xffff
    } else {
        *g.pick(&[DEV_CHAR, DEV_BLOCK])
    };
    DevCtx::new(dev_type, g.below(16) as u32, major, minor)
}

fn rule(g: &mut Gen) -> Rule {
    let small = |g: &mut Gen| {
        if g.one_in(3) {
            None
        } else {
            Some(g.below(4) as u32)
        }
    };
    Rule {
        allow: g.one_in(2),
        dev_type: *g.pick(&[None, Some(DEV_CHAR), Some(DEV_BLOCK)]),
        major: small(g),
        minor: small(g),
        access: g.below(8) as u32,
    }
}

proptest! {
    #![proptest_config(fuzzkit::config())]

    #[test]
    fn decoding_any_bytes_round_trips(seed in any::<u64>()) {
        let mut g = Gen::new(seed);
        let bytes = g.bytes(8 * 12);
        let insns = from_bytes(&bytes);
        prop_assert_eq!(insns.len(), bytes.len() / 8);
        prop_assert_eq!(&to_bytes(&insns)[..], &bytes[..insns.len() * 8]);
        for i in &insns {
            let _ = (i.dst(), i.src(), format!("{i:?}"));
        }
    }

    #[test]
    fn running_any_program_never_panics(seed in any::<u64>()) {
        let mut g = Gen::new(seed);
        let prog = if g.one_in(10) {
            from_bytes(&g.bytes(8 * 16))
        } else {
            program(&mut g)
        };
        let c = ctx(&mut g);
        match run(&prog, c) {
            Verdict::Unknown(why) => prop_assert!(!why.is_empty()),
            Verdict::Allow | Verdict::Deny => {}
        }
        if g.one_in(8) {
            let _ = allows_char_rwm(&prog, c.major, c.minor);
        }
    }

    #[test]
    fn rule_programs_decide_as_the_rules_say(seed in any::<u64>()) {
        let mut g = Gen::new(seed);
        let mut rules: Vec<Rule> = (0..g.below(8)).map(|_| rule(&mut g)).collect();
        if g.one_in(4) {
            rules.extend(runc_default_rules());
        }
        let prog = from_rules(&rules).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        let dev_type = *g.pick(&[DEV_CHAR, DEV_BLOCK]);
        let (major, minor) = (g.below(5) as u32, g.below(5) as u32);
        let access = g.below(ACC_ALL as usize + 1) as u32;
        let want = rules_allow(&rules, dev_type, major, minor, access);
        let got = run(&prog, DevCtx::new(dev_type, access, major, minor));
        prop_assert_eq!(got, if want { Verdict::Allow } else { Verdict::Deny }, "{:?}", rules);
    }

    #[test]
    fn allow_prefix_adds_its_devices_and_changes_nothing_else(seed in any::<u64>()) {
        let mut g = Gen::new(seed);
        let old = if g.one_in(2) {
            let rules: Vec<Rule> = (0..g.below(6)).map(|_| rule(&mut g)).collect();
            from_rules(&rules).map_err(|e| TestCaseError::fail(format!("{e:?}")))?
        } else {
            program(&mut g)
        };
        let devices: Vec<(u32, u32)> = (0..1 + g.below(4))
            .map(|_| (g.below(4) as u32, g.below(4) as u32))
            .collect();
        let mut prog = allow_prefix(&devices).map_err(|e| TestCaseError::fail(format!("{e:?}")))?;
        prog.extend_from_slice(&old);
        for &(major, minor) in &devices {
            prop_assert!(allows_char_rwm(&prog, major, minor), "{devices:?} {old:?}");
        }
        let c = ctx(&mut g);
        let c = DevCtx { major: c.major % 6, minor: c.minor % 6, ..c };
        let ours = c.access_type & 0xffff == DEV_CHAR && devices.contains(&(c.major, c.minor));
        // The old program's decision stands for every other access (an
        // Unknown one may read registers the prefix has set: the kernel's
        // verifier would not load such a program).
        let before = run(&old, c);
        if !ours && !matches!(before, Verdict::Unknown(_)) {
            prop_assert_eq!(run(&prog, c), before, "{:?} {:?} {:?}", devices, old, c);
        }
    }
}

/// Found by `running_any_program_never_panics` (seed 2118696095141474161):
/// arithmetic on the context pointer overflowed (a panic, in a build with
/// overflow checks) instead of leaving a pointer that no load may use.
#[test]
fn context_pointer_arithmetic_at_the_edges() {
    let ctx = DevCtx::new(DEV_CHAR, ACC_ALL, 1, 1);
    let unknown = |prog: &[Insn]| matches!(run(prog, ctx), Verdict::Unknown(_));
    // r1 = ctx + 2^63, then - 1: wraps; the load from it is out of bounds.
    let wrap = [
        Insn::new(ALU64 | MOV | K, R2, 0, 0, 1),
        Insn::new(ALU64 | LSH | K, R2, 0, 0, 63),
        Insn::new(ALU64 | ADD | X, R1, R2, 0, 0),
        Insn::new(ALU64 | SUB | K, R1, 0, 0, 1),
        ldx_w(R0, R1, 0),
        exit(),
    ];
    assert!(unknown(&wrap));
    // ctx + (2^63 - 1), then a load at offset +4: the address overflows.
    let far = [
        Insn::new(ALU64 | MOV | K, R2, 0, 0, -1),
        Insn::new(ALU64 | RSH | K, R2, 0, 0, 1),
        Insn::new(ALU64 | ADD | X, R1, R2, 0, 0),
        ldx_w(R0, R1, 4),
        exit(),
    ];
    assert!(unknown(&far));
    // Back in range after a round trip: an ordinary load.
    let round = [
        Insn::new(ALU64 | ADD | K, R1, 0, 0, i32::MAX),
        Insn::new(ALU64 | SUB | K, R1, 0, 0, i32::MAX),
        ldx_w(R0, R1, 8),
        alu32_k(AND, R0, 1),
        exit(),
    ];
    assert_eq!(run(&round, ctx), Verdict::Allow);
}
