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

#[cfg(test)]
mod fake;
#[allow(unsafe_code)]
mod sys;
pub use sys::{obj_get, obj_pin};

use crate::bpf::insn::{self, AsmError, Insn};
use crate::bpf::interp;
use crate::bpf::program::{self, Rule};
use oci_spec::runtime::LinuxDeviceCgroup;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::sync::atomic::AtomicBool;
pub use sys::{Kernel, BPF_F_ALLOW_MULTI, BPF_F_REPLACE, BPF_PROG_TYPE_CGROUP_DEVICE};

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

/// How a replacement program was made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Build {
    /// Allow-prefix + the old program's translated instructions.
    Prefix,
    /// From the spec's device rules (+ runc's defaults) + the additions.
    Rules,
}

struct Replacement<P> {
    old: P,
    old_id: u32,
    new: P,
    new_id: u32,
    /// The cgroup's attach flags for BPF_CGROUP_DEVICE.
    flags: u32,
    build: Build,
}

/// What [`allow_devices`] replaced; [`V2Change::revert`] puts the old
/// programs back. Dropping it keeps the new programs attached.
#[must_use]
pub struct V2Change<S: BpfSys = Kernel> {
    sys: S,
    cgroup: Option<OwnedFd>,
    replaced: Vec<Replacement<S::Prog>>,
    /// Every program attached to the cgroup afterwards, as this call saw or
    /// made it: what [`judge_programs`] judges the level by.
    pub attached: Vec<Program>,
}

/// A device program: id, name and (translated or loaded) instructions.
#[derive(Debug, Clone)]
pub struct Program {
    pub id: u32,
    pub name: String,
    pub insns: Vec<Insn>,
}

impl<S: BpfSys> V2Change<S> {
    /// The program (and its id) that replaced program `old_id`, when this
    /// change replaced it.
    pub fn replacement_of(&self, old_id: u32) -> Option<(&S::Prog, u32)> {
        self.replaced
            .iter()
            .find(|r| r.old_id == old_id)
            .map(|r| (&r.new, r.new_id))
    }

    /// Whether any program was replaced.
    pub fn changed(&self) -> bool {
        !self.replaced.is_empty()
    }

    /// Attaches each old program again in place of its replacement, atomically
    /// per program, newest first. Tries all, returns the first error.
    pub fn revert(self) -> Result<(), BpfError> {
        let Some(cgroup) = self.cgroup else {
            return Ok(());
        };
        let mut first = None;
        for r in self.replaced.iter().rev() {
            let undo = swap(
                &self.sys,
                cgroup.as_fd(),
                r.flags,
                (&r.new, r.new_id),
                (&r.old, r.old_id),
            );
            if let Err(e) = undo {
                first.get_or_insert(e);
            }
        }
        first.map_or(Ok(()), Err)
    }
}

impl<S: BpfSys> fmt::Display for V2Change<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.replaced.is_empty() {
            return f.write_str("no device program changed");
        }
        for (i, r) in self.replaced.iter().enumerate() {
            let how = match r.build {
                Build::Prefix => "allow-prefix + its own instructions",
                Build::Rules => "a program built from the spec's device rules",
            };
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "program {} replaced by {} ({how})", r.old_id, r.new_id)?;
        }
        Ok(())
    }
}

impl<S: BpfSys> fmt::Debug for V2Change<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "V2Change({self})")
    }
}

pub const PREFIX_NAME: &str = "amd_gpu_allow";
pub const RULES_NAME: &str = "amd_gpu_rules";

/// Makes every device in `devices` accessible (char, rwm) to the cgroup
/// whose directory is open as `cgroup_dir`.
///
/// Every BPF_CGROUP_DEVICE program attached to the cgroup (they are ANDed)
/// that denies any of `devices` is replaced atomically by an allow-prefix
/// for the devices + the old program's translated instructions. Programs
/// that already allow all the devices are left alone, so a second run
/// changes nothing. When the old instructions cannot be read or loaded again
/// (e.g. blinded by `bpf_jit_harden`, helper calls, maps) the replacement is
/// built from `fallback_rules` (the spec's `linux.resources.devices`) +
/// the rules runc appends to every container + the additions, with
/// "last matching rule wins, default deny" semantics per access bit. With no program attached
/// there is nothing to do: cgroup v2 does not restrict devices then.
pub fn allow_devices(
    cgroup_dir: BorrowedFd,
    devices: &[DeviceAccess],
    fallback_rules: &[LinuxDeviceCgroup],
) -> Result<V2Change, BpfError> {
    allow_devices_with(cgroup_dir, devices, fallback_rules, false)
}

/// [`allow_devices`], optionally ignoring the old instructions (to exercise
/// the rules path on a kernel that shows them).
pub fn allow_devices_with(
    cgroup_dir: BorrowedFd,
    devices: &[DeviceAccess],
    fallback_rules: &[LinuxDeviceCgroup],
    force_rules: bool,
) -> Result<V2Change, BpfError> {
    allow_devices_via(Kernel, cgroup_dir, devices, fallback_rules, force_rules)
}

/// [`allow_devices_with`] through any [`BpfSys`].
pub fn allow_devices_via<S: BpfSys>(
    sys: S,
    cgroup_dir: BorrowedFd,
    devices: &[DeviceAccess],
    fallback_rules: &[LinuxDeviceCgroup],
    force_rules: bool,
) -> Result<V2Change<S>, BpfError> {
    let attached = sys.query(cgroup_dir)?;
    let mut change = V2Change {
        sys,
        cgroup: None,
        replaced: Vec::new(),
        attached: Vec::new(),
    };
    if attached.ids.is_empty() || devices.is_empty() {
        log::debug!("cgroup v2: no device program attached; nothing to do");
        return Ok(change);
    }
    let flags = attached.flags;
    for id in attached.ids {
        let result = replace_one(
            &change.sys,
            cgroup_dir,
            flags,
            id,
            devices,
            fallback_rules,
            force_rules,
        );
        match result {
            Ok(Outcome::Kept(p)) => change.attached.push(p),
            Ok(Outcome::Replaced(r, p)) => {
                change.attached.push(p);
                log::debug!(
                    "cgroup v2: program {} replaced by {} ({:?})",
                    id,
                    r.new_id,
                    r.build
                );
                if change.cgroup.is_none() {
                    match cgroup_dir.try_clone_to_owned() {
                        Ok(fd) => change.cgroup = Some(fd),
                        Err(e) => {
                            // Without a descriptor we cannot undo later:
                            // undo this one now, and the earlier ones (none:
                            // the descriptor is taken at the first).
                            let _ = swap(
                                &change.sys,
                                cgroup_dir,
                                r.flags,
                                (&r.new, r.new_id),
                                (&r.old, r.old_id),
                            );
                            return Err(BpfError::Dup(e));
                        }
                    }
                }
                change.replaced.push(r);
            }
            Err(e) => {
                // All or nothing: put back what this call replaced so far.
                return match change.revert() {
                    Ok(()) => Err(e),
                    Err(undo) => Err(BpfError::Rollback(Box::new(e), Box::new(undo))),
                };
            }
        }
    }
    Ok(change)
}

/// What [`replace_one`] did with a program, and the program now attached.
enum Outcome<P> {
    Kept(Program),
    Replaced(Replacement<P>, Program),
}

/// Replaces program `id` if it denies any of `devices`.
fn replace_one<S: BpfSys>(
    sys: &S,
    cgroup: BorrowedFd,
    flags: u32,
    id: u32,
    devices: &[DeviceAccess],
    fallback_rules: &[LinuxDeviceCgroup],
    force_rules: bool,
) -> Result<Outcome<S::Prog>, BpfError> {
    let old = sys.prog_by_id(id)?;
    let info = sys.prog_info(&old, id)?;
    let denied: Vec<(u32, u32)> = devices
        .iter()
        .filter(|d| {
            info.insns.is_empty() || !interp::allows_char_rwm(&info.insns, d.major, d.minor)
        })
        .map(|d| (d.major, d.minor))
        .collect();
    if denied.is_empty() {
        log::debug!(
            "cgroup v2: program {id} ({:?}) already allows the devices",
            info.name
        );
        return Ok(Outcome::Kept(Program {
            id,
            name: info.name,
            insns: info.insns,
        }));
    }
    if info.prog_type != BPF_PROG_TYPE_CGROUP_DEVICE {
        // Cannot happen for this attach type; refuse rather than guess.
        return Err(BpfError::WrongType {
            id,
            prog_type: info.prog_type,
        });
    }
    let mut loaded = None;
    if !force_rules && reusable(&info.insns, info.nr_map_ids) {
        let mut prog = program::allow_prefix(&denied).map_err(|source| BpfError::TooLarge {
            devices: denied.len(),
            source,
        })?;
        prog.extend_from_slice(&info.insns);
        match sys.prog_load(&prog, PREFIX_NAME) {
            Ok(fd) => loaded = Some((fd, Build::Prefix, prog)),
            Err(e) => log::warn!(
                "cgroup v2: program {id} cannot be loaded again behind an allow-prefix, \
                 building one from the spec's device rules instead: {e}"
            ),
        }
    } else if !force_rules {
        log::debug!(
            "cgroup v2: program {id} ({:?}): instructions not reusable ({} shown, {} maps); \
             building from the spec's device rules",
            info.name,
            info.insns.len(),
            info.nr_map_ids
        );
    }
    let (new, build, insns) = match loaded {
        Some(l) => l,
        None => {
            let prog = rules_program(fallback_rules, devices)?;
            (sys.prog_load(&prog, RULES_NAME)?, Build::Rules, prog)
        }
    };
    let new_id = sys.prog_id(&new).unwrap_or(0);
    swap(sys, cgroup, flags, (&old, id), (&new, new_id))?;
    let name = match build {
        Build::Prefix => PREFIX_NAME,
        Build::Rules => RULES_NAME,
    };
    Ok(Outcome::Replaced(
        Replacement {
            old,
            old_id: id,
            new,
            new_id,
            flags,
            build,
        },
        Program {
            id: new_id,
            name: name.into(),
            insns,
        },
    ))
}

/// The spec's rules, runc's default rules (runc appends them to every
/// container's), then an allow rule per device.
fn rules_program(
    fallback_rules: &[LinuxDeviceCgroup],
    devices: &[DeviceAccess],
) -> Result<Vec<Insn>, BpfError> {
    let mut rules: Vec<Rule> = fallback_rules.iter().filter_map(Rule::from_oci).collect();
    rules.extend(program::runc_default_rules());
    rules.extend(devices.iter().map(|d| Rule::allow_char(d.major, d.minor)));
    program::from_rules(&rules).map_err(|source| BpfError::TooLarge {
        devices: devices.len(),
        source,
    })
}

/// Can these translated instructions be loaded again as they are? Not when
/// they call helpers (the dump carries kernel-internal call offsets), use
/// maps, use the hidden register AX of constant blinding, or are missing.
fn reusable(insns: &[Insn], nr_map_ids: u32) -> bool {
    use insn::*;
    !insns.is_empty()
        && nr_map_ids == 0
        && insns.iter().all(|i| {
            let call = matches!(class(i.code), JMP | JMP32) && i.code & 0xf0 == CALL;
            let ld_other =
                class(i.code) == LD && (i.code != LD | SIZE_DW | MODE_IMM || i.src() != 0);
            let stores = matches!(class(i.code), ST | STX) && i.dst() != R10;
            i.dst() <= R10 && i.src() <= R10 && !call && !ld_other && !stores
        })
}

/// Set once BPF_F_REPLACE turned out unsupported by this kernel; from then
/// on [`Kernel`] attaches, then detaches. Tests may set it to exercise that
/// path on a kernel that has BPF_F_REPLACE.
pub static NO_REPLACE: AtomicBool = AtomicBool::new(false);

/// Attaches `to` in place of `from` (each a program and its id, for
/// messages): atomically with BPF_F_REPLACE when the cgroup is in multi
/// mode; where the kernel lacks BPF_F_REPLACE, attaches `to` next to `from`
/// and then detaches `from` (both attached at once are ANDed, never wider
/// than `from` alone; never detach first). In single-program mode attaching
/// replaces.
fn swap<S: BpfSys>(
    sys: &S,
    cgroup: BorrowedFd,
    flags: u32,
    (from, from_id): (&S::Prog, u32),
    (to, to_id): (&S::Prog, u32),
) -> Result<(), BpfError> {
    let err = |cmd, source: io::Error| {
        let hint = if source.raw_os_error() == Some(libc::ENOENT) {
            " (the old program is no longer attached, or attached through a bpf_link)"
        } else {
            ""
        };
        BpfError::Syscall {
            cmd,
            what: format!("program {to_id} in place of program {from_id}{hint}"),
            source,
        }
    };
    if flags & BPF_F_ALLOW_MULTI == 0 {
        return sys
            .prog_attach(cgroup, to, flags, None)
            .map_err(|e| err("BPF_PROG_ATTACH", e));
    }
    if !sys.replace_unsupported() {
        let replace = BPF_F_ALLOW_MULTI | BPF_F_REPLACE;
        match sys.prog_attach(cgroup, to, replace, Some(from)) {
            Ok(()) => return Ok(()),
            Err(e) if e.raw_os_error() == Some(libc::EINVAL) => {
                log::debug!("cgroup v2: BPF_F_REPLACE refused ({e}); attach + detach instead");
                sys.set_replace_unsupported();
            }
            Err(e) => return Err(err("BPF_PROG_ATTACH", e)),
        }
    }
    sys.prog_attach(cgroup, to, BPF_F_ALLOW_MULTI, None)
        .map_err(|e| err("BPF_PROG_ATTACH", e))?;
    if let Err(e) = sys.prog_detach(cgroup, from) {
        // Back to where we started: detach the one we just attached.
        let _ = sys.prog_detach(cgroup, to);
        return Err(err("BPF_PROG_DETACH", e));
    }
    Ok(())
}

/// The ids of the BPF_CGROUP_DEVICE programs attached to this cgroup.
pub fn program_ids(cgroup_dir: BorrowedFd) -> Result<Vec<u32>, BpfError> {
    Ok(Kernel.query(cgroup_dir)?.ids)
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
        &attached_programs(&Kernel, cgroup_dir)?,
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

/// [`judge`] on programs already at hand (those [`allow_devices`] just
/// examined or attached: [`V2Change::attached`]), without a syscall.
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
        &attached_programs(&Kernel, cgroup_dir)?,
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
    use super::*;
    use crate::bpf::insn::*;

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
    fn access_bits_match_the_uapi() {
        assert_eq!((Access::READ | Access::WRITE | Access::MKNOD), Access::RWM);
        assert_eq!(Access::MKNOD.0, 1);
        assert_eq!(Access::READ.0, 2);
        assert_eq!(Access::WRITE.0, 4);
    }
}
