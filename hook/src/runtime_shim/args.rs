//! The part of a runc command line the shim needs: the subcommand, the
//! bundle of `create` / `run`, and where runc was told to log.
//!
//! runc (urfave/cli v1) takes global flags before the subcommand. A
//! subcommand's flags may come before or after its positional argument:
//! urfave first moves every argument that names one of the command's flags
//! (with the argument after it, unless that starts with `-` or the flag has
//! `=value`) in front of the others, then Go's `flag` package parses that
//! until the first non-flag. A flag is `-x` or `--x`, its value `--x value`
//! or `--x=value`; a boolean never takes the next argument.
//!
//! Contract: the bundle is what runc would use, found the way runc finds it
//! ([`Bundle`]); a command line runc would reject (an unknown flag, a flag
//! without its value, not exactly one container id) is [`Bundle::Unclear`],
//! never a guess.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;

/// Global flags of runc that take a value.
const GLOBAL_WITH_VALUE: &[&str] = &["log", "log-format", "root", "criu", "rootless"];
/// Flags of `create` and `run` that take a value.
const CREATE_WITH_VALUE: &[&str] = &[
    "bundle",
    "b",
    "console-socket",
    "pid-file",
    "preserve-fds",
    "pidfd-socket",
];
/// Boolean flags of `create` (and `run`).
const CREATE_BOOL: &[&str] = &["no-pivot", "no-new-keyring", "help", "h"];
/// Boolean flags only `run` has.
const RUN_BOOL: &[&str] = &["detach", "d", "keep", "no-subreaper"];

/// The bundle runc would use for `create` / `run`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Bundle {
    /// `--bundle`/`-b` not given, or given empty: runc's cwd.
    Cwd,
    Path(OsString),
    /// runc would not accept the command line; why.
    Unclear(String),
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Invocation {
    /// The subcommand (`create`, `start`, …); `None` for `--version`, `--help`.
    pub command: Option<OsString>,
    /// The bundle of `create` / `run` (`None` for other commands and for
    /// `create --help`, which creates nothing).
    pub bundle: Option<Bundle>,
    /// runc's `--log` file and `--log-format`.
    pub log: Option<OsString>,
    pub log_format: Option<OsString>,
}

impl Invocation {
    /// Does runc build a container from a bundle with this command?
    pub fn creates(&self) -> bool {
        self.bundle.is_some()
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
    let bools: Vec<&str> = match command.as_bytes() {
        b"create" => CREATE_BOOL.to_vec(),
        b"run" => CREATE_BOOL.iter().chain(RUN_BOOL).copied().collect(),
        _ => return inv,
    };
    inv.bundle = create_bundle(&args[i + 1..], &bools);
    inv
}

/// urfave's `argIsFlag`: does `arg` name one of the command's flags?
fn names_flag(arg: &[u8], bools: &[&str]) -> bool {
    let Some(body) = arg.strip_prefix(b"--").or_else(|| arg.strip_prefix(b"-")) else {
        return false;
    };
    let name = body.split(|&b| b == b'=').next().unwrap_or_default();
    takes_value(name, CREATE_WITH_VALUE) || takes_value(name, bools)
}

/// The bundle of `create`/`run` given the arguments after the subcommand:
/// urfave's reordering, then Go's flag parsing (see the file's contract).
/// `None` for `--help`.
fn create_bundle(rest: &[OsString], bools: &[&str]) -> Option<Bundle> {
    // urfave/cli v1 reorderArgs.
    let (mut flags, mut others): (Vec<&[u8]>, Vec<&[u8]>) = (Vec::new(), Vec::new());
    let mut value_next = false;
    for (k, arg) in rest.iter().map(|a| a.as_bytes()).enumerate() {
        if arg == b"--" {
            others.extend(rest[k..].iter().map(|a| a.as_bytes()));
            break;
        } else if value_next && !arg.starts_with(b"-") {
            value_next = false;
            flags.push(arg);
        } else if names_flag(arg, bools) {
            flags.push(arg);
            value_next = !arg.contains(&b'=');
        } else {
            others.push(arg);
        }
    }
    flags.extend(others);
    // Go's flag.Parse.
    let unclear = |why: String| Some(Bundle::Unclear(why));
    let show = |a: &[u8]| String::from_utf8_lossy(a).into_owned();
    let mut bundle = Bundle::Cwd;
    let mut j = 0;
    while let Some(&arg) = flags.get(j) {
        if arg.len() < 2 || arg[0] != b'-' {
            break;
        }
        j += 1;
        if arg == b"--" {
            break;
        }
        let Some((name, inline)) = flag(OsStr::from_bytes(arg)) else {
            return unclear(format!("bad flag {:?}", show(arg)));
        };
        if name.is_empty() || name[0] == b'-' || name[0] == b'=' {
            return unclear(format!("bad flag {:?}", show(arg)));
        }
        if takes_value(name, bools) {
            if name == b"help" || name == b"h" {
                return None;
            }
            continue;
        }
        if !takes_value(name, CREATE_WITH_VALUE) {
            return unclear(format!("unknown flag {:?}", show(arg)));
        }
        let value = match inline {
            Some(v) => v.as_bytes(),
            None => match flags.get(j) {
                Some(v) => {
                    j += 1;
                    v
                }
                None => return unclear(format!("flag {:?} without its value", show(arg))),
            },
        };
        if name == b"bundle" || name == b"b" {
            bundle = match value {
                b"" => Bundle::Cwd,
                v => Bundle::Path(OsStr::from_bytes(v).to_os_string()),
            };
        }
    }
    let ids = &flags[j.min(flags.len())..];
    if ids.len() != 1 {
        let ids: Vec<String> = ids.iter().map(|a| show(a)).collect();
        return unclear(format!(
            "runc takes exactly one container id, here {} ({})",
            ids.len(),
            ids.join(" ")
        ));
    }
    Some(bundle)
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

    fn bundle(line: &str) -> Option<Bundle> {
        p(line).bundle
    }

    fn path(s: &str) -> Option<Bundle> {
        Some(Bundle::Path(OsString::from(s)))
    }

    #[test]
    fn docker_create() {
        let inv = p("--root /r --log /l/log.json --log-format json --systemd-cgroup create --bundle /b --pid-file /b/init.pid ID");
        assert_eq!(inv.command, os("create"));
        assert_eq!(inv.bundle, path("/b"));
        assert_eq!(inv.log, os("/l/log.json"));
        assert_eq!(inv.log_format, os("json"));
        assert!(inv.creates());
    }

    #[test]
    fn bundle_spellings_before_and_after_the_id() {
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
            "create ID --bundle /b",
            "create ID -b /b",
            "create ID --bundle=/b",
            "create --pid-file /p ID -b /b --no-pivot",
            "create --bundle /a ID --bundle /b",
        ] {
            assert_eq!(bundle(line), path("/b"), "{line}");
        }
    }

    #[test]
    fn no_bundle_means_cwd() {
        for line in [
            "create ID",
            "create --bundle= ID",
            "create ID --pid-file /p",
        ] {
            assert_eq!(bundle(line), Some(Bundle::Cwd), "{line}");
        }
    }

    #[test]
    fn flag_values_are_not_taken_for_the_bundle() {
        // A pid file literally named "-b" is a value, not the bundle flag.
        assert_eq!(bundle("create --pid-file -b ID"), Some(Bundle::Cwd));
        // After "--" nothing is a flag: runc sees three ids.
        assert!(matches!(
            bundle("create -- ID --bundle /b"),
            Some(Bundle::Unclear(_))
        ));
        // A global --root whose value is "create" is not the subcommand.
        let inv = p("--root create start ID");
        assert_eq!(inv.command, os("start"));
        assert!(!inv.creates());
    }

    #[test]
    fn what_runc_would_reject_is_unclear() {
        for line in [
            "create",
            "create ID other",
            "create --bogus ID --bundle /b",
            "create ID --bundle",
            "create ---bundle /b ID",
            // A boolean before the id: urfave keeps the id with the flags,
            // Go's parser stops at it, and --bundle /b are extra ids.
            "create --no-pivot ID --bundle /b",
            // -d is a flag of run only.
            "create -d ID --bundle /b",
        ] {
            assert!(
                matches!(bundle(line), Some(Bundle::Unclear(_))),
                "{line}: {:?}",
                bundle(line)
            );
        }
        assert_eq!(bundle("create --help"), None, "help creates nothing");
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
