//! Replacing a cgroup's device programs so that they allow more devices
//! ([`allow_devices`]), all or nothing, and putting the old ones back
//! ([`V2Change::revert`]).
//!
//! Guarantees: as the module's ([`super`]): programs that already allow the
//! devices are left alone; when one replacement fails the earlier ones are
//! undone before the error is returned; never wider than asked at any
//! moment (without `BPF_F_REPLACE` the new program is attached next to the
//! old one and the old one detached after). The kernel is reached only
//! through [`BpfSys`].

use super::sys::{Kernel, BPF_F_ALLOW_MULTI, BPF_F_REPLACE, BPF_PROG_TYPE_CGROUP_DEVICE};
use super::{BpfError, BpfSys, DeviceAccess, Program};
use crate::bpf::insn::{self, Insn};
use crate::bpf::interp;
use crate::bpf::program::{self, Rule};
use oci_spec::runtime::LinuxDeviceCgroup;
use std::fmt;
use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

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
    /// made it: what [`super::judge_programs`] judges the level by.
    pub attached: Vec<Program>,
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
    allow_devices_via(
        Kernel::default(),
        cgroup_dir,
        devices,
        fallback_rules,
        force_rules,
    )
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

/// A [`BpfSys`] that never tries `BPF_F_REPLACE`: attaches, then detaches,
/// as on kernels before 5.6. For exercising that path on a kernel that has
/// `BPF_F_REPLACE` (the cgroup v2 example); everything else is `S`'s.
#[derive(Clone, Copy, Debug, Default)]
pub struct WithoutReplace<S>(pub S);

impl<S: BpfSys> BpfSys for WithoutReplace<S> {
    type Prog = S::Prog;

    fn query(&self, cgroup: BorrowedFd) -> Result<super::Attached, BpfError> {
        self.0.query(cgroup)
    }

    fn prog_by_id(&self, id: u32) -> Result<S::Prog, BpfError> {
        self.0.prog_by_id(id)
    }

    fn prog_info(&self, prog: &S::Prog, id: u32) -> Result<super::ProgInfo, BpfError> {
        self.0.prog_info(prog, id)
    }

    fn prog_id(&self, prog: &S::Prog) -> io::Result<u32> {
        self.0.prog_id(prog)
    }

    fn prog_load(&self, insns: &[Insn], name: &str) -> Result<S::Prog, BpfError> {
        self.0.prog_load(insns, name)
    }

    fn prog_attach(
        &self,
        cgroup: BorrowedFd,
        prog: &S::Prog,
        flags: u32,
        replace: Option<&S::Prog>,
    ) -> io::Result<()> {
        self.0.prog_attach(cgroup, prog, flags, replace)
    }

    fn prog_detach(&self, cgroup: BorrowedFd, prog: &S::Prog) -> io::Result<()> {
        self.0.prog_detach(cgroup, prog)
    }

    fn replace_unsupported(&self) -> bool {
        true
    }

    fn set_replace_unsupported(&self) {}
}

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

#[cfg(test)]
mod tests;
