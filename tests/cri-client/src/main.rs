//! A CRI client for the VM suite (tests/vm/cri.sh): drives containerd's CRI
//! socket with the calls kubelet makes, one call per invocation, so the shell
//! suite can probe between them.
//!
//! Contract: each subcommand makes its CRI v1 call(s) over the unix socket
//! (`--socket`, default containerd's) and prints the result on stdout — an id
//! for `run-pod` and `create`, the command's own stdout for `exec` (its
//! stderr on stderr, its exit code as ours), a JSON object for `version` and
//! `status`. A failed call prints the CRI error (gRPC code and message) on
//! stderr and exits 1. The pod's config is rebuilt from the same options for
//! `create` (kubelet passes the sandbox config with CreateContainer too):
//! host network (so no hostname of its own), uid `uid-NAME`, namespace
//! `amd-ctk-e2e`, the given cgroup
//! parent (a slice under the systemd cgroup driver, as kubelet names it).
//! Built on the host with the workspace (`cargo build --release`) and copied
//! into the VM payload; nothing in the product uses it.

#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

use clap::{Args, Parser, Subcommand};
use hyper_util::rt::TokioIo;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::{
    CdiDevice, ContainerConfig, ContainerMetadata, ContainerStatusRequest, CreateContainerRequest,
    ExecSyncRequest, ImageSpec, KeyValue, LinuxPodSandboxConfig, LinuxSandboxSecurityContext,
    NamespaceMode, NamespaceOption, PodSandboxConfig, PodSandboxMetadata, RemovePodSandboxRequest,
    RunPodSandboxRequest, StartContainerRequest, StopPodSandboxRequest, VersionRequest,
};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use tonic::transport::{Channel, Endpoint, Uri};

#[derive(Debug, thiserror::Error)]
enum CriError {
    #[error("cannot connect to the CRI socket {socket}: {source}")]
    Connect {
        socket: PathBuf,
        source: tonic::transport::Error,
    },
    #[error("CRI {call}: {code:?}: {message}")]
    Call {
        call: &'static str,
        code: tonic::Code,
        message: String,
    },
    #[error("{what} {value:?} is not KEY=VALUE")]
    KeyValue { what: &'static str, value: String },
    #[error("cannot start the async runtime: {0}")]
    Runtime(std::io::Error),
    #[error("cannot write the output: {0}")]
    Output(std::io::Error),
}

#[derive(Parser)]
#[command(name = "amd-ctk-cri-client", about = "CRI calls as kubelet makes them")]
struct Cli {
    /// The CRI socket.
    #[arg(long, default_value = "/run/containerd/containerd.sock")]
    socket: PathBuf,
    #[command(subcommand)]
    command: Command,
}

/// What kubelet puts in a pod's PodSandboxConfig.
#[derive(Args, Clone)]
struct PodArgs {
    /// The pod's name.
    #[arg(long = "pod-name")]
    pod_name: String,
    /// The runtime handler (a RuntimeClass's `handler`), empty: the default.
    #[arg(long, default_value = "")]
    handler: String,
    /// The pod's cgroup parent, e.g. kubepods-besteffort-podUID.slice.
    #[arg(long = "cgroup-parent", default_value = "")]
    cgroup_parent: String,
}

#[derive(Subcommand)]
enum Command {
    /// The runtime's name and version (Version).
    Version,
    /// RunPodSandbox with host network; prints the pod sandbox id.
    RunPod(PodArgs),
    /// CreateContainer in a pod; prints the container id.
    Create {
        /// The pod sandbox id (from run-pod).
        #[arg(long)]
        pod: String,
        #[command(flatten)]
        pod_args: PodArgs,
        /// The container's name.
        #[arg(long)]
        name: String,
        /// The image (already in containerd's k8s.io namespace).
        #[arg(long)]
        image: String,
        /// A CDI device name for ContainerConfig.CDI_devices (repeatable).
        #[arg(long)]
        cdi: Vec<String>,
        /// A container annotation KEY=VALUE (repeatable).
        #[arg(long)]
        annotation: Vec<String>,
        /// An environment variable KEY=VALUE (repeatable).
        #[arg(long)]
        env: Vec<String>,
        /// The command.
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// StartContainer.
    Start { id: String },
    /// ExecSync: the command's stdout and stderr, its exit code as ours.
    Exec {
        id: String,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
    /// ContainerStatus (verbose): the runtime's info as JSON (containerd's has the pid).
    Status { id: String },
    /// StopPodSandbox, then RemovePodSandbox.
    RemovePod { id: String },
}

fn key_value(what: &'static str, s: &str) -> Result<KeyValue, CriError> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok(KeyValue {
            key: k.into(),
            value: v.into(),
        }),
        _ => Err(CriError::KeyValue {
            what,
            value: s.into(),
        }),
    }
}

fn call_error(call: &'static str) -> impl FnOnce(tonic::Status) -> CriError {
    move |s| CriError::Call {
        call,
        code: s.code(),
        message: s.message().to_string(),
    }
}

fn pod_config(p: &PodArgs) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: p.pod_name.clone(),
            uid: format!("uid-{}", p.pod_name),
            namespace: "amd-ctk-e2e".into(),
            attempt: 0,
        }),
        // Host network: the node's UTS namespace, no hostname of the pod's own.
        linux: Some(LinuxPodSandboxConfig {
            cgroup_parent: p.cgroup_parent.clone(),
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption {
                    network: NamespaceMode::Node as i32,
                    pid: NamespaceMode::Container as i32,
                    ipc: NamespaceMode::Pod as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

async fn connect(socket: &Path) -> Result<RuntimeServiceClient<Channel>, CriError> {
    let path = socket.to_path_buf();
    // The URI is a placeholder: the connector dials the unix socket.
    let endpoint = Endpoint::from_static("http://[::]:50051");
    let channel = endpoint
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?))
            }
        }))
        .await
        .map_err(|source| CriError::Connect {
            socket: socket.to_path_buf(),
            source,
        })?;
    Ok(RuntimeServiceClient::new(channel))
}

fn out(text: &str) -> Result<(), CriError> {
    let mut o = std::io::stdout().lock();
    o.write_all(text.as_bytes())
        .and_then(|()| o.flush())
        .map_err(CriError::Output)
}

async fn run(cli: Cli) -> Result<i32, CriError> {
    let mut c = connect(&cli.socket).await?;
    match cli.command {
        Command::Version => {
            let v = c
                .version(VersionRequest {
                    version: "v1".into(),
                })
                .await
                .map_err(call_error("Version"))?
                .into_inner();
            let j = serde_json::json!({
                "runtime_name": v.runtime_name,
                "runtime_version": v.runtime_version,
                "runtime_api_version": v.runtime_api_version,
            });
            out(&format!("{j}\n"))?;
        }
        Command::RunPod(p) => {
            let r = c
                .run_pod_sandbox(RunPodSandboxRequest {
                    config: Some(pod_config(&p)),
                    runtime_handler: p.handler.clone(),
                })
                .await
                .map_err(call_error("RunPodSandbox"))?
                .into_inner();
            out(&format!("{}\n", r.pod_sandbox_id))?;
        }
        Command::Create {
            pod,
            pod_args,
            name,
            image,
            cdi,
            annotation,
            env,
            command,
        } => {
            let annotations: HashMap<String, String> = annotation
                .iter()
                .map(|a| key_value("annotation", a).map(|kv| (kv.key, kv.value)))
                .collect::<Result<_, _>>()?;
            let envs = env
                .iter()
                .map(|e| key_value("env", e))
                .collect::<Result<Vec<_>, _>>()?;
            let config = ContainerConfig {
                metadata: Some(ContainerMetadata { name, attempt: 0 }),
                image: Some(ImageSpec {
                    image,
                    ..Default::default()
                }),
                command,
                envs,
                annotations,
                cdi_devices: cdi.into_iter().map(|name| CdiDevice { name }).collect(),
                ..Default::default()
            };
            let r = c
                .create_container(CreateContainerRequest {
                    pod_sandbox_id: pod,
                    config: Some(config),
                    sandbox_config: Some(pod_config(&pod_args)),
                })
                .await
                .map_err(call_error("CreateContainer"))?
                .into_inner();
            out(&format!("{}\n", r.container_id))?;
        }
        Command::Start { id } => {
            c.start_container(StartContainerRequest { container_id: id })
                .await
                .map_err(call_error("StartContainer"))?;
        }
        Command::Exec { id, command } => {
            let r = c
                .exec_sync(ExecSyncRequest {
                    container_id: id,
                    cmd: command,
                    timeout: 60,
                })
                .await
                .map_err(call_error("ExecSync"))?
                .into_inner();
            std::io::stdout()
                .write_all(&r.stdout)
                .map_err(CriError::Output)?;
            std::io::stderr()
                .write_all(&r.stderr)
                .map_err(CriError::Output)?;
            return Ok(r.exit_code);
        }
        Command::Status { id } => {
            let r = c
                .container_status(ContainerStatusRequest {
                    container_id: id,
                    verbose: true,
                })
                .await
                .map_err(call_error("ContainerStatus"))?
                .into_inner();
            let info = r.info.get("info").cloned().unwrap_or_else(|| "{}".into());
            out(&format!("{info}\n"))?;
        }
        Command::RemovePod { id } => {
            c.stop_pod_sandbox(StopPodSandboxRequest {
                pod_sandbox_id: id.clone(),
            })
            .await
            .map_err(call_error("StopPodSandbox"))?;
            c.remove_pod_sandbox(RemovePodSandboxRequest { pod_sandbox_id: id })
                .await
                .map_err(call_error("RemovePodSandbox"))?;
        }
    }
    Ok(0)
}

fn main() {
    let cli = Cli::parse();
    let result = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(CriError::Runtime)
        .and_then(|rt| rt.block_on(run(cli)));
    match result {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("amd-ctk-cri-client: {e}");
            std::process::exit(1);
        }
    }
}
