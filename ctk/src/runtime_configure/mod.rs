//! `amd-ctk runtime configure`: registers the toolkit with Docker, Podman,
//! CRI-O and containerd.

use std::process::ExitCode;

#[derive(Debug, clap::Args)]
pub struct ConfigureArgs {}

pub fn run(_args: &ConfigureArgs) -> Result<ExitCode, crate::CliError> {
    Err(crate::CliError::Message(
        "runtime configure is not implemented yet".into(),
    ))
}
