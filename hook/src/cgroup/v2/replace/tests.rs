//! The replace / rollback logic of replace.rs, through the fake kernel
//! (fake.rs): which programs are replaced, how, in what order of attach and
//! detach, and what is undone when a step fails; without root or a kernel.

use super::super::fake::{Call, Fake};
use super::super::judge::{judge_programs, Judgement};
use super::*;
use crate::bpf::insn::*;
use crate::bpf::interp::allows_char_rwm;
use crate::bpf::program::tests::{runc_1_1_5_program, runc_default_program};
use oci_spec::runtime::LinuxDeviceCgroupBuilder;
use std::fs::File;

const GPU: DeviceAccess = DeviceAccess {
    major: 226,
    minor: 128,
};

/// Any directory: the fake ignores the cgroup descriptor; the change
/// duplicates it to revert with, as it does a real one.
fn dir() -> File {
    File::open("/").unwrap()
}

fn deny_all_spec() -> Vec<LinuxDeviceCgroup> {
    vec![LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()
        .unwrap()]
}

fn allow(fake: &Fake, devices: &[DeviceAccess]) -> Result<V2Change<Fake>, BpfError> {
    allow_devices_via(
        fake.clone(),
        dir().as_fd(),
        devices,
        &deny_all_spec(),
        false,
    )
}

fn ok_ret(v: i32) -> Vec<Insn> {
    vec![insn::alu64_k(insn::MOV, insn::R0, v), insn::exit()]
}

const MULTI_REPLACE: u32 = BPF_F_ALLOW_MULTI | BPF_F_REPLACE;

#[test]
fn nothing_attached_or_nothing_asked_changes_nothing() {
    let fake = Fake::with(&[]);
    let c = allow(&fake, &[GPU]).unwrap();
    assert!(!c.changed());
    assert_eq!(fake.calls(), [Call::Query]);
    let fake = Fake::with(&[runc_default_program()]);
    let c = allow(&fake, &[]).unwrap();
    assert!(!c.changed());
    assert_eq!(fake.calls(), [Call::Query]);
    assert_eq!(fake.attached(), [1]);
}

#[test]
fn a_program_that_already_allows_is_kept_without_a_load() {
    let fake = Fake::with(&[ok_ret(1)]);
    let c = allow(&fake, &[GPU]).unwrap();
    assert!(!c.changed());
    assert_eq!(c.to_string(), "no device program changed");
    assert_eq!(fake.calls(), [Call::Query, Call::ById(1), Call::Info(1)]);
    assert_eq!(fake.attached(), [1]);
    assert_eq!(judge_programs(&c.attached, &[GPU]), Judgement::Allowed);
    // Nothing to undo.
    c.revert().unwrap();
    assert_eq!(fake.calls().len(), 3);
}

#[test]
fn a_denying_program_is_replaced_in_place_by_prefix_plus_itself_and_reverted() {
    let real = runc_1_1_5_program();
    let fake = Fake::with(std::slice::from_ref(&real));
    let c = allow(&fake, &[GPU]).unwrap();
    assert!(c.changed());
    assert_eq!(
        fake.calls(),
        [
            Call::Query,
            Call::ById(1),
            Call::Info(1),
            Call::Load(PREFIX_NAME.into()),
            Call::Id(101),
            Call::Attach {
                prog: 101,
                flags: MULTI_REPLACE,
                replace: Some(1)
            },
        ]
    );
    assert_eq!(fake.attached(), [101]);
    let new = fake.program(101).insns;
    assert!(allows_char_rwm(&new, 226, 128));
    assert!(allows_char_rwm(&new, 1, 3));
    assert!(!allows_char_rwm(&new, 226, 129));
    assert_eq!(
        new[new.len() - real.len()..],
        real[..],
        "the old program, unchanged"
    );
    assert_eq!(
        c.to_string(),
        "program 1 replaced by 101 (allow-prefix + its own instructions)"
    );
    // What the change reports as attached is what the kernel has.
    assert_eq!(c.attached.len(), 1);
    assert_eq!((c.attached[0].id, &*c.attached[0].name), (101, PREFIX_NAME));
    assert_eq!(judge_programs(&c.attached, &[GPU]), Judgement::Allowed);

    // Idempotent: a second call reads and keeps.
    let again = allow(&fake, &[GPU]).unwrap();
    assert!(!again.changed());
    assert_eq!(fake.attached(), [101]);

    let before = fake.calls().len();
    c.revert().unwrap();
    assert_eq!(fake.attached(), [1]);
    assert_eq!(
        fake.calls()[before..],
        [Call::Attach {
            prog: 1,
            flags: MULTI_REPLACE,
            replace: Some(101)
        }]
    );
}

#[test]
fn only_the_denying_programs_are_replaced_each_in_its_place() {
    let fake = Fake::with(&[ok_ret(1), runc_default_program(), runc_default_program()]);
    let c = allow(&fake, &[GPU]).unwrap();
    assert_eq!(fake.attached(), [1, 101, 102]);
    assert_eq!(
        c.attached.iter().map(|p| p.id).collect::<Vec<_>>(),
        [1, 101, 102]
    );
    c.revert().unwrap();
    assert_eq!(fake.attached(), [1, 2, 3]);
    // Newest first.
    let undo: Vec<_> = fake
        .calls()
        .into_iter()
        .filter_map(|c| match c {
            Call::Attach { prog, replace, .. } if prog < 100 => Some((prog, replace)),
            _ => None,
        })
        .collect();
    assert_eq!(undo, [(3, Some(102)), (2, Some(101))]);
}

#[test]
fn a_later_failure_rolls_back_the_earlier_replacements() {
    // The second program's attach fails: the first is put back.
    let fake = Fake::with(&[runc_default_program(), runc_default_program()]);
    fake.fail("attach", 2, libc::EPERM);
    let e = allow(&fake, &[GPU]).unwrap_err();
    let BpfError::Syscall { cmd, source, .. } = &e else {
        panic!("{e}");
    };
    assert_eq!(
        (*cmd, source.raw_os_error()),
        ("BPF_PROG_ATTACH", Some(libc::EPERM))
    );
    assert_eq!(fake.attached(), [1, 2], "all or nothing");
    assert_eq!(
        fake.calls().last(),
        Some(&Call::Attach {
            prog: 1,
            flags: MULTI_REPLACE,
            replace: Some(101)
        })
    );

    // Reading the second program fails: same.
    let fake = Fake::with(&[runc_default_program(), runc_default_program()]);
    fake.fail("info", 2, libc::EACCES);
    assert!(allow(&fake, &[GPU]).is_err());
    assert_eq!(fake.attached(), [1, 2]);
}

#[test]
fn a_failed_rollback_reports_both_errors() {
    let fake = Fake::with(&[runc_default_program(), runc_default_program()]);
    // 1: replace program 1; 2: replace program 2 (fails); 3: undo 1 (fails).
    fake.fail("attach", 2, libc::EPERM)
        .fail("attach", 3, libc::EBUSY);
    let e = allow(&fake, &[GPU]).unwrap_err();
    let BpfError::Rollback(first, undo) = &e else {
        panic!("{e}");
    };
    assert!(first.to_string().contains("Operation not permitted"), "{e}");
    assert!(undo.to_string().contains("busy"), "{e}");
    assert_eq!(fake.attached(), [101, 2], "what could not be undone stays");
}

#[test]
fn nothing_denies_nothing_changes_even_with_failing_writes() {
    let fake = Fake::with(&[ok_ret(1), ok_ret(1)]);
    fake.fail("load", 1, libc::EPERM)
        .fail("attach", 1, libc::EPERM);
    let c = allow(&fake, &[GPU]).unwrap();
    assert!(!c.changed());
    assert!(fake
        .calls()
        .iter()
        .all(|c| matches!(c, Call::Query | Call::ById(_) | Call::Info(_))));
}

#[test]
fn a_prefix_the_verifier_refuses_falls_back_to_the_rules() {
    let fake = Fake::with(&[runc_default_program()]);
    fake.fail("load", 1, libc::EACCES);
    let c = allow(&fake, &[GPU]).unwrap();
    let loads: Vec<_> = fake
        .calls()
        .into_iter()
        .filter(|c| matches!(c, Call::Load(_)))
        .collect();
    assert_eq!(
        loads,
        [
            Call::Load(PREFIX_NAME.into()),
            Call::Load(RULES_NAME.into())
        ]
    );
    // The refused load made no program: the rules one is the first.
    assert_eq!(fake.attached(), [101]);
    assert_eq!(c.attached[0].name, RULES_NAME);
    assert!(c.to_string().contains("built from the spec's device rules"));
    let rules = fake.program(101).insns;
    assert!(allows_char_rwm(&rules, 226, 128));
    assert!(allows_char_rwm(&rules, 1, 3));
    assert!(!allows_char_rwm(&rules, 226, 129));
}

#[test]
fn unreadable_or_unreusable_programs_take_the_rules_path_directly() {
    // Instructions not shown: judged as denying, replaced from the rules.
    let fake = Fake::with(&[runc_default_program()]);
    fake.state.borrow_mut().programs.get_mut(&1).unwrap().shown = false;
    let _kept = allow(&fake, &[GPU]).unwrap();
    assert!(fake.calls().contains(&Call::Load(RULES_NAME.into())));
    assert!(!fake.calls().contains(&Call::Load(PREFIX_NAME.into())));
    assert_eq!(fake.attached(), [101]);
    // A program with maps: its instructions cannot be loaded again.
    let fake = Fake::with(&[runc_default_program()]);
    fake.state
        .borrow_mut()
        .programs
        .get_mut(&1)
        .unwrap()
        .nr_map_ids = 1;
    let _kept = allow(&fake, &[GPU]).unwrap();
    assert!(!fake.calls().contains(&Call::Load(PREFIX_NAME.into())));
    // Forced.
    let fake = Fake::with(&[runc_default_program()]);
    let _kept =
        allow_devices_via(fake.clone(), dir().as_fd(), &[GPU], &deny_all_spec(), true).unwrap();
    assert!(!fake.calls().contains(&Call::Load(PREFIX_NAME.into())));
    assert_eq!(fake.program(101).name, RULES_NAME);
}

#[test]
fn a_rules_program_that_cannot_load_fails_and_changes_nothing() {
    let fake = Fake::with(&[runc_default_program()]);
    fake.fail("load", 1, libc::EACCES)
        .fail("load", 2, libc::EACCES);
    let e = allow(&fake, &[GPU]).unwrap_err();
    assert!(
        matches!(&e, BpfError::Load { name, log, .. }
            if name == RULES_NAME && log.contains("fake verifier")),
        "{e}"
    );
    assert_eq!(fake.attached(), [1]);
}

#[test]
fn a_program_of_another_type_is_refused() {
    let fake = Fake::with(&[runc_default_program(), runc_default_program()]);
    fake.state
        .borrow_mut()
        .programs
        .get_mut(&2)
        .unwrap()
        .prog_type = 8;
    let e = allow(&fake, &[GPU]).unwrap_err();
    assert!(
        matches!(
            e,
            BpfError::WrongType {
                id: 2,
                prog_type: 8
            }
        ),
        "{e}"
    );
    assert_eq!(fake.attached(), [1, 2], "the first replacement undone");
}

#[test]
fn without_bpf_f_replace_attach_then_detach_and_remember() {
    let fake = Fake::with(&[runc_default_program(), runc_default_program()]);
    fake.state.borrow_mut().no_replace_support = true;
    let c = allow(&fake, &[GPU]).unwrap();
    assert_eq!(fake.attached(), [101, 102]);
    let writes: Vec<_> = fake
        .calls()
        .into_iter()
        .filter(|c| matches!(c, Call::Attach { .. } | Call::Detach(_)))
        .collect();
    let attach = |prog, flags, replace| Call::Attach {
        prog,
        flags,
        replace,
    };
    assert_eq!(
        writes,
        [
            // Tried once, refused with EINVAL, remembered.
            attach(101, MULTI_REPLACE, Some(1)),
            // The new one next to the old (ANDed), then the old one off.
            attach(101, BPF_F_ALLOW_MULTI, None),
            Call::Detach(1),
            attach(102, BPF_F_ALLOW_MULTI, None),
            Call::Detach(2),
        ]
    );
    assert!(fake.replace_unsupported());
    c.revert().unwrap();
    let mut back = fake.attached();
    back.sort();
    assert_eq!(back, [1, 2]);
}

#[test]
fn without_bpf_f_replace_a_failed_detach_leaves_the_old_program_alone() {
    let fake = Fake::with(&[runc_default_program()]);
    fake.state.borrow_mut().no_replace_support = true;
    fake.fail("detach", 1, libc::EPERM);
    let e = allow(&fake, &[GPU]).unwrap_err();
    assert!(
        matches!(
            &e,
            BpfError::Syscall {
                cmd: "BPF_PROG_DETACH",
                ..
            }
        ),
        "{e}"
    );
    assert_eq!(fake.attached(), [1], "the new one detached again");
}

#[test]
fn single_program_mode_attaches_without_replace() {
    let fake = Fake::with(&[runc_default_program()]);
    fake.state.borrow_mut().flags = 0;
    let c = allow(&fake, &[GPU]).unwrap();
    assert_eq!(fake.attached(), [101]);
    assert!(fake.calls().contains(&Call::Attach {
        prog: 101,
        flags: 0,
        replace: None
    }));
    c.revert().unwrap();
    assert_eq!(fake.attached(), [1]);
}

#[test]
fn a_replaced_program_gone_meanwhile_is_named_in_the_error() {
    let fake = Fake::with(&[runc_default_program()]);
    fake.fail("attach", 1, libc::ENOENT);
    let e = allow(&fake, &[GPU]).unwrap_err();
    assert!(e.to_string().contains("no longer attached"), "{e}");
}

#[test]
fn reusable_rejects_calls_maps_ax_and_empty() {
    let runc = crate::bpf::program::tests::runc_default_program();
    assert!(reusable(&runc, 0));
    assert!(!reusable(&runc, 1));
    assert!(!reusable(&[], 0));
    let mut call = runc.clone();
    call.insert(0, Insn::new(JMP | CALL, 0, 0, 0, 5));
    assert!(!reusable(&call, 0));
    let mut ax = runc.clone();
    ax.insert(0, Insn::new(ALU64 | MOV | K, 11, 0, 0, 5));
    assert!(!reusable(&ax, 0));
    let mut map = runc.clone();
    map.insert(0, Insn::new(LD | SIZE_DW | MODE_IMM, 2, 1, 0, 3));
    map.insert(1, Insn::new(0, 0, 0, 0, 0));
    assert!(!reusable(&map, 0));
}

#[test]
fn rules_program_allows_additions_over_a_deny_all_spec() {
    let spec = [oci_spec::runtime::LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()
        .unwrap()];
    let add = [DeviceAccess {
        major: 226,
        minor: 128,
    }];
    let p = rules_program(&spec, &add).unwrap();
    assert!(interp::allows_char_rwm(&p, 226, 128));
    assert!(interp::allows_char_rwm(&p, 1, 3));
    assert!(!interp::allows_char_rwm(&p, 226, 129));
}

#[test]
fn without_replace_attaches_then_detaches_from_the_start() {
    let fake = Fake::with(&[runc_default_program()]);
    let c = allow_devices_via(
        WithoutReplace(fake.clone()),
        dir().as_fd(),
        &[GPU],
        &deny_all_spec(),
        false,
    )
    .unwrap();
    let writes: Vec<_> = fake
        .calls()
        .into_iter()
        .filter(|c| matches!(c, Call::Attach { .. } | Call::Detach(_)))
        .collect();
    assert_eq!(
        writes,
        [
            Call::Attach {
                prog: 101,
                flags: BPF_F_ALLOW_MULTI,
                replace: None
            },
            Call::Detach(1),
        ],
        "BPF_F_REPLACE never tried"
    );
    assert!(
        !fake.replace_unsupported(),
        "the wrapped kernel's memo is its own"
    );
    c.revert().unwrap();
    assert_eq!(fake.attached(), [1]);
}
