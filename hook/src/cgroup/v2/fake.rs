//! A fake of the bpf(2) commands ([`BpfSys`]): one cgroup's
//! BPF_CGROUP_DEVICE programs in memory, every call recorded, any call
//! failable; and the tests of the replace / rollback / judge logic of
//! `v2/mod.rs` through it, without root or a kernel.
//!
//! The fake keeps the kernel's rules that logic depends on: with
//! `BPF_F_REPLACE` the replaced program must be attached (else ENOENT) and
//! is swapped in place; without `BPF_F_ALLOW_MULTI` an attach replaces
//! everything; attaching a program twice is EEXIST, detaching one not
//! attached ENOENT; a kernel without `BPF_F_REPLACE` answers EINVAL.

use super::*;
use crate::bpf::program::tests::{runc_1_1_5_program, runc_default_program};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::fs::File;
use std::rc::Rc;

/// One recorded call.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Call {
    Query,
    ById(u32),
    Info(u32),
    Id(u32),
    /// The name of the program loaded.
    Load(String),
    Attach {
        prog: u32,
        flags: u32,
        replace: Option<u32>,
    },
    Detach(u32),
}

impl Call {
    fn kind(&self) -> &'static str {
        match self {
            Call::Query => "query",
            Call::ById(_) => "by_id",
            Call::Info(_) => "info",
            Call::Id(_) => "id",
            Call::Load(_) => "load",
            Call::Attach { .. } => "attach",
            Call::Detach(_) => "detach",
        }
    }
}

#[derive(Clone, Debug)]
pub struct FakeProg {
    pub prog_type: u32,
    pub name: String,
    pub nr_map_ids: u32,
    pub insns: Vec<Insn>,
    /// Whether BPF_OBJ_GET_INFO_BY_FD shows the instructions.
    pub shown: bool,
}

#[derive(Default)]
pub struct State {
    pub programs: BTreeMap<u32, FakeProg>,
    pub attached: Vec<u32>,
    pub flags: u32,
    pub calls: Vec<Call>,
    /// Fail the n-th call (1-based) of a kind with an errno.
    pub fail: Vec<(&'static str, usize, i32)>,
    /// Answer EINVAL to BPF_F_REPLACE (kernels before 5.6).
    pub no_replace_support: bool,
    next_id: u32,
}

/// The fake; clones share one state (a change keeps one to revert with).
#[derive(Clone, Default)]
pub struct Fake {
    pub state: Rc<RefCell<State>>,
    replace_unsupported: Rc<Cell<bool>>,
}

impl Fake {
    /// A cgroup in multi mode with these programs attached (ids 1, 2, …).
    pub fn with(programs: &[Vec<Insn>]) -> Fake {
        let fake = Fake::default();
        {
            let mut s = fake.state.borrow_mut();
            s.flags = BPF_F_ALLOW_MULTI;
            s.next_id = 100;
            for (i, insns) in programs.iter().enumerate() {
                let id = i as u32 + 1;
                s.programs.insert(
                    id,
                    FakeProg {
                        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
                        name: format!("runc_{id}"),
                        nr_map_ids: 0,
                        insns: insns.clone(),
                        shown: true,
                    },
                );
                s.attached.push(id);
            }
        }
        fake
    }

    pub fn fail(&self, kind: &'static str, nth: usize, errno: i32) -> &Fake {
        self.state.borrow_mut().fail.push((kind, nth, errno));
        self
    }

    pub fn attached(&self) -> Vec<u32> {
        self.state.borrow().attached.clone()
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state.borrow().calls.clone()
    }

    pub fn program(&self, id: u32) -> FakeProg {
        self.state.borrow().programs[&id].clone()
    }

    /// Records `call`; the errno to fail it with, if it is one to fail.
    fn record(&self, call: Call) -> io::Result<()> {
        let mut s = self.state.borrow_mut();
        let kind = call.kind();
        s.calls.push(call);
        let nth = s.calls.iter().filter(|c| c.kind() == kind).count();
        match s.fail.iter().find(|f| f.0 == kind && f.1 == nth) {
            Some(&(_, _, errno)) => Err(io::Error::from_raw_os_error(errno)),
            None => Ok(()),
        }
    }

    fn syscall(cmd: &'static str, source: io::Error) -> BpfError {
        BpfError::Syscall {
            cmd,
            what: "the fake".into(),
            source,
        }
    }
}

impl BpfSys for Fake {
    type Prog = u32;

    fn query(&self, _cgroup: BorrowedFd) -> Result<Attached, BpfError> {
        self.record(Call::Query)
            .map_err(|e| Fake::syscall("BPF_PROG_QUERY", e))?;
        let s = self.state.borrow();
        Ok(Attached {
            flags: s.flags,
            ids: s.attached.clone(),
        })
    }

    fn prog_by_id(&self, id: u32) -> Result<u32, BpfError> {
        self.record(Call::ById(id))
            .map_err(|e| Fake::syscall("BPF_PROG_GET_FD_BY_ID", e))?;
        if !self.state.borrow().programs.contains_key(&id) {
            let e = io::Error::from_raw_os_error(libc::ENOENT);
            return Err(Fake::syscall("BPF_PROG_GET_FD_BY_ID", e));
        }
        Ok(id)
    }

    fn prog_info(&self, prog: &u32, _id: u32) -> Result<ProgInfo, BpfError> {
        self.record(Call::Info(*prog))
            .map_err(|e| Fake::syscall("BPF_OBJ_GET_INFO_BY_FD", e))?;
        let p = self.program(*prog);
        Ok(ProgInfo {
            prog_type: p.prog_type,
            name: p.name,
            nr_map_ids: p.nr_map_ids,
            insns: if p.shown { p.insns } else { Vec::new() },
        })
    }

    fn prog_id(&self, prog: &u32) -> io::Result<u32> {
        self.record(Call::Id(*prog))?;
        Ok(*prog)
    }

    fn prog_load(&self, insns: &[Insn], name: &str) -> Result<u32, BpfError> {
        self.record(Call::Load(name.into()))
            .map_err(|source| BpfError::Load {
                name: name.into(),
                insns: insns.len(),
                source,
                log: "fake verifier says no".into(),
            })?;
        let mut s = self.state.borrow_mut();
        s.next_id += 1;
        let id = s.next_id;
        s.programs.insert(
            id,
            FakeProg {
                prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
                name: name.into(),
                nr_map_ids: 0,
                insns: insns.to_vec(),
                shown: true,
            },
        );
        Ok(id)
    }

    fn prog_attach(
        &self,
        _cgroup: BorrowedFd,
        prog: &u32,
        flags: u32,
        replace: Option<&u32>,
    ) -> io::Result<()> {
        self.record(Call::Attach {
            prog: *prog,
            flags,
            replace: replace.copied(),
        })?;
        let errno = |e| Err(io::Error::from_raw_os_error(e));
        let mut s = self.state.borrow_mut();
        if flags & BPF_F_ALLOW_MULTI == 0 {
            s.attached = vec![*prog];
            return Ok(());
        }
        if s.attached.contains(prog) {
            return errno(libc::EEXIST);
        }
        if flags & BPF_F_REPLACE != 0 {
            if s.no_replace_support {
                return errno(libc::EINVAL);
            }
            let Some(at) = replace.and_then(|r| s.attached.iter().position(|a| a == r)) else {
                return errno(libc::ENOENT);
            };
            s.attached[at] = *prog;
            return Ok(());
        }
        s.attached.push(*prog);
        Ok(())
    }

    fn prog_detach(&self, _cgroup: BorrowedFd, prog: &u32) -> io::Result<()> {
        self.record(Call::Detach(*prog))?;
        let mut s = self.state.borrow_mut();
        match s.attached.iter().position(|a| a == prog) {
            Some(at) => {
                s.attached.remove(at);
                Ok(())
            }
            None => Err(io::Error::from_raw_os_error(libc::ENOENT)),
        }
    }

    fn replace_unsupported(&self) -> bool {
        self.replace_unsupported.get()
    }

    fn set_replace_unsupported(&self) {
        self.replace_unsupported.set(true);
    }
}

mod tests {
    use super::*;
    use crate::bpf::interp::allows_char_rwm;
    use oci_spec::runtime::LinuxDeviceCgroupBuilder;

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
    fn judging_the_attached_programs() {
        let fake = Fake::with(&[ok_ret(1), runc_default_program()]);
        let progs = attached_programs(&fake, dir().as_fd()).unwrap();
        assert_eq!(
            judge_programs(&progs, &[GPU]),
            Judgement::Denied {
                id: 2,
                name: "runc_2".into(),
                device: GPU
            }
        );
        assert!(programs_allow(&progs, 1, 3, Access::RWM));
        assert!(!programs_allow(&progs, 226, 128, Access::READ));
        // runc's program allows mknod of any char device.
        assert!(programs_allow(&progs, 226, 128, Access::MKNOD));
        // Unreadable: unknown to judge, denying to programs_allow.
        fake.state.borrow_mut().programs.get_mut(&2).unwrap().shown = false;
        let progs = attached_programs(&fake, dir().as_fd()).unwrap();
        assert!(matches!(
            judge_programs(&progs, &[GPU]),
            Judgement::Unknown { id: 2, .. }
        ));
        assert!(!programs_allow(&progs, 1, 3, Access::READ));
        // None attached: allowed.
        assert_eq!(judge_programs(&[], &[GPU]), Judgement::Allowed);
        assert!(programs_allow(&[], 226, 128, Access::RWM));
        // A failing query is an error.
        let fake = Fake::with(&[]);
        fake.fail("query", 1, libc::EPERM);
        assert!(attached_programs(&fake, dir().as_fd()).is_err());
    }
}
