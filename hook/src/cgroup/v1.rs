//! cgroup v1: `devices.allow` / `devices.deny` / `devices.list`.

use super::{Backend, CgroupError};
use amd_container_common::DeviceNode;
use oci_spec::runtime::LinuxDeviceCgroup;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::PathBuf;

pub struct DevicesDir {
    path: PathBuf,
    allow: File,
    deny: File,
    list: PathBuf,
}

impl DevicesDir {
    pub fn open(path: PathBuf) -> Result<DevicesDir, CgroupError> {
        let open = |name: &str| {
            let p = path.join(name);
            OpenOptions::new()
                .write(true)
                .open(&p)
                .map_err(|source| CgroupError::Read { path: p, source })
        };
        Ok(DevicesDir {
            allow: open("devices.allow")?,
            deny: open("devices.deny")?,
            list: path.join("devices.list"),
            path,
        })
    }

    /// Returns whether any rule was added.
    pub fn allow_nodes(&self, nodes: &[DeviceNode]) -> Result<bool, CgroupError> {
        let list = std::fs::read_to_string(&self.list).map_err(|source| CgroupError::Read {
            path: self.list.clone(),
            source,
        })?;
        let mut added: Vec<String> = Vec::new();
        for n in nodes {
            if allows_rwm(&list, n.major, n.minor) {
                continue;
            }
            let rule = format!("c {}:{} rwm", n.major, n.minor);
            // One rule per write(2): the kernel parses a single rule per write.
            if let Err(source) = (&self.allow).write_all(rule.as_bytes()) {
                self.revert(&added);
                return Err(CgroupError::Allow {
                    rule,
                    path: self.path.join("devices.allow"),
                    source,
                });
            }
            added.push(rule);
        }
        Ok(!added.is_empty())
    }

    /// Takes back rules added by a run that failed midway.
    fn revert(&self, added: &[String]) {
        for rule in added {
            if let Err(e) = (&self.deny).write_all(rule.as_bytes()) {
                log::warn!("rollback: cannot deny {rule} again: {e}");
            }
        }
    }
}

/// v1 needs no spec rules: `devices.allow` adds to what is there.
impl Backend for DevicesDir {
    fn allow(
        &mut self,
        nodes: &[DeviceNode],
        _spec_rules: &[LinuxDeviceCgroup],
    ) -> Result<bool, CgroupError> {
        self.allow_nodes(nodes)
    }

    fn describe(&self) -> String {
        format!("cgroup v1 {}", self.path.display())
    }
}

/// Does a `devices.list` grant read, write and mknod on char device M:m?
fn allows_rwm(list: &str, major: u32, minor: u32) -> bool {
    let matches = |field: &str, value: u32| field == "*" || field.parse() == Ok(value);
    let mut granted = String::new();
    for line in list.lines() {
        let mut f = line.split_whitespace();
        let (Some(kind), Some(numbers), Some(access)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        let Some((ma, mi)) = numbers.split_once(':') else {
            continue;
        };
        if (kind == "a" || kind == "c") && matches(ma, major) && matches(mi, minor) {
            granted.push_str(access);
        }
    }
    "rwm".chars().all(|c| granted.contains(c))
}

#[cfg(test)]
mod tests {
    use super::allows_rwm;

    #[test]
    fn list_semantics() {
        assert!(allows_rwm("a *:* rwm\n", 226, 128));
        assert!(allows_rwm("c 226:128 rw\nc 226:* m\n", 226, 128));
        assert!(!allows_rwm("c 226:128 rw\n", 226, 128));
        assert!(!allows_rwm("c 1:3 rwm\nc *:* m\nb 226:128 rwm\n", 226, 128));
    }
}
