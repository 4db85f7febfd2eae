//! The stages of `amd-container-hook`, all in the one process the runtime
//! starts: `prestart` / `createRuntime` (live injection), `precreate`
//! (Podman config filter) and `poststop` (nothing).
//!
//! Contract: every stage reads its input once and decides from the
//! container's environment alone whether there is anything to do; a
//! container that asks for no GPU costs a read of stdin and of `config.json`
//! (precreate: its config goes back byte for byte), without the config file,
//! the log file or libudev. Errors are reported once, here, on stderr (and in
//! the log file once a request was seen); the return value is the exit status.

use crate::container_spec::{edit, view};
use crate::{cdi_stage, container, inject, logging, tracking, Args, Stage, SWARM_PREFIX, USAGE};
use amd_container_common::config::{Config, ConfigError};
use amd_container_common::request::{find_assignment, find_request, Request, RequestError};
use amd_container_common::resolve::{detail_for, resolve, ResolveError};
use std::io::{Read, Write};

#[derive(Debug, thiserror::Error)]
enum HookError {
    #[error("{USAGE}")]
    Usage,
    #[error(transparent)]
    Container(#[from] container::ContainerError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(
        "hook.swarm-resource {0:?} must start with {SWARM_PREFIX} and may only end in \"*\" \
         (a name such as DOCKER_RESOURCE_AMD_GPU, or a prefix such as DOCKER_RESOURCE_*)"
    )]
    SwarmVariable(String),
    #[error(transparent)]
    Request(#[from] RequestError),
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error(transparent)]
    Inject(#[from] inject::InjectError),
    #[error(transparent)]
    Tracker(#[from] amd_container_common::tracker::TrackerError),
    #[error(transparent)]
    Cdi(#[from] cdi_stage::CdiStageError),
    #[error("cannot read stdin: {0}")]
    Stdin(std::io::Error),
    #[error("the config on stdin is not JSON: {0}")]
    PrecreateInput(serde_json::Error),
    #[error("cannot write the config to stdout: {0}")]
    Stdout(std::io::Error),
    #[error("cannot serialize the edited config: {0}")]
    PrecreateOutput(serde_json::Error),
    #[error(
        "{name}={value}: refused: the container is unprivileged (no CAP_SYS_ADMIN in its \
         bounding set) and {config} sets [hook] allow-unprivileged-requests = false; run it \
         privileged, or give the GPU through CDI"
    )]
    Unprivileged {
        name: String,
        value: String,
        config: std::path::PathBuf,
    },
}

/// The admin's policy ([hook] allow-unprivileged-requests): may a container
/// with this bounding set get GPUs?
fn check_policy(
    config: &Config,
    config_path: &std::path::Path,
    var: &amd_container_common::request::RequestVar,
    privileged: bool,
) -> Result<(), HookError> {
    if config.hook.allow_unprivileged_requests || privileged {
        return Ok(());
    }
    Err(HookError::Unprivileged {
        name: var.name.to_string(),
        value: var.value.to_string(),
        config: config_path.to_path_buf(),
    })
}

/// Runs `args.stage` with the input on stdin; returns the exit status.
pub fn run(args: &Args) -> u8 {
    logging::init();
    let result = match args.stage {
        Some(Stage::Prestart | Stage::CreateRuntime) if args.cdi => {
            read_stdin().and_then(|input| Ok(cdi_stage::run(&args.config, &input)?))
        }
        Some(Stage::Poststop) if args.cdi => read_stdin().and_then(|input| {
            let state = container::read_state(&input)?;
            Ok(cdi_stage::release(&args.config, &state)?)
        }),
        Some(Stage::Prestart | Stage::CreateRuntime) => {
            read_stdin().and_then(|input| live(&args.config, &input))
        }
        Some(Stage::Precreate) => read_stdin().and_then(|input| precreate(&args.config, input)),
        Some(Stage::Poststop) => read_stdin().and_then(|input| poststop(&args.config, &input)),
        None => Err(HookError::Usage),
    };
    match result {
        Ok(()) => 0,
        Err(HookError::Usage) => {
            eprintln!("{USAGE}");
            2
        }
        Err(e) => {
            log::error!("{e}");
            1
        }
    }
}

fn read_stdin() -> Result<Vec<u8>, HookError> {
    let mut input = Vec::new();
    std::io::stdin()
        .read_to_end(&mut input)
        .map_err(HookError::Stdin)?;
    Ok(input)
}

fn load_config(path: &std::path::Path) -> Result<Config, HookError> {
    let config = Config::load(path)?;
    let swarm = &config.hook.swarm_resource;
    let star_inside = swarm.trim_end_matches('*').contains('*') || swarm.ends_with("**");
    if !swarm.is_empty() && (!swarm.starts_with(SWARM_PREFIX) || star_inside) {
        return Err(HookError::SwarmVariable(swarm.clone()));
    }
    Ok(config)
}

fn live(config_path: &std::path::Path, input: &[u8]) -> Result<(), HookError> {
    let state = container::read_state(input)?;
    // A registration for several stages (Podman, CRI-O) also runs at
    // poststop with this argv: the state's status tells.
    if container::is_stopped(&state) {
        return release(config_path, &state);
    }
    let spec_path = container::config_path(&state);
    let bytes = container::read_config_bytes(&spec_path)?;
    let env = container::parse_env_only(&spec_path, &bytes)?;
    // Fast path, taken by every non-GPU container on the host.
    if !view::may_request(&env, SWARM_PREFIX) {
        return Ok(());
    }
    let config = load_config(config_path)?;
    let Some(var) = find_request(env.env(), &config.hook.swarm_resource) else {
        return Ok(());
    };
    // A set, non-void variable: from here on the log file records what
    // happens, a rejected value included.
    let parsed = Request::parse(var.name, var.value);
    if parsed.as_ref().map_or(true, Request::is_gpu) {
        logging::open_file(state.id(), &config.hook.log_file, &config.hook.log_level);
    }
    let request = parsed?;
    if !request.is_gpu() {
        return Ok(());
    }
    log::debug!("request {}={}", var.name, var.value);
    if request == Request::NoGpus {
        log::info!("{}={}: no GPU to give", var.name, var.value);
        return Ok(());
    }
    let spec = container::parse_spec(&spec_path, &bytes)?;
    check_policy(&config, config_path, &var, spec.privileged())?;
    let assignment = find_assignment(env.env(), &config.hook.swarm_resource);
    let detail = detail_for(&request, assignment.as_ref(), tracking::enabled(&config));
    let resolved = resolve(&request, &var, assignment.as_ref(), detail)?;
    let (inventory, selection, edits) = (resolved.inventory, resolved.selection, resolved.edits);
    if edits.is_empty() {
        log::info!("{}={}: no GPU to give", var.name, var.value);
        return Ok(());
    }
    let pid = state.pid().ok_or(container::ContainerError::NoPid)?;
    let rootfs = container::rootfs(&spec, state.bundle())?;
    let held = tracking::hold(
        &config,
        state.id(),
        state.bundle(),
        pid,
        &inventory,
        &selection,
    )?;
    let outcome = match inject::inject(pid, &rootfs, &spec, &edits, &config.devices.user_access) {
        Ok(o) => o,
        Err(e) => {
            if let Some(Err(r)) = held.map(|h| tracking::unhold(&config, &h)) {
                log::error!("{r}");
            }
            return Err(e.into());
        }
    };
    let paths: Vec<String> = edits
        .device_nodes
        .iter()
        .map(|n| n.path.display().to_string())
        .collect();
    let regrouped = if outcome.regrouped.is_empty() {
        String::new()
    } else {
        format!(
            ", group {} for the container's user: {}",
            spec.user().gid,
            outcome.regrouped.join(" ")
        )
    };
    log::info!(
        "{}={}: gave {} ({} created{}{regrouped}, {})",
        var.name,
        var.value,
        paths.join(" "),
        outcome.created,
        if outcome.bind_mounted {
            ", bind-mounted for a user namespace"
        } else {
            ""
        },
        outcome.cgroup
    );
    Ok(())
}

/// `poststop`: the container is gone; its GPUs are free in the tracker.
fn poststop(config_path: &std::path::Path, input: &[u8]) -> Result<(), HookError> {
    let state = container::read_state(input)?;
    release(config_path, &state)
}

fn release(
    config_path: &std::path::Path,
    state: &oci_spec::runtime::State,
) -> Result<(), HookError> {
    let config = load_config(config_path)?;
    // The log file is opened only when this container held GPUs: poststop
    // runs for every container, and one without GPUs leaves no trace.
    if tracking::release(&config, state.id(), state.bundle())? {
        logging::open_file(state.id(), &config.hook.log_file, &config.hook.log_level);
        log::info!("GPU tracker: released the GPUs of {}", state.id());
    }
    Ok(())
}

fn precreate(config_path: &std::path::Path, input: Vec<u8>) -> Result<(), HookError> {
    // Fast path: not a GPU container. Input that is not even a config object
    // takes the full path below, which reports it.
    if let Ok(env) = serde_json::from_slice::<view::EnvOnly>(&input) {
        if !view::may_request(&env, SWARM_PREFIX) {
            return write_stdout(&input);
        }
    }
    let mut doc: serde_json::Value =
        serde_json::from_slice(&input).map_err(HookError::PrecreateInput)?;
    let config = load_config(config_path)?;
    let edits = {
        let env = view::DocView(&doc).env();
        match find_request(env.iter().copied(), &config.hook.swarm_resource) {
            None => None,
            Some(var) => {
                let request = Request::parse(var.name, var.value)?;
                if request.is_gpu() {
                    let privileged = view::DocView(&doc).privileged();
                    if request != Request::NoGpus {
                        check_policy(&config, config_path, &var, privileged)?;
                    }
                    let assignment =
                        find_assignment(env.iter().copied(), &config.hook.swarm_resource);
                    let detail =
                        detail_for(&request, assignment.as_ref(), tracking::enabled(&config));
                    Some(resolve(&request, &var, assignment.as_ref(), detail)?.edits)
                } else {
                    None
                }
            }
        }
    };
    match edits {
        // Not a GPU container: the config goes back byte for byte.
        None => write_stdout(&input),
        Some(edits) => {
            edit::add_devices(&mut doc, &edits);
            let (gids, refused) = edit::grant_groups(&mut doc, &edits, &config.devices.user_access);
            if !gids.is_empty() {
                log::debug!("added groups {gids:?} to process.user.additionalGids");
            }
            warn_refused(&refused);
            write_stdout(&serde_json::to_vec(&doc).map_err(HookError::PrecreateOutput)?)
        }
    }
}

/// Warns about nodes the container's non-root user cannot open and that no
/// group may be given for (their group is root's, or the group has no rw).
fn warn_refused(nodes: &[&amd_container_common::DeviceNode]) {
    for n in nodes {
        log::warn!(
            "{}: mode {:04o} uid {} gid {}: the container's user cannot open it and it is not \
             granted (never root's group, never wider than the host's mode bits); run the \
             container as root or change the host node's group",
            n.path.display(),
            n.mode,
            n.uid,
            n.gid
        );
    }
}

/// Writes and flushes: the process ends without the Rust runtime's exit
/// handling (src/main.rs), which would otherwise flush stdout.
fn write_stdout(bytes: &[u8]) -> Result<(), HookError> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .map_err(HookError::Stdout)
}
