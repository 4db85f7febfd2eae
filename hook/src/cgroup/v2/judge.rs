//! Reading a cgroup's device programs and judging them with the
//! kernel-free interpreter ([`crate::bpf::interp`]): does what is attached
//! allow a device? ([`judge`], [`is_allowed`], and the same on programs
//! already at hand, without a syscall.)
//!
//! Guarantees: only queries (`BPF_PROG_QUERY`, `BPF_PROG_GET_FD_BY_ID`,
//! `BPF_OBJ_GET_INFO_BY_FD`); nothing attached is changed. A program whose
//! instructions cannot be read or interpreted is never taken as allowing.

use super::sys::Kernel;
use super::{Access, BpfError, BpfSys, DeviceAccess, Program};
use crate::bpf::interp;
use std::os::fd::BorrowedFd;

/// The ids of the BPF_CGROUP_DEVICE programs attached to this cgroup.
pub fn program_ids(cgroup_dir: BorrowedFd) -> Result<Vec<u32>, BpfError> {
    Ok(Kernel::default().query(cgroup_dir)?.ids)
}

/// What a program attached to a cgroup says about a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// Every attached program allows every device (or none is attached).
    Allowed,
    /// Program `id` (`name`) denies `device`.
    Denied {
        id: u32,
        name: String,
        device: DeviceAccess,
    },
    /// Program `id` cannot be read or interpreted: nobody can tell.
    Unknown { id: u32, why: String },
}

/// Judges the programs attached directly to this cgroup: do they allow
/// read, write and mknod of every device in `devices`?
pub fn judge(cgroup_dir: BorrowedFd, devices: &[DeviceAccess]) -> Result<Judgement, BpfError> {
    Ok(judge_programs(
        &attached_programs(&Kernel::default(), cgroup_dir)?,
        devices,
    ))
}

/// The BPF_CGROUP_DEVICE programs attached to this cgroup, with their
/// translated instructions (empty when the kernel does not show them).
pub fn attached_programs<S: BpfSys>(
    sys: &S,
    cgroup_dir: BorrowedFd,
) -> Result<Vec<Program>, BpfError> {
    let mut programs = Vec::new();
    for id in sys.query(cgroup_dir)?.ids {
        let fd = sys.prog_by_id(id)?;
        let info = sys.prog_info(&fd, id)?;
        programs.push(Program {
            id,
            name: info.name,
            insns: info.insns,
        });
    }
    Ok(programs)
}

/// [`judge`] on programs already at hand (those [`super::allow_devices`] just
/// examined or attached: [`super::V2Change::attached`]), without a syscall.
pub fn judge_programs(programs: &[Program], devices: &[DeviceAccess]) -> Judgement {
    let mut unknown = None;
    for p in programs {
        if p.insns.is_empty() {
            unknown.get_or_insert(Judgement::Unknown {
                id: p.id,
                why: "its instructions cannot be read".into(),
            });
            continue;
        }
        for d in devices {
            for acc in 1..=interp::ACC_ALL {
                match interp::run(
                    &p.insns,
                    interp::DevCtx::new(interp::DEV_CHAR, acc, d.major, d.minor),
                ) {
                    interp::Verdict::Allow => {}
                    interp::Verdict::Deny => {
                        return Judgement::Denied {
                            id: p.id,
                            name: p.name.clone(),
                            device: *d,
                        }
                    }
                    interp::Verdict::Unknown(why) => {
                        unknown.get_or_insert(Judgement::Unknown { id: p.id, why });
                    }
                }
            }
        }
    }
    unknown.unwrap_or(Judgement::Allowed)
}

/// Does the set of programs attached to this cgroup allow every non-empty
/// part of `access` on char device major:minor? No program: yes. A program
/// whose instructions cannot be read or interpreted counts as denying.
pub fn is_allowed(
    cgroup_dir: BorrowedFd,
    major: u32,
    minor: u32,
    access: Access,
) -> Result<bool, BpfError> {
    Ok(programs_allow(
        &attached_programs(&Kernel::default(), cgroup_dir)?,
        major,
        minor,
        access,
    ))
}

/// [`is_allowed`] on programs at hand.
pub fn programs_allow(programs: &[Program], major: u32, minor: u32, access: Access) -> bool {
    programs.iter().all(|p| {
        !p.insns.is_empty()
            && (1..=access.0)
                .filter(|sub| sub & !access.0 == 0)
                .all(|sub| interp::allows_char(&p.insns, major, minor, sub))
    })
}

#[cfg(test)]
mod tests {
    use super::super::fake::Fake;
    use super::*;
    use crate::bpf::insn::{self, Insn};
    use crate::bpf::program::tests::runc_default_program;
    use std::fs::File;
    use std::os::fd::AsFd;

    const GPU: DeviceAccess = DeviceAccess {
        major: 226,
        minor: 128,
    };

    /// Any directory: the fake ignores the cgroup descriptor.
    fn dir() -> File {
        File::open("/").unwrap()
    }

    fn ok_ret(v: i32) -> Vec<Insn> {
        vec![insn::alu64_k(insn::MOV, insn::R0, v), insn::exit()]
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
