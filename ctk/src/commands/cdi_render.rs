//! A CDI spec as `cdi generate` and `cdi refresh` write it: the format
//! ([`SpecFormat`]), the text ([`render_spec`]) and our hook in it
//! ([`hook_options`]).
//!
//! Contract: the same spec and options render to the same bytes (refresh
//! compares them with what is on disk); nothing here reads the hardware or
//! writes a file.

use amd_container_common::cdi::{self, Spec};
use amd_container_common::config::{Config, HookEnvError};
use clap::ValueEnum;
use std::path::Path;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SpecFormat {
    Json,
    Yaml,
}

pub fn render_spec(spec: &Spec, format: SpecFormat) -> Result<String, RenderError> {
    match format {
        SpecFormat::Json => {
            Ok(serde_json::to_string_pretty(spec).map_err(RenderError::Json)? + "\n")
        }
        SpecFormat::Yaml => serde_yaml_ng::to_string(spec).map_err(RenderError::Yaml),
    }
}

/// A generated spec that cannot be written out in the chosen format.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("cannot serialize the CDI spec as JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error("cannot serialize the CDI spec as YAML: {0}")]
    Yaml(#[source] serde_yaml_ng::Error),
}

/// Our hook as the spec carries it (`[runtime] hook-path`, its environment
/// and timeout), or `None` for a plain spec.
pub fn hook_options(
    config: &Config,
    config_path: &Path,
    no_hooks: bool,
) -> Result<Option<cdi::HookOptions>, HookEnvError> {
    if no_hooks {
        return Ok(None);
    }
    Ok(Some(cdi::HookOptions {
        path: config.runtime.hook_path.display().to_string(),
        env: config.runtime.hook_env(config_path)?,
        timeout: config.runtime.hook_timeout,
    }))
}
