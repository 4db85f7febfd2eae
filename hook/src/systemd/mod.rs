//! The container's systemd scope: where systemd, not the runtime, decides
//! which devices the container may open.
//!
//! Under the systemd cgroup driver (runc, crun, Podman, Docker, CRI-O on
//! cgroup v2 hosts) the runtime asks systemd for a transient scope unit per
//! container (`runc-ID.scope`, `crun-ID.scope`, `libpod-ID.scope`,
//! `docker-ID.scope`, `crio-ID.scope`) with `DevicePolicy` and `DeviceAllow`
//! properties, and systemd attaches its own device program to the scope's
//! cgroup. That program is ANDed with the runtime's and systemd rebuilds it
//! from the unit's properties whenever it re-applies them (`systemctl
//! set-property`, a runtime's `update`, some reloads), so amending the
//! program itself would not hold. Instead the hook tells systemd: it adds
//! `DeviceAllow=/dev/char/MAJ:MIN rwm` for each injected node to the scope as
//! runtime properties (systemd parses `/dev/char/MAJ:MIN` itself, so no path
//! needs to exist in systemd's mount namespace).
//!
//! Contract: [`Scope::find`] returns the scope only when it is this
//! container's own: the innermost `*.scope` of the container's cgroup path,
//! a unit systemd knows with exactly that control group, holding no process
//! but the container's. Slices and scopes shared with anything else are
//! never changed. [`Scope::allow`] adds only the missing entries and only
//! where systemd restricts devices at all (`DevicePolicy` not `auto`, or a
//! non-empty `DeviceAllow`); [`Scope::undo`] puts the previous list back.
//! The D-Bus connection is made in `find`, before the hook enters the
//! container's mount namespace.

pub mod dbus;

use amd_container_common::DeviceNode;
use dbus::{Connection, DbusError, Method, Reader, Value};
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SystemdError {
    #[error("systemd: {0}")]
    Dbus(#[from] DbusError),
    #[error("systemd unit {unit}: reply to {what} is malformed ({why})")]
    Reply {
        unit: String,
        what: &'static str,
        why: &'static str,
    },
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
}

const PRIVATE_SOCKET: &str = "/run/systemd/private";
const SYSTEM_BUS: &str = "/run/dbus/system_bus_socket";
const TIMEOUT: Duration = Duration::from_secs(10);
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";
const SCOPE_IFACE: &str = "org.freedesktop.systemd1.Scope";
const DESTINATION: &str = "org.freedesktop.systemd1";

/// The container's own systemd scope, connected.
pub struct Scope {
    conn: Connection,
    /// Unit name, e.g. `crun-ID.scope`.
    pub unit: String,
    object: String,
    /// The scope's cgroup directory (absolute, in the hook's mount namespace).
    pub dir: PathBuf,
    /// How many levels the scope is above the container's cgroup (0: it is
    /// the container's cgroup).
    pub levels_up: usize,
}

/// What [`Scope::allow`] changed.
#[derive(Debug, Default)]
pub struct ScopeChange {
    /// The `DeviceAllow` list before, when entries were added.
    previous: Option<Vec<(String, String)>>,
    pub added: Vec<String>,
}

/// The systemd name of a char device that needs no node in systemd's mount
/// namespace.
pub fn device_name(node: &DeviceNode) -> String {
    format!("/dev/char/{}:{}", node.major, node.minor)
}

impl Scope {
    /// The scope of the container whose cgroup is `rel` (from
    /// `/proc/PID/cgroup`, e.g. `/system.slice/crun-ID.scope/container`),
    /// directory `dir`. `None` when systemd does not manage it, or when the
    /// scope is not this container's alone.
    pub fn find(pid: i32, rel: &str, dir: &Path) -> Result<Option<Scope>, SystemdError> {
        if !Path::new("/run/systemd/system").is_dir() {
            return Ok(None); // systemd is not the init system
        }
        let parts: Vec<&str> = rel.split('/').filter(|p| !p.is_empty()).collect();
        let Some(i) = parts.iter().rposition(|p| p.ends_with(".scope")) else {
            return Ok(None);
        };
        let levels_up = parts.len() - 1 - i;
        let Some(scope_dir) = dir.ancestors().nth(levels_up) else {
            return Ok(None);
        };
        let unit = parts[i].to_string();
        let scope_rel = format!("/{}", parts[..=i].join("/"));
        let others = other_processes(scope_dir, pid)?;
        if !others.is_empty() {
            log::warn!(
                "systemd scope {unit} also holds process(es) {others:?}: not this container's \
                 alone, left unchanged"
            );
            return Ok(None);
        }
        let conn = match Connection::open(Path::new(PRIVATE_SOCKET), false, TIMEOUT) {
            Ok(c) => c,
            Err(e) => {
                log::debug!("{e}; trying the system bus");
                Connection::open(Path::new(SYSTEM_BUS), true, TIMEOUT)?
            }
        };
        let mut scope = Scope {
            conn,
            unit,
            object: String::new(),
            dir: scope_dir.to_path_buf(),
            levels_up,
        };
        let reply = scope
            .conn
            .call(&scope.manager("GetUnit"), &[Value::Str(scope.unit.clone())]);
        let reply = match reply {
            Ok(r) => r,
            Err(DbusError::Remote { name, .. })
                if name == "org.freedesktop.systemd1.NoSuchUnit" =>
            {
                log::debug!("{} is not a systemd unit", scope.unit);
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        scope.object = Reader::new(&reply.body, reply.le)
            .str()
            .map_err(|why| scope.bad("GetUnit", why))?;
        let cgroup = scope.get_str("ControlGroup")?;
        if cgroup != scope_rel {
            log::warn!(
                "systemd unit {} has control group {cgroup:?}, not {scope_rel:?}: left unchanged",
                scope.unit
            );
            return Ok(None);
        }
        Ok(Some(scope))
    }

    fn manager<'a>(&self, member: &'a str) -> Method<'a> {
        Method {
            destination: Some(DESTINATION),
            path: MANAGER_PATH,
            interface: MANAGER,
            member,
        }
    }

    fn bad(&self, what: &'static str, why: &'static str) -> SystemdError {
        SystemdError::Reply {
            unit: self.unit.clone(),
            what,
            why,
        }
    }

    /// `Properties.Get` of a Scope property: the reply, whose body is the
    /// variant the caller reads with its expected signature.
    fn get(&mut self, property: &'static str) -> Result<dbus::Message, SystemdError> {
        let object = self.object.clone();
        let reply = self.conn.call(
            &Method {
                destination: Some(DESTINATION),
                path: &object,
                interface: "org.freedesktop.DBus.Properties",
                member: "Get",
            },
            &[Value::Str(SCOPE_IFACE.into()), Value::Str(property.into())],
        )?;
        Ok(reply)
    }

    fn get_str(&mut self, property: &'static str) -> Result<String, SystemdError> {
        let reply = self.get(property)?;
        let mut r = Reader::new(&reply.body, reply.le);
        r.variant("s")
            .and_then(|()| r.str())
            .map_err(|why| self.bad(property, why))
    }

    fn device_allow(&mut self) -> Result<Vec<(String, String)>, SystemdError> {
        let reply = self.get("DeviceAllow")?;
        let mut r = Reader::new(&reply.body, reply.le);
        r.variant("a(ss)")
            .and_then(|()| r.pair_array())
            .map_err(|why| self.bad("DeviceAllow", why))
    }

    fn set_device_allow(&mut self, lists: &[Vec<(String, String)>]) -> Result<(), SystemdError> {
        let props = lists
            .iter()
            .map(|l| ("DeviceAllow".to_string(), Value::PairArray(l.clone())))
            .collect();
        self.conn.call(
            &self.manager("SetUnitProperties"),
            &[
                Value::Str(self.unit.clone()),
                Value::Bool(true),
                Value::PropArray(props),
            ],
        )?;
        Ok(())
    }

    /// The bpffs pins of the device programs systemd attaches to the scope
    /// from the unit's `BPFProgram=device:PATH` properties (crun 1.2x under
    /// the systemd driver hands its device program to systemd this way,
    /// with `DevicePolicy=auto` and no `DeviceAllow`). systemd loads them
    /// from those paths again whenever it re-applies the unit.
    /// A systemd without the property (before 249) has none.
    pub fn device_program_pins(&mut self) -> Result<Vec<PathBuf>, SystemdError> {
        let reply = match self.get("BPFProgram") {
            Ok(r) => r,
            Err(SystemdError::Dbus(DbusError::Remote { name, .. }))
                if name == "org.freedesktop.DBus.Error.UnknownProperty"
                    || name == "org.freedesktop.DBus.Error.InvalidArgs" =>
            {
                log::debug!(
                    "systemd unit {}: no BPFProgram property ({name})",
                    self.unit
                );
                return Ok(Vec::new());
            }
            Err(e) => return Err(e),
        };
        let mut r = Reader::new(&reply.body, reply.le);
        let pairs = r
            .variant("a(ss)")
            .and_then(|()| r.pair_array())
            .map_err(|why| self.bad("BPFProgram", why))?;
        Ok(pairs
            .into_iter()
            .filter(|(kind, _)| kind == "device")
            .map(|(_, path)| PathBuf::from(path))
            .collect())
    }

    /// Adds `DeviceAllow=/dev/char/MAJ:MIN rwm` for each node the scope does
    /// not allow yet. Nothing when systemd does not restrict this scope's
    /// devices (`DevicePolicy=auto` and no `DeviceAllow`): adding an entry
    /// there would turn on an allow list and take every other device away.
    pub fn allow(&mut self, nodes: &[DeviceNode]) -> Result<ScopeChange, SystemdError> {
        let policy = self.get_str("DevicePolicy")?;
        let current = self.device_allow()?;
        if policy == "auto" && current.is_empty() {
            log::debug!(
                "systemd unit {}: DevicePolicy=auto, no DeviceAllow: nothing to add",
                self.unit
            );
            return Ok(ScopeChange::default());
        }
        let mut missing: Vec<(String, String)> = Vec::new();
        for n in nodes {
            let name = device_name(n);
            let has = current
                .iter()
                .any(|(p, a)| *p == name && "rwm".chars().all(|c| a.contains(c)));
            if !has && !missing.iter().any(|(p, _)| *p == name) {
                missing.push((name, "rwm".into()));
            }
        }
        if missing.is_empty() {
            return Ok(ScopeChange::default());
        }
        self.set_device_allow(std::slice::from_ref(&missing))?;
        log::debug!(
            "systemd unit {} (DevicePolicy={policy}): DeviceAllow += {}",
            self.unit,
            missing
                .iter()
                .map(|(p, a)| format!("{p} {a}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        Ok(ScopeChange {
            previous: Some(current),
            added: missing.into_iter().map(|(p, _)| p).collect(),
        })
    }

    /// Puts the `DeviceAllow` list back as it was before `change`, in one
    /// call (reset, then the old entries).
    pub fn undo(&mut self, change: ScopeChange) -> Result<(), SystemdError> {
        let Some(previous) = change.previous else {
            return Ok(());
        };
        let mut lists = vec![Vec::new()];
        if !previous.is_empty() {
            lists.push(previous);
        }
        self.set_device_allow(&lists)
    }
}

/// Processes in the cgroup tree at `dir` other than `pid`.
fn other_processes(dir: &Path, pid: i32) -> Result<Vec<i32>, SystemdError> {
    let mut others = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let procs = d.join("cgroup.procs");
        let text = std::fs::read_to_string(&procs).map_err(|source| SystemdError::Read {
            path: procs.clone(),
            source,
        })?;
        others.extend(
            text.lines()
                .filter_map(|l| l.trim().parse::<i32>().ok())
                .filter(|p| *p != pid),
        );
        let entries = std::fs::read_dir(&d).map_err(|source| SystemdError::Read {
            path: d.clone(),
            source,
        })?;
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                stack.push(e.path());
            }
        }
    }
    Ok(others)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_names_need_no_node() {
        let n = DeviceNode {
            path: "/dev/dri/renderD133".into(),
            major: 226,
            minor: 133,
            mode: 0o666,
            uid: 0,
            gid: 109,
        };
        assert_eq!(device_name(&n), "/dev/char/226:133");
    }

    #[test]
    fn other_processes_walks_the_tree() {
        let t = tempdir();
        std::fs::create_dir_all(t.join("container")).unwrap();
        std::fs::write(t.join("cgroup.procs"), "").unwrap();
        std::fs::write(t.join("container/cgroup.procs"), "42\n").unwrap();
        assert!(other_processes(&t, 42).unwrap().is_empty());
        std::fs::write(t.join("container/cgroup.procs"), "42\n43\n").unwrap();
        assert_eq!(other_processes(&t, 42).unwrap(), vec![43]);
        std::fs::remove_dir_all(&t).unwrap();
    }

    fn tempdir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("amd-systemd-test-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        d
    }
}
