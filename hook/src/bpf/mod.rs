//! eBPF device programs without the kernel: what the hook needs to read,
//! judge and write `BPF_PROG_TYPE_CGROUP_DEVICE` programs, as plain data.
//!
//! - [`insn`]: `struct bpf_insn` (encoding, decoding from the kernel's byte
//!   dump) and a small assembler with forward labels;
//! - [`interp`]: an interpreter for the subset device filters are made of,
//!   answering allow / deny / unknown for a device access;
//! - [`program`]: the programs the hook loads (an allow-prefix put in front
//!   of an existing program, a program built from OCI device rules) and the
//!   reference semantics of rules they are checked against.
//!
//! Guarantees: no system call and no `unsafe` anywhere in this module (it is
//! `forbid`den); nothing here panics on any input (decoding any bytes and
//! running any program on any context are property-tested, see `fuzz.rs`).
//! Loading, attaching and querying programs is the kernel side, in
//! [`crate::cgroup::v2`].

#![forbid(unsafe_code)]

#[cfg(test)]
mod fuzz;
pub mod insn;
pub mod interp;
pub mod program;
