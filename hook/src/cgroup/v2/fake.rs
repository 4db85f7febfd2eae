//! A fake of the bpf(2) commands ([`BpfSys`]): one cgroup's
//! BPF_CGROUP_DEVICE programs in memory, every call recorded, any call
//! failable: what the tests of the replace / rollback / judge logic
//! (replace/tests.rs, judge.rs) run against, without root or a kernel.
//!
//! The fake keeps the kernel's rules that logic depends on: with
//! `BPF_F_REPLACE` the replaced program must be attached (else ENOENT) and
//! is swapped in place; without `BPF_F_ALLOW_MULTI` an attach replaces
//! everything; attaching a program twice is EEXIST, detaching one not
//! attached ENOENT; a kernel without `BPF_F_REPLACE` answers EINVAL.

use super::*;
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
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
