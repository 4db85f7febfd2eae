//! The tests of program.rs: the generated programs against the reference
//! semantics of the rules (through the interpreter) and against runc's own
//! program as the kernel dumps it; and those runc programs, as fixtures
//! for the cgroup v2 tests.

use super::super::interp::{allows_char_rwm, run, DevCtx, Verdict};
use super::*;
use oci_spec::runtime::LinuxDeviceCgroupBuilder;

/// A device filter in the shape runc (libcontainer/cgroups/ebpf/
/// devicefilter) generates: R2 type, R3 access, R4 major, R5 minor loaded
/// from R1, then one block per rule in order (access check through R1 as
/// a temporary), 64-bit JNE against immediates, default at the end.
pub fn runc_like(rules: &[Rule], default_allow: bool) -> Vec<Insn> {
    let mut a = Asm::default();
    a.push(ldx_w(R2, R1, 0));
    a.push(alu32_k(AND, R2, 0xffff));
    a.push(ldx_w(R3, R1, 0));
    a.push(alu32_k(RSH, R3, 16));
    a.push(ldx_w(R4, R1, 4));
    a.push(ldx_w(R5, R1, 8));
    for r in rules {
        let next = a.label();
        a.jmp_k(JMP, JNE, R2, r.dev_type.unwrap() as i32, next);
        if r.access != ACC_ALL {
            a.push(alu32_x(MOV, R1, R3));
            a.push(alu32_k(AND, R1, r.access as i32));
            a.jmp_x(JMP, JNE, R1, R3, next);
        }
        if let Some(m) = r.major {
            a.jmp_k(JMP, JNE, R4, m as i32, next);
        }
        if let Some(m) = r.minor {
            a.jmp_k(JMP, JNE, R5, m as i32, next);
        }
        a.push(alu32_k(MOV, R0, r.allow as i32));
        a.push(exit());
        a.bind(next);
    }
    a.push(alu32_k(MOV, R0, default_allow as i32));
    a.push(exit());
    a.finish().unwrap()
}

/// What `runc spec`'s config (deny all) gives on runc: its default rules.
pub fn runc_default_program() -> Vec<Insn> {
    runc_like(&runc_default_rules(), false)
}

/// runc 1.1.5's program for `runc spec`'s config, as this kernel (6.18)
/// returns it from BPF_OBJ_GET_INFO_BY_FD (xlated_prog_insns), one
/// little-endian `struct bpf_insn` per u64.
const RUNC_1_1_5_XLATED: [u64; 64] = [
    0x0000000000001261,
    0x0000ffff00000254,
    0x0000000000001361,
    0x0000001000000374,
    0x0000000000041461,
    0x0000000000081561,
    0x0000000100050255,
    0x00000000000031bc,
    0x0000000100000154,
    0x000000000002315d,
    0x00000001000000b4,
    0x0000000000000095,
    0x0000000200050255,
    0x00000000000031bc,
    0x0000000100000154,
    0x000000000002315d,
    0x00000001000000b4,
    0x0000000000000095,
    0x0000000200040255,
    0x0000000100030455,
    0x0000000300020555,
    0x00000001000000b4,
    0x0000000000000095,
    0x0000000200040255,
    0x0000000100030455,
    0x0000000500020555,
    0x00000001000000b4,
    0x0000000000000095,
    0x0000000200040255,
    0x0000000100030455,
    0x0000000700020555,
    0x00000001000000b4,
    0x0000000000000095,
    0x0000000200040255,
    0x0000000100030455,
    0x0000000800020555,
    0x00000001000000b4,
    0x0000000000000095,
    0x0000000200040255,
    0x0000000100030455,
    0x0000000900020555,
    0x00000001000000b4,
    0x0000000000000095,
    0x0000000200040255,
    0x0000000500030455,
    0x0000000000020555,
    0x00000001000000b4,
    0x0000000000000095,
    0x0000000200040255,
    0x0000000500030455,
    0x0000000200020555,
    0x00000001000000b4,
    0x0000000000000095,
    0x0000000200040255,
    0x0000000a00030455,
    0x000000c800020555,
    0x00000001000000b4,
    0x0000000000000095,
    0x0000000200030255,
    0x0000008800020455,
    0x00000001000000b4,
    0x0000000000000095,
    0x00000000000000b4,
    0x0000000000000095,
];

pub fn runc_1_1_5_program() -> Vec<Insn> {
    let bytes: Vec<u8> = RUNC_1_1_5_XLATED
        .iter()
        .flat_map(|i| i.to_le_bytes())
        .collect();
    from_bytes(&bytes)
}

fn oci(
    allow: bool,
    typ: Option<LinuxDeviceType>,
    major: Option<i64>,
    minor: Option<i64>,
    access: Option<&str>,
) -> LinuxDeviceCgroup {
    let mut b = LinuxDeviceCgroupBuilder::default().allow(allow);
    if let Some(t) = typ {
        b = b.typ(t);
    }
    if let Some(m) = major {
        b = b.major(m);
    }
    if let Some(m) = minor {
        b = b.minor(m);
    }
    if let Some(s) = access {
        b = b.access(s);
    }
    b.build().unwrap()
}

fn check_program_matches_rules(rules: &[Rule], prog: &[Insn]) {
    let majors = [0, 1, 5, 10, 136, 226, 238, u32::MAX];
    let minors = [0, 1, 2, 3, 5, 128, 129, u32::MAX];
    for t in [DEV_BLOCK, DEV_CHAR] {
        for acc in 1..=ACC_ALL {
            for &maj in &majors {
                for &min in &minors {
                    let want = rules_allow(rules, t, maj, min, acc);
                    let got = run(prog, DevCtx::new(t, acc, maj, min));
                    let got = match got {
                        Verdict::Allow => true,
                        Verdict::Deny => false,
                        Verdict::Unknown(why) => panic!("{why}"),
                    };
                    assert_eq!(
                        got, want,
                        "type {t} access {acc} {maj}:{min} rules {rules:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn prefix_plus_runc_program_allows_the_additions_and_keeps_the_old_verdicts() {
    let old = runc_default_program();
    let added = [(226, 128), (238, 0)];
    let mut prog = allow_prefix(&added).unwrap();
    prog.extend_from_slice(&old);
    for (maj, min) in added {
        assert!(!allows_char_rwm(&old, maj, min));
        assert!(allows_char_rwm(&prog, maj, min));
    }
    for t in [DEV_BLOCK, DEV_CHAR] {
        for acc in 1..=ACC_ALL {
            for maj in [0, 1, 5, 136, 226, 238, 239] {
                for min in [0, 1, 2, 3, 127, 128, 129] {
                    let ctx = DevCtx::new(t, acc, maj, min);
                    let want = if t == DEV_CHAR && added.contains(&(maj, min)) {
                        Verdict::Allow
                    } else {
                        run(&old, ctx)
                    };
                    assert_eq!(run(&prog, ctx), want, "{ctx:?}");
                }
            }
        }
    }
    // Sanity of the runc-like program itself: null yes, 226:129 no,
    // mknod of anything yes, block read no.
    assert!(allows_char_rwm(&old, 1, 3));
    assert!(!allows_char_rwm(&prog, 226, 129));
    assert_eq!(
        run(&old, DevCtx::new(DEV_CHAR, ACC_MKNOD, 226, 129)),
        Verdict::Allow
    );
    assert_eq!(
        run(&old, DevCtx::new(DEV_BLOCK, ACC_READ, 8, 0)),
        Verdict::Deny
    );
}

#[test]
fn real_runc_program_matches_the_model_and_takes_the_prefix() {
    if cfg!(target_endian = "big") {
        return; // the fixture is a little-endian dump
    }
    let real = runc_1_1_5_program();
    let model = runc_default_program();
    let mut prog = allow_prefix(&[(226, 128)]).unwrap();
    prog.extend_from_slice(&real);
    for t in [DEV_BLOCK, DEV_CHAR] {
        for acc in 1..=ACC_ALL {
            for maj in [0, 1, 5, 8, 10, 136, 226, u32::MAX] {
                for min in [0, 1, 2, 3, 5, 7, 8, 9, 128, 129, 200] {
                    let ctx = DevCtx::new(t, acc, maj, min);
                    let v = run(&real, ctx);
                    assert!(!matches!(v, Verdict::Unknown(_)), "{v:?}");
                    assert_eq!(v, run(&model, ctx), "{ctx:?}");
                    let want = if t == DEV_CHAR && (maj, min) == (226, 128) {
                        Verdict::Allow
                    } else {
                        v
                    };
                    assert_eq!(run(&prog, ctx), want, "{ctx:?}");
                }
            }
        }
    }
    assert!(allows_char_rwm(&real, 1, 3));
    assert!(allows_char_rwm(&real, 136, 4));
    assert!(!allows_char_rwm(&real, 226, 128));
}

#[test]
fn prefix_is_idempotent_in_effect_and_groups_majors() {
    let old = runc_default_program();
    let mut once = allow_prefix(&[(226, 128), (226, 129), (226, 128)]).unwrap();
    // 5 header + (1 + 2 minors) + ja + 2 allow
    assert_eq!(once.len(), 5 + 3 + 1 + 2);
    once.extend_from_slice(&old);
    assert!(allows_char_rwm(&once, 226, 128));
    assert!(allows_char_rwm(&once, 226, 129));
    assert!(!allows_char_rwm(&once, 226, 130));
}

#[test]
fn prefix_tests_consecutive_minors_as_ranges() {
    assert_eq!(ranges(&[1, 2, 3, 5, 7, 8]), vec![(1, 3), (5, 5), (7, 8)]);
    assert_eq!(
        ranges(&[u32::MAX - 1, u32::MAX]),
        vec![(u32::MAX - 1, u32::MAX)]
    );
    // 8 GPUs: kfd and 16 drm minors in two runs.
    let mut devices = vec![(238, 0)];
    for i in 1..=8 {
        devices.push((226, i));
        devices.push((226, 127 + i));
    }
    let old = runc_default_program();
    let mut prog = allow_prefix(&devices).unwrap();
    // 5 header + (1 + 1) for 238 + (1 + 2 + 2) for 226 + ja + 2 allow
    assert_eq!(prog.len(), 5 + 2 + 5 + 1 + 2);
    prog.extend_from_slice(&old);
    for min in 0..=140 {
        let want = (1..=8).contains(&min) || (128..=135).contains(&min);
        assert_eq!(allows_char_rwm(&prog, 226, min), want, "226:{min}");
    }
    assert!(allows_char_rwm(&prog, 238, 0));
    assert!(!allows_char_rwm(&prog, 238, 1));
    assert!(
        allows_char_rwm(&prog, 1, 3),
        "the old program still decides"
    );
}

#[test]
fn prefix_handles_numbers_above_i32_max() {
    let old = runc_default_program();
    let mut prog = allow_prefix(&[(u32::MAX, 0x8000_0000)]).unwrap();
    prog.extend_from_slice(&old);
    assert!(allows_char_rwm(&prog, u32::MAX, 0x8000_0000));
    assert!(!allows_char_rwm(&prog, u32::MAX, 0x7fff_ffff));
    let mut range = allow_prefix(&[(7, u32::MAX - 1), (7, u32::MAX), (7, 0x8000_0000)]).unwrap();
    range.extend_from_slice(&old);
    assert!(allows_char_rwm(&range, 7, u32::MAX));
    assert!(allows_char_rwm(&range, 7, u32::MAX - 1));
    assert!(allows_char_rwm(&range, 7, 0x8000_0000));
    assert!(!allows_char_rwm(&range, 7, u32::MAX - 2));
    assert!(!allows_char_rwm(&range, 7, 0x7fff_ffff));
}

#[test]
fn prefix_leaves_r1_alone() {
    let prog = allow_prefix(&[(226, 128), (10, 200)]).unwrap();
    assert!(prog.iter().all(|i| {
        let writes_dst = matches!(class(i.code), ALU | ALU64 | LDX);
        !(writes_dst && i.dst() == R1)
    }));
}

#[test]
fn oci_rules_normalize() {
    use LinuxDeviceType::*;
    let r = Rule::from_oci(&oci(false, None, None, None, Some("rwm"))).unwrap();
    assert_eq!(
        (r.dev_type, r.major, r.minor, r.access),
        (None, None, None, 7)
    );
    let r = Rule::from_oci(&oci(true, Some(C), Some(-1), Some(3), Some("rw"))).unwrap();
    assert_eq!(
        (r.dev_type, r.major, r.minor),
        (Some(DEV_CHAR), None, Some(3))
    );
    assert_eq!(r.access, ACC_READ | ACC_WRITE);
    let r = Rule::from_oci(&oci(true, Some(U), Some(4), None, None)).unwrap();
    assert_eq!(
        (r.dev_type, r.major, r.minor, r.access),
        (Some(DEV_CHAR), Some(4), None, 7)
    );
    assert!(Rule::from_oci(&oci(true, Some(P), None, None, None)).is_none());
    let r = Rule::from_oci(&oci(true, Some(B), Some(8), Some(0), Some("m"))).unwrap();
    assert_eq!((r.dev_type, r.access), (Some(DEV_BLOCK), ACC_MKNOD));
}

fn rules(list: &[LinuxDeviceCgroup]) -> Vec<Rule> {
    list.iter().filter_map(Rule::from_oci).collect()
}

#[test]
fn fallback_semantics() {
    use LinuxDeviceType::*;
    // Docker/runc-spec style: deny all, then allows.
    let docker = rules(&[
        oci(false, None, None, None, Some("rwm")),
        oci(true, Some(C), Some(1), Some(3), Some("rwm")),
        oci(true, Some(C), Some(226), None, Some("rw")),
        oci(false, Some(C), Some(226), Some(129), Some("rwm")),
        oci(true, Some(B), None, None, Some("m")),
    ]);
    let p = from_rules(&docker).unwrap();
    check_program_matches_rules(&docker, &p);
    let allows = |p: &[Insn], t, acc, maj, min| run(p, DevCtx::new(t, acc, maj, min));
    assert_eq!(
        allows(&p, DEV_CHAR, ACC_READ | ACC_WRITE, 226, 128),
        Verdict::Allow
    );
    // A deny rule after the wildcard allow wins for that minor.
    assert_eq!(allows(&p, DEV_CHAR, ACC_READ, 226, 129), Verdict::Deny);
    // "rw" on the wildcard does not give mknod.
    assert_eq!(allows(&p, DEV_CHAR, ACC_MKNOD, 226, 128), Verdict::Deny);
    assert_eq!(allows(&p, DEV_CHAR, ACC_ALL, 226, 128), Verdict::Deny);
    assert_eq!(allows(&p, DEV_BLOCK, ACC_MKNOD, 8, 1), Verdict::Allow);
    assert_eq!(allows(&p, DEV_BLOCK, ACC_READ, 8, 1), Verdict::Deny);
    assert_eq!(allows(&p, DEV_CHAR, ACC_ALL, 1, 3), Verdict::Allow);
    assert_eq!(allows(&p, DEV_CHAR, ACC_READ, 1, 5), Verdict::Deny);

    // An "a" allow after everything allows everything; an "a" deny at
    // the end denies everything, whatever came before.
    let mut open = docker.clone();
    open.extend(rules(&[oci(true, Some(A), None, None, Some("rwm"))]));
    let p = from_rules(&open).unwrap();
    check_program_matches_rules(&open, &p);
    assert_eq!(allows(&p, DEV_BLOCK, ACC_ALL, 8, 0), Verdict::Allow);
    let mut closed = open.clone();
    closed.extend(rules(&[oci(false, None, None, None, None)]));
    let p = from_rules(&closed).unwrap();
    check_program_matches_rules(&closed, &p);
    assert_eq!(allows(&p, DEV_CHAR, ACC_READ, 1, 3), Verdict::Deny);

    // Per access bit: allow r then allow w = rw; deny w after allow rwm
    // keeps r and m.
    let bits = rules(&[
        oci(true, Some(C), Some(10), Some(1), Some("r")),
        oci(true, Some(C), Some(10), Some(1), Some("w")),
        oci(true, Some(C), Some(10), None, Some("rwm")),
        oci(false, Some(C), None, Some(2), Some("w")),
    ]);
    let p = from_rules(&bits).unwrap();
    check_program_matches_rules(&bits, &p);
    assert_eq!(
        allows(&p, DEV_CHAR, ACC_READ | ACC_WRITE, 10, 1),
        Verdict::Allow
    );
    assert_eq!(
        allows(&p, DEV_CHAR, ACC_READ | ACC_MKNOD, 10, 2),
        Verdict::Allow
    );
    assert_eq!(allows(&p, DEV_CHAR, ACC_WRITE, 10, 2), Verdict::Deny);
    assert_eq!(
        allows(&p, DEV_CHAR, ACC_READ | ACC_WRITE, 10, 2),
        Verdict::Deny
    );

    // No rules at all: default deny. Empty access on a non-"a" rule
    // means rwm too.
    let p = from_rules(&[]).unwrap();
    assert_eq!(allows(&p, DEV_CHAR, ACC_READ, 1, 3), Verdict::Deny);
    let e = rules(&[oci(true, Some(C), Some(1), Some(3), Some(""))]);
    let p = from_rules(&e).unwrap();
    check_program_matches_rules(&e, &p);
    assert_eq!(allows(&p, DEV_CHAR, ACC_ALL, 1, 3), Verdict::Allow);
}

#[test]
fn fallback_with_additions_and_runc_defaults() {
    use LinuxDeviceType::*;
    let spec = [oci(false, Some(A), None, None, Some("rwm"))];
    let mut all = rules(&spec);
    all.extend(runc_default_rules());
    all.push(Rule::allow_char(226, 128));
    let p = from_rules(&all).unwrap();
    check_program_matches_rules(&all, &p);
    assert!(allows_char_rwm(&p, 226, 128));
    assert!(allows_char_rwm(&p, 1, 3));
    assert!(allows_char_rwm(&p, 136, 7));
    assert!(!allows_char_rwm(&p, 226, 129));
    // Same verdicts as runc's own program for the same rules, everywhere
    // but the addition.
    let runc = runc_default_program();
    for t in [DEV_BLOCK, DEV_CHAR] {
        for acc in 1..=ACC_ALL {
            for (maj, min) in [(1, 3), (1, 4), (5, 2), (136, 0), (226, 129), (8, 0)] {
                let ctx = DevCtx::new(t, acc, maj, min);
                assert_eq!(run(&p, ctx), run(&runc, ctx), "{ctx:?}");
            }
        }
    }
}
