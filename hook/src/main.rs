//! `amd-container-hook STAGE`: the OCI hook that gives a container the AMD GPUs
//! its `AMD_VISIBLE_DEVICES` asks for.
//!
//! This binary is the fast path: it runs on every container start of the host,
//! so it only reads the spec's environment and exits when no GPU is requested.
//! Otherwise it execs `amd-container-inject` with the same arguments and the
//! same input, which does the work (libudev, namespaces, cgroups).

use amd_container_hook::{container, Args, SWARM_PREFIX, USAGE};
use std::io::{Read, Seek, Write};
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::ExitCode;

const INJECTOR: &str = "amd-container-inject";
const LIBEXEC_DIR: &str = "/usr/libexec/amd-container-toolkit";

fn main() -> ExitCode {
    let args = Args::parse(std::env::args().skip(1));
    let mut input = Vec::new();
    let needed = match args.stage.as_str() {
        "prestart" | "createRuntime" => read(&mut input).map(|()| {
            // A registration for several stages (Podman, CRI-O) also runs at
            // poststop with this argv: the state's status tells.
            if container::read_state(&input).is_ok_and(|s| container::is_stopped(&s)) {
                tracker_has_state(&args)
            } else {
                live_needs_work(&input)
            }
        }),
        "precreate" => read(&mut input).map(|()| precreate_needs_work(&input)),
        // The GPU tracker's release: only when it has state at all.
        "poststop" => read(&mut input).map(|()| tracker_has_state(&args)),
        _ => {
            eprintln!("{USAGE}");
            return ExitCode::from(2);
        }
    };
    match needed {
        Ok(false) if args.stage == "precreate" => {
            // Not a GPU container: Podman gets its config back byte for byte.
            match std::io::stdout().write_all(&input) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&format!("cannot write the config to stdout: {e}")),
            }
        }
        Ok(false) => ExitCode::SUCCESS,
        // Unreadable input: the injector reads it again and reports it properly.
        Ok(true) | Err(_) => exec_injector(&args, &input),
    }
}

fn read(input: &mut Vec<u8>) -> std::io::Result<()> {
    std::io::stdin().read_to_end(input).map(drop)
}

/// Does the container's spec carry a request variable at all? Errors mean
/// "let the injector look": it reports them with the container's context.
fn live_needs_work(input: &[u8]) -> bool {
    let Ok(state) = container::read_state(input) else {
        return true;
    };
    let path = container::config_path(&state);
    let Ok(bytes) = container::read_config_bytes(&path) else {
        return true;
    };
    match container::parse_env_only(&path, &bytes) {
        Ok(env) => container::may_request(&env, SWARM_PREFIX),
        Err(_) => true,
    }
}

/// Has the GPU tracker a state file? (It is disabled, the default, without.)
/// An unreadable config file means "let the injector report it".
fn tracker_has_state(args: &Args) -> bool {
    match amd_container_common::config::Config::load(&args.config) {
        Ok(c) => c.gpu_tracker.state_file.exists(),
        Err(_) => true,
    }
}

fn precreate_needs_work(input: &[u8]) -> bool {
    match serde_json::from_slice::<container::EnvOnly>(input) {
        Ok(env) => container::may_request(&env, SWARM_PREFIX),
        Err(_) => true,
    }
}

/// The injector beside this binary (a build tree, or a package that keeps
/// both in one directory), else the packaged libexec location.
fn injector() -> PathBuf {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|p| p.parent().map(|d| d.join(INJECTOR)));
    match beside {
        Some(p) if p.is_file() => p,
        _ => PathBuf::from(LIBEXEC_DIR).join(INJECTOR),
    }
}

/// Replaces this process with the injector, the input handed over on a
/// memfd as its stdin; the environment (explicit, from the hook's
/// registration) passes unchanged.
fn exec_injector(args: &Args, input: &[u8]) -> ExitCode {
    let fd = unsafe { libc::memfd_create(c"amd-container-hook-input".as_ptr(), 0) };
    if fd < 0 {
        return fail(&format!(
            "memfd_create: {}",
            std::io::Error::last_os_error()
        ));
    }
    let mut file = unsafe { <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    if let Err(e) = file.write_all(input).and_then(|()| file.rewind()) {
        return fail(&format!("cannot pass the input on: {e}"));
    }
    let path = injector();
    let err = std::process::Command::new(&path)
        .arg0(INJECTOR)
        .args(args.to_vec())
        .stdin(file)
        .exec();
    fail(&format!("cannot run {}: {err}", path.display()))
}

fn fail(message: &str) -> ExitCode {
    eprintln!("amd-container-hook: {message}");
    ExitCode::FAILURE
}
