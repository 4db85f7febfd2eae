//! The part of a runc command line the shim needs: the subcommand, the
//! bundle of `create` / `run`, and where runc was told to log.
//!
//! runc (urfave/cli) takes global flags before the subcommand and the
//! subcommand's flags before its first positional argument; a flag may be
//! spelled `-x`, `--x`, `--x value` or `--x=value`.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

/// Global flags of runc that take a value.
const GLOBAL_WITH_VALUE: &[&str] = &["log", "log-format", "root", "criu", "rootless"];
/// Flags of `create` / `run` that take a value.
const CREATE_WITH_VALUE: &[&str] = &[
    "bundle",
    "b",
    "console-socket",
    "pid-file",
    "preserve-fds",
    "pidfd-socket",
];

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Invocation {
    /// The subcommand (`create`, `start`, …); `None` for `--version`, `--help`.
    pub command: Option<OsString>,
    /// `--bundle` of `create` / `run`, if given (runc's default is the cwd).
    pub bundle: Option<OsString>,
    /// runc's `--log` file and `--log-format`.
    pub log: Option<OsString>,
    pub log_format: Option<OsString>,
}

impl Invocation {
    /// Does runc build a container from a bundle with this command?
    pub fn creates(&self) -> bool {
        matches!(
            self.command.as_deref().map(OsStr::as_bytes),
            Some(b"create" | b"run")
        )
    }
}

/// A flag split into name and inline value: `--root=/x` → (`root`, `/x`).
/// `None` for positional arguments, `-` and `--`.
fn flag(arg: &OsStr) -> Option<(&[u8], Option<&OsStr>)> {
    let bytes = arg.as_bytes();
    let body = bytes
        .strip_prefix(b"--")
        .or_else(|| bytes.strip_prefix(b"-"))?;
    if body.is_empty() {
        return None;
    }
    match body.iter().position(|&b| b == b'=') {
        Some(i) => Some((&body[..i], Some(OsStr::from_bytes(&body[i + 1..])))),
        None => Some((body, None)),
    }
}

fn takes_value(name: &[u8], list: &[&str]) -> bool {
    list.iter().any(|n| n.as_bytes() == name)
}

pub fn parse(args: &[OsString]) -> Invocation {
    let mut inv = Invocation::default();
    let mut i = 0;
    // Global flags, up to the subcommand.
    while i < args.len() {
        let arg = args[i].as_os_str();
        if arg.as_bytes() == b"--" {
            i += 1;
            break;
        }
        let Some((name, inline)) = flag(arg) else {
            break;
        };
        i += 1;
        if takes_value(name, GLOBAL_WITH_VALUE) {
            let value = match inline {
                Some(v) => Some(v.to_os_string()),
                None => {
                    i += 1;
                    args.get(i - 1).cloned()
                }
            };
            match name {
                b"log" => inv.log = value,
                b"log-format" => inv.log_format = value,
                _ => {}
            }
        }
    }
    let Some(command) = args.get(i) else {
        return inv;
    };
    inv.command = Some(command.clone());
    if !inv.creates() {
        return inv;
    }
    i += 1;
    // The subcommand's flags, up to its first positional argument.
    while i < args.len() {
        let arg = args[i].as_os_str();
        let Some((name, inline)) = flag(arg) else {
            break;
        };
        i += 1;
        if !takes_value(name, CREATE_WITH_VALUE) {
            continue;
        }
        let value = match inline {
            Some(v) => Some(v.to_os_string()),
            None => {
                i += 1;
                args.get(i - 1).cloned()
            }
        };
        if name == b"bundle" || name == b"b" {
            inv.bundle = value;
        }
    }
    inv
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(line: &str) -> Invocation {
        let args: Vec<OsString> = line.split_whitespace().map(OsString::from).collect();
        parse(&args)
    }

    fn os(s: &str) -> Option<OsString> {
        Some(OsString::from(s))
    }

    #[test]
    fn docker_create() {
        let inv = p("--root /r --log /l/log.json --log-format json --systemd-cgroup create --bundle /b --pid-file /b/init.pid ID");
        assert_eq!(inv.command, os("create"));
        assert_eq!(inv.bundle, os("/b"));
        assert_eq!(inv.log, os("/l/log.json"));
        assert_eq!(inv.log_format, os("json"));
        assert!(inv.creates());
    }

    #[test]
    fn bundle_spellings() {
        for line in [
            "create --bundle /b ID",
            "create --bundle=/b ID",
            "create -b /b ID",
            "create -b=/b ID",
            "create -bundle /b ID",
            "run --pid-file /p -b /b ID",
            "create --console-socket /s --no-pivot --bundle /b ID",
            "--root=/r --log=/l create --bundle /b ID",
            "--debug create --bundle /b ID",
        ] {
            assert_eq!(p(line).bundle, os("/b"), "{line}");
            assert!(p(line).creates(), "{line}");
        }
    }

    #[test]
    fn no_bundle_means_cwd() {
        let inv = p("create ID");
        assert!(inv.creates());
        assert_eq!(inv.bundle, None);
    }

    #[test]
    fn flag_values_are_not_taken_for_the_bundle() {
        // A pid file literally named "-b" is a value, not the bundle flag.
        assert_eq!(p("create --pid-file -b ID").bundle, None);
        // Flags after the container id are not runc's.
        assert_eq!(p("create ID --bundle /b").bundle, None);
        // A global --root whose value is "create" is not the subcommand.
        let inv = p("--root create start ID");
        assert_eq!(inv.command, os("start"));
    }

    #[test]
    fn other_commands_pass() {
        for (line, cmd) in [
            ("start ID", Some("start")),
            ("--root /r delete --force ID", Some("delete")),
            ("state ID", Some("state")),
            ("kill ID KILL", Some("kill")),
            ("features", Some("features")),
            ("--version", None),
            ("-v", None),
            ("", None),
        ] {
            let inv = p(line);
            assert_eq!(inv.command.as_deref(), cmd.map(OsStr::new), "{line}");
            assert!(!inv.creates(), "{line}");
        }
    }
}
