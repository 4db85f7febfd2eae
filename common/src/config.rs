//! The toolkit's config file (default `/etc/amd-container-toolkit/config.toml`).
//! A missing file means defaults; a file we cannot parse is an error.

use serde::Deserialize;
use std::path::{Path, PathBuf};

pub const DEFAULT_PATH: &str = "/etc/amd-container-toolkit/config.toml";
/// Lets tests and unusual installs point every binary at another file.
pub const PATH_ENV: &str = "AMD_CTK_CONFIG";

#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct Config {
    pub hook: HookConfig,
    pub runtime: RuntimeConfig,
    pub gpu_tracker: TrackerConfig,
    pub devices: DevicesConfig,
    pub cdi: CdiConfig,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct CdiConfig {
    /// `amd-ctk cdi generate` / `cdi refresh` put the hook (`[runtime]
    /// hook-path`) into the spec at createRuntime and poststop, so that
    /// containers given a GPU through CDI are tracked and logged. `false`:
    /// plain specs (as `--no-hooks`).
    pub hooks: bool,
}

impl Default for CdiConfig {
    fn default() -> Self {
        CdiConfig { hooks: true }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct DevicesConfig {
    /// The kinds of node (kfd, render, card) made usable by a container's
    /// non-root user when the host's mode and group would not let it in:
    /// the hook, precreate, amd-container-runtime and `amd-ctk cdi
    /// generate` all read it. Empty: the host's policy everywhere.
    pub user_access: Vec<crate::access::NodeKind>,
}

impl Default for DevicesConfig {
    fn default() -> Self {
        DevicesConfig {
            user_access: crate::access::NodeKind::default_user_access(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct TrackerConfig {
    /// The GPU tracker's state (`amd-ctk gpu-tracker`); its lock is
    /// `DIR/locks/FILE.lock`. The hook and amd-ctk must agree on it.
    pub state_file: PathBuf,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            state_file: crate::tracker::DEFAULT_STATE_FILE.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct HookConfig {
    /// Where the hook logs, one line per event with the container id.
    /// Empty: no log file.
    pub log_file: PathBuf,
    /// Level for the log file: error, warn, info, debug, trace.
    pub log_level: String,
    /// Swarm generic-resource variable read when AMD_VISIBLE_DEVICES is absent.
    /// Empty: none.
    pub swarm_resource: String,
    /// Serve GPU requests from containers without CAP_SYS_ADMIN in their
    /// bounding set. `false` on multi-tenant hosts: only privileged
    /// containers (or spec-level paths such as CDI) get GPUs.
    pub allow_unprivileged_requests: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, rename_all = "kebab-case", deny_unknown_fields)]
pub struct RuntimeConfig {
    /// The runtime `amd-container-runtime` execs (a name from PATH or a path).
    pub low_level_runtime: String,
    /// The hook the runtime entry registers in the spec.
    pub hook_path: PathBuf,
    /// Timeout in seconds given to the registered hook.
    pub hook_timeout: i64,
    /// Extra `NAME=VALUE` entries of the registered hook's environment (which
    /// is otherwise PATH only); a `PATH=` entry replaces the default PATH.
    pub hook_env: Vec<String>,
}

impl Default for HookConfig {
    fn default() -> Self {
        HookConfig {
            log_file: "/var/log/amd-container-hook.log".into(),
            log_level: "info".into(),
            swarm_resource: crate::request::DEFAULT_SWARM_RESOURCE.into(),
            allow_unprivileged_requests: true,
        }
    }
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        RuntimeConfig {
            low_level_runtime: "runc".into(),
            hook_path: "/usr/bin/amd-container-hook".into(),
            hook_timeout: 30,
            hook_env: Vec::new(),
        }
    }
}

/// The hook's environment when something registers it (the Docker entry in
/// a bundle, `amd-ctk cdi generate` in a CDI spec): PATH only, as the
/// container's environment never reaches the hook.
pub const HOOK_PATH_ENV: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// A `[runtime] hook-env` entry that is not `NAME=VALUE`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("runtime.hook-env: {entry:?} is not of the form NAME=VALUE")]
pub struct HookEnvError {
    pub entry: String,
}

impl RuntimeConfig {
    /// The registered hook's environment: [`HOOK_PATH_ENV`] and then
    /// `hook-env`, whose `PATH=` entry, if any, replaces the default PATH;
    /// plus `AMD_CTK_CONFIG=config_path` when the config in force is not the
    /// default one (the hook must read the file its registrar read), unless
    /// `hook-env` names one already.
    pub fn hook_env(&self, config_path: &Path) -> Result<Vec<String>, HookEnvError> {
        let mut env = vec![HOOK_PATH_ENV.to_string()];
        for entry in &self.hook_env {
            match entry.split_once('=') {
                Some((name, _)) if !name.is_empty() => {}
                _ => {
                    return Err(HookEnvError {
                        entry: entry.clone(),
                    })
                }
            }
            if entry.starts_with("PATH=") {
                env[0] = entry.clone();
            } else {
                env.push(entry.clone());
            }
        }
        let named = |e: &String| e.starts_with(&format!("{PATH_ENV}="));
        if config_path != Path::new(DEFAULT_PATH) && !env.iter().any(named) {
            env.push(format!("{PATH_ENV}={}", config_path.display()));
        }
        Ok(env)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Parse {
        path: PathBuf,
        source: toml::de::Error,
    },
}

impl Config {
    /// Loads `path`; a file that does not exist gives the defaults.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        match std::fs::read_to_string(path) {
            Ok(text) => toml::from_str(&text).map_err(|source| ConfigError::Parse {
                path: path.to_path_buf(),
                source,
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(source) => Err(ConfigError::Read {
                path: path.to_path_buf(),
                source,
            }),
        }
    }

    /// The path in force: `$AMD_CTK_CONFIG` if set, else the default.
    pub fn default_path() -> PathBuf {
        std::env::var_os(PATH_ENV)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| DEFAULT_PATH.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_file_keeps_other_defaults() {
        let c: Config = toml::from_str("[hook]\nlog-level = \"debug\"\n").unwrap();
        assert_eq!(c.hook.log_level, "debug");
        assert_eq!(c.runtime, RuntimeConfig::default());
    }

    #[test]
    fn hook_env_is_a_list_of_strings() {
        let c: Config =
            toml::from_str("[runtime]\nhook-env = [\"A=1\", \"AMD_CTK_CONFIG=/x.toml\"]\n")
                .unwrap();
        assert_eq!(c.runtime.hook_env, ["A=1", "AMD_CTK_CONFIG=/x.toml"]);
        assert!(toml::from_str::<Config>("[runtime]\nhook-env = \"A=1\"\n").is_err());
    }

    #[test]
    fn user_access_kinds() {
        assert_eq!(
            Config::default().devices.user_access,
            [
                crate::access::NodeKind::Kfd,
                crate::access::NodeKind::Render
            ]
        );
        let c: Config = toml::from_str("[devices]\nuser-access = [\"card\"]\n").unwrap();
        assert_eq!(c.devices.user_access, [crate::access::NodeKind::Card]);
        let c: Config = toml::from_str("[devices]\nuser-access = []\n").unwrap();
        assert!(c.devices.user_access.is_empty());
        let err = toml::from_str::<Config>("[devices]\nuser-access = [\"gpu\"]\n").unwrap_err();
        assert!(err.to_string().contains("gpu"), "{err}");
    }

    #[test]
    fn unknown_key_is_an_error() {
        assert!(toml::from_str::<Config>("[hook]\nlogfile = \"x\"\n").is_err());
    }

    #[test]
    fn missing_file_is_defaults() {
        assert_eq!(
            Config::load(Path::new("/nonexistent/config.toml")).unwrap(),
            Config::default()
        );
    }
}

#[cfg(test)]
mod shipped_default {
    use super::*;

    /// The config file the packages install documents every key with its
    /// default, commented out; uncommented it must mean exactly the defaults.
    #[test]
    fn packaged_default_config_matches_the_code() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../packaging/default-config.toml"
        );
        let text = std::fs::read_to_string(path).unwrap();
        let uncommented: String = text
            .lines()
            .map(|l| {
                let t = l.trim_start();
                match t.strip_prefix('#') {
                    // "#key = value" and "#[table]" are settings; "# text" is prose.
                    Some(rest) if !rest.starts_with(' ') && !rest.is_empty() => rest.to_string(),
                    _ => l.to_string(),
                }
            })
            .collect::<Vec<_>>()
            .join("\n");
        let parsed: Config = toml::from_str(&uncommented).unwrap();
        assert_eq!(parsed, Config::default(), "{uncommented}");
        assert!(
            uncommented.contains("low-level-runtime"),
            "every key is documented"
        );
    }
}
