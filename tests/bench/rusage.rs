//! `rusage [-o FILE] CMD [ARG...]`: runs CMD as this process's direct child (fork, then
//! execvp; never posix_spawn/vfork, whose child would carry this process's
//! memory into the figure) with this process's stdin, stdout and stderr, waits
//! for it with wait4(2) and prints one line on stderr (or appends it to FILE,
//! for a hook whose stderr the runtime swallows):
//!
//! ```text
//! rusage: WALL_NS CPU_NS MAXRSS_KIB STATUS
//! ```
//!
//! CPU is user + system time of CMD and every descendant it waited for (for
//! `runc run`: runc, its hooks, the container); MAXRSS is the kernel's peak
//! resident set of CMD itself or its largest waited-for descendant
//! (`ru_maxrss`). The child's memory before its exec is a fork of this small
//! program (a few hundred KiB of anonymous pages), so the figure is the
//! exec'd binary's own peak; `rusage /bin/true` shows the floor. Exits with
//! CMD's status (128 + signal when killed). Compiled by the benchmark with
//! plain `rustc -O`: std only, libc declared here.
//!
//! Why this file keeps its own `unsafe` FFI (the one test file that does):
//! it is built without Cargo, so nix is not there, and std has no safe way
//! to either of its two steps: `std::process::Command` may spawn with
//! posix_spawn/vfork (whose child would carry this process's memory into
//! the figure) and never returns wait4's `struct rusage`.
//!
//! Contract: the measurement spans fork to reaping, nothing else; the helper
//! allocates before fork and calls only execvp and _exit in the child.

use std::ffi::{c_char, c_int, c_long, CString};
use std::time::Instant;

#[repr(C)]
#[derive(Default)]
struct Timeval {
    tv_sec: c_long,
    tv_usec: c_long,
}

/// `struct rusage` of Linux (x86_64 and aarch64 alike): two timevals, then
/// fourteen longs of which the first is ru_maxrss (KiB).
#[repr(C)]
#[derive(Default)]
struct Rusage {
    utime: Timeval,
    stime: Timeval,
    maxrss: c_long,
    rest: [c_long; 13],
}

extern "C" {
    fn fork() -> c_int;
    fn execvp(file: *const c_char, argv: *const *const c_char) -> c_int;
    fn _exit(status: c_int) -> !;
    fn wait4(pid: c_int, status: *mut c_int, options: c_int, usage: *mut Rusage) -> c_int;
}

fn main() {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let out = if args.first().is_some_and(|a| a == "-o") && args.len() > 1 {
        let file = args.remove(1);
        args.remove(0);
        Some(file)
    } else {
        None
    };
    let args: Vec<CString> = match args
        .into_iter()
        .map(|a| CString::new(a.into_encoded_bytes()))
        .collect::<Result<_, _>>()
    {
        Ok(a) => a,
        Err(e) => {
            eprintln!("rusage: argument with a NUL byte: {e}");
            std::process::exit(2);
        }
    };
    if args.is_empty() {
        eprintln!("usage: rusage CMD [ARG...]");
        std::process::exit(2);
    }
    let mut argv: Vec<*const c_char> = args.iter().map(|a| a.as_ptr()).collect();
    argv.push(std::ptr::null());
    let start = Instant::now();
    // SAFETY: fork has no memory-safety preconditions; this program is
    // single-threaded, so the child may run any code, and it only calls
    // execvp on buffers prepared before the fork, then _exit.
    let pid = unsafe { fork() };
    if pid == 0 {
        // SAFETY: argv is a NULL-terminated array of pointers to live
        // NUL-terminated strings (`args` outlives the call).
        unsafe {
            execvp(argv[0], argv.as_ptr());
            _exit(127);
        }
    }
    if pid < 0 {
        eprintln!("rusage: fork: {}", std::io::Error::last_os_error());
        std::process::exit(2);
    }
    let mut status: c_int = 0;
    let mut usage = Rusage::default();
    loop {
        // SAFETY: status and usage are valid for writes of their types.
        let r = unsafe { wait4(pid, &mut status, 0, &mut usage) };
        if r == pid {
            break;
        }
        let err = std::io::Error::last_os_error();
        if err.kind() != std::io::ErrorKind::Interrupted {
            eprintln!("rusage: wait4: {err}");
            std::process::exit(2);
        }
    }
    let wall = start.elapsed().as_nanos();
    let ns = |t: &Timeval| t.tv_sec as i128 * 1_000_000_000 + t.tv_usec as i128 * 1_000;
    let cpu = ns(&usage.utime) + ns(&usage.stime);
    let code = if status & 0x7f == 0 {
        (status >> 8) & 0xff
    } else {
        128 + (status & 0x7f)
    };
    let line = format!("rusage: {wall} {cpu} {} {code}\n", usage.maxrss);
    match out {
        None => eprint!("{line}"),
        Some(file) => {
            use std::io::Write;
            // One write per line: concurrent helpers appending do not interleave.
            let written = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&file)
                .and_then(|mut f| f.write_all(line.as_bytes()));
            if let Err(e) = written {
                eprintln!("rusage: cannot append to {}: {e}", file.to_string_lossy());
                std::process::exit(2);
            }
        }
    }
    std::process::exit(code);
}
