//! The device programs we load: an allow-prefix put in front of an existing
//! program's instructions, and a whole program built from OCI device rules.
//!
//! Guarantees (tested here against the reference model [`rules_allow`], a
//! runc-shaped model program and a real runc 1.1.5 program as the kernel
//! dumped it, and property-tested in `fuzz.rs`):
//! - [`allow_prefix`] followed by any program allows read, write and mknod
//!   of its char devices and leaves every other decision of that program as
//!   it was; it writes no register the following program starts from (R1);
//! - [`from_rules`] decides every access exactly as [`rules_allow`] does;
//! - a program too large for 16-bit jump offsets is an [`AsmError`], never
//!   a wrong program.

use super::insn::*;
use super::interp::{ACC_ALL, ACC_MKNOD, ACC_READ, ACC_WRITE, DEV_BLOCK, DEV_CHAR};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};
use std::collections::BTreeMap;

/// Instructions that allow every access to the given char devices and jump
/// to whatever follows for anything else. Only R2–R4 are written; R1 (the
/// context pointer the following code starts from) is left intact, and the
/// verifier guarantees the following code reads no other register before
/// writing it. Consecutive minors of a major are tested as one range (a GPU's
/// card and render minors usually are), which keeps the program short: the
/// kernel's verifier, whose time grows with the instructions it walks, runs
/// at every GPU container start.
///
/// ```text
///     r2 = *(u32 *)(r1 + 0)      ; access_type
///     w2 &= 0xffff               ; device type
///     if w2 != CHAR goto old
///     r3 = *(u32 *)(r1 + 4)      ; major
///     r4 = *(u32 *)(r1 + 8)      ; minor
///     if w3 != MAJ1 goto maj2    ; one block per major
///     if w4 == MIN goto allow    ; a single minor
///     if w4 < LO goto next       ; a range LO..=HI
///     if w4 <= HI goto allow
/// next: ...
/// majN:
///     goto old
/// allow:
///     w0 = 1
///     exit
/// old:                           ; the old program, unchanged
/// ```
pub fn allow_prefix(devices: &[(u32, u32)]) -> Result<Vec<Insn>, AsmError> {
    let mut by_major: BTreeMap<u32, Vec<u32>> = BTreeMap::new();
    for &(major, minor) in devices {
        by_major.entry(major).or_default().push(minor);
    }
    let mut a = Asm::default();
    let (allow, old) = (a.label(), a.label());
    a.push(ldx_w(R2, R1, 0));
    a.push(alu32_k(AND, R2, 0xffff));
    a.jmp_k(JMP32, JNE, R2, DEV_CHAR as i32, old);
    a.push(ldx_w(R3, R1, 4));
    a.push(ldx_w(R4, R1, 8));
    for (major, mut minors) in by_major {
        minors.sort_unstable();
        minors.dedup();
        let next = a.label();
        a.jmp_k(JMP32, JNE, R3, major as i32, next);
        for (lo, hi) in ranges(&minors) {
            if lo == hi {
                a.jmp_k(JMP32, JEQ, R4, lo as i32, allow);
            } else {
                let past = a.label();
                a.jmp_k(JMP32, JLT, R4, lo as i32, past);
                a.jmp_k(JMP32, JLE, R4, hi as i32, allow);
                a.bind(past);
            }
        }
        a.bind(next);
    }
    a.ja(old);
    a.bind(allow);
    a.push(alu32_k(MOV, R0, 1));
    a.push(exit());
    a.bind(old);
    a.finish()
}

/// Sorted, deduplicated numbers as inclusive runs of consecutive values.
fn ranges(sorted: &[u32]) -> Vec<(u32, u32)> {
    let mut out: Vec<(u32, u32)> = Vec::new();
    for &n in sorted {
        match out.last_mut() {
            Some((_, hi)) if hi.checked_add(1) == Some(n) => *hi = n,
            _ => out.push((n, n)),
        }
    }
    out
}

/// One device rule, normalized: `dev_type` None = "a" (block and char),
/// None major/minor = wildcard, `access` a mask of ACC_* bits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rule {
    pub allow: bool,
    pub dev_type: Option<u32>,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    pub access: u32,
}

impl Rule {
    /// `allow c MAJ:MIN rwm`
    pub fn allow_char(major: u32, minor: u32) -> Rule {
        Rule {
            allow: true,
            dev_type: Some(DEV_CHAR),
            major: Some(major),
            minor: Some(minor),
            access: ACC_ALL,
        }
    }

    /// From the OCI form. Type absent or "a" = all; "u" is a char device;
    /// "p" (FIFO) is not subject to the device cgroup: None. Major/minor
    /// absent or negative (runc writes -1) = wildcard. Access absent or empty
    /// = "rwm" (as crun, and as runc for "a" rules); unknown letters ignored.
    pub fn from_oci(r: &LinuxDeviceCgroup) -> Option<Rule> {
        let dev_type = match r.typ() {
            None | Some(LinuxDeviceType::A) => None,
            Some(LinuxDeviceType::C | LinuxDeviceType::U) => Some(DEV_CHAR),
            Some(LinuxDeviceType::B) => Some(DEV_BLOCK),
            Some(LinuxDeviceType::P) => return None,
        };
        let num = |n: Option<i64>| n.and_then(|n| u32::try_from(n).ok());
        let access = match r.access().as_deref() {
            None | Some("") => ACC_ALL,
            Some(s) => s.chars().fold(0, |acc, c| {
                acc | match c {
                    'r' => ACC_READ,
                    'w' => ACC_WRITE,
                    'm' => ACC_MKNOD,
                    _ => 0,
                }
            }),
        };
        Some(Rule {
            allow: r.allow(),
            dev_type,
            major: num(r.major()),
            minor: num(r.minor()),
            access,
        })
    }

    /// Does the rule name this device (whatever the access)?
    pub fn matches(&self, dev_type: u32, major: u32, minor: u32) -> bool {
        self.dev_type.is_none_or(|t| t == dev_type)
            && self.major.is_none_or(|m| m == major)
            && self.minor.is_none_or(|m| m == minor)
    }
}

/// The rules runc appends to every container's own
/// (libcontainer/specconv `AllowedDevices`): mknod of any device, the
/// runtime-spec's default devices, /dev/pts/*, /dev/ptmx and /dev/net/tun.
pub fn runc_default_rules() -> Vec<Rule> {
    let c = |major: u32, minor: Option<u32>, access: u32| Rule {
        allow: true,
        dev_type: Some(DEV_CHAR),
        major: Some(major),
        minor,
        access,
    };
    let mknod_any = |dev_type| Rule {
        allow: true,
        dev_type: Some(dev_type),
        major: None,
        minor: None,
        access: ACC_MKNOD,
    };
    vec![
        mknod_any(DEV_CHAR),
        mknod_any(DEV_BLOCK),
        c(1, Some(3), ACC_ALL), // null
        c(1, Some(8), ACC_ALL), // random
        c(1, Some(7), ACC_ALL), // full
        c(5, Some(0), ACC_ALL), // tty
        c(1, Some(5), ACC_ALL), // zero
        c(1, Some(9), ACC_ALL), // urandom
        c(136, None, ACC_ALL),  // pts
        c(5, Some(2), ACC_ALL), // ptmx
        // /dev/net/tun: in runc 1.1's list (this is what runc 1.1.5 loads);
        // dropped from it in runc 1.2.0.
        c(10, Some(200), ACC_ALL),
    ]
}

/// The reference semantics of a rule list, per access bit: for each
/// requested bit the last rule that matches the device and names the bit
/// decides; no such rule denies. The request is allowed when every bit is.
/// Plain Rust, the model [`from_rules`] is checked against.
pub fn rules_allow(rules: &[Rule], dev_type: u32, major: u32, minor: u32, access: u32) -> bool {
    access != 0
        && [ACC_MKNOD, ACC_READ, ACC_WRITE]
            .into_iter()
            .filter(|bit| access & bit != 0)
            .all(|bit| {
                rules
                    .iter()
                    .rev()
                    .find(|r| r.access & bit != 0 && r.matches(dev_type, major, minor))
                    .is_some_and(|r| r.allow)
            })
}

/// A program for `rules`, per access bit: for each requested bit the last
/// rule that matches the device and names the bit decides; no such rule
/// denies ([`rules_allow`] is the same in plain Rust). Rules are tested from
/// the last to the first while R3 holds the requested bits not decided yet:
/// a matching deny rule naming any of them denies; a matching allow rule
/// clears the bits it names and allows once none is left; falling off the
/// first rule denies.
pub fn from_rules(rules: &[Rule]) -> Result<Vec<Insn>, AsmError> {
    let mut a = Asm::default();
    let (allow, deny) = (a.label(), a.label());
    a.push(ldx_w(R2, R1, 0));
    a.push(alu32_k(AND, R2, 0xffff)); // type
    a.push(ldx_w(R3, R1, 0));
    a.push(alu32_k(RSH, R3, 16)); // access bits still undecided
    a.push(ldx_w(R4, R1, 4)); // major
    a.push(ldx_w(R5, R1, 8)); // minor
    a.jmp_k(JMP32, JEQ, R3, 0, deny);
    for r in rules.iter().rev().filter(|r| r.access != 0) {
        let next = a.label();
        if let Some(t) = r.dev_type {
            a.jmp_k(JMP32, JNE, R2, t as i32, next);
        }
        if let Some(m) = r.major {
            a.jmp_k(JMP32, JNE, R4, m as i32, next);
        }
        if let Some(m) = r.minor {
            a.jmp_k(JMP32, JNE, R5, m as i32, next);
        }
        if r.allow {
            a.push(alu32_k(AND, R3, !(r.access as i32)));
            a.jmp_k(JMP32, JEQ, R3, 0, allow);
        } else {
            a.jmp_k(JMP32, JSET, R3, r.access as i32, deny);
        }
        a.bind(next);
    }
    a.bind(deny);
    a.push(alu32_k(MOV, R0, 0));
    a.push(exit());
    a.bind(allow);
    a.push(alu32_k(MOV, R0, 1));
    a.push(exit());
    a.finish()
}

#[cfg(test)]
pub(crate) mod tests;
