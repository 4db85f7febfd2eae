//! [`Kernel`]: the [`BpfSys`] commands as bpf(2) system calls, raw through
//! `libc::syscall(SYS_bpf, ..)` (nix has no bpf(2)). Each command gets its
//! own `repr(C)` prefix of `union bpf_attr` (the kernel accepts a shorter
//! attr and zero-fills the rest).
//!
//! Guarantees: this file holds every `unsafe` block of the cgroup v2 code,
//! each with the reason it is sound: every attr handed to the kernel is the
//! command's layout (checked against linux/bpf.h offsets at compile time
//! where the kernel writes back), and every pointer in it points to a live
//! buffer at least as long as the length stated next to it. Every
//! descriptor the kernel returns is owned at once (closed on drop).

use super::{Attached, BpfError, BpfSys, ProgInfo};
use crate::bpf::insn::{from_bytes, to_bytes, Insn, INSN_SIZE};
use std::cell::Cell;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};
use std::rc::Rc;

/// The running kernel, through bpf(2). Programs are descriptors.
///
/// Clones share what they learn: once BPF_F_REPLACE turned out unsupported
/// (kernels before 5.6), every clone attaches, then detaches, without
/// asking again; one grant uses one `Kernel` (and its clones) for all its
/// levels. To take that path on a kernel that has BPF_F_REPLACE, use
/// [`super::WithoutReplace`].
#[derive(Clone, Debug, Default)]
pub struct Kernel {
    replace_unsupported: Rc<Cell<bool>>,
}

impl BpfSys for Kernel {
    type Prog = OwnedFd;

    fn query(&self, cgroup: BorrowedFd) -> Result<Attached, BpfError> {
        query(cgroup)
    }

    fn prog_by_id(&self, id: u32) -> Result<OwnedFd, BpfError> {
        prog_fd_by_id(id)
    }

    fn prog_info(&self, prog: &OwnedFd, id: u32) -> Result<ProgInfo, BpfError> {
        prog_info(prog.as_fd(), id)
    }

    fn prog_id(&self, prog: &OwnedFd) -> io::Result<u32> {
        prog_id(prog.as_fd())
    }

    fn prog_load(&self, insns: &[Insn], name: &str) -> Result<OwnedFd, BpfError> {
        prog_load(insns, name)
    }

    fn prog_attach(
        &self,
        cgroup: BorrowedFd,
        prog: &OwnedFd,
        flags: u32,
        replace: Option<&OwnedFd>,
    ) -> io::Result<()> {
        prog_attach(cgroup, prog.as_fd(), flags, replace.map(AsFd::as_fd))
    }

    fn prog_detach(&self, cgroup: BorrowedFd, prog: &OwnedFd) -> io::Result<()> {
        prog_detach(cgroup, prog.as_fd())
    }

    fn replace_unsupported(&self) -> bool {
        self.replace_unsupported.get()
    }

    fn set_replace_unsupported(&self) {
        self.replace_unsupported.set(true);
    }
}

// enum bpf_cmd
const BPF_PROG_LOAD: u32 = 5;
const BPF_PROG_ATTACH: u32 = 8;
const BPF_PROG_DETACH: u32 = 9;
const BPF_PROG_GET_FD_BY_ID: u32 = 13;
const BPF_OBJ_GET_INFO_BY_FD: u32 = 15;
const BPF_PROG_QUERY: u32 = 16;

pub const BPF_PROG_TYPE_CGROUP_DEVICE: u32 = 15;
pub const BPF_CGROUP_DEVICE: u32 = 6;
pub const BPF_F_ALLOW_MULTI: u32 = 1 << 1;
pub const BPF_F_REPLACE: u32 = 1 << 2;
const BPF_OBJ_NAME_LEN: usize = 16;

/// bpf(2): `cmd` with `attr`, its size as the attr size.
///
/// # Safety
///
/// `T` must be a `repr(C)` prefix of `union bpf_attr` as `cmd` reads it, and
/// every pointer in `attr` must point to a live buffer, writable where the
/// kernel writes, at least as long as the length `attr` states for it,
/// until the call returns.
unsafe fn bpf<T>(cmd: u32, attr: &mut T) -> io::Result<i64> {
    // SAFETY: SYS_bpf reads and writes at most size_of::<T>() bytes at
    // `attr`, a live exclusive reference; what it does through the pointers
    // inside is this function's caller's contract.
    let r = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd as libc::c_long,
            attr as *mut T,
            std::mem::size_of::<T>() as libc::c_long,
        )
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as i64)
    }
}

/// Owns a descriptor bpf(2) just returned (a new one, nobody else's).
fn owned(fd: i64) -> io::Result<OwnedFd> {
    let fd = i32::try_from(fd)
        .map_err(|_| io::Error::other(format!("bpf(2) returned {fd}, not a file descriptor")))?;
    // SAFETY: the kernel just returned this new descriptor to us; nothing
    // else owns or closes it.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

#[repr(C)]
#[derive(Default)]
struct QueryAttr {
    target_fd: u32,
    attach_type: u32,
    query_flags: u32,
    attach_flags: u32,
    prog_ids: u64,
    prog_cnt: u32,
    _pad: u32,
}

/// The programs attached directly to the cgroup (not inherited ones) for
/// BPF_CGROUP_DEVICE, and the cgroup's attach flags for that type.
fn query(cgroup: BorrowedFd) -> Result<Attached, BpfError> {
    let mut ids = vec![0u32; 16];
    loop {
        let mut a = QueryAttr {
            target_fd: cgroup.as_raw_fd() as u32,
            attach_type: BPF_CGROUP_DEVICE,
            prog_ids: ids.as_mut_ptr() as u64,
            prog_cnt: ids.len() as u32,
            ..Default::default()
        };
        // SAFETY: QueryAttr is the BPF_PROG_QUERY layout; the kernel writes
        // at most prog_cnt u32s at prog_ids, which is `ids`, that long and
        // alive until the call returns.
        match unsafe { bpf(BPF_PROG_QUERY, &mut a) } {
            Ok(_) => {
                ids.truncate(a.prog_cnt as usize);
                return Ok(Attached {
                    flags: a.attach_flags,
                    ids,
                });
            }
            // More programs than room: prog_cnt says how many.
            Err(e) if e.raw_os_error() == Some(libc::ENOSPC) => {
                ids = vec![0u32; a.prog_cnt as usize + 16];
            }
            Err(source) => {
                return Err(BpfError::Syscall {
                    cmd: "BPF_PROG_QUERY",
                    what: "the cgroup's BPF_CGROUP_DEVICE programs".into(),
                    source,
                })
            }
        }
    }
}

#[repr(C)]
#[derive(Default)]
struct GetIdAttr {
    id: u32,
    next_id: u32,
    open_flags: u32,
}

fn prog_fd_by_id(id: u32) -> Result<OwnedFd, BpfError> {
    let mut a = GetIdAttr {
        id,
        ..Default::default()
    };
    // SAFETY: GetIdAttr is the BPF_PROG_GET_FD_BY_ID layout; no pointers.
    unsafe { bpf(BPF_PROG_GET_FD_BY_ID, &mut a) }
        .and_then(owned)
        .map_err(|source| BpfError::Syscall {
            cmd: "BPF_PROG_GET_FD_BY_ID",
            what: format!("program {id}"),
            source,
        })
}

#[repr(C)]
#[derive(Default)]
struct InfoAttr {
    bpf_fd: u32,
    info_len: u32,
    info: u64,
}

/// The head of `struct bpf_prog_info` (linux/bpf.h), through `name`.
#[repr(C)]
#[derive(Default)]
struct ProgInfoHead {
    prog_type: u32,
    id: u32,
    tag: [u8; 8],
    jited_prog_len: u32,
    xlated_prog_len: u32, // offset 20
    jited_prog_insns: u64,
    xlated_prog_insns: u64, // offset 32
    load_time: u64,
    created_by_uid: u32,
    nr_map_ids: u32,
    map_ids: u64,
    name: [u8; BPF_OBJ_NAME_LEN],
}

const _: () = assert!(std::mem::offset_of!(ProgInfoHead, xlated_prog_len) == 20);
const _: () = assert!(std::mem::offset_of!(ProgInfoHead, xlated_prog_insns) == 32);
const _: () = assert!(std::mem::offset_of!(ProgInfoHead, name) == 64);

/// BPF_OBJ_GET_INFO_BY_FD into `info`.
///
/// # Safety
///
/// `info.xlated_prog_insns`, when not 0, must point to a live writable
/// buffer of at least `info.xlated_prog_len` bytes; the other pointer
/// fields must be 0 with their lengths 0 (as `Default` makes them).
unsafe fn get_info(fd: BorrowedFd, info: &mut ProgInfoHead) -> io::Result<()> {
    let mut a = InfoAttr {
        bpf_fd: fd.as_raw_fd() as u32,
        info_len: std::mem::size_of::<ProgInfoHead>() as u32,
        info: info as *mut ProgInfoHead as u64,
    };
    // SAFETY: InfoAttr is the BPF_OBJ_GET_INFO_BY_FD layout; the kernel
    // writes at most info_len bytes at `info`, a live exclusive reference of
    // that size (offsets checked above), and the instruction buffer inside
    // it is this function's caller's contract.
    unsafe { bpf(BPF_OBJ_GET_INFO_BY_FD, &mut a) }.map(|_| ())
}

/// Instructions read with the first BPF_OBJ_GET_INFO_BY_FD call; runc's and
/// systemd's device programs are far smaller, so one call is the rule.
const FIRST_READ_INSNS: usize = 512;

fn prog_info(fd: BorrowedFd, id: u32) -> Result<ProgInfo, BpfError> {
    let err = |source| BpfError::Syscall {
        cmd: "BPF_OBJ_GET_INFO_BY_FD",
        what: format!("program {id}"),
        source,
    };
    // The kernel reports the full length and copies at most what we gave.
    let mut bytes = vec![0u8; FIRST_READ_INSNS * INSN_SIZE];
    let mut head = ProgInfoHead {
        xlated_prog_len: bytes.len() as u32,
        xlated_prog_insns: bytes.as_mut_ptr() as u64,
        ..Default::default()
    };
    // SAFETY: xlated_prog_insns points to `bytes`, xlated_prog_len long,
    // alive until after the call; the other pointers are 0.
    unsafe { get_info(fd, &mut head) }.map_err(err)?;
    let len = head.xlated_prog_len as usize;
    if len > bytes.len() {
        bytes = vec![0u8; len];
        head = ProgInfoHead {
            xlated_prog_len: len as u32,
            xlated_prog_insns: bytes.as_mut_ptr() as u64,
            ..Default::default()
        };
        // SAFETY: as above, with `bytes` now `len` long.
        unsafe { get_info(fd, &mut head) }.map_err(err)?;
    }
    bytes.truncate((head.xlated_prog_len as usize).min(len));
    // The kernel zeroes the pointer when it may not show the instructions.
    if head.xlated_prog_insns == 0 {
        bytes.clear();
    }
    let name_len = head
        .name
        .iter()
        .position(|&b| b == 0)
        .unwrap_or(BPF_OBJ_NAME_LEN);
    Ok(ProgInfo {
        prog_type: head.prog_type,
        name: String::from_utf8_lossy(&head.name[..name_len]).into_owned(),
        nr_map_ids: head.nr_map_ids,
        insns: from_bytes(&bytes),
    })
}

/// The id of a program (one call, no instructions).
fn prog_id(fd: BorrowedFd) -> io::Result<u32> {
    let mut head = ProgInfoHead::default();
    // SAFETY: every pointer in `head` is 0 with its length 0.
    unsafe { get_info(fd, &mut head) }.map(|()| head.id)
}

#[repr(C)]
#[derive(Default)]
struct LoadAttr {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; BPF_OBJ_NAME_LEN],
    prog_ifindex: u32,
    expected_attach_type: u32,
}

/// Loads a BPF_PROG_TYPE_CGROUP_DEVICE program. On failure loads it again
/// with a verifier log, which goes into the error.
fn prog_load(insns: &[Insn], name: &str) -> Result<OwnedFd, BpfError> {
    let license = c"Apache";
    let mut prog_name = [0u8; BPF_OBJ_NAME_LEN];
    let n = name.len().min(BPF_OBJ_NAME_LEN - 1);
    prog_name[..n].copy_from_slice(&name.as_bytes()[..n]);
    let code = to_bytes(insns);
    let insn_cnt = u32::try_from(insns.len()).map_err(|_| BpfError::Load {
        name: name.to_string(),
        insns: insns.len(),
        source: io::Error::from_raw_os_error(libc::E2BIG),
        log: String::new(),
    })?;
    let attr = |log: &mut Vec<u8>| LoadAttr {
        prog_type: BPF_PROG_TYPE_CGROUP_DEVICE,
        insn_cnt,
        insns: code.as_ptr() as u64,
        license: license.as_ptr() as u64,
        log_level: u32::from(!log.is_empty()),
        log_size: log.len() as u32,
        log_buf: if log.is_empty() {
            0
        } else {
            log.as_mut_ptr() as u64
        },
        prog_name,
        ..Default::default()
    };
    let load_err = |source| BpfError::Load {
        name: name.to_string(),
        insns: insns.len(),
        source,
        log: String::new(),
    };
    let mut no_log = Vec::new();
    // SAFETY: LoadAttr is the BPF_PROG_LOAD layout; insns points to `code`,
    // insn_cnt instructions of INSN_SIZE bytes, license to a static C
    // string, no log buffer (0, size 0); all alive until the call returns.
    let source = match unsafe { bpf(BPF_PROG_LOAD, &mut attr(&mut no_log)) } {
        Ok(fd) => return owned(fd).map_err(load_err),
        Err(e) => e,
    };
    let mut log = vec![0u8; 1 << 20];
    // SAFETY: as above, and log_buf points to `log`, log_size bytes,
    // writable and alive until the call returns.
    let log = match unsafe { bpf(BPF_PROG_LOAD, &mut attr(&mut log)) } {
        // Loaded the second time round: keep it, nothing to report.
        Ok(fd) => return owned(fd).map_err(load_err),
        Err(_) => {
            let end = log.iter().position(|&b| b == 0).unwrap_or(log.len());
            String::from_utf8_lossy(&log[..end]).trim_end().to_string()
        }
    };
    Err(BpfError::Load {
        name: name.to_string(),
        insns: insns.len(),
        source,
        log,
    })
}

#[repr(C)]
#[derive(Default)]
struct AttachAttr {
    target_fd: u32,
    attach_bpf_fd: u32,
    attach_type: u32,
    attach_flags: u32,
    replace_bpf_fd: u32,
}

/// Attaches `prog` to the cgroup for BPF_CGROUP_DEVICE with `flags`; with
/// BPF_F_REPLACE, in place of `replace`.
fn prog_attach(
    cgroup: BorrowedFd,
    prog: BorrowedFd,
    flags: u32,
    replace: Option<BorrowedFd>,
) -> io::Result<()> {
    let mut a = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        attach_flags: flags,
        replace_bpf_fd: replace.map_or(0, |fd| fd.as_raw_fd() as u32),
    };
    // SAFETY: AttachAttr is the BPF_PROG_ATTACH layout; no pointers.
    unsafe { bpf(BPF_PROG_ATTACH, &mut a) }.map(|_| ())
}

/// Detaches `prog` from the cgroup's BPF_CGROUP_DEVICE programs.
fn prog_detach(cgroup: BorrowedFd, prog: BorrowedFd) -> io::Result<()> {
    let mut a = AttachAttr {
        target_fd: cgroup.as_raw_fd() as u32,
        attach_bpf_fd: prog.as_raw_fd() as u32,
        attach_type: BPF_CGROUP_DEVICE,
        ..Default::default()
    };
    // SAFETY: AttachAttr is the BPF_PROG_DETACH layout; no pointers.
    unsafe { bpf(BPF_PROG_DETACH, &mut a) }.map(|_| ())
}

// The pins of bpffs (BPF_OBJ_PIN / BPF_OBJ_GET), relative to a directory
// descriptor (BPF_F_PATH_FD, Linux 6.5+): the hook opens the pin's directory
// in the host's mount namespace and uses it after entering the container's.
const BPF_OBJ_PIN: u32 = 6;
const BPF_OBJ_GET: u32 = 7;
const BPF_F_PATH_FD: u32 = 1 << 14;

#[repr(C)]
#[derive(Default)]
struct ObjAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
    path_fd: i32,
    _pad: u32,
}

/// The program pinned as `name` in the bpffs directory `dir`.
pub fn obj_get(dir: BorrowedFd, name: &std::ffi::CStr) -> io::Result<OwnedFd> {
    let mut a = ObjAttr {
        pathname: name.as_ptr() as u64,
        file_flags: BPF_F_PATH_FD,
        path_fd: dir.as_raw_fd(),
        ..Default::default()
    };
    // SAFETY: ObjAttr is the BPF_OBJ_* layout; `pathname` points to `name`,
    // a NUL-terminated string alive for the call; the kernel writes nothing.
    let fd = unsafe { bpf(BPF_OBJ_GET, &mut a) }?;
    owned(fd)
}

/// Pins `prog` as `name` (which must not exist) in the bpffs directory `dir`.
pub fn obj_pin(prog: BorrowedFd, dir: BorrowedFd, name: &std::ffi::CStr) -> io::Result<()> {
    let fd = u32::try_from(prog.as_raw_fd())
        .map_err(|_| io::Error::other("a negative program descriptor"))?;
    let mut a = ObjAttr {
        pathname: name.as_ptr() as u64,
        bpf_fd: fd,
        file_flags: BPF_F_PATH_FD,
        path_fd: dir.as_raw_fd(),
        ..Default::default()
    };
    // SAFETY: ObjAttr is the BPF_OBJ_* layout; `pathname` points to `name`,
    // a NUL-terminated string alive for the call; the kernel writes nothing.
    unsafe { bpf(BPF_OBJ_PIN, &mut a) }.map(|_| ())
}
