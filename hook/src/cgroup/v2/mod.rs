//! cgroup v2 device access: BPF_CGROUP_DEVICE programs, through bpf(2).
//!
//! The kernel runs every program attached to the cgroup (and its ancestors)
//! and allows an access only when all of them allow it, so attaching one more
//! "allow" program can never widen access. Instead each attached program that
//! denies one of the devices is replaced, atomically (`BPF_F_REPLACE`), by
//! an allow-prefix for those devices followed by the program's own
//! instructions, unchanged. Where those cannot be read back or loaded again,
//! the replacement is built from the spec's device rules instead.
//!
//! Guarantees of [`allow_devices`]: programs that already allow the devices
//! are left alone (a second run changes nothing); all or nothing (when one
//! replacement fails, the ones this call made are undone before it returns
//! the error); never wider than asked at any moment (without
//! `BPF_F_REPLACE`, the new program is attached next to the old one and the
//! old one detached after, never the other way round). The programs and
//! their instructions are judged with the kernel-free [`crate::bpf`]; the
//! kernel is reached only through the [`BpfSys`] trait, whose one real
//! implementation ([`Kernel`], sys.rs) holds every `unsafe` block of this
//! module, and whose fake (fake.rs) tests this logic without root.
//!
//! Limits: `runc update`, `docker update` and systemd rebuild the program from
//! the spec and drop what was added here. Only this cgroup's own programs are
//! replaced; a program on an ancestor cgroup that denies the device still
//! wins.

//!
//! Layout: this file has the kernel's vocabulary (devices, programs, the
//! [`BpfSys`] commands, errors); replace.rs replaces the programs
//! ([`allow_devices`], [`V2Change`]), judge.rs reads them ([`judge`],
//! [`is_allowed`]), sys.rs is the kernel, fake.rs the tests' kernel. Over a
//! container's whole cgroup: levels.rs ([`V2Cgroup`], its directory and
//! every ancestor's), scoped.rs ([`Scoped`], a systemd scope around it),
//! pin.rs (the bpffs pins systemd attaches programs from).

#[cfg(test)]
mod fake;
mod judge;
mod levels;
mod pin;
mod replace;
mod scoped;
#[allow(unsafe_code)]
mod sys;

pub use judge::{
    attached_programs, is_allowed, judge, judge_programs, program_ids, programs_allow, Judgement,
};
pub use levels::V2Cgroup;
pub use replace::{
    allow_devices, allow_devices_via, allow_devices_with, V2Change, WithoutReplace, PREFIX_NAME,
    RULES_NAME,
};
pub use scoped::Scoped;
pub use sys::{obj_get, obj_pin};
pub use sys::{Kernel, BPF_F_ALLOW_MULTI, BPF_F_REPLACE, BPF_PROG_TYPE_CGROUP_DEVICE};

use crate::bpf::insn::{AsmError, Insn};
use crate::bpf::interp;
use std::io;
use std::os::fd::BorrowedFd;

/// A char device to allow read, write and mknod of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeviceAccess {
    pub major: u32,
    pub minor: u32,
}

/// Device access bits as the kernel passes them to the program
/// (`BPF_DEVCG_ACC_*`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access(u32);

impl Access {
    pub const MKNOD: Access = Access(interp::ACC_MKNOD);
    pub const READ: Access = Access(interp::ACC_READ);
    pub const WRITE: Access = Access(interp::ACC_WRITE);
    pub const RWM: Access = Access(interp::ACC_ALL);
}

impl std::ops::BitOr for Access {
    type Output = Access;
    fn bitor(self, rhs: Access) -> Access {
        Access(self.0 | rhs.0)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BpfError {
    #[error("bpf({cmd}) on {what} failed: {source}")]
    Syscall {
        cmd: &'static str,
        what: String,
        source: io::Error,
    },
    #[error(
        "bpf(BPF_PROG_LOAD) of device program {name:?} ({insns} instructions) failed: \
         {source}; verifier log:\n{log}"
    )]
    Load {
        name: String,
        insns: usize,
        source: io::Error,
        log: String,
    },
    #[error("program {id} attached as a device program has type {prog_type}, not BPF_PROG_TYPE_CGROUP_DEVICE (15)")]
    WrongType { id: u32, prog_type: u32 },
    #[error("cannot duplicate the cgroup directory descriptor (fcntl F_DUPFD_CLOEXEC): {0}")]
    Dup(io::Error),
    #[error("device program for {devices} device(s) too large: {source}")]
    TooLarge { devices: usize, source: AsmError },
    #[error("{0} (and undoing the earlier replacements failed too: {1})")]
    Rollback(Box<BpfError>, Box<BpfError>),
}

/// The BPF_CGROUP_DEVICE programs attached directly to a cgroup.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attached {
    /// The cgroup's attach flags for BPF_CGROUP_DEVICE (`BPF_F_ALLOW_MULTI`
    /// or not).
    pub flags: u32,
    /// The programs' ids, in the order the kernel runs them.
    pub ids: Vec<u32>,
}

/// What `BPF_OBJ_GET_INFO_BY_FD` tells about a program.
#[derive(Clone, Debug)]
pub struct ProgInfo {
    pub prog_type: u32,
    pub name: String,
    pub nr_map_ids: u32,
    /// The translated instructions; empty when the kernel does not show
    /// them (no CAP_BPF/CAP_SYS_ADMIN, or blinded constants with
    /// kptr_restrict).
    pub insns: Vec<Insn>,
}

/// The few bpf(2) commands replacing a cgroup's device programs takes, all
/// for attach type BPF_CGROUP_DEVICE. [`Kernel`] makes the system calls;
/// the tests' fake (fake.rs) keeps a cgroup in memory, records the calls
/// and fails the ones it is told to.
pub trait BpfSys {
    /// An open program (the kernel's: a descriptor; closing it leaves the
    /// program attached).
    type Prog;
    /// `BPF_PROG_QUERY`: the programs attached directly to the cgroup.
    fn query(&self, cgroup: BorrowedFd) -> Result<Attached, BpfError>;
    /// `BPF_PROG_GET_FD_BY_ID`.
    fn prog_by_id(&self, id: u32) -> Result<Self::Prog, BpfError>;
    /// `BPF_OBJ_GET_INFO_BY_FD` with the translated instructions (`id` names
    /// the program in errors).
    fn prog_info(&self, prog: &Self::Prog, id: u32) -> Result<ProgInfo, BpfError>;
    /// `BPF_OBJ_GET_INFO_BY_FD`, the id only.
    fn prog_id(&self, prog: &Self::Prog) -> io::Result<u32>;
    /// `BPF_PROG_LOAD` of a BPF_PROG_TYPE_CGROUP_DEVICE program.
    fn prog_load(&self, insns: &[Insn], name: &str) -> Result<Self::Prog, BpfError>;
    /// `BPF_PROG_ATTACH` with `flags`; with `BPF_F_REPLACE`, in place of
    /// `replace`.
    fn prog_attach(
        &self,
        cgroup: BorrowedFd,
        prog: &Self::Prog,
        flags: u32,
        replace: Option<&Self::Prog>,
    ) -> io::Result<()>;
    /// `BPF_PROG_DETACH`.
    fn prog_detach(&self, cgroup: BorrowedFd, prog: &Self::Prog) -> io::Result<()>;
    /// Whether `BPF_F_REPLACE` turned out unsupported earlier (kernels
    /// before 5.6 answer EINVAL), so [`BpfSys::prog_attach`] with it need
    /// not be tried again.
    fn replace_unsupported(&self) -> bool;
    /// Remembers that `BPF_F_REPLACE` is unsupported.
    fn set_replace_unsupported(&self);
}

/// A device program: id, name and (translated or loaded) instructions.
#[derive(Debug, Clone)]
pub struct Program {
    pub id: u32,
    pub name: String,
    pub insns: Vec<Insn>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_bits_match_the_uapi() {
        assert_eq!((Access::READ | Access::WRITE | Access::MKNOD), Access::RWM);
        assert_eq!(Access::MKNOD.0, 1);
        assert_eq!(Access::READ.0, 2);
        assert_eq!(Access::WRITE.0, 4);
    }
}
